//! Administrative commands through the proxy, for users allowed to run them: CONFIG SET,
//! RESETSTAT and REWRITE on every node of a 3+3 cluster (masters and replicas), parameters
//! Hive depends on refused, and CLIENT PAUSE/UNPAUSE on every master with the proxy holding its
//! own clients meanwhile.

use std::time::{Duration, Instant};

use hive_tests::{connect, Env};
use hive_tests::{error_text as err, run};
use redis::{Commands, Value};

fn env() -> Env {
    Env::with(3, 1, |c| {
        c.proxy.users = vec![
            "ops on >opspw ~* &* +@all".into(),
            "app on >apppw ~* &* +@all -@admin".into(),
        ];
    })
}

fn node_config(addr: &str, param: &str) -> String {
    let mut c = hive_tests::connect(&hive_tests::node_url(addr));
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(param)
        .query(&mut c)
        .unwrap();
    v.get(1).cloned().unwrap_or_default()
}

#[test]
fn admin_config_set_reaches_every_node_for_permitted_users() {
    let env = env();
    // CLUSTER SLOTS hides a replica until it has replicated something; the proxy also reads
    // CLUSTER SHARDS, so every replica is in its map without a write first.
    hive_tests::module_cluster::wait_for(
        "three replicas in the map",
        Duration::from_secs(10),
        || {
            env.proxy
                .shared
                .plane
                .topology
                .load()
                .map
                .shards()
                .iter()
                .map(|s| s.replicas.len())
                .sum::<usize>()
                == 3
        },
    );
    let mut ops = connect(&format!("redis://ops:opspw@{}/", env.proxy.addr));
    assert_eq!(
        run(
            &mut ops,
            &[
                "CONFIG",
                "SET",
                "maxmemory-policy",
                "allkeys-lru",
                "slowlog-max-len",
                "77"
            ]
        )
        .unwrap(),
        Value::Okay
    );
    for n in &env.cluster.nodes {
        assert_eq!(
            node_config(&n.addr, "maxmemory-policy"),
            "allkeys-lru",
            "{}",
            n.addr
        );
        assert_eq!(node_config(&n.addr, "slowlog-max-len"), "77", "{}", n.addr);
    }
    let e = err(run(
        &mut ops,
        &["CONFIG", "SET", "maxmemory-policy", "bogus"],
    ));
    assert!(e.starts_with("ERR "), "{e}");
    assert!(e.contains("(Hive: refused by 6 of 6 nodes: "), "{e}");
    for (param, value) in [
        ("port", "1"),
        ("requirepass", "x"),
        ("cluster-node-timeout", "5"),
        ("dir", "/tmp"),
    ] {
        assert_eq!(
            err(run(&mut ops, &["CONFIG", "SET", param, value])),
            format!("ERR Hive does not support 'config|set' of '{param}': it would change how Hive reaches, authenticates to or routes to the nodes, or where they keep their data; change it on each node (and in hive.toml)")
        );
    }
    assert_eq!(node_config(&env.cluster.nodes[0].addr, "requirepass"), "");
    for i in 0..50 {
        let _: () = ops.set(format!("rs:{i}"), i).unwrap();
    }
    assert!(hive_tests::info_u64(&mut ops, "total_commands_processed") >= 50);
    assert_eq!(
        run(&mut ops, &["CONFIG", "RESETSTAT"]).unwrap(),
        Value::Okay
    );
    // INFO counts again from the reset, as one Redis; the counter /metrics exports does not
    // go back.
    assert!(hive_tests::info_u64(&mut ops, "total_commands_processed") < 5);
    let exported = hive_proxy::metrics::Stats::get(&env.proxy.shared.stats.commands_processed);
    assert!(exported >= 50, "{exported}");
    // The test nodes run without a config file: every node says so, and the reply names them.
    let e = err(run(&mut ops, &["CONFIG", "REWRITE"]));
    assert!(
        e.contains("config file") && e.contains("refused by 6 of 6 nodes"),
        "{e}"
    );
    assert_eq!(
        err(run(&mut ops, &["CONFIG", "SET", "maxmemory"])),
        "ERR wrong number of arguments for 'config|set' command"
    );
    let mut app = connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    assert_eq!(
        err(run(
            &mut app,
            &["CONFIG", "SET", "maxmemory-policy", "noeviction"]
        )),
        "NOPERM this user has no permissions to run the 'config|set' command"
    );
    assert_eq!(
        err(run(&mut app, &["CLIENT", "PAUSE", "1000"])),
        "NOPERM this user has no permissions to run the 'client|pause' command"
    );
    assert_eq!(
        node_config(&env.cluster.nodes[1].addr, "maxmemory-policy"),
        "allkeys-lru"
    );
}

