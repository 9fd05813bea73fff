//! One live connection of a backend task: the writer (batches jobs into one write, closing a
//! batch of writes to confirm with WAIT) and the reader (matches reply frames to requests in
//! FIFO order, delivers pub/sub messages, times out a silent node).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hive_common::pubsub::is_message;
use hive_common::resp::ReplyScanner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tracing::debug;

use super::ack::settle;
use super::inflight::{lock, push_job, wait_entry, Gate, InFlight, Queue};
use super::Task;
use crate::conn::demote::{demoted, DEMOTED_GRACE};
use crate::conn::Inbox;
use crate::conn::Job;
use crate::error::ProxyError;
use crate::reply_error::qualify;
use crate::stats::UpstreamStats;
use crate::stop::Stop;
use crate::stream::BoxStream;

impl Task {
    /// Runs one connection until it fails (`Some(reason)`) or every sender is gone (`None`).
    pub(super) async fn serve(
        &mut self,
        stream: BoxStream,
        first: Job,
        queue: &Queue,
    ) -> Option<String> {
        let (mut rd, mut wr) = stream.into_halves();
        let timeout = self.opts.command_timeout;
        let rx = &mut self.rx;
        // A job held across the yield below lives in `carry`, not in the writer future: if the
        // reader fails meanwhile, dropping the writer would otherwise drop the job and leave
        // its client without a reply. The next connection starts with it (it was never sent).
        let held = &mut self.carry;
        *held = Some(first);
        let demote_rx = &mut self.demoted;
        // Atomics only because the task must be `Send`; reader and writer share one task.
        let draining = AtomicBool::new(false);
        let ack = self.opts.ack.clone();
        let stats = &*self.stats;
        // WAITs written and not answered yet, and the wake-up when one is.
        let waits = AtomicUsize::new(0);
        let settled = Notify::new();
        let writer = async {
            let mut wbuf = BytesMut::with_capacity(16 * 1024);
            loop {
                if held.is_none() {
                    tokio::select! {
                        biased;
                        j = rx.recv() => match j {
                            Some(j) => *held = Some(j),
                            None => return None,
                        },
                        _ = demoted(demote_rx) => {
                            if let Some(why) = grace(queue).await {
                                return Some(why);
                            }
                            continue;
                        }
                    }
                    // Let the worker poll its sockets once more before writing, so the
                    // requests that other clients have already sent join this write. At P1
                    // this halved the backend writes and raised GET from 57k to 75k req/s
                    // (benches/README.md); at -c 1 it costs no measurable latency. The jobs
                    // sent meanwhile must not wake this task before that poll.
                    rx.stay_awake();
                    tokio::task::yield_now().await;
                }
                // The node runs nothing more on this connection while a WAIT of it waits, so
                // what arrives meanwhile is held here and goes out together when the WAIT
                // answers, confirmed by one WAIT: fewer, fuller batches than one WAIT per
                // write that arrived on its own (benches/README.md, "Durable writes").
                while waits.load(Ordering::Relaxed) > 0 {
                    tokio::select! {
                        biased;
                        _ = settled.notified() => {}
                        _ = demoted(demote_rx) => {
                            if let Some(why) = grace(queue).await {
                                return Some(why);
                            }
                        }
                    }
                }
                let Some(job) = held.take() else { continue };
                let now = Instant::now();
                let acking = ack.is_some();
                // Entries go straight into the queue, before the write, so no reply can arrive
                // ahead of its entry; a batch moved in afterwards cost a copy of each entry
                // (~35 instructions per request at P16, callgrind, issue 27). The reader shares
                // this task, so the lock is never contended.
                let (large, wait, written) = {
                    let mut q = lock(queue);
                    let start = q.len();
                    let mut large = push_job(&mut wbuf, &mut q, job, now, acking);
                    while large.is_none() && q.len() - start < 1024 {
                        match rx.try_recv() {
                            Some(j) => large = push_job(&mut wbuf, &mut q, j, now, acking),
                            None => break,
                        }
                    }
                    // One WAIT after the batch confirms every write in it (ack.rs).
                    let wait = match &ack {
                        Some(a) if q.range(start..).any(|f| f.gate == Gate::Ack) => {
                            let entry = wait_entry(&q[start]);
                            q.push_back(entry);
                            waits.fetch_add(1, Ordering::Relaxed);
                            UpstreamStats::add(&stats.write_ack_waits, 1);
                            Some(a.wait.clone())
                        }
                        _ => None,
                    };
                    (large, wait, q.len() - start)
                };
                if let (Some(w), None) = (&wait, &large) {
                    wbuf.extend_from_slice(w);
                }
                // Only a large write can take long enough to matter to the timeout (a small one
                // goes into the socket buffer at once), so only one pays for a second clock
                // read (callgrind, issue 27).
                let big = large.is_some() || wbuf.len() >= 64 * 1024;
                if let Err(e) = wr.write_all(&wbuf).await {
                    return Some(format!("write failed: {e}"));
                }
                // A large request is written from the client's buffer, not copied.
                if let Some(data) = large {
                    // In slices, letting the worker's other tasks run between them.
                    for part in data.chunks(crate::BURST) {
                        if let Err(e) = wr.write_all(part).await {
                            return Some(format!("write failed: {e}"));
                        }
                        tokio::task::yield_now().await;
                    }
                    if let Some(w) = wait {
                        if let Err(e) = wr.write_all(&w).await {
                            return Some(format!("write failed: {e}"));
                        }
                    }
                }
                // The timeout counts from the write; only a slow write is worth the update.
                let after = if big { Instant::now() } else { now };
                if after - now > Duration::from_millis(1) {
                    for f in lock(queue).iter_mut().rev().take(written) {
                        f.sent = after;
                    }
                }
                wbuf.clear();
                if wbuf.capacity() > 1 << 20 {
                    wbuf = BytesMut::with_capacity(16 * 1024);
                }
            }
        };
        let push = self.opts.push.clone();
        let addr = &*self.addr;
        let hand_off = self.opts.hand_off_at;
        let self_handoff = &*self.handoff;
        let need = self.opts.ack.as_ref().map_or(0, |a| a.need);
        let reader = async {
            let mut rbuf = BytesMut::with_capacity(16 * 1024);
            let mut scanner = ReplyScanner::default();
            let mut frames: Vec<Bytes> = Vec::with_capacity(64);
            let mut done: Vec<(InFlight, Bytes)> = Vec::with_capacity(64);
            let mut refused: Vec<(InFlight, ProxyError)> = Vec::new();
            let idle = timeout.unwrap_or(Duration::from_secs(3600));
            let mut burst = 0usize;
            // One timer for the connection's life, re-armed when it fires: a timeout per read
            // registered and removed a timer-wheel entry for every read. It is re-armed at the
            // oldest request's deadline (written at `sent`), so the timeout is exact.
            let check = tokio::time::sleep(idle);
            tokio::pin!(check);
            // The timer is polled only to register the task with it (after it is armed or
            // reset) and once it fired: the reader wakes up to 3 times per request, and
            // polling the timer each time cost ~300 instructions per request at P1
            // (callgrind, issue 27). The task's waker never changes, so nothing is missed.
            let mut armed = false;
            // When the node last sent bytes that left a request waiting: a request is overdue
            // only when the node has sent nothing for the whole timeout, so a connection
            // streaming a large reply (or answering a deep pipeline) is never mistaken for a
            // dead one. A read that answers everything queued needs no reading of the clock
            // (every later request is sent after it): at P1 that saved a clock read per
            // request (callgrind, issue 27).
            let mut alive_at = Instant::now();
            loop {
                if rbuf.capacity() - rbuf.len() < 4096 {
                    rbuf.reserve(16 * 1024);
                }
                // One burst at most per read (as the client side reads, and why).
                let mut window = (&mut rbuf).limit(crate::BURST);
                let n = tokio::select! {
                    biased;
                    r = rd.read_buf(&mut window) => match r {
                        Ok(0) => return "closed by the server".to_string(),
                        Ok(n) => n,
                        Err(e) => return format!("read failed: {e}"),
                    },
                    _ = std::future::poll_fn(|cx| {
                        if armed && !check.is_elapsed() {
                            return std::task::Poll::Pending;
                        }
                        let r = std::future::Future::poll(check.as_mut(), cx);
                        armed = r.is_pending();
                        r
                    }) => {
                        let now = Instant::now();
                        let front = lock(queue).front().map(|f| f.sent.max(alive_at));
                        let next = match (timeout, front) {
                            (Some(t), Some(sent)) if now.saturating_duration_since(sent) >= t => {
                                return format!("no reply within {} ms", t.as_millis());
                            }
                            (Some(t), Some(sent)) => sent + t,
                            _ => now + idle,
                        };
                        check.as_mut().reset(next.into());
                        armed = false;
                        continue;
                    }
                };
                debug_assert!(n > 0);
                burst += n;
                if burst >= crate::BURST {
                    // As the client task does: a large reply must not keep the worker.
                    burst = 0;
                    tokio::task::yield_now().await;
                }
                // Small frames are copied out of a buffer a large reply grew, so that they do
                // not keep all of it alive while they wait for their client.
                let grown = rbuf.capacity() > 1 << 20;
                loop {
                    match scanner.scan(&rbuf) {
                        Ok(Some(len)) if grown && len < 16 * 1024 => {
                            frames.push(Bytes::copy_from_slice(&rbuf[..len]));
                            rbuf.advance(len);
                        }
                        Ok(Some(len)) => frames.push(rbuf.split_to(len).freeze()),
                        Ok(None) => break,
                        Err(e) => return format!("bad reply: {e}"),
                    }
                }
                if rbuf.is_empty() && rbuf.capacity() > 1 << 20 {
                    rbuf = BytesMut::with_capacity(16 * 1024);
                }
                if let Some(at) = hand_off {
                    if rbuf.len() >= at && !self_handoff.load(Ordering::Relaxed) {
                        self_handoff.store(true, Ordering::Relaxed);
                        UpstreamStats::add(&stats.large_reply_handoffs, 1);
                        debug!(backend = %addr, bytes = rbuf.len(), "large reply: new requests go to another connection");
                    }
                }
                if frames.is_empty() {
                    if timeout.is_some() {
                        alive_at = Instant::now();
                    }
                    continue;
                }
                let mut q = lock(queue);
                let mut stray = false;
                for mut frame in frames.drain(..) {
                    if frame.first() == Some(&b'-') {
                        frame = qualify(frame, addr);
                    }
                    if let Some(p) = &push {
                        if is_message(&frame) {
                            if !p.passes(&frame) {
                                continue;
                            }
                            let total = p.queued.fetch_add(frame.len(), Ordering::Relaxed);
                            if total + frame.len() > p.limit {
                                p.kill.raise(Stop::Kill);
                            }
                            let _ = p.tx.send(Inbox::Push { frame });
                            continue;
                        }
                    }
                    let Some(front) = q.front_mut() else {
                        stray = true;
                        break;
                    };
                    if front.left > 1 {
                        front.left -= 1;
                        front
                            .acc
                            .get_or_insert_with(BytesMut::new)
                            .extend_from_slice(&frame);
                        continue;
                    }
                    let Some(mut f) = q.pop_front() else { break };
                    let frame = match f.acc.take() {
                        Some(mut a) => {
                            a.extend_from_slice(&frame);
                            a.freeze()
                        }
                        None => frame,
                    };
                    match f.gate {
                        Gate::Open => done.push((f, frame)),
                        // A write error has nothing to confirm.
                        Gate::Ack if frame.first() == Some(&b'-') => done.push((f, frame)),
                        Gate::Ack => q.held.push((f, frame)),
                        Gate::Wait => {
                            let held = &mut q.held;
                            let before = refused.len();
                            if settle(held, &frame, need, addr, &mut done, &mut refused) {
                                let n = (refused.len() - before) as u64;
                                UpstreamStats::add(&stats.write_ack_refused, n);
                            }
                            waits.fetch_sub(1, Ordering::Relaxed);
                            settled.notify_one();
                        }
                    }
                }
                if timeout.is_some() && !q.is_empty() {
                    alive_at = Instant::now();
                }
                drop(q);
                if stray {
                    return "reply without a request (stream out of step)".to_string();
                }
                for (f, frame) in done.drain(..) {
                    if !f.skip {
                        let _ = f.reply.send(Inbox::Reply { tag: f.tag, frame });
                    }
                }
                for (f, err) in refused.drain(..) {
                    let _ = f.reply.send(Inbox::Failed { tag: f.tag, err });
                }
                if draining.load(Ordering::Relaxed) && lock(queue).is_empty() {
                    return String::new();
                }
            }
        };
        tokio::pin!(writer, reader);
        tokio::select! {
            r = &mut writer => match r {
                // Every handle is gone. A handed-off shared connection still answers what
                // it carries (bounded by the command timeout); a client's own closes now.
                None if hand_off.is_some() && !lock(queue).is_empty() => {
                    draining.store(true, Ordering::Relaxed);
                    let why = (&mut reader).await;
                    (!why.is_empty()).then_some(why)
                }
                r => r,
            },
            r = &mut reader => Some(r),
        }
    }
}

/// After the node was demoted: the reason to give up the connection once a request written
/// before the demotion has gone `DEMOTED_GRACE` without an answer (at once if it already has:
/// a frozen master has been silent for the whole failover), `None` once they are answered.
async fn grace(queue: &Queue) -> Option<String> {
    let at = Instant::now();
    loop {
        let oldest = lock(queue).front().map(|f| f.sent)?;
        if oldest > at {
            return None;
        }
        let until = oldest + DEMOTED_GRACE;
        if Instant::now() >= until {
            return Some(format!(
                "no reply within {} ms, and the node lost its master role",
                DEMOTED_GRACE.as_millis()
            ));
        }
        tokio::time::sleep_until(until.into()).await;
    }
}
