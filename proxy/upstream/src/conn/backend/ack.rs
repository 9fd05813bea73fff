//! `write_ack = "replica"` on one connection: the WAIT that closes each batch holding writes,
//! and how its answer releases those writes' replies or refuses them with `NOREPLICAS`.
//!
//! One WAIT per batch covers every write before it on the connection (Redis counts the
//! replicas that acknowledged the connection's last write offset), so a pipeline of writes
//! pays one round trip to the replicas, not one per write. Replies that are not writes, and
//! write errors (nothing to confirm), are delivered as soon as they arrive.

use bytes::Bytes;
use hive_common::resp::{parse_i64, Request};

use super::inflight::InFlight;
use crate::error::{ProxyError, UpstreamReason};

/// What a connection that confirms writes sends and expects.
#[derive(Debug, Clone)]
pub struct AckOpts {
    /// `WAIT <replicas> <timeout>`, encoded once.
    pub wait: Bytes,
    /// Replicas that must confirm.
    pub need: i64,
}

impl AckOpts {
    pub fn new(replicas: u32, timeout_ms: u64) -> AckOpts {
        let (n, t) = (replicas.to_string(), timeout_ms.to_string());
        AckOpts {
            wait: Request::from_args(&["WAIT", &n, &t]).raw().clone(),
            need: i64::from(replicas),
        }
    }
}

/// Redis's text for a write refused by `min-replicas-to-write`.
const NOREPLICAS: &str = "Not enough good replicas to write.";

/// The error a write gets when its WAIT did not confirm it: its outcome is unknown (the
/// master applied it; a failover may or may not keep it).
fn refused(detail: Option<String>) -> ProxyError {
    let message = match detail {
        None => NOREPLICAS.to_string(),
        Some(d) => format!("{NOREPLICAS} ({d})"),
    };
    ProxyError::upstream(UpstreamReason::NotAcked, message)
}

/// Settles the writes held for a WAIT whose answer is `frame`: into `done` when at least
/// `need` replicas confirmed, else into `refused` with the error to send. Returns whether
/// they were refused.
pub(super) fn settle(
    held: &mut Vec<(InFlight, Bytes)>,
    frame: &[u8],
    need: i64,
    addr: &str,
    done: &mut Vec<(InFlight, Bytes)>,
    out: &mut Vec<(InFlight, ProxyError)>,
) -> bool {
    let got = frame
        .strip_prefix(b":")
        .and_then(|rest| parse_i64(rest.strip_suffix(b"\r\n")?));
    match got {
        Some(n) if n >= need => {
            done.append(held);
            false
        }
        Some(_) => {
            out.extend(held.drain(..).map(|(f, _)| (f, refused(None))));
            true
        }
        None => {
            // WAIT itself failed (NOPERM for the proxy's user, or a node that turned replica):
            // nothing was confirmed, and the operator needs to see why.
            let text = String::from_utf8_lossy(frame.strip_prefix(b"-").unwrap_or(frame));
            let why = format!("WAIT on {addr} answered: {}", text.trim_end());
            out.extend(held.drain(..).map(|(f, _)| (f, refused(Some(why.clone())))));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::inflight::Gate;
    use super::*;
    use crate::conn::Tag;
    use std::time::Instant;

    fn entry() -> InFlight {
        let (tx, _) = crate::mailbox::channel();
        InFlight {
            reply: tx,
            tag: Tag { seq: 1, part: 0 },
            skip: false,
            left: 1,
            acc: None,
            sent: Instant::now(),
            gate: Gate::Ack,
        }
    }

    #[test]
    fn ack_opts_encode_wait() {
        let a = AckOpts::new(2, 750);
        assert_eq!(&a.wait[..], b"*3\r\n$4\r\nWAIT\r\n$1\r\n2\r\n$3\r\n750\r\n");
        assert_eq!(a.need, 2);
    }

    #[test]
    fn ack_settle_releases_when_enough_replicas_confirm() {
        let mut held = vec![(entry(), Bytes::from_static(b"+OK\r\n"))];
        let (mut done, mut out) = (Vec::new(), Vec::new());
        assert!(!settle(&mut held, b":2\r\n", 1, "n:1", &mut done, &mut out));
        assert!(held.is_empty() && out.is_empty());
        assert_eq!(&done[0].1[..], b"+OK\r\n");
    }

    #[test]
    fn ack_settle_refuses_with_redis_text_when_too_few_confirm() {
        let mut held = vec![(entry(), Bytes::new()), (entry(), Bytes::new())];
        let (mut done, mut out) = (Vec::new(), Vec::new());
        assert!(settle(&mut held, b":0\r\n", 1, "n:1", &mut done, &mut out));
        assert!(done.is_empty());
        assert_eq!(out.len(), 2);
        assert_eq!(
            &out[0].1.frame()[..],
            b"-NOREPLICAS Not enough good replicas to write.\r\n"
        );
        assert!(!out[0].1.retry(), "the write may have been applied");
    }

    #[test]
    fn ack_settle_names_a_failed_wait() {
        let mut held = vec![(entry(), Bytes::new())];
        let (mut done, mut out) = (Vec::new(), Vec::new());
        let err = b"-NOPERM this user has no permissions to run the 'wait' command\r\n";
        assert!(settle(&mut held, err, 1, "n:1", &mut done, &mut out));
        let text = String::from_utf8(out[0].1.frame().to_vec()).unwrap();
        assert!(
            text.starts_with(
                "-NOREPLICAS Not enough good replicas to write. (WAIT on n:1 answered: NOPERM"
            ),
            "{text}"
        );
    }
}
