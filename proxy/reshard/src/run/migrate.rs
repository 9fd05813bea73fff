//! Moving one slot with Redis Cluster's own protocol, as `redis-cli --cluster` does, but with
//! the MIGRATEs of a whole key listing pipelined: IMPORTING on the target, MIGRATING on the
//! source, `MIGRATE … KEYS` in batches sized by keys and bytes (a big key alone, last), then
//! SETSLOT NODE on the target, the source and every other master.

use bytes::Bytes;
use hive_common::resp::Value;

use super::marks::{self, Marks};
use crate::error::{ReshardError, Result};
use crate::plan::Sizes;
use crate::session::{req, Session};

/// With hive-module's marks, a round's MIGRATEs go out in chunks of at most this many
/// batches and `CHUNK_KEYS` keys, each marked in flight first.
const CHUNK_BATCHES: usize = 16;
const CHUNK_KEYS: usize = 4096;

/// How keys are batched into MIGRATE commands.
#[derive(Debug, Clone)]
pub struct Batching {
    /// Keys listed per GETKEYSINSLOT (their MIGRATEs go out in one pipeline).
    pub list: usize,
    pub keys: usize,
    pub bytes: u64,
    /// MIGRATE's own timeout.
    pub timeout_ms: u64,
}

/// A group of slots moving between the same two masters: node ids and addresses.
#[derive(Debug, Clone)]
pub struct Ends {
    pub slots: Vec<u16>,
    pub src_id: String,
    pub src: String,
    pub dst_id: String,
    pub dst: String,
}

/// Keys and bytes a move carried.
#[derive(Debug, Clone, Copy, Default)]
pub struct Carried {
    pub keys: u64,
    pub bytes: u64,
}

fn moving(slot: u16, why: String) -> ReshardError {
    ReshardError::Move { slot, why }
}

/// `CLUSTER SETSLOT <slot> <args…>` for every slot, pipelined on `addr`; the first error
/// reply names its slot.
async fn setslot(s: &mut Session, addr: &str, slots: &[u16], args: &[&str]) -> Result<Vec<Value>> {
    let reqs: Vec<Vec<Bytes>> = slots
        .iter()
        .map(|slot| {
            let slot = slot.to_string();
            let mut a = vec!["CLUSTER", "SETSLOT", slot.as_str()];
            a.extend_from_slice(args);
            req(&a)
        })
        .collect();
    s.pipeline(addr, &reqs)
        .await
        .map_err(|err| moving(slots[0], format!("SETSLOT {} on {addr}: {err}", args[0])))
}

fn first_error(slots: &[u16], replies: &[Value], what: &str, addr: &str) -> Result<()> {
    for (slot, r) in slots.iter().zip(replies) {
        if let Value::Error(m) = r {
            return Err(moving(
                *slot,
                format!("SETSLOT {what} on {addr}: {}", String::from_utf8_lossy(m)),
            ));
        }
    }
    Ok(())
}

/// Opens the slots on both ends, pipelined (Redis writes its nodes.conf once per batch of
/// commands, not once per slot), then marks them on the source's hive-module, if it has one.
/// Idempotent: a resumed move opens them again.
pub async fn open(s: &mut Session, e: &Ends) -> Result<Option<Marks>> {
    let r = setslot(s, &e.dst, &e.slots, &["IMPORTING", &e.src_id]).await?;
    first_error(&e.slots, &r, "IMPORTING", &e.dst)?;
    let r = setslot(s, &e.src, &e.slots, &["MIGRATING", &e.dst_id]).await?;
    first_error(&e.slots, &r, "MIGRATING", &e.src)?;
    marks::standby(s, &e.src, &e.dst, &e.slots).await
}

