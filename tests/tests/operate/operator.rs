//! The operator commands as a user runs them, against real nodes: `hive status` (tables,
//! `--json`, exit 0/1/2), `hive check` (passes on a deployment set up as the templates say,
//! names what fails, and a wrong proxy password), `hive monitor` under tmux, and `hive proxy`'s
//! SIGHUP reload, `--check-config` and JSON logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hive_local::{GroupOpts, LocalGroups};
use hive_proxy::config::{Config, Mode};
use hive_proxy::server::ProxyHandle;
use hive_tests::tmux::Session;
use hive_tests::{connect, free_port_pair, hive_bin, module_so};

/// Two master + replica groups with the module and the templates' persistence.
fn groups(dir: &Path) -> LocalGroups {
    let mut opts = GroupOpts::new(2, 0, dir.to_path_buf());
    opts.extra = vec![
        "--loadmodule".into(),
        module_so().display().to_string(),
        "--appendonly".into(),
        "yes".into(),
        "--save".into(),
        "900 1 300 10".into(),
    ];
    LocalGroups::start(&opts).expect("start the groups")
}

/// A static-mode config file naming every master and replica.
fn write_config(dir: &Path, g: &LocalGroups, extra: &str) -> PathBuf {
    let mut text = format!("{extra}\n[backend]\nmode = \"static\"\n");
    for s in g.static_shards() {
        text.push_str(&format!(
            "[[backend.shards]]\nmaster = \"{}\"\nreplicas = {:?}\n",
            s.master.unwrap(),
            s.replicas
        ));
    }
    let path = dir.join("hive.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn hive(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(hive_bin());
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run hive")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_exit_code_follows_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = groups(dir.path());
    let file = write_config(dir.path(), &g, "");
    let cfg = file.to_str().unwrap();
    let o = hive(&["status", "--config", cfg], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.starts_with("Hive status: OK (static mode, 2 shards, 16384/16384"),
        "{out}"
    );
    for n in g.static_shards() {
        assert!(out.contains(&n.master.clone().unwrap()), "{out}");
    }
    assert!(
        out.contains("replica") && out.contains("LAST SAVE"),
        "{out}"
    );
    let o = hive(&["status", "--config", cfg, "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    assert_eq!(v["health"], "ok");
    assert_eq!(v["deployment"]["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(v["deployment"]["nodes"][1]["lag_source"], "module");
    let replica = g.static_shards()[1].replicas[0].clone();
    g.node_mut(&replica).unwrap().kill();
    let o = hive(&["status", "--config", cfg], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{replica}: unreachable")),
        "{}",
        text(&o)
    );
    for s in g.static_shards() {
        g.node_mut(&s.master.unwrap()).unwrap().kill();
    }
    let o = hive(&["status", "--config", cfg, "--json"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["health"], "down");
}

#[test]
fn check_passes_as_templated_and_names_what_fails() {
    let dir = tempfile::tempdir().unwrap();
    let g = groups(dir.path());
    let file = write_config(dir.path(), &g, "");
    let mut config = Config::default();
    config.proxy.listen = "127.0.0.1:0".into();
    config.proxy.requirepass = Some("check-pw".into());
    config.backend.mode = Mode::Static;
    config.backend.shards = g.static_shards();
    let proxy = ProxyHandle::start(config).unwrap();
    let p = proxy.addr.to_string();
    let cfg = file.to_str().unwrap();
    let args = ["check", "--config", cfg, "--proxy", &p, "--rounds", "20"];
    let o = hive(&args, &[("HIVE_PROXY_PASSWORD", "check-pw")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("SET/GET/DEL through the proxy"), "{out}");
    assert!(out.contains("p99"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
    let o = hive(&args, &[("HIVE_PROXY_PASSWORD", "wrong")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("WRONGPASS"), "{}", text(&o));
    let m = g.static_shards()[0].master.clone().unwrap();
    let mut node = connect(&hive_tests::node_url(&m));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .query(&mut node)
        .unwrap();
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let o = hive(&json_args, &[("HIVE_PROXY_PASSWORD", "check-pw")]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("check --json");
    let failed: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["detail"], format!("appendonly no on {m}"));
}

#[test]
fn monitor_draws_the_deployment_and_keeps_running_with_a_node_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = groups(dir.path());
    let file = write_config(dir.path(), &g, "");
    let name = format!("hive-monitor-{}", std::process::id());
    let cmd = format!(
        "{} monitor --config {}",
        hive_bin().display(),
        file.display()
    );
    let session = Session(name.clone());
    hive_tests::tmux::tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "160",
        "-y",
        "45",
        &cmd,
    ]);
    let screen = || session.screen();
    wait_for("the first frame", Duration::from_secs(15), || {
        screen().contains("HEALTH OK")
    });
    let s = screen();
    for shard in g.static_shards() {
        assert!(s.contains(&shard.master.clone().unwrap()), "{s}");
    }
    assert!(
        s.contains("Slot coverage") && s.contains("16384/16384"),
        "{s}"
    );
    assert!(
        s.contains("Hit rate (target 95%)") && s.contains("target 5 ms"),
        "{s}"
    );
    assert!(s.contains("Ops/s per master"), "{s}");
    let replica = g.static_shards()[0].replicas[0].clone();
    g.node_mut(&replica).unwrap().kill();
    wait_for("the node shown down", Duration::from_secs(15), || {
        let s = screen();
        s.contains("HEALTH DEGRADED") && s.contains(&format!("{replica} is DOWN"))
    });
    // hive-module's event from the other shard's replica, promoted by hand.
    let other = g.static_shards()[1].replicas[0].clone();
    let mut r = connect(&hive_tests::node_url(&other));
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    wait_for(
        "the module's role_change event",
        Duration::from_secs(15),
        || screen().contains(&format!("{other}: role_change -> master")),
    );
    hive_tests::tmux::tmux(&["resize-window", "-t", &name, "-x", "100", "-y", "30"]);
    wait_for("a redraw at the new size", Duration::from_secs(10), || {
        let s = screen();
        s.lines().all(|l| l.chars().count() <= 100) && s.contains("HEALTH DEGRADED")
    });
    session.keys("q");
    wait_for("monitor to quit on q", Duration::from_secs(10), || {
        !session.alive()
    });
    drop(session);
}

#[test]
fn status_and_check_show_the_sentinels_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = GroupOpts::new(1, 3, dir.path().to_path_buf());
    opts.extra = vec!["--loadmodule".into(), module_so().display().to_string()];
    let g = LocalGroups::start(&opts).unwrap();
    let sentinels = g.sentinel_addrs().join(",");
    let args = ["--sentinel", sentinels.as_str(), "--masters", "hive-a"];
    let o = hive(&[&["status"][..], &args, &["--json"]].concat(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let seen = v["deployment"]["sentinels"].as_array().unwrap();
    assert_eq!(seen.len(), 3);
    for s in seen {
        assert_eq!(s["masters"][0]["name"], "hive-a");
        assert_eq!(s["masters"][0]["quorum"], 2);
        assert_eq!(s["masters"][0]["ckquorum_ok"], true, "{s}");
    }
    let o = hive(&[&["status"][..], &args].concat(), &[]);
    let out = text(&o);
    assert!(
        out.contains("SENTINEL") && out.contains("CKQUORUM") && out.contains("hive-a"),
        "{out}"
    );
    let o = hive(&[&["check"][..], &args].concat(), &[]);
    let out = text(&o);
    assert!(
        out.lines()
            .any(|l| l.contains("sentinel quorum (CKQUORUM)") && l.contains("PASS")),
        "{out}"
    );
}

#[test]
fn proxy_check_config_names_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[proxy]\nadmin_listen = \"nowhere\"\n").unwrap();
    let o = hive(&["proxy", "--check-config", bad.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o);
    assert!(
        err.contains("bad.toml")
            && err.contains("proxy.admin_listen")
            && err.contains("not an ip:port"),
        "{err}"
    );
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[proxy]\nslowlog_max_len = 5\n").unwrap();
    let o = hive(&["proxy", "--check-config", good.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn proxy_reloads_its_config_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let g = groups(dir.path());
    let port = free_port_pair().unwrap();
    let head = |max: usize, extra: &str| {
        format!("[proxy]\nlisten = \"127.0.0.1:{port}\"\nmax_clients = {max}\n{extra}\n[log]\nformat = \"json\"\n")
    };
    let file = write_config(dir.path(), &g, &head(1, ""));
    let log = std::fs::File::create(dir.path().join("hive.log")).unwrap();
    let mut child = Command::new(hive_bin())
        .args(["proxy", "--config", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    let url = format!("redis://127.0.0.1:{port}/");
    let log_path = dir.path().join("hive.log");
    // Not by connecting: with max_clients = 1 a probe would hold the only place.
    wait_for("the proxy", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("hive proxy ready")
    });
    let mut first = connect(&url);
    // A client's log lines carry its connection's span.
    let _ = redis::cmd("AUTH")
        .arg("nobody")
        .arg("wrong")
        .query::<String>(&mut first);
    let refused = |url: &str| match redis::Client::open(url).unwrap().get_connection() {
        Ok(mut c) => redis::cmd("PING").query::<String>(&mut c).is_err(),
        Err(e) => e.to_string().contains("max number of clients") || e.is_connection_dropped(),
    };
    assert!(refused(&url), "max_clients = 1 lets a second client in");
    // Live: max_clients and the slow log. Not live: the listen address (reported).
    let moved = free_port_pair().unwrap();
    let text2 = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "max_clients = 1",
            "max_clients = 10\nslowlog_slower_than_us = 0",
        )
        .replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{moved}"));
    std::fs::write(&file, text2).unwrap();
    signal(child.id(), "HUP");
    wait_for("the reload", Duration::from_secs(10), || !refused(&url));
    let _: String = redis::cmd("PING").query(&mut first).unwrap();
    let n: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut first).unwrap();
    assert!(n > 0, "slowlog_slower_than_us = 0 did not apply");
    // A config that does not validate changes nothing.
    std::fs::write(&file, "[proxy]\nmax_clients = 0\n").unwrap();
    signal(child.id(), "HUP");
    wait_for("the refusal", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("config not reloaded")
    });
    let _: String = redis::cmd("PING").query(&mut first).unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let reloaded = lines
        .iter()
        .find(|l| l["fields"]["message"] == "SIGHUP: config reloaded")
        .expect("a reload line");
    assert_eq!(reloaded["fields"]["needs_restart"], "proxy.listen");
    let applied = reloaded["fields"]["applied"].as_str().unwrap();
    assert!(
        applied.contains("proxy.max_clients") && applied.contains("proxy.slowlog_slower_than_us"),
        "{applied}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .status();
    }
}
