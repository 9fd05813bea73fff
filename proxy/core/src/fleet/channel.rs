//! The fleet task: keeps the links to the peers, works out the live members, and talks with the
//! other Hives over `__hive__:fleet` on the master that holds slot 0 (a cluster's bus carries it
//! to every node; in the other modes every Hive picks the same master).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive_common::resp::Value;
use hive_common::Slot;
use hive_upstream::conn::control::{ControlConn, QueryError};
use hive_upstream::topology::NO_MASTER;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::acl::{lines, peer_behind};
use super::link::{keep, Alive};
use super::message::{decode, encode, Msg, CHANNEL};
use super::peers::Applied;
use super::view::{node_id, Member};
use super::{Fleet, Out};
use crate::state::Shared;

/// Subscription changes waiting to be sent past which they are dropped for an image.
const BACKLOG: usize = 1024;

/// A discovered peer not heard for this many heartbeats, with its link down, is forgotten.
const FORGET_AFTER_BEATS: u32 = 20;

struct Link {
    task: JoinHandle<()>,
    alive: Arc<Alive>,
    heard: Instant,
}

struct Conn {
    node: String,
    sub: ControlConn,
    publ: ControlConn,
}

struct Task {
    shared: Arc<Shared>,
    fleet: Arc<Fleet>,
    links: HashMap<String, Link>,
    changed: Arc<Notify>,
    conn: Option<Conn>,
    /// The number of the last subscription change sent (or dropped while disconnected).
    sent_seq: u64,
    /// When this Hive last sent its ACL users and its image, and asked each peer for its.
    acl_sent: Option<Instant>,
    image_sent: Option<Instant>,
    wanted: HashMap<String, Instant>,
    refused_warned: bool,
}

/// Runs the fleet until shutdown; returns at once without `proxy.fleet`.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(fleet) = shared.fleet.clone() else {
        return;
    };
    let Some(mut inbox) = fleet.take_inbox() else {
        return;
    };
    let mut t = Task {
        shared,
        fleet: fleet.clone(),
        links: HashMap::new(),
        changed: Arc::new(Notify::new()),
        conn: None,
        sent_seq: 0,
        acl_sent: None,
        image_sent: None,
        wanted: HashMap::new(),
        refused_warned: false,
    };
    for addr in fleet.listed.clone() {
        t.link(&addr);
    }
    let mut tick = tokio::time::interval(fleet.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Our own heartbeats come back through the subscription: three missed, the link is dead.
    let silence = fleet.heartbeat * 3 + Duration::from_secs(1);
    loop {
        let changed = t.changed.clone();
        tokio::select! {
            _ = tick.tick() => t.beat().await,
            _ = changed.notified() => t.view(),
            read = async {
                match t.conn.as_mut() {
                    Some(c) => c.sub.read(silence).await,
                    None => std::future::pending().await,
                }
            } => match read {
                Ok(v) => t.heard(v).await,
                Err(e) => t.lost(e),
            },
            Some(out) = inbox.out.recv() => {
                let Out::Acl { stamp, lines } = out;
                let from = fleet.from();
                t.publish(&Msg::Acl { from, stamp, lines }).await;
                t.acl_sent = Some(Instant::now());
            }
            Some((seq, change)) = inbox.changes.recv() => {
                t.sent_seq = seq;
                if inbox.changes.len() > BACKLOG {
                    // Changes come faster than the node takes them: skip them all, and the
                    // peers, seeing the gap in the next heartbeat, ask for the whole index.
                    while let Ok((seq, _)) = inbox.changes.try_recv() {
                        t.sent_seq = seq;
                    }
                    continue;
                }
                let from = fleet.from();
                t.publish(&Msg::Sub { from, seq, change }).await;
            }
            _ = shutdown.changed() => {
                // An upgraded process goes on under the same address: no goodbye then.
                if !t.shared.handed_over.load(Ordering::Relaxed) {
                    t.publish(&Msg::Bye { from: fleet.from() }).await;
                }
                t.links.values().for_each(|l| l.task.abort());
                return;
            }
        }
    }
}

impl Task {
    fn link(&mut self, addr: &str) {
        if addr == self.fleet.me.addr {
            return;
        }
        let now = Instant::now();
        if let Some(l) = self.links.get_mut(addr) {
            l.heard = now;
            return;
        }
        let alive = Arc::new(Alive::new(self.changed.clone()));
        let task = tokio::spawn(keep(
            addr.to_string(),
            self.fleet.heartbeat,
            self.fleet.ping,
            alive.clone(),
        ));
        self.links.insert(
            addr.to_string(),
            Link {
                task,
                alive,
                heard: now,
            },
        );
    }

