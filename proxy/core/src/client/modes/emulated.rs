//! Commands the proxy runs across shards on its own task (`emulate`): their pending entry has
//! no units and is completed by `Inbox::Done` when the task ends.

use std::future::Future;

use bytes::Bytes;
use hive_common::resp::Request;

use crate::client::pending::Pending;
use crate::client::Conn;
use crate::command::classify::{crossslot, crossslot_because, NotEmulated};
use crate::command::route::Route;
use crate::config::{CrossSlot, Mode};
use crate::emulate::{run, Plan, Router};
use hive_common::Slot;
use hive_upstream::Inbox;

impl Conn {
    /// Whether `proxy.cross_slot = "emulate"` (as of now: a reload applies at once).
    pub(crate) fn emulating(&self) -> bool {
        self.shared.live.load().proxy.cross_slot == CrossSlot::Emulate
    }

    /// A command whose keys hash to several slots.
    pub(crate) fn cross_slot(&mut self, req: Request, plan: Option<Box<Plan>>, why: NotEmulated) {
        if let Some(p) = plan.as_ref().filter(|p| !p.patterns.is_empty()) {
            // A cluster node refuses SORT's BY/GET patterns itself (Redis Cluster's answer),
            // and a single shard holds every key they may name.
            if self.shared.config.backend.mode == Mode::Cluster
                || self.shared.plane.topology.load().map.shards().len() == 1
            {
                return self.forward(req, Route::Slot(Slot::for_key(p.req.arg(1))));
            }
        }
        if !self.emulating() {
            return self.push_error(&crossslot());
        }
        let Some(plan) = plan else {
            return self.push_error(&crossslot_because(why, req.arg(0)));
        };
        if self.one_shard(&plan) {
            // A standalone master takes keys of any slot.
            return self.forward(req, Route::Slot(plan.target));
        }
        let max = self.shared.live.load().proxy.cross_slot_max_bytes.0 as u64;
        let router = self.router();
        let unique = format!("{}:{}", self.session.id, self.next_seq());
        self.spawn_reply(async move { run::run(&router, &plan, &unique, max).await });
    }

    /// A blocking pop over keys of several slots: blocked on every shard at once (`emulate`),
    /// or on one standalone master when every key lives there.
    pub(crate) fn block_across(
        &mut self,
        req: Request,
        plan: Result<Box<crate::emulate::blocking::BlockPlan>, crate::error::ProxyError>,
    ) {
        if !self.emulating() {
            return self.push_error(&crossslot());
        }
        let plan = match plan {
            Ok(p) => p,
            Err(e) => return self.push_error(&e),
        };
        let cluster = self.shared.config.backend.mode == Mode::Cluster;
        let first = Slot::for_key(&plan.keys[0]);
        if !cluster {
            let topo = self.shared.plane.topology.load();
            let home = topo.map.shard_of(first);
            let dst = match &plan.kind {
                crate::emulate::blocking::plan::Kind::Move { dst, .. } => Some(Slot::for_key(dst)),
                _ => None,
            };
            let one = home.is_some()
                && plan
                    .keys
                    .iter()
                    .map(|k| Slot::for_key(k))
                    .chain(dst)
                    .all(|s| topo.map.shard_of(s) == home);
            if one {
                drop(topo);
                return if plan.block {
                    self.blocking(req, Route::Slot(first))
                } else {
                    self.forward(req, Route::Slot(first))
                };
            }
        }
        let router = self.router();
        let gone = self.reply_tx();
        let release = std::sync::Arc::new(crate::emulate::blocking::run::Release::default());
        if plan.block {
            self.set_blocked(crate::state::registry::Blocked::Task(release.clone()));
        }
        self.spawn_reply(async move {
            crate::emulate::blocking::run::run(&router, &plan, &gone, cluster, &release).await
        });
    }

    /// Outside a cluster, whether every key of `plan` lives on the target's shard.
    fn one_shard(&self, plan: &Plan) -> bool {
        if self.shared.config.backend.mode == Mode::Cluster || !plan.patterns.is_empty() {
            return false;
        }
        let topo = self.shared.plane.topology.load();
        let home = topo.map.shard_of(plan.target);
        home.is_some()
            && plan
                .remotes
                .iter()
                .all(|r| topo.map.shard_of(r.slot) == home)
    }

    pub(crate) fn router(&self) -> Router {
        Router::new(self.shared.plane.clone(), self.session.proto)
    }

    /// Queues an entry answered by `work`.
    pub(crate) fn spawn_reply(&mut self, work: impl Future<Output = Bytes> + Send + 'static) {
        let seq = self.next_seq();
        self.pending.push_back(Pending::waiting(
            Default::default(),
            crate::client::pending::Shape::Single,
        ));
        let tx = self.reply_tx();
        // A current-thread runtime: the task stays on this worker, with its connection pool.
        tokio::spawn(async move {
            let frame = work.await;
            let _ = tx.send(Inbox::Done { seq, frame });
        });
    }

    /// What this client is blocked on, for CLIENT UNBLOCK from another connection.
    pub(crate) fn set_blocked(&self, b: crate::state::registry::Blocked) {
        *self.entry.blocked.lock().unwrap_or_else(|p| p.into_inner()) = b;
    }

    /// The end of a spawned entry's work.
    pub(crate) fn on_done(&mut self, seq: u64, frame: Bytes) {
        {
            let mut b = self.entry.blocked.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(*b, crate::state::registry::Blocked::Task(_)) {
                *b = crate::state::registry::Blocked::No;
            }
        }
        let Some(idx) = seq.checked_sub(self.base) else {
            return;
        };
        if let Some(p) = self.pending.get_mut(idx as usize) {
            p.reply = Some(frame);
        }
    }
}
