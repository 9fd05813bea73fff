//! Everything that talks to Redis nodes: pipelined connections and their per-thread pool, the
//! control connection, backend error replies (MOVED/ASK/TRYAGAIN), and `topology/`, which
//! follows where the slots are in each backend mode.

mod auth;
pub mod backend;
pub mod connector;
pub mod control;
mod job;
pub mod pool;
pub mod push;
pub mod replicas;
pub mod reply_error;
pub mod sink;
pub mod topology;

pub use auth::Auth;
pub use job::{Inbox, Job, Proto, ReplyTx, Tag};
