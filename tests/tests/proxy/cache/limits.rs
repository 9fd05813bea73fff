//! The near cache's limits: an entry ends no later than its key's TTL on the node, the cache
//! stays within `max_memory` under distinct keys, a big value is never cached, a failover or a
//! FLUSHALL on a node empties it, and a cached value is no way around an ACL rule.

use std::time::{Duration, Instant};

use hive_proxy::config::MemSize;
use hive_tests::module_cluster::wait_for;
use hive_tests::{connect, info_u64, node_url, Env};

#[test]
fn cache_entry_ends_no_later_than_the_keys_ttl() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, super::on);
    let mut c = env.client();
    super::ready(&mut c);
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("v")
        .arg("PX")
        .arg(300)
        .query(&mut c)
        .unwrap();
    // The node's deadline is at most 300 ms after the SET's reply, at Redis's resolution: it
    // stores the deadline in whole milliseconds and expires a key only once `now > when`, so
    // Redis itself serves the key for up to 1 ms more (a 2 ms margin covers both roundings).
    let deadline = Instant::now() + Duration::from_millis(302);
    let before = super::hits(&mut c);
    let mut late_values = 0;
    let mut reads = 0;
    loop {
        let sent = Instant::now();
        let v: Option<String> = redis::cmd("GET").arg("t").query(&mut c).unwrap();
        reads += 1;
        match v {
            Some(_) if sent > deadline => late_values += 1,
            Some(_) => {}
            None => break,
        }
        assert!(sent < deadline + Duration::from_secs(2), "never expired");
    }
    let hits = super::hits(&mut c) - before;
    assert!(hits > 0, "read {reads} times, never from the cache");
    assert_eq!(late_values, 0, "values read after the key's TTL");
}

#[test]
fn cache_stays_within_max_memory_under_distinct_keys() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, |c| {
        super::on(c);
        c.cache.max_memory = MemSize(1 << 20);
        c.proxy.admin_listen = Some("127.0.0.1:0".into());
    });
    let mut c = env.client();
    super::ready(&mut c);
    let value = "x".repeat(200);
    let mut max_bytes = 0;
    for round in 0..20 {
        let key = |i: usize| format!("d:{{{}}}:{i}", round * 1000 + i);
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET").arg(key(i)).arg(&value).ignore();
        }
        let _: () = p.query(&mut c).unwrap();
        // Twice: a fill sent before the node's invalidation of the SET came is dropped.
        for _ in 0..2 {
            let mut p = redis::pipe();
            for i in 0..1000 {
                p.cmd("GET").arg(key(i)).ignore();
            }
            let _: () = p.query(&mut c).unwrap();
        }
        max_bytes = max_bytes.max(info_u64(&mut c, "cache_bytes"));
    }
    let limit = info_u64(&mut c, "cache_max_memory");
    assert_eq!(limit, 1 << 20);
    assert!(max_bytes <= limit, "{max_bytes} bytes over {limit}");
    assert!(info_u64(&mut c, "cache_evictions") > 0);
    assert!(info_u64(&mut c, "cache_keys") > 1000);
    // The same figures in /metrics.
    let (status, text) = hive_tests::http::get(env.proxy.admin_addr.unwrap(), "/metrics");
    assert_eq!(status, 200);
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    assert_eq!(metric("hive_cache_max_bytes"), (1 << 20) as f64);
    assert!(metric("hive_cache_bytes") <= (1 << 20) as f64);
    assert!(metric("hive_cache_evictions_total") > 0.0);
    assert!(metric("hive_cache_hits_total") > 0.0 && metric("hive_cache_misses_total") > 0.0);
    assert_eq!(metric("hive_cache_ready"), 1.0);
}

#[test]
fn cache_does_not_keep_a_big_value() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, |c| {
        super::on(c);
        c.cache.max_value_bytes = MemSize(1024);
    });
    let mut c = env.client();
    super::ready(&mut c);
    let big = "b".repeat(2000);
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("small")
        .arg("s")
        .query(&mut c)
        .unwrap();
    let before = super::hits(&mut c);
    for _ in 0..3 {
        let v: String = redis::cmd("GET").arg("big").query(&mut c).unwrap();
        assert_eq!(v, big);
    }
    assert_eq!(
        super::hits(&mut c),
        before,
        "a big value came from the cache"
    );
    for _ in 0..3 {
        let v: String = redis::cmd("GET").arg("small").query(&mut c).unwrap();
        assert_eq!(v, "s");
    }
    assert!(super::hits(&mut c) > before);
}

#[test]
fn cache_empties_on_failover_and_flushall_on_a_node() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 1, super::on);
    let mut c = env.client();
    super::ready(&mut c);
    let _: () = redis::cmd("SET").arg("k").arg("old").query(&mut c).unwrap();
    for _ in 0..2 {
        let _: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    }
    // FLUSHALL on the node, not through Hive.
    let flushes = info_u64(&mut c, "cache_flushes");
    let mut n = connect(&node_url(&hive_tests::shard_nodes(&env.proxy, "k").0));
    let _: () = redis::cmd("FLUSHALL").query(&mut n).unwrap();
    wait_for("the flush", Duration::from_secs(5), || {
        info_u64(&mut c, "cache_flushes") > flushes
    });
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, None);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("before")
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    let flushes = info_u64(&mut c, "cache_flushes");
    let replica = hive_tests::take_over(&env.proxy, "k");
    wait_for("the flush", Duration::from_secs(15), || {
        info_u64(&mut c, "cache_flushes") > flushes
    });
    // Written on the new master directly: read through Hive once the feed follows it.
    let mut r = connect(&node_url(&replica));
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("after")
        .query(&mut r)
        .unwrap();
    super::ready(&mut c);
    wait_for("the new value", Duration::from_secs(5), || {
        let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
        v == "after"
    });
}

#[test]
fn cache_hit_still_obeys_acl() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, super::on);
    let mut admin = env.client();
    super::ready(&mut admin);
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">apppw", "~app:*", "+@all"])
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("secret")
        .arg("s")
        .query(&mut admin)
        .unwrap();
    for _ in 0..2 {
        let _: String = redis::cmd("GET").arg("secret").query(&mut admin).unwrap();
    }
    let mut app = connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    let err = redis::cmd("GET")
        .arg("secret")
        .query::<Option<String>>(&mut app)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err}");
    let err = redis::cmd("MGET")
        .arg("secret")
        .query::<Vec<Option<String>>>(&mut app)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err}");
    // A wrong password gets nothing at all.
    assert!(
        redis::Client::open(format!("redis://app:wrong@{}/", env.proxy.addr))
            .unwrap()
            .get_connection()
            .is_err()
    );
}

#[test]
fn cache_admit_hot_caches_a_key_once_the_sampler_sees_it_hot() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, |c| {
        c.cache.enabled = true;
        c.proxy.hotkeys_sample_every = 1;
    });
    let mut c = env.client();
    super::ready(&mut c);
    let _: () = redis::cmd("SET").arg("hot").arg("v").query(&mut c).unwrap();
    // The admitted keys are refreshed each second from the sampler's hottest.
    wait_for(
        "the hot key served from the cache",
        Duration::from_secs(10),
        || {
            let before = super::hits(&mut c);
            for _ in 0..50 {
                let v: String = redis::cmd("GET").arg("hot").query(&mut c).unwrap();
                assert_eq!(v, "v");
            }
            super::hits(&mut c) > before
        },
    );
}
