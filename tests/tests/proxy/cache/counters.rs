//! The near cache's INFO counters count from CONFIG RESETSTAT on, as Redis's `keyspace_hits`
//! and `keyspace_misses` do (a benchmark that resets them reads its own run's hit ratio).

use std::time::Duration;

use hive_tests::module_cluster::wait_for;
use hive_tests::{connect, info_u64, node_url, Env};

fn info_str(c: &mut redis::Connection, field: &str) -> String {
    let text: String = redis::cmd("INFO").query(c).unwrap();
    hive_common::info::field(&text, field)
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .to_string()
}

/// Reads `key` through Hive until a read of it is a hit.
fn cached(c: &mut redis::Connection, key: &str, value: &str) {
    let before = super::hits(c);
    wait_for("a hit", Duration::from_secs(10), || {
        let v: String = redis::cmd("GET").arg(key).query(c).unwrap();
        assert_eq!(v, value);
        super::hits(c) > before
    });
}

#[test]
fn cache_counters_start_again_on_config_resetstat() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, super::on);
    let mut c = env.client();
    super::ready(&mut c);
    // Cached, then changed through Hive (its entry goes), then cached again.
    for value in ["v", "w"] {
        let _: () = redis::cmd("SET").arg("k").arg(value).query(&mut c).unwrap();
        cached(&mut c, "k", value);
    }
    // The node's own report of those writes may come after the hit above and drop the entry
    // once more: a write made on the node to a key of the same slot is reported after them,
    // so once its report is in, so are theirs, and a last read caches `k` for good.
    let _: () = redis::cmd("SET")
        .arg("{k}fence")
        .arg("f")
        .query(&mut c)
        .unwrap();
    cached(&mut c, "{k}fence", "f");
    let invalidations = info_u64(&mut c, "cache_invalidations");
    let mut node = connect(&node_url(&hive_tests::shard_nodes(&env.proxy, "k").0));
    let _: () = redis::cmd("SET")
        .arg("{k}fence")
        .arg("g")
        .query(&mut node)
        .unwrap();
    wait_for("the node's report", Duration::from_secs(10), || {
        info_u64(&mut c, "cache_invalidations") > invalidations
    });
    cached(&mut c, "k", "w");
    for field in ["cache_misses", "cache_fills", "cache_invalidations"] {
        assert!(info_u64(&mut c, field) > 0, "{field} before the reset");
    }
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    for field in [
        "cache_hits",
        "cache_misses",
        "cache_fills",
        "cache_invalidations",
        "cache_evictions",
        "cache_flushes",
    ] {
        assert_eq!(info_u64(&mut c, field), 0, "{field} after the reset");
    }
    assert_eq!(info_str(&mut c, "cache_hit_ratio"), "0.0000");
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "w");
    assert_eq!(super::hits(&mut c), 1);
    assert_eq!(info_u64(&mut c, "cache_misses"), 0);
    assert_eq!(info_str(&mut c, "cache_hit_ratio"), "1.0000");
    // The entry itself stays (the fence's went with its write on the node): only the
    // counting starts again.
    assert_eq!(info_u64(&mut c, "cache_keys"), 1);
}