/// Moves every key of the slots from the source to the target; `done` hears each batch.
pub async fn drain(
    s: &mut Session,
    e: &Ends,
    b: &Batching,
    sizes: &Sizes,
    mut marked: Option<&mut Marks>,
    done: &mut dyn FnMut(u64, u64),
) -> Result<Carried> {
    let first = e.slots[0];
    let (host, port) = hive_common::addr::split(&e.dst)
        .map(|(h, p)| (h.trim_matches(['[', ']']).to_string(), p.to_string()))
        .ok_or_else(|| moving(first, format!("bad target address {}", e.dst)))?;
    let mut carried = Carried::default();
    let mut stalled = 0;
    let mut left: Vec<u16> = e.slots.clone();
    while !left.is_empty() {
        let listed = s
            .pipeline(
                &e.src,
                &left
                    .iter()
                    .map(|slot| {
                        req(&[
                            "CLUSTER",
                            "GETKEYSINSLOT",
                            &slot.to_string(),
                            &b.list.to_string(),
                        ])
                    })
                    .collect::<Vec<_>>(),
            )
            .await
            .map_err(|err| moving(first, format!("GETKEYSINSLOT on {}: {err}", e.src)))?;
        // MIGRATE refuses keys of more than one slot (CROSSSLOT): each slot's keys are listed
        // and batched on their own, and every batch of the group goes in one pipeline.
        let mut listings: Vec<Vec<Bytes>> = Vec::new();
        let mut still = Vec::new();
        for (slot, v) in left.iter().zip(&listed) {
            if let Value::Error(m) = v {
                return Err(moving(
                    *slot,
                    format!("GETKEYSINSLOT: {}", String::from_utf8_lossy(m)),
                ));
            }
            let ks: Vec<Bytes> = v
                .as_array()
                .unwrap_or_default()
                .iter()
                .filter_map(|k| k.as_bytes().map(Bytes::copy_from_slice))
                .collect();
            if !ks.is_empty() {
                still.push(*slot);
                listings.push(ks);
            }
        }
        left = still;
        if listings.is_empty() {
            break;
        }
        let mut batches: Vec<(Vec<Bytes>, u64)> = Vec::new();
        let mut big: Vec<(Vec<Bytes>, u64)> = Vec::new();
        for (slot, keys) in left.iter().zip(&listings) {
            // Exact sizes only where the survey saw a big key: elsewhere the slot's mean does.
            let weights: Vec<u64> = if sizes.has_big(*slot) {
                let refs: Vec<&Bytes> = keys.iter().collect();
                s.memory_usage(&e.src, &refs)
                    .await?
                    .into_iter()
                    .map(Option::unwrap_or_default)
                    .collect()
            } else {
                vec![sizes.mean(*slot).max(1); keys.len()]
            };
            for bt in batch(keys, &weights, b.keys, b.bytes) {
                if bt.1 >= b.bytes {
                    big.push(bt);
                } else {
                    batches.push(bt);
                }
            }
        }
        batches.extend(big);
        let mut moved = 0;
        let mut rest: &[(Vec<Bytes>, u64)] = &batches;
        while !rest.is_empty() {
            let n = match marked {
                None => rest.len(),
                Some(_) => chunk_len(rest),
            };
            let (chunk, after) = rest.split_at(n);
            rest = after;
            if let Some(m) = marked.as_deref_mut() {
                let keys: Vec<&Bytes> = chunk.iter().flat_map(|(ks, _)| ks).collect();
                marks::inflight(s, &e.src, m, &keys).await?;
            }
            moved += migrate_chunk(s, e, b, &host, &port, chunk, &mut carried, &mut *done).await?;
        }
        // Keys that expired between the listing and the MIGRATE answer NOKEY and are gone
        // from the next listing; a listing that never shrinks is a stall, not a loop.
        stalled = if moved == 0 { stalled + 1 } else { 0 };
        if stalled >= 3 {
            return Err(moving(first, "no key moved in three rounds".into()));
        }
    }
    Ok(carried)
}

/// Batches from the front of `batches` that fit one marked chunk (at least one).
fn chunk_len(batches: &[(Vec<Bytes>, u64)]) -> usize {
    let mut keys = 0;
    let mut n = 0;
    for (ks, _) in batches.iter().take(CHUNK_BATCHES) {
        if n > 0 && keys + ks.len() > CHUNK_KEYS {
            break;
        }
        keys += ks.len();
        n += 1;
    }
    n.max(1)
}

/// One pipeline of MIGRATEs; the keys it moved.
#[allow(clippy::too_many_arguments)]
async fn migrate_chunk(
    s: &mut Session,
    e: &Ends,
    b: &Batching,
    host: &str,
    port: &str,
    batches: &[(Vec<Bytes>, u64)],
    carried: &mut Carried,
    done: &mut dyn FnMut(u64, u64),
) -> Result<usize> {
    let reqs: Vec<Vec<Bytes>> = batches
        .iter()
        .map(|(ks, _)| migrate_args(host, port, b.timeout_ms, s.auth(), ks))
        .collect();
    let replies = s
        .pipeline(&e.src, &reqs)
        .await
        .map_err(|err| moving(e.slots[0], format!("MIGRATE to {}: {err}", e.dst)))?;
    let mut moved = 0;
    for ((ks, bytes), r) in batches.iter().zip(&replies) {
        let slot = hive_common::Slot::for_key(&ks[0]).get();
        match r {
            Value::Simple(_) => {
                moved += ks.len();
                carried.keys += ks.len() as u64;
                carried.bytes += bytes;
                done(ks.len() as u64, *bytes);
            }
            Value::Error(m) => {
                let m = String::from_utf8_lossy(m);
                let why = if m.starts_with("BUSYKEY") {
                    format!(
                        "MIGRATE to {}: a key of this batch (first: {}) already exists on the target: {m}",
                        e.dst,
                        String::from_utf8_lossy(&ks[0])
                    )
                } else {
                    format!("MIGRATE to {}: {m}", e.dst)
                };
                return Err(moving(slot, why));
            }
            other => return Err(moving(slot, format!("MIGRATE answered {other:?}"))),
        }
    }
    Ok(moved)
}

