//! What a standalone master holds in the slots a plan takes from it. A standalone Redis keeps
//! no slot index (no `COUNTKEYSINSLOT`), so its keyspace is walked once with `SCAN`, and each
//! key of a moving slot is sized with `MEMORY USAGE`; the handover then moves those very keys.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use hive_common::resp::Value;
use hive_common::Slot;

use crate::error::{ReshardError, Result};
use crate::plan::{BigKey, Sizes};
use crate::session::{req, Session};

/// Keys per SCAN step.
const SCAN_COUNT: &str = "1000";
/// Keys sized per pipeline.
const SIZE_CHUNK: usize = 1000;

/// Every key on `addr` whose slot is in `slots`, by one walk of the keyspace.
pub async fn keys_in(s: &mut Session, addr: &str, slots: &BTreeSet<u16>) -> Result<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let v = s
            .call(addr, &["SCAN", &cursor, "COUNT", SCAN_COUNT])
            .await?;
        let parts = v.as_array().unwrap_or_default();
        let (Some(next), Some(keys)) = (
            parts.first().and_then(Value::as_str),
            parts.get(1).and_then(Value::as_array),
        ) else {
            return Err(ReshardError::Reply {
                addr: addr.into(),
                why: format!("SCAN answered {v:?}"),
            });
        };
        for k in keys.iter().filter_map(Value::as_bytes) {
            if slots.contains(&Slot::for_key(k).get()) {
                out.push(Bytes::copy_from_slice(k));
            }
        }
        if next == "0" {
            return Ok(out);
        }
        cursor = next.to_string();
    }
}

/// The keys of `slots` on `addr`, each with its size, and the sizes per slot.
pub async fn survey(
    s: &mut Session,
    addr: &str,
    slots: &BTreeSet<u16>,
    big_key_bytes: u64,
    sizes: &mut Sizes,
) -> Result<BTreeMap<u16, Vec<(Bytes, u64)>>> {
    let keys = keys_in(s, addr, slots).await?;
    let mut by_slot: BTreeMap<u16, Vec<(Bytes, u64)>> = BTreeMap::new();
    for chunk in keys.chunks(SIZE_CHUNK) {
        let reqs: Vec<Vec<Bytes>> = chunk
            .iter()
            .map(|k| {
                let mut r = req(&["MEMORY", "USAGE"]);
                r.push(k.clone());
                r
            })
            .collect();
        let sized = s.pipeline(addr, &reqs).await?;
        for (k, v) in chunk.iter().zip(sized) {
            // Gone since the walk: nothing to move.
            let Some(bytes) = v.as_int().map(|n| n.max(0) as u64) else {
                continue;
            };
            let slot = Slot::for_key(k).get();
            let e = sizes.slots.entry(slot).or_default();
            e.keys += 1;
            e.bytes += bytes;
            if bytes >= big_key_bytes {
                sizes.big.push(BigKey {
                    slot,
                    key: String::from_utf8_lossy(k).into_owned(),
                    bytes,
                });
            }
            by_slot.entry(slot).or_default().push((k.clone(), bytes));
        }
    }
    Ok(by_slot)
}
