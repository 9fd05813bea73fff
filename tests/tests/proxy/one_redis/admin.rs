//! Administrative and ACL commands through Hive as one Redis answers them: ACL HELP, GENPASS
//! and GETUSER's rules (compared with a standalone redis-server), BGSAVE on every master,
//! MODULE LIST, LATENCY RESET and the LATENCY refusal, DEBUG OBJECT routed to the key's node.

use hive_tests::{connect, error_text, info_u64, node_url, run, Env};
use redis::Value;

use super::standalone;

fn words(s: &str) -> Vec<&str> {
    s.split(' ').collect()
}

/// ACL GETUSER's command rules as a set (Redis lists single commands in its dictionary's
/// order), and its flags.
fn getuser(c: &mut redis::Connection, name: &str) -> (Vec<String>, Value) {
    let v: Vec<Value> = redis::cmd("ACL").arg("GETUSER").arg(name).query(c).unwrap();
    let field = |k: &str| {
        let at = v
            .iter()
            .position(|x| matches!(x, Value::BulkString(b) if b == k.as_bytes()))
            .unwrap();
        v[at + 1].clone()
    };
    let rules: String = redis::from_redis_value(&field("commands")).unwrap();
    let mut rules: Vec<String> = rules.split(' ').map(String::from).collect();
    rules[1..].sort();
    (rules, field("flags"))
}

#[test]
fn acl_help_genpass_and_getuser_as_redis() {
    let env = Env::with(2, 0, |_| {});
    let (_d, node) = standalone();
    let mut h = env.client();
    let mut o = connect(&node_url(&format!("127.0.0.1:{}", node.port)));
    for cmd in [
        "ACL HELP",
        "ACL GENPASS 0",
        "ACL GENPASS 4097",
        "ACL GENPASS x",
    ] {
        assert_eq!(
            format!("{:?}", run(&mut h, &words(cmd))),
            format!("{:?}", run(&mut o, &words(cmd))),
            "{cmd}"
        );
    }
    let p: String = redis::cmd("ACL").arg("GENPASS").query(&mut h).unwrap();
    assert!(
        p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()),
        "{p}"
    );
    let p2: String = redis::cmd("ACL").arg("GENPASS").query(&mut h).unwrap();
    assert_ne!(p, p2);
    let p: String = redis::cmd("ACL")
        .arg("GENPASS")
        .arg(5)
        .query(&mut h)
        .unwrap();
    assert_eq!(p.len(), 2);
    for (i, rules) in [
        "on >pw ~app:* &chan +get +@hash -hdel +client|id",
        "on nopass ~* &* +@all -@dangerous",
        "+@read -get +set",
        "+@all -get -@dangerous +flushall",
        "+@read +@write -@read",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("u{i}");
        let mut cmd = vec!["ACL", "SETUSER", &name];
        cmd.extend(rules.split(' '));
        for c in [&mut h, &mut o] {
            run(c, &cmd).unwrap();
        }
        assert_eq!(getuser(&mut h, &name), getuser(&mut o, &name), "{rules}");
    }
}