    /// Works out the live members from the links; a peer whose link is down loses its
    /// subscribers from the counts.
    fn view(&mut self) {
        let mut members = vec![self.fleet.me.clone()];
        for (addr, l) in &self.links {
            if l.alive.up.load(Ordering::Acquire) {
                members.push(Member::new(addr.clone()));
            } else {
                self.fleet.peers.forget(&node_id(addr));
            }
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        if *self.fleet.members() != members {
            debug!(members = members.len(), "fleet view changed");
            self.fleet.set_members(members);
        }
    }

    async fn beat(&mut self) {
        let want = slot0_master(&self.shared);
        if self.conn.as_ref().map(|c| &c.node) != want.as_ref() {
            self.conn = None;
            if let Some(node) = want {
                match connect(&self.shared, &node).await {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => debug!(%node, error = %e, "fleet channel unreachable"),
                }
            }
        }
        let fleet = self.fleet.clone();
        let hb = Msg::Heartbeat {
            from: fleet.from(),
            addr: fleet.me.addr.clone(),
            seq: self.sent_seq,
            acl: fleet.acl_stamp(),
        };
        self.publish(&hb).await;
        if fleet.discover {
            let limit = fleet.heartbeat * FORGET_AFTER_BEATS;
            self.links.retain(|_, l| {
                let keep = l.alive.up.load(Ordering::Acquire) || l.heard.elapsed() < limit;
                if !keep {
                    l.task.abort();
                }
                keep
            });
        }
        self.view();
    }

    fn lost(&mut self, e: QueryError) {
        debug!(error = %e, "fleet channel lost");
        self.conn = None;
    }

    /// What arrives on the subscription.
    async fn heard(&mut self, v: Value) {
        let Some([kind, _, payload]) = v.as_array().and_then(|a| <&[Value; 3]>::try_from(a).ok())
        else {
            return;
        };
        if kind.as_bytes() != Some(b"message") {
            return;
        }
        let Some(msg) = payload.as_bytes().and_then(|p| decode(p, &self.fleet.key)) else {
            debug!("fleet message with a bad signature or shape dropped");
            return;
        };
        let fleet = self.fleet.clone();
        let from = match &msg {
            Msg::Heartbeat { from, .. }
            | Msg::Bye { from }
            | Msg::Sub { from, .. }
            | Msg::Image { from, .. }
            | Msg::Want { from, .. }
            | Msg::Acl { from, .. } => from.clone(),
        };
        // Our own messages, and an older process at our address (an upgrade's overlap).
        if from.id == fleet.me.id {
            return;
        }
        match msg {
            Msg::Heartbeat { addr, seq, acl, .. } => {
                if fleet.discover {
                    if node_id(&addr) == from.id {
                        self.link(&addr);
                    }
                } else if let Some(l) = self.links.get_mut(&addr) {
                    l.heard = Instant::now();
                }
                if fleet.peers.behind(&from.id, from.run, seq) {
                    self.want(&from.id).await;
                }
                let mine = fleet.acl_stamp();
                let due = self.acl_sent.is_none_or(|t| t.elapsed() >= fleet.heartbeat);
                if peer_behind(&mine, &acl) && due {
                    let lines = lines(&self.shared.auth.users());
                    let m = Msg::Acl {
                        from: fleet.from(),
                        stamp: mine,
                        lines,
                    };
                    self.publish(&m).await;
                    self.acl_sent = Some(Instant::now());
                }
            }
            Msg::Bye { .. } => {
                fleet.peers.forget(&from.id);
                if fleet.discover {
                    self.links.retain(|addr, l| {
                        let keep = node_id(addr) != from.id;
                        if !keep {
                            l.task.abort();
                        }
                        keep
                    });
                    self.view();
                }
            }
            Msg::Sub { seq, change, .. } => {
                if fleet.peers.change(&from.id, from.run, seq, &change) == Applied::Gap {
                    self.want(&from.id).await;
                }
            }
            Msg::Image { seq, image, .. } => {
                fleet.peers.image(&from.id, from.run, seq, &image);
            }
            Msg::Want { of, .. } => {
                let due = self
                    .image_sent
                    .is_none_or(|t| t.elapsed() >= fleet.heartbeat / 4);
                if of == fleet.me.id && due {
                    let (seq, image) = self.shared.pubsub.image();
                    let m = Msg::Image {
                        from: fleet.from(),
                        seq,
                        image,
                    };
                    self.publish(&m).await;
                    self.image_sent = Some(Instant::now());
                }
            }
            Msg::Acl { stamp, lines, .. } => {
                fleet.acl_heard(&self.shared, &stamp, &lines);
            }
        }
    }

    /// Asks peer `id` for its image, at most once a heartbeat.
    async fn want(&mut self, id: &str) {
        let every = self.fleet.heartbeat;
        if self.wanted.get(id).is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.wanted.insert(id.to_string(), Instant::now());
        let m = Msg::Want {
            from: self.fleet.from(),
            of: id.to_string(),
        };
        self.publish(&m).await;
    }

    async fn publish(&mut self, msg: &Msg) {
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        let payload = encode(msg, &self.fleet.key);
        let args: [&[u8]; 3] = [b"PUBLISH", CHANNEL.as_bytes(), &payload];
        match c.publ.call(&args).await {
            Ok(_) => {}
            Err(QueryError::Redis { message, .. }) => {
                if !self.refused_warned {
                    warn!(%message, "the node refuses the fleet's messages: give the backend user PUBLISH and SUBSCRIBE on &__hive__:fleet");
                    self.refused_warned = true;
                }
            }
            Err(e) => self.lost(e),
        }
    }
}

/// The master holding slot 0: every Hive of the fleet talks on the same node.
fn slot0_master(shared: &Shared) -> Option<String> {
    let topo = shared.plane.topology.load();
    let i = topo.map.shard_of(Slot::new(0)?)?;
    let m = &topo.map.shards()[i].master;
    (m != NO_MASTER).then(|| m.clone())
}

async fn connect(shared: &Shared, node: &str) -> Result<Conn, QueryError> {
    let auth = shared.plane.config.node_auth();
    let connector = &shared.plane.connector;
    let mut sub = connector.control(node, auth.as_ref()).await?;
    let publ = connector.control(node, auth.as_ref()).await?;
    sub.send(&["SUBSCRIBE", CHANNEL]).await?;
    let confirm = sub.read(sub.timeout()).await?;
    if let Value::Error(e) = confirm {
        return Err(QueryError::Redis {
            addr: node.to_string(),
            message: String::from_utf8_lossy(&e).into_owned(),
        });
    }
    Ok(Conn {
        node: node.to_string(),
        sub,
        publ,
    })
}
