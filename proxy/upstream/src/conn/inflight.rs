//! What a backend connection has written and awaits replies for: one `InFlight` per request
//! (matched FIFO), and how a job joins the next write.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{Job, ReplyTx, Tag};

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
}

pub(super) type Queue = Mutex<VecDeque<InFlight>>;

/// Requests at least this long are written from their own buffer instead of being copied.
const WRITE_DIRECT: usize = 64 * 1024;

/// Adds `job` to the batch; a large request's data is returned to be written after `wbuf`.
pub(super) fn push_job(
    wbuf: &mut BytesMut,
    batch: &mut Vec<InFlight>,
    job: Job,
    sent: Instant,
) -> Option<Bytes> {
    if let Some(prefix) = &job.prefix {
        wbuf.extend_from_slice(prefix);
        batch.push(InFlight {
            reply: job.reply.clone(),
            tag: job.tag,
            skip: true,
            left: 1,
            acc: None,
            sent,
        });
    }
    batch.push(InFlight {
        reply: job.reply,
        tag: job.tag,
        skip: false,
        left: job.frames.max(1),
        acc: None,
        sent,
    });
    if job.data.len() >= WRITE_DIRECT {
        return Some(job.data);
    }
    wbuf.extend_from_slice(&job.data);
    None
}

pub(super) fn lock(q: &Queue) -> std::sync::MutexGuard<'_, VecDeque<InFlight>> {
    // A poisoned queue only means another task panicked mid-update; the data is still usable.
    q.lock().unwrap_or_else(|p| p.into_inner())
}
