//! A blocking pop whose keys hash to several slots, as a plan: the keys in the client's order,
//! the timeout, and the node-side requests the runner sends (a length check and a pop that
//! does not block, the blocking command for one group of keys, the push that puts back an
//! element another shard popped). Pure: no I/O, unit-tested.

use bytes::{Bytes, BytesMut};
use hive_common::resp::{parse_value, write_array_header, Request, Value};
use hive_common::Slot;

use crate::error::ProxyError;

/// Which structure the command pops from, and from which end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// BLPOP / BRPOP / BLMPOP: from the head (`left`) or the tail.
    List { left: bool },
    /// BZPOPMIN / BZPOPMAX / BZMPOP: the lowest (`min`) or highest scores.
    Zset { min: bool },
    /// BLMOVE / BRPOPLPUSH: pop from `keys[0]`, push onto `dst` at the head (`to_left`) or
    /// the tail.
    Move {
        left: bool,
        dst: Bytes,
        to_left: bool,
    },
}

/// The reply's form: BLPOP-style `[key, element]` / `[key, member, score]`, or the
/// BLMPOP-style `[key, [elements]]` with an optional COUNT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    One,
    Many { count: Option<Bytes> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPlan {
    pub kind: Kind,
    pub form: Form,
    /// In the client's order; the first key in this order with an element wins.
    pub keys: Vec<Bytes>,
    /// Milliseconds; `None` blocks forever (a timeout of 0).
    pub timeout_ms: Option<u64>,
    /// A blocking command; otherwise (LMOVE, LMPOP...) an empty source answers nil at once.
    pub block: bool,
}

/// The pops Hive runs across shards with this plan: the blocking ones, and LMOVE/RPOPLPUSH/
/// LMPOP/ZMPOP, which pop from one key and need no copy of the whole list (other blocking
/// commands, XREAD BLOCK and WAIT, are not).
pub const POPS: &[&str] = &[
    "blpop",
    "brpop",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "blmove",
    "brpoplpush",
    "lmove",
    "rpoplpush",
    "lmpop",
    "zmpop",
];

/// Parses a pop the way Redis 7.0 does, with its error texts. `cmd` is the command table's
/// lower-case name, one of `POPS`; `req` has the arity the command table asks for.
pub fn plan(cmd: &str, req: &Request) -> Result<BlockPlan, ProxyError> {
    let args: Vec<Bytes> = req.args().map(Bytes::copy_from_slice).collect();
    let n = args.len();
    let one = |kind: Kind| -> Result<BlockPlan, ProxyError> {
        Ok(BlockPlan {
            kind,
            form: Form::One,
            keys: args[1..n - 1].to_vec(),
            timeout_ms: timeout(&args[n - 1])?,
            block: true,
        })
    };
    let moving = |left: bool, to_left: bool, timeout_ms: Option<u64>, block: bool| BlockPlan {
        kind: Kind::Move {
            left,
            dst: args[2].clone(),
            to_left,
        },
        form: Form::One,
        keys: vec![args[1].clone()],
        timeout_ms,
        block,
    };
    match cmd {
        "blpop" | "brpop" => one(Kind::List {
            left: cmd == "blpop",
        }),
        "bzpopmin" | "bzpopmax" => one(Kind::Zset {
            min: cmd == "bzpopmin",
        }),
        "brpoplpush" => Ok(moving(false, true, timeout(&args[3])?, true)),
        "rpoplpush" => Ok(moving(false, true, None, false)),
        "blmove" => {
            let timeout_ms = timeout(&args[5])?;
            let (left, to_left) = (side(&args[3], b"left")?, side(&args[4], b"left")?);
            Ok(moving(left, to_left, timeout_ms, true))
        }
        "lmove" => {
            let (left, to_left) = (side(&args[3], b"left")?, side(&args[4], b"left")?);
            Ok(moving(left, to_left, None, false))
        }
        "blmpop" | "bzmpop" | "lmpop" | "zmpop" => {
            let block = cmd.starts_with('b');
            let (timeout_ms, first) = if block {
                (timeout(&args[1])?, 2)
            } else {
                (None, 1)
            };
            let numkeys = positive(&args[first], "numkeys should be greater than 0")? as usize;
            let at = (first + 1)
                .checked_add(numkeys)
                .filter(|&at| at < n)
                .ok_or_else(syntax)?;
            let kind = if cmd.ends_with("lmpop") {
                Kind::List {
                    left: side(&args[at], b"left")?,
                }
            } else {
                Kind::Zset {
                    min: side(&args[at], b"min")?,
                }
            };
            let count = match &args[at + 1..] {
                [] => None,
                [opt, c] if opt.eq_ignore_ascii_case(b"count") => {
                    positive(c, "count should be greater than 0")?;
                    Some(c.clone())
                }
                _ => return Err(syntax()),
            };
            Ok(BlockPlan {
                kind,
                form: Form::Many { count },
                keys: args[first + 1..at].to_vec(),
                timeout_ms,
                block,
            })
        }
        _ => Err(ProxyError::internal(format!("'{cmd}' is not a pop"))),
    }
}

fn syntax() -> ProxyError {
    ProxyError::invalid("syntax error")
}

/// LEFT/RIGHT (`first` = "left") or MIN/MAX (`first` = "min"): whether it is `first`.
fn side(arg: &[u8], first: &[u8]) -> Result<bool, ProxyError> {
    let second: &[u8] = if first == b"left" { b"right" } else { b"max" };
    if arg.eq_ignore_ascii_case(first) {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(second) {
        Ok(false)
    } else {
        Err(syntax())
    }
}

fn positive(arg: &[u8], msg: &str) -> Result<i64, ProxyError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|&v| v >= 1)
        .ok_or_else(|| ProxyError::invalid(msg))
}

