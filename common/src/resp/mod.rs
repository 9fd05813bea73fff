//! RESP encoding and decoding: client requests, backend replies, and reply builders.

mod encode;
mod inline;
mod reply;
mod request;
mod value;

pub use encode::{
    write_array_header, write_bulk, write_error, write_integer, write_map_header, write_null,
    write_null_of, write_simple, write_verbatim, PartsBuilder, RequestBuilder,
};
pub use reply::{ReplyKind, ReplyScanner};
pub use request::{Limits, Request, RequestDecoder};
pub use value::{parse_value, Value};

/// Maximum length of an inline request or of a `*`/`$` header line, as in Redis (64 KiB).
pub const INLINE_MAX: usize = 64 * 1024;

/// Where the first `\r` of `buf` is (the end of a RESP line).
#[inline]
pub fn find_cr(buf: &[u8]) -> Option<usize> {
    crate::find::find_byte(b'\r', buf)
}

/// Parses an ASCII decimal `i64` as Redis's `string2ll` does (no `+`, no spaces, no leading zeros).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    if neg {
        if v == 0 {
            return None;
        }
        Some(-v)
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::{find_cr, parse_i64};

    #[test]
    fn find_cr_agrees_with_memchr_at_every_length_and_place() {
        for len in 0..70 {
            for at in 0..=len {
                let mut buf = vec![b'x'; len];
                if at < len {
                    buf[at] = b'\r';
                }
                assert_eq!(find_cr(&buf), memchr::memchr(b'\r', &buf), "{len} {at}");
            }
        }
    }

    #[test]
    fn parse_i64_matches_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"1a"), None);
    }
}
