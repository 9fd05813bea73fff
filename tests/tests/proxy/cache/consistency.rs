//! No read through the near cache returns a value older than the last write acknowledged
//! before the read was sent, when the writes go through Hive. With writes made on the node
//! directly, a stale read ends when the node's invalidation arrives: the bound is measured.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hive_tests::{connect, Env, GroupEnv};

const KEYS: usize = 4;

/// Each key's writes: (value, when acknowledged).
type Acks = Arc<Mutex<Vec<Vec<(u64, Instant)>>>>;
const READERS: usize = 3;
const RUN: Duration = Duration::from_secs(3);

/// What the readers saw: reads, reads older than the last acknowledged write, and the
/// longest such staleness (from that write's acknowledgement to the stale read's send).
#[derive(Debug, Default)]
struct Seen {
    reads: u64,
    stale: u64,
    worst: Duration,
}

/// One writer (through `write_url`) and readers (through `read_url`) on a few keys for
/// `RUN`; each write's value is its sequence number, so a read is stale when it is below the
/// last number acknowledged before the read was sent.
fn race(read_url: &str, write_url: &str, keys: &[String]) -> Seen {
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let acked_at: Acks = Arc::new(Mutex::new(vec![Vec::new(); KEYS]));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut threads = Vec::new();
    {
        let (acked, acked_at, stop, keys) =
            (acked.clone(), acked_at.clone(), stop.clone(), keys.to_vec());
        let mut c = connect(write_url);
        threads.push(std::thread::spawn(move || {
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < RUN && n < 200_000 {
                n += 1;
                let i = (n as usize) % KEYS;
                let _: () = redis::cmd("SET")
                    .arg(&keys[i])
                    .arg(n)
                    .query(&mut c)
                    .unwrap();
                acked_at.lock().unwrap()[i].push((n, Instant::now()));
                acked[i].store(n, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
        }));
    }
    for r in 0..READERS {
        let (acked, acked_at, stop, keys, seen) = (
            acked.clone(),
            acked_at.clone(),
            stop.clone(),
            keys.to_vec(),
            seen.clone(),
        );
        let mut c = connect(read_url);
        threads.push(std::thread::spawn(move || {
            let mut j = r;
            let mut mine = Seen::default();
            while !stop.load(Ordering::SeqCst) {
                j += 1;
                let i = j % KEYS;
                let floor = acked[i].load(Ordering::SeqCst);
                let sent = Instant::now();
                let v: Option<u64> = redis::cmd("GET").arg(&keys[i]).query(&mut c).unwrap();
                let v = v.unwrap_or(0);
                mine.reads += 1;
                if v < floor {
                    mine.stale += 1;
                    // The first write the read missed: how long it had been acknowledged.
                    let missed = acked_at.lock().unwrap()[i]
                        .iter()
                        .find(|(n, _)| *n > v)
                        .map(|(_, t)| *t);
                    if let Some(t) = missed {
                        mine.worst = mine.worst.max(sent.saturating_duration_since(t));
                    }
                }
            }
            let mut s = seen.lock().unwrap();
            s.reads += mine.reads;
            s.stale += mine.stale;
            s.worst = s.worst.max(mine.worst);
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

fn keys(prefix: &str) -> Vec<String> {
    (0..KEYS).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn cache_never_returns_a_value_older_than_an_acknowledged_write_through_hive() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, super::on);
    let mut c = env.client();
    super::ready(&mut c);
    let before = super::hits(&mut c);
    let seen = race(&env.url(), &env.url(), &keys("k"));
    let hits = super::hits(&mut c) - before;
    println!("cluster, writes through Hive: {seen:?}, {hits} hits");
    assert_eq!(seen.stale, 0, "stale reads: {seen:?}");
    assert!(seen.reads > 100 && hits > 0, "{seen:?}, {hits} hits");
}

#[test]
fn cache_stale_reads_end_with_the_nodes_invalidation() {
    let _g = hive_tests::heavy();
    let env = GroupEnv::statik(2, super::on);
    let mut c = env.client();
    super::ready(&mut c);
    // Keys of the first group, written on its master directly.
    let tag = env.tag_of(0);
    let keys = keys(&format!("{tag}k"));
    let node = hive_tests::suites::url(&env.routed_master(0), None);
    let before = super::hits(&mut c);
    let seen = race(&env.url(), &node, &keys);
    let hits = super::hits(&mut c) - before;
    println!(
        "static, writes on the node: {seen:?}, {hits} hits; the longest stale read came {:?} after the write's acknowledgement",
        seen.worst
    );
    assert!(seen.reads > 100 && hits > 0, "{seen:?}, {hits} hits");
    // Loopback invalidations arrive within milliseconds; a second means they did not.
    assert!(seen.worst < Duration::from_secs(1), "{seen:?}");
    // And once the writes stop, every read is current.
    for k in &keys {
        let mut n = connect(&node);
        let last: u64 = redis::cmd("GET").arg(k).query(&mut n).unwrap();
        hive_tests::module_cluster::wait_for("the last write", Duration::from_secs(5), || {
            let v: u64 = redis::cmd("GET").arg(k).query(&mut c).unwrap();
            v == last
        });
    }
}
