//! A client load that remembers every acknowledged write: each thread owns its keys (spread
//! over every slot range), writes them with rising values as single commands, pipelines and
//! MULTI/EXEC on a hash tag, reads its own keys back, and counts every error reply or stale
//! read. At the end every key must hold the last value acknowledged for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::connect;

/// Keys per thread.
const KEYS: u64 = 64;

pub struct LedgerLoad {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Outcome>>,
}

#[derive(Default)]
pub struct Outcome {
    /// Key → the last value a write of it was acknowledged with.
    pub ledger: HashMap<String, u64>,
    pub ops: u64,
    /// Error replies and broken connections, with the first few messages.
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// Reads that returned something other than the thread's last acknowledged value.
    pub stale: u64,
}

fn key(p: &str, t: usize, k: u64) -> String {
    format!("ledger:{p}{t}:{k}")
}

impl LedgerLoad {
    /// `clients` threads through `url`, each for at most `limit`.
    pub fn start(url: &str, clients: usize, limit: Duration) -> LedgerLoad {
        LedgerLoad::start_named(url, clients, limit, "")
    }

    /// As `start`, with keys named apart by `prefix` (several loads on one deployment).
    pub fn start_named(url: &str, clients: usize, limit: Duration, prefix: &str) -> LedgerLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|t| {
                let (stop, ops, url) = (stop.clone(), ops.clone(), url.to_string());
                let p = prefix.to_string();
                std::thread::spawn(move || run(&p, t, &url, &stop, &ops, limit))
            })
            .collect();
        LedgerLoad { stop, ops, threads }
    }

    /// Acknowledged operations so far, over every thread.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    pub fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Outcome::default();
        for t in self.threads {
            let o = t.join().expect("a load thread panicked");
            all.ledger.extend(o.ledger);
            all.ops += o.ops;
            all.errors += o.errors;
            all.stale += o.stale;
            all.first_errors.extend(o.first_errors);
        }
        all.first_errors.truncate(10);
        all
    }
}

fn run(
    p: &str,
    t: usize,
    url: &str,
    stop: &AtomicBool,
    ops: &AtomicU64,
    limit: Duration,
) -> Outcome {
    let mut o = Outcome::default();
    let mut c = connect(url);
    let deadline = Instant::now() + limit;
    let mut n: u64 = 0;
    let fail = |o: &mut Outcome, e: redis::RedisError| {
        o.errors += 1;
        if o.first_errors.len() < 3 {
            o.first_errors.push(format!("thread {t}: {e}"));
        }
    };
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        n += 1;
        let k = key(p, t, n % KEYS);
        match n % 4 {
            0 => {
                let r: redis::RedisResult<()> = redis::cmd("SET").arg(&k).arg(n).query(&mut c);
                match r {
                    Ok(()) => {
                        o.ledger.insert(k, n);
                    }
                    Err(e) => fail(&mut o, e),
                }
            }
            1 => {
                // A pipeline of five keys in different slots.
                let keys: Vec<String> = (0..5).map(|i| key(p, t, (n + i * 13) % KEYS)).collect();
                let mut p = redis::pipe();
                for k in &keys {
                    p.cmd("SET").arg(k).arg(n).ignore();
                }
                let r: redis::RedisResult<()> = p.query(&mut c);
                match r {
                    Ok(()) => {
                        for k in keys {
                            o.ledger.insert(k, n);
                        }
                    }
                    Err(e) => fail(&mut o, e),
                }
            }
            2 => {
                // MULTI on two keys of one hash tag (a slot that may be moving).
                let tag = format!("{{ledger:{p}{t}:{}}}", n % KEYS);
                let (a, b) = (format!("{tag}:a"), format!("{tag}:b"));
                let r: redis::RedisResult<()> = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&a)
                    .arg(n)
                    .ignore()
                    .cmd("SET")
                    .arg(&b)
                    .arg(n)
                    .ignore()
                    .query(&mut c);
                match r {
                    Ok(()) => {
                        o.ledger.insert(a, n);
                        o.ledger.insert(b, n);
                    }
                    Err(e) => fail(&mut o, e),
                }
            }
            _ => {
                let r: redis::RedisResult<Option<u64>> = redis::cmd("GET").arg(&k).query(&mut c);
                match r {
                    Ok(v) => {
                        if v != o.ledger.get(&k).copied() {
                            o.stale += 1;
                        }
                    }
                    Err(e) => fail(&mut o, e),
                }
            }
        }
        o.ops += 1;
        ops.fetch_add(1, Ordering::Relaxed);
    }
    o
}

impl Outcome {
    /// Keys whose value through `url` is not the last acknowledged one, with what was read.
    pub fn lost(&self, url: &str) -> Vec<(String, u64, Option<u64>)> {
        self.compare(url, |want, got| got == Some(want))
    }

    /// Keys whose value through `url` is older than the last acknowledged one (or gone). A
    /// newer value is a write whose reply was an error (a crashed master, a refused WAIT) that
    /// landed anyway: each key has one writer, whose values only rise.
    pub fn older_than_acknowledged(&self, url: &str) -> Vec<(String, u64, Option<u64>)> {
        self.compare(url, |want, got| got.is_some_and(|g| g >= want))
    }

    fn compare(
        &self,
        url: &str,
        ok: impl Fn(u64, Option<u64>) -> bool,
    ) -> Vec<(String, u64, Option<u64>)> {
        let mut c = connect(url);
        let keys: Vec<&String> = self.ledger.keys().collect();
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let mut p = redis::pipe();
            for k in chunk {
                p.cmd("GET").arg(*k);
            }
            let got: Vec<Option<u64>> = p.query(&mut c).expect("read the ledger back");
            for (k, g) in chunk.iter().zip(got) {
                let want = self.ledger[*k];
                if !ok(want, g) {
                    out.push(((*k).clone(), want, g));
                }
            }
        }
        out
    }
}