/// `MIGRATE host port "" 0 timeout [AUTH2 user pass | AUTH pass] KEYS k…`.
pub(crate) fn migrate_args(
    host: &str,
    port: &str,
    timeout_ms: u64,
    auth: Option<&hive_upstream::Auth>,
    keys: &[Bytes],
) -> Vec<Bytes> {
    let mut a = req(&["MIGRATE", host, port, "", "0", &timeout_ms.to_string()]);
    match auth {
        Some(hive_upstream::Auth {
            username: Some(u),
            password,
        }) => a.extend(req(&["AUTH2", u, password])),
        Some(au) => a.extend(req(&["AUTH", &au.password])),
        None => {}
    }
    a.push(Bytes::from_static(b"KEYS"));
    a.extend(keys.iter().cloned());
    a
}

/// Keys in batches of at most `max_keys` and about `max_bytes`; a key at or over `max_bytes`
/// goes alone, and those go last.
pub fn batch(
    keys: &[Bytes],
    weights: &[u64],
    max_keys: usize,
    max_bytes: u64,
) -> Vec<(Vec<Bytes>, u64)> {
    let mut small: Vec<(Vec<Bytes>, u64)> = Vec::new();
    let mut big: Vec<(Vec<Bytes>, u64)> = Vec::new();
    let mut cur: (Vec<Bytes>, u64) = (Vec::new(), 0);
    for (k, &w) in keys.iter().zip(weights) {
        if w >= max_bytes {
            big.push((vec![k.clone()], w));
            continue;
        }
        if !cur.0.is_empty() && (cur.0.len() >= max_keys.max(1) || cur.1 + w > max_bytes) {
            small.push(std::mem::take(&mut cur));
        }
        cur.0.push(k.clone());
        cur.1 += w;
    }
    if !cur.0.is_empty() {
        small.push(cur);
    }
    small.extend(big);
    small
}

/// Gives the slots to the target: on the target first (it bumps its epoch), then the source,
/// then every other master. Returns the slots the source refused because it still holds keys
/// in them (the caller drains those again).
pub async fn settle(s: &mut Session, e: &Ends, others: &[String]) -> Result<Vec<u16>> {
    let node = ["NODE", e.dst_id.as_str()];
    let r = setslot(s, &e.dst, &e.slots, &node).await?;
    first_error(&e.slots, &r, "NODE", &e.dst)?;
    let r = setslot(s, &e.src, &e.slots, &node).await?;
    let mut again = Vec::new();
    for (slot, v) in e.slots.iter().zip(&r) {
        if let Value::Error(m) = v {
            let m = String::from_utf8_lossy(m);
            // A master whose last slot left turns into a replica of the slot's new owner
            // (cluster-allow-replica-migration, the default): the slot is given already.
            if m.contains("only with masters") {
                continue;
            }
            if !m.contains("still hold keys") {
                return Err(moving(*slot, format!("SETSLOT NODE on {}: {m}", e.src)));
            }
            again.push(*slot);
        }
    }
    for o in others.iter().filter(|o| **o != e.src && **o != e.dst) {
        // Gossip carries the new owner to a master that missed this; the slots are already
        // served by the target.
        let _ = setslot(s, o, &e.slots, &node).await;
    }
    Ok(again)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(format!("k{i}"))).collect()
    }

    #[test]
    fn batch_caps_keys_and_bytes_and_puts_big_keys_alone_last() {
        let k = keys(7);
        let w = [10, 10, 10, 1000, 10, 10, 10];
        let b = batch(&k, &w, 2, 100);
        let shape: Vec<(usize, u64)> = b.iter().map(|(ks, by)| (ks.len(), *by)).collect();
        assert_eq!(shape, vec![(2, 20), (2, 20), (2, 20), (1, 1000)]);
        assert_eq!(b.last().unwrap().0[0], k[3]);
        let b = batch(&k, &[40; 7], 100, 100);
        assert!(b.iter().all(|(ks, by)| ks.len() == 2 || *by <= 100));
        assert_eq!(b.iter().map(|(ks, _)| ks.len()).sum::<usize>(), 7);
    }

    #[test]
    fn chunk_len_caps_batches_and_keys_and_takes_at_least_one() {
        let b = |n: usize| (keys(n), 0u64);
        assert_eq!(chunk_len(&vec![b(100); 40]), CHUNK_BATCHES);
        assert_eq!(chunk_len(&vec![b(1000); 5]), 4);
        assert_eq!(chunk_len(&vec![b(3000); 3]), 1);
        assert_eq!(
            chunk_len(&[b(5000), b(1)]),
            1,
            "a batch over the cap goes alone"
        );
    }

    #[test]
    fn migrate_args_carry_credentials_the_node_way() {
        let a = migrate_args(
            "127.0.0.1",
            "7000",
            5000,
            Some(&hive_upstream::Auth {
                username: Some("ops".into()),
                password: "pw".into(),
            }),
            &keys(1),
        );
        let words: Vec<&[u8]> = a.iter().map(|b| b.as_ref()).collect();
        assert_eq!(
            words,
            [
                &b"MIGRATE"[..],
                b"127.0.0.1",
                b"7000",
                b"",
                b"0",
                b"5000",
                b"AUTH2",
                b"ops",
                b"pw",
                b"KEYS",
                b"k0"
            ]
        );
    }
}
