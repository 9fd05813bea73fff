//! A subscribed client: its channels, patterns and shard channels on subscriber connections of
//! its own, the restrictions of RESP2's subscribed state, PUBLISH, and re-subscribing after a
//! subscriber connection is lost.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hive_common::resp::Request;
use hive_common::Slot;
use smallvec::SmallVec;

use crate::client::modes::keyspace::IndexGuard;
use crate::client::modes::transaction::no_master_for;
use crate::client::pending::{Shape, Unit};
use crate::client::Conn;
use crate::command::classify::Action;
use crate::command::local_cmd::{LocalCmd, Plain};
use crate::command::pubsub::{subscribed_pong, Family, Subscriptions};
use crate::command::reply::merge::{Merge, MergeKind};
use crate::command::route::Route;
use crate::config::Mode;
use crate::error::ProxyError;
use crate::state::pubsub_index::Placement;
use hive_upstream::conn::backend::{Backend, PushSink};
use hive_upstream::topology::NO_MASTER;
use hive_upstream::{Inbox, Job, Proto, Tag};

/// Tag sequence number of requests the proxy sends for itself (re-subscribing); their replies
/// match no pending entry and are dropped.
pub const INTERNAL: u64 = u64::MAX;

pub(crate) struct Subscriber {
    pub subs: Subscriptions,
    /// Channels and patterns live on one master: its shard and the connection.
    pub home: Option<(usize, Arc<Backend>)>,
    /// Shard channels live on the master owning their slot.
    shard_conns: Vec<Arc<Backend>>,
    pub sink: PushSink,
    resub_scheduled: bool,
    /// Keyspace notifications: connections to every other master (`keyspace`).
    pub keyspace: Vec<Arc<Backend>>,
    /// A task forwards topology changes (the keyspace connections follow the masters).
    pub following: bool,
    /// Where the proxy-wide index holds this client's subscriptions.
    pub place: Placement,
    /// Keyspace-capable channels and patterns held (`Family::Channel`, `Family::Pattern`).
    pub ks: [usize; 2],
    pub index: IndexGuard,
}

impl Conn {
    pub(crate) fn subscribed(&self) -> bool {
        self.subs.as_ref().is_some_and(|s| s.subs.active())
    }

    /// RESP2 clients in subscribed state may only (un)subscribe, PING, QUIT and RESET.
    pub(crate) fn subscribed_resp2(&self) -> bool {
        self.session.proto == Proto::Resp2 && self.subscribed()
    }

