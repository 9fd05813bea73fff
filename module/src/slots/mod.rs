//! The slot state a master keeps for sentinel and static deployments: the deployment's slot map
//! (`HIVE.SLOTS SET`, newest epoch wins) and the slots this node is handing to another master
//! (`HIVE.SLOTS MIGRATING`), with the JSON they persist as. Pure: no Redis types.

pub mod acks;
pub mod guard;
pub mod imports;
pub mod takeover;

use std::collections::{BTreeMap, BTreeSet};

use hive_common::topology::deployed::{
    expand, format_slots, key_from_hex, key_to_hex, parse_ranges, DeployedMap,
};
use serde::{Deserialize, Serialize};

/// What `HIVE.SLOTS SET` did.
#[derive(Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Stored,
    /// The same map again (a retried or replayed SET): nothing changes.
    Same,
}

/// A master's slot state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// The deployment's map, as JSON, and its epoch (0: none yet).
    pub map: Option<DeployedMap>,
    /// Slot → the master it is being handed to.
    pub migrating: BTreeMap<u16, String>,
    /// Slots whose handover is done, still guarded until this unix ms: a request a proxy
    /// routed by the old map may still be on its way, and must not write the key here.
    pub until: BTreeMap<u16, u64>,
    /// Cluster mode: slots Redis Cluster itself marks MIGRATING on this master, to this
    /// target. Redis does not replicate that mark; a replica promoted mid-move guards them
    /// (`promote`).
    pub standby: BTreeMap<u16, String>,
    /// Keys of the last MIGRATEs whose end the replicas have not confirmed: each may be on
    /// the target already, with its DEL here not yet replicated.
    pub inflight: BTreeSet<Vec<u8>>,
    /// This node became master with `inflight` set: those keys may be stale copies, and wait
    /// (TRYAGAIN) until `hive reshard --resume` settles which copy is the live one.
    pub suspect: bool,
}

/// The persisted form (`hive-slots-<port>.json`, and `HIVE.SETSLOTS SYNC`), versioned by its `v`.
#[derive(Serialize, Deserialize)]
struct Persisted {
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    map: Option<DeployedMap>,
    #[serde(default)]
    migrating: Vec<Handover>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    standby: Vec<Handover>,
    /// Key names in hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inflight: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    suspect: bool,
}

#[derive(Serialize, Deserialize)]
struct Handover {
    to: String,
    slots: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u64>,
}

impl SlotState {
    pub fn epoch(&self) -> u64 {
        self.map.as_ref().map_or(0, |m| m.epoch)
    }

    /// Stores `json` if its epoch is above this node's; the same map again is accepted.
    pub fn set_map(&mut self, json: &str) -> Result<SetOutcome, String> {
        let map = DeployedMap::parse(json).map_err(|e| e.to_string())?;
        if map.epoch == 0 {
            return Err("a slot map's epoch starts at 1".into());
        }
        match &self.map {
            Some(cur) if *cur == map => return Ok(SetOutcome::Same),
            Some(cur) if cur.epoch >= map.epoch => {
                return Err(format!(
                    "STALE this node has epoch {}; a new map needs a higher one (got {})",
                    cur.epoch, map.epoch
                ))
            }
            _ => {}
        }
        self.map = Some(map);
        Ok(SetOutcome::Stored)
    }

    /// Marks `slots` (range text) as being handed to `to` (`host:port`).
    pub fn set_migrating(&mut self, to: &str, slots: &str) -> Result<usize, String> {
        if to.is_empty() || !to.contains(':') {
            return Err(format!("`{to}` is not a host:port"));
        }
        let slots = expand(&parse_ranges(slots)?);
        for s in &slots {
            self.migrating.insert(*s, to.to_string());
            self.until.remove(s);
            self.standby.remove(s);
        }
        Ok(slots.len())
    }

