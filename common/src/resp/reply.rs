//! Finds reply frame boundaries in a backend's byte stream (every RESP2 and RESP3 type).

use smallvec::SmallVec;

use super::parse_i64;
use crate::ProtocolError;

/// What a complete reply frame starts with; enough to spot errors without parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Error,
    Other,
}

impl ReplyKind {
    pub fn of(frame: &[u8]) -> ReplyKind {
        match frame.first() {
            Some(b'-') | Some(b'!') => ReplyKind::Error,
            _ => ReplyKind::Other,
        }
    }
}

/// Scans for the end of the next reply frame. Keeps its place between calls, so a large
/// aggregate reply arriving in many reads is scanned once.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    pos: usize,
    /// Elements still expected per open aggregate; `true` marks a RESP3 attribute, which
    /// precedes a value and does not count as one.
    open: SmallVec<[(i64, bool); 8]>,
}

impl ReplyScanner {
    /// Returns the length of the first complete frame in `buf`, or `None` if it is incomplete.
    /// `buf` must start at the same frame on every call until a length is returned.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let Some(&ty) = buf.get(self.pos) else {
                return Ok(None);
            };
            let line_start = self.pos + 1;
            let Some(cr) = super::find_cr(&buf[line_start..]) else {
                return Ok(None);
            };
            let cr = line_start + cr;
            if cr + 1 >= buf.len() {
                return Ok(None);
            }
            let next = cr + 2;
            let line = &buf[line_start..cr];
            let done = match ty {
                b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {
                    self.pos = next;
                    self.element_done()
                }
                b'$' | b'!' | b'=' => {
                    let n = parse_i64(line).ok_or(ProtocolError::InvalidReplyLine)?;
                    if n < 0 {
                        self.pos = next;
                    } else {
                        let end = next.saturating_add(n as usize).saturating_add(2);
                        if end > buf.len() {
                            return Ok(None);
                        }
                        self.pos = end;
                    }
                    self.element_done()
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let mut n = parse_i64(line).ok_or(ProtocolError::InvalidReplyLine)?;
                    if matches!(ty, b'%' | b'|') {
                        n = n.saturating_mul(2);
                    }
                    self.pos = next;
                    if n <= 0 && ty == b'|' {
                        // An empty attribute still annotates the value that follows it.
                        false
                    } else if n <= 0 {
                        self.element_done()
                    } else {
                        self.open.push((n, ty == b'|'));
                        false
                    }
                }
                other => return Err(ProtocolError::InvalidReplyType(other as char)),
            };
            if done {
                let len = self.pos;
                self.pos = 0;
                return Ok(Some(len));
            }
        }
    }

    /// Marks one element complete; returns true when the whole frame is complete.
    fn element_done(&mut self) -> bool {
        loop {
            let Some((left, is_attr)) = self.open.last_mut() else {
                return true;
            };
            *left -= 1;
            if *left > 0 {
                return false;
            }
            let attr = *is_attr;
            self.open.pop();
            if attr {
                // The attribute is done; the value it annotates is still to come.
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<usize> {
        let mut s = ReplyScanner::default();
        let mut at = 0;
        let mut out = Vec::new();
        while let Some(n) = s.scan(&input[at..]).unwrap() {
            out.push(n);
            at += n;
        }
        assert_eq!(at, input.len(), "trailing bytes");
        out
    }

    #[test]
    fn scan_every_resp2_and_resp3_type() {
        let input: &[u8] = b"+OK\r\n-ERR x\r\n:12\r\n$3\r\nfoo\r\n$-1\r\n*-1\r\n*0\r\n\
*2\r\n$1\r\na\r\n*1\r\n:1\r\n_\r\n#t\r\n,1.5\r\n(123\r\n!3\r\nbad\r\n=7\r\ntxt:abc\r\n\
%1\r\n+k\r\n+v\r\n~2\r\n:1\r\n:2\r\n>2\r\n+message\r\n+x\r\n|1\r\n+key\r\n+val\r\n:5\r\n";
        assert_eq!(frames(input).len(), 18);
    }

    #[test]
    fn scan_resumes_across_every_split_point() {
        let input: &[u8] = b"*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n%1\r\n+a\r\n+b\r\n";
        for cut in 0..input.len() {
            let mut s = ReplyScanner::default();
            assert_eq!(s.scan(&input[..cut]).unwrap(), None, "cut {cut}");
            assert_eq!(s.scan(input).unwrap(), Some(input.len()), "cut {cut}");
        }
    }

    #[test]
    fn scan_rejects_unknown_type() {
        let mut s = ReplyScanner::default();
        assert_eq!(s.scan(b"?x\r\n"), Err(ProtocolError::InvalidReplyType('?')));
    }

    #[test]
    fn scan_an_empty_attribute_includes_the_value_it_annotates() {
        // Found by benches/fuzz.sh (reply_scanner): the frame is the attribute and its value.
        let frame = b"|0\r\n+a\r\n+b\r\n";
        let mut s = ReplyScanner::default();
        assert_eq!(s.scan(frame).unwrap(), Some(8));
        let (_, used) = crate::resp::parse_value(frame).unwrap().unwrap();
        assert_eq!(used, 8);
        // A negative count too (found the same way): both read the value after it.
        let frame = b"|-2\r\n+a\r\n";
        assert_eq!(ReplyScanner::default().scan(frame).unwrap(), Some(9));
        assert_eq!(crate::resp::parse_value(frame).unwrap().unwrap().1, 9);
    }

    #[test]
    fn reply_kind_spots_errors() {
        assert_eq!(ReplyKind::of(b"-MOVED 1 a:1\r\n"), ReplyKind::Error);
        assert_eq!(ReplyKind::of(b"+OK\r\n"), ReplyKind::Other);
    }
}
