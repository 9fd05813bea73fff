//! What a client has yet to receive, and the one future that reads from and writes to its
//! socket at once. Reading never waits for writing: a client that pipelines without reading
//! (redis-py's pipeline writes everything, then reads) would otherwise stop the proxy reading
//! it while it stops reading the proxy, and neither would move again.
//!
//! Small replies are copied into one buffer so a batch goes out in one write; a large reply is
//! queued as the `Bytes` it arrived in and written from there, so it is never copied.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

/// Replies at least this long are written from their own buffer instead of being copied.
const OWN_CHUNK: usize = 64 * 1024;

#[derive(Default)]
pub(super) struct Outbox {
    /// Earlier bytes than `tail`: large replies, and the small ones that came before them.
    chunks: VecDeque<Bytes>,
    /// Small replies after the last chunk, written from `pos`.
    tail: BytesMut,
    pos: usize,
    /// Bytes not yet written.
    len: usize,
    /// The stream may hold written bytes back (TLS) until it is flushed.
    unflushed: bool,
}

impl Outbox {
    pub fn push(&mut self, reply: &Bytes) {
        self.len += reply.len();
        if reply.len() >= OWN_CHUNK {
            if self.tail.len() > self.pos {
                let mut small = self.tail.split();
                small.advance(self.pos);
                self.chunks.push_back(small.freeze());
            }
            self.tail.clear();
            self.pos = 0;
            self.chunks.push_back(reply.clone());
        } else {
            self.tail.extend_from_slice(reply);
        }
    }

    /// Bytes the client has not received yet.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap held by the outbox (for the proxy-wide buffer limit).
    pub fn footprint(&self) -> usize {
        self.tail.capacity() + self.chunks.iter().map(Bytes::len).sum::<usize>()
    }

    fn front(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail[self.pos..],
        }
    }

    fn advance(&mut self, n: usize) {
        self.len -= n;
        self.unflushed = true;
        if let Some(c) = self.chunks.front_mut() {
            c.advance(n);
            if c.is_empty() {
                self.chunks.pop_front();
            }
            return;
        }
        self.pos += n;
        if self.pos == self.tail.len() {
            self.pos = 0;
            self.tail.clear();
            // A burst of replies must not pin its buffer for the connection's life.
            if self.tail.capacity() > 1 << 20 {
                self.tail = BytesMut::new();
            }
        }
    }
}

/// What one poll of the socket did.
pub(super) enum Io {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
}

/// Resolves when the stream has read into `rbuf` (if `read` is set) or written part of the
/// outbox, whichever happens first. Writing is polled first, so replies are not held back by
/// a client that keeps sending.
pub(super) struct ReadOrWrite<'a, S> {
    pub stream: &'a mut S,
    pub rbuf: &'a mut BytesMut,
    pub out: &'a mut Outbox,
    pub read: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for ReadOrWrite<'_, S> {
    type Output = Io;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Io> {
        let this = self.get_mut();
        if !this.out.is_empty() {
            match Pin::new(&mut *this.stream).poll_write(cx, this.out.front()) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Io::Wrote(Err(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    this.out.advance(n);
                    return Poll::Ready(Io::Wrote(Ok(n)));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Io::Wrote(Err(e))),
                Poll::Pending => {}
            }
        } else if this.out.unflushed {
            match Pin::new(&mut *this.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => this.out.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Io::Wrote(Err(e))),
                Poll::Pending => {}
            }
        }
        if this.read {
            return poll_read_buf(&mut *this.stream, this.rbuf, cx).map(Io::Read);
        }
        Poll::Pending
    }
}

fn poll_read_buf<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    // At most one burst per read: a read of a whole socket buffer (megabytes, with a large
    // value arriving) would keep every other client of the worker waiting for its copy.
    tokio_util::io::poll_read_buf(Pin::new(stream), cx, &mut buf.limit(super::BURST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_keeps_order_of_small_and_large_replies() {
        let mut o = Outbox::default();
        let big = Bytes::from(vec![b'x'; OWN_CHUNK]);
        o.push(&Bytes::from_static(b"+a\r\n"));
        o.push(&big);
        o.push(&Bytes::from_static(b"+b\r\n"));
        assert_eq!(o.len(), OWN_CHUNK + 8);
        let mut seen = Vec::new();
        while !o.is_empty() {
            let n = o.front().len().min(1000);
            seen.extend_from_slice(&o.front()[..n]);
            o.advance(n);
        }
        assert_eq!(&seen[..4], b"+a\r\n");
        assert_eq!(seen.len(), OWN_CHUNK + 8);
        assert_eq!(&seen[seen.len() - 4..], b"+b\r\n");
    }
}
