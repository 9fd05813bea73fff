//! Writers for RESP2 and RESP3 replies and a builder for multibulk requests.

use bytes::{BufMut, BytesMut};
use smallvec::SmallVec;

use super::request::Request;

fn write_len_line(out: &mut BytesMut, prefix: u8, n: i64) {
    let mut b = itoa::Buffer::new();
    out.put_u8(prefix);
    out.put_slice(b.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

pub fn write_array_header(out: &mut BytesMut, n: usize) {
    write_len_line(out, b'*', n as i64);
}

pub fn write_bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    write_len_line(out, b'$', data.len() as i64);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

pub fn write_integer(out: &mut BytesMut, n: i64) {
    write_len_line(out, b':', n);
}

/// The RESP2 null bulk string.
pub fn write_null(out: &mut BytesMut) {
    out.put_slice(b"$-1\r\n");
}

/// A map header: `%n` in RESP3, a flat array of `2n` elements in RESP2.
pub fn write_map_header(out: &mut BytesMut, n: usize, resp3: bool) {
    if resp3 {
        write_len_line(out, b'%', n as i64);
    } else {
        write_len_line(out, b'*', 2 * n as i64);
    }
}

/// The null reply of the protocol in use.
pub fn write_null_of(out: &mut BytesMut, resp3: bool) {
    out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// Text Redis sends as a verbatim string (`=`, format `txt`) in RESP3 and a bulk in RESP2.
pub fn write_verbatim(out: &mut BytesMut, text: &[u8], resp3: bool) {
    if !resp3 {
        return write_bulk(out, text);
    }
    write_len_line(out, b'=', text.len() as i64 + 4);
    out.put_slice(b"txt:");
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

pub fn write_simple(out: &mut BytesMut, s: &str) {
    out.put_u8(b'+');
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes `-<msg>\r\n`; CR and LF inside `msg` become spaces so the reply stays one line, as
/// Redis's `addReplyError` ensures.
pub fn write_error(out: &mut BytesMut, msg: &str) {
    out.reserve(msg.len() + 3);
    out.put_u8(b'-');
    for b in msg.bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// Builds one multibulk request, recording argument positions as the decoder would.
pub struct RequestBuilder {
    buf: BytesMut,
    args: SmallVec<[(u32, u32); 6]>,
}

impl RequestBuilder {
    pub fn new(argc: usize) -> Self {
        Self::with_payload(argc, 0)
    }

    /// For `argc` arguments of `payload` bytes in all: one allocation, never a regrowth.
    pub fn with_payload(argc: usize, payload: usize) -> Self {
        let mut buf = BytesMut::with_capacity(16 + argc * 16 + payload);
        write_array_header(&mut buf, argc);
        RequestBuilder {
            buf,
            args: SmallVec::with_capacity(argc),
        }
    }

    pub fn arg(&mut self, a: &[u8]) -> &mut Self {
        write_len_line(&mut self.buf, b'$', a.len() as i64);
        let start = self.buf.len();
        self.buf.put_slice(a);
        self.args.push((start as u32, self.buf.len() as u32));
        self.buf.put_slice(b"\r\n");
        self
    }

    pub fn finish(self) -> Request {
        debug_assert!(self.buf.starts_with(b"*"));
        Request::from_parts(self.buf.freeze(), self.args)
    }
}

/// Several requests built into one buffer, sliced apart at the end: one allocation for all the
/// parts of a split command, not one per part (issue 27: a 10-key MSET in cluster mode is 10
/// parts).
pub struct PartsBuilder {
    buf: BytesMut,
    /// Each part's start in `buf` and its arguments' ranges, relative to that start.
    parts: SmallVec<[(usize, Args); 8]>,
}

/// Argument ranges of one request (as `Request` keeps them).
type Args = SmallVec<[(u32, u32); 6]>;

impl PartsBuilder {
    /// For `parts` requests of `args` arguments and `payload` argument bytes in all.
    pub fn with_payload(parts: usize, args: usize, payload: usize) -> Self {
        PartsBuilder {
            buf: BytesMut::with_capacity(parts * 16 + args * 16 + payload),
            parts: SmallVec::with_capacity(parts),
        }
    }

    /// Starts the next request, of `argc` arguments.
    pub fn start(&mut self, argc: usize) -> &mut Self {
        self.parts
            .push((self.buf.len(), SmallVec::with_capacity(argc)));
        write_array_header(&mut self.buf, argc);
        self
    }

    /// Adds an argument to the request started last.
    pub fn arg(&mut self, a: &[u8]) -> &mut Self {
        write_len_line(&mut self.buf, b'$', a.len() as i64);
        let Some((base, args)) = self.parts.last_mut() else {
            debug_assert!(false, "arg before start");
            return self;
        };
        let start = self.buf.len() - *base;
        self.buf.put_slice(a);
        args.push((start as u32, (start + a.len()) as u32));
        self.buf.put_slice(b"\r\n");
        self
    }

    /// The requests, in the order they were started; they share one buffer.
    pub fn finish(self) -> impl Iterator<Item = Request> {
        let all = self.buf.freeze();
        let ends: SmallVec<[usize; 8]> = self
            .parts
            .iter()
            .skip(1)
            .map(|(s, _)| *s)
            .chain(std::iter::once(all.len()))
            .collect();
        self.parts
            .into_iter()
            .zip(ends)
            .map(move |((start, args), end)| Request::from_parts(all.slice(start..end), args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_builder_makes_the_same_requests_as_one_builder_each() {
        let parts: [&[&[u8]]; 3] = [
            &[b"MSET", b"a", b"1"],
            &[b"MSET", b"{b}x", b"", b"c", b"three"],
            &[b"DEL", b"k"],
        ];
        let mut b = PartsBuilder::with_payload(3, 10, 0);
        for p in parts {
            b.start(p.len());
            for a in p {
                b.arg(a);
            }
        }
        let built: Vec<Request> = b.finish().collect();
        assert_eq!(built.len(), 3);
        for (got, want) in built.iter().zip(parts) {
            let one = Request::from_args(want);
            assert_eq!(got.raw(), one.raw());
            assert_eq!(got.argc(), want.len());
            let args: Vec<&[u8]> = got.args().collect();
            assert_eq!(args, want.to_vec());
        }
    }
}
