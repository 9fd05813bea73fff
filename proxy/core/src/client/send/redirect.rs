//! What comes back from backends: replies, MOVED/ASK redirects followed to the named node,
//! TRYAGAIN/CLUSTERDOWN/READONLY/LOADING and unreachable masters waited out (bounded by
//! `failover_hold_ms`), and NOSCRIPT healed by reloading the script.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::holds::Holds;
use crate::client::modes::subscriber::INTERNAL;
use crate::client::modes::transaction::exec_aborted_by;
use crate::client::pending::Pending;
use crate::client::Conn;
use crate::command::route::Route;
use crate::error::{ProxyError, UpstreamReason};
use crate::metrics::Stats;
use hive_upstream::reply_error::{Redirect, ReplyError};
use hive_upstream::{route::pool, Inbox, Tag};

impl Conn {
    pub(crate) fn on_inbox(&mut self, msg: Inbox) {
        match msg {
            Inbox::Reply { tag, frame } => self.on_reply(tag, frame),
            Inbox::Failed { tag, .. } if tag.seq == INTERNAL => self.schedule_resubscribe(),
            // A read: safe to send again, elsewhere.
            Inbox::Failed { tag, .. } if self.replica_failed(tag) => {}
            // Never sent: safe to wait for the shard to come back.
            Inbox::Failed { tag, err } if err.retry() => self.hold(tag, err.frame()),
            Inbox::Failed { tag, err } => self.complete(tag, err.frame()),
            Inbox::Push { frame } => {
                let mut p = Pending::done(frame);
                // Delivered under CLIENT REPLY OFF too: Redis 7.0 pushes pub/sub messages past
                // it (CLIENT_PUSHING).
                p.push = true;
                self.pending.push_back(p);
            }
            Inbox::Lost => self.schedule_resubscribe(),
            Inbox::Resubscribe => self.resubscribe(),
            Inbox::Done { seq, frame } => self.on_done(seq, frame),
            Inbox::Topology => {
                self.on_topology();
                self.release_moved();
            }
            Inbox::Invalidate { frame } => self.push_done(frame),
            Inbox::Joined { seq, frame } => self.on_joined(seq, frame),
        }
    }

    fn on_reply(&mut self, tag: Tag, frame: Bytes) {
        if let Some(e) = ReplyError::parse(&frame) {
            if e.replica_unavailable() && self.replica_failed(tag) {
                return;
            }
            match e {
                ReplyError::NoScript if self.heal_script(tag) => return,
                ReplyError::Unblocked if self.resend_moved(tag) => return,
                e if e.acted_on() => return self.on_reply_error(tag, e, frame),
                _ => {}
            }
        } else if frame.len() > 5 && frame.starts_with(b"+OK\r\n") {
            // MULTI's +OK then more: a transaction unit (the only multi-frame reply starting
            // so). One aborted by a moving slot runs again, as a single command would.
            if let Some(e) = exec_aborted_by(&frame).and_then(|f| ReplyError::parse(&f)) {
                if self.unit(tag).is_some_and(|u| u.wire().is_some()) {
                    return self.on_reply_error(tag, e, frame);
                }
            }
        }
        self.complete(tag, frame);
    }

    /// A read a replica could not serve: the replica is set aside on this thread and the read
    /// goes to another fresh replica or the master. False when the unit did not go to one.
    fn replica_failed(&mut self, tag: Tag) -> bool {
        let Some(u) = self.unit(tag) else {
            return false;
        };
        let Some(addr) = u.replica.take() else {
            return false;
        };
        pool::set_aside(&addr);
        u.route = u.home.clone();
        self.send(tag.seq, tag.part as usize);
        true
    }

    /// Reloads a script the node lost and runs the EVALSHA again (once).
    fn heal_script(&mut self, tag: Tag) -> bool {
        let shared = self.shared.clone();
        let Some(u) = self.unit(tag) else {
            return false;
        };
        let name = u.req.arg(0);
        let evalsha =
            name.eq_ignore_ascii_case(b"evalsha") || name.eq_ignore_ascii_case(b"evalsha_ro");
        if !evalsha || u.prefix().is_some() || u.req.argc() < 2 {
            return false;
        }
        let Some(load) = shared.scripts.load_request(u.req.arg(1)) else {
            return false;
        };
        u.extra().prefix = Some(load);
        self.send(tag.seq, tag.part as usize);
        true
    }

