//! ACL LOG: failed authentications and denied commands, keys and channels, newest first,
//! similar entries within 60 s counted together, at most 128 kept (Redis's defaults). No
//! password is ever recorded.

use std::collections::VecDeque;
use std::time::Instant;

const MAX_LEN: usize = 128;
const GROUP_WINDOW_MS: u128 = 60_000;

/// One denial, as ACL LOG shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `auth`, `command`, `key` or `channel`.
    pub reason: &'static str,
    /// `toplevel` or `multi`.
    pub context: &'static str,
    /// The command, key or channel denied (`AUTH` for authentication).
    pub object: String,
    pub username: String,
    /// The client's CLIENT LIST line.
    pub client_info: String,
}

#[derive(Default)]
pub struct AclLog {
    entries: VecDeque<(Entry, u64, Instant)>,
}

impl AclLog {
    pub fn record(&mut self, e: Entry) {
        let now = Instant::now();
        let same = self.entries.iter_mut().find(|(x, _, at)| {
            x.reason == e.reason
                && x.context == e.context
                && x.object == e.object
                && x.username == e.username
                && now.duration_since(*at).as_millis() < GROUP_WINDOW_MS
        });
        if let Some((x, count, at)) = same {
            *count += 1;
            *at = now;
            x.client_info = e.client_info;
            return;
        }
        self.entries.push_front((e, 1, now));
        self.entries.truncate(MAX_LEN);
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// The newest `n` entries with their counts and ages in seconds.
    pub fn newest(&self, n: usize) -> Vec<(Entry, u64, f64)> {
        self.entries
            .iter()
            .take(n)
            .map(|(e, c, at)| (e.clone(), *c, at.elapsed().as_secs_f64()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(object: &str) -> Entry {
        Entry {
            reason: "key",
            context: "toplevel",
            object: object.into(),
            username: "app".into(),
            client_info: "id=1".into(),
        }
    }

    #[test]
    fn acl_log_groups_repeats_and_keeps_the_newest() {
        let mut log = AclLog::default();
        log.record(e("a"));
        log.record(e("a"));
        log.record(e("b"));
        let n = log.newest(10);
        assert_eq!(n.len(), 2);
        assert_eq!((n[0].0.object.as_str(), n[0].1), ("b", 1));
        assert_eq!((n[1].0.object.as_str(), n[1].1), ("a", 2));
        for i in 0..200 {
            log.record(e(&i.to_string()));
        }
        assert_eq!(log.newest(1000).len(), MAX_LEN);
        log.reset();
        assert!(log.newest(10).is_empty());
    }
}
