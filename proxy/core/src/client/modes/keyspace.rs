//! Keyspace notifications from every master: a node publishes `__keyspace@*` and
//! `__keyevent@*` messages only to its own subscribers, so a subscription that can match them
//! is also made on every other master, on connections that pass on only those messages (the
//! home connection delivers everything else, once). Those connections follow failovers and
//! reshards. Also keeps the proxy-wide subscription index PUBLISH counts with.

use std::sync::Arc;

use bytes::Bytes;
use hive_common::resp::Request;

use crate::client::modes::subscriber::{Subscriber, INTERNAL};
use crate::client::Conn;
use crate::command::pubsub::Family;
use crate::state::pubsub_index::{
    is_keyspace_channel, keyspace_only, may_match_keyspace, Placement,
};
use crate::state::Shared;
use hive_upstream::conn::backend::PushSink;
use hive_upstream::{Inbox, Job, Tag};

const TAG: Tag = Tag {
    seq: INTERNAL,
    part: 0,
};

impl Conn {
    /// After a SUBSCRIBE/PSUBSCRIBE/(P)UNSUBSCRIBE on the home connection: the same for the
    /// keyspace-capable channels or patterns on every other master.
    pub(crate) fn keyspace_apply(
        &mut self,
        family: Family,
        on: bool,
        args: &[Bytes],
        before: usize,
    ) {
        if !matches!(family, Family::Channel | Family::Pattern) {
            return;
        }
        let capable = |a: &Bytes| match family {
            Family::Channel => is_keyspace_channel(a),
            _ => may_match_keyspace(a),
        };
        let picked: Vec<&Bytes> = args.iter().filter(|a| capable(a)).collect();
        let Some(sub) = self.subs.as_mut() else {
            return;
        };
        if sub.ks == [0, 0] {
            sub.keyspace.clear();
            return self.sync_place();
        }
        if !sub.keyspace.is_empty() && (!picked.is_empty() || (!on && args.is_empty())) {
            let mut words: Vec<&[u8]> = vec![command(family, on)];
            words.extend(picked.iter().map(|a| &a[..]));
            // A reply frame per channel named, or per channel held for a bare UNSUBSCRIBE.
            let frames = if picked.is_empty() {
                before.max(1)
            } else {
                picked.len()
            };
            let data = Request::from_args(&words).raw().clone();
            for c in &sub.keyspace {
                c.send(job(data.clone(), frames, sub));
            }
        }
        self.keyspace_connect();
    }

    /// Makes the keyspace connections the current topology needs (every master but home's),
    /// each subscribed to everything keyspace-capable; drops those to former masters.
    pub(crate) fn keyspace_connect(&mut self) {
        let topo = self.shared.plane.topology.load();
        let masters = topo.masters();
        let proto = self.session.proto;
        let shared = self.shared.clone();
        let follow = self.reply_tx();
        let Some(sub) = self.subs.as_mut() else {
            return;
        };
        if sub.ks == [0, 0] {
            sub.keyspace.clear();
            return self.sync_place();
        }
        let home = sub.home_addr();
        sub.keyspace.retain(|c| {
            masters.iter().any(|m| **m == *c.addr) && Some(&*c.addr) != home.as_deref()
        });
        let mut wanted: Option<(Vec<Bytes>, Vec<Bytes>)> = None;
        for m in &masters {
            if Some(m.as_str()) == home.as_deref() || sub.keyspace.iter().any(|c| &*c.addr == m) {
                continue;
            }
            let (channels, patterns) = wanted.get_or_insert_with(|| {
                let channels: Vec<Bytes> = sub.subs.channels.iter().cloned().collect();
                let patterns: Vec<Bytes> = sub.subs.patterns.iter().cloned().collect();
                keyspace_only(&channels, &patterns)
            });
            let sink = PushSink {
                keyspace_only: true,
                ..sub.sink.clone()
            };
            let c = shared.plane.connector.dedicated(m, proto, Some(sink));
            for (family, items) in [(Family::Channel, &*channels), (Family::Pattern, &*patterns)] {
                if items.is_empty() {
                    continue;
                }
                let mut words: Vec<&[u8]> = vec![command(family, true)];
                words.extend(items.iter().map(|a| &a[..]));
                c.send(job(
                    Request::from_args(&words).raw().clone(),
                    items.len(),
                    sub,
                ));
            }
            sub.keyspace.push(c);
        }
        if !sub.following {
            sub.following = true;
            let mut changed = shared.plane.topology.changes();
            tokio::spawn(async move {
                while changed.changed().await.is_ok() {
                    if follow.send(Inbox::Topology).is_err() {
                        break;
                    }
                }
            });
        }
        self.sync_place();
    }

