//! Commands across slots compared with a single standalone Redis: the same data and the same
//! commands on both, every reply and every key's final value equal.

pub mod blocking_pops;

use redis::Value;

use crate::connect;

/// Written the same way on both sides first.
pub const SETUP: &[&[&str]] = &[
    &["SADD", "s1", "a", "b", "c", "d"],
    &["SADD", "s2", "c", "d", "e"],
    &["SADD", "s3", "d", "x"],
    &["ZADD", "z1", "1", "a", "2", "b", "3", "c"],
    &["ZADD", "z2", "5", "b", "1", "c", "7", "q"],
    &["PFADD", "h1", "a", "b", "c"],
    &["PFADD", "h2", "c", "d", "e"],
    &["SET", "k1", "ohmytext"],
    &["SET", "k2", "mynewtext"],
    &["RPUSH", "l1", "1", "2", "3"],
    &["RPUSH", "l2", "x"],
    &["SET", "r1", "v1", "PX", "100000"],
    &["SET", "bits1", "foo"],
    &["SET", "bits2", "bar"],
    &["SET", "n1", "a"],
    &[
        "GEOADD",
        "g1",
        "13.361389",
        "38.115556",
        "Palermo",
        "15.087269",
        "37.502669",
        "Catania",
    ],
];

/// `(command, reply order matters)`.
pub const COMMANDS: &[(&[&str], bool)] = &[
    (&["SUNION", "s1", "s2", "s3"], false),
    (&["SINTER", "s1", "s2"], false),
    (&["SDIFF", "s1", "s2"], false),
    (&["SINTERCARD", "2", "s1", "s2"], true),
    (&["SUNIONSTORE", "d1", "s1", "s2"], true),
    (&["SINTERSTORE", "d2", "s1", "s3"], true),
    (&["SDIFFSTORE", "d3", "s1", "s2", "s3"], true),
    (&["SINTERSTORE", "d2", "s1", "nosuch"], true),
    (&["SMOVE", "s1", "s3", "a"], true),
    (&["SMOVE", "s1", "s3", "zz"], true),
    (&["ZUNION", "2", "z1", "z2", "WITHSCORES"], true),
    (
        &[
            "ZINTER",
            "2",
            "z1",
            "z2",
            "WEIGHTS",
            "2",
            "3",
            "AGGREGATE",
            "MAX",
            "WITHSCORES",
        ],
        true,
    ),
    (&["ZINTERCARD", "2", "z1", "z2"], true),
    (&["ZDIFF", "2", "z1", "z2", "WITHSCORES"], true),
    (&["ZUNIONSTORE", "zd", "2", "z1", "z2"], true),
    (&["ZINTERSTORE", "zd2", "2", "z1", "z2"], true),
    (&["ZDIFFSTORE", "zd3", "2", "z1", "z2"], true),
    (&["ZRANGESTORE", "zr", "z1", "0", "1"], true),
    (&["PFCOUNT", "h1", "h2"], true),
    (&["PFMERGE", "hm", "h1", "h2"], true),
    (&["LCS", "k1", "k2"], true),
    (&["LCS", "k1", "k2", "LEN"], true),
    (&["LCS", "k1", "k2", "IDX", "WITHMATCHLEN"], true),
    (&["BITOP", "AND", "bd", "bits1", "bits2"], true),
    (&["RPOPLPUSH", "l1", "l2"], true),
    (&["LMOVE", "l1", "l2", "LEFT", "RIGHT"], true),
    (&["LMOVE", "nosuch", "l2", "LEFT", "RIGHT"], true),
    (&["LMPOP", "2", "nosuch", "l2", "LEFT", "COUNT", "1"], true),
    (&["ZMPOP", "2", "nosuch", "z2", "MIN"], true),
    (&["RENAME", "r1", "r2"], true),
    (&["RENAMENX", "r2", "n1"], true),
    (&["COPY", "n1", "c1"], true),
    (&["COPY", "n1", "c1"], true),
    (&["COPY", "k1", "c1", "REPLACE"], true),
    (&["MSETNX", "m1", "x", "m2", "y"], true),
    (&["MSETNX", "m2", "z", "m3", "w"], true),
    (&["SORT", "l2", "ALPHA", "STORE", "sd"], true),
    (
        &["GEORADIUS", "g1", "15", "37", "200", "km", "STORE", "gd"],
        true,
    ),
    (
        &[
            "GEOSEARCHSTORE",
            "gs",
            "g1",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
        ],
        true,
    ),
    // Redis's own errors.
    (&["SUNION", "s1", "k1"], true),
    (&["RENAME", "nosuch", "x"], true),
    (&["SUNIONSTORE", "k2", "s1", "k1"], true),
];

/// Every key the commands leave behind.
pub const KEYS: &[&str] = &[
    "s1", "s2", "s3", "d1", "d2", "d3", "z1", "z2", "zd", "zd2", "zd3", "zr", "h1", "h2", "hm",
    "k1", "k2", "l1", "l2", "r1", "r2", "n1", "c1", "m1", "m2", "m3", "sd", "bd", "g1", "gd", "gs",
];

