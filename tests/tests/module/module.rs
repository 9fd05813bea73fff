//! hive-module loaded into real redis-server processes: lag and heartbeats, topology against
//! CLUSTER NODES, events, configs and errors (backups are in module_backup.rs).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use hive_local::{ClusterOpts, LocalCluster, RedisProcess};
use hive_tests::module_cluster::wait_for;
use hive_tests::module_node::{fields, int, node, text};
use hive_tests::{connect, module_so, node_url};
use redis::Value;

fn lag_ms(c: &mut redis::Connection) -> i64 {
    int(&fields(redis::cmd("HIVE.LAG").query(c).unwrap())["lag_ms"])
}

#[test]
fn lag_follows_heartbeats_and_grows_while_the_master_is_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let master = node(dir.path(), &[]);
    let port = master.port.to_string();
    let replica = node(dir.path(), &["--replicaof", "127.0.0.1", &port]);
    let mut r = connect(&node_url(&replica.addr));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lag_ms(&mut r) >= 1000 {
        assert!(Instant::now() < deadline, "lag never settled");
        thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..10 {
        let l = lag_ms(&mut r);
        assert!((0..1000).contains(&l), "steady-state lag {l} ms");
        thread::sleep(Duration::from_millis(50));
    }
    let lag = fields(redis::cmd("HIVE.LAG").query(&mut r).unwrap());
    assert_eq!(text(&lag["role"]), "replica");
    assert_eq!(text(&lag["link"]), "up");
    // Freeze the master for 3 s: no heartbeats, so the replica's lag must climb past 2 s.
    let m = master.addr.clone();
    let sleeper = thread::spawn(move || {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(3)
            .query(&mut connect(&node_url(&m)))
            .unwrap();
    });
    let frozen = Instant::now();
    let mut peak = 0;
    while frozen.elapsed() < Duration::from_secs(3) && peak <= 2000 {
        peak = peak.max(lag_ms(&mut r));
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        peak > 2000,
        "lag peaked at {peak} ms while the master slept"
    );
    sleeper.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while lag_ms(&mut r) >= 1000 {
        assert!(Instant::now() < deadline, "lag did not fall back");
        thread::sleep(Duration::from_millis(50));
    }
    let on_master = fields(
        redis::cmd("HIVE.LAG")
            .query(&mut connect(&node_url(&master.addr)))
            .unwrap(),
    );
    assert_eq!(text(&on_master["role"]), "master");
    let Value::Array(reps) = &on_master["replicas"] else {
        panic!()
    };
    let rep = fields(reps[0].clone());
    assert_eq!(int(&rep["port"]), i64::from(replica.port));
    // With heartbeats off the master's offset stands still: the replica's next ACK (one a
    // second) brings its lag to exactly 0 bytes, and its last ACK is never two seconds old.
    let mut mc = connect(&node_url(&master.addr));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hive.heartbeat-ms")
        .arg("0")
        .query(&mut mc)
        .unwrap();
    wait_for("lag_bytes at 0", Duration::from_secs(10), || {
        let on_master = fields(redis::cmd("HIVE.LAG").query(&mut mc).unwrap());
        let Value::Array(reps) = &on_master["replicas"] else {
            panic!("replicas is an array")
        };
        let rep = fields(reps[0].clone());
        let (bytes, age) = (int(&rep["lag_bytes"]), int(&rep["ack_age_ms"]));
        assert!(age <= 2000, "the replica's last ACK is {age} ms old");
        bytes == 0
    });
}

