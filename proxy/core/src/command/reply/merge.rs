//! Fan-out merge policy: how the replies of a split or fan-out command become one reply.

use bytes::{Bytes, BytesMut};
use hive_common::resp::{parse_i64, write_array_header, write_integer, ReplyKind, ReplyScanner};
use smallvec::SmallVec;

use crate::error::{ProxyError, UpstreamReason};

/// How part replies combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    /// MGET: array elements go back to their keys' positions.
    Gather,
    /// MSET: `+OK` when every part says OK.
    AllOk,
    /// DEL, UNLINK, EXISTS, TOUCH, DBSIZE, PUBLISH, LATENCY RESET: integers add up.
    Sum,
    /// KEYS: the arrays are concatenated.
    Concat,
    /// PUBSUB CHANNELS: concatenated without duplicates.
    Union,
    /// SCRIPT EXISTS: element-wise AND of 0/1 arrays (a script exists if every master has it).
    And,
    /// WAIT: the smallest count (the guarantee that holds on every shard).
    Min,
    /// SCRIPT LOAD, FUNCTION LOAD, FUNCTION DUMP: every master answers the same; the first
    /// reply is returned.
    First,
    /// SCRIPT KILL, FUNCTION KILL: OK if any master had something to kill.
    AnyOk,
    /// RANDOMKEY: a key from some master that has one.
    Random(usize),
    /// CONFIG GET: the union of name/value pairs.
    Pairs,
    /// Several SUNSUBSCRIBEs: the reply frames, concatenated in part order.
    Frames,
}

/// The state of one split request while its parts are outstanding.
#[derive(Debug)]
pub struct Merge {
    kind: MergeKind,
    left: usize,
    error: Option<Bytes>,
    sum: i64,
    /// `Gather`: per part, the positions of its keys in the original request.
    positions: Vec<SmallVec<[u32; 4]>>,
    values: Vec<Option<Bytes>>,
    /// Whole part replies, for the kinds that combine them at the end.
    parts: Vec<Option<Bytes>>,
    any_ok: bool,
}

impl Merge {
    /// `positions[i]` lists where part `i`'s keys were (only used by `Gather`).
    pub fn new(kind: MergeKind, parts: usize, positions: Vec<SmallVec<[u32; 4]>>) -> Merge {
        let total: usize = positions.iter().map(|p| p.len()).sum();
        Merge {
            kind,
            left: parts,
            error: None,
            // The identity of the combining operation.
            sum: if kind == MergeKind::Min { i64::MAX } else { 0 },
            positions,
            values: if kind == MergeKind::Gather {
                vec![None; total]
            } else {
                Vec::new()
            },
            parts: vec![None; parts],
            any_ok: false,
        }
    }

    /// Adds part `part`'s reply; returns the merged reply once every part has answered.
    pub fn add(&mut self, part: usize, frame: Bytes) -> Option<Bytes> {
        self.left = self.left.saturating_sub(1);
        if self.kind == MergeKind::AnyOk && &frame[..] == b"+OK\r\n" {
            self.any_ok = true;
        }
        if ReplyKind::of(&frame) == ReplyKind::Error {
            self.error.get_or_insert(frame);
        } else if self.error.is_none() {
            if let Err(why) = self.absorb(part, &frame) {
                self.error = Some(bad_reply(why));
            }
        }
        (self.left == 0).then(|| self.finish())
    }

