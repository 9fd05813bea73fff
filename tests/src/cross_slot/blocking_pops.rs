//! Blocking pops across shards (`cross_slot = "emulate"`), the same scenarios in every backend
//! mode: data already present (compared reply by reply with a standalone redis-server), data
//! arriving while blocked, two shards popping at once (the push-back), a timeout, a client
//! that leaves while blocked.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use hive_common::Slot;
use hive_proxy::server::ProxyHandle;
use redis::Value;

use super::text;
use crate::module_cluster::wait_for;
use crate::{connect, node_url, run};

/// `n` keys named `<prefix>:<i>`, each on a different shard, in shard order.
pub fn keys_apart(proxy: &ProxyHandle, prefix: &str, n: usize) -> Vec<String> {
    let topo = proxy.shared.plane.topology.load();
    let mut found: Vec<(usize, String)> = Vec::new();
    for i in 0..10_000 {
        let key = format!("{prefix}:{i}");
        let shard = topo.map.shard_of(Slot::for_key(key.as_bytes())).unwrap();
        if !found.iter().any(|(s, _)| *s == shard) {
            found.push((shard, key));
        }
        if found.len() == n {
            break;
        }
    }
    assert_eq!(found.len(), n, "{n} shards in the map");
    found.sort();
    found.into_iter().map(|(_, k)| k).collect()
}

/// The master that holds `key`, as the proxy sees it.
pub fn master_of(proxy: &ProxyHandle, key: &str) -> String {
    let topo = proxy.shared.plane.topology.load();
    let i = topo.map.shard_of(Slot::for_key(key.as_bytes())).unwrap();
    topo.map.shards()[i].master.clone()
}

fn blocked_clients(addr: &str) -> u64 {
    crate::info_u64(&mut connect(&node_url(addr)), "blocked_clients")
}

/// Waits until the master of each key has `n` blocked clients.
pub fn wait_blocked(proxy: &ProxyHandle, keys: &[String], n: u64) {
    for k in keys {
        let addr = master_of(proxy, k);
        wait_for(
            &format!("{n} blocked clients on {addr}"),
            Duration::from_secs(10),
            || blocked_clients(&addr) == n,
        );
    }
}

fn words(s: &str) -> Vec<&str> {
    s.split(' ').collect()
}

/// Every blocking pop with data already there, and Redis's argument errors: each reply and
/// then every key compared with a standalone redis-server given the same commands.
pub fn present_matches_standalone(proxy: &ProxyHandle, hive: &str, single: &str) {
    let l = keys_apart(proxy, "bl", 3);
    let z = keys_apart(proxy, "bz", 3);
    let s = keys_apart(proxy, "bs", 1);
    let (l0, l1, l2) = (&l[0], &l[1], &l[2]);
    let (z0, z1, z2) = (&z[0], &z[1], &z[2]);
    let s0 = &s[0];
    let script = [
        format!("RPUSH {l1} x y z"),
        // Only the second key holds anything.
        format!("BLPOP {l0} {l1} {l2} 1"),
        format!("BRPOP {l0} {l1} {l2} 1"),
        format!("RPUSH {l0} a"),
        format!("RPUSH {l2} c d"),
        // Several hold something: the first in the client's order wins.
        format!("BRPOP {l2} {l0} {l1} 1"),
        format!("BLPOP {l1} {l0} 1"),
        format!("BLMPOP 1 3 {l0} {l1} {l2} RIGHT COUNT 5"),
        format!("BLMPOP 1 3 {l0} {l1} {l2} LEFT"),
        format!("ZADD {z1} 1 m1 2 m2 3 m3"),
        format!("ZADD {z2} 0.5 n1"),
        format!("BZPOPMIN {z0} {z1} {z2} 1"),
        format!("BZPOPMAX {z0} {z1} {z2} 1"),
        format!("BZPOPMIN {z2} {z1} 1"),
        format!("BZMPOP 1 3 {z0} {z1} {z2} MIN COUNT 10"),
        format!("RPUSH {l1} e f"),
        format!("BLMOVE {l1} {l2} LEFT RIGHT 1"),
        format!("BRPOPLPUSH {l1} {l0} 1"),
        format!("SET {s0} text"),
        // Wrong types, checked in order as Redis does.
        format!("BLPOP {l1} {s0} 1"),
        format!("BZPOPMIN {z0} {s0} 1"),
        format!("RPUSH {l1} g"),
        format!("BLPOP {l1} {s0} 1"),
        format!("RPUSH {l1} h"),
        format!("BLMOVE {l1} {s0} LEFT LEFT 1"),
        // Argument errors, with Redis's texts.
        format!("BLPOP {l0} {l1} -1"),
        format!("BLPOP {l0} {l1} soon"),
        format!("BLMPOP 0 2 {l0} {l1} UP"),
        format!("BLMPOP 0 2 {l0} {l1} LEFT COUNT 0"),
        format!("BZMPOP 0 2 {z0} {z1} MIN COUNT"),
        format!("BLMOVE {l0} {l1} LEFT UP 0"),
    ];
    let mut h = connect(hive);
    let mut o = connect(single);
    for cmd in &script {
        let (a, b) = (run(&mut h, &words(cmd)), run(&mut o, &words(cmd)));
        assert_eq!(text(a, true), text(b, true), "{cmd}");
    }
    for key in l.iter().chain(&z).chain(&s) {
        for cmd in [format!("TYPE {key}"), format!("DUMP {key}")] {
            let (a, b) = (run(&mut h, &words(&cmd)), run(&mut o, &words(&cmd)));
            assert_eq!(text(a, true), text(b, true), "{cmd}");
        }
    }
}

