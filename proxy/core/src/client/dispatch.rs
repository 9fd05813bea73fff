//! Where a request is seen: `pump` decodes each one from the client's buffer, it is classified
//! and run, then its reply is tagged for the
//! per-command counters and the slow log (`pending::flush` counts it), and MONITOR is shown it;
//! CLIENT REPLY OFF/SKIP mark the replies that are dropped.

use bytes::{Bytes, BytesMut};
use hive_common::command::flag;
use hive_common::resp::Request;

use super::Conn;
use crate::command::classify::{classify_spec, Action};
use crate::error::{ClientReason, ProxyError};
use crate::metrics::Stats;

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
        // A tracking connection: its reads are remembered before they are sent; its writes
        // are looked at once they are under way (a write held by CLIENT PAUSE comes back here).
        let tracked = spec
            .filter(|_| self.session.tracking.is_some() && !matches!(action, Action::Error(_)))
            .map(|spec| (spec, self.track_read(&req, spec).then(|| req.clone())));
        self.acks.dispatching(spec);
        if self.shared.cache.is_some() {
            self.dispatch_near(req, spec, action);
        } else {
            self.dispatch_action(req, action);
        }
        self.acks.now = false;
        if self.held.is_some() {
            return;
        }
        for p in self.pending.range_mut(before..) {
            p.silent |= silent;
            p.batch = self.batch;
        }
        if self.queued > queued_before {
            // Queued in MULTI: counted when EXEC runs it.
        } else if let Some(spec) = spec.filter(|_| before < self.pending.len()) {
            // A batch decoded in one turn shares the turn's one clock reading.
            let at = self.now();
            let p = &mut self.pending[before];
            p.cmd = spec.id;
            p.at = at;
            p.quick = spec.has(flag::READONLY | flag::WRITE) && !spec.has(flag::BLOCKING);
        }
        if let Some((spec, Some(req))) = tracked {
            // After the silencing above: invalidations go out under CLIENT REPLY OFF too.
            self.tell_own_writes(&req, spec);
        }
        if let Some(req) = monitored {
            let peer = self.entry.peer.to_string();
            let args: Vec<&[u8]> = req.args().collect();
            let args = crate::state::monitor::redacted(&args);
            self.shared.monitors.feed(&peer, args.into_iter());
        }
    }
}

impl Conn {
    /// Decodes and dispatches every complete request the buffer holds, within the pending cap;
    /// how many it dispatched.
    pub(super) fn pump(&mut self, rbuf: &mut BytesMut, max_pending: usize) -> usize {
        if !self.session.refresh(&self.shared.auth) {
            // ACL DELUSER of this connection's user.
            self.closing = true;
            return 0;
        }
        self.slow_us = self.shared.slowlog.threshold();
        self.batch = self.batch.wrapping_add(1).max(1);
        // Read once per batch: no shared state is touched per request.
        let pause = self.shared.pause.current().map(|(mode, _)| mode);
        if let Some(req) = self.held.take() {
            if pause.is_some_and(|m| self.must_wait(m, &req)) {
                self.held = Some(req);
                self.count_paused(true);
                return 0;
            }
            self.count_paused(false);
            self.dispatch(req);
            if self.held.is_some() {
                return 0;
            }
            self.decoded += 1;
        }
        while !self.closing && self.pending.len() < max_pending {
            // Redis's limits for clients that have not authenticated; an AUTH earlier in this
            // batch lifts them for the next request.
            self.decoder.set_unauthenticated(!self.session.authed);
            match self.decoder.decode(rbuf) {
                Ok(Some(req)) => {
                    if pause.is_some_and(|m| self.must_wait(m, &req)) {
                        self.held = Some(req);
                        self.count_paused(true);
                        break;
                    }
                    self.dispatch(req);
                    if self.held.is_some() {
                        break;
                    }
                    self.decoded += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    // As Redis: reply with the error, then close once earlier replies are out.
                    self.push_error(&ProxyError::client(ClientReason::Protocol, e.to_string()));
                    self.closing = true;
                }
            }
        }
        // One relaxed add per batch keeps INFO current without a per-request atomic.
        let counted = self.batch_counted();
        let dispatched = self.decoded as usize;
        (self.decoded, self.queued) = (0, 0);
        Stats::add(&self.shared.stats.commands_processed, counted);
        dispatched
    }

    /// Commands of this batch so far that count as processed.
    pub(crate) fn batch_counted(&self) -> u64 {
        self.decoded.saturating_sub(self.queued)
    }
}
