//! The one classifier of backend error replies. Those the proxy acts on instead of passing them
//! to the client (MOVED and ASK redirects, TRYAGAIN, CLUSTERDOWN, READONLY, LOADING), and those
//! it reads before passing them on (MASTERDOWN from a replica, NOSCRIPT, EXECABORT).

use bytes::{Bytes, BytesMut};
use hive_common::addr;
use hive_common::resp::parse_i64;
use hive_common::Slot;

/// A cluster redirect reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    Moved { slot: Slot, addr: String },
    Ask { slot: Slot, addr: String },
}

/// An error reply the proxy handles itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    Redirect(Redirect),
    /// `-TRYAGAIN`: multi-key request during a slot migration.
    TryAgain,
    /// `-CLUSTERDOWN`: the cluster cannot serve the slot now.
    ClusterDown,
    /// `-READONLY`: the node we took for the master is a replica (the map is stale).
    ReadOnly,
    /// `-LOADING`: the node is loading its dataset after a restart.
    Loading,
    /// `-MASTERDOWN`: a replica with its master link down and `replica-serve-stale-data no`.
    MasterDown,
    /// `-NOSCRIPT`: the node does not have the script (after a failover or a restart).
    NoScript,
    /// `-EXECABORT`: the node discarded a transaction because a queued command failed.
    ExecAbort,
    /// `-UNBLOCKED`: a blocked command released because the node stopped being a master (or
    /// by `CLIENT UNBLOCK ... ERROR`).
    Unblocked,
}

impl ReplyError {
    /// Classifies an error reply frame (`-MOVED 3999 127.0.0.1:7001\r\n`). Addresses come back
    /// as Hive writes them: an IPv6 host in brackets.
    pub fn parse(frame: &[u8]) -> Option<ReplyError> {
        let line = frame.strip_prefix(b"-")?;
        let line = line.strip_suffix(b"\r\n").unwrap_or(line);
        if line.starts_with(b"TRYAGAIN") {
            return Some(ReplyError::TryAgain);
        }
        if line.starts_with(b"CLUSTERDOWN") {
            return Some(ReplyError::ClusterDown);
        }
        if line.starts_with(b"READONLY") {
            return Some(ReplyError::ReadOnly);
        }
        if line.starts_with(b"LOADING") {
            return Some(ReplyError::Loading);
        }
        if line.starts_with(b"MASTERDOWN") {
            return Some(ReplyError::MasterDown);
        }
        if line.starts_with(b"NOSCRIPT") {
            return Some(ReplyError::NoScript);
        }
        if line.starts_with(b"EXECABORT") {
            return Some(ReplyError::ExecAbort);
        }
        if line.starts_with(b"UNBLOCKED") {
            return Some(ReplyError::Unblocked);
        }
        if let Some(named) = line.strip_prefix(MODULE_REFUSED) {
            return refused_by_module(named);
        }
        let (moved, rest) = redirect_parts(line)?;
        let mut parts = rest.splitn(2, |&b| b == b' ');
        let slot = parse_i64(parts.next()?)
            .and_then(|n| u16::try_from(n).ok())
            .and_then(Slot::new)?;
        let target = std::str::from_utf8(parts.next()?).ok()?;
        let (host, port) = addr::split(target)?;
        if host.is_empty() {
            // Unqualified (see `qualify`): the caller cannot know which node answered.
            return None;
        }
        let addr = addr::join(host, port);
        Some(ReplyError::Redirect(if moved {
            Redirect::Moved { slot, addr }
        } else {
            Redirect::Ask { slot, addr }
        }))
    }
}

impl ReplyError {
    /// Whether the proxy follows or waits out this reply instead of passing it on: a redirect,
    /// or a node that cannot serve the slot now.
    pub fn acted_on(&self) -> bool {
        matches!(
            self,
            ReplyError::Redirect(_)
                | ReplyError::TryAgain
                | ReplyError::ClusterDown
                | ReplyError::ReadOnly
                | ReplyError::Loading
        )
    }

    /// Whether a blocking command that got this should block again on the slot's current
    /// master: the node moved the slot, lost or gave up its master role, or cannot serve now.
    pub fn reblock(&self) -> bool {
        self.acted_on() || matches!(self, ReplyError::Unblocked | ReplyError::MasterDown)
    }

