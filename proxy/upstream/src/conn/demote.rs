//! Shared connections to a node that stopped being a master (a failover was followed): each
//! request they still carry gets `DEMOTED_GRACE` from when it was written to be answered, then
//! fails with its outcome unknown.
//! A client whose request went to a master that froze (SIGSTOP, a hung host) or vanished
//! behind a partition then moves on to the new master, instead of waiting out the command
//! timeout; a master demoted gracefully answers (or redirects) well within the grace.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// How long, from its write, a request to a master that was then demoted may take.
pub const DEMOTED_GRACE: Duration = Duration::from_secs(1);

/// The shared master connections that can be told their node was demoted.
#[derive(Debug, Default)]
pub struct Demotions {
    conns: Mutex<Vec<(Arc<str>, Weak<Flag>)>>,
}

/// How many times a connection's node was demoted, and the task to wake when it is.
#[derive(Debug, Default)]
struct Flag {
    count: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

/// A connection task's end of its demotion flag. The task polls it every time it wakes, so a
/// poll is one atomic load and a waker comparison: an mpsc receiver here cost ~350
/// instructions per request at P1 (its pop and waker registration, callgrind, issue 27).
#[derive(Debug)]
pub struct Demoted {
    flag: Arc<Flag>,
    seen: u64,
    registered: Option<Waker>,
}

impl Demotions {
    /// Registers a connection to `addr`; its task watches the result. Connections are made
    /// rarely, so the list is pruned of dropped ones here.
    pub fn register(&self, addr: Arc<str>) -> Demoted {
        let flag = Arc::new(Flag::default());
        let mut c = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|(_, f)| f.strong_count() > 0);
        c.push((addr, Arc::downgrade(&flag)));
        Demoted {
            flag,
            seen: 0,
            registered: None,
        }
    }

    /// Tells every connection to `addr` that it no longer reaches a master.
    pub fn demote(&self, addr: &str) {
        let mut c = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|(a, f)| {
            let Some(flag) = f.upgrade() else {
                return false;
            };
            if &**a == addr {
                flag.count.fetch_add(1, Ordering::AcqRel);
                let waker = flag.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(w) = waker {
                    w.wake();
                }
            }
            true
        });
    }
}

impl Demoted {
    fn poll_demoted(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take() {
            return Poll::Ready(());
        }
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let w = cx.waker().clone();
            *self.flag.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(w.clone());
            self.registered = Some(w);
            // A demotion between the check and the registration woke no one: look again.
            if self.take() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }

    /// Whether a demotion came since the last one seen; each is seen once.
    fn take(&mut self) -> bool {
        let n = self.flag.count.load(Ordering::Acquire);
        if n == self.seen {
            return false;
        }
        self.seen = n;
        // The waker was taken by `demote`: register again on the next wait.
        self.registered = None;
        true
    }
}

/// Resolves when the connection is told its node was demoted; never, for connections that
/// are not registered.
pub(super) fn demoted(d: &mut Option<Demoted>) -> impl std::future::Future<Output = ()> + '_ {
    poll_fn(move |cx| match d {
        Some(d) => d.poll_demoted(cx),
        None => Poll::Pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demotions_reach_only_the_demoted_node_and_forget_dropped_ones() {
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
            "the dropped one is forgotten"
        );
    }

    #[tokio::test]
    async fn demoted_wakes_a_waiting_task_once_per_demotion() {
        let d = Arc::new(Demotions::default());
        let mut a = Some(d.register("a:1".into()));
        let waiting = tokio::spawn(async move {
            demoted(&mut a).await;
            // The same demotion does not resolve it twice.
            let again = futures_util::FutureExt::now_or_never(demoted(&mut a));
            (again.is_some(), a)
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no demotion yet");
        d.demote("b:1");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "another node's demotion");
        d.demote("a:1");
        let (again, mut a) = waiting.await.unwrap();
        assert!(!again, "one demotion resolves one wait");
        d.demote("a:1");
        demoted(&mut a).await;
    }
}
