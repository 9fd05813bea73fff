//! Runs a `BlockPlan`: first each key in the client's order without blocking (all a
//! non-blocking pop such as LMOVE or LMPOP does); then the blocking command on every group of
//! keys at once, each on a connection of its own. The first
//! group to pop wins; the others are released with `CLIENT UNBLOCK` (Hive asked each
//! connection's id first) and whatever they popped meanwhile is pushed back where it came
//! from. A group whose node fails over blocks again on the new master.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hive_common::resp::{parse_i64, Request};
use hive_common::Slot;
use hive_upstream::conn::backend::Backend;
use hive_upstream::mailbox;
use hive_upstream::reply_error::ReplyError;
use hive_upstream::route::pool;
use hive_upstream::route::router::Router;
use hive_upstream::{Inbox, Job, ReplyTx, Tag};
use tokio::time::Instant;

use super::plan::{is_nil, BlockPlan, Kind};
pub use super::release::Release;
use super::release::UNBLOCKED;
use crate::error::{ProxyError, UpstreamReason};

/// Non-blocking rounds before blocking anyway: each lost its element to another client.
const TRIES_NOW: usize = 3;

/// How soon a refused `CLIENT UNBLOCK` is sent again.
const UNBLOCK_AGAIN: Duration = Duration::from_millis(50);

/// The client's reply to `plan`. `gone` closes when the client disconnects: everything blocked
/// is then released and nothing popped is lost. `by_slot`: group keys by slot (a cluster,
/// whose nodes refuse keys of several slots) rather than by shard.
pub async fn run(
    router: &Router,
    plan: &BlockPlan,
    gone: &ReplyTx,
    by_slot: bool,
    release: &Release,
) -> Bytes {
    match serve(router, plan, gone, by_slot, release).await {
        Ok(frame) => frame,
        Err(e) => e.frame(),
    }
}

async fn serve(
    router: &Router,
    plan: &BlockPlan,
    gone: &ReplyTx,
    by_slot: bool,
    release: &Release,
) -> Result<Bytes, ProxyError> {
    let deadline = plan
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    for _ in 0..TRIES_NOW {
        match now(router, plan).await? {
            Now::Served(frame) => return finish(router, plan, frame).await,
            Now::Raced => continue,
            Now::Empty => break,
        }
    }
    if !plan.block {
        // LMOVE, LMPOP...: nothing to pop now is the answer.
        return Ok(plan.nil(router.proto == hive_upstream::Proto::Resp3));
    }
    let frame = Shards::start(router, plan, deadline, by_slot)
        .wait(gone, release)
        .await;
    finish(router, plan, frame).await
}

enum Now {
    /// The reply: an element of the first key in order that had one, or that key's error.
    Served(Bytes),
    /// A key had an element, but another client popped it first.
    Raced,
    Empty,
}

/// One round without blocking: every key's length at once, then a pop of the first one that
/// has something (or the first error, such as WRONGTYPE, as Redis checks keys in order).
async fn now(router: &Router, plan: &BlockPlan) -> Result<Now, ProxyError> {
    let reqs = plan
        .keys
        .iter()
        .map(|k| (Slot::for_key(k), plan.length(k)))
        .collect();
    let lens = router.scatter(reqs).await;
    for (key, len) in plan.keys.iter().zip(lens) {
        let len = len?;
        if len.first() == Some(&b'-') {
            return Ok(Now::Served(len));
        }
        if int(&len).unwrap_or(0) <= 0 {
            continue;
        }
        let out = router
            .call(Slot::for_key(key), vec![plan.pop_now(key)])
            .await?;
        let frame = &out[0];
        if frame.first() == Some(&b'-') {
            return Ok(Now::Served(frame.clone()));
        }
        return Ok(match plan.served_now(key, frame) {
            Some(reply) => Now::Served(reply),
            None => Now::Raced,
        });
    }
    Ok(Now::Empty)
}

