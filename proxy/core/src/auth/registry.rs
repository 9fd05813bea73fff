//! The live users: a snapshot replaced whole by ACL SETUSER, DELUSER and LOAD, with a
//! generation that connections compare once per batch to pick up changes to their own user,
//! and the ACL LOG.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::log::{AclLog, Entry};
use super::Users;

pub struct AuthState {
    current: ArcSwap<Users>,
    generation: AtomicU64,
    /// Serializes changes, so two SETUSERs cannot lose one another's rules.
    change: Mutex<()>,
    pub log: Mutex<AclLog>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AuthState {
    pub fn new(users: Users) -> AuthState {
        AuthState {
            current: ArcSwap::from_pointee(users),
            generation: AtomicU64::new(0),
            change: Mutex::new(()),
            log: Mutex::new(AclLog::default()),
        }
    }

    pub fn users(&self) -> Arc<Users> {
        self.current.load_full()
    }

    /// Bumped by every change; read once per client batch.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Applies `f` to the current users and installs its result.
    pub fn change<T>(
        &self,
        f: impl FnOnce(&Users) -> Result<(Users, T), String>,
    ) -> Result<T, String> {
        let _g = lock(&self.change);
        let (next, out) = f(&self.current.load())?;
        self.current.store(Arc::new(next));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(out)
    }

    pub fn record(&self, e: Entry) {
        lock(&self.log).record(e);
    }
}
