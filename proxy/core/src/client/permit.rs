//! A client's place while its task runs (its `max_clients` slot and CLIENT LIST entry, given
//! back on any exit), and the panic guard around the task.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::FutureExt;
use tracing::error;

use crate::metrics::Stats;
use crate::state::registry::ClientEntry;
use crate::state::Shared;

/// Holds a client's place while its task runs: the `connected_clients` count (checked against
/// `max_clients`) and its CLIENT LIST entry. Dropping it, on any exit including a panic,
/// gives both back.
pub struct ClientSlot {
    shared: Arc<Shared>,
    id: u64,
    span: tracing::Span,
}

impl ClientSlot {
    /// Takes a place for a new client; the caller has checked `max_clients`.
    pub fn take(shared: &Arc<Shared>, entry: Arc<ClientEntry>) -> ClientSlot {
        Stats::add(&shared.stats.connected_clients, 1);
        let (id, span) = (entry.id, entry.span.clone());
        shared.clients.add(entry);
        ClientSlot {
            shared: shared.clone(),
            id,
            span,
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.clients.remove(self.id);
        self.shared.monitors.remove(self.id);
        self.shared.tracking.disable(self.id);
        self.shared.tracking.sink(self.id, None);
        self.shared
            .stats
            .connected_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a client's task; a panic in it is logged and counted instead of vanishing with the
/// task, and its slot is given back either way.
pub async fn guarded<F: std::future::Future<Output = ()>>(
    shared: Arc<Shared>,
    slot: ClientSlot,
    task: F,
) {
    if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let _in = slot.span.enter();
        error!(client = slot.id, panic = %what, "client task panicked; connection closed");
        Stats::add(&shared.stats.client_panics, 1);
    }
    drop(slot);
}