#[test]
fn topology_matches_cluster_nodes_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let so = module_so().display().to_string();
    let mut opts = ClusterOpts::new(3, 1, dir.path().to_path_buf());
    opts.extra = vec!["--loadmodule".into(), so];
    let cluster = LocalCluster::start(&opts).unwrap();
    for n in &cluster.nodes {
        // Each node is compared with its own view: gossip may not have converged elsewhere.
        let mut c = connect(&node_url(&n.addr));
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).unwrap();
        let by_id: HashMap<&str, Vec<&str>> = nodes
            .lines()
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                (p[0], p)
            })
            .collect();
        let t = fields(redis::cmd("HIVE.TOPOLOGY").query(&mut c).unwrap());
        let id = text(&t["node_id"]);
        let row = &by_id[id.as_str()];
        assert!(
            row[1].starts_with(&n.addr),
            "{id} is {}, not {}",
            row[1],
            n.addr
        );
        let role = if row[2].contains("master") {
            "master"
        } else {
            "replica"
        };
        assert_eq!(text(&t["role"]), role, "{}", n.addr);
        assert_eq!(int(&t["cluster_enabled"]), 1);
        let Value::Array(slots) = &t["slots"] else {
            panic!()
        };
        let slots: Vec<String> = slots.iter().map(text).collect();
        assert_eq!(
            slots,
            row[8..].iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{}",
            n.addr
        );
        if role == "replica" {
            let m = fields(t["master"].clone());
            let master_addr = by_id[row[3]][1].split('@').next().unwrap();
            assert_eq!(
                format!("{}:{}", text(&m["host"]), int(&m["port"])),
                master_addr
            );
            assert_eq!(text(&m["link_status"]), "up");
        } else {
            assert_eq!(t["master"], Value::Nil);
            let Value::Array(reps) = &t["replicas"] else {
                panic!()
            };
            assert_eq!(reps.len(), 1, "{} has one replica", n.addr);
        }
        assert_eq!(text(&t["module_version"]), "0.1.0");
    }
}

#[test]
fn replicaof_no_one_publishes_a_role_change_event() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, _replica, mut r, mut sub) = replica_with_subscriber(dir.path());
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    let ev = next_event(&mut sub, &mut Vec::new(), Duration::from_secs(5));
    assert_eq!(ev["event"], "role_change");
    assert_eq!(ev["role"], "master");
    assert!(ev["time_ms"].as_u64().unwrap() > 0 && ev["offset"].is_i64());
}

#[test]
fn configs_and_errors_behave_like_redis() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), &["heartbeat-ms", "50"]);
    let mut c = connect(&node_url(&n.addr));
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hive.heartbeat-ms")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["hive.heartbeat-ms", "50"]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hive.heartbeat-ms")
        .arg("200")
        .query(&mut c)
        .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["CONFIG", "SET", "hive.heartbeat-ms", "-5"],
            "hive.heartbeat-ms",
        ),
        (
            &["CONFIG", "SET", "hive.backup-hook", "rm -rf /"],
            "immutable",
        ),
        (&["HIVE.LAG", "extra"], "wrong number of arguments"),
        (&["HIVE.BACKUP", "FROB"], "unknown subcommand 'FROB'"),
        (&["HIVE.BACKUP", "START", "DIR"], "syntax error"),
        // A client cannot make the node write, read or delete outside the backup root.
        (
            &["HIVE.BACKUP", "START", "DIR", "/etc/hive-pwned"],
            "DIR must be an absolute path under",
        ),
        (
            &["HIVE.BACKUP", "START", "DIR", "relative/dir"],
            "DIR must be an absolute path under",
        ),
        (&["HIVE.BACKUP", "STATUS", "../../etc"], "no such backup"),
        (&["CONFIG", "SET", "hive.backup-dir", "/etc"], "immutable"),
        (&["HIVE.HEARTBEAT", "1"], "not by clients"),
    ];
    for (args, want) in cases {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let e = cmd.query::<()>(&mut c).unwrap_err();
        assert!(e.to_string().contains(want), "{args:?}: {e}");
    }
}

/// A master and its replica (link up), a connection to the replica, and a raw socket on the
/// replica subscribed to `__hive__:events`.
fn replica_with_subscriber(
    dir: &Path,
) -> (
    RedisProcess,
    RedisProcess,
    redis::Connection,
    std::net::TcpStream,
) {
    let master = node(dir, &[]);
    let port = master.port.to_string();
    let replica = node(dir, &["--replicaof", "127.0.0.1", &port]);
    let mut r = connect(&node_url(&replica.addr));
    wait_link_up(&mut r);
    let mut sub = std::net::TcpStream::connect(&replica.addr).unwrap();
    sub.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let subscribe = hive_common::resp::Request::from_args(&["SUBSCRIBE", "__hive__:events"]);
    sub.write_all(subscribe.raw()).unwrap();
    thread::sleep(Duration::from_millis(200));
    (master, replica, r, sub)
}

