//! hive-upstream: Hive's backplane, everything that talks to the Redis nodes and sentinels.
//! Floors, lowest first: primitives (`error`, `stream`, `stop`), `config` as plain data,
//! `stats`, `tls`, then `conn` (pipelined connections, the per-thread pool, the control
//! connection), `reply_error`, `topology` (where the slots are, in every backend mode),
//! `replicas` (lag, for reads), `push` (hive-module's failover events), `facts` (one poll of
//! the deployment) and `router` (sub-requests with MOVED/ASK and holds). `Backplane` is
//! everything a caller needs to reach the nodes. Nothing here knows about clients.
#![forbid(unsafe_code)]

pub mod backplane;
pub mod config;
pub mod conn;
pub mod error;
pub mod facts;
pub mod push;
pub mod replicas;
pub mod reply_error;
pub mod router;
pub mod stats;
pub mod stop;
pub mod stream;
pub mod tls;
pub mod topology;

pub use backplane::Backplane;
pub use conn::{Auth, Inbox, Job, Proto, ReplyTx, Tag};

/// Bytes one connection reads or writes before it yields to the other tasks of its thread.
pub const BURST: usize = 256 * 1024;