    /// Follows a redirect, or waits out a retryable error; `frame` is the client's answer
    /// once the limits are used up.
    fn on_reply_error(&mut self, tag: Tag, e: ReplyError, frame: Bytes) {
        let shared = self.shared.clone();
        let Some(unit) = self.unit(tag) else { return };
        if unit.pinned().is_some() {
            return self.complete(tag, frame);
        }
        let redirect = match e {
            ReplyError::Redirect(Redirect::Ask { .. }) if unit.no_ask => {
                Stats::add(&shared.stats.upstream.tryagain, 1);
                return self.hold(tag, frame);
            }
            ReplyError::Redirect(r) => r,
            ReplyError::TryAgain => {
                Stats::add(&shared.stats.upstream.tryagain, 1);
                return self.hold(tag, frame);
            }
            ReplyError::Loading => return self.hold(tag, frame),
            ReplyError::ClusterDown | ReplyError::ReadOnly => {
                // The map is stale (a failover happened): re-read it while waiting.
                shared.plane.refresh.notify_one();
                return self.hold(tag, frame);
            }
            // Passed on as they are (`acted_on` is false for them).
            ReplyError::MasterDown
            | ReplyError::NoScript
            | ReplyError::ExecAbort
            | ReplyError::Unblocked => return self.complete(tag, frame),
        };
        if unit.redirects >= shared.config.backend.max_redirects {
            return self.complete(tag, frame);
        }
        unit.redirects += 1;
        let (addr, asking) = match redirect {
            Redirect::Moved { addr, .. } => {
                Stats::add(&shared.stats.upstream.moved, 1);
                shared.plane.refresh.notify_one();
                (addr, false)
            }
            Redirect::Ask { addr, .. } => {
                Stats::add(&shared.stats.upstream.ask, 1);
                (addr, true)
            }
        };
        unit.replica = None;
        unit.route = Route::Node {
            addr: addr.into(),
            asking,
        };
        self.send(tag.seq, tag.part as usize);
    }

    /// Retries the unit with backoff while its shard has no writable master, for at most
    /// `failover_hold_ms`; then answers `frame`.
    pub(crate) fn hold(&mut self, tag: Tag, frame: Bytes) {
        let cfg = &self.shared.config.backend;
        let limit = Duration::from_millis(cfg.failover_hold_ms);
        let (backoff, cap) = (cfg.retry_backoff_ms, cfg.retry_backoff_max_ms);
        let stats = self.shared.stats.clone();
        let shared = self.shared.clone();
        let Some(u) = self.unit(tag) else { return };
        if u.held_since().is_none() {
            // The shard's failover clock starts with the first request that has to wait.
            if let Route::Slot(s) = &u.home {
                if let Some(i) = shared.plane.topology.load().map.shard_of(*s) {
                    shared
                        .plane
                        .topology
                        .clock
                        .trouble(i, std::time::Instant::now());
                }
            }
        }
        let since = *u.extra().held_since.get_or_insert_with(Instant::now);
        let left = limit.saturating_sub(since.elapsed());
        if left.is_zero() {
            return self.complete(tag, frame);
        }
        u.attempts = u.attempts.saturating_add(1);
        let delay = Duration::from_millis((backoff << (u.attempts - 1).min(5)).min(cap)).min(left);
        Stats::add(&stats.upstream.retries, 1);
        // Retried after the backoff, or as soon as a new topology (a new master) is in.
        self.holds
            .get_or_insert_with(|| Box::new(Holds::new(shared.plane.topology.changes())))
            .add(tag, delay);
    }

    /// Sends a held request again, along its original route. Its redirects count afresh: a
    /// wait bounds it now (`failover_hold_ms`), and an ASK that led to a node not ready yet
    /// (a target still repairing its view after a failover: CLUSTERDOWN) is followed again.
    pub(crate) fn retry(&mut self, tag: Tag) {
        if let Some(u) = self.unit(tag) {
            u.route = u.home.clone();
            u.redirects = 0;
            self.send(tag.seq, tag.part as usize);
        }
    }
}

pub(crate) fn no_topology() -> ProxyError {
    ProxyError::upstream(UpstreamReason::SlotUnserved, "Hash slot not served")
}

pub(crate) fn no_master(shard: &str) -> ProxyError {
    ProxyError::upstream(
        UpstreamReason::NoMaster,
        format!("Hive: shard '{shard}' has no writable master"),
    )
}
