//! What a client task and a backend connection exchange: a `Job` (request bytes, tagged with
//! the client's sequence number) one way, an `Inbox` message (the reply) the other.

use bytes::Bytes;

use crate::error::ProxyError;

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
    /// A pub/sub message for a subscribed client.
    Push { frame: Bytes },
    /// A subscriber connection was lost: its subscriptions must be re-established.
    Lost,
    /// Time to try re-establishing lost subscriptions.
    Resubscribe,
    /// The reply of entry `seq`, made by a task of the proxy's own (a command run across
    /// shards).
    Done { seq: u64, frame: Bytes },
    /// The topology changed (sent to subscribers with keyspace connections).
    Topology,
    /// A client-side caching invalidation (CLIENT TRACKING): sent after every reply owed when
    /// it arrives, so it never overtakes the reply of a read it invalidates.
    Invalidate { frame: Bytes },
    /// The reply of entry `seq`, a read that waited for another read's fill of the near cache
    /// instead of going to the node; `None`: that fill taught nothing, send the read itself.
    Joined { seq: u64, frame: Option<Bytes> },
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

pub type ReplyTx = crate::mailbox::Sender<Inbox>;

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
    /// A write to be confirmed by replicas (`write_ack = "replica"`); ignored on connections
    /// that do not confirm writes.
    pub ack: bool,
}
