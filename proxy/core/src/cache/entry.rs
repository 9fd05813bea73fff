//! What the near cache knows of one key, how a cached read is answered from it, and how the
//! reply of a fill (`READ key` then `PTTL key`) becomes it.

use bytes::{Bytes, BytesMut};
use hive_common::resp::{parse_value, write_array_header, write_bulk, write_map_header, Value};
use smallvec::SmallVec;

/// GET replies up to this long are kept inside the entry (a 64-byte value's is 71).
const INLINE: usize = 80;

/// The block a connection's GET hits are cut from.
const ARENA: usize = 16 * 1024;

/// What is known of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// A read is on its way to fill it: nothing to answer from yet.
    Pending,
    /// Its value is over `max_value_bytes`: reads pass through, and no fill is tried again
    /// until it changes.
    TooBig,
    /// No such key.
    Absent,
    /// A string, as its GET reply (`$n\r\n...\r\n`, the same in RESP2 and RESP3), copied:
    /// a slice of the node's read buffer would keep that whole buffer alive for as long as
    /// the entry lives, memory `max_memory` does not count. A short one is kept inside the
    /// entry: a hit then reads no other memory (an allocation of its own was one more cache
    /// miss per hit, 8% of the worker under perf with 667,000 entries, issue 29).
    Str(SmallVec<[u8; INLINE]>),
    /// A hash: every field in the node's order (HGETALL), and fields read one by one (HGET;
    /// `None`: no such field).
    Hash {
        all: Option<Vec<(Bytes, Bytes)>>,
        some: Vec<(Bytes, Option<Bytes>)>,
    },
}

/// The read that asks to fill a key.
#[derive(Debug, Clone, PartialEq)]
pub enum FillKind {
    Get,
    Hgetall,
    Hget(Bytes),
}

fn nil(resp3: bool) -> Bytes {
    Bytes::from_static(if resp3 { b"_\r\n" } else { b"$-1\r\n" })
}

impl Known {
    /// Bytes of data it holds (keys and bookkeeping are counted by the shard).
    pub fn bytes(&self) -> usize {
        match self {
            Known::Str(f) => f.len(),
            Known::Hash { all, some } => {
                let a: usize = all
                    .iter()
                    .flatten()
                    .map(|(f, v)| f.len() + v.len() + 32)
                    .sum();
                let s: usize = some
                    .iter()
                    .map(|(f, v)| f.len() + v.as_ref().map_or(0, |v| v.len()) + 32)
                    .sum();
                a + s
            }
            _ => 0,
        }
    }

    /// GET's reply.
    pub fn get(&self, resp3: bool) -> Option<Bytes> {
        match self {
            // Copied, not shared: a shared reply's reference count is a write to a line of
            // its own (a cache miss among hundreds of thousands of entries, 9% of the hit path
            // under perf, issue 29), and a write every worker would share.
            Known::Str(f) => Some(Bytes::copy_from_slice(f)),
            Known::Absent => Some(nil(resp3)),
            _ => None,
        }
    }

    /// GET's reply, a string's cut from `arena`.
    pub fn get_into(&self, resp3: bool, arena: &mut BytesMut) -> Option<Bytes> {
        match self {
            Known::Str(f) => {
                if arena.capacity() < f.len() {
                    *arena = BytesMut::with_capacity(ARENA.max(f.len()));
                }
                arena.extend_from_slice(f);
                Some(arena.split().freeze())
            }
            k => k.get(resp3),
        }
    }

    /// MGET's element for this key: a key of another type is nil, as in Redis.
    pub fn mget(&self, resp3: bool) -> Option<Bytes> {
        match self {
            Known::Hash { .. } => Some(nil(resp3)),
            k => k.get(resp3),
        }
    }

    pub fn strlen(&self) -> Option<usize> {
        match self {
            Known::Str(f) => Some(str_value(f).len()),
            Known::Absent => Some(0),
            _ => None,
        }
    }

    pub fn exists(&self) -> Option<bool> {
        match self {
            Known::Str(_) | Known::Hash { .. } | Known::TooBig => Some(true),
            Known::Absent => Some(false),
            Known::Pending => None,
        }
    }

    pub fn hget(&self, field: &[u8], resp3: bool) -> Option<Bytes> {
        match self {
            Known::Absent => Some(nil(resp3)),
            Known::Hash { all, some } => {
                if let Some((_, v)) = some.iter().find(|(f, _)| f == field) {
                    return Some(v.as_ref().map_or_else(|| nil(resp3), |v| bulk(v)));
                }
                let all = all.as_ref()?;
                Some(
                    all.iter()
                        .find(|(f, _)| f == field)
                        .map_or_else(|| nil(resp3), |(_, v)| bulk(v)),
                )
            }
            _ => None,
        }
    }

