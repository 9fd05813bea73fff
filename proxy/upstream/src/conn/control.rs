//! `ControlConn`: a plain request/response connection for control traffic (discovery, INFO,
//! local setup, the drills), and the handshake every backend connection starts with.

use std::time::Duration;

use bytes::BytesMut;
use hive_common::resp::{parse_value, Request, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::{BoxStream, Dialer, TcpDialer};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: bad reply: {reason}")]
    BadReply { addr: String, reason: String },
    #[error("{addr}: {message}")]
    Redis { addr: String, message: String },
}

/// One connection, one request at a time.
pub struct ControlConn {
    addr: String,
    stream: BoxStream,
    buf: BytesMut,
    timeout: Duration,
}

impl ControlConn {
    /// A TCP connection.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<ControlConn, QueryError> {
        ControlConn::dial(&TcpDialer, addr, timeout, None).await
    }

    /// A TCP connection, authenticated when `auth` is given.
    pub async fn connect_auth(
        addr: &str,
        timeout: Duration,
        auth: Option<&super::Auth>,
    ) -> Result<ControlConn, QueryError> {
        ControlConn::dial(&TcpDialer, addr, timeout, auth).await
    }

    /// Opens a connection with `dialer` and authenticates when `auth` is given.
    pub async fn dial(
        dialer: &dyn Dialer,
        addr: &str,
        timeout: Duration,
        auth: Option<&super::Auth>,
    ) -> Result<ControlConn, QueryError> {
        let stream = dialer
            .dial(addr, timeout)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::TimedOut => QueryError::Timeout {
                    addr: addr.into(),
                    timeout,
                },
                _ => QueryError::Io {
                    addr: addr.into(),
                    source,
                },
            })?;
        let mut c = ControlConn {
            addr: addr.into(),
            stream,
            buf: BytesMut::with_capacity(4096),
            timeout,
        };
        if let Some(a) = auth {
            c.call(&a.args()).await?;
        }
        Ok(c)
    }

    /// The stream, for a caller that takes over the connection (nothing may be buffered).
    pub fn into_stream(self) -> BoxStream {
        debug_assert!(self.buf.is_empty());
        self.stream
    }

    /// Reads the next value the server sends (pub/sub messages), waiting at most `timeout`.
    pub async fn read(&mut self, timeout: Duration) -> Result<Value, QueryError> {
        let addr = self.addr.clone();
        let (stream, buf) = (&mut self.stream, &mut self.buf);
        let fut = async {
            loop {
                match parse_value(buf) {
                    Ok(Some((v, n))) => {
                        let _ = buf.split_to(n);
                        return Ok(v);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(QueryError::BadReply {
                            addr: addr.clone(),
                            reason: e.to_string(),
                        })
                    }
                }
                let n = stream
                    .read_buf(buf)
                    .await
                    .map_err(|source| QueryError::Io {
                        addr: addr.clone(),
                        source,
                    })?;
                if n == 0 {
                    return Err(QueryError::Io {
                        addr: addr.clone(),
                        source: std::io::ErrorKind::UnexpectedEof.into(),
                    });
                }
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(QueryError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    /// The next value on a connection that otherwise idles (a subscription, a tracking feed):
    /// after `period` of silence the node is sent a PING, and a second silent period means it
    /// is gone.
    pub async fn read_pinging(&mut self, period: Duration) -> Result<Value, QueryError> {
        match self.read(period).await {
            Err(QueryError::Timeout { .. }) => {
                self.send(&["PING"]).await?;
                self.read(period).await
            }
            r => r,
        }
    }

    /// Writes a command without waiting for its reply.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), QueryError> {
        let req = Request::from_args(args);
        self.stream
            .write_all(req.raw())
            .await
            .map_err(|source| QueryError::Io {
                addr: self.addr.clone(),
                source,
            })
    }

    /// Writes bytes that already hold one or more encoded commands (a pipelined batch).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), QueryError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|source| QueryError::Io {
                addr: self.addr.clone(),
                source,
            })
    }

    /// The timeout `read` uses for each reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command; a Redis error reply becomes `QueryError::Redis`.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, QueryError> {
        match self.call_raw(args).await? {
            Value::Error(e) => Err(QueryError::Redis {
                addr: self.addr.clone(),
                message: String::from_utf8_lossy(&e).into_owned(),
            }),
            v => Ok(v),
        }
    }

    /// Sends one command and returns whatever it replied, errors included.
    pub async fn call_raw<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, QueryError> {
        self.send(args).await?;
        self.read(self.timeout).await
    }
}

/// Connects, sends one command, and closes.
pub async fn query<A: AsRef<[u8]>>(
    addr: &str,
    args: &[A],
    timeout: Duration,
) -> Result<Value, QueryError> {
    ControlConn::connect(addr, timeout).await?.call(args).await
}
