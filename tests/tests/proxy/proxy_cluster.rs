//! The proxy in front of a real 3-master + 3-replica cluster: routing, splits, pipelines,
//! local commands and redis-benchmark.

use std::process::Command;

use hive_tests::{heavy, suites, Env};
use redis::Commands;

#[test]
fn proxy_keys_land_on_their_owning_node() {
    let env = Env::cluster();
    suites::keys_land_on_owners(&env.proxy, None);
}

#[test]
fn proxy_splits_multi_key_commands_and_merges() {
    let env = Env::cluster();
    suites::splits_merge(&env.url());
}

#[test]
fn proxy_pipeline_across_shards_keeps_order() {
    let env = Env::cluster();
    suites::pipeline_keeps_order(&env.url());
}

/// Nodes on `::1`: every address Hive builds is bracketed (`[::1]:7000`), and a MOVED naming
/// `::1:port` (Redis writes no brackets) is followed.
#[test]
fn proxy_cluster_on_ipv6_loopback_routes_and_follows_moved() {
    let env = Env::on("::1", 3, 0, |c| c.backend.refresh_interval_ms = 600_000);
    let topo = env.proxy.shared.plane.topology.load_full();
    assert_eq!(topo.map.shards().len(), 3);
    for s in topo.map.shards() {
        assert!(s.master.starts_with("[::1]:"), "{}", s.master);
    }
    suites::keys_land_on_owners(&env.proxy, None);
    // Move an empty slot of the first master to the second behind the proxy's back: the
    // proxy's map is stale and the old owner answers MOVED.
    let key = "ipv6-moved";
    let slot = hive_common::Slot::for_key(key.as_bytes());
    let from = topo.map.shard_of(slot).unwrap();
    let to = (from + 1) % 3;
    let node = |i: usize| hive_tests::connect(&format!("redis://{}/", topo.map.shards()[i].master));
    let id = |i: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut node(i))
            .unwrap()
    };
    let (from_id, to_id) = (id(from), id(to));
    let setslot = |i: usize, args: &[&str]| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot.get())
            .arg(args)
            .query(&mut node(i))
            .unwrap();
    };
    setslot(to, &["IMPORTING", &from_id]);
    setslot(from, &["MIGRATING", &to_id]);
    setslot(to, &["NODE", &to_id]);
    setslot(from, &["NODE", &to_id]);
    let moved_before = hive_proxy::metrics::Stats::get(&env.proxy.shared.stats.upstream.moved);
    let mut c = env.client();
    let _: () = c.set(key, "v6").unwrap();
    let got: String = node(to).get(key).unwrap();
    assert_eq!(got, "v6");
    assert!(hive_proxy::metrics::Stats::get(&env.proxy.shared.stats.upstream.moved) > moved_before);
}

#[test]
fn proxy_local_commands_and_errors_match_redis() {
    let env = Env::cluster();
    let mut c = env.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = redis::cmd("ECHO").arg("hi there").query(&mut c).unwrap();
    assert_eq!(echo, "hi there");
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("foo")
        .query(&mut c)
        .unwrap();
    assert_eq!(slot, 12182);
    let _: () = redis::cmd("SELECT").arg(0).query(&mut c).unwrap();
    let e = redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap_err();
    assert_eq!(e.detail(), Some("SELECT is not allowed in cluster mode"));
    let e = redis::cmd("NOSUCH")
        .arg("x")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown command 'NOSUCH', with args beginning with: 'x'"),
        "{e}"
    );
    let e = redis::cmd("GET").query::<()>(&mut c).unwrap_err();
    assert!(
        e.to_string()
            .contains("wrong number of arguments for 'get' command"),
        "{e}"
    );
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert_eq!(count, 240);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("EVAL")
        .arg("return 1")
        .arg(2)
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["a", "b"]);
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    assert!(info.starts_with("# Proxy\r\n"), "{info}");
    // Counters are current while the connection is still open.
    let field = |f: &str| -> u64 { hive_common::info::field(&info, f).unwrap().parse().unwrap() };
    assert!(field("total_commands_processed") >= 10, "{info}");
    assert!(field("error_replies") >= 3, "{info}");
    assert!(info.contains("masters:3"), "{info}");
    assert!(
        info.contains("# Server") && info.contains("redis_version:"),
        "{info}"
    );
    let _: () = c.set("dbs1", 1).unwrap();
    let _: () = c.set("dbs2", 1).unwrap();
    let _: () = c.set("dbs3", 1).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 3);
    // Scripts route by their keys; keyless scripts go to some master.
    let v: String = redis::cmd("EVAL")
        .arg("return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("dbs2")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "1");
    let e = redis::cmd("EVAL")
        .arg("return 1")
        .arg(5)
        .arg("a")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Number of keys can't be greater than number of args"),
        "{e}"
    );
    // A blocking command times out as on Redis.
    let r: Option<(String, String)> = redis::cmd("BLPOP").arg("q").arg(0.2).query(&mut c).unwrap();
    assert_eq!(r, None);
    // CLIENT TRACKING is Hive's own (tests/tests/proxy/tracking): on and off again.
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .query(&mut c)
        .unwrap();
    let redir: i64 = redis::cmd("CLIENT").arg("GETREDIR").query(&mut c).unwrap();
    assert_eq!(redir, 0);
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("OFF")
        .query(&mut c)
        .unwrap();
    // QUIT answers OK and closes.
    let ok: String = redis::cmd("QUIT").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    assert!(redis::cmd("PING").query::<String>(&mut c).is_err());
}

#[test]
fn proxy_redis_benchmark_has_no_errors() {
    let env = Env::cluster();
    let _g = heavy();
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &env.port().to_string()])
        .args([
            "-t",
            "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset",
        ])
        .args(["-n", "20000", "-P", "16", "-q", "-e"])
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("Error") && !stderr.contains("Error"),
        "{stdout}\n{stderr}"
    );
    for t in [
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LRANGE_100",
        "MSET",
    ] {
        assert!(stdout.contains(t), "{t} missing:\n{stdout}");
    }
    // One completed result line per test (LRANGE runs four: 100, 300, 500 and 600 elements).
    let done = stdout.matches(" requests per second").count();
    assert!(done >= 17, "only {done} results:\n{stdout}");
    assert!(!stdout.contains("WARNING"), "{stdout}");
    let mut c = env.client();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert!(n > 0);
}

#[test]
fn proxy_redis_cli_round_trip() {
    let env = Env::cluster();
    let port = env.port().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["-p", &port];
        all.extend_from_slice(args);
        hive_tests::redis_cli(&all).unwrap()
    };
    assert_eq!(cli(&["SET", "greeting", "hello"]).trim(), "OK");
    assert_eq!(cli(&["GET", "greeting"]).trim(), "hello");
    assert_eq!(cli(&["MGET", "greeting", "nope"]), "hello\n\n");
}
