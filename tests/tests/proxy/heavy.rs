//! Heavy and hostile clients against the `hive` binary and a real redis-server: large values
//! pipelined, slow readers, many large SETs at once, clients that write before they read, and
//! the limits that bound each client's buffers and all of them together. Each test bounds its
//! loops in time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hive_local::RedisProcess;
use hive_tests::{connect, heavy, single_node_with, HiveProcess};

const MB: usize = 1 << 20;

/// One static master and a proxy in front of it, with `extra` TOML lines in `[proxy]`
/// (`backend_extra` in `[backend]`).
struct Setup {
    hive: HiveProcess,
    _node: RedisProcess,
    _dir: tempfile::TempDir,
}

fn setup(proxy_extra: &str, backend_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node_with(&dir, &[]);
    let toml = format!(
        "[proxy]\nthreads = 2\n{proxy_extra}\n[backend]\nmode = \"static\"\n{backend_extra}\n\
         [[backend.shards]]\nmaster = \"{}\"\n",
        node.addr
    );
    Setup {
        hive: HiveProcess::start(&toml),
        _node: node,
        _dir: dir,
    }
}

fn set_value(url: &str, key: &str, len: usize) {
    let mut c = connect(url);
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(vec![b'v'; len])
        .query(&mut c)
        .unwrap();
}

fn gets(key: &str, n: usize) -> Vec<u8> {
    let one = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    one.repeat(n).into_bytes()
}

/// Reads until `want` bytes arrived, the proxy closed, or `limit` passed; returns the bytes
/// read and whether the connection was closed.
fn read_upto(
    s: &mut TcpStream,
    want: usize,
    limit: Duration,
    pace: Option<Duration>,
) -> (usize, bool) {
    let deadline = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; if pace.is_some() { 64 * 1024 } else { MB }];
    let mut got = 0;
    while got < want && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (got, true),
        }
        if let Some(p) = pace {
            thread::sleep(p);
        }
    }
    (got, false)
}

fn bulk_len(len: usize) -> usize {
    format!("${len}\r\n").len() + len + 2
}

