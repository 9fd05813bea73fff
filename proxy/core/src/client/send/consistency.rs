//! Consistency for one connection: which requests may go to a replica (read-only commands
//! outside MULTI, when the connection reads from replicas), read-your-writes (the
//! connection's reads stay on masters until a replica holds its last acknowledged write), and
//! with `write_ack = "replica"`, which requests replicas must confirm and the lane they take.

use hive_common::command::{flag, CommandSpec};
use hive_upstream::route::pool::Lane;

use crate::client::Conn;
use crate::command::classify::Action;
use crate::command::route::Route;
use crate::config::ReadFrom;

/// A connection's write bookkeeping for read-your-writes.
#[derive(Default)]
pub(crate) struct Writes {
    /// The newest write whose reply the client has not been sent yet (its sequence number).
    unacked: Option<u64>,
    /// When the last write was acknowledged (the clock's raw reading; 0: none).
    pub acked_at: u64,
}

/// A connection's bookkeeping for `write_ack = "replica"`.
#[derive(Default)]
pub(crate) struct Acks {
    /// `backend.write_ack = "replica"` as of this connection's start.
    on: bool,
    /// The request being dispatched changes data replicas receive.
    pub now: bool,
    /// The lane this connection's requests take.
    lane: Lane,
    /// The newest request sent on `lane`.
    until: Option<u64>,
}

impl Acks {
    pub fn new(on: bool) -> Acks {
        Acks {
            on,
            ..Acks::default()
        }
    }

    /// Notes whether the request being dispatched must be confirmed (only when acks are on:
    /// one compare per request otherwise).
    #[inline]
    pub fn dispatching(&mut self, spec: Option<&CommandSpec>) {
        self.now = self.on && spec.is_some_and(|s| s.has(flag::REPLICATES));
    }

    /// The lane for request `seq` (`ack`: it must be confirmed), `base` being the oldest
    /// request not yet answered to the client. A node runs one connection's requests in order
    /// but not two connections' relative to each other, so the connection changes lane only
    /// when everything it sent on the old one is answered: a pipelined read behind a write
    /// takes the write's lane (and waits for its WAIT, as its reply would anyway), and a
    /// write behind unanswered reads takes theirs (which then carries a WAIT too). Reads of a
    /// client with no write in flight never queue behind another client's WAIT.
    #[inline]
    pub fn lane(&mut self, seq: u64, ack: bool, base: u64) -> Lane {
        if !self.on {
            return Lane::Plain;
        }
        if self.until.is_none_or(|u| u < base) {
            self.lane = if ack { Lane::Ack } else { Lane::Plain };
        }
        self.until = Some(self.until.map_or(seq, |u| u.max(seq)));
        self.lane
    }
}

impl Conn {
    /// Turns a read-only command's slot route into a replica read when this connection reads
    /// from replicas, and notes writes for read-your-writes. In place: on the master path
    /// (the default) this is one compare per request.
    #[inline]
    pub(crate) fn read_route(&mut self, action: &mut Action, spec: Option<&CommandSpec>) {
        let from = self.session.read_from;
        if from == ReadFrom::Master {
            return;
        }
        let Some(spec) = spec else { return };
        match action {
            Action::Forward(route @ Route::Slot(_))
                if spec.has(flag::READONLY) && self.multi.is_none() =>
            {
                // A write of ours still unanswered: only the master's queue orders it first.
                if self.ryw && self.writes.unacked.is_some() {
                    return;
                }
                if let Route::Slot(slot) = *route {
                    *route = Route::Replica {
                        slot,
                        strict: from == ReadFrom::Replica,
                    };
                }
            }
            Action::Local(_) | Action::Error(_) => {}
            _ => {
                if self.ryw && !spec.has(flag::READONLY) {
                    self.writes.unacked = Some(self.next_seq());
                }
            }
        }
    }

    /// After `flush`: the newest write's reply went out, so it is acknowledged from now on.
    #[inline]
    pub(crate) fn note_acked(&mut self) {
        if let Some(seq) = self.writes.unacked {
            if self.base > seq {
                self.writes.unacked = None;
                self.writes.acked_at = self.now();
            }
        }
    }

    /// The acknowledged write a replica must hold to serve this connection (0: any may).
    pub(crate) fn must_cover(&self) -> u64 {
        if self.ryw {
            self.writes.acked_at
        } else {
            0
        }
    }
}
