//! Requests waiting out a failover (no writable master, TRYAGAIN, CLUSTERDOWN, LOADING), kept
//! in the client's own state: one timer queue per connection, made with its first hold. A held
//! request is sent again after its backoff, or at once when a new topology is installed,
//! whichever comes first; no task or timer is spawned per attempt.

use std::time::Duration;

use futures_util::StreamExt;
use hive_upstream::Tag;
use tokio::sync::watch;
use tokio_util::time::DelayQueue;

pub(crate) struct Holds {
    queue: DelayQueue<Tag>,
    /// Every held tag, so that a new topology retries them all at once.
    waiting: Vec<Tag>,
    changes: watch::Receiver<u64>,
}

impl Holds {
    pub(crate) fn new(mut changes: watch::Receiver<u64>) -> Holds {
        // Only maps installed from now on retry what waits here.
        changes.borrow_and_update();
        Holds {
            queue: DelayQueue::new(),
            waiting: Vec::new(),
            changes,
        }
    }

    pub(crate) fn add(&mut self, tag: Tag, delay: Duration) {
        if self.waiting.is_empty() {
            self.changes.borrow_and_update();
        }
        self.queue.insert(tag, delay);
        self.waiting.push(tag);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The held requests due now: the ones whose backoff ran out, or every one of them when a
    /// new topology came in. Pending while nothing waits.
    pub(crate) async fn due(&mut self) -> Vec<Tag> {
        if self.waiting.is_empty() {
            return std::future::pending().await;
        }
        tokio::select! {
            Some(expired) = self.queue.next() => {
                let tag = expired.into_inner();
                if let Some(at) = self.waiting.iter().position(|t| *t == tag) {
                    self.waiting.swap_remove(at);
                }
                vec![tag]
            }
            Ok(()) = self.changes.changed() => {
                self.queue.clear();
                std::mem::take(&mut self.waiting)
            }
            // The topology's sender is gone (the proxy is stopping): nothing more comes due.
            else => std::future::pending().await,
        }
    }
}

/// The held units due for another attempt, or never while none waits.
pub(crate) async fn held_due(holds: &mut Option<Box<Holds>>) -> Vec<hive_upstream::Tag> {
    match holds {
        Some(h) if !h.is_empty() => h.due().await,
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(seq: u64) -> Tag {
        Tag { seq, part: 0 }
    }

    #[tokio::test(start_paused = true)]
    async fn holds_come_due_after_their_backoff_in_order() {
        let (_tx, rx) = watch::channel(0u64);
        let mut h = Holds::new(rx);
        h.add(tag(2), Duration::from_millis(200));
        h.add(tag(1), Duration::from_millis(100));
        assert_eq!(h.due().await, vec![tag(1)]);
        assert_eq!(h.due().await, vec![tag(2)]);
        assert!(h.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn holds_all_come_due_when_a_new_topology_is_installed() {
        let (tx, rx) = watch::channel(0u64);
        let mut h = Holds::new(rx);
        h.add(tag(1), Duration::from_secs(5));
        h.add(tag(2), Duration::from_secs(5));
        tx.send(1).unwrap();
        let mut due = h.due().await;
        due.sort_by_key(|t| t.seq);
        assert_eq!(due, vec![tag(1), tag(2)]);
        assert!(h.is_empty());
        // A map installed before a hold does not release it.
        tx.send(2).unwrap();
        h.add(tag(3), Duration::from_millis(50));
        let started = tokio::time::Instant::now();
        assert_eq!(h.due().await, vec![tag(3)]);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
