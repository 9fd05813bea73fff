//! One handover: slots from one shard's master to another's with Redis Cluster's guarantees,
//! hive-module standing in for the cluster bus:
//! 1. the map marks the slots moving (a new epoch) and every live proxy takes it, so that
//!    transactions on them wait;
//! 2. the target drops any guard it kept on them from giving them away earlier, and the source
//!    marks them MIGRATING: its filter now answers `-ASK` for a key that is gone
//!    (so a new key is written on the target) and `-TRYAGAIN` for a split multi-key request;
//! 3. the keys move with `MIGRATE … KEYS` in pipelined batches, each round marked in flight on
//!    the source first (`run::marks`: a replica promoted mid-round holds those keys back until
//!    `--resume` settles which copy is live), then the source is walked again until none is
//!    left (no key of those slots can appear on it any more);
//! 4. the map gives the slots to the target, and every live proxy takes it;
//! 5. the source ends the handover 30 s later (`STABLE … AFTER`): a request a proxy routed by
//!    the old map just before it took the new one may still be on its way, and is sent on.
//!
//! Each step may run again: `--resume` carries on from the map's moving entries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use hive_common::resp::Value;
use hive_common::topology::deployed::format_slots;

use super::survey::keys_in;
use super::{maps, wait_acks, write_map, Deployment};
use crate::error::{ReshardError, Result};
use crate::run::marks::{self, Marks};
use crate::run::migrate::{batch, migrate_args};
use crate::run::{Carried, Options};
use crate::session::Session;

/// How long a source keeps guarding slots it gave away, after every proxy took the new map.
const GUARD_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// MIGRATEs per pipeline.
const PIPELINE: usize = 16;
/// Walks of the source before giving up on keys that will not leave.
const ROUNDS: usize = 4;

fn stuck(slot: u16, why: String) -> ReshardError {
    ReshardError::Move { slot, why }
}

/// Moves `slots` from shard `from` to shard `to`. `known`: the survey's keys with their sizes
/// (moved first, without another walk); `done` counts keys and bytes as they land.
#[allow(clippy::too_many_arguments)]
pub async fn hand_over(
    s: &mut Session,
    d: &mut Deployment,
    from: &str,
    to: &str,
    slots: &[u16],
    known: Option<BTreeMap<u16, Vec<(Bytes, u64)>>>,
    opts: &Options,
    done: &mut dyn FnMut(u64, u64),
) -> Result<Carried> {
    let Some(&first) = slots.first() else {
        return Ok(Carried::default());
    };
    let (src, dst) = (d.addr(from)?, d.addr(to)?);
    // 1. Proxies learn that the slots move before any key does.
    let marked = maps::with_moving(&d.map, slots, from, to);
    if marked.moving != d.map.moving {
        write_map(s, d, marked, &[]).await?;
    }
    wait_acks(s, d, d.map.epoch).await?;
    // 2. The target drops any guard it still keeps on these slots from giving them away
    //    earlier (it would send their requests back to the source), and the source's filter
    //    takes over.
    let text = format_slots(slots);
    s.call(&dst, &["HIVE.SETSLOTS", "STABLE", &text])
        .await
        .map_err(|e| stuck(first, format!("HIVE.SETSLOTS STABLE on {dst}: {e}")))?;
    s.call(&src, &["HIVE.SETSLOTS", "MIGRATING", &dst, &text])
        .await
        .map_err(|e| stuck(first, format!("HIVE.SETSLOTS MIGRATING on {src}: {e}")))?;
    // A replica promoted mid-move holds back the keys of the last unconfirmed round: which
    // copy is live is settled before anything else moves.
    if let Some(held) = marks::held(s, &src).await? {
        if !held.suspects.is_empty() {
            marks::settle_suspects(s, &src, &held).await?;
        }
    }
    let mut m = marks::for_source(s, &src).await?;
    // 3. The keys.
    let set: BTreeSet<u16> = slots.iter().copied().collect();
    let mut carried = Carried::default();
    let mut pending: Vec<(Bytes, u64)> = known
        .map(|k| k.into_values().flatten().collect())
        .unwrap_or_default();
    let mut walked = pending.is_empty();
    if walked {
        pending = keys_in(s, &src, &set)
            .await?
            .into_iter()
            .map(|k| (k, 1))
            .collect();
    }
    let mut rounds = 0;
    loop {
        let c = migrate_all(s, &src, &dst, &pending, opts, &mut m, done).await?;
        carried.keys += c.keys;
        carried.bytes += c.bytes;
        // After MIGRATING, a key of these slots can only leave the source: one walk that finds
        // none left ends the move.
        let left = keys_in(s, &src, &set).await?;
        if left.is_empty() && walked {
            break;
        }
        walked = true;
        rounds += 1;
        if rounds > ROUNDS && !left.is_empty() {
            return Err(stuck(
                Slot(&left[0]),
                format!(
                    "{src} still holds {} key(s) after {ROUNDS} walks",
                    left.len()
                ),
            ));
        }
        pending = left.into_iter().map(|k| (k, 1)).collect();
    }
    // 4. The target owns them.
    let given = maps::committed(&d.map, slots, from, to);
    write_map(s, d, given, &[]).await?;
    wait_acks(s, d, d.map.epoch).await?;
    // 5. Every proxy routes them to the target now, but a request one routed by the old map
    //    may still be on its way to the source: the source keeps sending them on for a while.
    let after = GUARD_AFTER.as_millis().to_string();
    s.call(&src, &["HIVE.SETSLOTS", "STABLE", &text, "AFTER", &after])
        .await
        .map_err(|e| stuck(first, format!("HIVE.SETSLOTS STABLE on {src}: {e}")))?;
    Ok(carried)
}

