//! The stream seam: client and backend code take any `AsyncRead + AsyncWrite` stream, so TLS
//! (or an in-memory `tokio::io::duplex` in tests) plugs in without touching the data path.
//! Backend connections are opened through a `Dialer`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpStream;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A byte stream to or from a Redis speaker.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Halves that two futures can drive at once. TCP splits without a lock (the backend
    /// reader and writer run concurrently on every request); other streams share one.
    fn into_halves(self: Box<Self>) -> (BoxRead, BoxWrite);
}

impl Stream for TcpStream {
    fn into_halves(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (r, w) = (*self).into_split();
        (Box::new(r), Box::new(w))
    }
}

impl Stream for DuplexStream {
    fn into_halves(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (r, w) = tokio::io::split(*self);
        (Box::new(r), Box::new(w))
    }
}

impl Stream for tokio_rustls::client::TlsStream<TcpStream> {
    fn into_halves(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (r, w) = tokio::io::split(*self);
        (Box::new(r), Box::new(w))
    }
}

pub type BoxStream = Box<dyn Stream>;

pub type DialFuture<'a> = Pin<Box<dyn Future<Output = io::Result<BoxStream>> + Send + 'a>>;

/// Opens connections to nodes and sentinels (`host:port`, IPv6 hosts in brackets).
pub trait Dialer: Send + Sync + 'static {
    fn dial<'a>(&'a self, addr: &'a str, timeout: Duration) -> DialFuture<'a>;
}

/// Plain TCP with `TCP_NODELAY`.
#[derive(Debug, Default)]
pub struct TcpDialer;

impl TcpDialer {
    pub async fn connect(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
        let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out after {timeout:?}"),
                )
            })??;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

impl Dialer for TcpDialer {
    fn dial<'a>(&'a self, addr: &'a str, timeout: Duration) -> DialFuture<'a> {
        Box::pin(async move { Ok(Box::new(TcpDialer::connect(addr, timeout).await?) as BoxStream) })
    }
}
