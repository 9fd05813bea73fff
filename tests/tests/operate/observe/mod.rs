//! What an operator sees of a running proxy: `/metrics` (every name the Grafana dashboard and
//! the alert rules use exists, and `promtool check metrics` accepts the exposition),
//! `/healthz` and `/readyz`, SLOWLOG and MONITOR through the proxy, with the wrong user too;
//! hot and big keys (`hotkeys`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_local::{ClusterOpts, LocalCluster};
use hive_proxy::config::Config;
use hive_proxy::server::ProxyHandle;
use hive_tests::{connect, error_text, http, module_so, run, GroupEnv};
use redis::{Commands, Value};

mod hotkeys;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `hive_*` and `redis_*` names in PromQL expressions (and the JSON that holds them).
fn names_used(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("hive_") || t.starts_with("redis_"))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether `name` is a family of the scrapes, or a histogram's `_bucket`/`_sum`/`_count`.
fn exposed(families: &[(String, String)], name: &str) -> bool {
    families.iter().any(|(n, t)| {
        n == name
            || (t == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(n.as_str())))
    })
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(super) fn promtool_check_metrics(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; deploy/local/deps.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn admin(config: &mut Config) {
    config.proxy.admin_listen = Some("127.0.0.1:0".into());
    config.proxy.node_poll_interval_ms = 200;
}

/// A 3+3 cluster with hive-module, a backup taken, traffic through the proxy; and a sentinel
/// deployment for the sentinel metrics. Together their scrapes hold every name in use.
#[test]
fn metrics_cover_the_dashboard_and_the_alert_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ClusterOpts::new(3, 1, dir.path().to_path_buf());
    opts.extra = vec!["--loadmodule".into(), module_so().display().to_string()];
    let cluster = LocalCluster::start(&opts).expect("cluster");
    let mut config = Config::default();
    config.proxy.listen = "127.0.0.1:0".into();
    config.proxy.requirepass = Some("proxy-secret-pw".into());
    config.proxy.slowlog_slower_than_us = 0;
    config.backend.seeds = cluster.master_addrs();
    admin(&mut config);
    let proxy = ProxyHandle::start(config).expect("proxy");
    let mut c = connect(&format!("redis://:proxy-secret-pw@{}/", proxy.addr));
    for i in 0..300 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
        let _: Option<String> = c.get(format!("k{i}")).unwrap();
    }
    let _ = run(&mut c, &["GET"]);
    let _ = connect_fails_auth(&proxy);
    // A finished backup on one master, for the backup-age metric.
    let master = cluster.master_addrs()[0].clone();
    let mut node = connect(&hive_tests::node_url(&master));
    let _: String = redis::cmd("HIVE.BACKUP")
        .arg("START")
        .query(&mut node)
        .unwrap();
    wait_for("the backup", Duration::from_secs(20), || {
        let v: Value = redis::cmd("HIVE.BACKUP")
            .arg("STATUS")
            .query(&mut node)
            .unwrap();
        format!("{v:?}").contains("\"done\"") || format!("{v:?}").contains("done")
    });
    let addr = proxy.admin_addr.expect("admin listener");
    let mut scrape = String::new();
    wait_for(
        "a poll with replicas, lag and the backup",
        Duration::from_secs(20),
        || {
            scrape = http::get(addr, "/metrics").1;
            scrape.contains("hive_replica_lag_seconds{")
                && scrape.contains("hive_backup_last_success_timestamp_seconds{")
                && scrape.contains("redis_master_link_up{")
        },
    );
    assert!(
        !scrape.contains("proxy-secret-pw"),
        "a password reached /metrics"
    );
    promtool_check_metrics(&scrape);
    let sentinel = GroupEnv::sentinel(1, None, admin);
    let sentinel_addr = sentinel.proxy.admin_addr.unwrap();
    let mut sentinel_scrape = String::new();
    wait_for("sentinel metrics", Duration::from_secs(20), || {
        sentinel_scrape = http::get(sentinel_addr, "/metrics").1;
        sentinel_scrape.contains("redis_sentinel_master_ckquorum_status{")
    });
    promtool_check_metrics(&sentinel_scrape);
    let mut families = http::families(&scrape);
    families.extend(http::families(&sentinel_scrape));
    let used = [
        deploy("grafana/hive-dashboard.json"),
        deploy("prometheus/alerts.yml"),
    ]
    .concat();
    let missing: Vec<String> = names_used(&used)
        .into_iter()
        .filter(|n| !exposed(&families, n))
        .collect();
    assert!(missing.is_empty(), "used but never exposed: {missing:?}");
    assert!(names_used(&used).len() > 30);
    // The figures are real: GETs were counted and timed.
    let gets = scrape
        .lines()
        .find(|l| l.starts_with("hive_commands_total{cmd=\"get\"}"))
        .expect("GET counted");
    assert!(gets.ends_with(" 300"), "{gets}");
    assert!(
        scrape.contains("hive_errors_total{code=\"ERR\"} 1"),
        "wrong arity counted"
    );
    assert!(scrape.contains("hive_auth_failures_total 1"));
}

