//! How a request reaches the nodes and how their replies come back: along its route on this
//! thread's shared connection (`forward`), split or fanned out (`fanout`), to replicas or on
//! the lane that confirms writes (`consistency`), on a connection of its own when large (`large`), SCAN across shards (`scan`),
//! the replies and redirects (`redirect`), and requests waiting out a failover (`holds`).

pub(crate) mod consistency;
pub(crate) mod fanout;
pub(crate) mod forward;
pub(crate) mod holds;
pub(crate) mod large;
pub(crate) mod redirect;
pub(crate) mod scan;
