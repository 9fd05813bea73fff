//! What a replica promoted in the middle of a Redis Cluster slot move takes over from its dead
//! master. Redis Cluster keeps a slot's MIGRATING mark on the master alone, so the promoted
//! replica would serve the slot as its own: keys that already moved would read as missing
//! there, and a write to one would make a second copy. `hive reshard` therefore tells the
//! master's hive-module, which replicates it: the slots it hands over (`standby`), and before
//! each round of MIGRATEs the keys in it (`inflight`), confirmed on the replicas with `WAIT`
//! before the keys move. A promoted replica guards the standby slots as their source would
//! (ASK for a key that is gone, TRYAGAIN for split keys), and holds back the keys of the last
//! unconfirmed round (TRYAGAIN) until `--resume` settles which copy is the live one. Pure.

use std::collections::BTreeSet;

use hive_common::topology::deployed::{expand, parse_ranges};

use super::SlotState;

/// The most keys one round of MIGRATEs may mark: the mark is one replicated command.
pub const MAX_INFLIGHT: usize = 16_384;

impl SlotState {
    /// Cluster mode: `slots` are MIGRATING to `to` in Redis Cluster's own state on this master.
    /// They are guarded here only once a replica of it is promoted.
    pub fn set_standby(&mut self, to: &str, slots: &str) -> Result<usize, String> {
        if to.is_empty() || !to.contains(':') {
            return Err(format!("`{to}` is not a host:port"));
        }
        let slots = expand(&parse_ranges(slots)?);
        for s in &slots {
            // Redis Cluster guards them on this node: the module's own guard stands down.
            self.migrating.remove(s);
            self.until.remove(s);
            self.standby.insert(*s, to.to_string());
        }
        Ok(slots.len())
    }

    /// The keys of the next round of MIGRATEs (empty: none in flight). Set on the serving
    /// master, which knows where its keys are: nothing is suspect there.
    pub fn set_inflight(&mut self, keys: Vec<Vec<u8>>) -> Result<usize, String> {
        if keys.len() > MAX_INFLIGHT {
            return Err(format!(
                "at most {MAX_INFLIGHT} keys may be in flight (got {})",
                keys.len()
            ));
        }
        self.inflight = keys.into_iter().collect();
        self.suspect = false;
        Ok(self.inflight.len())
    }

    pub fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.suspect = false;
    }

    /// This node became a master: its standby slots are guarded from now on, and the keys in
    /// flight when its old master stopped are suspect. Whether anything changed.
    pub fn promote(&mut self) -> bool {
        let had = !self.standby.is_empty() || (!self.inflight.is_empty() && !self.suspect);
        let standby = std::mem::take(&mut self.standby);
        self.migrating.extend(standby);
        self.suspect = !self.inflight.is_empty();
        had
    }

    /// The keys the guard holds back: the in-flight ones, once this node took over.
    pub fn suspects(&self) -> &BTreeSet<Vec<u8>> {
        static NONE: BTreeSet<Vec<u8>> = BTreeSet::new();
        if self.suspect {
            &self.inflight
        } else {
            &NONE
        }
    }

    /// `--resume` found which copies are live: `keys` leave the suspects (the caller deletes
    /// the local copy of those the target holds). Returns those that were suspect.
    pub fn forget(&mut self, keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let out: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| self.suspect && self.inflight.remove(*k))
            .cloned()
            .collect();
        self.suspect &= !self.inflight.is_empty();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
        ks.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    #[test]
    fn takeover_guards_standby_slots_only_after_promotion() {
        let mut st = SlotState::default();
        st.set_migrating("127.0.0.1:7001", "5").unwrap();
        assert_eq!(st.set_standby("127.0.0.1:7002", "1-5"), Ok(5));
        assert!(st.migrating.is_empty(), "Redis Cluster guards them here");
        assert!(st.set_standby("nohost", "1").is_err());
        st.set_inflight(keys(&["a", "b"])).unwrap();
        assert!(
            st.suspects().is_empty(),
            "the serving master knows its keys"
        );
        assert!(st.promote());
        assert_eq!(st.migrating.len(), 5);
        assert!(st.standby.is_empty());
        assert_eq!(st.suspects().len(), 2);
        assert!(!st.promote(), "a second promotion changes nothing");
    }

    #[test]
    fn takeover_forgets_only_suspect_keys() {
        let mut st = SlotState::default();
        st.set_inflight(keys(&["a", "b"])).unwrap();
        assert!(st.forget(&keys(&["a"])).is_empty(), "not suspect yet");
        st.promote();
        assert_eq!(st.forget(&keys(&["a", "zz"])), keys(&["a"]));
        assert!(st.suspect);
        assert_eq!(st.forget(&keys(&["b"])), keys(&["b"]));
        assert!(!st.suspect && st.inflight.is_empty());
        let too_many = vec![b"k".to_vec(); MAX_INFLIGHT + 1];
        assert!(st.set_inflight(too_many).is_err());
    }

    #[test]
    fn takeover_ends_with_the_slots_it_covers() {
        let mut st = SlotState::default();
        let k = b"{u}a".to_vec();
        let slot = hive_common::Slot::for_key(&k).get();
        st.set_standby("127.0.0.1:7002", &slot.to_string()).unwrap();
        st.set_inflight(vec![k, b"other".to_vec()]).unwrap();
        st.promote();
        assert_eq!(st.set_stable(Some(&slot.to_string())), Ok(1));
        assert_eq!(st.inflight.len(), 1, "keys of other slots stay");
        assert_eq!(st.set_stable(None), Ok(0));
        assert_eq!(st, SlotState::default());
    }
}
