//! Connections to Redis nodes: pipelined backend connections, the connector that opens them,
//! and the control connection for one-off commands.

pub mod backend;
pub mod connector;
pub mod control;
pub mod demote;
mod job;
pub mod sink;
#[cfg(test)]
mod tests;

pub use crate::config::Auth;
pub use job::{Inbox, Job, Proto, ReplyTx, Tag};
