//! Everything that talks to Redis nodes: multiplexed connections and their per-thread cache, one-off queries,
//! and topology discovery (cluster, sentinel, static).

pub mod backend;
pub mod cluster;
pub mod connector;
pub mod conns;
pub mod query;
pub mod sentinel;
pub mod source;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::ProxyError;

/// Credentials sent with `AUTH` right after connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub username: Option<String>,
    pub password: String,
}

impl Auth {
    /// `Some` when a password is configured.
    pub fn from_config(username: &Option<String>, password: &Option<String>) -> Option<Auth> {
        password.as_ref().map(|p| Auth {
            username: username.clone(),
            password: p.clone(),
        })
    }

    /// The AUTH command's arguments.
    pub fn args(&self) -> Vec<&str> {
        match &self.username {
            Some(u) => vec!["AUTH", u, &self.password],
            None => vec!["AUTH", &self.password],
        }
    }
}

/// Identifies one request unit of one client: its sequence number and, for split or fan-out
/// commands, which part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub seq: u64,
    pub part: u32,
}

/// What a client task receives.
#[derive(Debug)]
pub enum Inbox {
    /// A complete reply frame from a backend.
    Reply { tag: Tag, frame: Bytes },
    /// The request got no reply; `err.retry` says whether it was never sent.
    Failed { tag: Tag, err: ProxyError },
    /// A backoff delay ended: route the unit again.
    Retry { tag: Tag },
    /// A pub/sub message for a subscribed client.
    Push { frame: Bytes },
    /// A subscriber connection was lost: its subscriptions must be re-established.
    Lost,
    /// Time to try re-establishing lost subscriptions.
    Resubscribe,
}

/// The protocol a connection speaks, chosen by the client with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

impl Proto {
    pub fn index(self) -> usize {
        self as usize
    }
}

pub type ReplyTx = mpsc::UnboundedSender<Inbox>;

/// One request for a backend connection.
#[derive(Debug)]
pub struct Job {
    pub data: Bytes,
    /// Sent first, with its reply dropped: `ASKING` after an ASK redirect, or `SCRIPT LOAD`
    /// to heal a NOSCRIPT.
    pub prefix: Option<Bytes>,
    /// Reply frames `data` produces (more than one for a transaction or a multi-channel
    /// SUBSCRIBE); they are delivered as one concatenated frame.
    pub frames: u32,
    pub tag: Tag,
    pub reply: ReplyTx,
}
