//! After a restore: every key of the snapshot (or a random sample) read back from the target
//! and compared with the snapshot's, by type: strings by value, lists in order, sets and hash
//! fields as sorted collections, sorted sets with their scores, streams entry by entry; and
//! whether each has a TTL (within 10 s of the snapshot's).

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hive_common::resp::Value;
use hive_upstream::conn::control::ControlConn;
use rand::Rng;

use super::target::Target;
use crate::error::Result;
use crate::pipe::batch;
use crate::progress::Bar;

use super::copy::Keys;

#[derive(Debug, Default, Clone)]
pub struct Compared {
    pub checked: u64,
    pub mismatches: u64,
    /// The first few differences, each naming the key and how it differs.
    pub samples: Vec<String>,
    pub interrupted: bool,
}

/// The command that reads a key's whole value for its type.
fn read_cmd(kind: &str, key: &Bytes) -> Vec<Bytes> {
    let k = key.clone();
    let args: Vec<&'static [u8]> = match kind {
        "string" => vec![b"GET"],
        "list" => vec![b"LRANGE", b"0", b"-1"],
        "set" => vec![b"SMEMBERS"],
        "zset" => vec![b"ZRANGE", b"0", b"-1", b"WITHSCORES"],
        "hash" => vec![b"HGETALL"],
        "stream" => vec![b"XRANGE", b"-", b"+"],
        _ => vec![b"DUMP"],
    };
    let mut out = vec![Bytes::from_static(args[0]), k];
    out.extend(args[1..].iter().map(|a| Bytes::from_static(a)));
    out
}

/// Sets and hashes come back in no set order: compare them sorted.
fn normal(kind: &str, v: Value) -> Value {
    match (kind, v) {
        ("set", Value::Array(mut a)) => {
            a.sort_by(|x, y| x.as_bytes().cmp(&y.as_bytes()));
            Value::Array(a)
        }
        ("hash", Value::Array(a)) => {
            let mut pairs: Vec<(Value, Value)> = a
                .chunks_exact(2)
                .map(|c| (c[0].clone(), c[1].clone()))
                .collect();
            pairs.sort_by(|x, y| x.0.as_bytes().cmp(&y.0.as_bytes()));
            Value::Map(pairs)
        }
        (_, v) => v,
    }
}

/// Compares every key (`sample` = 1.0) or about that fraction of them.
pub async fn compare(
    source: &mut ControlConn,
    target: &Target,
    sample: f64,
    bar: &Bar,
    stop: &AtomicBool,
) -> Result<Compared> {
    let mut out = Compared::default();
    let mut keys = Keys::new();
    let mut rng = rand::thread_rng();
    while let Some(all) = keys.next(source).await? {
        if stop.load(Ordering::Relaxed) {
            out.interrupted = true;
            return Ok(out);
        }
        bar.inc(all.len() as u64);
        let chosen: Vec<Bytes> = all
            .into_iter()
            .filter(|_| sample >= 1.0 || rng.gen::<f64>() < sample)
            .collect();
        let types = batch(
            source,
            &chosen
                .iter()
                .map(|k| vec![Bytes::from_static(b"TYPE"), k.clone()])
                .collect::<Vec<_>>(),
        )
        .await?;
        let kinds: Vec<String> = types
            .iter()
            .map(|t| t.as_str().unwrap_or("none").to_string())
            .collect();
        let reads: Vec<Vec<Bytes>> = chosen
            .iter()
            .zip(&kinds)
            .flat_map(|(k, kind)| {
                [
                    vec![Bytes::from_static(b"TYPE"), k.clone()],
                    vec![Bytes::from_static(b"PTTL"), k.clone()],
                    read_cmd(kind, k),
                ]
            })
            .collect();
        let (want, got) = tokio::join!(batch(source, &reads), target.batch(&reads));
        let want = want?;
        for ((k, kind), (w, g)) in chosen
            .iter()
            .zip(&kinds)
            .zip(want.chunks_exact(3).zip(got.chunks_exact(3)))
        {
            if kind == "none" {
                // Expired in the snapshot after the copy: nothing to compare.
                continue;
            }
            out.checked += 1;
            let why = if g[0].as_str() == Some("none") {
                Some("missing on the target".to_string())
            } else if g[0] != w[0] {
                Some(format!(
                    "type {:?} on the target, {kind} in the backup",
                    g[0].as_str().unwrap_or("?")
                ))
            } else if normal(kind, g[2].clone()) != normal(kind, w[2].clone()) {
                Some("value differs".to_string())
            } else {
                ttl_diff(w[1].as_int().unwrap_or(-1), g[1].as_int().unwrap_or(-1))
            };
            if let Some(why) = why {
                out.mismatches += 1;
                if out.samples.len() < 20 {
                    out.samples
                        .push(format!("{}: {why}", String::from_utf8_lossy(k)));
                }
            }
        }
    }
    Ok(out)
}

fn ttl_diff(want: i64, got: i64) -> Option<String> {
    match (want, got) {
        (-1, -1) => None,
        (-1, g) => Some(format!(
            "has a TTL of {g} ms on the target, none in the backup"
        )),
        (w, -1) => Some(format!("no TTL on the target, {w} ms in the backup")),
        (w, g) if (w - g).abs() > 10_000 => {
            Some(format!("TTL {g} ms on the target, {w} ms in the backup"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(Bytes::from(s.to_string()))
    }

    #[test]
    fn compare_sets_and_hashes_ignore_order() {
        let a = Value::Array(vec![bulk("a"), bulk("b")]);
        let b = Value::Array(vec![bulk("b"), bulk("a")]);
        assert_eq!(normal("set", a.clone()), normal("set", b.clone()));
        assert_ne!(normal("list", a), normal("list", b));
        let h1 = Value::Array(vec![bulk("f1"), bulk("1"), bulk("f2"), bulk("2")]);
        let h2 = Value::Array(vec![bulk("f2"), bulk("2"), bulk("f1"), bulk("1")]);
        assert_eq!(normal("hash", h1), normal("hash", h2.clone()));
        let h3 = Value::Array(vec![bulk("f2"), bulk("1"), bulk("f1"), bulk("2")]);
        assert_ne!(normal("hash", h3), normal("hash", h2));
    }

    #[test]
    fn compare_ttls_by_presence_and_closeness() {
        assert_eq!(ttl_diff(-1, -1), None);
        assert_eq!(ttl_diff(60_000, 58_000), None);
        assert!(ttl_diff(-1, 5).is_some());
        assert!(ttl_diff(5_000, -1).is_some());
        assert!(ttl_diff(60_000, 20_000).is_some());
    }
}
