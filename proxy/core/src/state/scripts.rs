//! Script bodies seen by the proxy, by SHA1. SCRIPT LOAD is not replicated, so a promoted
//! replica or a restarted node answers EVALSHA with NOSCRIPT; the proxy then loads the body it
//! saw and runs the EVALSHA again, and the client never notices.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use hive_common::resp::Request;

#[derive(Debug, Default)]
pub struct Scripts {
    inner: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    by_sha: HashMap<[u8; 40], Bytes>,
    bytes: usize,
}

/// Scripts and bytes of script bodies kept at most; past either, new ones are not remembered
/// (clients still work, only without healing).
const MAX_SCRIPTS: usize = 10_000;
const MAX_SCRIPT_BYTES: usize = 64 << 20;

pub fn sha1_hex(body: &[u8]) -> [u8; 40] {
    let hex = sha1_smol::Sha1::from(body).digest().to_string();
    let mut out = [0u8; 40];
    out.copy_from_slice(hex.as_bytes());
    out
}

impl Scripts {
    /// Remembers `body` (from SCRIPT LOAD or EVAL).
    pub fn record(&self, body: &[u8]) {
        let sha = sha1_hex(body);
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let fits = c.by_sha.len() < MAX_SCRIPTS && c.bytes + body.len() <= MAX_SCRIPT_BYTES;
        if fits && !c.by_sha.contains_key(&sha) {
            c.bytes += body.len();
            c.by_sha.insert(sha, Bytes::copy_from_slice(body));
        }
    }

    /// Forgets every script (SCRIPT FLUSH): an EVALSHA of a flushed script must get NOSCRIPT,
    /// as from Redis, not be healed.
    pub fn clear(&self) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.by_sha.clear();
        c.bytes = 0;
    }

    /// `SCRIPT LOAD <body>` for a known SHA, ready to send before a retried EVALSHA.
    pub fn load_request(&self, sha: &[u8]) -> Option<Bytes> {
        let key: [u8; 40] = sha.to_ascii_lowercase().try_into().ok()?;
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let body = c.by_sha.get(&key)?;
        Some(
            Request::from_args(&[&b"SCRIPT"[..], b"LOAD", body])
                .raw()
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_found_by_sha() {
        let s = Scripts::default();
        // The SHA1 Redis reports for this script.
        assert_eq!(
            &sha1_hex(b"return 1"),
            b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        assert!(s
            .load_request(b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
            .is_none());
        s.record(b"return 1");
        let req = s
            .load_request(b"E0E1F9FABFC9D4800C877A703B823AC0578FF8DB")
            .unwrap();
        assert!(req.ends_with(b"$8\r\nreturn 1\r\n"));
    }

    #[test]
    fn scripts_are_bounded_by_bytes() {
        let s = Scripts::default();
        let big = vec![b' '; MAX_SCRIPT_BYTES / 2 + 1];
        s.record(&big);
        let mut other = big.clone();
        other[0] = b'x';
        s.record(&other);
        assert!(s.load_request(&sha1_hex(&big)).is_some());
        assert!(s.load_request(&sha1_hex(&other)).is_none());
    }
}
