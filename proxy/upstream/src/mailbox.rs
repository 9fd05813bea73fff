//! An unbounded many-to-one channel whose receiving task pays one atomic load when it is polled
//! and nothing has arrived, and one lock for everything that has.
//!
//! A client's replies and a backend connection's jobs travel through it. Their tasks poll the
//! channel every time they wake, for whatever woke them, several times per request; tokio's
//! `mpsc` registered the waker (two atomic read-modify-writes) and checked the coop budget on
//! every poll that found nothing, and popped each message by itself: 370 instructions per
//! request at P16 and about 1,100 at P1 (callgrind, issue 27). Here the receiver registers its
//! waker once, only the first message after it emptied the queue wakes it, and it takes every
//! queued message in one swap. A receiver that yields on purpose so that more messages join
//! its next batch says so (`stay_awake`), and is not called back early.
//! Senders are mostly on the receiver's own worker thread, so the lock is uncontended.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
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
    /// The receiving task. It stays registered across wake-ups: only the first send after the
    /// receiver emptied the queue wakes it, so it need not register again every time.
    waker: Option<Waker>,
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Something may be queued, or the receiver said it looks again (`stay_awake`): a send
    /// need not wake it. Cleared under the lock when the receiver empties the queue.
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
    /// The waker the shared state holds, to see without the lock whether it is this task's.
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
        // Under the lock, where the receiver clears the flag: a load and a store, no
        // read-modify-write (`stay_awake` setting it meanwhile costs one needless wake-up).
        if !self.shared.ready.load(Ordering::Relaxed) {
            self.shared.ready.store(true, Ordering::Release);
            // Under the lock, so the receiver cannot change its waker meanwhile; a task's
            // waker only schedules it.
            if let Some(w) = &st.waker {
                w.wake_by_ref();
            }
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
            if let Some(w) = &self.shared.lock().waker {
                w.wake_by_ref();
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
fn take_queued<T>(ready: &AtomicBool, st: &mut State<T>, local: &mut VecDeque<T>) -> bool {
    ready.store(false, Ordering::Release);
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
            if take_queued(&shared.ready, &mut st, local) {
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
        if take_queued(&shared.ready, &mut st, local) {
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

    /// The next message; `None` once it is empty and every sender is gone. A plain
    /// `poll_fn`, not an `async fn`: the future is made anew at every poll of a `select!`.
    pub fn recv(&mut self) -> impl Future<Output = Option<T>> + '_ {
        poll_fn(move |cx| self.poll_recv(cx))
    }

    /// The next message if one is there.
    pub fn try_recv(&mut self) -> Option<T> {
        let Receiver { shared, local, .. } = self;
        if let Some(v) = local.pop_front() {
            return Some(v);
        }
        if !shared.ready.load(Ordering::Acquire) {
            return None;
        }
        let mut st = shared.lock();
        take_queued(&shared.ready, &mut st, local);
        local.pop_front()
    }

    /// Sends are not to wake this task until it next empties the queue (`recv`, `try_recv`):
    /// for a task that yields on purpose so that more messages join the batch it takes next.
    /// A backend connection's writer does (`conn/backend/serve.rs`); woken by the first request
    /// that arrived during its yield, it wrote 27% more often at P1 (0.162 writes per request
    /// instead of 0.128, `perf stat`, issue 27).
    pub fn stay_awake(&self) {
        self.shared.ready.store(true, Ordering::Release);
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

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn mailbox_wakes_once_per_emptied_queue_and_not_while_asked_to_stay_awake() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let wakes = || count.0.load(Ordering::SeqCst);
        let (tx, mut rx) = channel::<u32>();
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(
            wakes(),
            1,
            "the first send wakes the receiver, the second does not"
        );
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        // It yields so that more join its next batch: sends meanwhile do not wake it.
        rx.stay_awake();
        tx.send(3).unwrap();
        tx.send(4).unwrap();
        assert_eq!(wakes(), 1);
        assert_eq!(rx.try_recv(), Some(3));
        assert_eq!(rx.try_recv(), Some(4));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        // Emptied: the next send wakes it again.
        tx.send(5).unwrap();
        assert_eq!(wakes(), 2);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(5)));
        tx.send(6).unwrap();
        assert_eq!(wakes(), 3);
    }
}
