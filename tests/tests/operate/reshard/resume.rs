//! A `hive rebalance` killed with SIGKILL in the middle of a slot leaves it open: a new plan
//! is refused, `hive check` names the slot and its fix, `hive status` and `hive monitor` show
//! the move, and `--resume` finishes it with no key lost or duplicated.

use std::process::{Command, Stdio};
use std::time::Duration;

use hive_local::{ClusterOpts, LocalCluster};
use hive_tests::backups::{check_populated, hive, populate};
use hive_tests::module_cluster::{poll_until, wait_for};
use hive_tests::{hive_bin, Env};

use super::{hive_ok, masters_of, open_marks, settled, spare_nodes, total_keys};

const KEYS: usize = 30_000;

#[test]
fn reshard_killed_mid_slot_resumes_without_loss() {
    let _heavy = hive_tests::heavy();
    let env = Env::with(3, 0, |_| {});
    let seed = env.cluster.master_addrs()[0].clone();
    populate(&env.url(), KEYS);
    let spare_dir = tempfile::tempdir().unwrap();
    let spare = spare_nodes(spare_dir.path(), 1);
    hive_ok(&["add-shard", "--cluster", &seed, &spare[0].addr, "--json"]);

    // One key per MIGRATE keeps each group of slots open for a while; a kill that still lands
    // between two groups leaves nothing open, and the rebalance is started again (it goes on
    // with the rest of its plan).
    let mut masters = env.cluster.master_addrs();
    masters.push(spare[0].addr.clone());
    let mut open = Vec::new();
    for _ in 0..10 {
        let mut child = Command::new(hive_bin())
            .args([
                "rebalance",
                "--cluster",
                &seed,
                "--batch-keys",
                "1",
                "--pace",
                "100",
                "--json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hive rebalance");
        let caught = poll_until(Duration::from_secs(60), || {
            spare_has_slots(&spare[0].addr) && !open_marks(&masters).is_empty()
        });
        child.kill().expect("kill -9 hive rebalance");
        let _ = child.wait();
        assert!(caught, "the rebalance never held a slot open");
        open = open_marks(&masters);
        if !open.is_empty() {
            break;
        }
    }
    assert!(!open.is_empty(), "no kill left a slot open");

    let (ok, out, err) = hive(&["rebalance", "--cluster", &seed], &[]);
    assert!(!ok, "a new plan over open slots must be refused: {out}");
    assert!(
        err.contains("open") && err.contains("--resume") && err.contains("nothing was changed"),
        "{err}"
    );
    let (_, check, _) = hive(
        &["check", "--cluster", &seed, "--replicas", "0", "--json"],
        &[],
    );
    assert!(
        check.contains("open slot") && check.contains("hive reshard --resume"),
        "{check}"
    );
    let (_, status, _) = hive(&["status", "--cluster", &seed], &[]);
    assert!(
        status.contains("Resharding: ") && status.contains("slots migrating"),
        "{status}"
    );

    let resumed = hive_ok(&["rebalance", "--cluster", &seed, "--resume", "--json"]);
    assert!(
        !resumed["resumed"]["slots"].as_array().unwrap().is_empty(),
        "{resumed}"
    );
    assert!(
        open_marks(&masters).is_empty(),
        "{:?}",
        open_marks(&masters)
    );
    settled(&seed, 4);
    let shares: Vec<usize> = masters_of(&seed).iter().map(|(_, s)| *s).collect();
    assert!(
        shares.iter().all(|s| (4013..=4178).contains(s)),
        "{shares:?}"
    );
    assert_eq!(
        total_keys(&seed),
        KEYS as u64,
        "a key was lost or duplicated"
    );
    assert_eq!(check_populated(&env.url(), KEYS, 1), KEYS);
    drop(env);
}

fn spare_has_slots(addr: &str) -> bool {
    masters_of(addr).iter().any(|(a, s)| a == addr && *s > 0)
}

#[test]
fn reshard_resume_finishes_a_slot_opened_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(&ClusterOpts::new(3, 0, dir.path().to_path_buf())).unwrap();
    let m = cluster.master_addrs();
    let mut src = hive_tests::connect(&hive_tests::node_url(&m[0]));
    let dst_id: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut hive_tests::connect(&hive_tests::node_url(&m[1])))
        .unwrap();
    // A key in slot 100 ({3s} hashes there), then the slot marked migrating on its owner only.
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| hive_common::Slot::for_key(k.as_bytes()).get() == 100)
        .unwrap();
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query(&mut src)
        .unwrap();
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(100)
        .arg("MIGRATING")
        .arg(&dst_id)
        .query(&mut src)
        .unwrap();
    // `hive monitor`'s header shows the open slot (under tmux, as a terminal shows it).
    let name = format!("hive-monitor-reshard-{}", std::process::id());
    let monitor = hive_tests::tmux::Session::start(
        &name,
        160,
        45,
        &format!("{} monitor --cluster {}", hive_bin().display(), m[0]),
    );
    wait_for(
        "monitor's RESHARDING header",
        Duration::from_secs(20),
        || monitor.screen().contains("RESHARDING 1 slots open"),
    );
    let out = hive_ok(&["reshard", "--cluster", &m[0], "--resume", "--json"]);
    assert_eq!(out["resumed"]["slots"], serde_json::json!([100]), "{out}");
    wait_for("the header without it", Duration::from_secs(20), || {
        let s = monitor.screen();
        s.contains("HEALTH") && !s.contains("RESHARDING")
    });
    drop(monitor);
    assert_eq!(out["resumed"]["keys"], 1);
    assert!(open_marks(&m).is_empty());
    let v: String = redis::cmd("GET")
        .arg(&key)
        .query(&mut hive_tests::connect(&hive_tests::node_url(&m[1])))
        .unwrap();
    assert_eq!(v, "v");
}
