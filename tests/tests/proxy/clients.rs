//! Real client libraries through the proxy: redis-py (both client classes, RESP2 and RESP3) in
//! every backend mode, the `redis` crate's async pub/sub and blocking calls, subscriptions
//! across a failover, and the subscriber output limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hive_tests::{heavy, python, Env, GroupEnv};

/// Runs a script of `tests/py` with the test venv's Python; (success, stdout, stderr), stdout
/// also printed.
fn run_py(script: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    (
        out.status.success(),
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_compat(port: u16, mode: &str, extra: &[&str]) {
    let port_s = port.to_string();
    let mut args = vec!["--port", &port_s, "--mode", mode];
    args.extend(extra);
    let (ok, stdout, stderr) = run_py("py/compat.py", &args);
    assert!(
        ok && stdout.contains("ALL OK"),
        "redis-py suite failed in {mode} mode:\n{stdout}\n{stderr}"
    );
}

fn node_id(addr: &str) -> String {
    let mut c = hive_tests::connect(&hive_tests::node_url(addr));
    redis::cmd("CLUSTER").arg("MYID").query(&mut c).unwrap()
}

#[test]
fn redis_py_cluster_mode_including_scan_across_a_reshard() {
    let _g = heavy();
    let env = Env::cluster();
    let nodes = &env.cluster.nodes;
    // Slots move from the last master (not scanned yet at mid-scan) to the first.
    let from = node_id(&nodes[2].addr);
    let to = node_id(&nodes[0].addr);
    run_compat(
        env.port(),
        "cluster",
        &[
            "--reshard",
            &nodes[0].addr,
            "--from-id",
            &from,
            "--to-id",
            &to,
        ],
    );
}

#[test]
fn redis_py_sentinel_mode() {
    let _g = heavy();
    let env = GroupEnv::sentinel(3, None, |_| {});
    run_compat(env.proxy.addr.port(), "sentinel", &[]);
}

#[test]
fn redis_py_static_mode() {
    let _g = heavy();
    let env = GroupEnv::statik(3, |_| {});
    run_compat(env.proxy.addr.port(), "static", &[]);
}

#[test]
fn rust_crate_async_pubsub_and_blocking() {
    let env = Env::cluster();
    let url = env.url();
    hive_local::block_on(async move {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut ps = client.get_async_pubsub().await.unwrap();
        ps.subscribe("news").await.unwrap();
        ps.psubscribe("sports.*").await.unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("a")
            .query_async(&mut c)
            .await
            .unwrap();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("sports.golf")
            .arg("b")
            .query_async(&mut c)
            .await
            .unwrap();
        let mut stream = ps.on_message();
        let mut got = Vec::new();
        for _ in 0..2 {
            let m = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("a message within 5 s")
                .expect("stream open");
            got.push((
                m.get_channel_name().to_string(),
                m.get_payload::<String>().unwrap(),
            ));
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                ("news".into(), "a".into()),
                ("sports.golf".into(), "b".into())
            ]
        );
        drop(stream);
        // A blocked call on one connection does not hold up another client's traffic.
        let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
        let waiter = tokio::spawn(async move {
            let r: Option<(String, String)> = redis::cmd("BLPOP")
                .arg("jobs")
                .arg(5)
                .query_async(&mut blocked)
                .await
                .unwrap();
            r
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        for i in 0..100 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(i)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "traffic stalled");
        let _: i64 = redis::cmd("RPUSH")
            .arg("jobs")
            .arg("j1")
            .query_async(&mut c)
            .await
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("BLPOP returned")
            .unwrap();
        assert_eq!(r, Some(("jobs".into(), "j1".into())));
    });
}

/// Reads one RESP frame's worth of bytes crudely: enough to see a message arrive.
fn read_some(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = vec![0u8; 4096];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn subscription_survives_killed_master() {
    let _g = heavy();
    let mut env = GroupEnv::sentinel(1, None, |_| {});
    let mut sub = TcpStream::connect(env.proxy.addr).unwrap();
    sub.write_all(b"SUBSCRIBE alerts\r\n").unwrap();
    let confirm = read_some(&mut sub, Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&confirm).contains("subscribe"));
    let old = env.routed_master(0);
    env.groups.node_mut(&old).unwrap().kill();
    // Publish until a message reaches the subscriber through the new master.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut publisher = env.client();
    loop {
        assert!(
            Instant::now() < deadline,
            "no message after the failover within 30 s"
        );
        let _: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg("alerts")
            .arg("after")
            .query(&mut publisher);
        let got = read_some(&mut sub, Duration::from_millis(300));
        if String::from_utf8_lossy(&got).contains("after") {
            break;
        }
    }
    assert_ne!(env.routed_master(0), old, "the proxy followed the failover");
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn slow_subscriber_is_disconnected_at_the_limit() {
    let _g = heavy();
    let env = GroupEnv::statik(1, |c| c.proxy.subscriber_output_limit_bytes = 1 << 20);
    let mut sub = TcpStream::connect(env.proxy.addr).unwrap();
    // A tiny receive buffer, so the kernel cannot absorb much of the flood for the client.
    sub.write_all(b"SUBSCRIBE firehose\r\n").unwrap();
    let confirm = read_some(&mut sub, Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&confirm).contains("subscribe"));
    let rss_before = rss_kb(std::process::id());
    // 64 MB published at a subscriber that never reads again.
    let payload = "x".repeat(16 * 1024);
    let mut publisher = env.client();
    let mut disconnected = false;
    for _ in 0..4096 {
        let mut p = redis::pipe();
        for _ in 0..16 {
            p.cmd("PUBLISH").arg("firehose").arg(&payload);
        }
        let counts: Vec<i64> = p.query(&mut publisher).unwrap();
        if counts.contains(&0) {
            disconnected = true;
            break;
        }
    }
    assert!(
        disconnected,
        "the subscriber was still subscribed after 1 GB of unread messages"
    );
    // The proxy runs inside this test process: its memory did not absorb the flood.
    let grown_mb = rss_kb(std::process::id()).saturating_sub(rss_before) / 1024;
    assert!(grown_mb < 64, "RSS grew by {grown_mb} MB");
    // The client sees its connection closed once it reads what was sent before.
    sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = vec![0u8; 1 << 16];
    let closed = loop {
        match sub.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "the slow subscriber's connection was not closed");
    thread::sleep(Duration::from_millis(100));
}

#[test]
fn evalsha_is_healed_after_a_node_loses_its_scripts() {
    let env = GroupEnv::statik(2, |_| {});
    let mut c = env.client();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return ARGV[1]")
        .query(&mut c)
        .unwrap();
    // As after a failover to a replica or a restart: the masters no longer have it.
    for i in 0..2 {
        let mut node = env.node(&env.routed_master(i));
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut node).unwrap();
    }
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, vec![0]);
    let v: String = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("some-key")
        .arg("healed")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "healed");
    // A script Hive never saw still gets the node's NOSCRIPT.
    let e = redis::cmd("EVALSHA")
        .arg("0123456789012345678901234567890123456789")
        .arg(0)
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("No matching script"), "{e}");
}

/// Celery with its default priority steps (kombu's BRPOP over four lists, on several shards)
/// through a 3-master cluster with `cross_slot = "emulate"`: every task's result comes back,
/// across a worker restart in the middle (tests/py/celery_queue.py).
#[test]
fn celery_default_priority_queues_through_hive() {
    let _g = heavy();
    let env = Env::with(3, 0, |c| {
        c.proxy.cross_slot = hive_proxy::config::CrossSlot::Emulate
    });
    // The lists of the default priority steps live on several shards.
    let topo = env.proxy.shared.plane.topology.load();
    let mut shards: Vec<_> = [
        "celery",
        "celery\x06\x163",
        "celery\x06\x166",
        "celery\x06\x169",
    ]
    .iter()
    .map(|k| topo.map.shard_of(hive_common::Slot::for_key(k.as_bytes())))
    .collect();
    drop(topo);
    shards.dedup();
    assert!(shards.len() > 1, "{shards:?}");
    let port = env.proxy.addr.port().to_string();
    let (ok, stdout, stderr) = run_py("py/celery_queue.py", &["--port", &port]);
    assert!(
        ok && stdout.lines().any(|l| l.starts_with("ok: ")),
        "celery through Hive failed:\n{stdout}\n{stderr}"
    );
}