fn connect_fails_auth(proxy: &ProxyHandle) -> bool {
    redis::Client::open(format!("redis://:wrong@{}/", proxy.addr))
        .unwrap()
        .get_connection()
        .is_err()
}

#[test]
fn readyz_turns_unready_when_a_master_stops_answering() {
    let mut env = GroupEnv::statik(2, admin);
    let addr = env.proxy.admin_addr.unwrap();
    assert_eq!(http::get(addr, "/healthz"), (200, "ok\n".into()));
    wait_for("ready", Duration::from_secs(10), || {
        http::get(addr, "/readyz").0 == 200
    });
    assert_eq!(http::get(addr, "/nope").0, 404);
    let master = env.groups.initial_masters()[1].clone();
    env.groups.node_mut(&master).unwrap().kill();
    wait_for("unready", Duration::from_secs(10), || {
        http::get(addr, "/readyz").0 == 503
    });
    let (_, why) = http::get(addr, "/readyz");
    assert!(why.contains(&master), "{why}");
    assert_eq!(http::get(addr, "/healthz").0, 200);
    let scrape = http::get(addr, "/metrics").1;
    assert!(
        scrape.contains(&format!("redis_up{{addr=\"{master}\"")),
        "{scrape}"
    );
    // The shard label does not name the master, so it outlives a failover.
    let label = env.proxy.shared.plane.topology.load().shard_label(1);
    assert_eq!(label, "slots:8192");
    assert!(scrape.contains(&format!(
        "redis_up{{addr=\"{master}\",shard=\"{label}\"}} 0"
    )));
}

#[test]
fn slowlog_shows_the_proxys_slow_requests_like_redis() {
    let env = GroupEnv::statik(2, |c| {
        c.proxy.slowlog_slower_than_us = 0;
        c.proxy.slowlog_max_len = 3;
        c.proxy.users = vec![
            "ops on >opspw ~* &* +@all".into(),
            "app on >apppw ~* &* +@all -@admin".into(),
        ];
    });
    let mut c = connect(&format!("redis://ops:opspw@{}/", env.proxy.addr));
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut c).unwrap();
    let _: () = c.set("alpha", "1").unwrap();
    let _: Vec<Option<String>> = redis::cmd("MGET")
        .arg("a{0}")
        .arg("b{1}")
        .query(&mut c)
        .unwrap();
    let long = "x".repeat(200);
    let _: () = c.set("beta", &long).unwrap();
    let entries: Vec<(i64, i64, i64, Vec<String>, String, String)> =
        redis::cmd("SLOWLOG").arg("GET").query(&mut c).unwrap();
    assert_eq!(entries.len(), 3, "{entries:?}");
    // Newest first; SET beta's value cut at 128 bytes as Redis does.
    assert_eq!(entries[0].3[0].to_ascii_lowercase(), "set");
    assert_eq!(entries[0].3[1], "beta");
    assert!(entries[0].3[2].ends_with("... (72 more bytes)"));
    let mget = &entries[1].3;
    assert_eq!(mget[0].to_ascii_lowercase(), "mget");
    assert!(
        mget.contains(&"a{0}".to_string()) && mget.contains(&"b{1}".to_string()),
        "{mget:?}"
    );
    assert!(entries[0].0 > entries[1].0);
    assert!(entries[0].4.starts_with("127.0.0.1:"));
    let n: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let one: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        error_text(run(&mut c, &["SLOWLOG", "GET", "-2"])),
        "ERR count should be greater than or equal to -1"
    );
    assert_eq!(
        error_text(run(&mut c, &["SLOWLOG", "GET", "x"])),
        "ERR value is not an integer or out of range"
    );
    let mut app = connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    assert!(error_text(run(&mut app, &["SLOWLOG", "RESET"])).starts_with("NOPERM"));
    assert!(error_text(run(&mut app, &["MONITOR"])).starts_with("NOPERM"));
}