#[test]
fn admin_fan_outs_and_debug_object_as_stated() {
    let env = Env::with(2, 0, |_| {});
    let mut h = env.client();
    let started: String = redis::cmd("BGSAVE").query(&mut h).unwrap();
    assert_eq!(started, "Background saving started");
    let master = env.cluster.master_addrs()[0].clone();
    let mut m = connect(&node_url(&master));
    assert_eq!(
        format!("{:?}", run(&mut h, &["MODULE", "LIST"])),
        format!("{:?}", run(&mut m, &["MODULE", "LIST"]))
    );
    let n: i64 = redis::cmd("LATENCY").arg("RESET").query(&mut h).unwrap();
    assert!(n >= 0);
    let e = error_text(run(&mut h, &["LATENCY", "LATEST"]));
    assert!(
        e.contains("latency latest") && e.contains("each node"),
        "{e}"
    );
    let e = error_text(run(&mut h, &["MODULE", "LOAD", "/x.so"]));
    assert!(
        e.starts_with("ERR Hive does not support 'module|load'"),
        "{e}"
    );
    // DEBUG OBJECT goes to the node that holds the key: the same answer as asking it.
    let _: () = redis::cmd("SET").arg("dbg").arg("v").query(&mut h).unwrap();
    let owner = {
        let topo = env.proxy.shared.plane.topology.load();
        let i = topo
            .map
            .shard_of(hive_common::Slot::for_key(b"dbg"))
            .unwrap();
        topo.map.shards()[i].master.clone()
    };
    let mut n = connect(&node_url(&owner));
    let strip = |r: redis::RedisResult<Value>| {
        // The serialized length and LRU fields are the same; only the LRU age may tick.
        format!("{r:?}")
            .split(' ')
            .filter(|w| !w.starts_with("lru_seconds_idle"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        strip(run(&mut h, &["DEBUG", "OBJECT", "dbg"])),
        strip(run(&mut n, &["DEBUG", "OBJECT", "dbg"]))
    );
    let e = error_text(run(&mut h, &["DEBUG", "SLEEP", "0"]));
    assert!(e.starts_with("ERR Hive does not support 'debug'"), "{e}");
}

#[test]
fn command_list_and_getkeys_as_redis() {
    let env = Env::with(1, 0, |_| {});
    let (_d, node) = standalone();
    let mut h = env.client();
    let mut o = connect(&node_url(&format!("127.0.0.1:{}", node.port)));
    let sorted = |c: &mut redis::Connection, cmd: &str| -> Vec<String> {
        let mut v: Vec<String> = redis::cmd("COMMAND")
            .arg(words(cmd)[1..].to_vec())
            .query(c)
            .unwrap();
        v.sort();
        v
    };
    // Hive's table also has CLIENT SETINFO (Redis 7.2, which Hive answers for redis-py 5).
    let mut all = sorted(&mut h, "COMMAND LIST");
    all.retain(|n| n != "client|setinfo");
    assert_eq!(all, sorted(&mut o, "COMMAND LIST"));
    assert!(all.iter().any(|n| n == "acl|genpass") && all.iter().any(|n| n == "migrate"));
    for cmd in [
        "COMMAND LIST FILTERBY ACLCAT hash",
        "COMMAND LIST FILTERBY PATTERN acl*",
        "COMMAND LIST FILTERBY MODULE x",
        "COMMAND LIST FILTERBY ACLCAT nosuch",
    ] {
        assert_eq!(sorted(&mut h, cmd), sorted(&mut o, cmd), "{cmd}");
    }
    for cmd in [
        "COMMAND LIST FILTERBY FOO x",
        "COMMAND LIST x",
        "COMMAND GETKEYS EVAL x 0",
        "COMMAND GETKEYS FCALL f 0",
        "COMMAND GETKEYS EVAL x 2 a b",
        "COMMAND GETKEYS CONFIG GET x",
        "COMMAND GETKEYS GET a b",
        "COMMAND GETKEYS NOSUCH a",
    ] {
        assert_eq!(
            format!("{:?}", run(&mut h, &words(cmd))),
            format!("{:?}", run(&mut o, &words(cmd))),
            "{cmd}"
        );
    }
}

/// Commands queued in MULTI count when EXEC runs them (never when DISCARDed), and CONFIG
/// RESETSTAT starts the count again: INFO's total_commands_processed as one Redis gives it.
#[test]
fn multi_counts_queued_commands_at_exec_as_redis() {
    let env = Env::with(1, 0, |_| {});
    let (_d, node) = standalone();
    let mut h = env.client();
    let mut o = connect(&node_url(&format!("127.0.0.1:{}", node.port)));
    let script = [
        "CONFIG RESETSTAT",
        "MULTI",
        "SET {t}a 1",
        "SET {t}b 2",
        "DISCARD",
        "INFO",
        "MULTI",
        "SET {t}a 1",
        "INCR {t}c",
        "EXEC",
        "INFO",
    ];
    let mut counts = [Vec::new(), Vec::new()];
    for (i, c) in [&mut h, &mut o].into_iter().enumerate() {
        for cmd in script {
            let r = run(c, &words(cmd)).unwrap();
            if cmd == "INFO" {
                let text: String = redis::from_redis_value(&r).unwrap();
                counts[i].push(
                    hive_common::info::field(&text, "total_commands_processed")
                        .unwrap()
                        .to_string(),
                );
            }
        }
    }
    assert_eq!(counts[0], counts[1]);
    assert_eq!(counts[1], ["3", "8"]);
}

/// WATCH connections are reused (no connection per transaction), and a reused one carries no
/// stale watch: after UNWATCH or DISCARD, a change to the old key does not abort the next EXEC.
#[test]
fn watch_connections_are_reused_without_stale_watches() {
    let env = Env::with(1, 0, |_| {});
    let master = env.cluster.master_addrs()[0].clone();
    let mut n = connect(&node_url(&master));
    let mut h = env.client();
    let mut other = env.client();
    let ok = |c: &mut redis::Connection, cmd: &str| run(c, &words(cmd)).unwrap();
    // A WATCH ended by `end` leaves nothing behind on the reused connection: a change to the
    // old key does not abort the next transaction.
    for (end, value) in [(&["UNWATCH"][..], 1), (&["MULTI", "DISCARD"][..], 2)] {
        ok(&mut h, "WATCH {w}old");
        for cmd in end {
            ok(&mut h, cmd);
        }
        ok(&mut other, &format!("SET {{w}}old changed{value}"));
        ok(&mut h, "WATCH {w}new");
        ok(&mut h, "MULTI");
        ok(&mut h, &format!("SET {{w}}x {value}"));
        assert_ne!(
            ok(&mut h, "EXEC"),
            Value::Nil,
            "a stale watch after {end:?}"
        );
    }
    // A watched key that does change still aborts.
    ok(&mut h, "WATCH {w}new");
    ok(&mut other, "SET {w}new changed");
    ok(&mut h, "MULTI");
    ok(&mut h, "SET {w}x 3");
    assert_eq!(ok(&mut h, "EXEC"), Value::Nil);
    let before = info_u64(&mut n, "connected_clients");
    for i in 0..20 {
        ok(&mut h, "WATCH {w}new");
        ok(&mut h, "MULTI");
        ok(&mut h, &format!("SET {{w}}x {i}"));
        assert_ne!(ok(&mut h, "EXEC"), Value::Nil);
    }
    assert_eq!(
        info_u64(&mut n, "connected_clients"),
        before,
        "a connection per transaction"
    );
}
