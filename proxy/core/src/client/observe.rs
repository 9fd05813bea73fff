//! Where a request is seen: it is classified and run, then its reply is tagged for the
//! per-command counters and the slow log (`pending::flush` counts it), and MONITOR is shown it.

use hive_common::command::flag;
use hive_common::resp::Request;

use super::Conn;
use crate::command::classify::classify_spec;

impl Conn {
    /// Classifies and runs one request, then tags its reply for the per-command counters and
    /// shows it to MONITOR (unless it waits: it comes back here then).
    pub(super) fn dispatch(&mut self, req: Request) {
        let (mut action, spec) = classify_spec(&req, &mut self.keys, self.session.caller());
        let before = self.pending.len();
        // As Redis: admin commands are never shown; passwords are redacted.
        let shown = spec.filter(|s| !s.has(flag::ADMIN));
        let monitored = (shown.is_some() && self.shared.monitors.active()).then(|| req.clone());
        self.read_route(&mut action, spec);
        self.dispatch_action(req, action);
        if self.held.is_some() {
            return;
        }
        if let (Some(spec), Some(p)) = (spec, self.pending.get_mut(before)) {
            p.cmd = spec.id;
            let clock = &self.clock;
            p.at = *self.batch_at.get_or_insert_with(|| clock.raw().max(1));
        }
        if let Some(req) = monitored {
            let peer = self.entry.peer.to_string();
            let args: Vec<&[u8]> = req.args().collect();
            let args = crate::metrics::monitor::redacted(&args);
            self.shared.monitors.feed(&peer, args.into_iter());
        }
    }
}
