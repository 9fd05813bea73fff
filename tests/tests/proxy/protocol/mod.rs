//! Bad input and connection limits: the proxy answers like Redis, closes where Redis closes,
//! never panics, and other clients are unaffected.

mod inline_pipeline;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hive_proxy::metrics::Stats;
use hive_tests::module_cluster::wait_for;
use hive_tests::Env;
use rand::{Rng, SeedableRng};

/// Writes `input`, then reads until the proxy closes the connection or `limit` passes.
fn exchange(addr: SocketAddr, input: &[u8], limit: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let _ = s.write_all(input);
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => {}
        }
    }
    (out, false)
}

fn ping_ok(env: &Env) {
    let mut c = env.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn protocol_errors_reply_like_redis_then_close() {
    let env = Env::with(1, 0, |c| c.proxy.max_bulk_len = 1024 * 1024);
    let cases: &[(&[u8], &str)] = &[
        (
            b"*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n$1048577\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2147483648\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"SET \"abc\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        // Replies already owed come first, in order.
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n",
            "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (input, want) in cases {
        let (out, closed) = exchange(env.proxy.addr, input, Duration::from_secs(5));
        assert_eq!(
            String::from_utf8_lossy(&out),
            *want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            closed,
            "connection must close after {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut big = vec![b'a'; 70 * 1024];
    big.extend_from_slice(b"\r\n");
    let (out, closed) = exchange(env.proxy.addr, &big, Duration::from_secs(5));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR Protocol error: too big inline request\r\n"
    );
    assert!(closed);
    ping_ok(&env);
}

#[test]
fn inline_and_empty_requests_work() {
    let env = Env::with(1, 0, |_| {});
    let (out, _) = exchange(
        env.proxy.addr,
        b"SET greeting \"hello world\"\r\n\r\n*0\r\nGET greeting\r\nPING\r\n",
        Duration::from_millis(500),
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "+OK\r\n$11\r\nhello world\r\n+PONG\r\n"
    );
}

#[test]
fn client_closing_mid_pipeline_leaves_proxy_healthy() {
    let env = Env::cluster();
    for round in 0..5 {
        let mut s = TcpStream::connect(env.proxy.addr).unwrap();
        let mut req = Vec::new();
        for i in 0..5000 {
            req.extend_from_slice(
                format!("*3\r\n$3\r\nSET\r\n$6\r\nk{round}{i:04}\r\n$1\r\nv\r\n").as_bytes(),
            );
        }
        s.write_all(&req).unwrap();
        // Half a request, then gone without reading a reply.
        s.write_all(b"*2\r\n$3\r\nGET\r\n$5\r\nab").unwrap();
        drop(s);
    }
    ping_ok(&env);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").query(&mut env.client()).unwrap();
        let n: u64 = hive_common::info::field(&info, "connected_clients")
            .unwrap()
            .parse()
            .unwrap();
        // The INFO connection itself is the one left.
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} clients still connected");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn random_garbage_never_takes_the_proxy_down() {
    let env = Env::with(1, 0, |c| c.proxy.max_bulk_len = 64 * 1024);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let pieces: &[&[u8]] = &[
        b"*",
        b"$",
        b"\r\n",
        b"-1",
        b"3",
        b"99999999999",
        b"GET",
        b"\"",
        b"'",
        b"{",
        b":",
        b"+",
        b"\x00",
        b"\xff",
        b" ",
    ];
    for _ in 0..300 {
        let mut input = Vec::new();
        for _ in 0..rng.gen_range(1..40) {
            input.extend_from_slice(pieces[rng.gen_range(0..pieces.len())]);
        }
        let _ = exchange(env.proxy.addr, &input, Duration::from_millis(30));
    }
    // A panic inside a client task would be swallowed by tokio: check that none happened and
    // that every garbage connection gave its slot back (a leak would show as a count above 0).
    let stats = &env.proxy.shared.stats;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Stats::get(&stats.connected_clients) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        Stats::get(&stats.connected_clients),
        0,
        "leaked client slots"
    );
    assert!(
        env.proxy.shared.clients.all().is_empty(),
        "leaked CLIENT LIST entries"
    );
    assert_eq!(
        Stats::get(&stats.client_panics),
        0,
        "a client task panicked"
    );
    assert!(Stats::get(&stats.connections_received) >= 300);
    ping_ok(&env);
}

#[test]
fn max_clients_is_enforced() {
    let env = Env::with(1, 0, |c| c.proxy.max_clients = 2);
    let _a = env.client();
    let _b = env.client();
    let clients = || Stats::get(&env.proxy.shared.stats.connected_clients);
    wait_for("both clients admitted", Duration::from_secs(10), || {
        clients() == 2
    });
    let (out, closed) = exchange(env.proxy.addr, b"PING\r\n", Duration::from_secs(3));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR max number of clients reached\r\n"
    );
    assert!(closed);
    drop(_a);
    wait_for(
        "the first client's slot given back",
        Duration::from_secs(10),
        || clients() == 1,
    );
    ping_ok(&env);
}