    pub(crate) fn dispatch_subscribed(&mut self, req: Request, action: Action) {
        match action {
            Action::Subscribe { .. } | Action::Reset | Action::Error(_) => self.run(req, action),
            Action::Local(LocalCmd::Plain(Plain::Quit)) => self.run(req, action),
            Action::Local(LocalCmd::Plain(Plain::Ping)) => {
                self.push_done(subscribed_pong(req.get(1)))
            }
            _ => {
                let name = String::from_utf8_lossy(req.arg(0)).to_ascii_lowercase();
                self.push_error(&ProxyError::invalid(format!(
                    "Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                )));
            }
        }
    }

    /// PUBLISH, answering how many subscribers it reached through Hive: the nodes count
    /// Hive's subscriber connections they hold (a client with keyspace connections holds
    /// several), so their count is corrected by the proxy-wide subscription index.
    pub(crate) fn publish(&mut self, req: Request) {
        if is_fleet_channel(req.arg(1)) {
            return self.push_error(&fleet_channel_refused());
        }
        let cluster = self.shared.config.backend.mode == Mode::Cluster;
        let slot = Slot::for_key(req.arg(1));
        let peers = self.shared.fleet.as_ref().map(|f| &f.peers);
        if self.shared.pubsub.is_empty() && peers.is_none_or(|p| p.is_empty()) {
            // No client of the proxy subscribes: the nodes' own count is the answer.
            return if cluster {
                self.forward(req, Route::Slot(slot))
            } else {
                self.fan_out(req, MergeKind::Sum)
            };
        }
        let topo = self.shared.plane.topology.load();
        // In a cluster the bus delivers it to subscribers on every node, and one node per
        // channel keeps a publisher's messages in order; elsewhere every master gets it.
        let nodes: Vec<String> = if cluster {
            topo.map
                .shard_of(slot)
                .map(|i| topo.map.shards()[i].master.clone())
                .into_iter()
                .collect()
        } else {
            topo.map.shards().iter().map(|s| s.master.clone()).collect()
        };
        drop(topo);
        let (clients, conns) = self.shared.pubsub.receivers(req.arg(1), &nodes);
        // The other Hives of a fleet hold subscribers too: their clients count, their
        // connections to these nodes do not.
        let (pc, pn) = peers.map_or((0, 0), |p| p.receivers(req.arg(1), &nodes));
        let add = clients - conns + pc - pn;
        if cluster {
            let unit = Unit::new(req, Route::Slot(slot));
            return self.push_unit(unit, Shape::Count { merge: None, add });
        }
        let n = nodes.len();
        if n == 0 {
            return self.push_error(&no_master_for(None));
        }
        let units = (0..n)
            .map(|i| Unit::new(req.clone(), Route::Master(i)))
            .collect();
        let merge = Merge::new(MergeKind::Sum, n, Vec::new());
        self.push_merge(
            units,
            Shape::Count {
                merge: Some(Box::new(merge)),
                add,
            },
        );
    }

    fn subscriber(&mut self) -> &mut Subscriber {
        if self.subs.is_none() {
            let sink = PushSink {
                tx: self.reply_tx(),
                queued: Arc::new(AtomicUsize::new(0)),
                limit: self.shared.live.load().proxy.subscriber_output_limit_bytes,
                kill: self.entry.signal.clone(),
                keyspace_only: false,
            };
            self.subs = Some(Box::new(Subscriber {
                subs: Subscriptions::default(),
                home: None,
                shard_conns: Vec::new(),
                sink,
                resub_scheduled: false,
                keyspace: Vec::new(),
                following: false,
                place: Placement::default(),
                ks: [0; 2],
                index: IndexGuard {
                    shared: self.shared.clone(),
                },
            }));
        }
        self.subs.as_mut().expect("just set")
    }

    /// The subscriber connection for channels and patterns, or for one shard channel slot.
    fn sub_conn(&mut self, slot: Option<Slot>) -> Option<Arc<Backend>> {
        let topo = self.shared.plane.topology.load();
        let proto = self.session.proto;
        let id = self.session.id as usize;
        let shared = self.shared.clone();
        let sub = self.subscriber();
        let dedicated = |addr: &str, sink: &PushSink| {
            shared
                .plane
                .connector
                .dedicated(addr, proto, Some(sink.clone()))
        };
        if let Some(s) = slot {
            let i = topo.map.shard_of(s)?;
            let addr = &topo.map.shards()[i].master;
            if addr == NO_MASTER {
                return None;
            }
            if let Some(c) = sub.shard_conns.iter().find(|c| &*c.addr == addr) {
                return Some(c.clone());
            }
            let c = dedicated(addr, &sub.sink);
            sub.shard_conns.push(c.clone());
            return Some(c);
        }
        if let Some((_, c)) = &sub.home {
            return Some(c.clone());
        }
        let n = topo.map.shards().len();
        let i = (0..n).map(|k| (id + k) % n).find(|&i| topo.has_master(i))?;
        let c = dedicated(&topo.map.shards()[i].master, &sub.sink);
        sub.home = Some((i, c.clone()));
        Some(c)
    }

    pub(crate) fn subscribe(&mut self, req: Request, family: Family, on: bool, route: Route) {
        if on && family != Family::Pattern && req.args().skip(1).any(is_fleet_channel) {
            return self.push_error(&fleet_channel_refused());
        }
        let mut args: Vec<Bytes> = (1..req.argc()).map(|i| req.arg_bytes(i)).collect();
        if family == Family::Shard && !on && args.is_empty() {
            // Spell out the channels: they may live on several masters.
            args = self.subscriber().subs.shard.iter().cloned().collect();
            if args.len() > 1 {
                return self.sunsubscribe_all(args);
            }
        }
        let slot = match (&route, args.first()) {
            (Route::Slot(s), _) => Some(*s),
            (_, Some(c)) if family == Family::Shard => Some(Slot::for_key(c)),
            _ => None,
        };
        let Some(conn) = self.sub_conn(slot) else {
            return self.push_error(&no_master_for(slot));
        };
        // The home connection may be new: the index follows it before counting the change.
        self.sync_place();
        let resp3 = self.session.resp3();
        let sub = self.subscriber();
        let before = sub.ks_count(family);
        let confirm = (family == Family::Shard && !args.is_empty())
            .then(|| shard_confirmations(&sub.subs.shard, on, &args, resp3));
        let mut changed = Vec::new();
        let frames = sub.subs.apply(family, on, &args, &mut changed);
        sub.count_keyspace(family, on, &changed);
        let (c, p, s) = (
            sub.subs.channels.len(),
            sub.subs.patterns.len(),
            sub.subs.shard.len(),
        );
        self.entry.update(|e| (e.sub, e.psub, e.ssub) = (c, p, s));
        let data = if args.len() + 1 == req.argc() {
            req.raw().clone()
        } else {
            let mut all: Vec<&[u8]> = vec![req.arg(0)];
            all.extend(args.iter().map(|a| &a[..]));
            Request::from_args(&all).raw().clone()
        };
        let mut unit = Unit::new(req, route);
        let extra = unit.extra();
        extra.pinned = Some(conn);
        extra.wire = Some((data, frames));
        let shape = match confirm {
            Some(reply) => Shape::Confirm { merge: None, reply },
            None => Shape::Single,
        };
        self.push_unit(unit, shape);
        if family == Family::Channel {
            // A REDIRECT target: Hive sends it the invalidations on this channel itself.
            let inv = crate::tracking::frames::CHANNEL;
            if on && args.iter().any(|a| a[..] == *inv) {
                let sink = (self.reply_tx(), self.session.resp3());
                self.shared.tracking.sink(self.session.id, Some(sink));
            } else if !on && (args.is_empty() || args.iter().any(|a| a[..] == *inv)) {
                self.shared.tracking.sink(self.session.id, None);
            }
        }
        self.index_change(family, on, &changed);
        self.keyspace_apply(family, on, &args, before);
    }

    /// SUNSUBSCRIBE with no arguments while shard channels live on several masters: one
    /// SUNSUBSCRIBE per channel, replies concatenated in order.
    fn sunsubscribe_all(&mut self, channels: Vec<Bytes>) {
        let mut units: SmallVec<[Unit; 1]> = SmallVec::new();
        for ch in &channels {
            let req = Request::from_args(&[&b"SUNSUBSCRIBE"[..], ch]);
            let Some(conn) = self.sub_conn(Some(Slot::for_key(ch))) else {
                continue;
            };
            let mut u = Unit::new(req, Route::Any);
            u.extra().pinned = Some(conn);
            units.push(u);
        }
        let resp3 = self.session.resp3();
        let sub = self.subscriber();
        let reply = shard_confirmations(&sub.subs.shard, false, &channels, resp3);
        sub.subs
            .apply(Family::Shard, false, &channels, &mut Vec::new());
        self.entry.update(|e| e.ssub = 0);
        let n = units.len();
        if n == 0 {
            // A merge of no parts would never complete.
            return self.push_error(&no_master_for(None));
        }
        let merge = Some(Box::new(Merge::new(MergeKind::Frames, n, Vec::new())));
        self.push_merge(units, Shape::Confirm { merge, reply });
    }

    /// After a subscriber connection is lost, try again shortly or as soon as the topology
    /// changes (a failover finished).
    pub(crate) fn schedule_resubscribe(&mut self) {
        let tx = self.reply_tx();
        let mut changed = self.shared.plane.topology.changes();
        let Some(sub) = self.subs.as_mut() else {
            return;
        };
        if sub.resub_scheduled {
            return;
        }
        sub.resub_scheduled = true;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = changed.changed() => {}
            }
            let _ = tx.send(Inbox::Resubscribe);
        });
    }

