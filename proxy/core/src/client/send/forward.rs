//! Sends a unit along its route: the slot's master on this thread's shared connection, a
//! connection of the client's own (blocking commands), a pinned one (WATCH, subscriptions), or
//! the node a redirect named. INFO's proxy section is added here too.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hive_common::resp::Request;

use crate::client::pending::{Shape, Unit};
use crate::client::send::redirect::{no_master, no_topology};
use crate::client::Conn;
use crate::command::route::Route;
use crate::config::Mode;
use crate::error::{ProxyError, UpstreamReason};
use crate::state::registry::Blocked;
use crate::state::Shared;
use hive_upstream::conn::backend::Backend;
use hive_upstream::topology::NO_MASTER;
use hive_upstream::{route::pool, Job, Proto, Tag};

const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
/// What a transaction held on a moving slot gets if the move outlasts `failover_hold_ms`.
const MOVING: &[u8] = b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n";

impl Conn {
    pub(crate) fn forward(&mut self, req: Request, route: Route) {
        // Only a connection that has seen the near cache (`[cache]` on) pays for the call.
        let req = match self.near.is_some() {
            true => match self.near_read(req, &route) {
                Some(req) => req,
                None => return,
            },
            false => req,
        };
        if let Route::Any = route {
            self.note_script(&req);
        }
        let mut unit = Unit::new(req, route);
        unit.large = self.large.on;
        self.push_unit(unit, Shape::Single);
    }

    pub(crate) fn info(&mut self, req: Request) {
        // What Redis shows: the commands before this one, this batch's included.
        let commands = crate::metrics::Stats::get(&self.shared.stats.commands_processed)
            + self.batch_counted();
        // A section of the proxy's own: `hotkeys`, or `everything` (Redis's word for every
        // section, module ones included).
        let hot = req
            .args()
            .skip(1)
            .any(|a| a.eq_ignore_ascii_case(b"hotkeys") || a.eq_ignore_ascii_case(b"everything"));
        self.push_unit(Unit::new(req, Route::Any), Shape::Info(commands, hot));
    }

    /// EVAL bodies are remembered so an EVALSHA of them can be healed later. Hashing costs
    /// about a microsecond per EVAL, which is small beside the script run itself.
    fn note_script(&self, req: &Request) {
        let n = req.arg(0);
        if n.eq_ignore_ascii_case(b"eval") || n.eq_ignore_ascii_case(b"eval_ro") {
            self.shared.scripts.record(req.arg(1));
        }
    }

    /// Sends unit `part` of request `seq` along its current route.
    pub(crate) fn send(&mut self, seq: u64, part: usize) {
        let tag = Tag {
            seq,
            part: part as u32,
        };
        let rr = self.session.id as usize + seq as usize;
        let proto = self.session.proto;
        let reply = self.reply_tx();
        let Some(unit) = self.unit(tag) else { return };
        let (data, frames) = match unit.wire() {
            Some((w, n)) => (w.clone(), *n),
            None => (unit.req.raw().clone(), 1),
        };
        let route = unit.route.clone();
        let (own, pinned, large, ack) = (unit.own, unit.pinned().cloned(), unit.large, unit.ack);
        if unit.no_ask && pinned.is_none() && self.slot_moving(&route) {
            // A transaction on a slot being handed over (sentinel/static modes) could find its
            // keys split between the two masters: it waits until the slot is done.
            return self.hold(tag, Bytes::from_static(MOVING));
        }
        let Some(unit) = self.unit(tag) else { return };
        let mut prefix = unit.prefix().cloned();
        // Field borrows, not a clone of the `Arc`: this runs for every request.
        let shared = &self.shared;
        let topo = shared.plane.topology.load();
        let shard = match &route {
            Route::Slot(s) | Route::Replica { slot: s, .. } => topo.map.shard_of(*s),
            Route::Master(i) => Some(*i),
            _ => None,
        };
        let mut via = None;
        let mut park = None;
        let backend = if let Some(p) = pinned {
            Some(p)
        } else if own || large {
            let n = topo.map.shards().len();
            let addr = match &route {
                Route::Node { addr, .. } => Some(addr.to_string()),
                Route::Any => (0..n)
                    .map(|k| (rr + k) % n)
                    .find(|&i| topo.has_master(i))
                    .map(|i| topo.map.shards()[i].master.clone()),
                _ => shard
                    .map(|i| topo.map.shards()[i].master.clone())
                    .filter(|m| m != NO_MASTER),
            };
            match addr {
                Some(a) if large => Some(self.large.conn(shared, proto, &a)),
                Some(a) => {
                    let c = own_conn(&mut self.own, shared, proto, &a);
                    if shared.config.backend.mode != Mode::Cluster {
                        park = Some(c.clone());
                    }
                    // CLIENT UNBLOCK from another client releases it on the node.
                    let mut b = self.entry.blocked.lock().unwrap_or_else(|p| p.into_inner());
                    match &mut *b {
                        Blocked::Conns(list) => list.push(c.clone()),
                        other => *other = Blocked::Conns(vec![c.clone()]),
                    }
                    Some(c)
                }
                None => None,
            }
        } else {
            let lane = self.acks.lane(seq, ack, self.base);
            match &route {
                Route::Replica { strict, .. } => {
                    let cover = self.must_cover();
                    let reads = shared.plane.reads.load();
                    let fresh = shard.and_then(|i| reads.pick(&topo, i, rr, cover, pool::is_aside));
                    match fresh {
                        Some(r) => {
                            via = Some(r.addr.clone());
                            Some(pool::replica(&shared.plane, &r.addr, proto))
                        }
                        None if *strict => {
                            let name = shard.map_or("?", |i| topo.shard_name(i)).to_string();
                            drop(reads);
                            drop(topo);
                            return self.complete(tag, no_replica(&name).frame());
                        }
                        None => {
                            shard.and_then(|i| pool::master(&shared.plane, &topo, i, proto, lane))
                        }
                    }
                }
                Route::Slot(_) | Route::Master(_) => {
                    shard.and_then(|i| pool::master(&shared.plane, &topo, i, proto, lane))
                }
                Route::Any => pool::any_master(&shared.plane, &topo, rr, proto, lane),
                Route::Node { addr, .. } => Some(pool::backend(&shared.plane, addr, proto, lane)),
            }
        };
        if let Route::Node { asking: true, .. } = route {
            prefix = Some(Bytes::from_static(ASKING));
        }
        match backend {
            Some(b) => {
                drop(topo);
                if let Some(c) = park {
                    self.park(tag, c);
                }
                if via.is_some() {
                    self.worker.replica_reads.add(1);
                    if let Some(u) = self.unit(tag) {
                        u.replica = via;
                    }
                }
                b.send(Job {
                    data,
                    prefix,
                    frames,
                    tag,
                    reply,
                    ack,
                })
            }
            None => {
                let err = match (&route, shard) {
                    (Route::Slot(_), None) => no_topology(),
                    (_, Some(i)) => no_master(topo.shard_name(i)),
                    _ => no_master("any"),
                };
                drop(topo);
                shared.plane.refresh.notify_one();
                self.hold(tag, err.frame());
            }
        }
    }
}

