//! Blocking pops across shards with `cross_slot = "emulate"`, in cluster, sentinel and static
//! modes (the scenarios live in `hive_tests::blocking_pops`); a failover of one shard while a
//! client blocks; `refuse` keeps them CROSSSLOT.

use std::time::Duration;

use hive_tests::cross_slot::blocking_pops::{self as bp, keys_apart, master_of, wait_blocked};
use hive_tests::module_cluster::wait_for;
use hive_tests::{connect, error_text, node_url, run, Env, GroupEnv};

use hive_tests::cross_slot::{emulate, standalone};

fn every_scenario(proxy: &hive_proxy::server::ProxyHandle, url: &str) {
    let (_d, _n, single) = standalone();
    bp::present_matches_standalone(proxy, url, &single);
    bp::arrival_wakes_the_client(proxy, url);
    bp::second_pop_is_pushed_back(proxy, url);
    bp::timeout_gives_null(proxy, url);
    bp::client_gone_loses_nothing(proxy, proxy.addr);
}

#[test]
fn blocking_pops_across_shards_in_cluster_mode() {
    let env = Env::with(3, 0, emulate);
    every_scenario(&env.proxy, &env.url());
}

#[test]
fn blocking_pops_across_shards_in_sentinel_mode() {
    let env = GroupEnv::sentinel(3, None, emulate);
    every_scenario(&env.proxy, &env.url());
}

#[test]
fn blocking_pops_across_shards_in_static_mode() {
    let env = GroupEnv::statik(3, emulate);
    every_scenario(&env.proxy, &env.url());
}

#[test]
fn blocking_pops_across_shards_refused_by_default() {
    let env = Env::with(3, 0, |_| {});
    let mut c = env.client();
    let l = keys_apart(&env.proxy, "refused", 2);
    for cmd in [
        vec!["BLPOP", &l[0], &l[1], "0"],
        vec!["BZMPOP", "0", "2", &l[0], &l[1], "MIN"],
        vec!["BLMOVE", &l[0], &l[1], "LEFT", "LEFT", "0"],
    ] {
        assert_eq!(
            error_text(run(&mut c, &cmd)),
            "CROSSSLOT Keys in request don't hash to the same slot",
            "{cmd:?}"
        );
    }
}

/// A `CLUSTER FAILOVER` of one shard while a client blocks on three: the old master releases
/// the blocked connection (`-UNBLOCKED`), Hive blocks again on the new master, and a push
/// there wakes the client.
#[test]
fn blocking_pops_across_shards_survive_a_failover() {
    let _g = hive_tests::heavy();
    let env = Env::with(3, 1, emulate);
    let l = keys_apart(&env.proxy, "fo", 3);
    let old = master_of(&env.proxy, &l[0]);
    let replica = {
        let topo = env.proxy.shared.plane.topology.load();
        let i = topo
            .map
            .shard_of(hive_common::Slot::for_key(l[0].as_bytes()))
            .unwrap();
        wait_for("a replica in the map", Duration::from_secs(15), || {
            !env.proxy.shared.plane.topology.load().map.shards()[i]
                .replicas
                .is_empty()
        });
        env.proxy.shared.plane.topology.load().map.shards()[i].replicas[0].clone()
    };
    let url = env.url();
    let cmd = format!("BLPOP {} {} {} 0", l[0], l[1], l[2]);
    let waiter = std::thread::spawn(move || {
        let mut c = connect(&url);
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let words: Vec<&str> = cmd.split(' ').collect();
        run(&mut c, &words)
    });
    wait_blocked(&env.proxy, &l, 1);
    let mut r = connect(&node_url(&replica));
    wait_for("the replica promoted", Duration::from_secs(40), || {
        if master_of(&env.proxy, &l[0]) == replica {
            return true;
        }
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut r).unwrap();
        if !matches!(&role[0], redis::Value::BulkString(b) if b == b"master") {
            let _: redis::RedisResult<()> = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut r);
        }
        false
    });
    assert_ne!(old, replica);
    // Blocked again on the new master, and still on the other two.
    wait_blocked(&env.proxy, &l, 1);
    let mut c = env.client();
    let _: i64 = redis::cmd("RPUSH")
        .arg(&l[0])
        .arg("after")
        .query(&mut c)
        .unwrap();
    let got = waiter.join().unwrap();
    assert_eq!(
        hive_tests::cross_slot::text(got, true),
        format!("['{}','after']", l[0])
    );
    wait_blocked(&env.proxy, &l, 0);
}

/// CLIENT UNBLOCK through Hive releases a client blocked on one slot and one blocked across
/// shards, with Redis's replies (a null for TIMEOUT, `-UNBLOCKED` for ERROR).
#[test]
fn client_unblock_releases_blocked_clients_as_redis() {
    let env = Env::with(3, 0, emulate);
    let l = keys_apart(&env.proxy, "unblock", 3);
    let url = env.url();
    let mut admin = env.client();
    let cases: [(Vec<String>, &str); 4] = [
        (vec![l[0].clone()], "TIMEOUT"),
        (vec![l[0].clone()], "ERROR"),
        (l.clone(), "TIMEOUT"),
        (l.clone(), "ERROR"),
    ];
    for (keys, mode) in cases {
        let (tx, rx) = std::sync::mpsc::channel();
        let url = url.clone();
        let cmd_keys = keys.clone();
        let waiter = std::thread::spawn(move || {
            let mut c = connect(&url);
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
            tx.send(id).unwrap();
            let mut args: Vec<&str> = vec!["BLPOP"];
            args.extend(cmd_keys.iter().map(|k| k.as_str()));
            args.push("0");
            run(&mut c, &args)
        });
        let id = rx.recv().unwrap();
        wait_blocked(&env.proxy, &keys, 1);
        let n: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .arg(mode)
            .query(&mut admin)
            .unwrap();
        assert_eq!(n, 1, "{keys:?} {mode}");
        let got = waiter.join().unwrap();
        match mode {
            "TIMEOUT" => assert_eq!(got.unwrap(), redis::Value::Nil, "{keys:?}"),
            _ => assert_eq!(
                error_text(got),
                "UNBLOCKED client unblocked via CLIENT UNBLOCK",
                "{keys:?}"
            ),
        }
        wait_blocked(&env.proxy, &keys, 0);
    }
    let me: i64 = redis::cmd("CLIENT").arg("ID").query(&mut admin).unwrap();
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(me)
        .query(&mut admin)
        .unwrap();
    assert_eq!(n, 0, "a client that is not blocked");
    assert_eq!(
        error_text(run(&mut admin, &["CLIENT", "UNBLOCK", "1", "LATER"])),
        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"
    );
}