    /// Re-creates every subscription on the masters of the current topology; the replies go
    /// nowhere (the client already saw its confirmations).
    pub(crate) fn resubscribe(&mut self) {
        let Some(sub) = self.subs.as_mut() else {
            return;
        };
        sub.resub_scheduled = false;
        sub.home = None;
        sub.shard_conns.clear();
        sub.keyspace.clear();
        let plain: Vec<(Family, Vec<Bytes>)> = [
            (Family::Channel, sub.subs.channels.iter().cloned().collect()),
            (Family::Pattern, sub.subs.patterns.iter().cloned().collect()),
        ]
        .into_iter()
        .filter(|(_, v): &(Family, Vec<Bytes>)| !v.is_empty())
        .collect();
        let shard: Vec<Bytes> = sub.subs.shard.iter().cloned().collect();
        let tx = self.reply_tx();
        let tag = Tag {
            seq: INTERNAL,
            part: 0,
        };
        let mut jobs: Vec<(Option<Slot>, Family, Vec<Bytes>)> =
            plain.into_iter().map(|(f, v)| (None, f, v)).collect();
        jobs.extend(
            shard
                .into_iter()
                .map(|c| (Some(Slot::for_key(&c)), Family::Shard, vec![c])),
        );
        for (slot, family, chans) in jobs {
            let Some(conn) = self.sub_conn(slot) else {
                return self.schedule_resubscribe();
            };
            let mut args: Vec<&[u8]> = vec![family.subscribe_command().as_bytes()];
            args.extend(chans.iter().map(|c| &c[..]));
            conn.send(Job {
                data: Request::from_args(&args).raw().clone(),
                prefix: None,
                frames: chans.len() as u32,
                tag,
                reply: tx.clone(),
                ack: false,
            });
        }
        self.keyspace_connect();
    }
}

