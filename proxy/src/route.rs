//! Routing types: where a request unit goes, and the cluster redirects a backend can answer.

use std::sync::Arc;

use hive_common::resp::parse_i64;
use hive_common::Slot;

use crate::upstream::backend::Backend;

/// Where one request unit is sent.
#[derive(Debug, Clone)]
pub enum Route {
    /// The master that owns the slot in the current topology.
    Slot(Slot),
    /// Master number `n` of the topology (fan-out to every master).
    Master(usize),
    /// Any master: keyless commands.
    Any,
    /// A node named by a redirect; `asking` sends `ASKING` first.
    Node { backend: Arc<Backend>, asking: bool },
}

/// A cluster redirect reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    Moved { slot: Slot, addr: String },
    Ask { slot: Slot, addr: String },
}

/// Error replies the proxy acts on instead of passing them to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Redirect(Redirect),
    /// `-TRYAGAIN`: multi-key request during a slot migration.
    TryAgain,
    /// `-CLUSTERDOWN`: the cluster cannot serve the slot now.
    ClusterDown,
    /// `-READONLY`: the node we took for the master is a replica (the map is stale).
    ReadOnly,
    /// `-LOADING`: the node is loading its dataset after a restart.
    Loading,
}

impl Upstream {
    /// Classifies an error reply frame (`-MOVED 3999 127.0.0.1:7001\r\n`).
    pub fn parse(frame: &[u8]) -> Option<Upstream> {
        let line = frame.strip_prefix(b"-")?;
        let line = line.strip_suffix(b"\r\n").unwrap_or(line);
        if line.starts_with(b"TRYAGAIN") {
            return Some(Upstream::TryAgain);
        }
        if line.starts_with(b"CLUSTERDOWN") {
            return Some(Upstream::ClusterDown);
        }
        if line.starts_with(b"READONLY") {
            return Some(Upstream::ReadOnly);
        }
        if line.starts_with(b"LOADING") {
            return Some(Upstream::Loading);
        }
        let (moved, rest) = if let Some(r) = line.strip_prefix(b"MOVED ") {
            (true, r)
        } else {
            (false, line.strip_prefix(b"ASK ")?)
        };
        let mut parts = rest.splitn(2, |&b| b == b' ');
        let slot = parse_i64(parts.next()?)
            .and_then(|n| u16::try_from(n).ok())
            .and_then(Slot::new)?;
        let addr = std::str::from_utf8(parts.next()?).ok()?;
        // Redis 7 may send `:port` when the node does not know its own address.
        let addr = if addr.starts_with(':') {
            format!("127.0.0.1{addr}")
        } else {
            addr.to_string()
        };
        Some(Upstream::Redirect(if moved {
            Redirect::Moved { slot, addr }
        } else {
            Redirect::Ask { slot, addr }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_parses_redirects_and_retryable_errors() {
        let s = Slot::new(3999).unwrap();
        assert_eq!(
            Upstream::parse(b"-MOVED 3999 127.0.0.1:7001\r\n"),
            Some(Upstream::Redirect(Redirect::Moved {
                slot: s,
                addr: "127.0.0.1:7001".into()
            }))
        );
        assert_eq!(
            Upstream::parse(b"-ASK 3999 127.0.0.1:7002\r\n"),
            Some(Upstream::Redirect(Redirect::Ask {
                slot: s,
                addr: "127.0.0.1:7002".into()
            }))
        );
        assert_eq!(
            Upstream::parse(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(Upstream::TryAgain)
        );
        assert_eq!(
            Upstream::parse(b"-CLUSTERDOWN The cluster is down\r\n"),
            Some(Upstream::ClusterDown)
        );
        assert_eq!(
            Upstream::parse(b"-READONLY You can't write against a read only replica.\r\n"),
            Some(Upstream::ReadOnly)
        );
        assert_eq!(
            Upstream::parse(b"-LOADING Redis is loading\r\n"),
            Some(Upstream::Loading)
        );
        assert_eq!(Upstream::parse(b"-ERR wrong\r\n"), None);
        assert_eq!(Upstream::parse(b"-MOVED 99999 a:1\r\n"), None);
        assert_eq!(Upstream::parse(b"+MOVED 1 a:1\r\n"), None);
    }
}
