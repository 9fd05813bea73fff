//! Creates backend connection tasks with the configured timeouts and credentials. Caching them
//! per worker thread is `conns`' job.

use std::sync::Arc;

use tokio::sync::Notify;

use super::backend::{Backend, BackendOpts};
use crate::stats::Stats;

pub struct Connector {
    opts: BackendOpts,
    on_failure: Arc<Notify>,
    stats: Arc<Stats>,
}

impl Connector {
    pub fn new(opts: BackendOpts, on_failure: Arc<Notify>, stats: Arc<Stats>) -> Connector {
        Connector {
            opts,
            on_failure,
            stats,
        }
    }

    /// A new connection task to `addr` on the current runtime; it connects on first use.
    pub fn spawn(&self, addr: &str) -> Arc<Backend> {
        Backend::spawn(
            addr.into(),
            self.opts.clone(),
            self.on_failure.clone(),
            self.stats.clone(),
        )
    }
}
