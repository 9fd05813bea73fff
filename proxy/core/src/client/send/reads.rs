//! Reads from replicas for one connection: which requests may go to a replica (read-only
//! commands outside MULTI, when the connection reads from replicas), and read-your-writes
//! (the connection's reads stay on masters until a replica holds its last acknowledged write).

use hive_common::command::{flag, CommandSpec};

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
