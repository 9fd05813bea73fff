//! `ProxyError`: what went wrong (a kind with its reason), who caused it, whether a retry is
//! allowed, and its one RESP rendering.

use bytes::{Bytes, BytesMut};
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

/// Why a client's request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientReason {
    /// Malformed RESP; the connection closes after the reply, as in Redis.
    Protocol,
    UnknownCommand,
    UnknownSubcommand,
    WrongArity,
    /// A bad argument or a command out of place (`EXEC without MULTI`, `syntax error`).
    Invalid,
    /// Keys of one request hash to different slots.
    CrossSlot,
    /// A command Hive deliberately does not run, with the reason.
    NotSupported,
    /// A transaction was discarded.
    ExecAbort,
    /// HELLO with a protocol version other than 2 or 3.
    NoProto,
    /// A command before authenticating.
    NoAuth,
    /// A wrong user name or password, or a user that is off.
    WrongPass,
    /// The user may not run the command or touch a key or channel of it.
    NoPerm,
    /// `max_clients` connections are open; the connection closes after the reply.
    MaxClients,
}

/// Why a backend could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamReason {
    /// The node could not be reached; the request was never sent.
    Unreachable,
    /// The connection died or timed out with the request written: its outcome is unknown.
    Lost,
    /// The shard has no writable master now (failover); the request was never sent.
    NoMaster,
    /// No shard serves the slot; the request was never sent.
    SlotUnserved,
    /// `read_from = "replica"` and no replica of the shard is fresh; the read was never sent.
    NoReplica,
    /// The nodes' replies could not be combined into one.
    BadReply,
    /// Some of the nodes a command went to refused it (the others applied it).
    Refused,
    /// `write_ack = "replica"` and too few replicas confirmed the write in time: the master
    /// applied it, so its outcome after a failover is unknown.
    NotAcked,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Client(ClientReason),
    Upstream(UpstreamReason),
    Internal,
}

/// An error the proxy answers with. Callers match on `kind`, never on the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {message}", self.code())]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ProxyError {
    pub fn client(reason: ClientReason, message: impl Into<String>) -> Self {
        ProxyError {
            kind: ErrorKind::Client(reason),
            message: message.into(),
        }
    }

    /// A bad argument or a command out of place: Redis's plain `-ERR`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ProxyError::client(ClientReason::Invalid, message)
    }

    pub fn upstream(reason: UpstreamReason, message: impl Into<String>) -> Self {
        ProxyError {
            kind: ErrorKind::Upstream(reason),
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ProxyError {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }

    pub fn cause(&self) -> Cause {
        match self.kind {
            ErrorKind::Client(_) => Cause::Client,
            ErrorKind::Upstream(_) => Cause::Upstream,
            ErrorKind::Internal => Cause::Internal,
        }
    }

    /// True when the request was certainly not executed, so sending it again is safe.
    pub fn retry(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Upstream(
                UpstreamReason::Unreachable
                    | UpstreamReason::NoMaster
                    | UpstreamReason::SlotUnserved
            )
        )
    }

    /// The Redis error code the reply starts with.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::Client(ClientReason::CrossSlot) => "CROSSSLOT",
            ErrorKind::Client(ClientReason::ExecAbort) => "EXECABORT",
            ErrorKind::Client(ClientReason::NoProto) => "NOPROTO",
            ErrorKind::Client(ClientReason::NoAuth) => "NOAUTH",
            ErrorKind::Client(ClientReason::WrongPass) => "WRONGPASS",
            ErrorKind::Client(ClientReason::NoPerm) => "NOPERM",
            ErrorKind::Upstream(UpstreamReason::Unreachable | UpstreamReason::NoMaster) => {
                "TRYAGAIN"
            }
            ErrorKind::Upstream(UpstreamReason::SlotUnserved) => "CLUSTERDOWN",
            ErrorKind::Upstream(UpstreamReason::NoReplica | UpstreamReason::NotAcked) => {
                "NOREPLICAS"
            }
            _ => "ERR",
        }
    }

    /// The single place where a proxy error becomes a RESP error reply.
    pub fn write_resp(&self, out: &mut BytesMut) {
        write_error(out, &self.to_string());
    }

    /// The reply frame, for callers that queue frames.
    pub fn frame(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write_resp(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_error_renders_code_and_message() {
        let e = ProxyError::client(
            ClientReason::CrossSlot,
            "Keys in request don't hash to the same slot",
        );
        assert_eq!(
            &e.frame()[..],
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        assert_eq!(e.cause(), Cause::Client);
        assert!(!e.retry());
        let e = ProxyError::upstream(
            UpstreamReason::Unreachable,
            "backend 127.0.0.1:1 unreachable\r\nx",
        );
        assert!(e.retry() && e.cause() == Cause::Upstream);
        assert_eq!(
            &e.frame()[..],
            b"-TRYAGAIN backend 127.0.0.1:1 unreachable  x\r\n"
        );
    }

    #[test]
    fn proxy_error_retry_only_when_never_sent() {
        let lost = ProxyError::upstream(UpstreamReason::Lost, "connection lost");
        assert!(!lost.retry());
        assert_eq!(lost.code(), "ERR");
        let down = ProxyError::upstream(UpstreamReason::SlotUnserved, "Hash slot not served");
        assert!(down.retry());
        assert_eq!(down.code(), "CLUSTERDOWN");
        assert_eq!(ProxyError::internal("x").cause(), Cause::Internal);
    }
}
