//! How a request reaches the nodes and how their replies come back: along its route on this
//! thread's shared connection (`forward`), split or fanned out (`fanout`), to replicas
//! (`reads`), on a connection of its own when large (`large`) or blocking (`blocking`), SCAN
//! across shards (`scan`), and the replies, redirects and holds (`redirect`).

pub(crate) mod blocking;
pub(crate) mod fanout;
pub(crate) mod forward;
pub(crate) mod large;
pub(crate) mod reads;
pub(crate) mod redirect;
pub(crate) mod scan;