fn no_replica(shard: &str) -> ProxyError {
    ProxyError::upstream(
        UpstreamReason::NoReplica,
        format!("Hive: no replica of shard '{shard}' is fresh enough to read from (backend.read_from = \"replica\", backend.max_replica_lag_ms)"),
    )
}

/// A connection of the client's own to `addr`, reused while it lives.
fn own_conn(
    own: &mut Vec<Arc<Backend>>,
    shared: &Shared,
    proto: Proto,
    addr: &str,
) -> Arc<Backend> {
    if let Some(b) = own.iter().find(|b| &*b.addr == addr) {
        return b.clone();
    }
    let b = shared.plane.connector.blocking(addr, proto);
    own.push(b.clone());
    b
}

/// INFO's reply: the proxy's `# Proxy` section, then the node's sections.
pub(crate) fn prepend_info(shared: &Shared, frame: Bytes, commands: u64, hot: bool) -> Bytes {
    let Some((body, verbatim)) = bulk_body(&frame) else {
        return frame;
    };
    let mut text = crate::report::info::proxy_section(shared, commands).into_bytes();
    if hot {
        text.extend_from_slice(crate::report::hotkeys::section(shared).as_bytes());
    }
    let paused = crate::metrics::Stats::get(&shared.stats.paused_clients);
    text.extend_from_slice(&crate::report::info::add_blocked(body, paused));
    let mut out = BytesMut::with_capacity(text.len() + 16);
    hive_common::resp::write_verbatim(&mut out, &text, verbatim);
    out.freeze()
}

/// The text of a bulk or verbatim string reply, and whether it was verbatim.
fn bulk_body(frame: &[u8]) -> Option<(&[u8], bool)> {
    let verbatim = frame.first() == Some(&b'=');
    let rest = frame
        .strip_prefix(b"$")
        .or_else(|| frame.strip_prefix(b"="))?;
    let nl = memchr::memchr(b'\n', rest)?;
    let body = rest.get(nl + 1..rest.len().checked_sub(2)?)?;
    Some(if verbatim {
        (body.get(4..)?, true)
    } else {
        (body, false)
    })
}

impl Conn {
    /// Whether `route`'s slot is being handed over by `hive reshard` in sentinel/static mode.
    fn slot_moving(&self, route: &Route) -> bool {
        let Route::Slot(s) = route else { return false };
        let plane = &self.shared.plane;
        plane.config.mode != hive_upstream::config::Mode::Cluster
            && plane.layout.load().is_moving(*s)
    }
}
