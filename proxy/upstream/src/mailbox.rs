//! An unbounded many-to-one channel whose receiving task pays one atomic load when it is polled
//! and nothing has arrived, and one lock for everything that has.
//!
//! A client's replies and a backend connection's jobs travel through it. Their tasks poll the
//! channel every time they wake, for whatever woke them, several times per request; tokio's
//! `mpsc` registered the waker (two atomic read-modify-writes) and checked the coop budget on
//! every poll that found nothing, and popped each message by itself: 370 instructions per
//! request at P16 and about 1,100 at P1 (callgrind, issue 27). Here the receiver keeps its
//! registration until a sender takes it, and takes every queued message in one swap.
//! Senders are mostly on the receiver's own worker thread, so the lock is uncontended.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

/// A message that could not be delivered: the receiver is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> std::fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the receiver is gone")
    }
}

impl<T: std::fmt::Debug> std::error::Error for SendError<T> {}

struct State<T> {
    queue: VecDeque<T>,
    /// The receiving task, until a send takes it to wake it.
    waker: Option<Waker>,
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Something is queued: the receiver's check without the lock.
    ready: AtomicBool,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
    /// Senders waiting in `closed()`.
    gone: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half; cloned freely.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Taken from the shared queue, not yet returned.
    local: VecDeque<T>,
    /// Whether the shared state still holds this task's waker.
    registered: Option<Waker>,
}

/// A new channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waker: None,
            receiver_gone: false,
        }),
        ready: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
        gone: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            local: VecDeque::new(),
            registered: None,
        },
    )
}

impl<T> Sender<T> {
    /// Queues `value`, or hands it back if the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut st = self.shared.lock();
        if st.receiver_gone {
            return Err(SendError(value));
        }
        st.queue.push_back(value);
        let waker = st.waker.take();
        self.shared.ready.store(true, Ordering::Release);
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.receiver_gone.load(Ordering::Acquire)
    }

    /// Resolves once the receiver is gone.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.gone.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: a waiting receiver must see the end.
            let waker = self.shared.lock().waker.take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// Moves everything queued into `local`; true if anything was.
fn take_queued<T>(
    ready: &AtomicBool,
    st: &mut State<T>,
    local: &mut VecDeque<T>,
    registered: &mut Option<Waker>,
) -> bool {
    ready.store(false, Ordering::Relaxed);
    // A send that queued took the waker; keep registering only if it is still there.
    if st.waker.is_none() {
        *registered = None;
    }
    if st.queue.is_empty() {
        return false;
    }
    if local.is_empty() {
        // Both keep their capacity: no allocation in the steady state.
        std::mem::swap(local, &mut st.queue);
    } else {
        local.extend(st.queue.drain(..));
    }
    true
}

impl<T> Receiver<T> {
    /// The next message, `None` once it is empty and every sender is gone.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Receiver {
            shared,
            local,
            registered,
        } = self;
        if let Some(v) = local.pop_front() {
            return Poll::Ready(Some(v));
        }
        if shared.ready.load(Ordering::Acquire) {
            let mut st = shared.lock();
            if take_queued(&shared.ready, &mut st, local, registered) {
                return Poll::Ready(local.pop_front());
            }
        }
        if registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
            && shared.senders.load(Ordering::Acquire) > 0
        {
            return Poll::Pending;
        }
        let mut st = shared.lock();
        // Looked at again under the lock: a send since the check above would not wake us.
        if take_queued(&shared.ready, &mut st, local, registered) {
            return Poll::Ready(local.pop_front());
        }
        if shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        let w = cx.waker().clone();
        st.waker = Some(w.clone());
        *registered = Some(w);
        Poll::Pending
    }

    /// The next message; `None` once it is empty and every sender is gone.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message if one is there.
    pub fn try_recv(&mut self) -> Option<T> {
        let Receiver {
            shared,
            local,
            registered,
        } = self;
        if let Some(v) = local.pop_front() {
            return Some(v);
        }
        if !shared.ready.load(Ordering::Acquire) {
            return None;
        }
        let mut st = shared.lock();
        take_queued(&shared.ready, &mut st, local, registered);
        local.pop_front()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Messages still queued are dropped here, outside the lock (a reply's sender may be
        // dropped with it, and its drop may take this lock).
        let queued = {
            let mut st = self.shared.lock();
            st.receiver_gone = true;
            st.waker = None;
            std::mem::take(&mut st.queue)
        };
        self.shared.receiver_gone.store(true, Ordering::Release);
        self.shared.gone.notify_waiters();
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn mailbox_delivers_in_order_and_ends_when_senders_go() {
        let (tx, mut rx) = channel();
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        assert_eq!(rx.try_recv(), Some(1));
        tx.send(3).unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.try_recv(), None);
        assert!(rx.recv().now_or_never().is_none(), "senders are alive");
        drop(tx);
        drop(tx2);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn mailbox_wakes_a_waiting_receiver_from_another_thread() {
        let (tx, mut rx) = channel::<u32>();
        let waiting = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        tokio::task::yield_now().await;
        let sent = std::thread::spawn(move || {
            for i in 0..10_000 {
                tx.send(i).unwrap();
            }
        });
        sent.join().unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the receiver saw the end")
            .unwrap();
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn mailbox_send_after_the_receiver_is_gone_fails_and_closed_resolves() {
        let (tx, rx) = channel::<u32>();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!tx.is_closed());
        assert!(!waiting.is_finished());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(7), Err(SendError(7)));
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("closed() resolved")
            .unwrap();
    }

    #[tokio::test]
    async fn mailbox_receiver_drop_drops_what_is_queued() {
        let (tx, rx) = channel::<Arc<()>>();
        let v = Arc::new(());
        tx.send(v.clone()).unwrap();
        assert_eq!(Arc::strong_count(&v), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&v), 1);
    }
}
