//! What apps written for one Redis expect of it, through Hive: SCRIPT FLUSH forgets scripts
//! everywhere, CLIENT REPLY ON|OFF|SKIP, PUBLISH counting every subscriber reached, and
//! keyspace notifications from every master, each exactly once.

mod admin;
mod pubsub;
mod scan;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hive_tests::{error_text, run, Env, GroupEnv};
use redis::Value;

#[test]
fn script_flush_forgets_scripts_on_every_master_and_in_hive() {
    let env = Env::with(3, 0, |_| {});
    let mut c = env.client();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 7")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("EVAL")
        .arg("return 8")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, [1]);
    assert_eq!(run(&mut c, &["SCRIPT", "FLUSH"]).unwrap(), Value::Okay);
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, [0]);
    // Hive does not heal a flushed script: the app sees NOSCRIPT, as from Redis, on every
    // shard's keys.
    for key in ["a", "b", "c"] {
        let e = error_text(run(&mut c, &["EVALSHA", &sha, "1", key]));
        assert!(e.starts_with("NOSCRIPT"), "{e}");
    }
}

/// Sends raw RESP and reads what comes back within `wait`.
fn raw(stream: &mut TcpStream, send: &str, wait: Duration) -> String {
    stream.write_all(send.as_bytes()).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + wait;
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn cmd(args: &[&str]) -> String {
    let mut s = format!("*{}\r\n", args.len());
    for a in args {
        s.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s
}

#[test]
fn client_reply_off_skip_on_as_redis() {
    let env = Env::with(3, 0, |_| {});
    let mut s = TcpStream::connect(env.proxy.addr).unwrap();
    let wait = Duration::from_millis(300);
    // SKIP drops its own reply and the next command's; a pipeline stays in order.
    let mut batch = cmd(&["CLIENT", "REPLY", "SKIP"]);
    batch += &cmd(&["SET", "a", "1"]);
    batch += &cmd(&["GET", "a"]);
    batch += &cmd(&["CLIENT", "REPLY", "OFF"]);
    batch += &cmd(&["SET", "b", "2"]);
    batch += &cmd(&["GET", "b"]);
    batch += &cmd(&["NOSUCHCOMMAND"]);
    batch += &cmd(&["CLIENT", "REPLY", "ON"]);
    batch += &cmd(&["GET", "b"]);
    assert_eq!(raw(&mut s, &batch, wait), "$1\r\n1\r\n+OK\r\n$1\r\n2\r\n");
    let mut c = env.client();
    assert_eq!(
        error_text(run(&mut c, &["CLIENT", "REPLY", "MAYBE"])),
        "ERR syntax error"
    );
}

/// A subscriber through Hive on a raw connection; returns its stream after the confirmation.
fn subscriber(addr: std::net::SocketAddr, args: &[&str]) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(cmd(args).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..(args.len() - 1) * 6 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
    }
    r
}

fn standalone() -> (tempfile::TempDir, hive_local::RedisProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = hive_tests::single_node(&dir, false);
    (dir, node)
}

fn publish_counts(addr: std::net::SocketAddr, url: &str) {
    // Subscribers land on different masters (by client id); each counts once.
    let subs: Vec<_> = (0..5)
        .map(|_| subscriber(addr, &["SUBSCRIBE", "news"]))
        .collect();
    let pats: Vec<_> = (0..2)
        .map(|_| subscriber(addr, &["PSUBSCRIBE", "ne*"]))
        .collect();
    // A subscriber to every channel also holds connections to every master (it can see
    // keyspace notifications); it still counts once.
    let all = subscriber(addr, &["PSUBSCRIBE", "*"]);
    let mut c = hive_tests::connect(url);
    let n: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hi")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 8);
    let n: i64 = redis::cmd("PUBLISH")
        .arg("other")
        .arg("hi")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    // PUBSUB counts the clients, as one Redis with the same subscribers would (Hive's own
    // subscriber and keyspace connections on the nodes are not what a client asks about).
    let (_d, node) = standalone();
    let single = std::net::SocketAddr::from(([127, 0, 0, 1], node.port));
    let same: Vec<_> = [
        &["SUBSCRIBE", "news"][..],
        &["SUBSCRIBE", "news"],
        &["SUBSCRIBE", "news"],
        &["SUBSCRIBE", "news"],
        &["SUBSCRIBE", "news"],
        &["PSUBSCRIBE", "ne*"],
        &["PSUBSCRIBE", "ne*"],
        &["PSUBSCRIBE", "*"],
    ]
    .iter()
    .map(|a| subscriber(single, a))
    .collect();
    let mut o = hive_tests::connect(&hive_tests::node_url(&single.to_string()));
    for args in [
        &["PUBSUB", "NUMSUB", "news", "other", "ne*"][..],
        &["PUBSUB", "NUMPAT"],
    ] {
        let (a, b) = (run(&mut c, args), run(&mut o, args));
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{args:?}");
    }
    let n: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut c).unwrap();
    assert_eq!(n, 2);
    drop(same);
    drop(subs);
    drop(pats);
    drop(all);
    // Gone subscribers leave the count (once the proxy has seen them close).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("hi")
            .query(&mut c)
            .unwrap();
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still {n} receivers");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn publish_counts_every_hive_subscriber_in_cluster_mode() {
    let env = Env::with(3, 0, |_| {});
    publish_counts(env.proxy.addr, &env.url());
}

