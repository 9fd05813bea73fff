//! A load of skewed keys for the near cache's benchmark (issue 29): `clients` connections on
//! one thread, each sending batches of `pipeline` requests, 95% GET and 5% SET by default,
//! keys drawn from a zipfian distribution over `keys` keys (`key:N`, N = 1 the hottest).
//! With `--track`, each connection turns CLIENT TRACKING on (RESP3) and reads as a caching
//! client would, without caching; with `--client-cache` it also keeps what it read until an
//! invalidation comes, as a client-side cache does (a local hit sends nothing).
//! `--preload` writes every key once; `--delay` measures how long after a write made on the
//! node (`--node`) a tracking client of Hive hears of it; `--hold` keeps one idle tracking
//! connection open (so Hive's tracking feed runs) until it is killed. A load reports its
//! error replies and the p50/p99 round trip of its batches; `--stop-file F` ends it early
//! once F exists (the reshard benchmark's load runs exactly as long as the move).
//! Usage: cargo run --release -p hive-benches --example zipf_load -- --addr HOST:PORT
//!   [--clients 50] [--pipeline 1] [--seconds 8] [--keys 1000000] [--reads 0.95]
//!   [--value 64] [--zipf 0.99] [--track] [--client-cache] [--preload] [--delay --node H:P
//!   --samples N] [--stop-file F] [--json]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hive_common::resp::{parse_value, ReplyScanner, Request, Value};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone)]
struct Opts {
    addr: String,
    node: String,
    clients: usize,
    pipeline: usize,
    seconds: f64,
    keys: u64,
    reads: f64,
    value: usize,
    zipf: f64,
    track: bool,
    client_cache: bool,
    samples: usize,
    stop_file: Option<String>,
    json: bool,
}

fn opts() -> (Opts, &'static str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Opts {
        addr: String::new(),
        node: String::new(),
        clients: 50,
        pipeline: 1,
        seconds: 8.0,
        keys: 1_000_000,
        reads: 0.95,
        value: 64,
        zipf: 0.99,
        track: false,
        client_cache: false,
        samples: 2000,
        stop_file: None,
        json: false,
    };
    let mut mode = "load";
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| usage())
    };
    while i < args.len() {
        match args[i].as_str() {
            "--addr" => o.addr = val(&mut i),
            "--node" => o.node = val(&mut i),
            "--clients" => o.clients = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--pipeline" => o.pipeline = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--seconds" => o.seconds = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--keys" => o.keys = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--reads" => o.reads = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--value" => o.value = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--zipf" => o.zipf = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--samples" => o.samples = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--track" => o.track = true,
            "--client-cache" => (o.track, o.client_cache) = (true, true),
            "--json" => o.json = true,
            "--stop-file" => o.stop_file = Some(val(&mut i)),
            "--preload" => mode = "preload",
            "--delay" => mode = "delay",
            "--hold" => mode = "hold",
            _ => usage(),
        }
        i += 1;
    }
    if o.addr.is_empty() || (mode == "delay" && o.node.is_empty()) || o.pipeline == 0 {
        usage();
    }
    (o, mode)
}

fn usage() -> ! {
    eprintln!("usage: zipf_load --addr HOST:PORT [--clients N] [--pipeline N] [--seconds S] [--keys N] [--reads F] [--value BYTES] [--zipf S] [--track] [--client-cache] [--preload] [--delay --node HOST:PORT --samples N] [--stop-file F] [--json]");
    std::process::exit(2);
}

fn main() {
    let (o, mode) = opts();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match mode {
            "preload" => preload(&o).await,
            "delay" => delay(&o).await,
            "hold" => hold(&o).await,
            _ => load(&o).await,
        }
    });
}

/// A connection that sends requests and reads their replies, setting RESP3 pushes aside.
struct Conn {
    s: TcpStream,
    buf: BytesMut,
    scan: ReplyScanner,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).ok();
        Conn {
            s,
            buf: BytesMut::with_capacity(64 * 1024),
            scan: ReplyScanner::default(),
        }
    }

    /// The next frame (a reply or a push).
    async fn frame(&mut self) -> BytesMut {
        loop {
            if let Some(n) = self.scan.scan(&self.buf).expect("a RESP reply") {
                self.scan = ReplyScanner::default();
                return self.buf.split_to(n);
            }
            if self.s.read_buf(&mut self.buf).await.expect("read") == 0 {
                panic!("the server closed the connection");
            }
        }
    }

    async fn call(&mut self, args: &[&str]) -> BytesMut {
        self.s
            .write_all(Request::from_args(args).raw())
            .await
            .expect("write");
        loop {
            let f = self.frame().await;
            if f.first() != Some(&b'>') {
                return f;
            }
        }
    }
}

