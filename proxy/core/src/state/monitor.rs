//! MONITOR through the proxy: every command the proxy's clients send, as Redis formats it
//! (`+1700000000.123456 [0 127.0.0.1:50000] "set" "k" "v"`), pushed to each monitoring client.
//! With no monitor connected, a request pays one relaxed load of a counter nobody writes.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use hive_upstream::{Inbox, ReplyTx};

#[derive(Debug, Default)]
pub struct Monitors {
    count: AtomicUsize,
    clients: Mutex<Vec<(u64, ReplyTx)>>,
}

impl Monitors {
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    pub fn add(&self, id: u64, tx: ReplyTx) {
        let mut c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|(i, _)| *i != id);
        c.push((id, tx));
        self.count.store(c.len(), Relaxed);
    }

    pub fn remove(&self, id: u64) {
        let mut c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|(i, _)| *i != id);
        self.count.store(c.len(), Relaxed);
    }

    /// Sends one command line to every monitor; a monitor that went away is dropped.
    pub fn feed<'a>(&self, peer: &str, args: impl Iterator<Item = &'a [u8]>) {
        let line = Bytes::from(format_line(unix_now(), peer, args));
        let mut c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|(_, tx)| {
            tx.send(Inbox::Push {
                frame: line.clone(),
            })
            .is_ok()
        });
        self.count.store(c.len(), Relaxed);
    }
}

/// The arguments MONITOR shows: passwords replaced with `(redacted)`, as Redis 7 does for AUTH
/// and HELLO ... AUTH.
pub fn redacted<'a>(args: &[&'a [u8]]) -> Vec<&'a [u8]> {
    const REDACTED: &[u8] = b"(redacted)";
    let name = args.first().copied().unwrap_or_default();
    if name.eq_ignore_ascii_case(b"auth") {
        let mut out = vec![name];
        out.extend(std::iter::repeat_n(REDACTED, args.len().saturating_sub(1)));
        return out;
    }
    let mut out = args.to_vec();
    if name.eq_ignore_ascii_case(b"hello") {
        if let Some(i) = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth")) {
            for a in out.iter_mut().skip(i + 1).take(2) {
                *a = REDACTED;
            }
        }
    }
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One MONITOR line, as Redis's `replicationFeedMonitors` writes it.
pub fn format_line<'a>(time: f64, peer: &str, args: impl Iterator<Item = &'a [u8]>) -> BytesMut {
    let mut out = BytesMut::with_capacity(64);
    out.extend_from_slice(format!("+{time:.6} [0 {peer}]").as_bytes());
    for a in args {
        out.extend_from_slice(b" ");
        repr(&mut out, a);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Redis's `sdscatrepr`: a quoted string with escapes, so a line never breaks.
fn repr(out: &mut BytesMut, s: &[u8]) {
    out.extend_from_slice(b"\"");
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.extend_from_slice(&[c]),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.extend_from_slice(b"\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_redacts_passwords() {
        let auth: [&[u8]; 3] = [b"AUTH", b"user", b"pw"];
        assert_eq!(
            redacted(&auth),
            [&b"AUTH"[..], b"(redacted)", b"(redacted)"]
        );
        let hello: [&[u8]; 5] = [b"HELLO", b"3", b"AUTH", b"u", b"pw"];
        assert_eq!(
            redacted(&hello),
            [&b"HELLO"[..], b"3", b"AUTH", b"(redacted)", b"(redacted)"]
        );
    }

    #[test]
    fn monitor_line_matches_redis_format() {
        let args: [&[u8]; 3] = [b"set", b"k\"1", b"a\r\n\x01 b"];
        let line = format_line(1700000000.5, "127.0.0.1:5000", args.into_iter());
        assert_eq!(
            &line[..],
            &b"+1700000000.500000 [0 127.0.0.1:5000] \"set\" \"k\\\"1\" \"a\\r\\n\\x01 b\"\r\n"[..]
        );
    }
}
