//! GETs of a key whose fill is on its way wait for that fill instead of going to the node:
//! the node reads the key once per fill, the client gets its replies in order, and a read
//! after a write waits for a fill sent after that write.

use hive_tests::{connect, info_u64, node_url, Env};

/// How many GETs the node behind `c`'s key `k` has run.
fn node_gets(node: &mut redis::Connection) -> u64 {
    let text: String = redis::cmd("INFO").arg("commandstats").query(node).unwrap();
    hive_common::info::field(&text, "cmdstat_get")
        .and_then(|v| v.strip_prefix("calls="))
        .and_then(|v| v.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn cache_gets_of_a_key_being_filled_wait_for_that_fill() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, super::on);
    let mut c = env.client();
    super::ready(&mut c);
    let mut node = connect(&node_url(&hive_tests::shard_nodes(&env.proxy, "k").0));
    let _: () = redis::cmd("SET").arg("k").arg("v1").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut node)
        .unwrap();
    let joined = info_u64(&mut c, "cache_joined");
    // One batch: 50 reads, a write, 50 reads.
    let mut p = redis::pipe();
    for _ in 0..50 {
        p.cmd("GET").arg("k");
    }
    p.cmd("SET").arg("k").arg("v2").ignore();
    for _ in 0..50 {
        p.cmd("GET").arg("k");
    }
    let got: Vec<String> = p.query(&mut c).unwrap();
    let want: Vec<&str> = [["v1"; 50], ["v2"; 50]].concat();
    assert_eq!(
        got, want,
        "replies out of order, or a read older than the write"
    );
    // One fill before the write and one after it; every other read waited for one of them.
    assert_eq!(node_gets(&mut node), 2);
    assert_eq!(info_u64(&mut c, "cache_joined") - joined, 98);
}