    pub fn hgetall(&self, resp3: bool) -> Option<Bytes> {
        let mut out = BytesMut::new();
        match self {
            Known::Absent => write_map_header(&mut out, 0, resp3),
            Known::Hash { all: Some(all), .. } => {
                write_map_header(&mut out, all.len(), resp3);
                for (f, v) in all {
                    write_bulk(&mut out, f);
                    write_bulk(&mut out, v);
                }
            }
            _ => return None,
        }
        Some(out.freeze())
    }

    /// What a fill adds to what was known (a hash's fields read one by one add up).
    pub fn merge(self, new: Known) -> Known {
        match (self, new) {
            (
                Known::Hash { all, mut some },
                Known::Hash {
                    all: None,
                    some: more,
                },
            ) => {
                for (f, v) in more {
                    if !some.iter().any(|(g, _)| *g == f) {
                        some.push((f, v));
                    }
                }
                Known::Hash { all, some }
            }
            (_, new) => new,
        }
    }
}

fn bulk(v: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(v.len() + 16);
    write_bulk(&mut out, v);
    out.freeze()
}

/// The value inside a GET reply.
fn str_value(frame: &[u8]) -> &[u8] {
    let start = memchr::memchr(b'\n', frame).map_or(0, |i| i + 1);
    frame
        .get(start..frame.len().saturating_sub(2))
        .unwrap_or_default()
}

/// MGET's or EXISTS's answer from the per-key parts.
pub fn array(parts: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(16 + parts.iter().map(|p| p.len()).sum::<usize>());
    write_array_header(&mut out, parts.len());
    for p in parts {
        out.extend_from_slice(p);
    }
    out.freeze()
}

/// A fill's reply split: the client's reply (the read's frame), and what the cache learns,
/// if anything (`None` for an error, or when the key changed between the read and its PTTL).
/// The PTTL is the key's time left in milliseconds (-1: none).
pub fn split(frame: &Bytes, kind: &FillKind) -> (Bytes, Option<(Known, i64)>) {
    let Ok(Some((first, n))) = parse_value(frame) else {
        return (frame.clone(), None);
    };
    let reply = frame.slice(..n);
    let pttl = match parse_value(&frame[n..]) {
        Ok(Some((Value::Int(t), _))) => t,
        _ => return (reply, None),
    };
    let known = match (kind, first) {
        (FillKind::Get, Value::Bulk(_)) if pttl >= -1 => Known::Str(reply[..].into()),
        (_, Value::Nil) if pttl == -2 => Known::Absent,
        (FillKind::Hgetall, Value::Array(v)) | (FillKind::Hgetall, Value::Set(v)) => {
            if v.is_empty() && pttl == -2 {
                Known::Absent
            } else if v.is_empty() || v.len() % 2 != 0 || pttl < -1 {
                return (reply, None);
            } else {
                let mut all = Vec::with_capacity(v.len() / 2);
                let mut it = v.into_iter();
                while let (Some(Value::Bulk(f)), Some(Value::Bulk(v))) = (it.next(), it.next()) {
                    all.push((f, v));
                }
                hash_all(all)
            }
        }
        (FillKind::Hgetall, Value::Map(pairs)) => {
            if pairs.is_empty() && pttl == -2 {
                Known::Absent
            } else if pairs.is_empty() || pttl < -1 {
                return (reply, None);
            } else {
                let all = pairs
                    .into_iter()
                    .filter_map(|(f, v)| match (f, v) {
                        (Value::Bulk(f), Value::Bulk(v)) => Some((f, v)),
                        _ => None,
                    })
                    .collect();
                hash_all(all)
            }
        }
        (FillKind::Hget(f), Value::Bulk(v)) if pttl >= -1 => Known::Hash {
            all: None,
            some: vec![(f.clone(), Some(v))],
        },
        (FillKind::Hget(f), Value::Nil) if pttl >= -1 => Known::Hash {
            all: None,
            some: vec![(f.clone(), None)],
        },
        _ => return (reply, None),
    };
    (reply, Some((known, pttl)))
}

fn hash_all(all: Vec<(Bytes, Bytes)>) -> Known {
    Known::Hash {
        all: Some(all),
        some: Vec::new(),
    }
}