    /// The topology changed: a subscriber whose home is no longer a master subscribes again
    /// everywhere; otherwise only the keyspace connections are brought up to date.
    pub(crate) fn on_topology(&mut self) {
        let topo = self.shared.plane.topology.load();
        let Some(sub) = self.subs.as_ref() else {
            return;
        };
        let home_ok = sub
            .home_addr()
            .is_none_or(|h| topo.map.shards().iter().any(|s| s.master == h));
        drop(topo);
        if !home_ok {
            return self.resubscribe();
        }
        self.keyspace_connect();
    }

    /// Moves this client's subscriptions in the proxy-wide index when its connections changed
    /// nodes (a new home, keyspace connections made or dropped).
    pub(crate) fn sync_place(&mut self) {
        let Some(sub) = self.subs.as_mut() else {
            return;
        };
        let place = Placement {
            home: sub.home_addr(),
            keyspace_nodes: sub.keyspace.iter().map(|c| c.addr.to_string()).collect(),
        };
        if place != sub.place {
            let (channels, patterns) = sub.all();
            self.shared
                .pubsub
                .moved(&sub.place, &place, &channels, &patterns);
            sub.place = place;
        }
    }

    /// Records what a (un)subscription changed in the proxy-wide index.
    pub(crate) fn index_change(&mut self, family: Family, on: bool, changed: &[Bytes]) {
        let Some(sub) = self.subs.as_ref() else {
            return;
        };
        let by = if on { 1 } else { -1 };
        let index = &self.shared.pubsub;
        match family {
            Family::Channel => index.add(&sub.place, changed, &[], by),
            Family::Pattern => index.add(&sub.place, &[], changed, by),
            Family::Shard => {}
        }
    }
}

fn command(family: Family, on: bool) -> &'static [u8] {
    match (family, on) {
        (Family::Pattern, true) => b"PSUBSCRIBE",
        (Family::Pattern, false) => b"PUNSUBSCRIBE",
        (_, true) => b"SUBSCRIBE",
        (_, false) => b"UNSUBSCRIBE",
    }
}

fn job(data: Bytes, frames: usize, sub: &Subscriber) -> Job {
    Job {
        data,
        prefix: None,
        frames: frames as u32,
        tag: TAG,
        reply: sub.sink.tx.clone(),
        ack: false,
    }
}

/// Takes a subscriber's part out of the index when it goes (RESET, disconnect).
pub(crate) struct IndexGuard {
    pub shared: Arc<Shared>,
}

impl Subscriber {
    pub(crate) fn home_addr(&self) -> Option<String> {
        self.home.as_ref().map(|(_, c)| c.addr.to_string())
    }

    /// Keyspace-capable channels (`Family::Channel`) or patterns held now.
    pub(crate) fn ks_count(&self, family: Family) -> usize {
        match family {
            Family::Channel => self.ks[0],
            Family::Pattern => self.ks[1],
            Family::Shard => 0,
        }
    }

    /// Counts the keyspace-capable items a (un)subscription added or removed.
    pub(crate) fn count_keyspace(&mut self, family: Family, on: bool, changed: &[Bytes]) {
        let (i, n) = match family {
            Family::Channel => (0, changed.iter().filter(|c| is_keyspace_channel(c)).count()),
            Family::Pattern => (1, changed.iter().filter(|p| may_match_keyspace(p)).count()),
            Family::Shard => return,
        };
        self.ks[i] = if on {
            self.ks[i] + n
        } else {
            self.ks[i].saturating_sub(n)
        };
    }

    /// Every channel and pattern held.
    fn all(&self) -> (Vec<Bytes>, Vec<Bytes>) {
        (
            self.subs.channels.iter().cloned().collect(),
            self.subs.patterns.iter().cloned().collect(),
        )
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let (channels, patterns) = self.all();
        self.index
            .shared
            .pubsub
            .add(&self.place, &channels, &patterns, -1);
    }
}
