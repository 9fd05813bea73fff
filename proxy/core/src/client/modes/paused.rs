//! CLIENT PAUSE as it holds this connection: which requests wait (`state::pause::must_wait`,
//! with the transaction EXEC would run), and the proxy-wide count of held clients that INFO
//! shows.

use hive_common::resp::Request;

use crate::client::Conn;
use crate::state::pause::{must_wait, PauseMode};

impl Conn {
    /// CLIENT PAUSE WRITE holds EXEC only when its transaction may write.
    pub(crate) fn must_wait(&self, mode: PauseMode, req: &Request) -> bool {
        must_wait(mode, req, self.multi.as_ref().map(|m| &m.queued[..]))
    }

    /// Keeps the proxy-wide count of clients held by CLIENT PAUSE.
    pub(crate) fn count_paused(&mut self, on: bool) {
        if on != self.paused {
            self.paused = on;
            let c = &self.shared.stats.paused_clients;
            if on {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                c.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.count_paused(false);
    }
}