#[test]
fn publish_counts_every_hive_subscriber_in_sentinel_and_static_modes() {
    let env = GroupEnv::sentinel(2, None, |_| {});
    publish_counts(env.proxy.addr, &env.url());
    let env = GroupEnv::statik(3, |_| {});
    publish_counts(env.proxy.addr, &env.url());
}

/// Reads messages from `r` until `want` keys each have an event (or the time is up); returns
/// how many events each key got.
fn collect_events(
    r: &mut BufReader<TcpStream>,
    event: &str,
    want: usize,
    limit: Duration,
) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    let deadline = Instant::now() + limit;
    r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // pmessage frames: *4, $8, pmessage, $n, pattern, $n, channel, $n, key
    let mut lines: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => lines.push(line.trim_end().to_string()),
            Err(_) => {
                if seen.len() >= want {
                    // Quiet for a moment with every key seen: duplicates would have come.
                    break;
                }
                continue;
            }
        }
        if lines.len() == 9 {
            if lines[6].ends_with(&format!(":{event}")) {
                *seen.entry(lines[8].clone()).or_insert(0) += 1;
            }
            lines.clear();
        }
    }
    seen
}

/// The masters the proxy routes to now.
fn masters(env: &Env) -> Vec<String> {
    let topo = env.proxy.shared.plane.topology.load();
    topo.map.shards().iter().map(|s| s.master.clone()).collect()
}

fn keyspace_events_once(env: &Env, round: &str) {
    let mut r = subscriber(env.proxy.addr, &["PSUBSCRIBE", "__keyevent@0__:*"]);
    // The keyspace connections are made with the subscription; wait until every master has it.
    hive_tests::module_cluster::wait_for(
        "a pattern on every master",
        Duration::from_secs(10),
        || {
            masters(env).iter().all(|m| {
                let mut n = hive_tests::connect(&hive_tests::node_url(m));
                let v: i64 = redis::cmd("PUBSUB")
                    .arg("NUMPAT")
                    .query(&mut n)
                    .unwrap_or(0);
                v >= 1
            })
        },
    );
    let mut c = env.client();
    let keys: Vec<String> = (0..1000).map(|i| format!("{round}:{i}")).collect();
    let mut p = redis::pipe();
    for k in &keys {
        p.cmd("SET").arg(k).arg(1).arg("PX").arg(300).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    let sets = collect_events(&mut r, "set", 1000, Duration::from_secs(20));
    assert_eq!(
        sets.len(),
        1000,
        "{round}: set events for {} of 1000 keys",
        sets.len()
    );
    assert!(sets.values().all(|&n| n == 1), "a set event came twice");
    let expired = collect_events(&mut r, "expired", 1000, Duration::from_secs(30));
    assert_eq!(
        expired.len(),
        1000,
        "expired events for {} keys",
        expired.len()
    );
    assert!(
        expired.values().all(|&n| n == 1),
        "an expired event came twice"
    );
}

#[test]
fn keyspace_notifications_from_every_master_exactly_once_also_after_failover() {
    let env = Env::with(3, 1, |_| {});
    // As in each node's redis.conf.
    for a in env.cluster.addrs() {
        let mut n = hive_tests::connect(&hive_tests::node_url(&a));
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("KEA")
            .query(&mut n)
            .unwrap();
    }
    keyspace_events_once(&env, "before");
    // A replica takes over; its old master becomes a replica.
    let before = masters(&env);
    let replica = env
        .cluster
        .addrs()
        .into_iter()
        .find(|a| !before.contains(a))
        .unwrap();
    let mut r = hive_tests::connect(&hive_tests::node_url(&replica));
    let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut r).unwrap();
    let mut asked = std::time::Instant::now();
    hive_tests::module_cluster::wait_for(
        "the promotion seen by Hive",
        Duration::from_secs(40),
        || {
            if masters(&env).contains(&replica) {
                return true;
            }
            // Redis aborts a manual failover that does not complete within 5 s (seen in CI,
            // with the other tests loading both cores): ask again, as an operator would.
            if asked.elapsed() > Duration::from_secs(6) {
                let _: redis::RedisResult<()> = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut r);
                asked = std::time::Instant::now();
            }
            false
        },
    );
    keyspace_events_once(&env, "after");
}

