//! hive-upstream: Hive's backplane, everything that talks to the Redis nodes and sentinels.
//! Floors, lowest first: primitives (`error`, `stream`, `stop`); `config` as plain data;
//! `stats`; `tls` and `reply_error`; `conn` (pipelined connections, the connector, the control
//! connection); the state the floors above share (`topology`, `replicas`, `facts`);
//! `backplane`, which holds it; `watch`, the control plane's tasks that keep it current; and
//! `route` (the per-thread pool and the router for sub-requests). Nothing here knows about
//! clients.
#![forbid(unsafe_code)]

pub mod backplane;
pub mod config;
pub mod conn;
pub mod error;
pub mod facts;
pub mod mailbox;
pub mod replicas;
pub mod reply_error;
pub mod route;
pub mod stats;
pub mod stop;
pub mod stream;
pub mod tls;
pub mod topology;
pub mod watch;

pub use backplane::Backplane;
pub use conn::{Auth, Inbox, Job, Proto, ReplyTx, Tag};

/// Bytes one connection reads or writes before it yields to the other tasks of its thread.
pub const BURST: usize = 256 * 1024;