    /// Whether a replica answering this cannot serve reads now (loading, master link down,
    /// mid-failover), so a read it got goes elsewhere.
    pub fn replica_unavailable(&self) -> bool {
        matches!(
            self,
            ReplyError::Loading
                | ReplyError::MasterDown
                | ReplyError::TryAgain
                | ReplyError::ClusterDown
        )
    }
}

fn redirect_parts(line: &[u8]) -> Option<(bool, &[u8])> {
    match line.strip_prefix(b"MOVED ") {
        Some(r) => Some((true, r)),
        None => Some((false, line.strip_prefix(b"ASK ")?)),
    }
}

/// A redirect with an empty host (`-MOVED 3999 :7001`, which Redis sends when the target's
/// address is unknown to it) means the host of the node that answered, as the Redis Cluster
/// specification says. The backend connection, which knows that node, rewrites the frame
/// with its host; any other frame is returned unchanged.
pub fn qualify(frame: Bytes, answered_by: &str) -> Bytes {
    let Some(line) = frame
        .strip_prefix(b"-")
        .and_then(|l| l.strip_suffix(b"\r\n"))
    else {
        return frame;
    };
    let Some((_, rest)) = redirect_parts(line) else {
        return frame;
    };
    let Some(colon) = memchr::memchr(b' ', rest).map(|sp| sp + 1) else {
        return frame;
    };
    if rest.get(colon) != Some(&b':') {
        return frame;
    }
    let Some((host, _)) = addr::split(answered_by) else {
        return frame;
    };
    // `-` + verb and slot + ` `, then the host, then `:port\r\n`.
    let head = 1 + (line.len() - rest.len()) + colon;
    let host = addr::bracket(host);
    let mut out = BytesMut::with_capacity(frame.len() + host.len());
    out.extend_from_slice(&frame[..head]);
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(&frame[head..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_error_classifies_what_the_proxy_reads_before_passing_on() {
        let e = ReplyError::parse(b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n");
        assert_eq!(e, Some(ReplyError::MasterDown));
        assert!(e
            .as_ref()
            .is_some_and(|e| e.replica_unavailable() && !e.acted_on()));
        let e = ReplyError::parse(b"-NOSCRIPT No matching script. Please use EVAL.\r\n");
        assert_eq!(e, Some(ReplyError::NoScript));
        assert!(!e.unwrap().acted_on());
        let e =
            ReplyError::parse(b"-EXECABORT Transaction discarded because of previous errors.\r\n");
        assert_eq!(e, Some(ReplyError::ExecAbort));
        assert!(ReplyError::TryAgain.acted_on() && ReplyError::TryAgain.replica_unavailable());
        assert!(ReplyError::ReadOnly.acted_on() && !ReplyError::ReadOnly.replica_unavailable());
        assert_eq!(ReplyError::parse(b"-ERR unknown command\r\n"), None);
        let e = ReplyError::parse(
            b"-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n",
        );
        assert_eq!(e, Some(ReplyError::Unblocked));
        assert!(e.is_some_and(|e| e.reblock() && !e.acted_on()));
        assert!(ReplyError::MasterDown.reblock() && !ReplyError::NoScript.reblock());
    }

    #[test]
    fn reply_error_parses_redirects_and_retryable_errors() {
        let s = Slot::new(3999).unwrap();
        assert_eq!(
            ReplyError::parse(b"-MOVED 3999 127.0.0.1:7001\r\n"),
            Some(ReplyError::Redirect(Redirect::Moved {
                slot: s,
                addr: "127.0.0.1:7001".into()
            }))
        );
        assert_eq!(
            ReplyError::parse(b"-ASK 3999 127.0.0.1:7002\r\n"),
            Some(ReplyError::Redirect(Redirect::Ask {
                slot: s,
                addr: "127.0.0.1:7002".into()
            }))
        );
        assert_eq!(
            ReplyError::parse(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(ReplyError::TryAgain)
        );
        assert_eq!(
            ReplyError::parse(b"-CLUSTERDOWN The cluster is down\r\n"),
            Some(ReplyError::ClusterDown)
        );
        assert_eq!(
            ReplyError::parse(b"-READONLY You can't write against a read only replica.\r\n"),
            Some(ReplyError::ReadOnly)
        );
        assert_eq!(
            ReplyError::parse(b"-LOADING Redis is loading\r\n"),
            Some(ReplyError::Loading)
        );
        assert_eq!(ReplyError::parse(b"-ERR wrong\r\n"), None);
        assert_eq!(ReplyError::parse(b"-MOVED 99999 a:1\r\n"), None);
        assert_eq!(ReplyError::parse(b"+MOVED 1 a:1\r\n"), None);
    }

    #[test]
    fn reply_error_brackets_ipv6_redirect_targets() {
        // Redis writes the node's IP and port with a colon between, brackets or not.
        assert_eq!(
            ReplyError::parse(b"-MOVED 1 ::1:7001\r\n"),
            Some(ReplyError::Redirect(Redirect::Moved {
                slot: Slot::new(1).unwrap(),
                addr: "[::1]:7001".into()
            }))
        );
    }

    #[test]
    fn qualify_fills_the_empty_host_with_the_answering_node() {
        let q = |f: &'static [u8], by| qualify(Bytes::from_static(f), by);
        assert_eq!(
            &q(b"-MOVED 3999 :7001\r\n", "10.1.2.3:7000")[..],
            b"-MOVED 3999 10.1.2.3:7001\r\n"
        );
        assert_eq!(
            &q(b"-ASK 12 :7002\r\n", "[::1]:7000")[..],
            b"-ASK 12 [::1]:7002\r\n"
        );
        assert_eq!(
            &q(b"-MOVED 3999 127.0.0.5:7001\r\n", "10.1.2.3:7000")[..],
            b"-MOVED 3999 127.0.0.5:7001\r\n"
        );
        assert_eq!(&q(b"-ERR x :1\r\n", "10.1.2.3:7000")[..], b"-ERR x :1\r\n");
        // Unqualified redirects are not followed to a guessed host.
        assert_eq!(ReplyError::parse(b"-MOVED 3999 :7001\r\n"), None);
    }
}

/// How Redis answers a command hive-module's filter renamed to its refusal (`ASK <slot>
/// <addr>` or `TRYAGAIN …`) on a master handing slots over: an unknown command. Renaming, not
/// an error-returning command, because Redis rejects an unknown command when it is queued,
/// which aborts the whole transaction (EXECABORT) instead of running its other commands.
const MODULE_REFUSED: &[u8] = b"ERR unknown command '";

fn refused_by_module(named: &[u8]) -> Option<ReplyError> {
    let end = named.iter().position(|&b| b == b'\'')?;
    let inner = &named[..end];
    if !(inner.starts_with(b"ASK ") || inner.starts_with(b"TRYAGAIN")) {
        return None;
    }
    let mut frame = Vec::with_capacity(inner.len() + 3);
    frame.push(b'-');
    frame.extend_from_slice(inner);
    frame.extend_from_slice(b"\r\n");
    ReplyError::parse(&frame)
}

#[cfg(test)]
mod module_refusal_tests {
    use super::*;

    #[test]
    fn reply_error_reads_a_module_refusal_as_its_redirect() {
        let ask = ReplyError::parse(
            b"-ERR unknown command 'ASK 15305 127.0.0.1:15380', with args beginning with: \r\n",
        );
        assert!(matches!(
            ask,
            Some(ReplyError::Redirect(Redirect::Ask { slot, ref addr })) if slot.get() == 15305 && addr == "127.0.0.1:15380"
        ));
        let again = ReplyError::parse(
            b"-ERR unknown command 'TRYAGAIN Multiple keys request during rehashing of slot', with args beginning with: \r\n",
        );
        assert_eq!(again, Some(ReplyError::TryAgain));
        assert_eq!(
            ReplyError::parse(b"-ERR unknown command 'FOO', with args beginning with: \r\n"),
            None
        );
        assert_eq!(ReplyError::parse(b"-ERR unknown command 'ASK\r\n"), None);
    }
}
