//! Bad input to the growing commands: a clear error naming what is wrong, and the cluster left
//! exactly as it was.

use hive_tests::backups::hive;
use hive_tests::{connect, node_url, Env};

use super::{masters_of, spare_nodes};

fn refused(args: &[&str], says: &str) {
    let (ok, out, err) = hive(args, &[]);
    assert!(!ok, "hive {args:?} must fail: {out}");
    assert!(
        err.contains(says),
        "hive {args:?}: expected {says:?} in: {err}"
    );
}

#[test]
fn reshard_bad_input_is_refused_and_changes_nothing() {
    let env = Env::with(3, 0, |_| {});
    let m = env.cluster.master_addrs();
    let seed = m[0].as_str();
    let before = masters_of(seed);

    refused(
        &[
            "reshard",
            "--cluster",
            seed,
            "--slots",
            "9999",
            "--from",
            &m[0],
            "--to",
            &m[1],
        ],
        "the source holds only 5461 slots; nothing was changed",
    );
    refused(
        &[
            "reshard",
            "--cluster",
            seed,
            "--slots",
            "1",
            "--from",
            "127.0.0.1:1",
            "--to",
            &m[1],
        ],
        "127.0.0.1:1: no such node in this cluster",
    );
    refused(
        &[
            "reshard",
            "--cluster",
            seed,
            "--slots",
            "1",
            "--from",
            &m[0],
            "--to",
            &m[0],
        ],
        "--from and --to name the same master",
    );
    refused(
        &["reshard", "--cluster", seed, "--slots", "1"],
        "give --slots N --from NODE --to NODE",
    );
    refused(
        &["rebalance", "--cluster", seed, "--weight", "oops"],
        "--weight oops: give NODE=W",
    );
    refused(
        &[
            "rebalance",
            "--cluster",
            seed,
            "--weight",
            &format!("{}=-1", m[0]),
        ],
        "W must be a number",
    );
    refused(
        &["remove-shard", "--cluster", seed, "127.0.0.1:1"],
        "no such node",
    );
    refused(
        &[
            "reshard", "--static", seed, "--slots", "1", "--from", "a", "--to", "b",
        ],
        "Static mode is not supported yet",
    );

    let dir = tempfile::tempdir().unwrap();
    let spare = spare_nodes(dir.path(), 3);
    // A node holding keys, one in another cluster, and a standalone (non-cluster) server.
    // A cluster node serves keys only in slots it holds: hold them all, write, let them go
    // (the key stays).
    let mut full = connect(&node_url(&spare[0].addr));
    let () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query(&mut full)
        .unwrap();
    hive_tests::module_cluster::wait_for(
        "the lone node to serve",
        std::time::Duration::from_secs(10),
        || {
            redis::cmd("SET")
                .arg("x")
                .arg(1)
                .query::<()>(&mut full)
                .is_ok()
        },
    );
    let () = redis::cmd("CLUSTER")
        .arg("DELSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query(&mut full)
        .unwrap();
    let mut other = connect(&node_url(&spare[1].addr));
    let () = redis::cmd("CLUSTER")
        .arg("ADDSLOTS")
        .arg(1)
        .query(&mut other)
        .unwrap();
    let plain = hive_tests::single_node(&dir, false);
    refused(
        &["add-shard", "--cluster", seed, &spare[0].addr],
        "holds 1 keys; only an empty node can join; nothing was changed",
    );
    refused(
        &["add-shard", "--cluster", seed, &spare[1].addr],
        "belongs to another cluster",
    );
    refused(
        &["add-shard", "--cluster", seed, &plain.addr],
        "not a cluster node (cluster-enabled no)",
    );
    refused(
        &[
            "add-shard",
            "--cluster",
            seed,
            &spare[2].addr,
            "--replica",
            &spare[0].addr,
        ],
        "holds 1 keys",
    );
    refused(
        &["add-shard", "--cluster", seed, &m[1]],
        "already a member of this cluster",
    );

    assert_eq!(masters_of(seed), before, "the cluster changed");
    let known: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connect(&node_url(seed)))
        .unwrap();
    assert_eq!(known.lines().count(), 3, "a refused node joined: {known}");
}