/// BLMOVE/BRPOPLPUSH: the popped element goes onto the destination (on its own shard), and
/// the reply is the element. Should the push fail (the destination is not a list), the element
/// goes back to the source and the client gets the push's error.
async fn finish(router: &Router, plan: &BlockPlan, frame: Bytes) -> Result<Bytes, ProxyError> {
    let Kind::Move { dst, to_left, .. } = &plan.kind else {
        return Ok(frame);
    };
    if is_nil(&frame) || frame.first() == Some(&b'-') {
        return Ok(frame);
    }
    let element = plan.element(&frame).ok_or_else(bad_reply)?;
    let cmd: &[u8] = if *to_left { b"LPUSH" } else { b"RPUSH" };
    let pushed = router
        .call(
            Slot::for_key(dst),
            vec![Request::from_args(&[cmd, dst, &element])],
        )
        .await?;
    if pushed[0].first() == Some(&b'-') {
        put_back(router, plan, &frame).await;
        return Ok(pushed[0].clone());
    }
    let mut out = bytes::BytesMut::with_capacity(element.len() + 16);
    hive_common::resp::write_bulk(&mut out, &element);
    Ok(out.freeze())
}

/// Pushes back what a blocking reply took; logged, never the client's error.
async fn put_back(router: &Router, plan: &BlockPlan, frame: &[u8]) {
    let Some((key, req)) = plan.push_back(frame) else {
        return;
    };
    match router.call(Slot::for_key(&key), vec![req]).await {
        Ok(r) if r[0].first() != Some(&b'-') => {}
        Ok(r) => tracing::warn!(reply = %String::from_utf8_lossy(&r[0]).trim_end(),
            "could not push back an element popped on a second shard"),
        Err(e) => {
            tracing::warn!(error = %e, "could not push back an element popped on a second shard")
        }
    }
}

fn int(frame: &[u8]) -> Option<i64> {
    parse_i64(frame.strip_prefix(b":")?.strip_suffix(b"\r\n")?)
}

fn bad_reply() -> ProxyError {
    ProxyError::upstream(
        UpstreamReason::BadReply,
        "Hive: a node sent an unexpected reply",
    )
}

/// One group of keys blocked on one node.
struct Group {
    keys: Vec<Bytes>,
    slot: Slot,
    conn: Option<Arc<Backend>>,
    /// The connection's `CLIENT ID`, once it answered.
    id: Option<i64>,
    /// Its blocking command is out and unanswered.
    open: bool,
    /// `CLIENT UNBLOCK` was sent for this attempt and the node took it.
    released: bool,
    /// When to send `CLIENT UNBLOCK` again: the node refused it (busy running a script,
    /// loading) or could not be reached.
    unblock_at: Option<Instant>,
    /// When to block again after a failover, and since when it has been failing.
    again_at: Option<Instant>,
    failing_since: Option<Instant>,
    attempt: u32,
}

/// Every group blocked at once, and what the client gets.
struct Shards<'a> {
    router: &'a Router,
    plan: &'a BlockPlan,
    deadline: Option<Instant>,
    groups: Vec<Group>,
    tx: ReplyTx,
    rx: mailbox::Receiver<Inbox>,
    /// The client's reply, once decided: the winning element, or an error.
    reply: Option<Bytes>,
    /// A timed-out group's null, the reply when every group timed out.
    nil: Option<Bytes>,
    /// Release everything still blocked: a winner was found or the client left.
    stopping: bool,
    client_gone: bool,
}

