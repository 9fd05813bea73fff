//! Errors produced while decoding RESP; their text matches what Redis replies.

use thiserror::Error;

/// A malformed request or reply. `Display` gives the text after `-ERR `, as Redis words it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// More than 10 arguments before the client authenticated (Redis's CVE-2021-32675 fix).
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A bulk over 16 KiB before the client authenticated.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// The arguments together pass the request size bound (4 GiB at most).
    #[error("Protocol error: too big request")]
    TooBigRequest,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Redis silently skips the two bytes after a bulk payload; a proxy that forwarded such a
    /// request would desynchronise a shared backend connection, so it is refused instead.
    #[error("Protocol error: expected CRLF after bulk payload")]
    BadBulkTerminator,
    /// A reply from a backend that is not valid RESP.
    #[error("Protocol error: invalid reply type byte '{0}'")]
    InvalidReplyType(char),
    #[error("Protocol error: invalid reply line")]
    InvalidReplyLine,
}
