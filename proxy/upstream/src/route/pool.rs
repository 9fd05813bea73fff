//! Per-thread backend connections. Each worker thread runs its own single-threaded runtime, so a
//! client task and the backend connection carrying its requests stay on one thread: handing a
//! request over is a local queue push, not a cross-thread wake-up (which dominated P1 profiles).
//! RESP2 and RESP3 clients use separate connections, because replies are forwarded as bytes.
//! With `write_ack = "replica"`, writes go on a lane of their own, so reads need not queue
//! behind the WAIT that confirms them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::backend::Backend;
use crate::conn::Proto;
use crate::topology::{Topology, NO_MASTER};
use crate::Backplane;

#[derive(Default)]
struct Pool {
    by_addr: HashMap<String, Arc<Backend>>,
    /// The snapshot `masters` was built from; held so its address cannot be reused.
    built_from: Option<Arc<Topology>>,
    masters: Vec<Option<Arc<Backend>>>,
    /// Read connections to replicas (READONLY first in cluster mode), by address.
    replicas: HashMap<Arc<str>, Arc<Backend>>,
}

/// Replicas this thread saw fail a read, until when they are skipped. Shared by both
/// protocols' pools: a node that fails one fails the other.
#[derive(Default)]
struct Aside {
    until: Vec<(Arc<str>, Instant)>,
}

/// How long a replica that failed a read is skipped; the poller judges it meanwhile.
const ASIDE_FOR: Duration = Duration::from_secs(1);

thread_local! {
    static ASIDE: RefCell<Aside> = RefCell::new(Aside::default());
}

/// Skips `addr` for reads on this thread for a while (it failed or timed out a read).
pub fn set_aside(addr: &Arc<str>) {
    ASIDE.with(|a| {
        let mut a = a.borrow_mut();
        let until = Instant::now() + ASIDE_FOR;
        match a.until.iter_mut().find(|(x, _)| x == addr) {
            Some(e) => e.1 = until,
            None => a.until.push((addr.clone(), until)),
        }
    });
}

/// Whether reads skip `addr` on this thread; empty (the usual case) costs one branch.
pub fn is_aside(addr: &str) -> bool {
    ASIDE.with(|a| {
        let mut a = a.borrow_mut();
        if a.until.is_empty() {
            return false;
        }
        let now = Instant::now();
        a.until.retain(|(_, t)| *t > now);
        a.until.iter().any(|(x, _)| &**x == addr)
    })
}

/// This thread's read connection to replica `addr`.
pub fn replica(plane: &Backplane, addr: &Arc<str>, proto: Proto) -> Arc<Backend> {
    with(proto, |l| {
        if let Some(b) = l.replicas.get(addr) {
            if !b.handed_off() {
                return b.clone();
            }
        }
        let cluster = plane.config.mode == crate::config::Mode::Cluster;
        let b = plane.connector.replica(addr, proto, cluster);
        l.replicas.insert(addr.clone(), b.clone());
        b
    })
}

/// Which of a node's shared connections a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lane {
    /// Reads, and every request when writes are not confirmed.
    #[default]
    Plain,
    /// Writes confirmed with WAIT (`write_ack = "replica"`), and what follows them from the
    /// same client until they are answered.
    Ack,
}

thread_local! {
    /// By protocol, then lane.
    static LOCAL: RefCell<[Pool; 4]> = RefCell::new(Default::default());
}

fn get(l: &mut Pool, plane: &Backplane, addr: &str, proto: Proto) -> Arc<Backend> {
    if let Some(b) = l.by_addr.get(addr) {
        if !b.handed_off() {
            return b.clone();
        }
    }
    let b = plane.connector.spawn(addr, proto);
    l.by_addr.insert(addr.to_string(), b.clone());
    b
}

/// Shard `i`'s master connection, replaced by a fresh one if a large reply is streaming on
/// it (the old one answers what it carries, then closes once its last holder lets go).
fn master_of(l: &mut Pool, plane: &Backplane, i: usize, proto: Proto) -> Option<Arc<Backend>> {
    let b = l.masters.get(i)?.as_ref()?;
    if !b.handed_off() {
        return Some(b.clone());
    }
    let addr = b.addr.clone();
    let fresh = get(l, plane, &addr, proto);
    l.masters[i] = Some(fresh.clone());
    Some(fresh)
}

fn with<T>(proto: Proto, f: impl FnOnce(&mut Pool) -> T) -> T {
    with_lane(proto, Lane::Plain, f)
}

fn with_lane<T>(proto: Proto, lane: Lane, f: impl FnOnce(&mut Pool) -> T) -> T {
    LOCAL.with(|l| f(&mut l.borrow_mut()[proto.index() + 2 * lane as usize]))
}

/// This thread's connection to `addr` (redirect targets).
pub fn backend(plane: &Backplane, addr: &str, proto: Proto, lane: Lane) -> Arc<Backend> {
    with_lane(proto, lane, |l| get(l, plane, addr, proto))
}

/// This thread's connection to shard `i`'s master in `topo`; `None` while it has none.
pub fn master(
    plane: &Backplane,
    topo: &Arc<Topology>,
    i: usize,
    proto: Proto,
    lane: Lane,
) -> Option<Arc<Backend>> {
    with_lane(proto, lane, |l| {
        refresh(l, plane, topo, proto);
        master_of(l, plane, i, proto)
    })
}

/// Some master for keyless commands, spread by `rr`.
pub fn any_master(
    plane: &Backplane,
    topo: &Arc<Topology>,
    rr: usize,
    proto: Proto,
    lane: Lane,
) -> Option<Arc<Backend>> {
    with_lane(proto, lane, |l| {
        refresh(l, plane, topo, proto);
        let n = l.masters.len();
        (0..n).find_map(|k| master_of(l, plane, (rr + k) % n, proto))
    })
}

fn refresh(l: &mut Pool, plane: &Backplane, topo: &Arc<Topology>, proto: Proto) {
    if l.built_from.as_ref().is_some_and(|t| Arc::ptr_eq(t, topo)) {
        return;
    }
    let masters = topo
        .map
        .shards()
        .iter()
        .map(|s| (s.master != NO_MASTER).then(|| get(l, plane, &s.master, proto)))
        .collect();
    l.masters = masters;
    l.built_from = Some(topo.clone());
}
