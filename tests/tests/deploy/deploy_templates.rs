//! The redis.conf and sentinel.conf templates in deploy/redis start real servers with the
//! module loaded and the documented persistence, memory and auth settings.

use std::path::Path;
use std::time::{Duration, Instant};

use hive_local::process::{redis_sentinel_bin, redis_server_bin};
use hive_local::RedisProcess;
use hive_tests::{connect, free_port_pair, module_so};

fn render(template: &str, dir: &Path, vars: &[(&str, String)]) -> std::path::PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/redis/");
    let mut text = std::fs::read_to_string(format!("{root}{template}")).unwrap();
    for (k, v) in vars {
        text = text.replace(k, v);
    }
    assert!(!text.contains('@'), "{template}: unreplaced placeholder");
    let out = dir.join(template);
    std::fs::write(&out, text).unwrap();
    out
}

fn config(c: &mut redis::Connection, name: &str) -> String {
    let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(c).unwrap();
    v.get(1).cloned().unwrap_or_default()
}

#[test]
fn templates_start_with_module_persistence_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let so = module_so().display().to_string();
    let pw = "tmpl-pass".to_string();
    let mport = free_port_pair().unwrap();
    let vars = |port: u16| {
        vec![
            ("@PORT@", port.to_string()),
            ("@BIND@", "127.0.0.1".to_string()),
            ("@DIR@", d.clone()),
            ("@MODULE@", so.clone()),
            ("@PASSWORD@", pw.clone()),
            ("@MASTER_HOST@", "127.0.0.1".to_string()),
            ("@MASTER_PORT@", mport.to_string()),
        ]
    };
    let start = |template: &str, port: u16| {
        let conf = render(template, dir.path(), &vars(port));
        let conf = conf.display().to_string();
        RedisProcess::start_with(redis_server_bin(), dir.path(), port, vec![conf]).unwrap()
    };
    let master = start("redis-master.conf", mport);
    let rport = free_port_pair().unwrap();
    let replica = start("redis-replica.conf", rport);
    let cport = free_port_pair().unwrap();
    let cluster_node = start("redis-cluster-node.conf", cport);
    let url = |p: u16| format!("redis://:{pw}@127.0.0.1:{p}/");
    for (name, port) in [("master", mport), ("replica", rport), ("cluster", cport)] {
        let mut c = connect(&url(port));
        assert_eq!(config(&mut c, "appendonly"), "yes", "{name}");
        assert_eq!(config(&mut c, "appendfsync"), "everysec", "{name}");
        assert_eq!(config(&mut c, "save"), "900 1 300 10 60 10000", "{name}");
        assert_eq!(config(&mut c, "maxmemory-policy"), "allkeys-lru", "{name}");
        assert_eq!(config(&mut c, "hive.backup-keep"), "14", "{name}");
        let _: Vec<redis::Value> = redis::cmd("HIVE.TOPOLOGY").query(&mut c).unwrap();
        // The password is required.
        let mut anon = connect(&format!("redis://127.0.0.1:{port}/"));
        assert!(
            redis::cmd("PING").query::<String>(&mut anon).is_err(),
            "{name} without AUTH"
        );
    }
    let mut c = connect(&url(cport));
    assert_eq!(config(&mut c, "cluster-enabled"), "yes");
    // The replica follows the master with masterauth.
    let mut r = connect(&url(rport));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(Instant::now() < deadline, "replica never synced: {info}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Sentinel template: monitors the master with quorum 2 and the documented timings.
    let sport = free_port_pair().unwrap();
    let mut svars = vars(sport);
    svars.push(("@NAME@", "tmpl".to_string()));
    let conf = render("sentinel.conf", dir.path(), &svars)
        .display()
        .to_string();
    let sentinel =
        RedisProcess::start_with(redis_sentinel_bin(), dir.path(), sport, vec![conf]).unwrap();
    let mut s = connect(&url(sport));
    let m: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg("tmpl")
        .query(&mut s)
        .unwrap();
    let field = |k: &str| {
        m.iter()
            .position(|x| x == k)
            .map(|i| m[i + 1].clone())
            .unwrap()
    };
    assert_eq!(field("quorum"), "2");
    assert_eq!(field("down-after-milliseconds"), "5000");
    assert_eq!(field("parallel-syncs"), "1");
    assert_eq!(field("port"), mport.to_string());
    drop((sentinel, cluster_node, replica, master));
}

fn promtool(args: &[&str]) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus");
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian's prometheus package; deploy/local/deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_fires_and_clears() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 14 rules found"), "{checked}");
    promtool(&["test", "rules", "alerts_test.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
    // Every alert has a firing and a cleared case in the unit tests.
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/alerts.yml"
    ))
    .unwrap();
    let tests = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/alerts_test.yml"
    ))
    .unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let cases = tests.matches(&format!("alertname: {alert}\n")).count();
        assert!(cases >= 2, "{alert}: {cases} test cases");
    }
    for severity in ["critical", "warning", "info"] {
        assert!(rules.contains(&format!("severity: {severity}")));
    }
}

#[test]
fn grafana_dashboard_is_valid_json_with_the_proxy_panels() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/hive-dashboard.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let titles: Vec<&str> = v["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Memory per node",
        "Hit rate",
        "Network I/O",
        "Replication lag",
        "Proxy latency p50 / p99 by command",
        "Errors/s by code",
        "Redirects followed/s",
        "Failovers followed",
        "Requests held through failovers",
    ] {
        assert!(titles.contains(&want), "no panel {want}: {titles:?}");
    }
    for p in v["panels"].as_array().unwrap() {
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{}",
            p["title"]
        );
    }
}

/// The backup units pass `systemd-analyze verify` (with `hive` at the path they name, here the
/// built binary), and the command they and the CronJobs run is one `hive backup` accepts.
#[test]
fn backup_schedules_verify_and_run_real_commands() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/backup");
    let dir = tempfile::tempdir().unwrap();
    let hive = hive_tests::hive_bin().display().to_string();
    for f in [
        "hive-backup@.service",
        "hive-backup-hourly.timer",
        "hive-backup-daily.timer",
    ] {
        let text = std::fs::read_to_string(src.join("systemd").join(f)).unwrap();
        std::fs::write(
            dir.path().join(f),
            text.replace("/usr/local/bin/hive", &hive),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(
        "hive-backup@.service",
        dir.path().join("hive-backup@hourly.service"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "hive-backup@.service",
        dir.path().join("hive-backup@daily.service"),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args([
            "hive-backup@hourly.service",
            "hive-backup@daily.service",
            "hive-backup-hourly.timer",
            "hive-backup-daily.timer",
        ])
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian's systemd)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The CronJobs' `hive backup` arguments (after render-conf.sh's `exec`), as `hive` parses
    // them: an unknown flag fails before any I/O; a valid command line first misses the config.
    let yaml = std::fs::read_to_string(src.join("kubernetes/backup-cronjobs.yaml")).unwrap();
    let mut jobs = 0;
    for (start, _) in yaml.match_indices("args: [\"/etc/hive-templates/") {
        let end = start + yaml[start..].find(']').unwrap();
        let list = &yaml[start + "args: ".len()..=end];
        let args: Vec<String> = serde_json::from_str(&list.replace('\n', " ")).unwrap();
        let hive_args = &args[args.iter().position(|a| a == "exec").unwrap() + 2..];
        assert_eq!(hive_args[0], "backup");
        let out = std::process::Command::new(&hive)
            .args(hive_args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/tmp/hive.toml"), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        jobs += 1;
    }
    assert_eq!(jobs, 2, "an hourly and a daily CronJob");
}
