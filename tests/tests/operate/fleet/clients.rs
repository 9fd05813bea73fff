//! Real cluster clients through a fleet of three Hives: redis-py's RedisCluster and ioredis's
//! Cluster, started from one Hive, spread their load over all three (each Hive's INFO shows its
//! share); after a kill -9 of one Hive they carry on through the other two, and the requests
//! that failed are counted and bounded.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use hive_tests::module_cluster::wait_for;

use super::Fleet;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// redis-py's client under the test venv's Python.
fn python() -> Command {
    let mut c = Command::new(hive_tests::python());
    c.arg(root().join("py/fleet_load.py"));
    c
}

/// Node.js with ioredis, as `deploy/local/test.sh` installs it under target/node.
fn node() -> Command {
    let modules = root().join("../target/node/node_modules");
    assert!(
        modules.join("ioredis").exists(),
        "{}: run deploy/local/test.sh, which installs ioredis from npm",
        modules.display()
    );
    let mut c = Command::new("node");
    c.env("NODE_PATH", modules)
        .arg(root().join("js/fleet_load.js"));
    c
}

fn commands(f: &Fleet, i: usize) -> u64 {
    redis::Client::open(f.url(i))
        .and_then(|c| c.get_connection())
        .map(|mut c| hive_tests::info_u64(&mut c, "total_commands_processed"))
        .unwrap_or(0)
}

/// Runs `client` against Hive 0 of a fresh fleet, kills Hive 1 once every Hive carries load,
/// and checks what the client saw.
fn load_through_a_kill(mut client: Command, name: &str) {
    let _g = hive_tests::heavy();
    let mut f = Fleet::start(false, "");
    let before: Vec<u64> = (0..3).map(|i| commands(&f, i)).collect();
    let mut child = client
        .args(["--port", &f.addrs[0].port().to_string(), "--seconds", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the client");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{name} did not start");
    // Each Hive carries a share: cluster clients route by the slots the fleet gave out.
    wait_for("every Hive to carry load", Duration::from_secs(10), || {
        (0..3).all(|i| commands(&f, i) > before[i] + 200)
    });
    let shares: Vec<u64> = (0..3).map(|i| commands(&f, i) - before[i]).collect();
    eprintln!("{name}: commands per Hive before the kill: {shares:?}");
    f.kill(1);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(child.wait().unwrap().success(), "{name} failed");
    let r: serde_json::Value = serde_json::from_str(line.trim()).expect("the client's report");
    eprintln!("{name}: {r}");
    assert_eq!(r["wrong"], 0, "{name} read a wrong value");
    let errors = r["errors"].as_u64().unwrap();
    // One request at a time: one in flight on the dead Hive, and what the client sends
    // before it hears the fleet without it. The fleet's view drops the Hive at once.
    assert!(errors <= 3, "{name}: {errors} errors");
    if errors > 0 {
        assert!(
            r["ok_after_error"].as_u64().unwrap() > 100,
            "{name} did not carry on"
        );
    }
    // The client now knows two Hives.
    let nodes: Vec<String> = serde_json::from_value(r["nodes"].clone()).unwrap();
    let mut want = vec![f.addrs[0].to_string(), f.addrs[2].to_string()];
    want.sort();
    assert_eq!(nodes, want, "{name}");
}

#[test]
fn fleet_redis_py_cluster_spreads_load_and_survives_a_kill() {
    load_through_a_kill(python(), "redis-py");
}

#[test]
fn fleet_ioredis_cluster_spreads_load_and_survives_a_kill() {
    load_through_a_kill(node(), "ioredis");
}
