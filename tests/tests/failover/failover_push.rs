//! The failover push: hive-module's `__hive__:events` make the proxy follow a promotion when
//! the node reports it. In a cluster, from the promoted node's own map; under Sentinel, only
//! for the replica Sentinel selected during a failover it runs.

use std::time::{Duration, Instant};

use hive_local::{GroupOpts, LocalGroups};
use hive_proxy::config::{Config, Mode};
use hive_proxy::server::ProxyHandle;
use hive_tests::module_cluster::{deployment, field, proxy_for, wait_for};
use hive_tests::{connect, module_so, node_url};
use redis::Commands;

fn masters_of(proxy: &ProxyHandle) -> Vec<String> {
    let t = proxy.shared.plane.topology.load();
    t.map.shards().iter().map(|s| s.master.clone()).collect()
}

fn info(proxy: &ProxyHandle) -> String {
    let mut c = connect(&format!("redis://{}/", proxy.addr));
    redis::cmd("INFO").query(&mut c).unwrap()
}

/// Every node the proxy routes to (masters and replicas).
fn nodes_of(proxy: &ProxyHandle) -> Vec<String> {
    let t = proxy.shared.plane.topology.load();
    t.map
        .shards()
        .iter()
        .flat_map(|s| std::iter::once(s.master.clone()).chain(s.replicas.iter().cloned()))
        .collect()
}

/// Waits until the failover push is subscribed on every node of `addrs`, as each node counts
/// its subscribers of `__hive__:events`.
fn wait_subscribed(addrs: &[String]) {
    for a in addrs {
        let mut c = connect(&node_url(a));
        wait_for(
            "the failover push subscription",
            Duration::from_secs(10),
            || {
                let (_, n): (String, i64) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg("__hive__:events")
                    .query(&mut c)
                    .unwrap();
                n >= 1
            },
        );
    }
}

/// The proxy's `topology_refreshes` so far.
fn refreshes(proxy: &ProxyHandle) -> u64 {
    field(&info(proxy), "topology_refreshes")
}

/// Two proxies on one cluster that never re-read the topology on their own (60 s timer, no
/// traffic): the one with the push follows a promotion at once; the one without still
/// routes to the old master.
#[test]
fn failover_push_follows_a_promotion_without_waiting_for_a_poll() {
    let d = deployment(|c| c.backend.refresh_interval_ms = 60_000);
    let blind = proxy_for(&d.cluster, |c| {
        c.backend.refresh_interval_ms = 60_000;
        c.backend.failover_push = false;
    });
    wait_subscribed(&nodes_of(&d.proxy));
    let old = d.masters()[0].clone();
    let replica = d.replica_of(0);
    let mut r = connect(&node_url(&replica));
    let _: String = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("TAKEOVER")
        .query(&mut r)
        .unwrap();
    let promoted = Instant::now();
    wait_for("the pushed promotion", Duration::from_secs(5), || {
        masters_of(&d.proxy).contains(&replica)
    });
    let followed_in = promoted.elapsed();
    let masters = masters_of(&blind);
    assert!(
        masters.contains(&old),
        "without the push nothing re-read the map: {masters:?}"
    );
    assert!(!masters.contains(&replica));
    let mut c = d.client();
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    assert!(field(&info, "failover_pushes") >= 1, "{info}");
    assert!(field(&info, "module_events") >= 1);
    // Writes through either proxy land (the blind one follows the MOVED).
    let tag = d.tag_of(0);
    let _: () = c.set(format!("{tag}a"), 1).unwrap();
    let mut b = connect(&format!("redis://{}/", blind.addr));
    let _: () = b.set(format!("{tag}b"), 2).unwrap();
    eprintln!("promotion followed in {} ms", followed_in.as_millis());
}

/// One master + replica group with hive-module, 3 sentinels, and a proxy that sees both.
fn sentinel_group() -> (tempfile::TempDir, LocalGroups, ProxyHandle) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = GroupOpts::new(1, 3, dir.path().to_path_buf());
    opts.extra = vec!["--loadmodule".into(), module_so().display().to_string()];
    let groups = LocalGroups::start(&opts).expect("groups");
    let mut config = Config::default();
    config.proxy.listen = "127.0.0.1:0".into();
    config.backend.mode = Mode::Sentinel;
    config.backend.sentinels = groups.sentinel_addrs();
    config.backend.shards = groups.sentinel_shards();
    let proxy = ProxyHandle::start(config).expect("proxy");
    wait_for("the group and its replica", Duration::from_secs(15), || {
        let t = proxy.shared.plane.topology.load();
        t.map.shards().len() == 1 && !t.map.shards()[0].replicas.is_empty()
    });
    (dir, groups, proxy)
}

