//! `hive backup --consistent` of a 3+3 cluster with hive-module, 100,000 keys of every type
//! (half with TTLs) under a running write load, restored onto a fresh 3+3 cluster (first
//! interrupted with SIGINT, then resumed), a 5-master cluster and Sentinel groups; each
//! target verified by Hive key for key and checked again here independently. Also the AOF.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_tests::backups::{check_populated, dbsize, hive, hive_json, populate, Load};
use hive_tests::module_cluster::deployment;
use hive_tests::{connect, heavy, hive_bin, Env, GroupEnv};

const KEYS: usize = 100_000;

fn restore_args<'a>(id: &'a str, dest: &'a str, target: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["restore", id, "--from", dest];
    a.extend_from_slice(target);
    a.push("--json");
    a
}

/// Checks a restore report: every shard's counts add up, nothing differs, every key verified.
fn assert_restored(report: &serde_json::Value, keys: u64) {
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["keys"].as_u64(), Some(keys), "{report:#}");
    assert_eq!(report["verify"], "full");
    let checked: u64 = report["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["checked"].as_u64().unwrap())
        .sum();
    assert_eq!(checked, keys, "every key compared");
}

/// The load's keys in `url`: a consistent cut holds every `load:<n>` below the highest one,
/// but for the writer's last pipeline of 20, which the pause may have split between shards.
fn assert_consistent_cut(url: &str, written: u64) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("load:*")
        .query(&mut connect(url))
        .unwrap();
    let present: HashSet<u64> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("load:")?.parse().ok())
        .collect();
    let max = present
        .iter()
        .copied()
        .max()
        .expect("the load ran before the cut");
    assert!(max < written);
    let missing: Vec<u64> = (0..max.saturating_sub(20))
        .filter(|n| !present.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "the cut is not one moment: {} earlier load keys missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    present.len()
}