#[test]
fn monitor_streams_every_clients_commands_in_redis_format() {
    let env = GroupEnv::statik(2, |c| c.proxy.requirepass = Some("pw".into()));
    let url = format!("redis://:pw@{}/", env.proxy.addr);
    let mut m = connect(&url);
    let ok: String = redis::cmd("MONITOR").query(&mut m).unwrap();
    assert_eq!(ok, "OK");
    let mut c = connect(&url);
    let _: () = c.set("mon\"key", "v\n1").unwrap();
    let _: Option<String> = c.get("other").unwrap();
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.iter().any(|l| l.contains("\"other\"")) && Instant::now() < deadline {
        let v: Value = m.recv_response().unwrap();
        if let Value::SimpleString(s) = v {
            lines.push(s);
        }
    }
    // AUTH's password is redacted as Redis does; the SET's quote and newline are escaped.
    let auth = lines
        .iter()
        .find(|l| l.contains("\"AUTH\""))
        .expect("AUTH shown");
    assert!(auth.ends_with(r#""AUTH" "(redacted)""#), "{auth}");
    assert!(lines.iter().all(|l| !l.contains("\"pw\"")), "{lines:?}");
    let set = lines
        .iter()
        .find(|l| l.contains("\"SET\""))
        .expect("SET shown");
    let (time, rest) = set.split_once(' ').unwrap();
    assert!(time.parse::<f64>().is_ok_and(|t| t > 1.7e9), "{set}");
    assert!(rest.starts_with("[0 127.0.0.1:"), "{set}");
    assert!(rest.ends_with(r#"] "SET" "mon\"key" "v\n1""#), "{set}");
    assert!(
        lines.iter().any(|l| l.ends_with(r#""GET" "other""#)),
        "{lines:?}"
    );
}

/// A graceful Sentinel failover under writes: counted as a failover followed, timed from the
/// first write that had to wait to the first that succeeded on the new master.
#[test]
fn failover_is_counted_and_timed_in_metrics() {
    let env = GroupEnv::sentinel(1, None, admin);
    let addr = env.proxy.admin_addr.unwrap();
    let before = env.routed_master(0);
    let mut c = env.client();
    let _: () = c.set("fo", 0).unwrap();
    let sentinel = env.groups.sentinel_addrs()[0].clone();
    let mut s = connect(&hive_tests::node_url(&sentinel));
    let _: String = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg("hive-a")
        .query(&mut s)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while env.routed_master(0) == before || i < 50 {
        assert!(Instant::now() < deadline, "no failover within 30 s");
        i += 1;
        let _: () = c.set("fo", i).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let value = |scrape: &str, name: &str| -> f64 {
        scrape
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let scrape = http::get(addr, "/metrics").1;
    assert!(
        value(&scrape, "hive_failovers_followed_total") >= 1.0,
        "{scrape}"
    );
    assert!(value(&scrape, "hive_held_request_duration_seconds_count") >= 1.0);
    assert_eq!(value(&scrape, "hive_failover_recovery_seconds_count"), 1.0);
    let took = value(&scrape, "hive_failover_recovery_seconds_sum");
    assert!(took > 0.0 && took < 30.0, "recovery {took} s");
}