#[allow(non_snake_case)]
fn Slot(key: &[u8]) -> u16 {
    hive_common::Slot::for_key(key).get()
}

/// MIGRATEs `keys` (with their sizes) from `src` to `dst` in batches, `PIPELINE` per round
/// trip, resting between round trips as `opts.pace` says. Each round's keys are marked in
/// flight first, confirmed on the source's replicas; the end confirms the last DELs.
async fn migrate_all(
    s: &mut Session,
    src: &str,
    dst: &str,
    keys: &[(Bytes, u64)],
    opts: &Options,
    m: &mut Marks,
    done: &mut dyn FnMut(u64, u64),
) -> Result<Carried> {
    let mut carried = Carried::default();
    if keys.is_empty() {
        return Ok(carried);
    }
    let (host, port) = hive_common::addr::split(dst)
        .map(|(h, p)| (h.trim_matches(['[', ']']).to_string(), p.to_string()))
        .ok_or_else(|| stuck(Slot(&keys[0].0), format!("bad target address {dst}")))?;
    let names: Vec<Bytes> = keys.iter().map(|(k, _)| k.clone()).collect();
    let weights: Vec<u64> = keys.iter().map(|(_, w)| (*w).max(1)).collect();
    let b = &opts.batching;
    let batches = batch(&names, &weights, b.keys, b.bytes);
    let rest = 1.0 / opts.pace.clamp(0.01, 1.0) - 1.0;
    for round in batches.chunks(PIPELINE) {
        let t0 = Instant::now();
        let names: Vec<&Bytes> = round.iter().flat_map(|(ks, _)| ks).collect();
        marks::inflight(s, src, m, &names).await?;
        let reqs: Vec<Vec<Bytes>> = round
            .iter()
            .map(|(ks, _)| migrate_args(&host, &port, b.timeout_ms, s.auth(), ks))
            .collect();
        let replies = s.pipeline(src, &reqs).await?;
        for ((ks, bytes), r) in round.iter().zip(&replies) {
            match r {
                Value::Simple(_) => {
                    carried.keys += ks.len() as u64;
                    carried.bytes += bytes;
                    done(ks.len() as u64, *bytes);
                }
                Value::Error(m) => {
                    let m = String::from_utf8_lossy(m);
                    return Err(stuck(
                        Slot(&ks[0]),
                        format!(
                            "MIGRATE to {dst} (first key {}): {m}",
                            String::from_utf8_lossy(&ks[0])
                        ),
                    ));
                }
                other => return Err(stuck(Slot(&ks[0]), format!("MIGRATE answered {other:?}"))),
            }
        }
        if rest > 0.0 {
            tokio::time::sleep(t0.elapsed().mul_f64(rest)).await;
        }
    }
    marks::inflight(s, src, m, &[]).await?;
    Ok(carried)
}
