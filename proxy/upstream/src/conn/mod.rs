//! Connections to Redis nodes: pipelined backend connections and their per-thread pool, the
//! connector that opens them, and the control connection for one-off commands.

mod auth;
pub mod backend;
pub mod connector;
pub mod control;
mod job;
pub mod pool;
pub mod sink;

pub use auth::Auth;
pub use job::{Inbox, Job, Proto, ReplyTx, Tag};