/// Redis's confirmations of SSUBSCRIBE (`on`) or SUNSUBSCRIBE of `channels`, one per channel,
/// each with the client's count of shard channels after it, from the client's set before.
/// Costs the channels named, not the set (a subscriber adding thousands one at a time).
fn shard_confirmations(
    before: &std::collections::BTreeSet<Bytes>,
    on: bool,
    channels: &[Bytes],
    resp3: bool,
) -> Bytes {
    let mut n = before.len() as i64;
    let mut seen: std::collections::HashSet<&Bytes> = std::collections::HashSet::new();
    let mut out = bytes::BytesMut::new();
    let kind: &[u8] = if on { b"ssubscribe" } else { b"sunsubscribe" };
    for c in channels {
        if seen.insert(c) && before.contains(c) != on {
            n += if on { 1 } else { -1 };
        }
        out.extend_from_slice(if resp3 { b">3\r\n" } else { b"*3\r\n" });
        hive_common::resp::write_bulk(&mut out, kind);
        hive_common::resp::write_bulk(&mut out, c);
        hive_common::resp::write_integer(&mut out, n);
    }
    out.freeze()
}

/// Hive's own channel between the Hives of a fleet (`fleet::message::CHANNEL`): no client may
/// publish on it or subscribe to it by name, and pattern subscribers never receive it.
fn is_fleet_channel(c: &[u8]) -> bool {
    c == crate::fleet::message::CHANNEL.as_bytes()
}

fn fleet_channel_refused() -> ProxyError {
    crate::auth::Denied::Channel(crate::fleet::message::CHANNEL.into()).error()
}
