//! SCAN across shards with a cursor that is a single integer and means the same thing after a
//! proxy restart or a failover, because it names slots, never connections or node indexes.
//!
//! - Cluster mode: the cursor is the next hash slot to read. Each step reads whole slots with
//!   `CLUSTER GETKEYSINSLOT` (in a script that declares a key of that slot, so a moved slot
//!   answers MOVED and a migrating one is waited out). A key is returned exactly once even when
//!   slots move between calls, because a slot is read in one atomic step.
//! - Sentinel and static modes (slots never move): the cursor is `node_cursor << 14 | slot`,
//!   where `slot` is the first slot of the shard being scanned with the node's own SCAN.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use hive_common::glob::glob_match;
use hive_common::resp::{parse_value, write_array_header, write_bulk, Value};
use hive_common::slot::SLOT_COUNT;
use hive_common::Slot;

use crate::error::{ProxyError, UpstreamReason};

/// Reads one slot's keys, optionally only those of one TYPE.
pub const SLOT_SCRIPT: &str = "local n = redis.call('CLUSTER','COUNTKEYSINSLOT',ARGV[1]) \
if n == 0 then return {} end \
local ks = redis.call('CLUSTER','GETKEYSINSLOT',ARGV[1],n) \
if ARGV[2] == '' then return ks end \
local out = {} \
for _,k in ipairs(ks) do if redis.call('TYPE',k)['ok'] == ARGV[2] then out[#out+1] = k end end \
return out";

/// For every slot, a key name that hashes to it (the script's declared key; it need not exist).
static SLOT_KEYS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut keys = vec![String::new(); SLOT_COUNT as usize];
    let mut left = SLOT_COUNT as usize;
    let mut n = 0u64;
    while left > 0 {
        let k = format!("hive:slot:{n}");
        let s = Slot::for_key(k.as_bytes()).get() as usize;
        if keys[s].is_empty() {
            keys[s] = k;
            left -= 1;
        }
        n += 1;
    }
    keys
});

pub fn slot_key(slot: u16) -> &'static str {
    &SLOT_KEYS[slot as usize]
}

/// SCAN's options, validated as Redis does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanArgs {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub kind: Option<Bytes>,
}

impl ScanArgs {
    pub fn parse(args: &[&[u8]]) -> Result<ScanArgs, &'static str> {
        let cursor = std::str::from_utf8(args.first().ok_or("syntax error")?)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("invalid cursor")?;
        let mut a = ScanArgs {
            cursor,
            count: 10,
            ..ScanArgs::default()
        };
        let mut i = 1;
        while i < args.len() {
            let opt = args[i];
            let val = *args.get(i + 1).ok_or("syntax error")?;
            if opt.eq_ignore_ascii_case(b"match") {
                a.pattern = Some(Bytes::copy_from_slice(val));
            } else if opt.eq_ignore_ascii_case(b"count") {
                let n = std::str::from_utf8(val)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or("value is not an integer or out of range")?;
                if n < 1 {
                    return Err("syntax error");
                }
                a.count = n as usize;
            } else if opt.eq_ignore_ascii_case(b"type") {
                a.kind = Some(Bytes::copy_from_slice(&val.to_ascii_lowercase()));
            } else {
                return Err("syntax error");
            }
            i += 2;
        }
        Ok(a)
    }
}

/// Sentinel/static cursor: (node cursor, first slot of the shard).
pub fn split_cursor(c: u64) -> (u64, u16) {
    (c >> 14, (c & 0x3fff) as u16)
}

pub fn join_cursor(node: u64, slot: u16) -> Option<u64> {
    (node < 1 << 50).then_some(node << 14 | u64::from(slot))
}

/// Collects the replies of one SCAN step.
#[derive(Debug)]
pub enum ScanMerge {
    /// Cluster mode: one key list per slot read; `next` is the next slot (0 = done).
    Slots {
        next: u64,
        pattern: Option<Bytes>,
        parts: Vec<Option<Bytes>>,
        left: usize,
    },
    /// Other modes: one node's SCAN reply; the shard's first slot, and the next shard's.
    Node { slot: u16, next_slot: Option<u16> },
}

