//! A client's output limits, checked once per turn of its loop: the subscriber limit
//! (`subscriber_output_limit_bytes`) and the normal one (`client_output_buffer_limit`: past
//! soft the client is not read until it reads; past hard, or above soft for its seconds, it is
//! closed, as Redis closes it).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::Conn;
use crate::config::OutputLimit;
use crate::metrics::Stats;

pub(super) struct OutputGuard {
    limit: OutputLimit,
    soft_since: Option<Instant>,
}

impl OutputGuard {
    pub fn new(limit: OutputLimit) -> OutputGuard {
        OutputGuard {
            limit,
            soft_since: None,
        }
    }

    /// Past the soft limit the client must read before it may send more.
    pub fn backed_up(&self, unread: usize) -> bool {
        self.limit.soft > 0 && unread > self.limit.soft
    }

    /// When the soft limit's time is up, if the client is above it.
    pub fn deadline(&self) -> Option<Instant> {
        self.soft_since
            .map(|t| t + Duration::from_secs(self.limit.soft_seconds))
    }

    /// Whether `conn`, with `out_len` bytes not yet written, must be closed now.
    pub fn exceeded(&mut self, conn: &Conn, out_len: usize) -> bool {
        let close = |why: &str, bytes: usize| {
            let _in = conn.entry.span.enter();
            warn!(client = conn.entry.id, bytes, "closing client: {why}");
            Stats::add(&conn.shared.stats.output_limit_disconnects, 1);
            true
        };
        if let Some(sink) = conn.subs.as_ref().map(|s| &s.sink) {
            // Messages count until they are written, not only until they reach the outbox.
            let queued = out_len + sink.queued.load(Ordering::Relaxed);
            if queued > sink.limit {
                return close("over proxy.subscriber_output_limit_bytes", queued);
            }
        }
        let unread = out_len + conn.done_bytes;
        if self.limit.hard > 0 && unread > self.limit.hard {
            return close(
                "reached its hard output buffer limit (proxy.client_output_buffer_limit)",
                unread,
            );
        }
        if !self.backed_up(unread) {
            self.soft_since = None;
            return false;
        }
        let since = *self.soft_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= Duration::from_secs(self.limit.soft_seconds) {
            return close(
                "stayed over its soft output buffer limit (proxy.client_output_buffer_limit)",
                unread,
            );
        }
        false
    }
}