    /// Ends the handover of `slots` (range text) at `deadline` (unix ms) instead of now: they
    /// stay guarded (every key there is gone, so every request is sent on) until then.
    pub fn set_stable_after(&mut self, slots: &str, deadline: u64) -> Result<usize, String> {
        let slots = expand(&parse_ranges(slots)?);
        let mut n = 0;
        for s in slots.iter().filter(|s| self.migrating.contains_key(s)) {
            self.until.insert(*s, deadline);
            n += 1;
        }
        Ok(n)
    }

    /// Ends the guards whose time is up; whether any did.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let done: Vec<u16> = self
            .until
            .iter()
            .filter(|(_, t)| **t <= now_ms)
            .map(|(s, _)| *s)
            .collect();
        for s in &done {
            self.until.remove(s);
            self.migrating.remove(s);
        }
        !done.is_empty()
    }

    /// Ends the handover of `slots` (range text), or of every slot with `None`.
    pub fn set_stable(&mut self, slots: Option<&str>) -> Result<usize, String> {
        match slots {
            None => {
                let n = self.migrating.len() + self.standby.len();
                self.migrating.clear();
                self.until.clear();
                self.standby.clear();
                self.clear_inflight();
                Ok(n)
            }
            Some(text) => {
                let slots = expand(&parse_ranges(text)?);
                let mut n = 0;
                for s in &slots {
                    self.until.remove(s);
                    n += usize::from(self.migrating.remove(s).is_some());
                    n += usize::from(self.standby.remove(s).is_some());
                }
                let done: BTreeSet<u16> = slots.into_iter().collect();
                self.inflight
                    .retain(|k| !done.contains(&hive_common::Slot::for_key(k).get()));
                self.suspect &= !self.inflight.is_empty();
                Ok(n)
            }
        }
    }

    /// The handovers grouped by target and guard deadline: `(target, "1-5,9", until)`.
    pub fn handovers(&self) -> Vec<(String, String, Option<u64>)> {
        group(&self.migrating, &self.until)
    }

    pub fn to_json(&self) -> String {
        let p = Persisted {
            v: 1,
            map: self.map.clone(),
            migrating: self
                .handovers()
                .into_iter()
                .map(|(to, slots, until)| Handover { to, slots, until })
                .collect(),
            standby: group(&self.standby, &BTreeMap::new())
                .into_iter()
                .map(|(to, slots, _)| Handover {
                    to,
                    slots,
                    until: None,
                })
                .collect(),
            inflight: self.inflight.iter().map(|k| key_to_hex(k)).collect(),
            suspect: self.suspect,
        };
        serde_json::to_string(&p).unwrap_or_default()
    }

    pub fn from_json(json: &str) -> Result<SlotState, String> {
        let p: Persisted = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if p.v != 1 {
            return Err(format!("unknown slot state version {}", p.v));
        }
        let mut st = SlotState {
            map: p.map,
            ..SlotState::default()
        };
        if let Some(m) = &st.map {
            m.check().map_err(|e| e.to_string())?;
        }
        for h in p.migrating {
            st.set_migrating(&h.to, &h.slots)?;
            if let Some(t) = h.until {
                st.set_stable_after(&h.slots, t)?;
            }
        }
        for h in p.standby {
            st.set_standby(&h.to, &h.slots)?;
        }
        for k in &p.inflight {
            st.inflight
                .insert(key_from_hex(k).ok_or_else(|| format!("bad key `{k}` in inflight"))?);
        }
        st.suspect = p.suspect && !st.inflight.is_empty();
        Ok(st)
    }
}

