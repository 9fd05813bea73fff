//! What a backend connection has written and awaits replies for: one `InFlight` per request
//! (matched FIFO), and how a job joins the next write.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::conn::{Job, ReplyTx, Tag};

/// How an entry's reply relates to `write_ack = "replica"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    /// Delivered as soon as it arrives.
    Open,
    /// A write: its reply waits for the WAIT written after it.
    Ack,
    /// The WAIT that confirms (or refuses) the writes before it.
    Wait,
}

pub(super) struct InFlight {
    pub reply: ReplyTx,
    pub tag: Tag,
    /// The reply to a prefix we sent on the client's behalf (`ASKING`, `SCRIPT LOAD`).
    pub skip: bool,
    /// Frames still to come for this entry (a transaction or a multi-channel SUBSCRIBE).
    pub left: u32,
    /// The frames so far, when more than one is expected; delivered concatenated.
    pub acc: Option<BytesMut>,
    pub sent: Instant,
    pub gate: Gate,
}

/// The entries awaiting replies, in write order, and the writes answered by the node whose
/// WAIT has not answered yet.
#[derive(Default)]
pub(super) struct Flight {
    pub q: VecDeque<InFlight>,
    pub held: Vec<(InFlight, Bytes)>,
}

impl Deref for Flight {
    type Target = VecDeque<InFlight>;
    fn deref(&self) -> &Self::Target {
        &self.q
    }
}

impl DerefMut for Flight {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.q
    }
}

pub(super) type Queue = Mutex<Flight>;

/// Requests at least this long are written from their own buffer instead of being copied.
const WRITE_DIRECT: usize = 64 * 1024;

/// Adds `job` to the batch; a large request's data is returned to be written after `wbuf`.
/// `acking`: the connection confirms writes with WAIT, so a job marked `ack` is gated.
pub(super) fn push_job(
    wbuf: &mut BytesMut,
    batch: &mut VecDeque<InFlight>,
    job: Job,
    sent: Instant,
    acking: bool,
) -> Option<Bytes> {
    if let Some(prefix) = &job.prefix {
        wbuf.extend_from_slice(prefix);
        batch.push_back(InFlight {
            reply: job.reply.clone(),
            tag: job.tag,
            skip: true,
            left: 1,
            acc: None,
            sent,
            gate: Gate::Open,
        });
    }
    batch.push_back(InFlight {
        reply: job.reply,
        tag: job.tag,
        skip: false,
        left: job.frames.max(1),
        acc: None,
        sent,
        gate: if job.ack && acking {
            Gate::Ack
        } else {
            Gate::Open
        },
    });
    if job.data.len() >= WRITE_DIRECT {
        return Some(job.data);
    }
    wbuf.extend_from_slice(&job.data);
    None
}

/// The WAIT entry closing a batch that holds writes to confirm; its reply is dropped after
/// it has released (or refused) them.
pub(super) fn wait_entry(like: &InFlight) -> InFlight {
    InFlight {
        reply: like.reply.clone(),
        tag: like.tag,
        skip: true,
        left: 1,
        acc: None,
        sent: like.sent,
        gate: Gate::Wait,
    }
}

pub(super) fn lock(q: &Queue) -> std::sync::MutexGuard<'_, Flight> {
    // A poisoned queue only means another task panicked mid-update; the data is still usable.
    q.lock().unwrap_or_else(|p| p.into_inner())
}
