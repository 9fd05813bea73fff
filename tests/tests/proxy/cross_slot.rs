//! Commands across slots (`proxy.cross_slot`): refused as Redis Cluster does by default;
//! emulated, each gives the reply a single standalone Redis gives for the same data, in
//! cluster, sentinel and static modes; transactions and WATCH across shards; the byte limit.

use hive_proxy::config::{CrossSlot, MemSize};
use hive_tests::{cross_slot, error_text, node_url, run, Env, GroupEnv};
use redis::Value;

/// The shards the proxy puts `keys` on: the comparisons only test emulation when the keys of
/// a command live apart.
fn shards_of(env: &GroupEnv, keys: &[&str]) -> usize {
    let topo = env.proxy.shared.plane.topology.load();
    let mut shards: Vec<_> = keys
        .iter()
        .map(|k| topo.map.shard_of(hive_common::Slot::for_key(k.as_bytes())))
        .collect();
    shards.sort();
    shards.dedup();
    shards.len()
}

use hive_tests::cross_slot::{emulate, standalone};

#[test]
fn cross_slot_emulated_matches_standalone_in_cluster_mode() {
    let env = Env::with(3, 1, emulate);
    let (_d, _n, single) = standalone();
    cross_slot::matches_standalone(&env.url(), &single);
    // A cluster node refuses SORT's BY/GET patterns itself (Redis 7.0); Hive passes that on.
    let mut c = env.client();
    let e = error_text(run(&mut c, &["SORT", "sl", "BY", "w_*"]));
    assert_eq!(e, "ERR BY option of SORT denied in Cluster mode.");
}

#[test]
fn cross_slot_emulated_matches_standalone_in_sentinel_mode() {
    let env = GroupEnv::sentinel(3, None, emulate);
    assert_eq!(shards_of(&env, &["s1", "s2", "s3"]), 3);
    assert_eq!(shards_of(&env, &["sl", "w_1", "o_1"]), 3);
    let (_d, _n, single) = standalone();
    cross_slot::matches_standalone(&env.url(), &single);
    cross_slot::sort_patterns_match_standalone(&env.url(), &single);
}

#[test]
fn cross_slot_emulated_matches_standalone_in_static_mode() {
    let env = GroupEnv::statik(3, emulate);
    assert_eq!(shards_of(&env, &["s1", "s2", "s3"]), 3);
    assert_eq!(shards_of(&env, &["sl", "w_1", "o_1"]), 3);
    let (_d, _n, single) = standalone();
    cross_slot::matches_standalone(&env.url(), &single);
    cross_slot::sort_patterns_match_standalone(&env.url(), &single);
}

fn refused_everywhere(url: &str) {
    let mut c = hive_tests::connect(url);
    for (cmd, _) in cross_slot::COMMANDS {
        let r = run(&mut c, cmd);
        assert_eq!(
            error_text(r),
            "CROSSSLOT Keys in request don't hash to the same slot",
            "{cmd:?}"
        );
    }
}

#[test]
fn cross_slot_refused_by_default_with_redis_error() {
    let env = Env::with(3, 0, |_| {});
    refused_everywhere(&env.url());
}

#[test]
fn cross_slot_refused_by_default_in_sentinel_and_static_modes() {
    let env = GroupEnv::sentinel(3, None, |_| {});
    refused_everywhere(&env.url());
    let mut c = env.client();
    // Keys its patterns name may live on any shard.
    let e = error_text(run(&mut c, &["SORT", "sl", "BY", "w_*"]));
    assert_eq!(e, "CROSSSLOT Keys in request don't hash to the same slot");
    drop(env);
    let env = GroupEnv::statik(3, |_| {});
    refused_everywhere(&env.url());
}

#[test]
fn cross_slot_blocking_and_scripts_refused_with_reason_when_emulating() {
    let env = Env::with(3, 0, emulate);
    let mut c = env.client();
    // Blocking pops are run across shards (tests/proxy/blocking_pops.rs); XREAD BLOCK is not.
    let e = error_text(run(
        &mut c,
        &["XREAD", "BLOCK", "0", "STREAMS", "a", "b", "0", "0"],
    ));
    assert!(
        e.starts_with(
            "CROSSSLOT Keys in request don't hash to the same slot ('xread' blocks on one node"
        ),
        "{e}"
    );
    assert!(e.contains("hash tag"), "{e}");
    let e = error_text(run(&mut c, &["EVAL", "return 1", "2", "a", "b"]));
    assert!(e.contains("Hive does not run 'eval' across slots"), "{e}");
    // Nothing was applied by either.
    assert_eq!(run(&mut c, &["EXISTS", "a", "b"]).unwrap(), Value::Int(0));
}