fn routed_master(proxy: &ProxyHandle) -> String {
    proxy.shared.plane.topology.load().map.shards()[0]
        .master
        .clone()
}

fn replicaof(addr: &str, master: Option<&str>) {
    let mut c = connect(&node_url(addr));
    let (host, port) = match master {
        Some(m) => m.rsplit_once(':').unwrap(),
        None => ("NO", "ONE"),
    };
    let _: String = redis::cmd("REPLICAOF")
        .arg(host)
        .arg(port)
        .query(&mut c)
        .unwrap();
}

/// A promotion reported outside a Sentinel failover is not trusted (Sentinel would demote the
/// node again, and writes to it would be lost); during one, the replica Sentinel selected
/// takes the writes at once, and the periodic re-check keeps it.
#[test]
fn failover_push_in_sentinel_mode_follows_only_the_selected_replica() {
    let (_dir, _groups, proxy) = sentinel_group();
    let master = routed_master(&proxy);
    let replica = proxy.shared.plane.topology.load().map.shards()[0].replicas[0].clone();
    wait_subscribed(&nodes_of(&proxy));

    // No failover in progress: the proxy re-asks Sentinel, which still names the master.
    let before = refreshes(&proxy);
    replicaof(&replica, None);
    wait_for("the event", Duration::from_secs(5), || {
        field(&info(&proxy), "module_events") >= 1
    });
    wait_for("Sentinel asked again", Duration::from_secs(5), || {
        refreshes(&proxy) > before
    });
    assert_eq!(routed_master(&proxy), master);
    assert_eq!(field(&info(&proxy), "failover_pushes"), 0);
    replicaof(&replica, Some(&master));
    let mut r = connect(&node_url(&replica));
    wait_for("the replica back in sync", Duration::from_secs(10), || {
        let s: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap();
        s.contains("master_link_status:up")
    });
    // Sentinel lists it as a replica again, and the proxy subscribes to it again.
    wait_for("the replica listed again", Duration::from_secs(15), || {
        proxy.shared.plane.topology.load().map.shards()[0]
            .replicas
            .contains(&replica)
    });
    wait_subscribed(std::slice::from_ref(&replica));
    // Sentinel settles the group (it may re-point a replica it saw promoted on its own): the
    // proxy asks it twice more and it still lists the replica.
    let before = refreshes(&proxy);
    wait_for("Sentinel asked twice more", Duration::from_secs(10), || {
        refreshes(&proxy) >= before + 2
            && proxy.shared.plane.topology.load().map.shards()[0]
                .replicas
                .contains(&replica)
    });

    // A failover in progress with this replica selected (as `+selected-slave` records it).
    let shared = &proxy.shared;
    shared
        .plane
        .topology
        .set_failover(0, Some(std::time::Instant::now() + Duration::from_secs(20)));
    shared.plane.topology.select_replica(0, &replica);
    let promoted = Instant::now();
    replicaof(&replica, None);
    wait_for("the pushed promotion", Duration::from_secs(5), || {
        routed_master(&proxy) == replica
    });
    eprintln!(
        "promotion followed in {} ms",
        promoted.elapsed().as_millis()
    );
    assert!(field(&info(&proxy), "failover_pushes") >= 1);
    // The periodic re-check (every second) keeps the promoted node while the failover lasts.
    let before = refreshes(&proxy);
    wait_for("two re-checks", Duration::from_secs(10), || {
        refreshes(&proxy) >= before + 2
    });
    assert_eq!(routed_master(&proxy), replica);
    let mut c = connect(&format!("redis://{}/", proxy.addr));
    let _: () = c.set("pushed", "yes").unwrap();
    let on_replica: Option<String> = r.get("pushed").unwrap();
    assert_eq!(on_replica.as_deref(), Some("yes"));
}

/// A real `SENTINEL FAILOVER`: Sentinel kills the promoted replica's clients in the same
/// transaction as `REPLICAOF NO ONE`; the proxy's subscription reconnects at once, sees the
/// new role, and follows it before `+switch-master`.
#[test]
fn failover_push_follows_a_sentinel_failover_from_the_promoted_node() {
    let (_dir, groups, proxy) = sentinel_group();
    let replica = proxy.shared.plane.topology.load().map.shards()[0].replicas[0].clone();
    wait_subscribed(&nodes_of(&proxy));
    let mut s = connect(&node_url(&groups.sentinel_addrs()[0]));
    let _: String = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg("hive-a")
        .query(&mut s)
        .unwrap();
    wait_for("the new master", Duration::from_secs(15), || {
        routed_master(&proxy) == replica
    });
    assert!(
        field(&info(&proxy), "failover_pushes") >= 1,
        "{}",
        info(&proxy)
    );
    let mut c = connect(&format!("redis://{}/", proxy.addr));
    let _: () = c.set("after", 1).unwrap();
}
