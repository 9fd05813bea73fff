//! Client connections over `tokio::io::duplex`, with scripted nodes behind an in-memory dialer:
//! reply ordering, MOVED/ASK (including Redis's host-less MOVED), protocol errors, and the
//! client slot a panicking task gives back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use hive_common::resp::{write_bulk, Request, RequestDecoder};
use hive_common::topology::{Shard, ShardMap, SlotRange};
use hive_common::Slot;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::{guarded, start, ClientSlot};
use crate::config::Config;
use crate::metrics::Stats;
use crate::state::registry::ClientEntry;
use crate::state::Shared;
use crate::stream::{BoxStream, DialFuture, Dialer};

/// What a scripted node has seen on one connection.
#[derive(Default)]
struct NodeConn {
    asking: bool,
}

/// A node's answer to one request.
type Script = fn(&mut NodeConn, &Request) -> Vec<u8>;

struct Node {
    script: Script,
    /// Held before each batch of replies (a slow node).
    delay: Duration,
}

/// Nodes by address, reached over in-memory streams; every request is logged as `addr cmd`.
#[derive(Default)]
struct FakeNodes {
    nodes: HashMap<String, Node>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Dialer for FakeNodes {
    fn dial<'a>(&'a self, addr: &'a str, _timeout: Duration) -> DialFuture<'a> {
        Box::pin(async move {
            let node = self.nodes.get(addr).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, addr.to_string())
            })?;
            let (ours, theirs) = tokio::io::duplex(1 << 16);
            let (script, delay, log) = (node.script, node.delay, self.log.clone());
            tokio::spawn(serve_node(theirs, addr.to_string(), script, delay, log));
            Ok(Box::new(ours) as BoxStream)
        })
    }
}

