//! Copies every key of a temporary server to the target through Hive's routing: SCAN, then
//! `PTTL` + `DUMP` pipelined from the snapshot, `RESTORE key ttl payload REPLACE` pipelined to
//! the target, a thousand keys a batch. REPLACE makes a second run after an interruption
//! finish the job instead of failing on keys already copied.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hive_common::resp::Value;
use hive_upstream::conn::control::ControlConn;

use super::target::Target;
use crate::error::{BackupError, Result};
use crate::pipe::{batch, call};
use crate::progress::Bar;

pub const BATCH: usize = 1000;

#[derive(Debug, Default, Clone)]
pub struct Copied {
    pub restored: u64,
    /// Keys whose TTL ran out between the snapshot's load and their copy.
    pub expired: u64,
    pub errors: u64,
    /// The first few keys the target refused, with its error.
    pub error_samples: Vec<String>,
    pub bytes: u64,
    pub interrupted: bool,
}

/// One SCAN over `source`, each key once (SCAN may return a key twice).
pub struct Keys {
    cursor: Bytes,
    seen: HashSet<u64>,
    hasher: RandomState,
    done: bool,
}

impl Keys {
    pub fn new() -> Keys {
        Keys {
            cursor: Bytes::from_static(b"0"),
            seen: HashSet::new(),
            hasher: RandomState::new(),
            done: false,
        }
    }

    /// The next batch of keys not seen before; `None` at the end.
    pub async fn next(&mut self, source: &mut ControlConn) -> Result<Option<Vec<Bytes>>> {
        while !self.done {
            let count = BATCH.to_string();
            let v = call(
                source,
                &[&b"SCAN"[..], &self.cursor, b"COUNT", count.as_bytes()],
            )
            .await?;
            let (cursor, keys) = match v.as_array() {
                Some([c, Value::Array(keys)]) => {
                    (c.as_bytes().unwrap_or(b"0").to_vec(), keys.clone())
                }
                _ => return Err(BackupError::node(source.addr(), "SCAN: unexpected reply")),
            };
            self.cursor = Bytes::from(cursor);
            self.done = &self.cursor[..] == b"0";
            let fresh: Vec<Bytes> = keys
                .into_iter()
                .filter_map(|k| match k {
                    Value::Bulk(b) => Some(b),
                    _ => None,
                })
                .filter(|k| self.seen.insert(self.hasher.hash_one(k)))
                .collect();
            if !fresh.is_empty() {
                return Ok(Some(fresh));
            }
        }
        Ok(None)
    }
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new()
    }
}

/// One batch read from the snapshot: the RESTORE commands, their keys, and the keys that had
/// expired by the time they were read.
struct Batch {
    writes: Vec<Vec<Bytes>>,
    keys: Vec<Bytes>,
    expired: u64,
    scanned: u64,
    bytes: u64,
}

/// Reads the next batch of keys with their TTLs and DUMP payloads.
async fn read_batch(source: &mut ControlConn, batch_keys: Vec<Bytes>) -> Result<Batch> {
    let reads: Vec<Vec<&[u8]>> = batch_keys
        .iter()
        .flat_map(|k| [vec![&b"PTTL"[..], k], vec![&b"DUMP"[..], k]])
        .collect();
    let got = batch(source, &reads).await?;
    let mut b = Batch {
        writes: Vec::with_capacity(batch_keys.len()),
        keys: Vec::with_capacity(batch_keys.len()),
        expired: 0,
        scanned: batch_keys.len() as u64,
        bytes: 0,
    };
    for (k, pair) in batch_keys.iter().zip(got.chunks_exact(2)) {
        let payload = match &pair[1] {
            Value::Bulk(p) => p.clone(),
            _ => {
                b.expired += 1;
                continue;
            }
        };
        let ttl = match pair[0].as_int() {
            Some(-2) => {
                b.expired += 1;
                continue;
            }
            Some(t) if t > 0 => t,
            _ => 0,
        };
        b.bytes += (k.len() + payload.len()) as u64;
        b.writes.push(vec![
            Bytes::from_static(b"RESTORE"),
            k.clone(),
            Bytes::from(ttl.to_string()),
            payload,
            Bytes::from_static(b"REPLACE"),
        ]);
        b.keys.push(k.clone());
    }
    Ok(b)
}

/// Copies every key; reading the next batch from the snapshot overlaps writing the last one
/// to the target.
pub async fn copy(
    source: &mut ControlConn,
    target: &Target,
    bar: &Bar,
    stop: &AtomicBool,
) -> Result<Copied> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let reader = async move {
        let mut keys = Keys::new();
        while let Some(batch_keys) = keys.next(source).await? {
            if stop.load(Ordering::Relaxed) {
                return Ok(true);
            }
            let b = read_batch(source, batch_keys).await?;
            if tx.send(b).await.is_err() {
                // The writer failed; its error is the one reported.
                break;
            }
        }
        Ok::<_, BackupError>(false)
    };
    let writer = async {
        let mut out = Copied::default();
        while let Some(b) = rx.recv().await {
            out.expired += b.expired;
            out.bytes += b.bytes;
            let replies = target.batch(&b.writes).await;
            for (k, r) in b.keys.iter().zip(&replies) {
                match r {
                    Value::Error(e) => {
                        out.errors += 1;
                        if out.error_samples.len() < 10 {
                            out.error_samples.push(format!(
                                "{}: {}",
                                String::from_utf8_lossy(k),
                                String::from_utf8_lossy(e)
                            ));
                        }
                    }
                    _ => out.restored += 1,
                }
            }
            bar.inc(b.scanned);
        }
        Ok::<_, BackupError>(out)
    };
    let (interrupted, out) = tokio::join!(reader, writer);
    let mut out = out?;
    out.interrupted = interrupted?;
    Ok(out)
}
