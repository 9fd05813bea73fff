//! Every subscription Hive's clients hold, for PUBLISH's count, kept by changes: by client (what Redis would
//! count had they all been on one node) and by node (what each node counts of Hive's own
//! subscriber connections), so the nodes' answer can be corrected to "every subscriber
//! reached through Hive". Also which channels and patterns can see keyspace notifications.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::sync::mpsc;

use bytes::Bytes;

use hive_common::glob::glob_match;
pub use hive_common::pubsub::is_keyspace_channel;
use hive_common::pubsub::{KEYEVENT, KEYSPACE};

/// Whether glob `pattern` can match some keyspace notification channel: its literal prefix
/// (up to the first `*`, `?`, `[` or `\`) and one of the two prefixes agree.
pub fn may_match_keyspace(pattern: &[u8]) -> bool {
    let lit_end = pattern
        .iter()
        .position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    let lit = &pattern[..lit_end];
    let whole = lit_end == pattern.len();
    [KEYSPACE, KEYEVENT].iter().any(|p| {
        if whole {
            lit.starts_with(p)
        } else {
            p.starts_with(lit) || lit.starts_with(p)
        }
    })
}

/// Where one subscriber's subscriptions live: the node of its home connection (all of them)
/// and the nodes of its keyspace connections (the keyspace-capable ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub home: Option<String>,
    pub keyspace_nodes: Vec<String>,
}

#[derive(Debug, Default)]
struct Counts {
    channels: HashMap<Bytes, u32>,
    patterns: HashMap<Bytes, u32>,
}

impl Counts {
    fn add(&mut self, channels: &[Bytes], patterns: &[Bytes], by: i64) {
        for (map, items) in [
            (&mut self.channels, channels),
            (&mut self.patterns, patterns),
        ] {
            for i in items {
                let e = map.entry(i.clone()).or_insert(0);
                *e = (*e as i64 + by).max(0) as u32;
                if *e == 0 {
                    map.remove(i);
                }
            }
        }
    }

    /// Redis's count: subscribers of the channel plus one per matching pattern subscription.
    fn receivers(&self, channel: &[u8]) -> i64 {
        let exact = self.channels.get(channel).copied().unwrap_or(0) as i64;
        let pats: i64 = self
            .patterns
            .iter()
            .filter(|(p, _)| glob_match(p, channel))
            .map(|(_, n)| *n as i64)
            .sum();
        exact + pats
    }
}

#[derive(Debug, Default)]
pub struct PubsubIndex {
    inner: Mutex<Inner>,
    /// Subscriptions in the index, so a PUBLISH with none through Hive takes no lock.
    entries: AtomicUsize,
    /// Where each change goes, numbered, when a fleet shares this index with its peers.
    changes: OnceLock<mpsc::UnboundedSender<(u64, Change)>>,
}

#[derive(Debug, Default)]
struct Inner {
    clients: Counts,
    nodes: HashMap<String, Counts>,
    /// Changes made so far: the number of the last one sent to the fleet.
    seq: u64,
}

/// One call of `PubsubIndex::add`, as the fleet sends it to the other Hives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub place: Placement,
    pub channels: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
    pub by: i64,
}

/// One table of counts (channels, patterns), as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountsImage {
    pub channels: Vec<(Bytes, u32)>,
    pub patterns: Vec<(Bytes, u32)>,
}

/// A whole index as plain data: what a Hive sends a peer that missed a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexImage {
    pub clients: CountsImage,
    pub nodes: Vec<(String, CountsImage)>,
}

impl Counts {
    fn image(&self) -> CountsImage {
        let list = |m: &HashMap<Bytes, u32>| m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        CountsImage {
            channels: list(&self.channels),
            patterns: list(&self.patterns),
        }
    }

    fn from_image(i: &CountsImage) -> Counts {
        Counts {
            channels: i.channels.iter().cloned().collect(),
            patterns: i.patterns.iter().cloned().collect(),
        }
    }

    fn len(&self) -> usize {
        self.channels
            .values()
            .chain(self.patterns.values())
            .map(|n| *n as usize)
            .sum()
    }
}

impl PubsubIndex {
    /// No client of the proxy subscribes to a channel or pattern.
    pub fn is_empty(&self) -> bool {
        self.entries.load(Ordering::Relaxed) == 0
    }