async fn serve_node(
    mut s: DuplexStream,
    addr: String,
    script: Script,
    delay: Duration,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut conn = NodeConn::default();
    loop {
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut out = Vec::new();
        while let Ok(Some(req)) = dec.decode(&mut buf) {
            let words: Vec<String> = req
                .args()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            log.lock()
                .unwrap()
                .push(format!("{addr} {}", words.join(" ")));
            out.extend(script(&mut conn, &req));
        }
        tokio::time::sleep(delay).await;
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn bulk(v: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_bulk(&mut out, v);
    out.to_vec()
}

/// GET answers the key's own name; MGET each key's name; ASKING is remembered.
fn echo(conn: &mut NodeConn, req: &Request) -> Vec<u8> {
    let cmd = req.arg(0).to_ascii_uppercase();
    match &cmd[..] {
        b"ASKING" => {
            conn.asking = true;
            b"+OK\r\n".to_vec()
        }
        b"GET" => bulk(req.arg(1)),
        b"MGET" => {
            let mut out = format!("*{}\r\n", req.argc() - 1).into_bytes();
            for k in req.args().skip(1) {
                out.extend(bulk(k));
            }
            out
        }
        _ => b"-ERR unexpected\r\n".to_vec(),
    }
}

/// Node A of the redirect test: `moved` keys went to :7001 on A's own host (Redis leaves
/// the host out when it does not know it), `ask` keys are being imported by 127.0.0.3:7002.
fn redirecting(conn: &mut NodeConn, req: &Request) -> Vec<u8> {
    let key = req.arg(1);
    let slot = Slot::for_key(key).get();
    if key.starts_with(b"moved") {
        return format!("-MOVED {slot} :7001\r\n").into_bytes();
    }
    if key.starts_with(b"ask") {
        return format!("-ASK {slot} 127.0.0.3:7002\r\n").into_bytes();
    }
    echo(conn, req)
}

/// The importing node: serves a key only after ASKING, else sends the client back.
fn importing(conn: &mut NodeConn, req: &Request) -> Vec<u8> {
    if req.arg(0).eq_ignore_ascii_case(b"get") && !conn.asking {
        let slot = Slot::for_key(req.arg(1)).get();
        return format!("-MOVED {slot} 127.0.0.2:7000\r\n").into_bytes();
    }
    conn.asking = false;
    echo(conn, req)
}

/// A cluster-mode proxy whose two shards split the slots in half: A (0-8191) and B.
fn proxy(nodes: Vec<(&str, Node)>) -> (Arc<Shared>, Arc<Mutex<Vec<String>>>) {
    let dialer = FakeNodes {
        nodes: nodes.into_iter().map(|(a, n)| (a.to_string(), n)).collect(),
        log: Arc::default(),
    };
    let log = dialer.log.clone();
    let mut config = Config::default();
    config.backend.failover_hold_ms = 500;
    let shared = Shared::with_dialer(config, Arc::new(dialer)).unwrap();
    let shard = |master: &str, start, end| {
        (
            Shard {
                master: master.into(),
                replicas: Vec::new(),
            },
            vec![SlotRange { start, end }],
        )
    };
    let map = ShardMap::new(vec![
        shard("127.0.0.2:7000", 0, 8191),
        shard("127.0.0.3:7000", 8192, 16383),
    ])
    .unwrap();
    shared.plane.topology.install(map, Vec::new());
    (shared, log)
}

fn node(script: Script, delay_ms: u64) -> Node {
    Node {
        script,
        delay: Duration::from_millis(delay_ms),
    }
}

/// A client connected to the proxy over an in-memory stream.
fn connect(shared: &Arc<Shared>) -> DuplexStream {
    let (client, proxy_end) = tokio::io::duplex(1 << 16);
    let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let (_stop, shutdown) = watch::channel(false);
    tokio::spawn(start(proxy_end, addr, addr, shared.clone(), shutdown));
    client
}

/// Reads exactly `want.len()` bytes (or fails after 5 s) and compares.
async fn expect(c: &mut DuplexStream, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
        .await
        .expect("the proxy answered in time")
        .expect("the connection stayed open");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

/// A key of the given prefix whose slot is in `lo..=hi`.
fn key_in(prefix: &str, lo: u16, hi: u16) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| (lo..=hi).contains(&Slot::for_key(k.as_bytes()).get()))
        .unwrap()
}

#[tokio::test]
async fn client_replies_in_request_order_across_slow_and_fast_nodes() {
    let (shared, _) = proxy(vec![
        ("127.0.0.2:7000", node(echo, 40)),
        ("127.0.0.3:7000", node(echo, 0)),
    ]);
    let (a1, a2) = (key_in("a", 0, 8191), key_in("x", 0, 8191));
    let (b1, b2) = (key_in("b", 8192, 16383), key_in("y", 8192, 16383));
    let mut c = connect(&shared);
    let mut pipeline = Vec::new();
    let mut want = Vec::new();
    for k in [&a1, &b1, &a2, &b2] {
        pipeline.extend_from_slice(Request::from_args(&["GET", k]).raw());
        want.extend(bulk(k.as_bytes()));
    }
    pipeline.extend_from_slice(Request::from_args(&["PING"]).raw());
    want.extend_from_slice(b"+PONG\r\n");
    // Split over both nodes and merged back in key order.
    pipeline.extend_from_slice(Request::from_args(&["MGET", &b1, &a1, &b2]).raw());
    want.extend_from_slice(b"*3\r\n");
    for k in [&b1, &a1, &b2] {
        want.extend(bulk(k.as_bytes()));
    }
    c.write_all(&pipeline).await.unwrap();
    expect(&mut c, &want).await;
}

#[tokio::test]
async fn client_follows_moved_and_ask_without_showing_them() {
    let (shared, log) = proxy(vec![
        ("127.0.0.2:7000", node(redirecting, 0)),
        ("127.0.0.2:7001", node(echo, 0)),
        ("127.0.0.3:7002", node(importing, 0)),
    ]);
    let moved = key_in("moved", 0, 8191);
    let ask = key_in("ask", 0, 8191);
    let mut c = connect(&shared);
    let mut req = Request::from_args(&["GET", &moved]).raw().to_vec();
    req.extend_from_slice(Request::from_args(&["GET", &ask]).raw());
    c.write_all(&req).await.unwrap();
    let mut want = bulk(moved.as_bytes());
    want.extend(bulk(ask.as_bytes()));
    expect(&mut c, &want).await;
    let log = log.lock().unwrap().clone();
    // The host-less MOVED went to the answering node's host, not to a guessed one.
    assert!(
        log.contains(&format!("127.0.0.2:7001 GET {moved}")),
        "{log:?}"
    );
    let asking = log.iter().position(|l| l == "127.0.0.3:7002 ASKING");
    let get = log
        .iter()
        .position(|l| *l == format!("127.0.0.3:7002 GET {ask}"));
    assert!(asking.is_some() && asking < get, "ASKING first: {log:?}");
    assert_eq!(Stats::get(&shared.stats.upstream.moved), 1);
    assert_eq!(Stats::get(&shared.stats.upstream.ask), 1);
}

#[tokio::test]
async fn client_protocol_error_answers_then_closes() {
    let (shared, _) = proxy(vec![("127.0.0.2:7000", node(echo, 0))]);
    let mut c = connect(&shared);
    c.write_all(b"PING\r\n*1\r\n$x\r\n").await.unwrap();
    expect(
        &mut c,
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
        .await
        .expect("the proxy closed the connection")
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn client_slot_is_given_back_when_its_task_panics() {
    let (shared, _) = proxy(vec![]);
    let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let slot = ClientSlot::take(&shared, Arc::new(ClientEntry::new(9, addr, addr)));
    assert_eq!(Stats::get(&shared.stats.connected_clients), 1);
    assert_eq!(shared.clients.all().len(), 1);
    let task = tokio::spawn(guarded(shared.clone(), slot, async {
        panic!("a bug in one client's task");
    }));
    // The panic is caught inside the task: it ends normally.
    task.await.expect("the panic does not escape the task");
    assert_eq!(Stats::get(&shared.stats.connected_clients), 0);
    assert!(shared.clients.all().is_empty());
    assert_eq!(Stats::get(&shared.stats.client_panics), 1);
}

/// Reads what the proxy has sent so far, at least one byte (or fails after 5 s).
async fn read_some(c: &mut DuplexStream) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("the proxy answered in time")
        .expect("the connection stayed open");
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn client_batch_goes_out_in_one_write_when_the_rest_is_a_round_trip_away() {
    let (shared, _) = proxy(vec![
        ("127.0.0.2:7000", node(echo, 40)),
        ("127.0.0.3:7000", node(echo, 0)),
    ]);
    let (a1, b1, b2) = (
        key_in("a", 0, 8191),
        key_in("b", 8192, 16383),
        key_in("y", 8192, 16383),
    );
    let mut c = connect(&shared);
    let mut pipeline = Vec::new();
    let mut want = Vec::new();
    for k in [&b1, &a1, &b2] {
        pipeline.extend_from_slice(Request::from_args(&["GET", k]).raw());
        want.extend(bulk(k.as_bytes()));
    }
    c.write_all(&pipeline).await.unwrap();
    // B's replies are ready 40 ms before A's: held back, they come with it, in order.
    assert_eq!(
        String::from_utf8_lossy(&read_some(&mut c).await),
        String::from_utf8_lossy(&want)
    );
}

#[tokio::test]
async fn client_ready_replies_go_out_at_once_before_a_blocking_command() {
    let (shared, _) = proxy(vec![
        ("127.0.0.2:7000", node(echo, 1000)),
        ("127.0.0.3:7000", node(echo, 0)),
    ]);
    let (a1, b1) = (key_in("a", 0, 8191), key_in("b", 8192, 16383));
    let mut c = connect(&shared);
    let mut pipeline = Request::from_args(&["GET", &b1]).raw().to_vec();
    pipeline.extend_from_slice(Request::from_args(&["BLPOP", &a1, "0"]).raw());
    c.write_all(&pipeline).await.unwrap();
    // A blocking command may wait for ever: the reply before it is not held for it.
    assert_eq!(
        String::from_utf8_lossy(&read_some(&mut c).await),
        String::from_utf8_lossy(&bulk(b1.as_bytes()))
    );
}

#[tokio::test]
async fn client_replies_of_an_earlier_batch_do_not_wait_for_a_later_one() {
    let (shared, log) = proxy(vec![
        ("127.0.0.2:7000", node(echo, 1000)),
        ("127.0.0.3:7000", node(echo, 40)),
    ]);
    let (a1, b1) = (key_in("a", 0, 8191), key_in("b", 8192, 16383));
    let mut c = connect(&shared);
    c.write_all(Request::from_args(&["GET", &b1]).raw())
        .await
        .unwrap();
    // Once B has the first request, the second is another batch.
    let sent = format!("127.0.0.3:7000 GET {b1}");
    tokio::time::timeout(Duration::from_secs(5), async {
        while !log.lock().unwrap().contains(&sent) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("B got the first request");
    c.write_all(Request::from_args(&["GET", &a1]).raw())
        .await
        .unwrap();
    // B answers 40 ms later, A a second later: B's reply goes when it is ready.
    assert_eq!(
        String::from_utf8_lossy(&read_some(&mut c).await),
        String::from_utf8_lossy(&bulk(b1.as_bytes()))
    );
}