/// Waits until a replica reports its master link up.
fn wait_link_up(r: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while text(&fields(redis::cmd("HIVE.LAG").query(r).unwrap())["link"]) != "up" {
        assert!(
            Instant::now() < deadline,
            "the replica's link never came up"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the next `__hive__:events` message on a raw subscriber socket.
fn next_event(
    sub: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let mut at = 0;
        let mut found = None;
        while let Ok(Some((v, n))) = hive_common::resp::parse_value(&buf[at..]) {
            at += n;
            if found.is_some() {
                at -= n;
                break;
            }
            if let Some([kind, _, payload]) = v.as_array().and_then(|a| <&[_; 3]>::try_from(a).ok())
            {
                if kind.as_str() == Some("message") {
                    found = payload.as_str().map(|p| serde_json::from_str(p).unwrap());
                }
            }
        }
        buf.drain(..at);
        if let Some(ev) = found {
            return ev;
        }
        assert!(Instant::now() < deadline, "no event within {limit:?}");
        let mut chunk = [0u8; 4096];
        if let Ok(n) = sub.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[test]
fn killed_master_publishes_master_link_down_on_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, _replica, mut r, mut sub) = replica_with_subscriber(dir.path());
    master.kill();
    let mut buf = Vec::new();
    let ev = next_event(&mut sub, &mut buf, Duration::from_secs(10));
    assert_eq!(ev["event"], "master_link_down", "{ev}");
    assert_eq!(ev["role"], "replica");
    assert_eq!(ev["master"], master.addr.as_str());
    // While the link is down, lag keeps growing; it never reads 0.
    let a = lag_ms(&mut r);
    thread::sleep(Duration::from_millis(300));
    assert!(lag_ms(&mut r) >= a + 250);
    master.restart().unwrap();
    let ev = next_event(&mut sub, &mut buf, Duration::from_secs(15));
    assert_eq!(ev["event"], "master_link_up", "{ev}");
}

#[test]
fn paused_master_skips_heartbeats_and_survives() {
    let dir = tempfile::tempdir().unwrap();
    let master = node(dir.path(), &["heartbeat-ms", "20"]);
    let port = master.port.to_string();
    let replica = node(dir.path(), &["--replicaof", "127.0.0.1", &port]);
    let mut m = connect(&node_url(&master.addr));
    let mut r = connect(&node_url(&replica.addr));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lag_ms(&mut r) >= 500 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(50));
    }
    // Replicating while clients are paused kills a 7.0 master; the module must hold off.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query(&mut m)
        .unwrap();
    thread::sleep(Duration::from_millis(1200));
    assert!(lag_ms(&mut r) > 800, "heartbeats went on during the pause");
    let pong: String = redis::cmd("PING").query(&mut m).unwrap();
    assert_eq!(pong, "PONG");
    thread::sleep(Duration::from_millis(800));
    let deadline = Instant::now() + Duration::from_secs(5);
    while lag_ms(&mut r) >= 500 {
        assert!(
            Instant::now() < deadline,
            "heartbeats did not resume after the pause"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn master_restarts_cleanly_with_heartbeats_in_its_aof() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = node(dir.path(), &["heartbeat-ms", "20", "--appendonly", "yes"]);
    let mut m = connect(&node_url(&master.addr));
    let _: () = redis::cmd("SET")
        .arg("kept")
        .arg("yes")
        .query(&mut m)
        .unwrap();
    // The heartbeats really reach the AOF (every 20 ms, flushed within a second).
    let aof_dir = dir.path().join(format!("appendonlydir-{}", master.port));
    let in_aof = || {
        std::fs::read_dir(&aof_dir).unwrap().flatten().any(|e| {
            std::fs::read(e.path())
                .unwrap_or_default()
                .windows(14)
                .any(|w| w.eq_ignore_ascii_case(b"hive.heartbeat"))
        })
    };
    wait_for("a heartbeat in the AOF", Duration::from_secs(10), in_aof);
    drop(m);
    master.restart().unwrap();
    let mut m = connect(&node_url(&master.addr));
    // Replaying the AOF (heartbeats included) ends before the node answers commands.
    wait_for("the AOF loaded", Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut m).unwrap();
        info.lines().any(|l| l.trim() == "loading:0")
    });
    let v: String = redis::cmd("GET").arg("kept").query(&mut m).unwrap();
    assert_eq!(v, "yes");
    let t = fields(redis::cmd("HIVE.TOPOLOGY").query(&mut m).unwrap());
    assert_eq!(text(&t["role"]), "master");
}
