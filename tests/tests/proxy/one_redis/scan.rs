//! SCAN over a small keyspace answers in one call with cursor 0, as one Redis does, in every
//! backend mode, with TYPE and MATCH; and a full iteration with a small COUNT returns every
//! key exactly once.

use std::collections::BTreeSet;

use hive_tests::{connect, node_url, Env, GroupEnv};
use redis::Value;

use super::standalone;

fn scan(c: &mut redis::Connection, args: &[&str]) -> (String, BTreeSet<String>) {
    let v: Value = redis::cmd("SCAN").arg(args).query(c).unwrap();
    let Value::Array(parts) = v else {
        panic!("{v:?}")
    };
    let cursor: String = redis::from_redis_value(&parts[0]).unwrap();
    let keys: Vec<String> = redis::from_redis_value(&parts[1]).unwrap();
    (cursor, keys.into_iter().collect())
}

fn small_keyspace_in_one_call(url: &str, single: &str) {
    let mut h = connect(url);
    let mut o = connect(single);
    for c in [&mut h, &mut o] {
        let _: () = redis::cmd("FLUSHALL").query(c).unwrap();
        for k in ["s1", "s2", "s3"] {
            let _: () = redis::cmd("SET").arg(k).arg("v").query(c).unwrap();
        }
        for k in ["h1", "h2"] {
            let _: () = redis::cmd("HSET")
                .arg(k)
                .arg("f")
                .arg("v")
                .query(c)
                .unwrap();
        }
    }
    for args in [
        &["0"][..],
        &["0", "TYPE", "hash"],
        &["0", "MATCH", "s*"],
        &["0", "TYPE", "string", "MATCH", "*2"],
    ] {
        let (a, b) = (scan(&mut h, args), scan(&mut o, args));
        assert_eq!(a, b, "SCAN {args:?}");
        assert_eq!(a.0, "0", "SCAN {args:?}");
    }
    // Many keys, a small COUNT: every key exactly once over the whole iteration.
    let mut p = redis::pipe();
    for i in 0..300 {
        p.set(format!("many:{i}"), i).ignore();
    }
    p.query::<()>(&mut h).unwrap();
    let (mut cursor, mut seen, mut calls) = ("0".to_string(), Vec::new(), 0);
    loop {
        let (next, keys) = scan(&mut h, &[&cursor, "MATCH", "many:*", "COUNT", "7"]);
        seen.extend(keys);
        calls += 1;
        if next == "0" {
            break;
        }
        cursor = next;
        assert!(calls < 5000, "SCAN did not finish");
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 300);
    assert_eq!(seen.len(), 300, "a key came back twice");
}

#[test]
fn scan_fills_count_across_shards_as_one_redis() {
    let (_d, node) = standalone();
    let single = node_url(&format!("127.0.0.1:{}", node.port));
    let env = Env::with(3, 0, |_| {});
    small_keyspace_in_one_call(&env.url(), &single);
    let env = GroupEnv::statik(3, |_| {});
    small_keyspace_in_one_call(&env.url(), &single);
    let env = GroupEnv::sentinel(2, None, |_| {});
    small_keyspace_in_one_call(&env.url(), &single);
}
