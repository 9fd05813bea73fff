//! Inline requests (`SET k v` typed into telnet): one line, split the way Redis's
//! `sdssplitargs` splits it.

use bytes::BytesMut;

use super::request::Request;
use super::INLINE_MAX;
use crate::ProtocolError;

/// `Some(None)` for a blank line, which Redis skips.
pub(super) fn decode_inline(buf: &mut BytesMut) -> Result<Option<Option<Request>>, ProtocolError> {
    // Redis looks for the newline with `strchr`, which stops at a NUL byte: a line with a NUL
    // never ends, so nothing runs and the buffer grows to the inline limit, then errors.
    // Only this line is scanned, and never past the limit: scanning the whole buffer for a
    // NUL made a pipeline of N inline commands cost N times its size.
    let window = &buf[..buf.len().min(INLINE_MAX + 1)];
    let nl = match memchr::memchr2(b'\n', 0, window) {
        Some(at) if window[at] == b'\n' => at,
        _ => {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        }
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let args = split_args(&buf[..line_end]).ok_or(ProtocolError::UnbalancedQuotes)?;
    let _ = buf.split_to(nl + 1);
    if args.is_empty() {
        return Ok(Some(None));
    }
    Ok(Some(Some(Request::from_args(&args))))
}

/// Splits an inline request line the way Redis's `sdssplitargs` does (quotes and escapes).
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Redis splits a C string, so a NUL byte ends the line.
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut out = Vec::new();
    let mut i = 0;
    let is_space = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'\x0b' | b'\x0c');
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        // The quote character we are inside, if any.
        let mut quote: Option<u8> = None;
        loop {
            let Some(q) = quote else {
                match line.get(i) {
                    None => break,
                    Some(&c) if is_space(c) => break,
                    Some(&c @ (b'"' | b'\'')) => quote = Some(c),
                    Some(&c) => cur.push(c),
                }
                i += 1;
                continue;
            };
            let c = *line.get(i)?;
            if q == b'"' && c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                    cur.push(h * 16 + l);
                    i += 4;
                    continue;
                }
            }
            if q == b'"' && c == b'\\' && i + 1 < line.len() {
                cur.push(match line[i + 1] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 8,
                    b'a' => 7,
                    other => other,
                });
                i += 2;
                continue;
            }
            if q == b'\'' && c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                cur.push(b'\'');
                i += 2;
                continue;
            }
            if c == q {
                // A closing quote must be followed by a space or the end.
                if i + 1 < line.len() && !is_space(line[i + 1]) {
                    return None;
                }
                i += 1;
                break;
            }
            cur.push(c);
            i += 1;
        }
        out.push(cur);
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_with_a_nul_never_runs_as_in_redis() {
        let mut buf = BytesMut::from(&b"get a\x00b\r\nPING\r\n"[..]);
        assert_eq!(decode_inline(&mut buf).unwrap().map(|_| ()), None);
        buf.extend_from_slice(&vec![b'x'; INLINE_MAX]);
        assert_eq!(
            decode_inline(&mut buf).unwrap_err(),
            ProtocolError::TooBigInline
        );
        let mut buf = BytesMut::from(&b"get a\r\n\x00"[..]);
        assert!(
            decode_inline(&mut buf).unwrap().is_some(),
            "a NUL after the newline is the next line's"
        );
    }

    #[test]
    fn split_args_handles_escapes() {
        let a = split_args(br#"set "a\x41\n" 'it\'s'  x"#).unwrap();
        assert_eq!(
            a,
            vec![
                b"set".to_vec(),
                b"aA\n".to_vec(),
                b"it's".to_vec(),
                b"x".to_vec()
            ]
        );
        assert!(split_args(b"\"open").is_none());
        assert_eq!(split_args(b"   ").unwrap().len(), 0);
        assert_eq!(split_args(b"\"\"").unwrap(), vec![Vec::<u8>::new()]);
        assert_eq!(
            split_args(b"get a\x00b c").unwrap(),
            vec![b"get".to_vec(), b"a".to_vec()]
        );
        assert_eq!(split_args(b"\x00").unwrap().len(), 0);
    }
}