#[test]
fn admin_client_pause_holds_writes_in_the_proxy_until_unpause() {
    let env = env();
    let mut ops = connect(&format!("redis://ops:opspw@{}/", env.proxy.addr));
    let _: () = ops.set("p:k", "before").unwrap();
    assert_eq!(
        run(&mut ops, &["CLIENT", "PAUSE", "20000", "WRITE"]).unwrap(),
        Value::Okay
    );
    // The masters are paused too: a write sent to one directly does not complete.
    let mut direct = hive_tests::connect(&hive_tests::node_url(&env.cluster.nodes[0].addr));
    direct
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(direct.set::<_, _, ()>("direct:k", "x").is_err());
    // Through the proxy, reads go on and writes wait in the proxy.
    let url = format!("redis://app:apppw@{}/", env.proxy.addr);
    let mut reader = connect(&url);
    let t = Instant::now();
    let v: String = reader.get("p:k").unwrap();
    assert_eq!(v, "before");
    assert!(t.elapsed() < Duration::from_secs(2));
    let writer = std::thread::spawn(move || {
        let mut w = connect(&url);
        let t = Instant::now();
        let _: () = w.set("p:k", "after").unwrap();
        // A read behind the held write waits for it, so the client reads its own write.
        let v: String = w.get("p:k").unwrap();
        (t.elapsed(), v)
    });
    // Held in the proxy, and counted as Redis counts paused clients.
    hive_tests::module_cluster::wait_for("the write held", Duration::from_secs(5), || {
        hive_tests::info_u64(&mut ops, "paused_clients") == 1
    });
    assert!(hive_tests::info_u64(&mut ops, "blocked_clients") >= 1);
    assert!(
        !writer.is_finished(),
        "a write went through during CLIENT PAUSE WRITE"
    );
    // A transaction of reads is not held (Redis 7.0 holds EXEC only when it may write); one
    // with a write is.
    let mut tx = connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    let t = Instant::now();
    let (v,): (String,) = redis::pipe().atomic().get("p:k").query(&mut tx).unwrap();
    assert_eq!(v, "before");
    assert!(t.elapsed() < Duration::from_secs(2));
    let url = format!("redis://app:apppw@{}/", env.proxy.addr);
    let tx_writer = std::thread::spawn(move || {
        let mut w = connect(&url);
        let (n,): (i64,) = redis::pipe().atomic().incr("p:n", 1).query(&mut w).unwrap();
        n
    });
    hive_tests::module_cluster::wait_for(
        "the write transaction held",
        Duration::from_secs(5),
        || hive_tests::info_u64(&mut ops, "paused_clients") == 2,
    );
    assert!(!tx_writer.is_finished());
    assert_eq!(run(&mut ops, &["CLIENT", "UNPAUSE"]).unwrap(), Value::Okay);
    let (waited, v) = writer.join().unwrap();
    assert_eq!(v, "after");
    assert_eq!(tx_writer.join().unwrap(), 1);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(hive_tests::info_u64(&mut ops, "paused_clients"), 0);
    assert_eq!(
        err(run(&mut ops, &["CLIENT", "PAUSE", "abc"])),
        "ERR timeout is not an integer or out of range"
    );
    assert_eq!(
        err(run(&mut ops, &["CLIENT", "PAUSE", "10", "SOME"])),
        "ERR syntax error"
    );
}

/// A CLIENT PAUSE that one master refuses (busy running a script) is undone on the others and
/// in the proxy, and the error names the master that refused.
#[test]
fn admin_client_pause_refused_by_one_master_is_undone_everywhere() {
    let env = env();
    let mut ops = connect(&format!("redis://ops:opspw@{}/", env.proxy.addr));
    let masters = env.cluster.master_addrs();
    let busy = masters[0].clone();
    let mut node = hive_tests::connect(&hive_tests::node_url(&busy));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(10)
        .query(&mut node)
        .unwrap();
    let script = "local t0 = redis.call('TIME') while true do local t = redis.call('TIME') \
        if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 1500000 then break end end return 1";
    let runner = {
        let busy = busy.clone();
        std::thread::spawn(move || {
            let mut c = hive_tests::connect(&hive_tests::node_url(&busy));
            let _: i64 = redis::cmd("EVAL").arg(script).arg(0).query(&mut c).unwrap();
        })
    };
    hive_tests::module_cluster::wait_for(
        "the script holding the node",
        Duration::from_secs(5),
        || {
            let mut probe = hive_tests::connect(&hive_tests::node_url(&busy));
            matches!(run(&mut probe, &["PING"]), Err(e) if e.code() == Some("BUSY"))
        },
    );
    let e = err(run(&mut ops, &["CLIENT", "PAUSE", "100000", "WRITE"]));
    assert!(e.contains("Redis is busy running a script"), "{e}");
    assert!(
        e.contains(&format!(
            "refused by 1 of {} masters: {busy}",
            masters.len()
        )) && e.contains("undone on the others"),
        "{e}"
    );
    runner.join().unwrap();
    // No master and not the proxy stays paused: writes everywhere complete.
    for m in &masters {
        let mut c = hive_tests::connect(&hive_tests::node_url(m));
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let r: redis::RedisResult<()> = redis::cmd("SET").arg("direct:k").arg("x").query(&mut c);
        // MOVED for a key of another slot still means the node answered.
        assert!(
            r.is_ok() || r.as_ref().unwrap_err().code() == Some("MOVED"),
            "{m}: {r:?}"
        );
    }
    let mut app = connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    app.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _: () = app.set("p:after", "1").unwrap();
}