    fn absorb(&mut self, part: usize, frame: &Bytes) -> Result<(), &'static str> {
        match self.kind {
            MergeKind::Sum | MergeKind::Min => {
                let n = frame
                    .strip_prefix(b":")
                    .and_then(|r| r.strip_suffix(b"\r\n"))
                    .and_then(parse_i64)
                    .ok_or("a node answered a non-integer")?;
                self.sum = if self.kind == MergeKind::Sum {
                    self.sum
                        .checked_add(n)
                        .ok_or("the nodes' counts add up past a 64-bit integer")?
                } else {
                    self.sum.min(n)
                };
            }
            MergeKind::AllOk => {
                if &frame[..] != b"+OK\r\n" {
                    return Err("a node did not answer OK");
                }
            }
            MergeKind::Concat
            | MergeKind::Union
            | MergeKind::And
            | MergeKind::First
            | MergeKind::AnyOk
            | MergeKind::Random(_)
            | MergeKind::Frames
            | MergeKind::Pairs => {
                *self.parts.get_mut(part).ok_or("unknown part")? = Some(frame.clone());
            }
            MergeKind::Gather => {
                let nl = memchr::memchr(b'\n', frame).ok_or("bad array reply")?;
                if frame[0] != b'*' {
                    return Err("a node did not answer an array");
                }
                let positions = self.positions.get(part).ok_or("unknown part")?;
                let mut at = nl + 1;
                for &pos in positions {
                    let len = frame_len(&frame[at..])?;
                    self.values[pos as usize] = Some(frame.slice(at..at + len));
                    at += len;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Bytes {
        if self.kind == MergeKind::AnyOk && self.any_ok {
            return Bytes::from_static(b"+OK\r\n");
        }
        if let Some(e) = self.error.take() {
            return e;
        }
        match self.combine() {
            Ok(out) => out,
            Err(why) => bad_reply(why),
        }
    }

    fn combine(&mut self) -> Result<Bytes, &'static str> {
        let parts: Vec<Bytes> = self.parts.iter().flatten().cloned().collect();
        let mut out = BytesMut::new();
        match self.kind {
            MergeKind::First | MergeKind::AnyOk => {
                return parts.into_iter().next().ok_or("no reply");
            }
            MergeKind::Random(seed) => {
                let n = parts.len().max(1);
                let is_null = |f: &Bytes| f[..] == b"$-1\r\n"[..] || f[..] == b"_\r\n"[..];
                let pick = (0..n)
                    .map(|k| &parts[(seed + k) % n])
                    .find(|f| !is_null(f))
                    .or(parts.first())
                    .ok_or("no reply")?;
                return Ok(pick.clone());
            }
            MergeKind::Min => write_integer(&mut out, self.sum),
            MergeKind::Frames => parts.iter().for_each(|p| out.extend_from_slice(p)),
            MergeKind::Concat | MergeKind::Union => {
                let mut all: Vec<&[u8]> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for p in &parts {
                    for e in elements(p)?.1 {
                        if self.kind == MergeKind::Concat || seen.insert(e) {
                            all.push(e);
                        }
                    }
                }
                write_array_header(&mut out, all.len());
                all.iter().for_each(|e| out.extend_from_slice(e));
            }
            MergeKind::And => {
                let mut acc: Vec<bool> = Vec::new();
                for (i, p) in parts.iter().enumerate() {
                    let flags: Vec<bool> = elements(p)?.1.iter().map(|e| *e != b":0\r\n").collect();
                    if i == 0 {
                        acc = flags;
                    } else {
                        acc.iter_mut().zip(flags).for_each(|(a, f)| *a &= f);
                    }
                }
                write_array_header(&mut out, acc.len());
                acc.iter()
                    .for_each(|&a| write_integer(&mut out, i64::from(a)));
            }
            MergeKind::Pairs => {
                let mut ty = b'*';
                let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for p in &parts {
                    let (t, items) = elements(p)?;
                    ty = t;
                    for kv in items.chunks_exact(2) {
                        if !is_secret_config(kv[0]) && seen.insert(kv[0]) {
                            pairs.push((kv[0], kv[1]));
                        }
                    }
                }
                if ty == b'%' {
                    out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                } else {
                    write_array_header(&mut out, pairs.len() * 2);
                }
                for (k, v) in pairs {
                    out.extend_from_slice(k);
                    out.extend_from_slice(v);
                }
            }
            MergeKind::Sum => write_integer(&mut out, self.sum),
            MergeKind::AllOk => out.extend_from_slice(b"+OK\r\n"),
            MergeKind::Gather => {
                write_array_header(&mut out, self.values.len());
                for v in &self.values {
                    match v {
                        Some(b) => out.extend_from_slice(b),
                        None => out.extend_from_slice(b"$-1\r\n"),
                    }
                }
            }
        }
        Ok(out.freeze())
    }
}

/// Node parameters whose values are credentials: CONFIG GET through Hive never returns them,
/// whoever asks (`requirepass`, `masterauth`, `masteruser`, `tls-key-file-pass`,
/// `tls-client-key-file-pass`, and any other `*pass`/`*password`/`*auth` parameter).
fn is_secret_config(name_frame: &[u8]) -> bool {
    let Some(name) = bulk_text(name_frame) else {
        return false;
    };
    let name = name.to_ascii_lowercase();
    name == b"masteruser"
        || name.ends_with(b"pass")
        || name.ends_with(b"password")
        || name.ends_with(b"auth")
}

/// The payload of a bulk or simple string frame.
fn bulk_text(frame: &[u8]) -> Option<&[u8]> {
    match frame.first()? {
        b'+' => frame.get(1..frame.len().checked_sub(2)?),
        b'$' => {
            let nl = memchr::memchr(b'\n', frame)?;
            frame.get(nl + 1..frame.len().checked_sub(2)?)
        }
        _ => None,
    }
}

fn bad_reply(why: &str) -> Bytes {
    ProxyError::upstream(UpstreamReason::BadReply, format!("Hive: {why}")).frame()
}

/// The length of the complete frame at the start of `bytes` (an element of an array reply).
fn frame_len(bytes: &[u8]) -> Result<usize, &'static str> {
    ReplyScanner::default()
        .scan(bytes)
        .ok()
        .flatten()
        .ok_or("short array reply")
}

/// The type byte and the element frames of an aggregate reply (a map's keys and values
/// alternate).
fn elements(frame: &[u8]) -> Result<(u8, Vec<&[u8]>), &'static str> {
    let ty = *frame.first().ok_or("empty reply")?;
    if !matches!(ty, b'*' | b'~' | b'%' | b'>') {
        return Err("a node did not answer an array");
    }
    let nl = memchr::memchr(b'\n', frame).ok_or("bad array reply")?;
    let n = parse_i64(&frame[1..nl - 1]).ok_or("bad array length")?;
    let n = usize::try_from(n.max(0)).map_err(|_| "bad array length")?;
    let n = if ty == b'%' {
        n.checked_mul(2).ok_or("bad array length")?
    } else {
        n
    };
    if n > frame.len() {
        // Every element takes bytes: a larger count cannot be this frame's.
        return Err("bad array length");
    }
    let mut at = nl + 1;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = frame_len(&frame[at..])?;
        out.push(&frame[at..at + len]);
        at += len;
    }
    Ok((ty, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    #[test]
    fn merge_gather_restores_key_order() {
        let mut m = Merge::new(MergeKind::Gather, 2, vec![smallvec![0, 2], smallvec![1]]);
        assert!(m.add(1, Bytes::from_static(b"*1\r\n$1\r\nb\r\n")).is_none());
        let out = m
            .add(0, Bytes::from_static(b"*2\r\n$1\r\na\r\n$-1\r\n"))
            .unwrap();
        assert_eq!(&out[..], b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n");
    }

    #[test]
    fn merge_sum_and_all_ok() {
        let mut m = Merge::new(MergeKind::Sum, 3, vec![]);
        m.add(0, Bytes::from_static(b":2\r\n"));
        m.add(1, Bytes::from_static(b":0\r\n"));
        assert_eq!(
            &m.add(2, Bytes::from_static(b":5\r\n")).unwrap()[..],
            b":7\r\n"
        );
        let mut m = Merge::new(MergeKind::AllOk, 2, vec![]);
        m.add(0, Bytes::from_static(b"+OK\r\n"));
        assert_eq!(
            &m.add(1, Bytes::from_static(b"+OK\r\n")).unwrap()[..],
            b"+OK\r\n"
        );
    }

    #[test]
    fn merge_fan_out_kinds() {
        let run = |kind, parts: &[&'static [u8]]| {
            let mut m = Merge::new(kind, parts.len(), vec![]);
            let mut out = None;
            for (i, p) in parts.iter().enumerate() {
                out = m.add(i, Bytes::from_static(p));
            }
            out.unwrap().to_vec()
        };
        assert_eq!(
            run(
                MergeKind::Concat,
                &[b"*1\r\n$1\r\na\r\n", b"*0\r\n", b"*1\r\n$1\r\nb\r\n"]
            ),
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            run(
                MergeKind::Union,
                &[b"*1\r\n$1\r\na\r\n", b"*1\r\n$1\r\na\r\n"]
            ),
            b"*1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            run(
                MergeKind::And,
                &[b"*2\r\n:1\r\n:1\r\n", b"*2\r\n:0\r\n:1\r\n"]
            ),
            b"*2\r\n:0\r\n:1\r\n"
        );
        assert_eq!(
            run(MergeKind::Min, &[b":2\r\n", b":1\r\n", b":3\r\n"]),
            b":1\r\n"
        );
        assert_eq!(
            run(
                MergeKind::AnyOk,
                &[
                    b"-NOTBUSY No scripts in execution right now.\r\n",
                    b"+OK\r\n"
                ]
            ),
            b"+OK\r\n"
        );
        assert_eq!(
            run(MergeKind::Random(0), &[b"$-1\r\n", b"$1\r\nk\r\n"]),
            b"$1\r\nk\r\n"
        );
        assert_eq!(
            run(
                MergeKind::Pairs,
                &[
                    b"%1\r\n$1\r\na\r\n$1\r\n1\r\n",
                    b"%1\r\n$1\r\na\r\n$1\r\n1\r\n"
                ]
            ),
            b"%1\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
    }

    #[test]
    fn merge_sum_overflow_is_an_error() {
        let mut m = Merge::new(MergeKind::Sum, 2, vec![]);
        m.add(0, Bytes::from(format!(":{}\r\n", i64::MAX)));
        let out = m.add(1, Bytes::from_static(b":1\r\n")).unwrap();
        assert!(
            out.starts_with(b"-ERR Hive: the nodes' counts add up past"),
            "{out:?}"
        );
        // A map header claiming more pairs than fit is refused, not wrapped.
        let huge = format!("%{}\r\n", i64::MAX);
        assert!(elements(huge.as_bytes()).is_err());
        assert!(elements(b"*4611686018427387904\r\n").is_err());
    }

    #[test]
    fn merge_config_get_leaves_credentials_out() {
        let node =
            b"*8\r\n$11\r\nrequirepass\r\n$6\r\nsecret\r\n$10\r\nmasterauth\r\n$6\r\nsecret\r\n\
$17\r\ntls-key-file-pass\r\n$1\r\nx\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n";
        let mut m = Merge::new(MergeKind::Pairs, 2, vec![]);
        m.add(0, Bytes::from_static(node));
        let out = m.add(1, Bytes::from_static(node)).unwrap();
        assert_eq!(&out[..], b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
        assert!(!out.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn merge_first_error_wins() {
        let mut m = Merge::new(MergeKind::Sum, 2, vec![]);
        m.add(0, Bytes::from_static(b"-ERR boom\r\n"));
        assert_eq!(
            &m.add(1, Bytes::from_static(b":1\r\n")).unwrap()[..],
            b"-ERR boom\r\n"
        );
    }
}