/// Redis's `getTimeoutFromObjectOrReply` in seconds: a float, never negative.
fn timeout(arg: &[u8]) -> Result<Option<u64>, ProxyError> {
    let secs = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| !v.is_nan())
        .ok_or_else(|| ProxyError::invalid("timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0) as i64;
    if ms < 0 {
        return Err(ProxyError::invalid("timeout is negative"));
    }
    if ms > i64::MAX / 2 {
        return Err(ProxyError::invalid("timeout is out of range"));
    }
    Ok((ms > 0).then_some(ms as u64))
}

impl BlockPlan {
    /// Keys grouped for one blocking command each, in the client's order inside a group and
    /// by first appearance across groups; `group_of` names a key's group (its slot in a
    /// cluster, its shard otherwise).
    pub fn groups(&self, group_of: impl Fn(Slot) -> usize) -> Vec<Vec<Bytes>> {
        let mut ids: Vec<usize> = Vec::new();
        let mut out: Vec<Vec<Bytes>> = Vec::new();
        for k in &self.keys {
            let g = group_of(Slot::for_key(k));
            match ids.iter().position(|&i| i == g) {
                Some(at) => out[at].push(k.clone()),
                None => {
                    ids.push(g);
                    out.push(vec![k.clone()]);
                }
            }
        }
        out
    }

    /// The request that checks whether `key` holds anything (and its type).
    pub fn length(&self, key: &[u8]) -> Request {
        let cmd: &[u8] = match self.kind {
            Kind::Zset { .. } => b"ZCARD",
            _ => b"LLEN",
        };
        Request::from_args(&[cmd, key])
    }

    /// The pop that does not block, for a key that held something.
    pub fn pop_now(&self, key: &[u8]) -> Request {
        let (kind, count) = (self.kind.clone(), self.count());
        match (kind, count) {
            (Kind::List { left }, None) | (Kind::Move { left, .. }, None) => {
                Request::from_args(&[if left { &b"LPOP"[..] } else { b"RPOP" }, key])
            }
            (Kind::Zset { min }, None) => {
                Request::from_args(&[if min { &b"ZPOPMIN"[..] } else { b"ZPOPMAX" }, key])
            }
            (Kind::List { left }, Some(c)) | (Kind::Move { left, .. }, Some(c)) => {
                let mut a: Vec<&[u8]> = vec![b"LMPOP", b"1", key, dir(left, b"LEFT", b"RIGHT")];
                a.extend(count_args(&c));
                Request::from_args(&a)
            }
            (Kind::Zset { min }, Some(c)) => {
                let mut a: Vec<&[u8]> = vec![b"ZMPOP", b"1", key, dir(min, b"MIN", b"MAX")];
                a.extend(count_args(&c));
                Request::from_args(&a)
            }
        }
    }

    /// The blocking command for one group of keys, with `timeout` (seconds, as text).
    pub fn block(&self, keys: &[Bytes], timeout: &[u8]) -> Request {
        let mut a: Vec<&[u8]> = Vec::with_capacity(keys.len() + 6);
        let n = keys.len().to_string();
        match (&self.kind, &self.form) {
            (Kind::List { left }, Form::One) | (Kind::Move { left, .. }, _) => {
                a.push(if *left { b"BLPOP" } else { b"BRPOP" });
                a.extend(keys.iter().map(|k| &k[..]));
                a.push(timeout);
            }
            (Kind::Zset { min }, Form::One) => {
                a.push(if *min { b"BZPOPMIN" } else { b"BZPOPMAX" });
                a.extend(keys.iter().map(|k| &k[..]));
                a.push(timeout);
            }
            (Kind::List { left }, Form::Many { count }) => {
                a.extend([&b"BLMPOP"[..], timeout, n.as_bytes()]);
                a.extend(keys.iter().map(|k| &k[..]));
                a.push(dir(*left, b"LEFT", b"RIGHT"));
                a.extend(count.as_deref().map(count_args).unwrap_or_default());
            }
            (Kind::Zset { min }, Form::Many { count }) => {
                a.extend([&b"BZMPOP"[..], timeout, n.as_bytes()]);
                a.extend(keys.iter().map(|k| &k[..]));
                a.push(dir(*min, b"MIN", b"MAX"));
                a.extend(count.as_deref().map(count_args).unwrap_or_default());
            }
        }
        Request::from_args(&a)
    }

    fn count(&self) -> Option<Bytes> {
        match &self.form {
            Form::Many { count } => Some(count.clone().unwrap_or_else(|| Bytes::from_static(b"1"))),
            Form::One => None,
        }
    }

    /// The client's reply from a non-blocking pop of `key` (`None`: another client took the
    /// element first). LPOP/ZPOPMIN answer without the key, which the blocking form names.
    pub fn served_now(&self, key: &[u8], frame: &Bytes) -> Option<Bytes> {
        if is_nil(frame) {
            return None;
        }
        if matches!(self.form, Form::Many { .. }) {
            return Some(frame.clone());
        }
        let parts: Vec<Bytes> = match self.kind {
            Kind::Zset { .. } => elements(frame)?,
            _ => vec![frame.clone()],
        };
        let mut out = BytesMut::with_capacity(frame.len() + key.len() + 16);
        write_array_header(&mut out, parts.len() + 1);
        hive_common::resp::write_bulk(&mut out, key);
        for p in parts {
            out.extend_from_slice(&p);
        }
        Some(out.freeze())
    }

    /// The element a `[key, element]` reply carries (BLMOVE/BRPOPLPUSH's pop from the source).
    pub fn element(&self, frame: &[u8]) -> Option<Bytes> {
        let Ok(Some((Value::Array(v), _))) = parse_value(frame) else {
            return None;
        };
        v.get(1)?.as_bytes().map(Bytes::copy_from_slice)
    }

    /// The request that puts back what a blocking reply took (`frame`, in the blocking form),
    /// at the end it came from and, for a sorted set, with its score; `None` for nothing.
    pub fn push_back(&self, frame: &[u8]) -> Option<(Bytes, Request)> {
        let Ok(Some((Value::Array(v), _))) = parse_value(frame) else {
            return None;
        };
        let key = Bytes::copy_from_slice(v.first()?.as_bytes()?);
        let mut a: Vec<Vec<u8>> = Vec::new();
        match (&self.kind, &self.form) {
            (Kind::List { left } | Kind::Move { left, .. }, Form::One) => {
                a.push(if *left {
                    b"LPUSH".to_vec()
                } else {
                    b"RPUSH".to_vec()
                });
                a.push(key.to_vec());
                a.push(v.get(1)?.as_bytes()?.to_vec());
            }
            (Kind::List { left } | Kind::Move { left, .. }, Form::Many { .. }) => {
                a.push(if *left {
                    b"LPUSH".to_vec()
                } else {
                    b"RPUSH".to_vec()
                });
                a.push(key.to_vec());
                // Popped first comes back last, so the first ends up where it was.
                let items = v.get(1)?.as_array()?;
                for e in items.iter().rev() {
                    a.push(e.as_bytes()?.to_vec());
                }
            }
            (Kind::Zset { .. }, Form::One) => {
                a.extend([b"ZADD".to_vec(), key.to_vec()]);
                a.push(score(v.get(2)?)?);
                a.push(v.get(1)?.as_bytes()?.to_vec());
            }
            (Kind::Zset { .. }, Form::Many { .. }) => {
                a.extend([b"ZADD".to_vec(), key.to_vec()]);
                for pair in v.get(1)?.as_array()? {
                    let pair = pair.as_array()?;
                    a.push(score(pair.get(1)?)?);
                    a.push(pair.first()?.as_bytes()?.to_vec());
                }
            }
        }
        let refs: Vec<&[u8]> = a.iter().map(|x| &x[..]).collect();
        Some((key, Request::from_args(&refs)))
    }
}

fn dir(first: bool, a: &'static [u8], b: &'static [u8]) -> &'static [u8] {
    if first {
        a
    } else {
        b
    }
}

