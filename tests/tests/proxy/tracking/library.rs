//! A caching client library through Hive: node-redis 5's client-side cache (RESP3, CLIENT
//! TRACKING), which works against Redis 7.0 (redis-py's refuses servers below 7.4).

use std::path::PathBuf;
use std::process::Command;

use hive_common::Slot;
use hive_tests::Env;

#[test]
fn tracking_node_redis_client_cache_stays_fresh_through_hive() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, |_| {});
    let key = "cache:user:1";
    let node = {
        let t = env.proxy.shared.plane.topology.load();
        let i = t.map.shard_of(Slot::for_key(key.as_bytes())).unwrap();
        t.map.shards()[i].master.clone()
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let modules = root.join("../target/node/node_modules");
    assert!(
        modules.join("redis").exists(),
        "{}: run deploy/local/test.sh, which installs node-redis from npm",
        modules.display()
    );
    let out = Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(root.join("js/client_cache.js"))
        .args([
            "--port",
            &env.port().to_string(),
            "--node",
            &node,
            "--key",
            key,
        ])
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the report");
    eprintln!("node-redis client cache through Hive: {r}");
    assert_eq!(r["first"], serde_json::json!(["1", "1"]));
    assert_eq!(r["misses_after_two_reads"], 1, "{r}");
    assert_eq!(r["hits_after_two_reads"], 1, "{r}");
    for k in ["fresh_ms_after_hive_write", "fresh_ms_after_node_write"] {
        let ms = r[k].as_i64().unwrap();
        assert!((0..2000).contains(&ms), "{k}: {r}");
    }
}