/// Waits up to 10 s for INFO's `field` to reach `at_least`.
fn wait_info(url: &str, field: &str, at_least: u64) {
    let check = || async { Ok(info_field(url, field) >= at_least) };
    hive_local::block_on(hive_local::wait_until(
        field,
        Duration::from_secs(10),
        check,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

fn info_field(url: &str, field: &str) -> u64 {
    let mut c = connect(url);
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

/// Replies read from `s` until `n` arrived, the proxy closed, or `limit` passed: (values of
/// `len` bytes, error replies, closed). Only those two kinds of reply are expected.
fn count_replies(s: &mut TcpStream, n: usize, len: usize, limit: Duration) -> (usize, usize, bool) {
    let deadline = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let value_len = bulk_len(len);
    let (mut values, mut errors) = (0, 0);
    // Bytes of the current value still to skip, or the error line so far.
    let (mut skip, mut line) = (0usize, Vec::new());
    let mut buf = vec![0u8; MB];
    while values + errors < n && Instant::now() < deadline {
        let got = match s.read(&mut buf) {
            Ok(0) => return (values, errors, true),
            Ok(k) => k,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return (values, errors, true),
        };
        let mut chunk = &buf[..got];
        while !chunk.is_empty() {
            if skip > 0 {
                let k = skip.min(chunk.len());
                skip -= k;
                chunk = &chunk[k..];
                if skip == 0 {
                    values += 1;
                }
                continue;
            }
            if line.is_empty() && chunk[0] == b'$' {
                skip = value_len;
                continue;
            }
            line.push(chunk[0]);
            chunk = &chunk[1..];
            if line.ends_with(b"\r\n") {
                assert!(
                    line.starts_with(b"-"),
                    "unexpected reply {:?}",
                    String::from_utf8_lossy(&line)
                );
                errors += 1;
                line.clear();
            }
        }
    }
    (values, errors, false)
}

#[test]
fn large_values_pipelined_all_arrive() {
    let _g = heavy();
    for timeout in ["", "command_timeout_ms = 2000"] {
        let s = setup("", timeout);
        let url = s.hive.url();
        for (n, len) in [(200, 10 * MB), (2000, MB)] {
            set_value(&url, "big", len);
            let mut c = TcpStream::connect(s.hive.addr).unwrap();
            c.write_all(&gets("big", n)).unwrap();
            let (values, errors, closed) = count_replies(&mut c, n, len, Duration::from_secs(90));
            eprintln!("{n} GETs of {len} bytes ({timeout:?}): {values} values, {errors} errors");
            // Every request is answered. With the default timeout, by its value; with 2 s, a
            // node that spends longer producing the first bytes of 2 GB (a loaded machine)
            // fails what it has not answered, and each of those gets the timeout's error.
            assert_eq!(
                (values + errors, closed),
                (n, false),
                "{n} GETs of {len} bytes ({timeout:?})"
            );
            if timeout.is_empty() {
                assert_eq!(
                    errors, 0,
                    "{n} GETs of {len} bytes with the default timeout"
                );
            }
        }
        assert_eq!(info_field(&url, "output_limit_disconnects"), 0);
    }
}

/// Latencies of small GET/SETs from `clients` threads while `busy` holds.
fn small_traffic(addr: SocketAddr, clients: usize, busy: Arc<AtomicBool>) -> Vec<Duration> {
    let all = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (all, busy) = (all.clone(), busy.clone());
            thread::spawn(move || {
                let mut c = connect(&format!("redis://{addr}/"));
                let mut mine = Vec::new();
                let key = format!("small:{i}");
                let end = Instant::now() + Duration::from_secs(30);
                while busy.load(Ordering::Relaxed) && Instant::now() < end {
                    let t = Instant::now();
                    let r: redis::RedisResult<()> =
                        redis::cmd("SET").arg(&key).arg("x").query(&mut c);
                    r.unwrap_or_else(|e| panic!("SET: {e}"));
                    let v: String = redis::cmd("GET")
                        .arg(&key)
                        .query(&mut c)
                        .unwrap_or_else(|e| panic!("GET: {e}"));
                    assert_eq!(v, "x");
                    mine.push(t.elapsed() / 2);
                }
                all.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a small client got an error");
    }
    let mut v = std::mem::take(&mut *all.lock().unwrap());
    v.sort();
    v
}

fn p99(v: &[Duration]) -> Duration {
    v[v.len() * 99 / 100]
}

#[test]
fn slow_large_reader_does_not_stall_small_clients() {
    let _g = heavy();
    let s = setup("", "");
    let url = s.hive.url();
    set_value(&url, "big", 10 * MB);
    let busy = Arc::new(AtomicBool::new(true));
    let small = {
        let (addr, busy) = (s.hive.addr, busy.clone());
        thread::spawn(move || small_traffic(addr, 20, busy))
    };
    thread::sleep(Duration::from_millis(300));
    let mut big = TcpStream::connect(s.hive.addr).unwrap();
    big.write_all(&gets("big", 200)).unwrap();
    // About 6 MB/s: far slower than the node produces.
    read_upto(
        &mut big,
        usize::MAX,
        Duration::from_secs(4),
        Some(Duration::from_millis(10)),
    );
    busy.store(false, Ordering::Relaxed);
    let lat = small.join().expect("small clients failed");
    assert!(lat.len() > 1000, "only {} small requests", lat.len());
    let p = p99(&lat);
    eprintln!(
        "small requests: {}, p99 {p:?}, max {:?}",
        lat.len(),
        lat[lat.len() - 1]
    );
    assert!(p < Duration::from_millis(50), "p99 {p:?}");
    assert!(info_field(&url, "large_reply_handoffs") >= 1);
}

/// 20 clients (tests/py/large_sets.py, at a lower priority, as clients on other hosts would
/// be) SET a 50 MB value each at `addr` while a canary does small requests; the canary's
/// slowest request.
fn large_sets_beside_a_canary(addr: SocketAddr, prefix: &str) -> Duration {
    let busy = Arc::new(AtomicBool::new(true));
    let canary = {
        let busy = busy.clone();
        thread::spawn(move || small_traffic(addr, 1, busy))
    };
    thread::sleep(Duration::from_millis(100));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/large_sets.py");
    let mut load = std::process::Command::new("nice")
        .args(["-n", "10"])
        .arg("python3")
        .arg(script)
        .args([&addr.port().to_string(), prefix])
        .spawn()
        .expect("run the load");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = load.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = load.kill();
            panic!("the large SETs did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    busy.store(false, Ordering::Relaxed);
    let lat = canary.join().expect("the canary failed");
    assert!(status.success(), "a large SET failed");
    lat[lat.len() - 1]
}

#[test]
fn large_sets_spare_a_canary_and_memory_is_given_back() {
    let _g = heavy();
    let s = setup("", "");
    let base_kb = s.hive.status_kb("VmRSS");
    let direct = large_sets_beside_a_canary(s._node.addr.parse().unwrap(), "direct");
    let worst = large_sets_beside_a_canary(s.hive.addr, "hive");
    let peak_kb = s.hive.status_kb("VmHWM");
    eprintln!(
        "canary's slowest request: {worst:?} through hive, {direct:?} direct; \
         proxy RSS {base_kb} kB before, peak {peak_kb} kB"
    );
    // The target is 200 ms. On two cores, where the proxy's copy of the gigabyte
    // takes CPU from the node itself, this machine shows 50-300 ms through a release build
    // and up to 470 ms through a debug one, against 45-130 ms direct (benches/README.md). The
    // bound catches a stall of the kind that was fixed (5.9 s before), not the machine's noise.
    assert!(
        worst < Duration::from_secs(1),
        "canary waited {worst:?} (direct {direct:?})"
    );
    let in_flight_kb = (20 * 50 * MB / 1024) as u64;
    assert!(
        peak_kb < in_flight_kb * 13 / 10,
        "peak RSS {peak_kb} kB for {in_flight_kb} kB in flight"
    );
    assert_rss_returns(&s.hive, base_kb);
}

/// Within 10 s of a burst, the idle proxy's RSS is back within 64 MB of `base_kb`.
fn assert_rss_returns(hive: &HiveProcess, base_kb: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rss = hive.status_kb("VmRSS");
        if rss <= base_kb + 64 * 1024 {
            eprintln!("idle RSS {rss} kB (baseline {base_kb} kB)");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "idle RSS {rss} kB, baseline {base_kb} kB, 10 s after the burst"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slow_reader_is_disconnected_at_its_output_limits() {
    let _g = heavy();
    let s = setup("client_output_buffer_limit = \"64mb 16mb 2\"", "");
    let url = s.hive.url();
    let base_kb = s.hive.status_kb("VmRSS");
    set_value(&url, "big", 10 * MB);
    // Hard limit: 50 replies of 10 MB that nobody reads.
    let mut c = TcpStream::connect(s.hive.addr).unwrap();
    c.write_all(&gets("big", 50)).unwrap();
    wait_info(&url, "output_limit_disconnects", 1);
    let (got, closed) = read_upto(&mut c, usize::MAX, Duration::from_secs(10), None);
    assert!(
        closed && got < 50 * bulk_len(10 * MB),
        "read {got}, closed {closed}"
    );
    // Soft limit: 3 replies (30 MB, under the hard limit) unread for longer than 2 s.
    let mut c = TcpStream::connect(s.hive.addr).unwrap();
    c.write_all(&gets("big", 3)).unwrap();
    let t = Instant::now();
    wait_info(&url, "output_limit_disconnects", 2);
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    // The proxy serves others, and the memory comes back.
    let mut o = connect(&url);
    let v: Vec<u8> = redis::cmd("GET").arg("big").query(&mut o).unwrap();
    assert_eq!(v.len(), 10 * MB);
    drop(o);
    assert_rss_returns(&s.hive, base_kb);
}

#[test]
fn client_that_writes_before_reading_is_not_deadlocked() {
    let _g = heavy();
    let s = setup("", "");
    set_value(&s.hive.url(), "k", 100);
    // redis-py's pipeline writes every command, then reads: 1,000,000 GETs are 26 MB of
    // requests and 107 MB of replies, more than the sockets hold either way.
    let n = 1_000_000;
    let mut c = TcpStream::connect(s.hive.addr).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(&gets("k", n))
        .expect("the proxy stopped reading");
    let want = n * bulk_len(100);
    let (got, _) = read_upto(&mut c, want, Duration::from_secs(60), None);
    assert_eq!(got, want);
}

#[test]
fn query_buffer_and_multi_limits_close_or_abort() {
    let _g = heavy();
    let s = setup("client_query_buffer_limit = \"1mb\"", "");
    let url = s.hive.url();
    let mut c = TcpStream::connect(s.hive.addr).unwrap();
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n")
        .unwrap();
    let _ = c.write_all(&vec![b'x'; 2 * MB]);
    let (got, closed) = read_upto(&mut c, usize::MAX, Duration::from_secs(10), None);
    assert!(closed && got == 0, "closed {closed} after {got} bytes");
    assert_eq!(info_field(&url, "query_limit_disconnects"), 1);
    // A transaction whose queue passes the limit is aborted, as one with a bad command is.
    let mut m = connect(&url);
    let _: () = redis::cmd("MULTI").query(&mut m).unwrap();
    for _ in 0..3 {
        let _ = redis::cmd("SET")
            .arg("q")
            .arg(vec![b'x'; 400 * 1024])
            .query::<redis::Value>(&mut m);
    }
    let e = redis::cmd("EXEC")
        .query::<redis::Value>(&mut m)
        .unwrap_err();
    assert_eq!(e.code(), Some("EXECABORT"), "{e}");
    let v: Option<String> = redis::cmd("GET").arg("q").query(&mut m).unwrap();
    assert_eq!(v, None);
}

#[test]
fn maxmemory_buffers_evicts_the_biggest_client_first() {
    let _g = heavy();
    let s = setup("maxmemory_buffers = \"64mb\"", "");
    let url = s.hive.url();
    set_value(&url, "big", 10 * MB);
    let mut small = connect(&url);
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("1")
        .query(&mut small)
        .unwrap();
    // 20 unread replies of 10 MB: over the proxy-wide limit, under the client's own.
    let mut hog = TcpStream::connect(s.hive.addr).unwrap();
    hog.write_all(&gets("big", 20)).unwrap();
    wait_info(&url, "evicted_clients", 1);
    let (_, closed) = read_upto(&mut hog, usize::MAX, Duration::from_secs(10), None);
    assert!(closed, "the biggest client is the one evicted");
    let v: String = redis::cmd("GET").arg("s").query(&mut small).unwrap();
    assert_eq!(v, "1");
    assert_eq!(info_field(&url, "evicted_clients"), 1);
}
