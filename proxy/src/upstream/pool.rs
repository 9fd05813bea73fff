//! One shared backend connection per node address, created on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::backend::{Backend, BackendOpts};
use crate::stats::Stats;

/// Backends by address. Looked up when the topology changes or a redirect names a node, never
/// per request: requests use the handles inside the topology snapshot.
pub struct Pool {
    backends: Mutex<HashMap<Arc<str>, Arc<Backend>>>,
    opts: BackendOpts,
    on_failure: Arc<Notify>,
    stats: Arc<Stats>,
}

impl Pool {
    pub fn new(opts: BackendOpts, on_failure: Arc<Notify>, stats: Arc<Stats>) -> Pool {
        Pool {
            backends: Mutex::new(HashMap::new()),
            opts,
            on_failure,
            stats,
        }
    }

    /// A new, unshared connection task on the current runtime (per-thread pools cache it).
    pub fn spawn(&self, addr: &str) -> Arc<Backend> {
        Backend::spawn(
            addr.into(),
            self.opts.clone(),
            self.on_failure.clone(),
            self.stats.clone(),
        )
    }

    pub fn get(&self, addr: &str) -> Arc<Backend> {
        let mut map = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(addr) {
            return b.clone();
        }
        let key: Arc<str> = addr.into();
        let b = Backend::spawn(
            key.clone(),
            self.opts.clone(),
            self.on_failure.clone(),
            self.stats.clone(),
        );
        map.insert(key, b.clone());
        b
    }
}
