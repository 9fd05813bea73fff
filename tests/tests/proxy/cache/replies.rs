//! Reads answered by the near cache give the bytes one redis-server gives, in RESP2 and RESP3:
//! each read below runs twice on Hive (a fill, then a hit) and is compared frame by frame.

use hive_tests::{single_node, Env};

use crate::tracking::{Session, Step, Step::*};

/// Runs `steps` on Hive (cache on, in front of a 3-master cluster) and one redis-server.
fn same(name: &str, steps: &[Step]) -> u64 {
    let _g = hive_tests::heavy();
    let dir = tempfile::tempdir().unwrap();
    let redis = single_node(&dir, false);
    let env = Env::with(3, 0, super::on);
    let mut c = env.client();
    super::ready(&mut c);
    let before = super::hits(&mut c);
    // Client ids above any integer the transcripts expect, on both servers (a session shows
    // its own id as `ID0`).
    for addr in [redis.addr.clone(), env.proxy.addr.to_string()] {
        for _ in 0..64 {
            drop(std::net::TcpStream::connect(&addr).unwrap());
        }
    }
    let want = Session::open(&redis.addr, 1).run(steps);
    let got = Session::open(&env.proxy.addr.to_string(), 1).run(steps);
    assert_eq!(
        got, want,
        "{name}: Hive (left) and redis-server (right) differ"
    );
    super::hits(&mut c) - before
}

/// Every read the cache answers, on a string, a hash, a missing key and a key of another
/// type, twice each (with `HELLO 3` first when `resp3`).
fn reads(resp3: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if resp3 {
        steps.push(Send(0, &["HELLO", "3"]));
        steps.push(Expect(0, 1));
    }
    for w in [
        &["SET", "{t}s", "value"][..],
        &["HSET", "{t}h", "f1", "v1", "f2", "v2"],
        &["RPUSH", "{t}l", "x"],
        &["SET", "{t}e", ""],
    ] {
        steps.push(Send(0, w));
        steps.push(Expect(0, 1));
    }
    const READS: &[&[&str]] = &[
        &["GET", "{t}s"],
        &["GET", "{t}e"],
        &["GET", "{t}none"],
        &["GET", "{t}h"],
        &["STRLEN", "{t}s"],
        &["STRLEN", "{t}none"],
        &["HGETALL", "{t}h"],
        &["HGETALL", "{t}none"],
        &["HGET", "{t}h", "f1"],
        &["HGET", "{t}h", "nofield"],
        &["HGET", "{t}none", "f1"],
        &["HGET", "{t}s", "f1"],
        &["MGET", "{t}s", "{t}none", "{t}h", "{t}l", "{t}e"],
        &["EXISTS", "{t}s", "{t}h", "{t}none", "{t}s"],
        &["GET"],
        &["GET", "{t}s", "extra"],
    ];
    for _ in 0..2 {
        for r in READS {
            steps.push(Send(0, r));
            steps.push(Expect(0, 1));
        }
    }
    // A write through the same connection: the next read sees it.
    steps.push(Send(0, &["APPEND", "{t}s", "+more"]));
    steps.push(Send(0, &["GET", "{t}s"]));
    steps.push(Send(0, &["HSET", "{t}h", "f1", "new"]));
    steps.push(Send(0, &["HGET", "{t}h", "f1"]));
    steps.push(Send(0, &["HGETALL", "{t}h"]));
    steps.push(Send(0, &["DEL", "{t}s"]));
    steps.push(Send(0, &["EXISTS", "{t}s"]));
    steps.push(Expect(0, 7));
    steps
}

#[test]
fn cache_replies_match_redis_resp2() {
    let hits = same("RESP2", &reads(false));
    assert!(
        hits >= 8,
        "the second round was answered from the cache: {hits} hits"
    );
}

#[test]
fn cache_replies_match_redis_resp3() {
    let hits = same("RESP3", &reads(true));
    assert!(
        hits >= 8,
        "the second round was answered from the cache: {hits} hits"
    );
}

#[test]
fn cache_pipelined_hits_keep_request_order() {
    let steps: Vec<Step> = [
        Send(0, &["SET", "{p}a", "1"]),
        Send(0, &["GET", "{p}a"]),
        Send(0, &["GET", "{p}a"]),
        Send(0, &["INCR", "{p}a"]),
        Send(0, &["GET", "{p}a"]),
        Send(0, &["PING"]),
        Send(0, &["GET", "{p}a"]),
        Send(0, &["SET", "{p}a", "x"]),
        Send(0, &["GET", "{p}a"]),
        Expect(0, 9),
    ]
    .into_iter()
    .collect();
    same("pipeline", &steps);
}
