//! Hot and big keys as an operator sees them: `INFO hotkeys`, `/metrics` (promtool accepts
//! it), `hive top` once, as JSON and live under tmux, against a cluster with a skewed load;
//! a key with CR LF in it breaks no line; the wrong password gets nothing; sampling off shows
//! nothing.

use std::time::Duration;

use hive_local::{ClusterOpts, LocalCluster};
use hive_proxy::config::Config;
use hive_proxy::server::ProxyHandle;
use hive_tests::backups::hive;
use hive_tests::module_cluster::{poll_until, wait_for};
use hive_tests::tmux::Session;
use hive_tests::{connect, hive_bin, http};
use redis::Commands;

const PW: &str = "top-secret-pw";

fn proxy(cluster: &LocalCluster, every: u32) -> ProxyHandle {
    let mut config = Config::default();
    config.proxy.listen = "127.0.0.1:0".into();
    config.proxy.requirepass = Some(PW.into());
    config.proxy.admin_listen = Some("127.0.0.1:0".into());
    config.proxy.hotkeys_sample_every = every;
    config.backend.seeds = cluster.master_addrs();
    ProxyHandle::start(config).expect("proxy")
}

/// 2,000 GETs of `hot:key`, 5 each of 400 cold keys, 40 GETs of a 100 KB value, and 200 of
/// a key with CR LF in its name, each in a run of its own: a run of N requests holds N / every
/// samples whatever the countdown's start (interleaved, a period could miss a key).
fn skewed_load(c: &mut redis::Connection) {
    let _: () = c.set("hot:key", "v").unwrap();
    let _: () = c.set("big:blob", vec![b'x'; 100_000]).unwrap();
    let _: () = c.set("evil\r\nkey,=x", "v").unwrap();
    let mut p = redis::pipe();
    for _ in 0..2000 {
        p.get("hot:key").ignore();
    }
    for i in 0..2000 {
        p.get(format!("cold:{}", i / 5)).ignore();
    }
    for _ in 0..40 {
        p.get("big:blob").ignore();
    }
    for _ in 0..200 {
        p.get("evil\r\nkey,=x").ignore();
    }
    let _: () = p.query(c).unwrap();
}

fn info_hotkeys(c: &mut redis::Connection) -> String {
    redis::cmd("INFO").arg("hotkeys").query(c).unwrap()
}

