//! Where a request is seen: it is classified and run, then its reply is tagged for the
//! per-command counters and the slow log (`pending::flush` counts it), and MONITOR is shown it;
//! CLIENT REPLY OFF/SKIP mark the replies that are dropped.

use bytes::Bytes;
use hive_common::command::flag;
use hive_common::resp::Request;

use super::Conn;
use crate::command::classify::{classify_spec, Action};
use crate::error::ProxyError;

/// CLIENT REPLY's state.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replies {
    #[default]
    On,
    Off,
    /// SKIP was the last command: the next one's reply is dropped.
    SkipNext,
}

impl Replies {
    /// Whether the reply of the command now being dispatched is dropped; a SKIP is used up.
    fn silent(&mut self) -> bool {
        match *self {
            Replies::On => false,
            Replies::Off => true,
            Replies::SkipNext => {
                *self = Replies::On;
                true
            }
        }
    }
}

impl Conn {
    /// CLIENT REPLY ON|OFF|SKIP, as Redis: only ON is answered.
    pub(super) fn client_reply(&mut self, req: &Request) {
        let arg = req.get(2).unwrap_or_default();
        if arg.eq_ignore_ascii_case(b"on") {
            self.replies = Replies::On;
            self.push_done(Bytes::from_static(b"+OK\r\n"));
        } else if arg.eq_ignore_ascii_case(b"off") {
            self.replies = Replies::Off;
        } else if arg.eq_ignore_ascii_case(b"skip") {
            if self.replies != Replies::Off {
                self.replies = Replies::SkipNext;
            }
        } else if !self.replies.silent() {
            self.push_error(&ProxyError::invalid("syntax error"));
        }
    }

    /// Classifies and runs one request, then tags its reply for the per-command counters and
    /// shows it to MONITOR (unless it waits: it comes back here then).
    pub(super) fn dispatch(&mut self, req: Request) {
        let (mut action, spec) = classify_spec(&req, &mut self.keys, self.session.caller());
        let before = self.pending.len();
        // As Redis: admin commands are never shown; passwords are redacted.
        let shown = spec.filter(|s| !s.has(flag::ADMIN));
        let monitored = (shown.is_some() && self.shared.monitors.active()).then(|| req.clone());
        self.read_route(&mut action, spec);
        if let Action::ClientReply = action {
            return self.client_reply(&req);
        }
        if let Action::Reset = action {
            // RESET turns CLIENT REPLY back on before it answers, as in Redis.
            self.replies = Replies::On;
        }
        // (Un)subscribe confirmations are pushed past CLIENT REPLY OFF/SKIP, as Redis 7.0 does
        // (CLIENT_PUSHING); a SKIP is still used up.
        let silent = self.replies.silent() && !matches!(action, Action::Subscribe { .. });
        let queued_before = self.queued;
        self.dispatch_action(req, action);
        if self.held.is_some() {
            return;
        }
        if silent {
            for p in self.pending.range_mut(before..) {
                p.silent = true;
            }
        }
        if self.queued > queued_before {
            // Queued in MULTI: counted when EXEC runs it.
        } else if let (Some(spec), Some(p)) = (spec, self.pending.get_mut(before)) {
            p.cmd = spec.id;
            let clock = &self.clock;
            p.at = *self.batch_at.get_or_insert_with(|| clock.raw().max(1));
        }
        if let Some(req) = monitored {
            let peer = self.entry.peer.to_string();
            let args: Vec<&[u8]> = req.args().collect();
            let args = crate::state::monitor::redacted(&args);
            self.shared.monitors.feed(&peer, args.into_iter());
        }
    }
}
