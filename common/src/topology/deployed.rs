//! The slot map that sentinel and static deployments keep on their masters (hive-module's
//! `HIVE.SLOTS`), so that every Hive in front of them routes alike: its JSON form, its checks,
//! and slot-range text (`"0-5460,6000"`).

use serde::{Deserialize, Serialize};

use super::SlotRange;
use crate::SLOT_COUNT;

/// A deployment's slot map as stored on each master. A newer map has a higher `epoch`; a
/// master refuses one that is not newer than its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedMap {
    pub epoch: u64,
    pub shards: Vec<DeployedShard>,
    /// Slots being handed from one shard to another right now. Proxies hold transactions on
    /// them (a transaction is never split between source and target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moving: Vec<Moving>,
}

/// One shard: a Sentinel master name (sentinel mode) or the master's address (static mode),
/// and the slots it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedShard {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    pub slots: String,
}

/// Slots moving from shard `from` to shard `to` (shard names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moving {
    pub slots: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("not a slot map: {0}")]
    Json(String),
    #[error("shard `{0}`: {1}")]
    Slots(String, String),
    #[error("slot {0} belongs to two shards")]
    Overlap(u16),
    #[error("shard `{0}` is listed twice")]
    Twice(String),
    #[error("a moving entry names shard `{0}`, which is not in the map")]
    UnknownShard(String),
}

impl DeployedMap {
    /// Parses and checks a map: shards named once, slot ranges valid and disjoint.
    pub fn parse(json: &str) -> Result<DeployedMap, MapError> {
        let map: DeployedMap =
            serde_json::from_str(json).map_err(|e| MapError::Json(e.to_string()))?;
        map.check()?;
        Ok(map)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn check(&self) -> Result<(), MapError> {
        let mut owner = vec![false; SLOT_COUNT as usize];
        for (i, s) in self.shards.iter().enumerate() {
            if self.shards[..i].iter().any(|o| o.name == s.name) {
                return Err(MapError::Twice(s.name.clone()));
            }
            for r in parse_ranges(&s.slots).map_err(|e| MapError::Slots(s.name.clone(), e))? {
                for slot in r.start..=r.end {
                    if std::mem::replace(&mut owner[slot as usize], true) {
                        return Err(MapError::Overlap(slot));
                    }
                }
            }
        }
        for m in &self.moving {
            for name in [&m.from, &m.to] {
                if !self.shards.iter().any(|s| &s.name == name) {
                    return Err(MapError::UnknownShard(name.clone()));
                }
            }
            parse_ranges(&m.slots).map_err(|e| MapError::Slots(m.from.clone(), e))?;
        }
        Ok(())
    }

    /// The slot ranges of each shard, in shard order.
    pub fn ranges(&self) -> Vec<Vec<SlotRange>> {
        self.shards
            .iter()
            .map(|s| parse_ranges(&s.slots).unwrap_or_default())
            .collect()
    }

    /// One flag per slot: whether it is moving.
    pub fn moving_slots(&self) -> Vec<bool> {
        let mut out = vec![false; SLOT_COUNT as usize];
        for m in &self.moving {
            for r in parse_ranges(&m.slots).unwrap_or_default() {
                for s in r.start..=r.end {
                    out[s as usize] = true;
                }
            }
        }
        out
    }
}

/// Parses `"0-5460,6000,7000-7010"`; the empty string is no slots.
pub fn parse_ranges(text: &str) -> Result<Vec<SlotRange>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let num = |x: &str| {
            x.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n < SLOT_COUNT)
                .ok_or_else(|| format!("`{part}` is not a slot or slot range within 0-16383"))
        };
        let (start, end) = (num(a)?, num(b)?);
        if start > end {
            return Err(format!("`{part}`: the range starts after it ends"));
        }
        out.push(SlotRange { start, end });
    }
    Ok(out)
}

/// Writes sorted slots as ranges: `[1, 2, 3, 7]` → `"1-3,7"`.
pub fn format_slots(slots: &[u16]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < slots.len() {
        let start = slots[i];
        let mut end = start;
        while i + 1 < slots.len() && slots[i + 1] == end + 1 {
            i += 1;
            end = slots[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// Every slot in `ranges`, ascending.
pub fn expand(ranges: &[SlotRange]) -> Vec<u16> {
    let mut v: Vec<u16> = ranges.iter().flat_map(|r| r.start..=r.end).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A key name as hex, for the JSON a node keeps its slot state in (key names are bytes).
pub fn key_to_hex(key: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(key.len() * 2);
    for b in key {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// The key name `key_to_hex` wrote; `None` for text that is not even-length hex.
pub fn key_from_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    t.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Result<DeployedMap, MapError> {
        DeployedMap::parse(json)
    }

    #[test]
    fn slotmap_round_trips_and_checks() {
        let m = map(
            r#"{"epoch":3,"shards":[{"name":"a","slots":"0-99"},{"name":"b","slots":"100-16383"}],
            "moving":[{"slots":"90-99","from":"a","to":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(m.epoch, 3);
        assert_eq!(DeployedMap::parse(&m.to_json()).unwrap(), m);
        let moving = m.moving_slots();
        assert!(moving[90] && moving[99] && !moving[89] && !moving[100]);
        assert_eq!(
            m.ranges()[1],
            vec![SlotRange {
                start: 100,
                end: 16383
            }]
        );
    }

    #[test]
    fn slotmap_refuses_overlaps_twins_unknown_shards_and_bad_ranges() {
        let e =
            map(r#"{"epoch":1,"shards":[{"name":"a","slots":"0-10"},{"name":"b","slots":"10"}]}"#);
        assert_eq!(e, Err(MapError::Overlap(10)));
        let e = map(r#"{"epoch":1,"shards":[{"name":"a","slots":"0"},{"name":"a","slots":"1"}]}"#);
        assert_eq!(e, Err(MapError::Twice("a".into())));
        let e = map(
            r#"{"epoch":1,"shards":[{"name":"a","slots":"0"}],"moving":[{"slots":"0","from":"a","to":"z"}]}"#,
        );
        assert_eq!(e, Err(MapError::UnknownShard("z".into())));
        assert!(matches!(
            map(r#"{"epoch":1,"shards":[{"name":"a","slots":"5-2"}]}"#),
            Err(MapError::Slots(..))
        ));
        assert!(matches!(map("{}"), Err(MapError::Json(_))));
        assert!(matches!(map("[1,2]"), Err(MapError::Json(_))));
    }

    #[test]
    fn slot_ranges_format_and_parse() {
        assert_eq!(format_slots(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(format_slots(&[]), "");
        assert_eq!(parse_ranges("").unwrap(), vec![]);
        assert_eq!(
            expand(&parse_ranges("1-3,7,9-10").unwrap()),
            vec![1, 2, 3, 7, 9, 10]
        );
        assert!(parse_ranges("16384").is_err());
        assert!(parse_ranges("x").is_err());
    }

    #[test]
    fn key_hex_round_trips_any_bytes() {
        let key = b"{u}\x00\xff k";
        assert_eq!(key_from_hex(&key_to_hex(key)).unwrap(), key);
        assert_eq!(key_to_hex(b"\x01\xab"), "01ab");
        assert_eq!(key_from_hex("0"), None);
        assert_eq!(key_from_hex("zz"), None);
        assert_eq!(key_from_hex(""), Some(Vec::new()));
    }
}