/// Slots grouped by target and guard deadline: `(target, "1-5,9", until)`.
fn group(
    by_slot: &BTreeMap<u16, String>,
    until: &BTreeMap<u16, u64>,
) -> Vec<(String, String, Option<u64>)> {
    let mut by: BTreeMap<(&str, Option<u64>), Vec<u16>> = BTreeMap::new();
    for (s, to) in by_slot {
        by.entry((to, until.get(s).copied())).or_default().push(*s);
    }
    by.into_iter()
        .map(|((to, until), slots)| (to.to_string(), format_slots(&slots), until))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(epoch: u64, a: &str) -> String {
        format!(r#"{{"epoch":{epoch},"shards":[{{"name":"a","slots":"{a}"}}]}}"#)
    }

    #[test]
    fn set_map_takes_only_a_newer_epoch() {
        let mut st = SlotState::default();
        assert_eq!(st.set_map(&map(2, "0-16383")), Ok(SetOutcome::Stored));
        assert_eq!(st.set_map(&map(2, "0-16383")), Ok(SetOutcome::Same));
        let stale = st.set_map(&map(2, "0-100")).unwrap_err();
        assert!(stale.starts_with("STALE this node has epoch 2"), "{stale}");
        assert!(st.set_map(&map(1, "0-100")).is_err());
        assert!(st.set_map(&map(0, "0-100")).is_err());
        assert_eq!(st.set_map(&map(3, "0-100")), Ok(SetOutcome::Stored));
        assert_eq!(st.epoch(), 3);
        assert!(st.set_map("not json").is_err());
        assert_eq!(st.epoch(), 3, "a refused map changes nothing");
    }

    #[test]
    fn handovers_group_by_target_and_end() {
        let mut st = SlotState::default();
        assert_eq!(st.set_migrating("127.0.0.1:7001", "1-3,9"), Ok(4));
        assert_eq!(st.set_migrating("127.0.0.1:7002", "5"), Ok(1));
        assert!(st.set_migrating("nohost", "5").is_err());
        assert!(st.set_migrating("127.0.0.1:7002", "99999").is_err());
        assert_eq!(
            st.handovers(),
            vec![
                ("127.0.0.1:7001".to_string(), "1-3,9".to_string(), None),
                ("127.0.0.1:7002".to_string(), "5".to_string(), None)
            ]
        );
        assert_eq!(st.set_stable(Some("2-5")), Ok(3));
        assert_eq!(st.set_stable(None), Ok(2));
        assert!(st.migrating.is_empty());
    }

    #[test]
    fn a_finished_handover_stays_guarded_until_its_deadline() {
        let mut st = SlotState::default();
        st.set_migrating("127.0.0.1:7001", "1-3").unwrap();
        assert_eq!(st.set_stable_after("2-9", 5000), Ok(2));
        assert_eq!(
            st.handovers(),
            vec![
                ("127.0.0.1:7001".to_string(), "1".to_string(), None),
                ("127.0.0.1:7001".to_string(), "2-3".to_string(), Some(5000))
            ]
        );
        assert!(!st.expire(4999));
        assert_eq!(st.migrating.len(), 3, "guarded until the deadline");
        assert!(st.expire(5000));
        assert_eq!(st.migrating.keys().copied().collect::<Vec<_>>(), vec![1]);
        // Handed over again: no deadline any more.
        st.set_stable_after("1", 10).unwrap();
        st.set_migrating("127.0.0.1:7002", "1").unwrap();
        assert!(!st.expire(u64::MAX));
    }

    #[test]
    fn slot_state_persists_and_restores() {
        let mut st = SlotState::default();
        st.set_map(&map(4, "0-16383")).unwrap();
        st.set_migrating("[::1]:7001", "10-12").unwrap();
        st.set_stable_after("12", 99).unwrap();
        st.set_standby("127.0.0.1:7002", "20-21").unwrap();
        st.set_inflight(vec![b"k\xff".to_vec()]).unwrap();
        st.promote();
        st.set_standby("127.0.0.1:7002", "30").unwrap();
        assert!(st.suspect);
        let back = SlotState::from_json(&st.to_json()).unwrap();
        assert_eq!(back, st);
        assert!(SlotState::from_json(r#"{"v":9}"#).is_err());
        assert!(SlotState::from_json("garbage").is_err());
    }
}
