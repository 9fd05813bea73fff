//! A parsed RESP value, for the cold paths that need structure: merges and topology discovery.

use bytes::Bytes;

use super::parse_i64;
use crate::ProtocolError;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(Bytes),
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    Nil,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Push(Vec<Value>),
    Bool(bool),
    Double(Bytes),
    BigNumber(Bytes),
    Verbatim(Bytes),
}

impl Value {
    /// The bytes of a string-like value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Bulk(b) | Value::Verbatim(b) | Value::Error(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bulk(b) | Value::Simple(b) => parse_i64(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }

    /// Fields of a map, or of an array of alternating keys and values (RESP2 maps).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(kv) => kv
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(name.as_bytes()))
                .map(|(_, v)| v),
            Value::Array(v) => v
                .chunks_exact(2)
                .find(|c| c[0].as_bytes() == Some(name.as_bytes()))
                .map(|c| &c[1]),
            _ => None,
        }
    }
}

/// Parses the first complete value in `buf`: `(value, bytes used)`, or `None` if incomplete.
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        Some(v) => Ok(Some((v, pos))),
        None => Ok(None),
    }
}

/// Deep enough for any real reply; guards the recursion against a hostile stream.
const MAX_DEPTH: usize = 128;

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Value>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError::InvalidReplyLine);
    }
    let Some(&ty) = buf.get(*pos) else {
        return Ok(None);
    };
    let Some(cr) = memchr::memchr(b'\r', &buf[*pos + 1..]).map(|i| *pos + 1 + i) else {
        return Ok(None);
    };
    if cr + 1 >= buf.len() {
        return Ok(None);
    }
    let line = &buf[*pos + 1..cr];
    let next = cr + 2;
    let copy = |s: &[u8]| Bytes::copy_from_slice(s);
    let int = |s: &[u8]| parse_i64(s).ok_or(ProtocolError::InvalidReplyLine);
    let v = match ty {
        b'+' => Value::Simple(copy(line)),
        b'-' => Value::Error(copy(line)),
        b':' => Value::Int(int(line)?),
        b'_' => Value::Nil,
        b'#' => Value::Bool(line == b"t"),
        b',' => Value::Double(copy(line)),
        b'(' => Value::BigNumber(copy(line)),
        b'$' | b'!' | b'=' => {
            let n = int(line)?;
            if n < 0 {
                *pos = next;
                return Ok(Some(Value::Nil));
            }
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| next.checked_add(n))
                .ok_or(ProtocolError::InvalidReplyLine)?;
            if end.saturating_add(2) > buf.len() {
                return Ok(None);
            }
            *pos = end + 2;
            let body = copy(&buf[next..end]);
            return Ok(Some(match ty {
                b'$' => Value::Bulk(body),
                b'!' => Value::Error(body),
                _ => Value::Verbatim(body),
            }));
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(line)?;
            *pos = next;
            if n < 0 && ty == b'|' {
                // As the reply scanner reads it: an attribute without pairs, then its value.
                return parse_at(buf, pos, depth + 1);
            }
            if n < 0 {
                return Ok(Some(Value::Nil));
            }
            let pairs = matches!(ty, b'%' | b'|');
            let count = usize::try_from(n)
                .ok()
                .and_then(|n| if pairs { n.checked_mul(2) } else { Some(n) })
                .ok_or(ProtocolError::InvalidReplyLine)?;
            let mut items = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                match parse_at(buf, pos, depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            return Ok(Some(match ty {
                b'*' => Value::Array(items),
                b'~' => Value::Set(items),
                b'>' => Value::Push(items),
                b'|' => {
                    // An attribute annotates the value that follows; keep the value.
                    return parse_at(buf, pos, depth + 1);
                }
                _ => {
                    let mut it = items.into_iter();
                    let mut kv = Vec::with_capacity(count / 2);
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        kv.push((k, v));
                    }
                    Value::Map(kv)
                }
            }));
        }
        other => return Err(ProtocolError::InvalidReplyType(other as char)),
    };
    *pos = next;
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_value_nested() {
        let (v, n) = parse_value(b"*3\r\n:1\r\n$3\r\nabc\r\n%1\r\n+k\r\n$-1\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(n, 30);
        let a = v.as_array().unwrap();
        assert_eq!(a[0].as_int(), Some(1));
        assert_eq!(a[1].as_str(), Some("abc"));
        assert_eq!(a[2].field("k"), Some(&Value::Nil));
    }

    #[test]
    fn parse_value_incomplete_is_none() {
        assert_eq!(parse_value(b"*2\r\n:1\r\n").unwrap(), None);
        assert_eq!(parse_value(b"$5\r\nab").unwrap(), None);
    }

    #[test]
    fn parse_value_refuses_lengths_that_overflow() {
        // Twice i64::MAX still fits a 64-bit count: the frame is incomplete, not an overflow.
        let huge_map = format!("%{}\r\n", i64::MAX);
        assert_eq!(parse_value(huge_map.as_bytes()).unwrap(), None);
        let huge_bulk = format!("${}\r\nab", i64::MAX);
        assert_eq!(parse_value(huge_bulk.as_bytes()).unwrap(), None);
    }

    #[test]
    fn parse_value_skips_attributes() {
        let (v, _) = parse_value(b"|1\r\n+a\r\n+b\r\n:7\r\n").unwrap().unwrap();
        assert_eq!(v, Value::Int(7));
    }
}
