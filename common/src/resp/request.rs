//! Streaming decoder for client requests (multibulk and inline), zero-copy over `BytesMut`.

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use super::inline::decode_inline;
use super::{encode::RequestBuilder, parse_i64, INLINE_MAX};
use crate::ProtocolError;

/// Limits the decoder enforces; defaults follow Redis 7.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len` (512 MiB in Redis).
    pub max_bulk_len: usize,
    /// Largest accepted number of arguments in one request.
    pub max_multibulk_len: usize,
    /// Largest accepted request in bytes, all arguments together. Argument positions are
    /// stored as `u32`, so the decoder never accepts more than 4 GiB whatever this says.
    pub max_request_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            // Redis's own bound (INT_MAX): memory is bounded by the bytes that arrive.
            max_multibulk_len: i32::MAX as usize,
            max_request_len: u32::MAX as usize,
        }
    }
}

type ArgRanges = SmallVec<[(u32, u32); 6]>;

/// One complete request: its raw multibulk bytes and the position of each argument in them.
#[derive(Clone, Debug)]
pub struct Request {
    raw: Bytes,
    args: ArgRanges,
}

impl Request {
    /// Builds a request from arguments (used for inline requests and by tests).
    pub fn from_args<A: AsRef<[u8]>>(args: &[A]) -> Request {
        let mut b = RequestBuilder::new(args.len());
        for a in args {
            b.arg(a.as_ref());
        }
        b.finish()
    }

    pub(crate) fn from_parts(raw: Bytes, args: ArgRanges) -> Request {
        Request { raw, args }
    }

    /// The request exactly as it goes to a backend (always multibulk).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i`; panics if `i >= argc()`, so callers check `argc` first.
    pub fn arg(&self, i: usize) -> &[u8] {
        let (s, e) = self.args[i];
        &self.raw[s as usize..e as usize]
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.args.len()).then(|| self.arg(i))
    }

    /// Argument `i` as a zero-copy `Bytes` slice of the raw request.
    pub fn arg_bytes(&self, i: usize) -> Bytes {
        let (s, e) = self.args[i];
        self.raw.slice(s as usize..e as usize)
    }

    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.args
            .iter()
            .map(|&(s, e)| &self.raw[s as usize..e as usize])
    }
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    /// Inside a multibulk whose header said `total` arguments; `pos` is the next unread byte.
    Multibulk {
        total: usize,
        pos: usize,
        args: ArgRanges,
    },
}

/// Decodes requests from a client's read buffer. Keeps its place across partial reads, so a
/// large request arriving in many pieces is scanned once.
#[derive(Debug, Default)]
pub struct RequestDecoder {
    limits: Limits,
    state: State,
    /// The client has not authenticated while a password is required: at most 10 arguments
    /// of 16 KiB each, as Redis limits such clients.
    unauthenticated: bool,
}

const UNAUTH_MAX_ARGS: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