impl<'a> Shards<'a> {
    fn start(
        router: &'a Router,
        plan: &'a BlockPlan,
        deadline: Option<Instant>,
        by_slot: bool,
    ) -> Shards<'a> {
        let topo = router.plane.topology.load();
        let keys = plan.groups(|s| {
            if by_slot {
                usize::from(s.get())
            } else {
                topo.map.shard_of(s).unwrap_or(usize::MAX)
            }
        });
        drop(topo);
        let (tx, rx) = mailbox::channel();
        let groups = keys
            .into_iter()
            .map(|keys| Group {
                slot: Slot::for_key(&keys[0]),
                keys,
                conn: None,
                id: None,
                open: false,
                released: false,
                unblock_at: None,
                again_at: None,
                failing_since: None,
                attempt: 0,
            })
            .collect();
        let mut b = Shards {
            router,
            plan,
            deadline,
            groups,
            tx,
            rx,
            reply: None,
            nil: None,
            stopping: false,
            client_gone: false,
        };
        for g in 0..b.groups.len() {
            b.block(g);
        }
        b
    }

    /// Sends group `g`'s `CLIENT ID` and blocking command on a new connection to the master
    /// of its slot, with what is left of the timeout.
    fn block(&mut self, g: usize) {
        let timeout = match self.deadline {
            None => "0".to_string(),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Timed out while failing over: as if the node had timed out.
                    self.nil.get_or_insert_with(|| null(self.router));
                    return;
                }
                format!("{:.3}", left.as_secs_f64().max(0.001))
            }
        };
        let plane = &self.router.plane;
        let topo = plane.topology.load();
        let group = &mut self.groups[g];
        group.again_at = None;
        group.id = None;
        group.released = false;
        let addr = topo
            .map
            .shard_of(group.slot)
            .filter(|&i| topo.has_master(i))
            .map(|i| topo.map.shards()[i].master.clone());
        let Some(addr) = addr else {
            let slot = group.slot;
            drop(topo);
            plane.refresh.notify_one();
            return self.failed(g, no_master(slot));
        };
        drop(topo);
        let conn = plane.connector.dedicated(&addr, self.router.proto, None);
        let seq = g as u64;
        conn.send(Job {
            data: Request::from_args(&["CLIENT", "ID"]).raw().clone(),
            prefix: None,
            frames: 1,
            tag: Tag { seq, part: 0 },
            reply: self.tx.clone(),
            ack: false,
        });
        let block = self.plan.block(&group.keys, timeout.as_bytes());
        // A pop is a write: with write_ack = "replica" it is confirmed before it counts.
        let ack = self.router.acks(std::slice::from_ref(&block));
        conn.send(Job {
            data: block.raw().clone(),
            prefix: None,
            frames: 1,
            tag: Tag { seq, part: 1 },
            reply: self.tx.clone(),
            ack,
        });
        group.conn = Some(conn);
        group.open = true;
        group.attempt += 1;
    }

    /// Group `g` could not block or was released by its node: it blocks again on the slot's
    /// master after a backoff, unless the failover outlasts `backend.failover_hold_ms`.
    fn failed(&mut self, g: usize, err: Bytes) {
        let cfg = &self.router.plane.config;
        let now = Instant::now();
        let group = &mut self.groups[g];
        group.open = false;
        group.conn = None;
        group.unblock_at = None;
        if self.stopping {
            return;
        }
        let since = *group.failing_since.get_or_insert(now);
        if now - since >= Duration::from_millis(cfg.failover_hold_ms) {
            self.reply = Some(err);
            self.stopping = true;
            return;
        }
        let backoff = (cfg.retry_backoff_ms << group.attempt.min(5)).min(cfg.retry_backoff_max_ms);
        group.again_at = Some(now + Duration::from_millis(backoff));
    }

    /// Waits until every group answered or was released; the client's reply.
    async fn wait(mut self, gone: &ReplyTx, release: &Release) -> Bytes {
        let mut unblocked = false;
        let mut changes = self.router.plane.topology.changes();
        loop {
            if self.stopping {
                self.release().await;
            }
            if self.groups.iter().all(|g| !g.open && g.again_at.is_none()) {
                break;
            }
            let again = self
                .groups
                .iter()
                .filter_map(|g| g.again_at.or(g.unblock_at))
                .min();
            tokio::select! {
                Some(msg) = self.rx.recv() => self.on_reply(msg).await,
                _ = gone.closed(), if !self.client_gone => {
                    self.client_gone = true;
                    self.stopping = true;
                }
                _ = release.notify.notified(), if !unblocked => {
                    unblocked = true;
                    self.stopping = true;
                }
                _ = changes.changed(), if again.is_some() => self.retry_due(true),
                _ = tokio::time::sleep_until(again.unwrap_or_else(Instant::now)), if again.is_some() => {
                    // Blocks again what is due; a due CLIENT UNBLOCK goes at the loop's top.
                    self.retry_due(false)
                }
            }
        }
        if unblocked && self.reply.is_none() && release.error() {
            return Bytes::from_static(UNBLOCKED);
        }
        self.reply.or(self.nil).unwrap_or_else(|| null(self.router))
    }

    /// Blocks again the groups whose backoff is over (all of them on a topology change).
    fn retry_due(&mut self, all: bool) {
        let now = Instant::now();
        for g in 0..self.groups.len() {
            if self.groups[g].again_at.is_some_and(|t| all || t <= now) {
                self.block(g);
            }
        }
    }

    async fn on_reply(&mut self, msg: Inbox) {
        let (tag, frame) = match msg {
            Inbox::Reply { tag, frame } => (tag, Ok(frame)),
            Inbox::Failed { tag, err } => (tag, Err(err)),
            _ => return,
        };
        let g = tag.seq as usize;
        if g >= self.groups.len() {
            return;
        }
        if tag.part == 0 {
            if let Ok(f) = &frame {
                self.groups[g].id = int(f);
            }
            return;
        }
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return self.failed(g, e.frame()),
        };
        self.groups[g].open = false;
        self.groups[g].conn = None;
        self.groups[g].unblock_at = None;
        if is_nil(&frame) {
            self.nil.get_or_insert(frame);
            return;
        }
        if frame.first() == Some(&b'-') {
            if self.stopping {
                return;
            }
            if ReplyError::parse(&frame).is_some_and(|e| e.reblock()) {
                self.router.plane.refresh.notify_one();
                return self.failed(g, frame);
            }
            // WRONGTYPE and the like: Redis's own answer.
            self.reply = Some(frame);
            self.stopping = true;
            return;
        }
        self.groups[g].failing_since = None;
        if self.reply.is_none() && !self.client_gone {
            self.reply = Some(frame);
            self.stopping = true;
        } else {
            // Popped on a second shard before its release: back where it came from.
            put_back(self.router, self.plan, &frame).await;
        }
    }

    /// Releases every group still blocked (those whose id is known) and stops retries.
    async fn release(&mut self) {
        let router = self.router;
        let now = Instant::now();
        let mut unblocks = Vec::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            g.again_at = None;
            let (Some(id), Some(conn), false) = (g.id, &g.conn, g.released) else {
                continue;
            };
            if g.open && g.unblock_at.is_none_or(|t| t <= now) {
                g.released = true;
                g.unblock_at = None;
                let via = pool::backend(&router.plane, &conn.addr, router.proto, pool::Lane::Plain);
                let req = Request::from_args(&["CLIENT", "UNBLOCK", &id.to_string()]);
                unblocks.push(async move { (i, router.call_on(&via, vec![req]).await) });
            }
        }
        // The blocked connections answer (a null, or an element to push back) once released.
        for (i, r) in futures_util::future::join_all(unblocks).await {
            let refused = match r {
                Ok(f) if f[0].first() == Some(&b':') => continue,
                Ok(f) => String::from_utf8_lossy(&f[0]).trim_end().to_string(),
                Err(e) => e.to_string(),
            };
            tracing::debug!(reply = %refused, "CLIENT UNBLOCK refused; trying again");
            let g = &mut self.groups[i];
            g.released = false;
            g.unblock_at = Some(Instant::now() + UNBLOCK_AGAIN);
        }
    }
}

/// The null a timed-out blocking pop answers, in the client's protocol.
fn null(router: &Router) -> Bytes {
    match router.proto {
        hive_upstream::Proto::Resp3 => Bytes::from_static(b"_\r\n"),
        hive_upstream::Proto::Resp2 => Bytes::from_static(b"*-1\r\n"),
    }
}

fn no_master(slot: Slot) -> Bytes {
    ProxyError::upstream(
        UpstreamReason::NoMaster,
        format!("Hive: no writable master for slot {}", slot.get()),
    )
    .frame()
}
