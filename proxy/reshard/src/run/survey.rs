//! Before a move: the keys and bytes in each slot it takes, and the keys over the big-key
//! size. COUNTKEYSINSLOT, GETKEYSINSLOT and MEMORY USAGE, pipelined per batch of slots, on the
//! slot's current owner.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::{ReshardError, Result};
use crate::plan::{BigKey, Move, Sizes, SlotSize};
use crate::session::{req, Session};
use crate::view::View;

/// Slots surveyed per pipelined round.
const ROUND: usize = 64;

pub async fn survey(
    s: &mut Session,
    view: &View,
    moves: &[Move],
    big_key_bytes: u64,
) -> Result<Sizes> {
    let mut by_node: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for m in moves {
        let addr = view.node(&m.from).map(|n| n.addr.clone()).ok_or_else(|| {
            ReshardError::Input(format!("slot {}: its source is not a known node", m.slot))
        })?;
        by_node.entry(addr).or_default().push(m.slot);
    }
    let mut sizes = Sizes::default();
    for (addr, slots) in by_node {
        for chunk in slots.chunks(ROUND) {
            let counts = s
                .pipeline(
                    &addr,
                    &chunk
                        .iter()
                        .map(|slot| req(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]))
                        .collect::<Vec<_>>(),
                )
                .await?;
            let counts: Vec<i64> = counts.iter().map(|v| v.as_int().unwrap_or(0)).collect();
            let listed = s
                .pipeline(
                    &addr,
                    &chunk
                        .iter()
                        .zip(&counts)
                        .map(|(slot, n)| {
                            req(&[
                                "CLUSTER",
                                "GETKEYSINSLOT",
                                &slot.to_string(),
                                &n.max(&1).to_string(),
                            ])
                        })
                        .collect::<Vec<_>>(),
                )
                .await?;
            let mut keys: Vec<(u16, Bytes)> = Vec::new();
            for (slot, v) in chunk.iter().zip(&listed) {
                for k in v.as_array().unwrap_or_default() {
                    if let Some(b) = k.as_bytes() {
                        keys.push((*slot, Bytes::copy_from_slice(b)));
                    }
                }
                sizes.slots.insert(*slot, SlotSize::default());
            }
            let refs: Vec<&Bytes> = keys.iter().map(|(_, k)| k).collect();
            let usage = s.memory_usage(&addr, &refs).await?;
            for ((slot, key), u) in keys.iter().zip(&usage) {
                // A key gone since GETKEYSINSLOT answers nil: not counted.
                let Some(b) = u else { continue };
                let e = sizes.slots.entry(*slot).or_default();
                e.keys += 1;
                e.bytes += *b;
                if *b >= big_key_bytes {
                    sizes.big.push(BigKey {
                        slot: *slot,
                        key: String::from_utf8_lossy(key).into_owned(),
                        bytes: *b,
                    });
                }
            }
        }
    }
    Ok(sizes)
}
