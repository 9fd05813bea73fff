//! `hive drill failover` run as a binary against sentinel and cluster deployments.

use hive_tests::{heavy, Env, GroupEnv};

fn run_drill(proxy: std::net::SocketAddr, args: &[&str]) -> String {
    let out = drill(proxy, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn drill(proxy: std::net::SocketAddr, args: &[&str]) -> std::process::Output {
    std::process::Command::new(hive_tests::hive_bin())
        .args([
            "drill",
            "failover",
            "--proxy",
            &proxy.to_string(),
            "--duration",
            "6",
        ])
        .args(args)
        .output()
        .expect("run hive drill")
}

fn report_number(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|v| v.trim().split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in {report}"))
}

#[test]
fn drill_failover_reports_outage_errors_and_losses() {
    let _g = heavy();
    let env = GroupEnv::sentinel(2, None, |_| {});
    let old = env.routed_master(1);
    let report = run_drill(env.proxy.addr, &["--group", "hive-b"]);
    assert!(
        report.contains("failover drill of shard 'hive-b'"),
        "{report}"
    );
    assert!(
        report.contains(&format!("master:             {old} -> ")),
        "{report}"
    );
    assert_ne!(env.routed_master(1), old);
    assert_eq!(report_number(&report, "missing acked:"), 0, "{report}");
    assert_eq!(report_number(&report, "errors (others):"), 0, "{report}");
    assert_eq!(report_number(&report, "errors (shard):"), 0, "{report}");
    let outage = report_number(&report, "write outage:");
    assert!(outage > 0 && outage < 6000, "{report}");
    // --kill: the master dies; in-flight writes may fail, nothing acknowledged is lost.
    let killed = env.routed_master(0);
    let report = run_drill(
        env.proxy.addr,
        &["--group", "hive-a", "--kill", "--no-restart"],
    );
    assert_eq!(report_number(&report, "missing acked:"), 0, "{report}");
    assert_eq!(report_number(&report, "errors (others):"), 0, "{report}");
    let outage = report_number(&report, "write outage:");
    assert!(
        outage >= 1000,
        "a kill -9 cannot recover before down-after: {report}"
    );
    assert!(!report.contains("restarted:"), "{report}");
    // Its master killed and never started again, the group has no replica left: a second
    // kill is refused, with the reason, before anything is killed.
    let survivor = env.routed_master(0);
    assert_ne!(survivor, killed);
    let out = drill(env.proxy.addr, &["--group", "hive-a", "--kill"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.starts_with("hive: shard 'hive-a' has no replica to promote"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let mut m = env.node(&survivor);
    assert_eq!(
        hive_tests::run(&mut m, &["PING"]).unwrap(),
        redis::Value::SimpleString("PONG".into())
    );
}

#[test]
fn drill_failover_in_cluster_mode_uses_cluster_failover() {
    let _g = heavy();
    let env = Env::cluster();
    let old = env.proxy.shared.plane.topology.load().map.shards()[0]
        .master
        .clone();
    let report = run_drill(env.proxy.addr, &["--group", &old]);
    assert!(
        report.contains(&format!("master:             {old} -> ")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("-> {old}")),
        "the master did not change: {report}"
    );
    assert_eq!(report_number(&report, "missing acked:"), 0, "{report}");
    assert_eq!(report_number(&report, "errors (shard):"), 0, "{report}");
    assert_eq!(report_number(&report, "errors (others):"), 0, "{report}");
    // --kill starts the killed master again and waits until it is the new master's replica.
    let killed = env.proxy.shared.plane.topology.load().map.shards()[0]
        .master
        .clone();
    // The old master syncs as the new one's replica first (the drill refuses a shard
    // without one).
    let mut m = hive_tests::connect(&hive_tests::node_url(&killed));
    hive_tests::module_cluster::wait_for(
        "the demoted master online as a replica",
        std::time::Duration::from_secs(20),
        || {
            let info: String = redis::cmd("INFO").arg("replication").query(&mut m).unwrap();
            info.contains("state=online")
        },
    );
    let report = run_drill(env.proxy.addr, &["--group", &killed, "--kill"]);
    assert_eq!(report_number(&report, "missing acked:"), 0, "{report}");
    let now = env.proxy.shared.plane.topology.load().map.shards()[0]
        .master
        .clone();
    assert_ne!(now, killed);
    assert!(
        report.contains(&format!(
            "restarted:          {killed} rejoined as a replica of {now} in "
        )),
        "{report}"
    );
    let mut n = hive_tests::connect(&hive_tests::node_url(&killed));
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut n).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
}

/// With hive-module on the nodes, the drill times the promotion as the promoted node reports
/// it to the first write through the proxy that succeeded.
#[test]
fn drill_failover_reports_promotion_to_first_write_with_the_module() {
    let _g = heavy();
    let d = hive_tests::module_cluster::deployment(|_| {});
    let old = d.masters()[0].clone();
    let replica = d.replica_of(0);
    let report = run_drill(d.proxy.addr, &["--group", &old]);
    let ms = report_number(&report, "promotion -> write:");
    assert!(ms < 5000, "{report}");
    assert!(report.contains(&format!("{old} -> {replica}")), "{report}");
    assert!(
        report.contains(&format!("from {replica}'s promotion event")),
        "{report}"
    );
    assert_eq!(report_number(&report, "missing acked:"), 0, "{report}");
}
