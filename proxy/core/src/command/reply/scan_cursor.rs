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

/// The keys of one slot, from `SLOT_SCRIPT`'s reply; a node's error reply as it came.
pub fn slot_keys(frame: &Bytes) -> Result<Vec<Bytes>, Bytes> {
    if frame.first() == Some(&b'-') {
        return Err(frame.clone());
    }
    match parse_value(frame) {
        Ok(Some((v, _))) => Ok(v
            .as_array()
            .map(|a| a.to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| match k {
                Value::Bulk(b) => Some(b),
                _ => None,
            })
            .collect()),
        _ => Err(error("a node sent a bad slot key list")),
    }
}

/// A node's SCAN reply: its next cursor and the keys; its error reply as it came.
pub fn node_page(frame: &Bytes) -> Result<(u64, Vec<Bytes>), Bytes> {
    if frame.first() == Some(&b'-') {
        return Err(frame.clone());
    }
    let Ok(Some((v, _))) = parse_value(frame) else {
        return Err(error("a node sent a bad SCAN reply"));
    };
    v.as_array()
        .and_then(|a| {
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
        })
        .ok_or_else(|| error("a node sent a bad SCAN reply"))
}

/// Keeps the keys `pattern` matches (cluster mode reads whole slots, then filters).
pub fn matching(keys: &mut Vec<Bytes>, pattern: Option<&Bytes>) {
    if let Some(p) = pattern {
        keys.retain(|k| glob_match(p, k));
    }
}

pub fn error(why: &str) -> Bytes {
    ProxyError::upstream(UpstreamReason::BadReply, format!("Hive: {why}")).frame()
}

/// SCAN's reply: the next cursor and the keys.
pub fn reply(cursor: u64, keys: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    write_array_header(&mut out, 2);
    write_bulk(&mut out, cursor.to_string().as_bytes());
    write_array_header(&mut out, keys.len());
    keys.iter().for_each(|k| write_bulk(&mut out, k));
    out.freeze()
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
    fn node_cursor_round_trips_and_pages_parse() {
        let c = join_cursor(12345, 5461).unwrap();
        assert_eq!(split_cursor(c), (12345, 5461));
        let frame = Bytes::from_static(b"*2\r\n$2\r\n17\r\n*1\r\n$1\r\nk\r\n");
        assert_eq!(node_page(&frame).unwrap(), (17, vec![Bytes::from("k")]));
        let err = Bytes::from_static(b"-ERR x\r\n");
        assert_eq!(node_page(&err).unwrap_err(), err);
        let mut keys = vec![Bytes::from("ab"), Bytes::from("b")];
        matching(&mut keys, Some(&Bytes::from("a*")));
        assert_eq!(keys, vec![Bytes::from("ab")]);
        assert_eq!(&reply(0, &keys)[..], b"*2\r\n$1\r\n0\r\n*1\r\n$2\r\nab\r\n");
    }
}