/// Runs `cmd` through the proxy on a thread of its own.
fn blocked(hive: &str, cmd: String) -> thread::JoinHandle<redis::RedisResult<Value>> {
    let url = hive.to_string();
    thread::spawn(move || {
        let mut c = connect(&url);
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        run(&mut c, &words(&cmd))
    })
}

/// Data arriving on the third shard while a client blocks on three; then a BZPOPMIN.
pub fn arrival_wakes_the_client(proxy: &ProxyHandle, hive: &str) {
    let l = keys_apart(proxy, "arrive", 3);
    let waiter = blocked(hive, format!("BLPOP {} {} {} 0", l[0], l[1], l[2]));
    wait_blocked(proxy, &l, 1);
    let mut c = connect(hive);
    let _: i64 = redis::cmd("RPUSH")
        .arg(&l[2])
        .arg("v")
        .query(&mut c)
        .unwrap();
    let got = waiter.join().unwrap();
    assert_eq!(text(got, true), format!("['{}','v']", l[2]));
    // Every other shard was released.
    wait_blocked(proxy, &l, 0);
    let z = keys_apart(proxy, "arrivez", 3);
    let waiter = blocked(hive, format!("BZPOPMAX {} {} {} 0", z[0], z[1], z[2]));
    wait_blocked(proxy, &z, 1);
    let _: i64 = redis::cmd("ZADD")
        .arg(&z[1])
        .arg(2.5)
        .arg("m")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        text(waiter.join().unwrap(), true),
        format!("['{}','m','2.5']", z[1])
    );
    wait_blocked(proxy, &z, 0);
}

/// Two shards pop for the same client: the first shard's node is held busy by a script that
/// ends with a push of its own, so its blocked connection pops before Hive's CLIENT UNBLOCK
/// reaches it. That element must be pushed back to the head it came from.
pub fn second_pop_is_pushed_back(proxy: &ProxyHandle, hive: &str) {
    let l = keys_apart(proxy, "race", 3);
    let slow = master_of(proxy, &l[0]);
    let mut node = connect(&node_url(&slow));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg("20")
        .query(&mut node)
        .unwrap();
    let waiter = blocked(hive, format!("BLPOP {} {} {} 0", l[0], l[1], l[2]));
    wait_blocked(proxy, &l, 1);
    let script = "local t0 = redis.call('TIME') \
        while true do local t = redis.call('TIME') \
        if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 600000 then break end end \
        return redis.call('RPUSH', KEYS[1], ARGV[1])";
    let busy = {
        let (addr, key) = (slow.clone(), l[0].clone());
        thread::spawn(move || {
            let mut c = connect(&node_url(&addr));
            let n: i64 = redis::cmd("EVAL")
                .arg(script)
                .arg(1)
                .arg(&key)
                .arg("first")
                .query(&mut c)
                .unwrap();
            n
        })
    };
    // The node answers BUSY once the script has run past the threshold.
    wait_for(
        "the script holding the node",
        Duration::from_secs(5),
        || {
            let mut probe = connect(&node_url(&slow));
            matches!(run(&mut probe, &["PING"]), Err(e) if e.code() == Some("BUSY"))
        },
    );
    let mut other = connect(&node_url(&master_of(proxy, &l[2])));
    let _: i64 = redis::cmd("RPUSH")
        .arg(&l[2])
        .arg("second")
        .query(&mut other)
        .unwrap();
    let got = waiter.join().unwrap();
    assert_eq!(busy.join().unwrap(), 1);
    assert_eq!(text(got, true), format!("['{}','second']", l[2]));
    let mut c = connect(hive);
    let left: Vec<String> = redis::cmd("LRANGE")
        .arg(&l[0])
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        left,
        vec!["first"],
        "the element the first shard popped is back"
    );
    let n: i64 = redis::cmd("LLEN").arg(&l[2]).query(&mut c).unwrap();
    assert_eq!(n, 0);
    wait_blocked(proxy, &l, 0);
}

/// A timeout gives the null Redis gives, after the timeout and not much later.
pub fn timeout_gives_null(proxy: &ProxyHandle, hive: &str) {
    let l = keys_apart(proxy, "late", 3);
    let mut c = connect(hive);
    let t = Instant::now();
    let got = run(&mut c, &["BLPOP", &l[0], &l[1], &l[2], "0.5"]);
    let took = t.elapsed();
    assert_eq!(text(got, true), "nil");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    wait_blocked(proxy, &l, 0);
}

/// A client that disconnects while blocked releases every shard, and a later push is still
/// there for the next reader.
pub fn client_gone_loses_nothing(proxy: &ProxyHandle, hive_addr: std::net::SocketAddr) {
    use std::io::Write;
    let l = keys_apart(proxy, "gone", 3);
    let mut s = TcpStream::connect(hive_addr).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(
        format!("*5\r\n$5\r\nBLPOP\r\n${}\r\n{}\r\n", l[0].len(), l[0]).as_bytes(),
    );
    for k in &l[1..] {
        req.extend_from_slice(format!("${}\r\n{k}\r\n", k.len()).as_bytes());
    }
    req.extend_from_slice(b"$1\r\n0\r\n");
    s.write_all(&req).unwrap();
    wait_blocked(proxy, &l, 1);
    drop(s);
    wait_blocked(proxy, &l, 0);
    let mut c = connect(&format!("redis://{hive_addr}/"));
    let _: i64 = redis::cmd("RPUSH")
        .arg(&l[1])
        .arg("kept")
        .query(&mut c)
        .unwrap();
    let n: i64 = redis::cmd("LLEN").arg(&l[1]).query(&mut c).unwrap();
    assert_eq!(n, 1, "nobody popped for the client that left");
}