/// SORT with BY/GET patterns that name keys of other shards.
pub const SORT_SETUP: &[&[&str]] = &[
    &["RPUSH", "sl", "3", "1", "2"],
    &["SADD", "ss", "b", "a", "c"],
    &[
        "MSET", "w_1", "30", "w_2", "10", "w_3", "20", "w_a", "2", "w_b", "1",
    ],
    &["HSET", "o_1", "n", "one"],
    &["HSET", "o_2", "n", "two"],
    &["HSET", "o_3", "n", "three"],
];

pub const SORT_COMMANDS: &[&[&str]] = &[
    &["SORT", "sl", "BY", "w_*", "GET", "#", "GET", "o_*->n"],
    &[
        "SORT", "sl", "BY", "w_*", "DESC", "LIMIT", "0", "2", "GET", "o_*->n",
    ],
    &["SORT", "ss", "ALPHA", "GET", "w_*", "GET", "#"],
    &["SORT", "sl", "BY", "w_*", "STORE", "sdst"],
    &["SORT_RO", "sl", "BY", "w_*", "GET", "#"],
    &["SORT", "sl", "BY", "nosort", "GET", "o_*->n"],
    &["SORT", "k1", "BY", "w_*"],
];

/// Runs SORT_SETUP and SORT_COMMANDS on Hive and on a standalone Redis and compares.
pub fn sort_patterns_match_standalone(hive: &str, single: &str) {
    let mut h = connect(hive);
    let mut s = connect(single);
    for cmd in SORT_SETUP.iter().chain(SORT_COMMANDS) {
        let (a, b) = (run(&mut h, cmd), run(&mut s, cmd));
        assert_eq!(text(a, true), text(b, true), "{cmd:?}");
    }
    assert_eq!(value(&mut h, "sdst"), value(&mut s, "sdst"));
    let scratch: Vec<String> = redis::cmd("KEYS").arg("*hive:x:*").query(&mut h).unwrap();
    assert!(scratch.is_empty(), "{scratch:?}");
}

/// Runs SETUP and COMMANDS on Hive (`hive`) and on a standalone Redis (`single`) and compares.
pub fn matches_standalone(hive: &str, single: &str) {
    let mut h = connect(hive);
    let mut s = connect(single);
    for cmd in SETUP {
        assert_eq!(
            text(run(&mut h, cmd), true),
            text(run(&mut s, cmd), true),
            "{cmd:?}"
        );
    }
    for (cmd, ordered) in COMMANDS {
        let (a, b) = (run(&mut h, cmd), run(&mut s, cmd));
        assert_eq!(text(a, *ordered), text(b, *ordered), "{cmd:?}");
    }
    for key in KEYS {
        assert_eq!(value(&mut h, key), value(&mut s, key), "key {key}");
    }
    // Nothing of the proxy's own is left behind.
    let scratch: Vec<String> = redis::cmd("KEYS").arg("*hive:x:*").query(&mut h).unwrap();
    assert!(scratch.is_empty(), "{scratch:?}");
}

fn run(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    crate::run(c, args)
}

/// A key's type, content (sorted where Redis keeps no order) and whether it has a TTL.
fn value(c: &mut redis::Connection, key: &str) -> String {
    let ty: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    let body = match ty.as_str() {
        "string" => run(c, &["GET", key]),
        "set" => run(c, &["SMEMBERS", key]),
        "zset" => run(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        "list" => run(c, &["LRANGE", key, "0", "-1"]),
        _ => Ok(Value::Nil),
    };
    let pttl: i64 = redis::cmd("PTTL").arg(key).query(c).unwrap();
    format!("{ty} {} ttl={}", text(body, ty != "set"), pttl > 0)
}

/// A reply as text; arrays sorted when `ordered` is false.
pub fn text(r: redis::RedisResult<Value>, ordered: bool) -> String {
    match r {
        Err(e) => format!(
            "error {} {}",
            e.code().unwrap_or("?"),
            e.detail().unwrap_or("")
        ),
        Ok(v) => show(&v, ordered),
    }
}

fn show(v: &Value, ordered: bool) -> String {
    match v {
        Value::Array(items) | Value::Set(items) => {
            let mut parts: Vec<String> = items.iter().map(|i| show(i, true)).collect();
            if !ordered {
                parts.sort();
            }
            format!("[{}]", parts.join(","))
        }
        Value::BulkString(b) => format!("'{}'", String::from_utf8_lossy(b)),
        Value::SimpleString(s) => format!("+{s}"),
        other => format!("{other:?}"),
    }
}

/// `proxy.cross_slot = "emulate"`, for `Env::with` and `GroupEnv`.
pub fn emulate(c: &mut hive_proxy::config::Config) {
    c.proxy.cross_slot = hive_proxy::config::CrossSlot::Emulate;
}

/// One standalone redis-server to compare with, and its URL.
pub fn standalone() -> (tempfile::TempDir, hive_local::RedisProcess, String) {
    let dir = tempfile::tempdir().unwrap();
    let node = crate::single_node(&dir, false);
    let url = crate::node_url(&format!("127.0.0.1:{}", node.port));
    (dir, node, url)
}
