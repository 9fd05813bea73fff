//! Bad input to the growing commands in sentinel and static modes: a clear error naming what is
//! wrong, and the deployment left as it was (no slot map written, no key moved).

use hive_proxy::config::Mode;
use hive_tests::backups::{dbsize, populate};
use hive_tests::{connect, node_url};

use super::super::input::all_refused;
use super::{config, groups, write_toml};

fn state(addr: &str) -> String {
    redis::cmd("HIVE.SLOTS")
        .arg("GET")
        .query(&mut connect(&node_url(addr)))
        .unwrap()
}

#[test]
fn reshard_standalone_bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = groups(dir.path(), 2, 0);
    let m = g.initial_masters();
    let cfg = config(&g, Mode::Static);
    let toml = write_toml(dir.path(), &cfg);
    let url = format!("redis://{}/", m[0]);
    populate(&url, 100);
    let before: Vec<(String, u64)> = m.iter().map(|a| (state(a), dbsize(&node_url(a)))).collect();

    let spare_dir = tempfile::tempdir().unwrap();
    let spare = groups(spare_dir.path(), 1, 0);
    let keyed = spare.initial_masters()[0].clone();
    let replica = spare.static_shards()[0].replicas[0].clone();
    let _: () = redis::cmd("SET")
        .arg("x")
        .arg(1)
        .query(&mut connect(&node_url(&keyed)))
        .unwrap();
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = hive_tests::single_node(&plain_dir, false);
    let c = format!("--config {toml}");
    all_refused(&[
        (
            format!("reshard {c} --slots 9999 --from {} --to {}", m[0], m[1]),
            "the source holds only 8192 slots; nothing was changed",
        ),
        (
            format!("reshard {c} --slots 1 --from 127.0.0.1:1 --to {}", m[1]),
            "127.0.0.1:1: not a master (or group) of this deployment; nothing was changed",
        ),
        (
            format!("reshard {c} --slots 1 --from {} --to {}", m[0], m[0]),
            "--from and --to name the same master",
        ),
        (
            format!("remove-shard {c} 127.0.0.1:1"),
            "not a master (or group)",
        ),
        (
            format!("rebalance {c} --weight {}=0 --weight {}=0", m[0], m[1]),
            "every master has weight 0",
        ),
        (
            format!("add-shard {c} {keyed}"),
            "holds 1 keys; a new master must be empty; nothing was changed",
        ),
        (
            format!("add-shard {c} {}", plain.addr),
            "hive-module is not loaded",
        ),
        (
            format!("add-shard {c} {}", m[1]),
            "already a master of this deployment",
        ),
        (
            format!("add-shard {c} {replica}"),
            "is a replica, not a master",
        ),
        (
            format!("add-shard {c} {keyed} --name extra"),
            "--name is for sentinel mode",
        ),
    ]);
    // A deployment one of whose masters lacks the module cannot keep a slot map.
    let mut bad = cfg.clone();
    bad.backend.shards[1].master = Some(plain.addr.clone());
    bad.backend.shards[1].replicas.clear();
    let bad_dir = tempfile::tempdir().unwrap();
    let bad_toml = write_toml(bad_dir.path(), &bad);
    let says = format!("{}: hive-module is not loaded", plain.addr);
    all_refused(&[(
        format!("rebalance --config {bad_toml} --weight {}=2", m[0]),
        says.as_str(),
    )]);
    let after: Vec<(String, u64)> = m.iter().map(|a| (state(a), dbsize(&node_url(a)))).collect();
    assert_eq!(after, before, "a refused command changed the deployment");
}