impl RequestDecoder {
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits: Limits {
                // Argument offsets are u32; nothing near 4 GiB is a sane bulk.
                max_bulk_len: limits.max_bulk_len.min(u32::MAX as usize / 2),
                max_multibulk_len: limits.max_multibulk_len.min(i32::MAX as usize),
                max_request_len: limits.max_request_len.min(u32::MAX as usize),
            },
            state: State::Idle,
            unauthenticated: false,
        }
    }

    /// Applies (or lifts) the limits for a client that has not authenticated.
    pub fn set_unauthenticated(&mut self, on: bool) {
        self.unauthenticated = on;
    }

    /// Returns the next complete request, `None` if more bytes are needed. Consumed bytes are
    /// split off `buf`. After an error the connection must be closed, as Redis does.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            if let State::Idle = self.state {
                match buf.first() {
                    None => return Ok(None),
                    Some(b'*') => match self.start_multibulk(buf)? {
                        Some(true) => {}
                        Some(false) => continue, // `*0` / `*-1`: no command, as in Redis
                        None => return Ok(None),
                    },
                    Some(_) => match decode_inline(buf)? {
                        Some(Some(req)) => return Ok(Some(req)),
                        Some(None) => continue, // blank line
                        None => return Ok(None),
                    },
                }
            }
            return self.continue_multibulk(buf);
        }
    }

    /// `Some(true)`: a multibulk started; `Some(false)`: an empty one was skipped.
    fn start_multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<bool>, ProtocolError> {
        let Some(cr) = super::find_cr(buf) else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::TooBigMultibulkCount);
            }
            return Ok(None);
        };
        if cr + 1 >= buf.len() {
            return Ok(None);
        }
        if buf[cr + 1] != b'\n' {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        let n = parse_i64(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if n > self.limits.max_multibulk_len as i64 {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        if self.unauthenticated && n > UNAUTH_MAX_ARGS {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        if n <= 0 {
            let _ = buf.split_to(cr + 2);
            return Ok(Some(false));
        }
        let total = n as usize;
        self.state = State::Multibulk {
            total,
            pos: cr + 2,
            args: SmallVec::with_capacity(total.min(64)),
        };
        Ok(Some(true))
    }

    fn continue_multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        let State::Multibulk { total, pos, args } = &mut self.state else {
            return Ok(None);
        };
        while args.len() < *total {
            let rest = &buf[*pos..];
            let Some(cr) = super::find_cr(rest) else {
                if rest.len() > INLINE_MAX {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                return Ok(None);
            };
            if cr + 1 >= rest.len() {
                return Ok(None);
            }
            if rest[0] != b'$' {
                return Err(ProtocolError::ExpectedBulk(rest[0] as char));
            }
            let len = parse_i64(&rest[1..cr]).ok_or(ProtocolError::InvalidBulkLength)?;
            if self.unauthenticated && len > UNAUTH_MAX_BULK {
                return Err(ProtocolError::UnauthenticatedBulkLength);
            }
            if len < 0 || len as u64 > self.limits.max_bulk_len as u64 || rest[cr + 1] != b'\n' {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let start = *pos + cr + 2;
            let end = start + len as usize;
            if end + 2 > self.limits.max_request_len {
                // Refused before it is buffered: positions past 4 GiB would wrap.
                return Err(ProtocolError::TooBigRequest);
            }
            if end + 2 > buf.len() {
                // Grow with the bytes that arrived (at most doubling), never by the size a
                // client declares: clients that declare 500 MB and send nothing must not
                // reserve it. Doubling keeps the copies of a large argument linear.
                let missing = end + 2 - buf.len();
                buf.reserve(missing.min(buf.len().max(64 * 1024)));
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::BadBulkTerminator);
            }
            args.push((start as u32, end as u32));
            *pos = end + 2;
        }
        let State::Multibulk { pos, args, .. } = std::mem::take(&mut self.state) else {
            unreachable!("state checked above");
        };
        let raw = buf.split_to(pos).freeze();
        Ok(Some(Request::from_parts(raw, args)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = d.decode(&mut buf)? {
            out.push(r.args().map(<[u8]>::to_vec).collect());
        }
        Ok(out)
    }

    #[test]
    fn decode_multibulk_and_inline_mix() {
        let got =
            decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\n*0\r\n*-1\r\nSET a \"b c\"\r\n")
                .unwrap();
        assert_eq!(
            got,
            vec![
                vec![b"GET".to_vec(), b"k".to_vec()],
                vec![b"PING".to_vec()],
                vec![b"SET".to_vec(), b"a".to_vec(), b"b c".to_vec()],
            ]
        );
    }

    #[test]
    fn decode_resumes_across_every_split_point() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\nECHO 'x y'\r\n";
        for cut in 0..input.len() {
            let mut d = RequestDecoder::default();
            let mut buf = BytesMut::from(&input[..cut]);
            let mut got = Vec::new();
            while let Some(r) = d.decode(&mut buf).unwrap() {
                got.push(r);
            }
            buf.extend_from_slice(&input[cut..]);
            while let Some(r) = d.decode(&mut buf).unwrap() {
                got.push(r);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].arg(2), b"0123456789");
            assert_eq!(got[1].arg(1), b"x y");
            assert_eq!(&got[1].raw()[..], b"*2\r\n$4\r\nECHO\r\n$3\r\nx y\r\n");
        }
    }

    #[test]
    fn decode_raw_is_exact_request_bytes() {
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI"[..]);
        let r = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&r.raw()[..], b"*1\r\n$4\r\nPING\r\n");
        assert!(d.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn decode_errors_match_redis_text() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (b"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"),
            (
                b"*2\r\n$3\r\nGET\r\n$-5\r\n",
                "Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$536870913\r\n",
                "Protocol error: invalid bulk length",
            ),
            (
                b"*2147483648\r\n",
                "Protocol error: invalid multibulk length",
            ),
            (
                b"GET \"abc\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
            (
                b"GET 'a'b\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
            (
                b"*1\r\n$2\r\nabc\r\n",
                "Protocol error: expected CRLF after bulk payload",
            ),
        ];
        for (input, text) in cases {
            let err = decode_all(input).unwrap_err();
            assert_eq!(
                err.to_string(),
                *text,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn decode_oversize_headers_and_inline_are_refused() {
        let big = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(decode_all(&big).unwrap_err(), ProtocolError::TooBigInline);
        let mut line = big.clone();
        line.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&line).unwrap_err(), ProtocolError::TooBigInline);
        let mut mb = b"*".to_vec();
        mb.extend_from_slice(&big);
        assert_eq!(
            decode_all(&mb).unwrap_err(),
            ProtocolError::TooBigMultibulkCount
        );
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend_from_slice(&big);
        assert_eq!(
            decode_all(&bulk).unwrap_err(),
            ProtocolError::TooBigBulkCount
        );
    }

    #[test]
    fn decode_respects_configured_limits() {
        let limits = Limits {
            max_bulk_len: 4,
            max_multibulk_len: 2,
            ..Limits::default()
        };
        let mut d = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap_err(),
            ProtocolError::InvalidBulkLength
        );
        let mut d = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(&b"*3\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap_err(),
            ProtocolError::InvalidMultibulkLength
        );
    }

    #[test]
    fn decode_limits_unauthenticated_clients_like_redis() {
        let mut d = RequestDecoder::default();
        d.set_unauthenticated(true);
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap_err().to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
        let mut d = RequestDecoder::default();
        d.set_unauthenticated(true);
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap_err().to_string(),
            "Protocol error: unauthenticated bulk length"
        );
        let mut buf = BytesMut::from(&b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n"[..]);
        let mut d = RequestDecoder::default();
        d.set_unauthenticated(true);
        assert!(d.decode(&mut buf).unwrap().is_some());
        d.set_unauthenticated(false);
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert!(d.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn decode_grows_with_bytes_received_not_declared_size() {
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$500000000\r\n"[..]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() < 1 << 20, "reserved {}", buf.capacity());
        // A value arriving in pieces still decodes whole.
        let mut d = RequestDecoder::default();
        let body = vec![b'v'; 3 << 20];
        let mut wire = format!("*2\r\n$3\r\nGET\r\n${}\r\n", body.len()).into_bytes();
        wire.extend_from_slice(&body);
        wire.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::new();
        let mut got = None;
        for chunk in wire.chunks(100_000) {
            buf.extend_from_slice(chunk);
            if let Some(r) = d.decode(&mut buf).unwrap() {
                got = Some(r);
            }
        }
        assert_eq!(got.unwrap().arg(1).len(), body.len());
    }

    #[test]
    fn decode_bounds_the_whole_request() {
        let mut d = RequestDecoder::new(Limits {
            max_request_len: 40,
            ..Limits::default()
        });
        // Each argument is small; together they pass the bound, which is checked as each
        // argument's header arrives, before its bytes are buffered.
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$8\r\nkey-1234\r\n$20\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap_err(),
            ProtocolError::TooBigRequest
        );
        let mut d = RequestDecoder::new(Limits {
            max_request_len: 40,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$8\r\nkey-1234\r\n"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().arg(1), b"key-1234");
    }

    #[test]
    fn decode_random_input_terminates() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let pieces: &[&[u8]] = &[
            b"*", b"$", b"\r\n", b"\n", b"-1", b"2", b"GET", b"\"", b"'", b"\x00", b" ", b"\\x4",
        ];
        for _ in 0..5000 {
            let mut input = Vec::new();
            for _ in 0..rng.gen_range(1..30) {
                input.extend_from_slice(pieces[rng.gen_range(0..pieces.len())]);
            }
            let mut d = RequestDecoder::default();
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0;
            while let Ok(Some(_)) = d.decode(&mut buf) {
                n += 1;
                assert!(n <= input.len(), "more requests than bytes for {input:?}");
            }
        }
    }
}
