//! `ProxyError`: who caused a failure, whether a retry is allowed, and its one RESP rendering.

use bytes::BytesMut;
use hive_common::resp::write_error;

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The request itself is wrong; retrying it cannot help.
    Client,
    /// A backend failed or could not be reached.
    Upstream,
    /// The proxy could not do what it should have.
    Internal,
}

/// An error the proxy answers with. The prefix is the Redis error code (`ERR`, `CROSSSLOT`,
/// `TRYAGAIN`, `CLUSTERDOWN`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{prefix} {message}")]
pub struct ProxyError {
    pub cause: Cause,
    /// True when the request was certainly not executed, so sending it again is safe.
    pub retry: bool,
    pub prefix: &'static str,
    pub message: String,
}

impl ProxyError {
    pub fn client(prefix: &'static str, message: impl Into<String>) -> Self {
        ProxyError {
            cause: Cause::Client,
            retry: false,
            prefix,
            message: message.into(),
        }
    }

    /// A backend failure. `retry` says whether the request never reached the backend.
    pub fn upstream(retry: bool, message: impl Into<String>) -> Self {
        ProxyError {
            cause: Cause::Upstream,
            retry,
            prefix: "ERR",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ProxyError {
            cause: Cause::Internal,
            retry: false,
            prefix: "ERR",
            message: message.into(),
        }
    }

    pub fn with_prefix(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// The single place where a proxy error becomes a RESP error reply.
    pub fn write_resp(&self, out: &mut BytesMut) {
        write_error(out, &self.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_error_renders_prefix_and_message() {
        let mut out = BytesMut::new();
        ProxyError::client("CROSSSLOT", "Keys in request don't hash to the same slot")
            .write_resp(&mut out);
        assert_eq!(
            &out[..],
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        let e = ProxyError::upstream(true, "backend 127.0.0.1:1 unreachable\r\nx");
        assert!(e.retry && e.cause == Cause::Upstream);
        let mut out = BytesMut::new();
        e.write_resp(&mut out);
        assert_eq!(&out[..], b"-ERR backend 127.0.0.1:1 unreachable  x\r\n");
    }
}
