//! Fan-out merge policy: how the replies of a split or fan-out command become one reply.

use bytes::{Bytes, BytesMut};
use hive_common::resp::{parse_i64, write_array_header, write_integer, ReplyKind, ReplyScanner};
use smallvec::SmallVec;

/// How part replies combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    /// MGET: array elements go back to their keys' positions.
    Gather,
    /// MSET: `+OK` when every part says OK.
    AllOk,
    /// DEL, UNLINK, EXISTS, TOUCH, DBSIZE: integers add up.
    Sum,
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
}

impl Merge {
    /// `positions[i]` lists where part `i`'s keys were (only used by `Gather`).
    pub fn new(kind: MergeKind, parts: usize, positions: Vec<SmallVec<[u32; 4]>>) -> Merge {
        let total: usize = positions.iter().map(|p| p.len()).sum();
        Merge {
            kind,
            left: parts,
            error: None,
            sum: 0,
            positions,
            values: if kind == MergeKind::Gather {
                vec![None; total]
            } else {
                Vec::new()
            },
        }
    }

    /// Adds part `part`'s reply; returns the merged reply once every part has answered.
    pub fn add(&mut self, part: usize, frame: Bytes) -> Option<Bytes> {
        self.left = self.left.saturating_sub(1);
        if ReplyKind::of(&frame) == ReplyKind::Error {
            self.error.get_or_insert(frame);
        } else if self.error.is_none() {
            if let Err(why) = self.absorb(part, &frame) {
                let mut e = BytesMut::new();
                hive_common::resp::write_error(&mut e, &format!("ERR Hive: {why}"));
                self.error = Some(e.freeze());
            }
        }
        (self.left == 0).then(|| self.finish())
    }

    fn absorb(&mut self, part: usize, frame: &Bytes) -> Result<(), &'static str> {
        match self.kind {
            MergeKind::Sum => {
                let n = frame
                    .strip_prefix(b":")
                    .and_then(|r| r.strip_suffix(b"\r\n"))
                    .and_then(parse_i64)
                    .ok_or("a node answered a non-integer to a counting command")?;
                self.sum += n;
            }
            MergeKind::AllOk => {
                if &frame[..] != b"+OK\r\n" {
                    return Err("a node did not answer OK");
                }
            }
            MergeKind::Gather => {
                let nl = memchr::memchr(b'\n', frame).ok_or("bad array reply")?;
                if frame[0] != b'*' {
                    return Err("a node did not answer an array");
                }
                let positions = self.positions.get(part).ok_or("unknown part")?;
                let mut at = nl + 1;
                for &pos in positions {
                    let mut sc = ReplyScanner::default();
                    let len = sc
                        .scan(&frame[at..])
                        .ok()
                        .flatten()
                        .ok_or("short array reply")?;
                    self.values[pos as usize] = Some(frame.slice(at..at + len));
                    at += len;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Bytes {
        if let Some(e) = self.error.take() {
            return e;
        }
        let mut out = BytesMut::new();
        match self.kind {
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
        out.freeze()
    }
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
    fn merge_first_error_wins() {
        let mut m = Merge::new(MergeKind::Sum, 2, vec![]);
        m.add(0, Bytes::from_static(b"-ERR boom\r\n"));
        assert_eq!(
            &m.add(1, Bytes::from_static(b":1\r\n")).unwrap()[..],
            b"-ERR boom\r\n"
        );
    }
}
