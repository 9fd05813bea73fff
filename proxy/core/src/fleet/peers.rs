//! The other Hives' subscription indexes, as their messages rebuild them, so PUBLISH and
//! PUBSUB NUMSUB/NUMPAT count every subscriber of the fleet, not only this Hive's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::state::pubsub_index::{Change, IndexImage, PubsubIndex};

struct Peer {
    run: u64,
    /// The last change applied; a message with another number means one was missed.
    seq: u64,
    index: PubsubIndex,
}

#[derive(Default)]
pub struct PeerIndexes {
    peers: Mutex<HashMap<String, Peer>>,
    /// Peers holding any subscription, so a PUBLISH with none takes no lock.
    busy: AtomicUsize,
}

/// What a message did to the peer's index.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// A change is missing (or the peer restarted): ask for its image.
    Gap,
    /// From an older run of a Hive that has restarted since: ignored.
    Stale,
}

impl PeerIndexes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recount(&self, peers: &HashMap<String, Peer>) {
        let n = peers.values().filter(|p| !p.index.is_empty()).count();
        self.busy.store(n, Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0
    }

    /// Applies change `seq` of peer `id`'s run `run`.
    pub fn change(&self, id: &str, run: u64, seq: u64, change: &Change) -> Applied {
        let mut g = self.lock();
        let out = match g.get_mut(id) {
            Some(p) if run < p.run => Applied::Stale,
            Some(p) if run == p.run && seq == p.seq + 1 => {
                let c = change;
                p.index.add(&c.place, &c.channels, &c.patterns, c.by);
                p.seq = seq;
                Applied::Done
            }
            Some(p) if run == p.run && seq <= p.seq => Applied::Done,
            _ => Applied::Gap,
        };
        self.recount(&g);
        out
    }

    /// Whether peer `id`'s heartbeat (run `run`, last change `seq`) says something is missing.
    pub fn behind(&self, id: &str, run: u64, seq: u64) -> bool {
        match self.lock().get(id) {
            Some(p) => run > p.run || (run == p.run && seq > p.seq),
            None => seq > 0,
        }
    }

    /// Replaces peer `id`'s index with its image as of change `seq`.
    pub fn image(&self, id: &str, run: u64, seq: u64, image: &IndexImage) -> Applied {
        let mut g = self.lock();
        if g.get(id)
            .is_some_and(|p| run < p.run || (run == p.run && seq < p.seq))
        {
            return Applied::Stale;
        }
        g.insert(
            id.to_string(),
            Peer {
                run,
                seq,
                index: PubsubIndex::from_image(image),
            },
        );
        self.recount(&g);
        Applied::Done
    }

    /// Peer `id` is gone: its subscribers with it.
    pub fn forget(&self, id: &str) {
        let mut g = self.lock();
        g.remove(id);
        self.recount(&g);
    }

    /// Summed over the peers: (their clients that receive a message on `channel`, their
    /// subscriber connections on `nodes` that the nodes count).
    pub fn receivers(&self, channel: &[u8], nodes: &[String]) -> (i64, i64) {
        if self.is_empty() {
            return (0, 0);
        }
        self.lock()
            .values()
            .map(|p| p.index.receivers(channel, nodes))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    pub fn numsub(&self, channel: &[u8]) -> i64 {
        if self.is_empty() {
            return 0;
        }
        self.lock().values().map(|p| p.index.numsub(channel)).sum()
    }

    /// The peers' patterns added to `mine`.
    pub fn patterns(&self, mine: Vec<Bytes>) -> usize {
        let mut all: HashSet<Bytes> = mine.into_iter().collect();
        if !self.is_empty() {
            for p in self.lock().values() {
                all.extend(p.index.patterns());
            }
        }
        all.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::pubsub_index::Placement;

    fn sub(home: &str, ch: &str, by: i64) -> Change {
        Change {
            place: Placement {
                home: Some(home.into()),
                keyspace_nodes: vec![],
            },
            channels: vec![Bytes::copy_from_slice(ch.as_bytes())],
            patterns: vec![],
            by,
        }
    }

    #[test]
    fn peers_apply_changes_in_order_and_see_gaps() {
        let p = PeerIndexes::default();
        assert!(p.is_empty());
        // The first change of an unknown peer: its earlier ones are unknown, so ask.
        assert_eq!(p.change("b", 1, 1, &sub("n1", "news", 1)), Applied::Gap);
        let (seq, img) = {
            let own = PubsubIndex::default();
            own.add(&sub("n1", "news", 1).place, &[Bytes::from("news")], &[], 1);
            (1, own.image().1)
        };
        assert_eq!(p.image("b", 1, seq, &img), Applied::Done);
        assert_eq!(p.numsub(b"news"), 1);
        assert_eq!(p.change("b", 1, 2, &sub("n2", "news", 1)), Applied::Done);
        assert_eq!(p.receivers(b"news", &["n2".into()]), (2, 1));
        // Change 4 before 3: a gap.
        assert_eq!(p.change("b", 1, 4, &sub("n2", "news", -1)), Applied::Gap);
        assert!(p.behind("b", 1, 4));
        // A restarted peer (a later run) starts over; its old run's messages are ignored.
        assert!(p.behind("b", 2, 0));
        assert_eq!(p.image("b", 2, 0, &IndexImage::default()), Applied::Done);
        assert_eq!(p.change("b", 1, 3, &sub("n2", "news", 1)), Applied::Stale);
        assert!(p.is_empty());
        assert_eq!(p.numsub(b"news"), 0);
    }

    #[test]
    fn peers_forgotten_take_their_subscribers() {
        let p = PeerIndexes::default();
        let own = PubsubIndex::default();
        own.add(&sub("n1", "x", 1).place, &[], &[Bytes::from("a*")], 1);
        p.image("b", 1, 1, &own.image().1);
        assert_eq!(p.patterns(vec![Bytes::from("a*"), Bytes::from("b*")]), 2);
        assert_eq!(p.receivers(b"abc", &[]).0, 1);
        p.forget("b");
        assert!(p.is_empty());
        assert_eq!(p.receivers(b"abc", &[]).0, 0);
    }
}
