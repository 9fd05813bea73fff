//! Growing a cluster whose nodes have a password: the config's node credentials reach every
//! node and ride along on MIGRATE (AUTH2); a wrong password or user is refused, named as the
//! node's error, never printed, and nothing changes.

use std::time::Duration;

use hive_local::{ClusterOpts, LocalCluster};
use hive_tests::backups::hive;
use hive_tests::module_cluster::wait_for;

use super::spare_nodes;

const PASSWORD: &str = "s3cret-node-pw";

fn node(addr: &str, password: Option<&str>) -> redis::Connection {
    let url = match password {
        Some(p) => format!("redis://:{p}@{addr}/"),
        None => format!("redis://{addr}/"),
    };
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// Every node of the cluster (and the spare) asks for a password from now on; replicas
/// authenticate to their masters with it.
fn protect(addrs: &[String]) {
    for a in addrs {
        let mut c = node(a, None);
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("masterauth")
            .arg(PASSWORD)
            .query(&mut c)
            .unwrap();
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(PASSWORD)
            .query(&mut c)
            .unwrap();
    }
}

fn config(
    dir: &std::path::Path,
    name: &str,
    seed: &str,
    user: Option<&str>,
    password: &str,
) -> String {
    let path = dir.join(name);
    let user = user.map_or(String::new(), |u| format!("username = \"{u}\"\n"));
    std::fs::write(
        &path,
        format!("[backend]\nmode = \"cluster\"\nseeds = [\"{seed}\"]\n{user}password = \"{password}\"\n"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn reshard_with_node_passwords_migrates_and_refuses_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(&ClusterOpts::new(3, 0, dir.path().to_path_buf())).unwrap();
    let m = cluster.master_addrs();
    let spare = spare_nodes(dir.path(), 1);
    let mut all = cluster.addrs();
    all.push(spare[0].addr.clone());
    protect(&all);
    let mut src = node(&m[0], Some(PASSWORD));
    // Keys in the slots the reshard takes: m[0]'s highest 50 (5411-5460).
    let keys: Vec<String> = (0..)
        .map(|i| format!("auth:{i}"))
        .filter(|k| (5411..=5460).contains(&hive_common::Slot::for_key(k.as_bytes()).get()))
        .take(40)
        .collect();
    for k in &keys {
        let () = redis::cmd("SET").arg(k).arg(k).query(&mut src).unwrap();
    }

    let good = config(dir.path(), "good.toml", &m[0], None, PASSWORD);
    let wrong = config(dir.path(), "wrong.toml", &m[0], None, "not-the-password");
    let stranger = config(dir.path(), "user.toml", &m[0], Some("nobody"), PASSWORD);
    for bad in [&wrong, &stranger] {
        let (ok, out, err) = hive(
            &[
                "reshard", "--config", bad, "--slots", "50", "--from", &m[0], "--to", &m[1],
            ],
            &[],
        );
        assert!(!ok, "a wrong credential must fail: {out}");
        assert!(err.contains("WRONGPASS"), "{err}");
        assert!(
            !err.contains("not-the-password") && !err.contains(PASSWORD) && !out.contains(PASSWORD),
            "a password was printed: {err}"
        );
    }
    let dbsize = |a: &str| -> u64 {
        redis::cmd("DBSIZE")
            .query(&mut node(a, Some(PASSWORD)))
            .unwrap()
    };
    assert_eq!(dbsize(&spare[0].addr), 0);

    let (ok, out, err) = hive(&["add-shard", "--config", &good, &spare[0].addr], &[]);
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = hive(
        &[
            "reshard",
            "--config",
            &good,
            "--slots",
            "50",
            "--from",
            &m[0],
            "--to",
            &spare[0].addr,
            "--pace",
            "100",
            "--json",
        ],
        &[],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "a password was printed"
    );
    let moved: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(moved["outcome"]["keys"], keys.len() as u64, "{moved}");
    // MIGRATE reached the protected target: the keys are there, readable with the password.
    wait_for(
        "the keys on the new master",
        Duration::from_secs(10),
        || dbsize(&spare[0].addr) == keys.len() as u64,
    );
    let mut dst = node(&spare[0].addr, Some(PASSWORD));
    for k in &keys {
        let v: String = redis::cmd("GET").arg(k).query(&mut dst).unwrap();
        assert_eq!(&v, k);
    }
}
