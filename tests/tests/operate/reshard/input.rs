//! Bad input to the growing commands: a clear error naming what is wrong, and the cluster left
//! exactly as it was.

use std::time::Duration;

use hive_tests::backups::hive;
use hive_tests::module_cluster::wait_for;
use hive_tests::{connect, node_url, Env};

use super::{masters_of, spare_nodes};

/// Runs each `hive` command line (words split on spaces) and checks it fails saying `says`.
pub(super) fn all_refused(cases: &[(String, &str)]) {
    for (line, says) in cases {
        let args: Vec<&str> = line.split(' ').collect();
        let (ok, out, err) = hive(&args, &[]);
        assert!(!ok, "hive {line} must fail: {out}");
        assert!(
            err.contains(says),
            "hive {line}: expected {says:?} in: {err}"
        );
    }
}

#[test]
fn reshard_bad_input_is_refused_and_changes_nothing() {
    let env = Env::with(3, 0, |_| {});
    let m = env.cluster.master_addrs();
    let seed = m[0].as_str();
    let before = masters_of(seed);
    let c = format!("--cluster {seed}");
    all_refused(&[
        (
            format!("reshard {c} --slots 9999 --from {} --to {}", m[0], m[1]),
            "the source holds only 5461 slots; nothing was changed",
        ),
        (
            format!("reshard {c} --slots 1 --from 127.0.0.1:1 --to {}", m[1]),
            "127.0.0.1:1: no such node in this cluster",
        ),
        (
            format!("reshard {c} --slots 1 --from {} --to {}", m[0], m[0]),
            "--from and --to name the same master",
        ),
        (
            format!("reshard {c} --slots 1"),
            "give --slots N --from NODE --to NODE",
        ),
        (
            format!("rebalance {c} --weight oops"),
            "--weight oops: give NODE=W",
        ),
        (
            format!("rebalance {c} --weight {}=-1", m[0]),
            "W must be a number",
        ),
        (format!("remove-shard {c} 127.0.0.1:1"), "no such node"),
        (
            format!("reshard --static {seed} --slots 1 --from a --to b"),
            "hive-module is not loaded",
        ),
    ]);

    let dir = tempfile::tempdir().unwrap();
    let spare = spare_nodes(dir.path(), 3);
    // A node with a key: a cluster node serves keys only in slots it holds, so it holds them
    // all, takes the write, and lets them go (the key stays).
    let mut full = connect(&node_url(&spare[0].addr));
    let () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query(&mut full)
        .unwrap();
    wait_for("the lone node to serve", Duration::from_secs(10), || {
        redis::cmd("SET")
            .arg("x")
            .arg(1)
            .query::<()>(&mut full)
            .is_ok()
    });
    let () = redis::cmd("CLUSTER")
        .arg("DELSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query(&mut full)
        .unwrap();
    // A node in a cluster of its own, and a standalone (non-cluster) server.
    let () = redis::cmd("CLUSTER")
        .arg("ADDSLOTS")
        .arg(1)
        .query(&mut connect(&node_url(&spare[1].addr)))
        .unwrap();
    let plain = hive_tests::single_node(&dir, false);
    let (keyed, other, fresh) = (&spare[0].addr, &spare[1].addr, &spare[2].addr);
    all_refused(&[
        (
            format!("add-shard {c} {keyed}"),
            "holds 1 keys; only an empty node can join; nothing was changed",
        ),
        (format!("add-shard {c} {keyed} --dry-run"), "holds 1 keys"),
        (
            format!("add-shard {c} {other}"),
            "belongs to another cluster",
        ),
        (
            format!("add-shard {c} {}", plain.addr),
            "not a cluster node (cluster-enabled no)",
        ),
        (
            format!("add-shard {c} {fresh} --replica {keyed}"),
            "holds 1 keys",
        ),
        (
            format!("add-shard {c} {fresh} --replica {fresh}"),
            "named twice",
        ),
        (
            format!("add-shard {c} {}", m[1]),
            "already a member of this cluster",
        ),
    ]);
    let (ok, out, err) = hive(&["add-shard", "--cluster", seed, fresh, "--dry-run"], &[]);
    assert!(ok && out.contains("may join"), "{out} {err}");

    assert_eq!(masters_of(seed), before, "the cluster changed");
    let known: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connect(&node_url(seed)))
        .unwrap();
    assert_eq!(known.lines().count(), 3, "a refused node joined: {known}");
}