#[test]
fn idle_clients_are_closed() {
    let env = Env::with(1, 0, |c| c.proxy.client_idle_timeout_s = 1);
    let started = Instant::now();
    let (out, closed) = exchange(env.proxy.addr, b"PING\r\n", Duration::from_secs(5));
    assert_eq!(out, b"+PONG\r\n");
    assert!(closed, "an idle client must be closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
}

#[test]
fn backend_command_timeout_fails_the_request_and_recovers() {
    let env = Env::with(1, 0, |c| c.backend.command_timeout_ms = 300);
    let mut c = env.client();
    // A script that keeps the node busy for 1 s: no reply within the 300 ms timeout.
    let busy = "local t = redis.call('TIME'); local s = t[1]*1000000 + t[2]; \
                while true do local n = redis.call('TIME'); if n[1]*1000000 + n[2] - s > 1000000 then break end end; return 1";
    let started = Instant::now();
    let e = redis::cmd("EVAL")
        .arg(busy)
        .arg(1)
        .arg("k")
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("no reply within 300 ms"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "answered after {:?}",
        started.elapsed()
    );
    // Once the node is free again, the proxy reconnects and serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match redis::cmd("SET").arg("after").arg(1).query::<()>(&mut c) {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node stopped with SIGSTOP: the request fails at `command_timeout_ms` (± 100 ms), counted
/// from when it was written, and the proxy serves again once the node runs.
#[test]
fn backend_command_timeout_is_exact_for_a_stopped_node() {
    let env = Env::with(1, 0, |c| c.backend.command_timeout_ms = 1000);
    let mut c = env.client();
    let _: () = redis::cmd("SET").arg("warm").arg(1).query(&mut c).unwrap();
    let pid = {
        let mut n = hive_tests::connect(&hive_tests::node_url(&env.cluster.nodes[0].addr));
        let info: String = redis::cmd("INFO").arg("server").query(&mut n).unwrap();
        hive_common::info::field(&info, "process_id")
            .unwrap()
            .to_string()
    };
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    // Idle first, so the connection's timer is armed before the request exists.
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let e = redis::cmd("GET")
        .arg("warm")
        .query::<Option<i64>>(&mut c)
        .unwrap_err();
    let took = started.elapsed();
    signal("-CONT");
    assert!(e.to_string().contains("no reply within 1000 ms"), "{e}");
    assert!(
        took >= Duration::from_millis(950) && took <= Duration::from_millis(1100),
        "failed after {took:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis::cmd("GET")
        .arg("warm")
        .query::<Option<i64>>(&mut c)
        .is_err()
    {
        assert!(Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Redis's edges, compared byte for byte with a real node that has a password: the limits for
/// unauthenticated clients, and an inline line with a NUL, which never runs.
#[test]
fn protocol_edges_match_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = hive_tests::single_node_with(&dir, &["--requirepass", "pw"]);
    let env = Env::with(1, 0, |c| c.proxy.requirepass = Some("pw".into()));
    let node_addr: std::net::SocketAddr = node.addr.parse().unwrap();
    for input in [
        &b"*11\r\n"[..],
        b"*1\r\n$16385\r\n",
        b"PING\x00\r\nPING\r\n",
        b"*3\r\n$4\r\nAUTH\r\n$1\r\nx\r\n$1\r\ny\r\n*11\r\n",
    ] {
        let (want, want_closed) = exchange(node_addr, input, Duration::from_millis(500));
        let (got, got_closed) = exchange(env.proxy.addr, input, Duration::from_millis(500));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{input:?}"
        );
        assert_eq!(got_closed, want_closed, "{input:?}");
    }
}

/// 50 clients each declare a 500 MB argument and send nothing more, against a proxy whose
/// address space is limited to 2 GB: it must not reserve what they declare. It stays up and
/// serves another client.
#[test]
fn declared_bulk_sizes_are_not_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let node = hive_tests::single_node_with(&dir, &[]);
    let port = hive_tests::free_port_pair().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let cmd = format!(
        "ulimit -v 2097152; exec {} proxy --static {} --listen {listen} --threads 1",
        hive_tests::hive_bin().display(),
        node.addr
    );
    let mut hive = std::process::Command::new("bash")
        .args(["-c", &cmd])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the proxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stalled: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\nabc")
                .unwrap();
            s
        })
        .collect();
    // Every stalled client is in (with the one asking, 51), its declared size read.
    let mut probe = hive_tests::connect(&format!("redis://{addr}/"));
    wait_for(
        "the stalled clients accepted",
        Duration::from_secs(10),
        || {
            let info: String = redis::cmd("INFO").query(&mut probe).unwrap();
            hive_common::info::field(&info, "connected_clients") == Some("51")
        },
    );
    drop(probe);
    assert!(hive.try_wait().unwrap().is_none(), "the proxy died");
    let mut c = hive_tests::connect(&format!("redis://{addr}/"));
    let _: () = redis::cmd("SET")
        .arg("other")
        .arg("ok")
        .query(&mut c)
        .unwrap();
    let v: String = redis::cmd("GET").arg("other").query(&mut c).unwrap();
    assert_eq!(v, "ok");
    drop(stalled);
    let _ = hive.kill();
    let _ = hive.wait();
}
