//! Handovers in sentinel and static modes that stop half-way: `hive rebalance` killed with
//! SIGKILL (a new plan is refused, `hive check` names the move, `--resume` finishes it with no
//! key lost or duplicated), and the source master killed with SIGKILL mid-move (Sentinel
//! promotes its replica, which carries the handover on; `--resume` finishes it and nothing
//! acknowledged is lost).

use std::process::{Command, Stdio};
use std::time::Duration;

use hive_proxy::config::{Mode, WriteAck};
use hive_proxy::server::ProxyHandle;
use hive_tests::backups::{check_populated, dbsize, hive, populate_parallel};
use hive_tests::ledger::LedgerLoad;
use hive_tests::module_cluster::{poll_until, wait_for};
use hive_tests::{connect, hive_bin, node_url};

use super::super::hive_ok;
use super::{config, epoch, groups, slot_counts, url, write_toml};

const KEYS: usize = 20_000;

/// Whether `addr` is handing slots over now (hive-module's state; slots still guarded after a
/// finished move, with an `until`, do not count).
fn handing(addr: &str) -> bool {
    let Ok(mut c) = redis::Client::open(node_url(addr)).and_then(|c| c.get_connection()) else {
        return false;
    };
    let state: String = redis::cmd("HIVE.SLOTS")
        .arg("GET")
        .query(&mut c)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
    v["migrating"]
        .as_array()
        .is_some_and(|a| a.iter().any(|h| h.get("until").is_none()))
}

/// A slow rebalance (one key per MIGRATE, resting most of the time), started in the background.
fn slow_rebalance(toml: &str) -> std::process::Child {
    Command::new(hive_bin())
        .args([
            "rebalance",
            "--config",
            toml,
            "--batch-keys",
            "1",
            "--pace",
            "10",
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hive rebalance")
}

#[test]
fn reshard_static_killed_mid_move_resumes_without_loss() {
    let _heavy = hive_tests::heavy();
    let dir = tempfile::tempdir().unwrap();
    let g = groups(dir.path(), 2, 0);
    let spare_dir = tempfile::tempdir().unwrap();
    let spare = groups(spare_dir.path(), 1, 0);
    let new_master = spare.initial_masters()[0].clone();
    let cfg = config(&g, Mode::Static);
    let toml = write_toml(dir.path(), &cfg);
    let proxy = ProxyHandle::start(cfg).expect("proxy");
    let u = url(&proxy);
    populate_parallel(&u, KEYS, 4);
    hive_ok(&["add-shard", "--config", &toml, &new_master, "--json"]);
    let masters: Vec<String> = [g.initial_masters(), vec![new_master.clone()]].concat();

    let mut child = slow_rebalance(&toml);
    let caught = poll_until(Duration::from_secs(60), || {
        masters.iter().any(|m| handing(m))
    });
    child.kill().expect("kill -9 hive rebalance");
    let _ = child.wait();
    assert!(caught, "the rebalance never started a handover");

    // A new plan is refused until the interrupted move is finished, and says how.
    let (ok, out, err) = hive(&["rebalance", "--config", &toml], &[]);
    assert!(!ok, "a rebalance over an interrupted move: {out}");
    assert!(
        err.contains("hive reshard --resume") && err.contains("nothing was changed"),
        "{err}"
    );
    let (_, out, err) = hive(&["check", "--config", &toml], &[]);
    assert!(
        format!("{out}{err}").contains("fix: hive reshard --resume"),
        "hive check names the interrupted move: {out}{err}"
    );

    let resumed = hive_ok(&["reshard", "--config", &toml, "--resume", "--json"]);
    assert!(
        !resumed["resumed"]["slots"].as_array().unwrap().is_empty(),
        "{resumed}"
    );
    assert!(
        masters.iter().all(|m| !handing(m)),
        "no slot left handed over"
    );
    let finished = hive_ok(&["rebalance", "--config", &toml, "--json"]);
    let e = finished["epoch"].as_u64().unwrap();
    wait_for(
        "the proxy to take the last map",
        Duration::from_secs(10),
        || epoch(&proxy) == e,
    );
    let total: u64 = masters.iter().map(|m| dbsize(&node_url(m))).sum();
    assert_eq!(total, KEYS as u64, "no key lost or duplicated");
    assert_eq!(check_populated(&u, KEYS, 7), KEYS.div_ceil(7));
    let counts = slot_counts(&proxy);
    assert!(
        counts.iter().all(|c| (5350..=5570).contains(c)),
        "{counts:?}"
    );
}

#[test]
fn reshard_sentinel_source_killed_mid_move_loses_nothing_acknowledged() {
    let _heavy = hive_tests::heavy();
    let dir = tempfile::tempdir().unwrap();
    let mut g = groups(dir.path(), 2, 3);
    let spare_dir = tempfile::tempdir().unwrap();
    let spare = groups(spare_dir.path(), 1, 0);
    let new_master = spare.initial_masters()[0].clone();
    let new_replica = spare.static_shards()[0].replicas[0].clone();
    let mut cfg = config(&g, Mode::Sentinel);
    // Writes are acknowledged once a replica has them, so a master's crash loses none.
    cfg.backend.write_ack = WriteAck::Replica;
    let toml = write_toml(dir.path(), &cfg);
    let proxy = ProxyHandle::start(cfg).expect("proxy");
    let u = url(&proxy);
    populate_parallel(&u, KEYS, 4);
    hive_ok(&[
        "add-shard",
        "--config",
        &toml,
        &new_master,
        "--replica",
        &new_replica,
        "--name",
        "hive-new",
        "--json",
    ]);
    let load = LedgerLoad::start_named(&u, 10, Duration::from_secs(240), "f");
    wait_for("the load to run", Duration::from_secs(10), || {
        load.ops() > 100
    });

    let masters = g.initial_masters();
    let mut child = slow_rebalance(&toml);
    let caught = poll_until(Duration::from_secs(60), || {
        masters.iter().any(|m| handing(m))
    });
    assert!(caught, "the rebalance never started a handover");
    let source = masters.iter().find(|m| handing(m)).unwrap().clone();
    g.node_mut(&source).unwrap().kill();
    // The run stops (its source is gone); Sentinel promotes the replica, which carries the
    // handover on: it got the MIGRATING mark over replication.
    let _ = child.wait();
    wait_for(
        "Sentinel to promote the replica",
        Duration::from_secs(30),
        || {
            let t = proxy.shared.plane.topology.load();
            t.masters().iter().all(|m| *m != source) && t.masters().len() == 3
        },
    );
    let promoted: Vec<String> = proxy.shared.plane.topology.load().masters();
    assert!(
        promoted.iter().any(|m| handing(m)),
        "the promoted replica hands the slots over"
    );
    // Sentinel may still be reconfiguring the group: a resume refuses (changing nothing)
    // until it names the new master.
    let mut last = String::new();
    let resumed = poll_until(Duration::from_secs(30), || {
        let (ok, _, err) = hive(&["reshard", "--config", &toml, "--resume", "--json"], &[]);
        last = err;
        ok
    });
    assert!(resumed, "--resume never finished: {last}");
    hive_ok(&["rebalance", "--config", &toml, "--json"]);
    let out = load.stop();
    let lost = out.older_than_acknowledged(&u);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(promoted.iter().all(|m| !handing(m)));
    assert_eq!(check_populated(&u, KEYS, 7), KEYS.div_ceil(7));
    let mut c = connect(&u);
    let _: () = redis::cmd("SET").arg("after").arg(1).query(&mut c).unwrap();
}
