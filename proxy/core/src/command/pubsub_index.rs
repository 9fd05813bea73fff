//! Every subscription Hive's clients hold, for PUBLISH's count: by client (what Redis would
//! count had they all been on one node) and by node (what each node counts of Hive's own
//! subscriber connections), so the nodes' answer can be corrected to "every subscriber
//! reached through Hive". Also which channels and patterns can see keyspace notifications.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use super::scan_cursor::glob_match;

const KEYSPACE: &[u8] = b"__keyspace@";
const KEYEVENT: &[u8] = b"__keyevent@";

/// Whether `channel` is a keyspace notification channel (made by each node for its own keys).
pub fn is_keyspace_channel(channel: &[u8]) -> bool {
    channel.starts_with(KEYSPACE) || channel.starts_with(KEYEVENT)
}

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

/// One subscriber's part: its channels and patterns, the node its home connection is on, and
/// the nodes of its keyspace connections (which carry only keyspace-capable ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    pub channels: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
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
    /// Subscribers in the index, so a PUBLISH with none through Hive takes no lock.
    parts: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    clients: Counts,
    nodes: HashMap<String, Counts>,
}

impl PubsubIndex {
    /// No client of the proxy subscribes to a channel or pattern.
    pub fn is_empty(&self) -> bool {
        self.parts.load(Ordering::Relaxed) == 0
    }

    /// Replaces one subscriber's `old` part by `new`.
    pub fn replace(&self, old: &Part, new: &Part) {
        let empty = |p: &Part| p.channels.is_empty() && p.patterns.is_empty();
        if empty(old) && empty(new) {
            return;
        }
        match (empty(old), empty(new)) {
            (true, false) => self.parts.fetch_add(1, Ordering::Relaxed),
            (false, true) => self.parts.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (part, by) in [(old, -1), (new, 1)] {
            g.clients.add(&part.channels, &part.patterns, by);
            if let Some(h) = &part.home {
                g.nodes
                    .entry(h.clone())
                    .or_default()
                    .add(&part.channels, &part.patterns, by);
            }
            let (kc, kp) = keyspace_only(part);
            for n in &part.keyspace_nodes {
                g.nodes.entry(n.clone()).or_default().add(&kc, &kp, by);
            }
        }
        g.nodes
            .retain(|_, c| !c.channels.is_empty() || !c.patterns.is_empty());
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
pub fn keyspace_only(part: &Part) -> (Vec<Bytes>, Vec<Bytes>) {
    (
        part.channels
            .iter()
            .filter(|c| is_keyspace_channel(c))
            .cloned()
            .collect(),
        part.patterns
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
        let a = Part {
            channels: vec![b("news")],
            patterns: vec![b("*")],
            home: Some("n1".into()),
            keyspace_nodes: vec!["n2".into(), "n3".into()],
        };
        idx.replace(&Part::default(), &a);
        let c = Part {
            channels: vec![b("news")],
            home: Some("n2".into()),
            ..Part::default()
        };
        idx.replace(&Part::default(), &c);
        let nodes = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Two clients on "news", plus a's pattern: 3 receivers through Hive.
        assert_eq!(idx.receivers(b"news", &[]).0, 3);
        // Node n2 counts c's channel and a's keyspace connection's "*".
        assert_eq!(idx.receivers(b"news", &nodes(&["n2"])).1, 2);
        assert_eq!(idx.receivers(b"news", &nodes(&["n1", "n2", "n3"])).1, 5);
        idx.replace(&a, &Part::default());
        assert_eq!(idx.receivers(b"news", &nodes(&["n1", "n2", "n3"])), (1, 1));
    }
}
