//! What only a proxy in front of many nodes must do for CLIENT TRACKING: report a change made
//! on a node directly or through another Hive, flush its clients after a failover (the new
//! master never knew what they read), work in Sentinel and static modes, and keep its table
//! within `tracking_table_max_keys`.

use hive_proxy::server::ProxyHandle;
use hive_tests::{connect, node_url, Env, GroupEnv};

use super::Session;

const PUSH_K: &str = ">2\r\n$10\r\ninvalidate\r\n*1\r\n";
const FLUSH: &str = ">2\r\n$10\r\ninvalidate\r\n_\r\n";

fn push_of(key: &str) -> String {
    format!("{PUSH_K}${}\r\n{key}\r\n", key.len())
}

/// A RESP3 tracking session on `addr` that has read `keys`.
fn tracking(addr: &str, keys: &[&str]) -> Session {
    let mut s = Session::open(addr, 1);
    s.send(0, &["HELLO", "3"]);
    s.frame(0);
    s.send(0, &["CLIENT", "TRACKING", "on"]);
    assert_eq!(s.frame(0), "+OK\r\n");
    for k in keys {
        s.send(0, &["GET", k]);
        s.frame(0);
    }
    s
}

fn set(url: &str, key: &str, v: &str) {
    let mut c = connect(url);
    let _: () = redis::cmd("SET").arg(key).arg(v).query(&mut c).unwrap();
}

#[test]
fn tracking_reports_changes_made_on_a_node_and_through_another_hive() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, |_| {});
    let mut other = hive_proxy::config::Config::default();
    other.proxy.listen = "127.0.0.1:0".into();
    other.backend.seeds = env.cluster.master_addrs();
    let other = ProxyHandle::start(other).unwrap();
    let mut s = tracking(&env.proxy.addr.to_string(), &["k1", "k2"]);
    set(
        &node_url(&hive_tests::shard_nodes(&env.proxy, "k1").0),
        "k1",
        "on the node",
    );
    assert_eq!(s.frame(0), push_of("k1"));
    set(
        &format!("redis://{}/", other.addr),
        "k2",
        "through another Hive",
    );
    assert_eq!(s.frame(0), push_of("k2"));
    let mut c = env.client();
    assert_eq!(hive_tests::info_u64(&mut c, "tracking_clients"), 1);
    assert!(hive_tests::info_u64(&mut c, "tracking_invalidations") >= 2);
}

#[test]
fn tracking_flushes_after_a_failover_and_follows_the_new_master() {
    let _g = hive_tests::heavy();
    let env = Env::cluster();
    let mut s = tracking(&env.proxy.addr.to_string(), &["k"]);
    let replica = hive_tests::take_over(&env.proxy, "k");
    // The new master never saw what this client read: it is told to drop everything.
    assert_eq!(s.frame(0), FLUSH);
    s.send(0, &["GET", "k"]);
    s.frame(0);
    set(&node_url(&replica), "k", "on the new master");
    assert_eq!(s.frame(0), push_of("k"));
}

#[test]
fn tracking_works_in_sentinel_and_static_modes() {
    let _g = hive_tests::heavy();
    for env in [
        GroupEnv::statik(2, |_| {}),
        GroupEnv::sentinel(1, None, |_| {}),
    ] {
        let tag = env.tag_of(0);
        let (a, b) = (format!("{tag}a"), format!("{tag}b"));
        let mut s = tracking(&env.proxy.addr.to_string(), &[&a, &b]);
        let mut n = env.node(&env.routed_master(0));
        let _: () = redis::cmd("SET").arg(&a).arg(1).query(&mut n).unwrap();
        assert_eq!(s.frame(0), push_of(&a));
        set(&env.url(), &b, "2");
        assert_eq!(s.frame(0), push_of(&b));
    }
}

#[test]
fn tracking_table_bound_evicts_the_oldest_key_with_an_invalidation() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 0, |c| c.proxy.tracking_table_max_keys = 2);
    let mut s = tracking(&env.proxy.addr.to_string(), &["a", "b", "c"]);
    assert_eq!(s.frame(0), push_of("a"));
    let mut c = env.client();
    assert_eq!(hive_tests::info_u64(&mut c, "tracking_total_keys"), 2);
    assert_eq!(hive_tests::info_u64(&mut c, "tracking_evictions"), 1);
}