#[test]
fn backup_consistent_cluster_restores_onto_three_shapes() {
    let _heavy = heavy();
    let src = deployment(|_| {});
    let url = format!("redis://{}/", src.proxy.addr);
    populate(&url, KEYS);
    let load = Load::start(&url);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dbsize(&url) <= KEYS as u64 + 100 {
        assert!(Instant::now() < deadline, "the write load never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dest = tempfile::tempdir().unwrap();
    let dest_s = dest.path().display().to_string();
    let seeds = src.masters().join(",");
    let m = hive_json(
        &[
            "backup",
            "--cluster",
            &seeds,
            "--dest",
            &dest_s,
            "--consistent",
            "--json",
        ],
        &[],
    );
    let written = load.stop();
    assert_eq!(m["state"], "complete");
    assert_eq!(m["mode"], "cluster");
    assert_eq!(m["consistent"], true);
    let pause = m["pause_ms"].as_f64().expect("the pause is measured");
    assert!(pause > 0.0 && pause < 2000.0, "pause {pause} ms");
    let shards = m["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    let slots: u64 = shards
        .iter()
        .map(|s| s["slot_count"].as_u64().unwrap())
        .sum();
    assert_eq!(slots, 16384);
    for s in shards {
        assert_eq!(s["method"], "module", "{s:#}");
        assert_eq!(s["role"], "master");
        assert!(s["sha256"].as_str().unwrap().len() == 64);
        assert!(s["module_version"].is_string());
    }
    let keys: u64 = shards.iter().map(|s| s["dbsize"].as_u64().unwrap()).sum();
    assert!(
        keys > KEYS as u64 && keys <= KEYS as u64 + written,
        "{keys} keys, {written} written by the load"
    );
    let id = m["id"].as_str().unwrap().to_string();

    // (a) A fresh 3+3 cluster: interrupted by SIGINT mid-copy, then resumed.
    let a = Env::cluster();
    let a_seeds = a.cluster.master_addrs().join(",");
    let args = restore_args(&id, &dest_s, &["--cluster", &a_seeds]);
    let child = Command::new(hive_bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while dbsize(&a.url()) == 0 {
        assert!(
            Instant::now() < deadline,
            "the restore never started copying"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "an interrupted restore exits non-zero"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["interrupted"], true, "{report:#}");
    let partial = dbsize(&a.url());
    assert!(
        partial > 0 && partial < keys,
        "{partial} of {keys} keys after the interruption"
    );
    let mut resume = args.clone();
    resume.push("--resume");
    assert_restored(&hive_json(&resume, &[]), keys);
    assert_eq!(dbsize(&a.url()), keys);
    assert_eq!(check_populated(&a.url(), KEYS, 7), KEYS.div_ceil(7));
    let load_keys = assert_consistent_cut(&a.url(), written);
    assert_eq!(load_keys as u64 + KEYS as u64, keys);

    // (b) A 5-master cluster.
    let b = Env::with(5, 0, |_| {});
    let b_seeds = b.cluster.master_addrs().join(",");
    assert_restored(
        &hive_json(&restore_args(&id, &dest_s, &["--cluster", &b_seeds]), &[]),
        keys,
    );
    assert_eq!(dbsize(&b.url()), keys);
    check_populated(&b.url(), KEYS, 13);

    // (c) Sentinel groups.
    let c = GroupEnv::sentinel(3, None, |_| {});
    let sentinels = c.groups.sentinel_addrs().join(",");
    let names = c.groups.names().join(",");
    let report = hive_json(
        &restore_args(
            &id,
            &dest_s,
            &["--sentinel", &sentinels, "--masters", &names],
        ),
        &[],
    );
    assert_restored(&report, keys);
    assert_eq!(report["target_mode"], "sentinel");
    assert_eq!(dbsize(&c.url()), keys);
    check_populated(&c.url(), KEYS, 13);
}

#[test]
fn backup_aof_type_captures_the_aof_and_restores_from_it() {
    let src = deployment(|_| {});
    let url = format!("redis://{}/", src.proxy.addr);
    // AOF on, at run time: Redis writes its base file, then the incremental one.
    for n in src.cluster.master_addrs() {
        let mut c = connect(&hive_tests::node_url(&n));
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendonly")
            .arg("yes")
            .query(&mut c)
            .unwrap();
    }
    // The switch rewrites the AOF in a child; HIVE.BACKUP's BGSAVE must not meet it.
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in src.cluster.master_addrs() {
        let mut c = connect(&hive_tests::node_url(&n));
        loop {
            let p: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
            if p.contains("aof_enabled:1")
                && p.contains("aof_rewrite_in_progress:0")
                && p.contains("aof_rewrite_scheduled:0")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{n}: the AOF never finished its first rewrite"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    populate(&url, 6_000);
    let dest = tempfile::tempdir().unwrap();
    let dest_s = dest.path().display().to_string();
    let seeds = src.masters().join(",");
    let m = hive_json(
        &[
            "backup",
            "--cluster",
            &seeds,
            "--dest",
            &dest_s,
            "--type",
            "aof",
            "--json",
        ],
        &[],
    );
    for s in m["shards"].as_array().unwrap() {
        assert!(s["file"].is_null(), "--type aof keeps no RDB");
        let names: Vec<&str> = s["aof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(names[0].ends_with(".manifest"), "{names:?}");
        assert!(names.iter().any(|n| n.contains(".incr.")), "{names:?}");
    }
    let id = m["id"].as_str().unwrap();
    let v = hive_json(&["backups", "verify", id, "--dest", &dest_s, "--json"], &[]);
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(v["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["check"] == "ok"));
    let target = Env::with(3, 0, |_| {});
    let t_seeds = target.cluster.master_addrs().join(",");
    let report = hive_json(&restore_args(id, &dest_s, &["--cluster", &t_seeds]), &[]);
    assert_restored(&report, 6_000);
    check_populated(&target.url(), 6_000, 1);

    // A node with AOF off cannot give one: the error says why, nothing is claimed done.
    let off = src.cluster.master_addrs()[0].clone();
    let mut c = connect(&hive_tests::node_url(&off));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .query(&mut c)
        .unwrap();
    let (ok, _, err) = hive(
        &[
            "backup",
            "--cluster",
            &seeds,
            "--dest",
            &dest_s,
            "--type",
            "both",
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("AOF is off on this node"), "{err}");
}