#[test]
fn cross_slot_over_max_bytes_refused_and_nothing_written() {
    let env = Env::with(3, 0, |c| {
        emulate(c);
        c.proxy.cross_slot_max_bytes = MemSize(100_000);
    });
    let mut c = env.client();
    let members: Vec<String> = (0..5000).map(|i| format!("member-{i}")).collect();
    let mut cmd = redis::cmd("SADD");
    cmd.arg("big");
    for m in &members {
        cmd.arg(m);
    }
    let _: i64 = cmd.query(&mut c).unwrap();
    let _: i64 = redis::cmd("SADD")
        .arg("small")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let e = error_text(run(&mut c, &["SUNIONSTORE", "dest", "small", "big"]));
    assert!(
        e.contains("over proxy.cross_slot_max_bytes (100000)"),
        "{e}"
    );
    assert_eq!(run(&mut c, &["EXISTS", "dest"]).unwrap(), Value::Int(0));
    let n: i64 = redis::cmd("SCARD").arg("small").query(&mut c).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn cross_slot_transaction_refused_early_by_default() {
    let env = Env::with(3, 0, |_| {});
    let mut c = env.client();
    let mut p = redis::pipe();
    p.atomic().set("a", 1).ignore().set("b", 2).ignore();
    let e = p.query::<()>(&mut c).unwrap_err();
    // redis-rs reports the first queued error; EXEC itself answered EXECABORT.
    assert!(matches!(e.code(), Some("CROSSSLOT" | "EXECABORT")), "{e}");
    assert_eq!(run(&mut c, &["EXISTS", "a", "b"]).unwrap(), Value::Int(0));
    // The first command that crosses is the one refused.
    assert_eq!(run(&mut c, &["MULTI"]).unwrap(), Value::Okay);
    assert!(
        matches!(run(&mut c, &["SET", "a", "1"]).unwrap(), Value::SimpleString(ref s) if s == "QUEUED")
    );
    assert_eq!(
        error_text(run(&mut c, &["SET", "b", "1"])),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert!(error_text(run(&mut c, &["EXEC"])).starts_with("EXECABORT"));
}

#[test]
fn cross_slot_transaction_emulated_runs_on_every_shard() {
    let env = Env::with(3, 0, emulate);
    let mut c = env.client();
    let keys: Vec<String> = (0..30).map(|i| format!("tx:{i}")).collect();
    let mut p = redis::pipe();
    p.atomic();
    for k in &keys {
        p.cmd("INCRBY").arg(k).arg(5);
    }
    p.cmd("PING");
    p.cmd("MGET").arg(&keys[0]);
    // Split commands across slots inside the transaction: one part per slot, merged.
    p.cmd("MSET")
        .arg("tx:a")
        .arg("A")
        .arg("tx:b")
        .arg("B")
        .arg("tx:c")
        .arg("C");
    p.cmd("MGET")
        .arg("tx:c")
        .arg(&keys[3])
        .arg("tx:none")
        .arg("tx:a");
    p.cmd("DEL").arg("tx:a").arg("tx:b").arg("tx:none");
    let v: Vec<Value> = p.query(&mut c).unwrap();
    let incrs: Vec<i64> = v[..30]
        .iter()
        .map(|x| redis::from_redis_value(x).unwrap())
        .collect();
    assert_eq!(incrs, vec![5; 30]);
    assert_eq!(redis::from_redis_value::<String>(&v[30]).unwrap(), "PONG");
    assert_eq!(
        redis::from_redis_value::<Vec<i64>>(&v[31]).unwrap(),
        vec![5]
    );
    assert_eq!(v[32], Value::Okay);
    let got: Vec<Option<String>> = redis::from_redis_value(&v[33]).unwrap();
    assert_eq!(
        got,
        [Some("C".into()), Some("5".into()), None, Some("A".into())]
    );
    assert_eq!(v[34], Value::Int(2));
    assert_eq!(v.len(), 35);
    // Every master holds its share.
    for m in env.cluster.master_addrs() {
        let mut n = hive_tests::connect(&node_url(&m));
        let dbsize: i64 = redis::cmd("DBSIZE").query(&mut n).unwrap();
        assert!(dbsize > 0, "{m} has none of the keys");
    }
}

#[test]
fn cross_slot_watch_across_shards_aborts_whole_transaction() {
    let env = Env::with(3, 0, emulate);
    let mut c = env.client();
    let mut other = env.client();
    // Refused without emulation is covered above; here: a change on either shard aborts.
    for changed in ["a", "b"] {
        assert_eq!(run(&mut c, &["WATCH", "a", "b"]).unwrap(), Value::Okay);
        let _: () = redis::cmd("SET")
            .arg(changed)
            .arg("x")
            .query(&mut other)
            .unwrap();
        run(&mut c, &["MULTI"]).unwrap();
        run(&mut c, &["SET", "a", "mine"]).unwrap();
        run(&mut c, &["SET", "b", "mine"]).unwrap();
        run(&mut c, &["SET", "c", "mine"]).unwrap();
        assert_eq!(
            run(&mut c, &["EXEC"]).unwrap(),
            Value::Nil,
            "{changed} changed"
        );
        assert_eq!(run(&mut c, &["EXISTS", "c"]).unwrap(), Value::Int(0));
    }
    // Unchanged: applied everywhere.
    assert_eq!(run(&mut c, &["WATCH", "a", "b"]).unwrap(), Value::Okay);
    run(&mut c, &["MULTI"]).unwrap();
    run(&mut c, &["SET", "a", "mine"]).unwrap();
    run(&mut c, &["SET", "b", "mine"]).unwrap();
    let v = run(&mut c, &["EXEC"]).unwrap();
    assert_eq!(v, Value::Array(vec![Value::Okay, Value::Okay]));
    let got: Vec<String> = redis::cmd("MGET").arg("a").arg("b").query(&mut c).unwrap();
    assert_eq!(got, ["mine", "mine"]);
}

#[test]
fn cross_slot_redis_py_pipeline_refused_or_emulated() {
    let python =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv/bin/python");
    let script = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
p = r.pipeline()              # transaction=True: MULTI/EXEC
for i in range(20):
    p.set(f"py:{i}", i)
try:
    print("applied", p.execute())
except redis.exceptions.ResponseError as e:
    print("error", str(e).split()[0])
print("count", sum(r.exists(f"py:{i}") for i in range(20)))
"#;
    for (mode, want) in [
        (CrossSlot::Refuse, "error"),
        (CrossSlot::Emulate, "applied"),
    ] {
        let env = Env::with(3, 0, |c| c.proxy.cross_slot = mode);
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(env.port().to_string())
            .output()
            .expect("run redis-py");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with(want), "{mode:?}: {text}");
        let count = if mode == CrossSlot::Refuse { 0 } else { 20 };
        assert!(text.contains(&format!("count {count}")), "{mode:?}: {text}");
    }
}

#[test]
fn cross_slot_emulation_keeps_acl_key_rules() {
    let env = Env::with(3, 0, |c| {
        emulate(c);
        c.proxy.users = vec!["app on >apppw ~app:* +@all".into()];
    });
    let mut app = hive_tests::connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    let mut admin = env.client();
    let _: i64 = redis::cmd("SADD")
        .arg("secret")
        .arg("s")
        .query(&mut admin)
        .unwrap();
    let _: i64 = redis::cmd("SADD")
        .arg("app:a")
        .arg("x")
        .query(&mut app)
        .unwrap();
    let nokey = "NOPERM this user has no permissions to access one of the keys used as arguments";
    assert_eq!(
        error_text(run(&mut app, &["SUNION", "app:a", "secret"])),
        nokey
    );
    assert_eq!(
        error_text(run(&mut app, &["RENAME", "secret", "app:b"])),
        nokey
    );
    assert_eq!(
        error_text(run(&mut app, &["SUNIONSTORE", "secret", "app:a"])),
        nokey
    );
    assert_eq!(
        run(&mut admin, &["SMEMBERS", "secret"]).unwrap(),
        Value::Array(vec![Value::BulkString(b"s".to_vec())])
    );
    // SORT's patterns read keys no key spec names: only for users with every key, as Redis.
    let _: i64 = redis::cmd("RPUSH")
        .arg("app:l")
        .arg(2)
        .arg(1)
        .query(&mut app)
        .unwrap();
    assert_eq!(
        error_text(run(&mut app, &["SORT", "app:l", "BY", "secret_*"])),
        "ERR BY option of SORT denied due to insufficient ACL permissions."
    );
    assert_eq!(
        error_text(run(
            &mut app,
            &["SORT", "app:l", "LIMIT", "0", "1", "GET", "#"]
        )),
        "ERR GET option of SORT denied due to insufficient ACL permissions."
    );
    let sorted: Vec<i64> = redis::cmd("SORT").arg("app:l").query(&mut app).unwrap();
    assert_eq!(sorted, [1, 2]);
    // Its own keys across slots work.
    assert_eq!(
        run(&mut app, &["SUNIONSTORE", "app:c", "app:a", "app:zz"]).unwrap(),
        Value::Int(1)
    );
}