#[test]
fn publish_counts_follow_subscriptions_one_at_a_time() {
    let env = Env::with(3, 0, |_| {});
    let mut s = TcpStream::connect(env.proxy.addr).unwrap();
    // 2,000 SUBSCRIBEs of one channel each, then UNSUBSCRIBE of half of them, pipelined.
    let mut batch = String::new();
    for i in 0..2000 {
        batch += &cmd(&["SUBSCRIBE", &format!("ch:{i}")]);
    }
    for i in (0..2000).step_by(2) {
        batch += &cmd(&["UNSUBSCRIBE", &format!("ch:{i}")]);
    }
    batch += &cmd(&["PSUBSCRIBE", "ch:1*"]);
    s.write_all(batch.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Read up to the PSUBSCRIBE confirmation: every command before it has been handled.
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("psubscribe") {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    let mut c = env.client();
    let count = |c: &mut redis::Connection, ch: &str| -> i64 {
        redis::cmd("PUBLISH").arg(ch).arg("x").query(c).unwrap()
    };
    assert_eq!(count(&mut c, "ch:0"), 0);
    assert_eq!(count(&mut c, "ch:3"), 1);
    assert_eq!(count(&mut c, "ch:11"), 2, "channel and pattern");
    assert_eq!(count(&mut c, "ch:10"), 1, "pattern only");
    drop(r);
}

/// SLOWLOG through Hive follows `CONFIG SET slowlog-log-slower-than` / `slowlog-max-len` as one
/// Redis does, and keeps arguments byte for byte (non-ASCII included).
#[test]
fn slowlog_follows_config_set_as_redis() {
    let env = Env::with(2, 0, |_| {});
    let (_d, node) = standalone();
    let mut h = env.client();
    let mut o = hive_tests::connect(&hive_tests::node_url(&format!("127.0.0.1:{}", node.port)));
    for c in [&mut h, &mut o] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(0)
            .query(c)
            .unwrap();
        let _: () = redis::cmd("SLOWLOG").arg("RESET").query(c).unwrap();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("h\u{e9}llo\u{1}".as_bytes())
            .query(c)
            .unwrap();
    }
    let args = |c: &mut redis::Connection| -> Vec<Vec<u8>> {
        let v: Vec<Value> = redis::cmd("SLOWLOG").arg("GET").arg(1).query(c).unwrap();
        let Value::Array(entry) = &v[0] else {
            panic!("{v:?}")
        };
        redis::from_redis_value(&entry[3]).unwrap()
    };
    let got = args(&mut h);
    assert_eq!(got, args(&mut o));
    assert_eq!(got[2], "h\u{e9}llo\u{1}".as_bytes());
    for c in [&mut h, &mut o] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-max-len")
            .arg(2)
            .query(c)
            .unwrap();
        for i in 0..5 {
            let _: () = redis::cmd("SET").arg("k").arg(i).query(c).unwrap();
        }
    }
    let len =
        |c: &mut redis::Connection| -> i64 { redis::cmd("SLOWLOG").arg("LEN").query(c).unwrap() };
    assert_eq!(len(&mut h), 2);
    assert_eq!(len(&mut h), len(&mut o));
    for c in [&mut h, &mut o] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(-1)
            .query(c)
            .unwrap();
        let _: () = redis::cmd("SLOWLOG").arg("RESET").query(c).unwrap();
        let _: () = redis::cmd("SET").arg("k").arg(1).query(c).unwrap();
    }
    assert_eq!(len(&mut h), 0);
    assert_eq!(len(&mut o), 0);
}
