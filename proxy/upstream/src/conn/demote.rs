//! Shared connections to a node that stopped being a master (a failover was followed): each
//! request they still carry gets `DEMOTED_GRACE` from when it was written to be answered, then
//! fails with its outcome unknown.
//! A client whose request went to a master that froze (SIGSTOP, a hung host) or vanished
//! behind a partition then moves on to the new master, instead of waiting out the command
//! timeout; a master demoted gracefully answers (or redirects) well within the grace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// How long, from its write, a request to a master that was then demoted may take.
pub const DEMOTED_GRACE: Duration = Duration::from_secs(1);

/// The shared master connections that can be told their node was demoted.
#[derive(Debug, Default)]
pub struct Demotions {
    conns: Mutex<Vec<(Arc<str>, mpsc::UnboundedSender<()>)>>,
}

impl Demotions {
    /// Registers a connection to `addr`; its task listens on the receiver. Connections are
    /// made rarely, so the list is pruned of closed ones here.
    pub fn register(&self, addr: Arc<str>) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut c = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|(_, t)| !t.is_closed());
        c.push((addr, tx));
        rx
    }

    /// Tells every connection to `addr` that it no longer reaches a master.
    pub fn demote(&self, addr: &str) {
        let mut c = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|(a, t)| &**a != addr || t.send(()).is_ok());
    }
}

/// Resolves when the connection is told its node was demoted; never, for connections that
/// are not registered (or once the registry is gone).
pub(super) async fn demoted(rx: &mut Option<mpsc::UnboundedReceiver<()>>) {
    if let Some(r) = rx {
        if r.recv().await.is_some() {
            return;
        }
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demotions_reach_only_the_demoted_node_and_forget_closed_ones() {
        let d = Demotions::default();
        let mut a = Some(d.register("a:1".into()));
        let b = d.register("b:1".into());
        drop(b);
        d.demote("a:1");
        demoted(&mut a).await;
        d.demote("b:1");
        assert_eq!(
            d.conns.lock().unwrap().len(),
            1,
            "the closed one is dropped"
        );
    }
}