/// The keys an invalidation push names (`None`: not one; an empty list: a flush).
fn invalidated(f: &[u8]) -> Option<Vec<Vec<u8>>> {
    let Ok(Some((Value::Push(parts), _))) = parse_value(f) else {
        return None;
    };
    if parts.first().and_then(Value::as_bytes) != Some(b"invalidate") {
        return None;
    }
    Some(match parts.get(1) {
        Some(Value::Array(keys)) => keys
            .iter()
            .filter_map(|k| k.as_bytes().map(<[u8]>::to_vec))
            .collect(),
        _ => Vec::new(),
    })
}

#[derive(Default)]
struct Tally {
    ops: u64,
    local_hits: u64,
    errors: u64,
    /// Round trip of each batch, microseconds.
    lat_us: Vec<u32>,
}

async fn client(o: Opts, seed: u64, until: Instant, stop: Arc<AtomicBool>) -> Tally {
    let mut c = Conn::open(&o.addr).await;
    if o.track {
        c.call(&["HELLO", "3"]).await;
        let ok = c.call(&["CLIENT", "TRACKING", "on"]).await;
        assert_eq!(&ok[..], b"+OK\r\n", "CLIENT TRACKING on");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(o.keys, o.zipf).expect("zipf");
    let value = "v".repeat(o.value);
    let mut local: HashMap<Vec<u8>, BytesMut> = HashMap::new();
    let mut t = Tally::default();
    let mut out = BytesMut::with_capacity(o.pipeline * (o.value + 64));
    let mut sent: Vec<Option<Vec<u8>>> = Vec::with_capacity(o.pipeline);
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        out.clear();
        sent.clear();
        for _ in 0..o.pipeline {
            let key = format!("key:{}", zipf.sample(&mut rng) as u64);
            if rng.gen::<f64>() < o.reads {
                if o.client_cache && local.contains_key(key.as_bytes()) {
                    t.local_hits += 1;
                    continue;
                }
                out.extend_from_slice(Request::from_args(&["GET", &key]).raw());
                sent.push(o.client_cache.then(|| key.into_bytes()));
            } else {
                out.extend_from_slice(Request::from_args(&["SET", &key, &value]).raw());
                sent.push(None);
            }
        }
        t.ops += o.pipeline as u64;
        if sent.is_empty() {
            // Every read was a local hit: take in the invalidations that came meanwhile.
            while let Ok(n) = c.s.try_read_buf(&mut c.buf) {
                if n == 0 {
                    break;
                }
            }
            drain_pushes(&mut c, &mut local);
            continue;
        }
        let sent_at = Instant::now();
        c.s.write_all(&out).await.expect("write");
        let mut i = 0;
        while i < sent.len() {
            let f = c.frame().await;
            if f.first() == Some(&b'>') {
                forget(&f, &mut local);
                continue;
            }
            if f.first() == Some(&b'-') {
                t.errors += 1;
            }
            if let Some(key) = sent[i].take() {
                if f.first() == Some(&b'$') {
                    local.insert(key, f);
                }
            }
            i += 1;
        }
        t.lat_us
            .push(sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    t
}

/// Applies every whole push frame waiting in the buffer.
fn drain_pushes(c: &mut Conn, local: &mut HashMap<Vec<u8>, BytesMut>) {
    while c.buf.first() == Some(&b'>') {
        match c.scan.scan(&c.buf) {
            Ok(Some(n)) => {
                c.scan = ReplyScanner::default();
                let f = c.buf.split_to(n);
                forget(&f, local);
            }
            _ => return,
        }
    }
}

fn forget(f: &[u8], local: &mut HashMap<Vec<u8>, BytesMut>) {
    match invalidated(f) {
        Some(keys) if keys.is_empty() => local.clear(),
        Some(keys) => {
            for k in keys {
                local.remove(&k);
            }
        }
        None => {}
    }
}

async fn load(o: &Opts) {
    let until = Instant::now() + Duration::from_secs_f64(o.seconds);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(f) = o.stop_file.clone() {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !std::path::Path::new(&f).exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let tasks: Vec<_> = (0..o.clients)
        .map(|i| tokio::spawn(client(o.clone(), 0x5eed + i as u64, until, stop.clone())))
        .collect();
    let mut total = Tally::default();
    for t in tasks {
        let t = t.await.expect("client");
        total.ops += t.ops;
        total.local_hits += t.local_hits;
        total.errors += t.errors;
        total.lat_us.extend(t.lat_us);
    }
    let secs = started.elapsed().as_secs_f64();
    let rps = total.ops as f64 / secs;
    let local = total.local_hits as f64 / total.ops.max(1) as f64;
    total.lat_us.sort_unstable();
    let pct = |p: f64| {
        let n = total.lat_us.len();
        if n == 0 {
            0
        } else {
            total.lat_us[((n as f64 * p) as usize).min(n - 1)]
        }
    };
    let (p50, p99) = (pct(0.50), pct(0.99));
    let errors = total.errors;
    if o.json {
        println!("{{\"ops\":{},\"seconds\":{secs:.3},\"ops_per_sec\":{rps:.0},\"local_hit_ratio\":{local:.4},\"errors\":{errors},\"p50_us\":{p50},\"p99_us\":{p99}}}", total.ops);
    } else {
        println!(
            "{} ops in {secs:.2} s: {rps:.0} ops/s, local hit ratio {local:.4}, {errors} errors, p50 {p50} us, p99 {p99} us",
            total.ops
        );
    }
}

async fn preload(o: &Opts) {
    let mut c = Conn::open(&o.addr).await;
    let value = "v".repeat(o.value);
    let started = Instant::now();
    let batch = 1000u64;
    let mut n = 1;
    while n <= o.keys {
        let mut out = BytesMut::new();
        let end = (n + batch).min(o.keys + 1);
        for k in n..end {
            out.extend_from_slice(Request::from_args(&["SET", &format!("key:{k}"), &value]).raw());
        }
        c.s.write_all(&out).await.expect("write");
        for _ in n..end {
            c.frame().await;
        }
        n = end;
        if n % 100_000 == 1 {
            eprintln!("preload: {} of {} keys", n - 1, o.keys);
        }
    }
    eprintln!(
        "preload: {} keys in {:.1} s",
        o.keys,
        started.elapsed().as_secs_f64()
    );
}

/// A tracking client of Hive reads a key; a write on the node changes it; the time from the
/// write's reply to the invalidation's arrival is one sample.
async fn delay(o: &Opts) {
    let mut reader = Conn::open(&o.addr).await;
    reader.call(&["HELLO", "3"]).await;
    reader.call(&["CLIENT", "TRACKING", "on"]).await;
    let mut writer = Conn::open(&o.node).await;
    let mut us: Vec<f64> = Vec::with_capacity(o.samples);
    for i in 0..o.samples {
        let key = format!("delay:{}", i % 16);
        reader.call(&["GET", &key]).await;
        writer.call(&["SET", &key, &i.to_string()]).await;
        let acked = Instant::now();
        let deadline = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let f = reader.frame().await;
                if invalidated(&f).is_some() {
                    return;
                }
            }
        });
        deadline.await.expect("an invalidation within 5 s");
        us.push(acked.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(f64::total_cmp);
    let q = |p: f64| us[((us.len() as f64 * p) as usize).min(us.len() - 1)];
    if o.json {
        println!(
            "{{\"samples\":{},\"p50_us\":{:.0},\"p99_us\":{:.0},\"max_us\":{:.0}}}",
            us.len(),
            q(0.5),
            q(0.99),
            q(1.0)
        );
    } else {
        println!(
            "invalidation delay over {} writes: p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            us.len(),
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
}

/// One tracking connection that reads nothing, open until the process is killed.
async fn hold(o: &Opts) {
    let mut c = Conn::open(&o.addr).await;
    c.call(&["HELLO", "3"]).await;
    let ok = c.call(&["CLIENT", "TRACKING", "on"]).await;
    assert_eq!(&ok[..], b"+OK\r\n", "CLIENT TRACKING on");
    println!("holding");
    loop {
        c.frame().await;
    }
}
