//! The load a fault test runs through Hive: writers of unique keys, each acknowledgement
//! recorded, and a register per writer (its last acknowledged version, read back after each
//! write) to catch stale reads; then a read-back of everything acknowledged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the writers saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Unique keys acknowledged, with their values.
    pub acked: BTreeMap<String, String>,
    /// Each writer's register and the last version acknowledged for it.
    pub registers: BTreeMap<String, u64>,
    /// Reads of a register that returned less than the version acknowledged before it.
    pub stale_reads: u64,
    /// When each stale read was sent, and what it read.
    pub stale: Vec<(Instant, String)>,
    /// When each successful write was sent and when its reply came (for the downtime), and
    /// errors' times with their text.
    pub ok_at: Vec<(Instant, Instant)>,
    pub errors: Vec<(Instant, String)>,
}

/// Writers running until `stop`.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub seen: Arc<Mutex<Seen>>,
}

fn client(url: &str) -> Option<redis::Connection> {
    let c = redis::Client::open(url).ok()?;
    let conn = c.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
    // Above Hive's failover hold (5 s) and WAIT timeout: a reply, or the proxy's error, comes
    // first; never a hang.
    conn.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    Some(conn)
}

impl Load {
    /// `writers` threads writing keys under hash tag `tag` through the proxy at `url`. The
    /// threads are started from the calling thread (so in its network namespace).
    pub fn start(url: &str, tag: &str, writers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let threads = (0..writers)
            .map(|w| {
                let (url, tag, stop, seen) =
                    (url.to_string(), tag.to_string(), stop.clone(), seen.clone());
                std::thread::spawn(move || write_loop(&url, &tag, w, &stop, &seen))
            })
            .collect();
        Load {
            stop,
            threads,
            seen,
        }
    }

    pub fn stop(self) -> Arc<Mutex<Seen>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.seen
    }
}

fn write_loop(url: &str, tag: &str, w: usize, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut conn = None;
    let register = format!("{tag}reg:{w}");
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            conn = client(url);
            if conn.is_none() {
                let e = "connect to the proxy failed".to_string();
                seen.lock().unwrap().errors.push((Instant::now(), e));
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        };
        i += 1;
        let key = format!("{tag}w{w}:{i}");
        let sent = Instant::now();
        let r: redis::RedisResult<()> = redis::pipe()
            .set(&key, i)
            .ignore()
            .set(&register, i)
            .ignore()
            .query(c);
        let now = Instant::now();
        match r {
            Ok(()) => {
                let mut s = seen.lock().unwrap();
                s.acked.insert(key, i.to_string());
                s.registers.insert(register.clone(), i);
                s.ok_at.push((sent, now));
            }
            Err(e) => {
                let io = e.is_io_error() || e.is_timeout() || e.is_connection_dropped();
                // The node's or the proxy's own words (`NOREPLICAS ...`, `TRYAGAIN ...`).
                let text = match (e.code(), e.detail()) {
                    (Some(code), Some(detail)) => format!("{code} {detail}"),
                    _ => e.to_string(),
                };
                seen.lock().unwrap().errors.push((now, text));
                if io {
                    conn = None;
                }
                continue;
            }
        }
        let asked = Instant::now();
        let got: redis::RedisResult<Option<u64>> = redis::cmd("GET").arg(&register).query(c);
        match got {
            // The write of version `i` was acknowledged just before: an older value is stale.
            Ok(v) if v.unwrap_or(0) < i => {
                let mut s = seen.lock().unwrap();
                s.stale_reads += 1;
                s.stale
                    .push((asked, format!("{register}: read {v:?} after {i}")));
            }
            Ok(_) => {}
            Err(e) => {
                // A reply that timed out may still come: the connection must go, or the next
                // request would read it as its own.
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    conn = None;
                }
                let text = match (e.code(), e.detail()) {
                    (Some(code), Some(detail)) => format!("{code} {detail}"),
                    _ => e.to_string(),
                };
                seen.lock().unwrap().errors.push((Instant::now(), text));
            }
        }
    }
}

/// Reads back every acknowledged key and register through `url`: (lost keys, registers
/// behind their last acknowledged version).
pub fn verify(url: &str, seen: &Seen) -> (usize, usize) {
    let mut c = crate::connect(url);
    let keys: Vec<&String> = seen.acked.keys().collect();
    let mut lost = 0;
    for chunk in keys.chunks(500) {
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut c).unwrap();
        lost += chunk
            .iter()
            .zip(got)
            .filter(|(k, v)| v.as_deref() != Some(seen.acked[**k].as_str()))
            .count();
    }
    let behind = seen
        .registers
        .iter()
        .filter(|(k, v)| {
            let got: Option<u64> = redis::cmd("GET").arg(k).query(&mut c).unwrap();
            got.unwrap_or(0) < **v
        })
        .count();
    (lost, behind)
}
