//! `hive drill failover` run as a binary against sentinel and cluster deployments.

use hive_tests::{heavy, Env, GroupEnv};

fn run_drill(proxy: std::net::SocketAddr, args: &[&str]) -> String {
    let out = std::process::Command::new(hive_tests::hive_bin())
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
        .expect("run hive drill");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
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
    let report = run_drill(env.proxy.addr, &["--group", "hive-a", "--kill"]);
    assert_eq!(report_number(&report, "missing acked:"), 0, "{report}");
    assert_eq!(report_number(&report, "errors (others):"), 0, "{report}");
    let outage = report_number(&report, "write outage:");
    assert!(
        outage >= 1000,
        "a kill -9 cannot recover before down-after: {report}"
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
