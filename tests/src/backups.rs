//! Helpers for the backup tests: the `hive` binary run as an operator runs it, data of every
//! type (with and without TTLs) written through a proxy and checked back independently of
//! Hive's own verification, and a bounded background write load.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{connect, hive_bin};

/// `hive <args>` with extra environment; returns (success, stdout, stderr).
pub fn hive(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out: Output = Command::new(hive_bin())
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run hive");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hive <args>` that must succeed; its stdout parsed as JSON.
pub fn hive_json(args: &[&str], envs: &[(&str, &str)]) -> serde_json::Value {
    let (ok, out, err) = hive(args, envs);
    assert!(ok, "hive {args:?} failed:\nstdout: {out}\nstderr: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("hive {args:?}: {e}: {out}"))
}

const KINDS: [&str; 6] = ["string", "list", "set", "zset", "hash", "stream"];

/// The key of item `i`: types rotate, every other key of a type has a TTL of an hour.
pub fn key(i: usize) -> String {
    format!("bk:{i}:{}", KINDS[i % 6])
}

fn has_ttl(i: usize) -> bool {
    (i / 6).is_multiple_of(2)
}

/// Writes `n` keys through `url`, 1,000 per pipeline.
pub fn populate(url: &str, n: usize) {
    populate_range(url, 0..n);
}

/// `populate(n)` from `threads` connections at once, each a share of the keys.
pub fn populate_parallel(url: &str, n: usize, threads: usize) {
    let per = n.div_ceil(threads.max(1));
    std::thread::scope(|s| {
        for t in 0..threads.max(1) {
            s.spawn(move || populate_range(url, (t * per).min(n)..((t + 1) * per).min(n)));
        }
    });
}

/// Writes the keys of `populate` numbered `range`.
pub fn populate_range(url: &str, range: std::ops::Range<usize>) {
    let mut c = connect(url);
    for chunk in range.collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for &i in chunk {
            let k = key(i);
            match i % 6 {
                0 => p.cmd("SET").arg(&k).arg(format!("value-{i}")),
                1 => p.cmd("RPUSH").arg(&k).arg(i).arg("b").arg("c"),
                2 => p.cmd("SADD").arg(&k).arg(i).arg("x").arg("y"),
                3 => p.cmd("ZADD").arg(&k).arg(1.5).arg(i).arg(2).arg("m"),
                4 => p.cmd("HSET").arg(&k).arg("f").arg(i).arg("g").arg("h"),
                _ => p.cmd("XADD").arg(&k).arg("1-1").arg("f").arg(i),
            }
            .ignore();
            if has_ttl(i) {
                p.cmd("EXPIRE").arg(&k).arg(3600).ignore();
            }
        }
        let () = p.query(&mut c).expect("populate");
    }
}

/// Reads every `step`-th key of `populate(n)` back from `url` and checks its type, value and
/// TTL; returns how many it checked.
pub fn check_populated(url: &str, n: usize, step: usize) -> usize {
    let mut c = connect(url);
    let mut checked = 0;
    for i in (0..n).step_by(step) {
        let k = key(i);
        let s = i.to_string();
        match i % 6 {
            0 => {
                let v: String = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
                assert_eq!(v, format!("value-{i}"), "{k}");
            }
            1 => {
                let v: Vec<String> = redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query(&mut c)
                    .unwrap();
                assert_eq!(v, [s.as_str(), "b", "c"], "{k}");
            }
            2 => {
                let mut v: Vec<String> = redis::cmd("SMEMBERS").arg(&k).query(&mut c).unwrap();
                v.sort();
                let mut want = vec![s.clone(), "x".into(), "y".into()];
                want.sort();
                assert_eq!(v, want, "{k}");
            }
            3 => {
                let v: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut c)
                    .unwrap();
                assert_eq!(v, [(s.clone(), 1.5), ("m".into(), 2.0)], "{k}");
            }
            4 => {
                let v: std::collections::BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
                assert_eq!(v.get("f"), Some(&s), "{k}");
                assert_eq!(v.get("g").map(String::as_str), Some("h"), "{k}");
            }
            _ => {
                let v: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query(&mut c)
                    .unwrap();
                assert_eq!(
                    v,
                    [("1-1".to_string(), vec![("f".to_string(), s.clone())])],
                    "{k}"
                );
            }
        }
        let ttl: i64 = redis::cmd("TTL").arg(&k).query(&mut c).unwrap();
        if has_ttl(i) {
            assert!((3000..=3600).contains(&ttl), "{k}: TTL {ttl}");
        } else {
            assert_eq!(ttl, -1, "{k}");
        }
        checked += 1;
    }
    checked
}

pub fn dbsize(url: &str) -> u64 {
    redis::cmd("DBSIZE").query(&mut connect(url)).unwrap()
}

/// A writer of `load:<n>` keys through `url`, until stopped or for at most 60 s.
pub struct Load {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl Load {
    pub fn start(url: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, url) = (stop.clone(), url.to_string());
        let handle = std::thread::spawn(move || {
            let mut c = connect(&url);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut p = redis::pipe();
                for _ in 0..20 {
                    p.cmd("SET").arg(format!("load:{n}")).arg(n).ignore();
                    n += 1;
                }
                let r: redis::RedisResult<()> = p.query(&mut c);
                r.expect("the write load's SETs");
            }
            n
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the writer; returns how many keys it wrote.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map(|h| h.join().unwrap()).unwrap_or(0)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