#[test]
fn hotkeys_show_in_info_metrics_and_hive_top() {
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        LocalCluster::start(&ClusterOpts::new(3, 0, dir.path().to_path_buf())).expect("cluster");
    let proxy = proxy(&cluster, 10);
    let mut c = connect(&format!("redis://:{PW}@{}/", proxy.addr));
    skewed_load(&mut c);
    let info = info_hotkeys(&mut c);
    let section = &info[info.find("# Hotkeys").expect("a # Hotkeys section")..];
    let lines: Vec<&str> = section.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(lines[1], "hotkeys_sample_every:10", "{section}");
    // Every line is whole: the CR LF key is escaped, not a line break.
    for l in &lines[2..] {
        assert!(
            l.starts_with("hotkey_") || l.starts_with("bigkey_"),
            "{l:?} in {section}"
        );
    }
    assert!(
        section.contains("evil\\x0d\\x0akey\\x2c\\x3dx"),
        "{section}"
    );
    // The hottest key first, on the shard its slot is on.
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("hot:key")
        .query(&mut connect(&hive_tests::node_url(
            &cluster.master_addrs()[0],
        )))
        .unwrap();
    let topo = proxy.shared.plane.topology.load();
    let shard = topo
        .map
        .shard_of(hive_common::Slot::new(slot).unwrap())
        .unwrap();
    let name = topo.shard_name(shard).to_string();
    drop(topo);
    let hot0 = lines[2];
    assert!(
        hot0.starts_with(&format!("hotkey_0:key=hot:key,shard={name},ops_per_sec=")),
        "{section}"
    );
    let rate: f64 = hot0.rsplit('=').next().unwrap().parse().unwrap();
    assert!(rate > 0.0, "{hot0}");
    let big0 = lines.iter().find(|l| l.starts_with("bigkey_0:")).unwrap();
    assert!(big0.starts_with("bigkey_0:key=big:blob,"), "{section}");
    let bytes: u64 = big0.rsplit('=').next().unwrap().parse().unwrap();
    assert!(bytes >= 100_000, "{big0}");
    // Other sections stay as they were: no hotkeys unless asked for.
    let plain: String = redis::cmd("INFO").arg("server").query(&mut c).unwrap();
    assert!(!plain.contains("# Hotkeys"));

    // /metrics, accepted by promtool.
    let (_, scrape) = http::get(proxy.admin_addr.unwrap(), "/metrics");
    assert!(
        scrape.contains(&format!(
            "hive_hotkey_ops_per_second{{key=\"hot:key\",shard=\"{name}\"}}"
        )),
        "{scrape}"
    );
    assert!(scrape.contains("hive_bigkey_reply_bytes{key=\"big:blob\""));
    assert!(!scrape.contains(PW));
    super::promtool_check_metrics(&scrape);

    // hive top, once and as JSON.
    let addr = proxy.addr.to_string();
    let env = [("HIVE_PROXY_PASSWORD", PW)];
    let (ok, out, err) = hive(&["top", "--proxy", &addr, "--once"], &env);
    assert!(ok, "{err}");
    let first = out
        .lines()
        .find(|l| l.contains("hot:key"))
        .unwrap_or_default();
    assert!(first.contains(&name), "{out}");
    assert!(out.contains("big:blob"), "{out}");
    let (ok, out, err) = hive(&["top", "--proxy", &addr, "--json"], &env);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hot"][0]["key"], "hot:key", "{v}");
    assert_eq!(v["sample_every"], 10);
    assert!(
        v["big"][0]["reply_bytes"].as_u64().unwrap() >= 100_000,
        "{v}"
    );
    // The wrong password gets no keys, and the reply does not echo it.
    let bad = [("HIVE_PROXY_PASSWORD", "wrong-pw")];
    let (ok, out, err) = hive(&["top", "--proxy", &addr, "--json"], &bad);
    assert!(!ok && !out.contains("hot:key"), "{out}");
    assert!(
        err.contains("WRONGPASS") && !err.contains("wrong-pw"),
        "{err}"
    );
    let (ok, _, err) = hive(&["top", "--proxy", &addr, "--once"], &[]);
    assert!(!ok && err.contains("NOAUTH"), "{err}");

    // Live, under tmux: it redraws as the load moves to another key, and q quits.
    let name = format!("hive-top-{}", std::process::id());
    let cmd = format!(
        "env HIVE_PROXY_PASSWORD={PW} {} top --proxy {addr} --interval-ms 200",
        hive_bin().display()
    );
    let tui = Session::start(&name, 120, 40, &cmd);
    let limit = Duration::from_secs(15);
    wait_for("the first frame", limit, || {
        tui.screen().contains("hot:key")
    });
    let mut p = redis::pipe();
    for _ in 0..20_000 {
        p.get("hotter:key").ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    let mut last = String::new();
    let moved = poll_until(limit, || {
        last = tui.screen();
        let first = last
            .lines()
            .find(|l| l.contains(":key"))
            .unwrap_or_default();
        first.contains("hotter:key")
    });
    assert!(moved, "the new hot key is not on top:\n{last}");
    tui.keys("q");
    wait_for("top to quit on q", limit, || !tui.alive());
}

#[test]
fn hotkeys_sampling_off_shows_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        LocalCluster::start(&ClusterOpts::new(3, 0, dir.path().to_path_buf())).expect("cluster");
    let proxy = proxy(&cluster, 0);
    let mut c = connect(&format!("redis://:{PW}@{}/", proxy.addr));
    skewed_load(&mut c);
    let info = info_hotkeys(&mut c);
    assert!(info.contains("hotkeys_sample_every:0\r\n"), "{info}");
    assert!(
        !info.contains("hotkey_0") && !info.contains("bigkey_0"),
        "{info}"
    );
    let (ok, out, err) = hive(
        &["top", "--proxy", &proxy.addr.to_string(), "--once"],
        &[("HIVE_PROXY_PASSWORD", PW)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("sampling is off"), "{out}");
}