    /// Adds (`by` 1) or removes (`by` -1) one subscriber's `channels` and `patterns`, held at
    /// `place`. Called with what changed, so a client subscribing to many channels one at a
    /// time costs the index one entry each, not its whole list each time.
    pub fn add(&self, place: &Placement, channels: &[Bytes], patterns: &[Bytes], by: i64) {
        let n = channels.len() + patterns.len();
        if n == 0 {
            return;
        }
        if by > 0 {
            self.entries.fetch_add(n, Ordering::Relaxed);
        } else {
            self.entries.fetch_sub(n, Ordering::Relaxed);
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = self.changes.get() {
            // Numbered under the lock, so peers see the changes in the index's order.
            g.seq += 1;
            let change = Change {
                place: place.clone(),
                channels: channels.to_vec(),
                patterns: patterns.to_vec(),
                by,
            };
            let _ = tx.send((g.seq, change));
        }
        g.clients.add(channels, patterns, by);
        if let Some(h) = &place.home {
            g.nodes
                .entry(h.clone())
                .or_default()
                .add(channels, patterns, by);
        }
        if !place.keyspace_nodes.is_empty() {
            let (kc, kp) = keyspace_only(channels, patterns);
            for node in &place.keyspace_nodes {
                g.nodes.entry(node.clone()).or_default().add(&kc, &kp, by);
            }
        }
        g.nodes
            .retain(|_, c| !c.channels.is_empty() || !c.patterns.is_empty());
    }

    /// PUBSUB NUMSUB: the proxy's clients subscribed to `channel` itself (patterns aside).
    pub fn numsub(&self, channel: &[u8]) -> i64 {
        if self.is_empty() {
            return 0;
        }
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.clients.channels.get(channel).copied().unwrap_or(0) as i64
    }

    /// PUBSUB NUMPAT: the distinct patterns the proxy's clients subscribe to.
    pub fn numpat(&self) -> i64 {
        if self.is_empty() {
            return 0;
        }
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.clients.patterns.len() as i64
    }

    /// Sends every later change to `tx`, numbered (a fleet shares the index this way).
    pub fn share(&self, tx: mpsc::UnboundedSender<(u64, Change)>) {
        let _ = self.changes.set(tx);
    }

    /// The whole index and the number of the last change it holds.
    pub fn image(&self) -> (u64, IndexImage) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let image = IndexImage {
            clients: g.clients.image(),
            nodes: g
                .nodes
                .iter()
                .map(|(n, c)| (n.clone(), c.image()))
                .collect(),
        };
        (g.seq, image)
    }

    /// An index holding `image` (a peer's, as it sent it).
    pub fn from_image(image: &IndexImage) -> PubsubIndex {
        let clients = Counts::from_image(&image.clients);
        let idx = PubsubIndex::default();
        idx.entries.store(clients.len(), Ordering::Relaxed);
        let mut g = idx.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.clients = clients;
        g.nodes = image
            .nodes
            .iter()
            .map(|(n, c)| (n.clone(), Counts::from_image(c)))
            .collect();
        drop(g);
        idx
    }

    /// The distinct patterns subscribed to, for a NUMPAT across a fleet.
    pub fn patterns(&self) -> Vec<Bytes> {
        if self.is_empty() {
            return Vec::new();
        }
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.clients.patterns.keys().cloned().collect()
    }

    /// Moves one subscriber's subscriptions from `old` to `new` (a connection changed nodes).
    pub fn moved(&self, old: &Placement, new: &Placement, channels: &[Bytes], patterns: &[Bytes]) {
        if old != new {
            self.add(old, channels, patterns, -1);
            self.add(new, channels, patterns, 1);
        }
    }

    /// `(Hive's clients that receive a message on channel, Hive's own subscriber connections
    /// on `nodes` that the nodes count for it)`.
    pub fn receivers(&self, channel: &[u8], nodes: &[String]) -> (i64, i64) {
        if self.is_empty() {
            return (0, 0);
        }
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let clients = g.clients.receivers(channel);
        let conns = nodes
            .iter()
            .filter_map(|n| g.nodes.get(n))
            .map(|c| c.receivers(channel))
            .sum();
        (clients, conns)
    }
}

/// The channels and patterns a keyspace connection carries.
pub fn keyspace_only(channels: &[Bytes], patterns: &[Bytes]) -> (Vec<Bytes>, Vec<Bytes>) {
    (
        channels
            .iter()
            .filter(|c| is_keyspace_channel(c))
            .cloned()
            .collect(),
        patterns
            .iter()
            .filter(|p| may_match_keyspace(p))
            .cloned()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn keyspace_patterns_recognised() {
        for p in [
            "*",
            "__key*",
            "__keyspace@0__:*",
            "__keyevent@*__:expired",
            "_*",
            "?_key*",
        ] {
            assert!(may_match_keyspace(p.as_bytes()), "{p}");
        }
        for p in ["news*", "__keyspace", "__keyx*", "user:*"] {
            assert!(!may_match_keyspace(p.as_bytes()), "{p}");
        }
        assert!(is_keyspace_channel(b"__keyevent@0__:expired"));
        assert!(!is_keyspace_channel(b"news"));
    }

    #[test]
    fn index_counts_clients_and_connections() {
        let idx = PubsubIndex::default();
        let a = Placement {
            home: Some("n1".into()),
            keyspace_nodes: vec!["n2".into(), "n3".into()],
        };
        idx.add(&a, &[b("news")], &[b("*")], 1);
        let c = Placement {
            home: Some("n2".into()),
            ..Placement::default()
        };
        idx.add(&c, &[b("news")], &[], 1);
        let nodes = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Two clients on "news", plus a's pattern: 3 receivers through Hive.
        assert_eq!(idx.receivers(b"news", &[]).0, 3);
        // Node n2 counts c's channel and a's keyspace connection's "*".
        assert_eq!(idx.receivers(b"news", &nodes(&["n2"])).1, 2);
        assert_eq!(idx.receivers(b"news", &nodes(&["n1", "n2", "n3"])).1, 5);
        // c's home moves to n3.
        let c3 = Placement {
            home: Some("n3".into()),
            ..Placement::default()
        };
        idx.moved(&c, &c3, &[b("news")], &[]);
        assert_eq!(idx.receivers(b"news", &nodes(&["n2"])).1, 1);
        idx.add(&a, &[b("news")], &[b("*")], -1);
        assert_eq!(idx.receivers(b"news", &nodes(&["n1", "n2", "n3"])), (1, 1));
        idx.add(&c3, &[b("news")], &[], -1);
        assert!(idx.is_empty());
        assert_eq!(idx.receivers(b"news", &nodes(&["n3"])), (0, 0));
    }
}
