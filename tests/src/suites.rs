//! Checks every backend mode must pass: keys on their owning node, split and merged multi-key
//! commands, and pipelines across shards keeping their order.

use std::collections::HashMap;

use hive_common::Slot;
use hive_proxy::server::ProxyHandle;
use redis::{Commands, Value};

use crate::connect;

/// `redis://[:password@]addr/`
pub fn url(addr: &str, password: Option<&str>) -> String {
    match password {
        Some(p) => format!("redis://:{p}@{addr}/"),
        None => format!("redis://{addr}/"),
    }
}

/// Writes 1,000 keys through the proxy and finds each one directly on the master the proxy's
/// topology names for its slot; every master gets a share.
pub fn keys_land_on_owners(proxy: &ProxyHandle, password: Option<&str>) {
    let mut c = connect(&url(&proxy.addr.to_string(), None));
    for i in 0..1000 {
        let _: () = c.set(format!("key:{i}"), i).unwrap();
    }
    let topo = proxy.shared.plane.topology.load();
    let mut direct: HashMap<String, redis::Connection> = HashMap::new();
    for i in 0..1000 {
        let key = format!("key:{i}");
        let shard = topo.map.shard_of(Slot::for_key(key.as_bytes())).unwrap();
        let addr = topo.map.shards()[shard].master.clone();
        let con = direct
            .entry(addr.clone())
            .or_insert_with(|| connect(&url(&addr, password)));
        let v: i64 = con.get(&key).unwrap();
        assert_eq!(v, i, "{key} on {addr}");
    }
    assert_eq!(direct.len(), topo.map.shards().len());
}

/// MSET/MGET/EXISTS/TOUCH/DEL/UNLINK/DBSIZE across shards, same-slot pass-through, CROSSSLOT.
pub fn splits_merge(proxy_url: &str) {
    let mut c = connect(proxy_url);
    let start: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("mk{i}")).collect();
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), format!("v-{k}"))).collect();
    let _: () = redis::cmd("MSET").arg(&pairs).query(&mut c).unwrap();
    let mut ask: Vec<String> = keys.clone();
    ask.insert(10, "missing".into());
    let got: Vec<Option<String>> = redis::cmd("MGET").arg(&ask).query(&mut c).unwrap();
    let want: Vec<Option<String>> = ask
        .iter()
        .map(|k| (k != "missing").then(|| format!("v-{k}")))
        .collect();
    assert_eq!(got, want);
    let n: i64 = redis::cmd("EXISTS")
        .arg(&ask)
        .arg("mk0")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 51);
    let n: i64 = redis::cmd("TOUCH").arg(&keys[..10]).query(&mut c).unwrap();
    assert_eq!(n, 10);
    let n: i64 = redis::cmd("DEL")
        .arg(&keys[..20])
        .arg("missing")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 20);
    let n: i64 = redis::cmd("UNLINK").arg(&keys[20..]).query(&mut c).unwrap();
    assert_eq!(n, 30);
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, start);
    let _: () = c.set("{u}a", "1").unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("{u}a")
        .arg("{u}b")
        .query(&mut c)
        .unwrap();
    let e = redis::cmd("RENAME")
        .arg("{u}b")
        .arg("other")
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(e.code(), Some("CROSSSLOT"));
    let e = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("wrong number of arguments for 'mset'"),
        "{e}"
    );
}

/// A 4,000+ command pipeline over every shard comes back in request order.
pub fn pipeline_keeps_order(proxy_url: &str) {
    let mut c = connect(proxy_url);
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        p.cmd("INCR").arg(format!("p{i}"));
        if i % 100 == 0 {
            p.cmd("MGET")
                .arg(format!("p{i}"))
                .arg(format!("p{}", i + 1))
                .arg("nope");
            p.cmd("PING");
        }
    }
    let out: Vec<Value> = p.query(&mut c).unwrap();
    let mut it = out.into_iter();
    for i in 0..2000i64 {
        assert_eq!(it.next(), Some(Value::Int(i + 1)), "INCR p{i}");
        if i % 100 == 0 {
            let Some(Value::Array(mget)) = it.next() else {
                panic!("MGET {i}")
            };
            assert_eq!(mget[0], Value::BulkString((i + 1).to_string().into_bytes()));
            assert_eq!(mget[1], Value::Nil);
            assert_eq!(mget[2], Value::Nil);
            assert_eq!(it.next(), Some(Value::SimpleString("PONG".into())));
        }
    }
    assert_eq!(it.next(), None);
}