fn count_args(c: &[u8]) -> Vec<&[u8]> {
    vec![b"COUNT", c]
}

fn score(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Double(b) | Value::Bulk(b) | Value::Simple(b) => Some(b.to_vec()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

impl BlockPlan {
    /// The null of a pop that found nothing: a null bulk for LMOVE/RPOPLPUSH, a null array
    /// otherwise (RESP3: `_` for both).
    pub fn nil(&self, resp3: bool) -> Bytes {
        match (resp3, &self.kind, self.block) {
            (true, _, _) => Bytes::from_static(b"_\r\n"),
            (false, Kind::Move { .. }, false) => Bytes::from_static(b"$-1\r\n"),
            _ => Bytes::from_static(b"*-1\r\n"),
        }
    }
}

/// A null in either protocol, or the empty array ZPOPMIN gives for an empty key.
pub fn is_nil(frame: &[u8]) -> bool {
    matches!(frame, b"*-1\r\n" | b"$-1\r\n" | b"_\r\n" | b"*0\r\n")
}

/// The element frames of an array reply, as they were sent.
fn elements(frame: &Bytes) -> Option<Vec<Bytes>> {
    let nl = memchr::memchr(b'\n', frame)?;
    if frame.first() != Some(&b'*') {
        return None;
    }
    let n: usize = std::str::from_utf8(&frame[1..nl - 1]).ok()?.parse().ok()?;
    let body = frame.slice(nl + 1..);
    let parts = hive_upstream::route::router::split_frames(&body, n);
    (parts.len() == n).then_some(parts)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
