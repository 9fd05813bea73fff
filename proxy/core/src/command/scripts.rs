//! Script bodies seen by the proxy, by SHA1. SCRIPT LOAD is not replicated, so a promoted
//! replica or a restarted node answers EVALSHA with NOSCRIPT; the proxy then loads the body it
//! saw and runs the EVALSHA again, and the client never notices.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use hive_common::resp::Request;

#[derive(Debug, Default)]
pub struct Scripts {
    by_sha: Mutex<HashMap<[u8; 40], Bytes>>,
}

/// Scripts kept at most; past this, new ones are not remembered (clients still work, only
/// without healing).
const MAX_SCRIPTS: usize = 10_000;

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
        let mut m = self.by_sha.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() < MAX_SCRIPTS && !m.contains_key(&sha) {
            m.insert(sha, Bytes::copy_from_slice(body));
        }
    }

    /// `SCRIPT LOAD <body>` for a known SHA, ready to send before a retried EVALSHA.
    pub fn load_request(&self, sha: &[u8]) -> Option<Bytes> {
        let key: [u8; 40] = sha.to_ascii_lowercase().try_into().ok()?;
        let m = self.by_sha.lock().unwrap_or_else(|p| p.into_inner());
        let body = m.get(&key)?;
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
}
