//! A 3+3 cluster with hive-module under a 50-client load through Hive: a fourth shard added
//! and given its share, then removed again, with zero client errors and every acknowledged
//! write (and every populated key with its TTL) still there.

use std::time::{Duration, Instant};

use hive_tests::backups::{check_populated, populate_parallel};
use hive_tests::ledger::LedgerLoad;
use hive_tests::module_cluster::{deployment, poll_until, wait_for};

use super::{hive_ok, masters_of, open_marks, settled, spare_nodes, total_keys};

const KEYS: usize = 1_000_000;

#[test]
fn reshard_add_rebalance_remove_under_load_loses_nothing() {
    let _heavy = hive_tests::heavy();
    let d = deployment(|c| {
        c.proxy.admin_listen = Some("127.0.0.1:0".into());
        c.proxy.node_poll_interval_ms = 200;
    });
    let url = format!("redis://{}/", d.proxy.addr);
    let seed = d.cluster.master_addrs()[0].clone();
    let spare_dir = tempfile::tempdir().unwrap();
    let spare = spare_nodes(spare_dir.path(), 2);
    let t = Instant::now();
    populate_parallel(&url, KEYS, 4);
    let populated = t.elapsed();
    let before = total_keys(&seed);

    let load = LedgerLoad::start(&url, 50, Duration::from_secs(240));
    wait_for("the load to run", Duration::from_secs(10), || {
        load.ops() > 500
    });

    let t = Instant::now();
    let added = hive_ok(&[
        "add-shard",
        "--cluster",
        &seed,
        &spare[0].addr,
        "--replica",
        &spare[1].addr,
        "--json",
    ]);
    assert_eq!(added["master"], spare[0].addr.as_str());
    // The proxy's INFO shows the move while it runs (from its poll of the nodes).
    let rebalance = {
        let seed = seed.clone();
        std::thread::spawn(move || hive_ok(&["rebalance", "--cluster", &seed, "--json"]))
    };
    let mut info = d.client();
    let seen = poll_until(Duration::from_secs(60), || {
        let text: String = redis::cmd("INFO").query(&mut info).unwrap();
        field(&text, "reshard_slots_migrating") > 0 && field(&text, "reshard_slots_importing") > 0
    });
    let grown = rebalance.join().expect("the rebalance thread");
    assert!(seen, "INFO never showed a slot migrating");
    let moved = &grown["outcome"];
    assert!(moved["slots"].as_u64().unwrap() >= 4000, "{grown}");
    assert!(moved["keys"].as_u64().unwrap() > 0, "{grown}");
    settled(&seed, 4);
    let shares: Vec<usize> = masters_of(&seed).iter().map(|(_, s)| *s).collect();
    assert!(
        shares.iter().all(|s| (4013..=4178).contains(s)),
        "within 2% of 4096: {shares:?}"
    );
    let ops_grown = load.ops();
    let want = moved["keys"].as_u64().unwrap();
    let mut last = 0;
    let counted = poll_until(Duration::from_secs(20), || {
        let text: String = redis::cmd("INFO").query(&mut info).unwrap();
        last = field(&text, "reshard_keys_moved");
        last >= want
    });
    assert!(counted, "INFO's reshard_keys_moved {last} < {want}");

    let shrunk = hive_ok(&["remove-shard", "--cluster", &seed, &spare[0].addr, "--json"]);
    assert_eq!(shrunk["outcome"]["slots"], moved["slots"], "{shrunk}");
    let removed: Vec<&str> = shrunk["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        removed.contains(&spare[0].addr.as_str()) && removed.contains(&spare[1].addr.as_str()),
        "{shrunk}"
    );
    settled(&seed, 3);
    let took = t.elapsed();

    let out = load.stop();
    assert_eq!(
        out.errors, 0,
        "client errors during the moves: {:?}",
        out.first_errors
    );
    assert_eq!(out.stale, 0, "reads that missed their own last write");
    let lost = out.lost(&url);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(open_marks(&d.cluster.master_addrs()).is_empty());
    assert_eq!(total_keys(&seed), before + out.ledger.len() as u64);
    // Every key is counted above; a sample is read back with its type, value and TTL.
    assert_eq!(check_populated(&url, KEYS, 101), KEYS.div_ceil(101));
    eprintln!(
        "grow and shrink under load: {KEYS} keys populated in {populated:?}; {} slots and {} keys each way in {took:?}; {} ops ({} while growing), 0 errors, {} keys in the ledger",
        moved["slots"], moved["keys"], out.ops, ops_grown, out.ledger.len()
    );
}

fn field(info: &str, name: &str) -> u64 {
    hive_common::info::field(info, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