impl ScanMerge {
    pub fn add(&mut self, part: usize, frame: Bytes) -> Option<Bytes> {
        match self {
            ScanMerge::Slots { parts, left, .. } => {
                if let Some(p) = parts.get_mut(part) {
                    *p = Some(frame);
                }
                *left = left.saturating_sub(1);
                (*left == 0).then(|| self.finish())
            }
            ScanMerge::Node { slot, next_slot } => Some(node_reply(&frame, *slot, *next_slot)),
        }
    }

    fn finish(&mut self) -> Bytes {
        let ScanMerge::Slots {
            next,
            pattern,
            parts,
            ..
        } = self
        else {
            return Bytes::new();
        };
        let mut keys: Vec<Bytes> = Vec::new();
        for p in parts.iter().flatten() {
            if p.first() == Some(&b'-') {
                return p.clone();
            }
            match parse_value(p) {
                Ok(Some((v, _))) => {
                    let items = v.as_array().map(|a| a.to_vec()).unwrap_or_default();
                    keys.extend(items.into_iter().filter_map(|k| match k {
                        Value::Bulk(b) => Some(b),
                        _ => None,
                    }));
                }
                _ => return error("a node sent a bad slot key list"),
            }
        }
        if let Some(pat) = pattern {
            keys.retain(|k| glob_match(pat, k));
        }
        reply(*next, &keys)
    }
}

fn error(why: &str) -> Bytes {
    ProxyError::upstream(UpstreamReason::BadReply, format!("Hive: {why}")).frame()
}

fn reply(cursor: u64, keys: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    write_array_header(&mut out, 2);
    write_bulk(&mut out, cursor.to_string().as_bytes());
    write_array_header(&mut out, keys.len());
    keys.iter().for_each(|k| write_bulk(&mut out, k));
    out.freeze()
}

fn node_reply(frame: &Bytes, slot: u16, next_slot: Option<u16>) -> Bytes {
    if frame.first() == Some(&b'-') {
        return frame.clone();
    }
    let Ok(Some((v, _))) = parse_value(frame) else {
        return error("a node sent a bad SCAN reply");
    };
    let parsed = v.as_array().and_then(|a| {
        let c = std::str::from_utf8(a.first()?.as_bytes()?)
            .ok()?
            .parse::<u64>()
            .ok()?;
        let keys: Vec<Bytes> = a
            .get(1)?
            .as_array()?
            .iter()
            .filter_map(|k| match k {
                Value::Bulk(b) => Some(b.clone()),
                _ => None,
            })
            .collect();
        Some((c, keys))
    });
    let Some((c, keys)) = parsed else {
        return error("a node sent a bad SCAN reply");
    };
    let next = if c != 0 {
        join_cursor(c, slot)
    } else {
        Some(next_slot.map_or(0, |s| join_cursor(0, s).unwrap_or(0)))
    };
    match next {
        Some(n) => reply(n, &keys),
        None => error("a node's SCAN cursor is too large to encode"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_args_validate_as_redis() {
        let a = ScanArgs::parse(&[b"0", b"MATCH", b"k*", b"COUNT", b"100", b"TYPE", b"STRING"]);
        let a = a.unwrap();
        assert_eq!(a.count, 100);
        assert_eq!(a.kind.as_deref(), Some(&b"string"[..]));
        assert_eq!(ScanArgs::parse(&[b"x"]).unwrap_err(), "invalid cursor");
        assert_eq!(
            ScanArgs::parse(&[b"0", b"COUNT", b"0"]).unwrap_err(),
            "syntax error"
        );
        assert_eq!(
            ScanArgs::parse(&[b"0", b"MATCH"]).unwrap_err(),
            "syntax error"
        );
    }

    #[test]
    fn slot_keys_cover_every_slot() {
        for s in [0u16, 1, 5460, 16383] {
            assert_eq!(Slot::for_key(slot_key(s).as_bytes()).get(), s);
        }
    }

    #[test]
    fn node_cursor_round_trips_and_advances() {
        let c = join_cursor(12345, 5461).unwrap();
        assert_eq!(split_cursor(c), (12345, 5461));
        let frame = Bytes::from_static(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
        let out = node_reply(&frame, 0, Some(5461));
        assert_eq!(&out[..], b"*2\r\n$4\r\n5461\r\n*1\r\n$1\r\nk\r\n");
        let out = node_reply(&frame, 10923, None);
        assert_eq!(&out[..], b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
    }
}
