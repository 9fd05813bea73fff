//! SLOWLOG through the proxy: the proxy's own slow requests (from decoded to reply written),
//! kept as Redis keeps them: `slowlog_max_len` entries, at most 32 arguments of 128 bytes each.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use hive_common::resp::{write_array_header, write_bulk, write_integer};

/// Redis's SLOWLOG_ENTRY_MAX_ARGC and SLOWLOG_ENTRY_MAX_STRING.
const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    pub time: u64,
    pub duration_us: u64,
    pub args: Vec<Bytes>,
    pub peer: String,
    pub name: Bytes,
}

#[derive(Debug, Default)]
struct Log {
    next_id: u64,
    entries: VecDeque<Entry>,
}

/// The slow log; locked only when a request was slow, never on the fast path.
#[derive(Debug)]
pub struct SlowLog {
    log: Mutex<Log>,
    /// `slowlog_slower_than_us` and `slowlog_max_len`, changed by a reload.
    slower_than: AtomicI64,
    max_len: AtomicUsize,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog::new(10_000, 128)
    }
}

/// Trims arguments as Redis does: the 32nd says how many more there were, and a long string
/// says how many bytes were cut.
pub fn trim_args<'a>(args: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<Bytes> {
    let argc = args.len();
    let mut out = Vec::with_capacity(argc.min(MAX_ARGC));
    for (i, a) in args.enumerate() {
        if i == MAX_ARGC - 1 && argc > MAX_ARGC {
            out.push(Bytes::from(format!(
                "... ({} more arguments)",
                argc - MAX_ARGC + 1
            )));
            break;
        }
        if a.len() > MAX_STRING {
            let mut s = a[..MAX_STRING].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes());
            out.push(Bytes::from(s));
        } else {
            out.push(Bytes::copy_from_slice(a));
        }
    }
    out
}

impl SlowLog {
    pub fn new(slower_than_us: i64, max_len: usize) -> SlowLog {
        SlowLog {
            log: Mutex::default(),
            slower_than: AtomicI64::new(slower_than_us),
            max_len: AtomicUsize::new(max_len),
        }
    }

    pub fn configure(&self, slower_than_us: i64, max_len: usize) {
        self.slower_than.store(slower_than_us, Relaxed);
        self.max_len.store(max_len, Relaxed);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.entries.truncate(max_len);
    }

    /// `CONFIG SET slowlog-log-slower-than` through the proxy (-1 turns the log off).
    pub fn set_slower_than(&self, us: i64) {
        self.slower_than.store(us, Relaxed);
    }

    /// `CONFIG SET slowlog-max-len` through the proxy.
    pub fn set_max_len(&self, max_len: usize) {
        self.max_len.store(max_len, Relaxed);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.entries.truncate(max_len);
    }

    /// The threshold in microseconds, `None` when the log is off (read once per batch).
    #[inline]
    pub fn threshold(&self) -> Option<u64> {
        u64::try_from(self.slower_than.load(Relaxed)).ok()
    }

    pub fn push(&self, duration_us: u64, args: Vec<Bytes>, peer: String, name: Bytes) {
        let max_len = self.max_len.load(Relaxed);
        if max_len == 0 {
            return;
        }
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(Entry {
            id,
            time,
            duration_us,
            args,
            peer,
            name,
        });
        log.entries.truncate(max_len);
    }

    pub fn len(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .clear();
    }

    /// The newest `count` entries (all with `None`).
    pub fn newest(&self, count: Option<usize>) -> Vec<Entry> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let n = count.unwrap_or(log.entries.len());
        log.entries.iter().take(n).cloned().collect()
    }

    /// SLOWLOG GET's reply.
    pub fn write_get(&self, count: Option<usize>, out: &mut BytesMut) {
        let entries = self.newest(count);
        write_array_header(out, entries.len());
        for e in entries {
            write_array_header(out, 6);
            write_integer(out, e.id as i64);
            write_integer(out, e.time as i64);
            write_integer(out, e.duration_us as i64);
            write_array_header(out, e.args.len());
            for a in &e.args {
                write_bulk(out, a);
            }
            write_bulk(out, e.peer.as_bytes());
            write_bulk(out, &e.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowlog_keeps_newest_first_within_max_len() {
        let log = SlowLog::new(0, 3);
        for i in 0..5u64 {
            log.push(
                i,
                vec![Bytes::from("get")],
                "127.0.0.1:1".into(),
                Bytes::new(),
            );
        }
        let got: Vec<u64> = log.newest(None).iter().map(|e| e.duration_us).collect();
        assert_eq!(got, [4, 3, 2]);
        assert_eq!(log.newest(Some(1))[0].id, 4);
        log.reset();
        assert!(log.is_empty());
    }

    #[test]
    fn slowlog_trims_like_redis() {
        let long = [b'x'; 200];
        let args: Vec<&[u8]> = std::iter::repeat_n(&long[..], 40).collect();
        let t = trim_args(args.into_iter());
        assert_eq!(t.len(), 32);
        assert_eq!(&t[31][..], b"... (9 more arguments)");
        assert!(t[0].ends_with(b"... (72 more bytes)"));
        assert_eq!(t[0].len(), 128 + "... (72 more bytes)".len());
    }
}
