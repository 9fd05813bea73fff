//! Resharding Sentinel groups and static masters, whose slot map lives on the masters
//! (hive-module): two proxies in front with the load split between them, a fourth group added
//! and given its share, a third proxy started mid-move, the group removed again, and every node
//! and proxy restarted; zero client errors, and every acknowledged write readable through
//! every proxy.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive_local::{GroupOpts, LocalGroups};
use hive_proxy::config::{Config, Mode};
use hive_proxy::server::ProxyHandle;
use hive_tests::backups::{check_populated, populate_parallel};
use hive_tests::ledger::LedgerLoad;
use hive_tests::module_cluster::wait_for;
use hive_tests::{connect, module_so};

use super::hive_ok;

mod blocking;
mod faults;
mod input;

const KEYS: usize = 30_000;

/// Groups (master + replica each) with hive-module and an AOF fsynced on every write, so that
/// a restart keeps everything; `sentinels` watch them (0: none).
pub(super) fn groups(dir: &Path, n: usize, sentinels: usize) -> LocalGroups {
    groups_with(dir, n, sentinels, None)
}

pub(super) fn groups_with(
    dir: &Path,
    n: usize,
    sentinels: usize,
    password: Option<&str>,
) -> LocalGroups {
    let mut opts = GroupOpts::new(n, sentinels, dir.to_path_buf());
    opts.password = password.map(str::to_string);
    opts.extra = vec![
        "--loadmodule".into(),
        module_so().display().to_string(),
        "--appendonly".into(),
        "yes".into(),
        "--appendfsync".into(),
        "always".into(),
    ];
    opts.failover_timeout_ms = 4000;
    LocalGroups::start(&opts).expect("start the groups")
}

pub(super) fn config(g: &LocalGroups, mode: Mode) -> Config {
    let mut c = Config::default();
    c.proxy.listen = "127.0.0.1:0".into();
    c.proxy.threads = 2;
    c.backend.failover_hold_ms = 20_000;
    c.backend.mode = mode.clone();
    c.backend.password = g.password.clone().map(Into::into);
    c.backend.sentinel_password = g.password.clone().map(Into::into);
    if mode == Mode::Sentinel {
        c.backend.sentinels = g.sentinel_addrs();
        c.backend.shards = g.sentinel_shards();
    } else {
        c.backend.shards = g.static_shards();
    }
    c
}

/// The same deployment as a `hive.toml` for the CLI.
pub(super) fn write_toml(dir: &Path, c: &Config) -> String {
    let mut text = format!("[backend]\nmode = \"{}\"\n", c.backend.mode.as_str());
    if !c.backend.sentinels.is_empty() {
        text.push_str(&format!("sentinels = {:?}\n", c.backend.sentinels));
    }
    if let Some(p) = &c.backend.password {
        let p = p.expose();
        text.push_str(&format!(
            "password = \"{p}\"\nsentinel_password = \"{p}\"\n"
        ));
    }
    for s in &c.backend.shards {
        text.push_str("[[backend.shards]]\n");
        if let Some(n) = &s.name {
            text.push_str(&format!("name = \"{n}\"\n"));
        }
        if let Some(m) = &s.master {
            text.push_str(&format!("master = \"{m}\"\nreplicas = {:?}\n", s.replicas));
        }
    }
    let path = dir.join("hive.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

pub(super) fn url(p: &ProxyHandle) -> String {
    format!("redis://{}/", p.addr)
}

/// Writes through one proxy and reads each write back at once through another, until stopped;
/// returns (checks, mismatches, first mismatch).
fn cross_check(
    a: String,
    b: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> std::thread::JoinHandle<(u64, u64, Option<String>)> {
    std::thread::spawn(move || {
        let (mut ca, mut cb) = (connect(&a), connect(&b));
        let (mut n, mut bad, mut first) = (0u64, 0u64, None);
        let deadline = Instant::now() + Duration::from_secs(300);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            n += 1;
            let k = format!("cross:{}", n % 5000);
            let w: redis::RedisResult<()> = redis::cmd("SET").arg(&k).arg(n).query(&mut ca);
            let r: redis::RedisResult<Option<u64>> = redis::cmd("GET").arg(&k).query(&mut cb);
            match (w, r) {
                (Ok(()), Ok(Some(v))) if v == n => {}
                other => {
                    bad += 1;
                    first.get_or_insert(format!("{k}: wrote {n}, read {other:?}"));
                }
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        (n, bad, first)
    })
}

fn moving(p: &ProxyHandle) -> bool {
    p.shared.plane.layout.load().moving_count() > 0
}

/// How many slots each shard has in the map `p` routes by.
pub(super) fn slot_counts(p: &ProxyHandle) -> Vec<usize> {
    p.shared
        .plane
        .layout
        .load()
        .ranges
        .iter()
        .map(|r| r.iter().map(|r| (r.end - r.start) as usize + 1).sum())
        .collect()
}

pub(super) fn epoch(p: &ProxyHandle) -> u64 {
    p.shared.plane.layout.load().epoch
}

fn grow_and_shrink(mode: Mode, password: Option<&str>) {
    let _heavy = hive_tests::heavy();
    let dir = tempfile::tempdir().unwrap();
    let sentinels = if mode == Mode::Sentinel { 3 } else { 0 };
    let mut g = groups_with(dir.path(), 3, sentinels, password);
    let spare_dir = tempfile::tempdir().unwrap();
    let spare = groups_with(spare_dir.path(), 1, 0, password);
    let new_master = spare.initial_masters()[0].clone();
    let new_replica = spare.static_shards()[0].replicas[0].clone();
    let cfg = config(&g, mode.clone());
    let toml = write_toml(dir.path(), &cfg);
    // Proxy 1 polls the nodes (its INFO then counts the keys the moves carried).
    let mut polled = cfg.clone();
    polled.proxy.admin_listen = Some("127.0.0.1:0".into());
    polled.proxy.node_poll_interval_ms = 200;
    let p1 = ProxyHandle::start(polled).expect("proxy 1");
    let p2 = ProxyHandle::start(cfg.clone()).expect("proxy 2");
    let (u1, u2) = (url(&p1), url(&p2));
    populate_parallel(&u1, KEYS, 4);

    let la = LedgerLoad::start_named(&u1, 20, Duration::from_secs(240), "a");
    let lb = LedgerLoad::start_named(&u2, 20, Duration::from_secs(240), "b");
    let stop = Arc::new(AtomicBool::new(false));
    let crossed = Arc::new(AtomicU64::new(0));
    let cross = cross_check(u1.clone(), u2.clone(), stop.clone(), crossed.clone());
    wait_for("the loads to run", Duration::from_secs(10), || {
        la.ops() > 200 && lb.ops() > 200 && crossed.load(Ordering::Relaxed) > 100
    });

    // A fourth group joins, then takes its share while both proxies serve.
    let mut add = vec![
        "add-shard",
        "--config",
        &toml,
        &new_master,
        "--replica",
        &new_replica,
    ];
    if mode == Mode::Sentinel {
        add.extend(["--name", "hive-new"]);
    }
    add.push("--json");
    let added = hive_ok(&add);
    let shard = added["shard"].as_str().unwrap().to_string();
    if mode == Mode::Sentinel {
        // Every sentinel watches the new group, and (with the node password it was given)
        // reaches its master.
        for sen in g.sentinel_addrs() {
            let mut c = connect(&hive_tests::suites::url(&sen, password));
            let flags: String = wait_for_value(|| {
                let v: redis::RedisResult<std::collections::HashMap<String, String>> =
                    redis::cmd("SENTINEL")
                        .arg("MASTER")
                        .arg(&shard)
                        .query(&mut c);
                v.ok()
                    .and_then(|m| m.get("flags").cloned())
                    .filter(|f| f == "master")
            });
            assert_eq!(flags, "master", "{sen} watches {shard}");
        }
    }
    let rebalance = {
        let toml = toml.clone();
        std::thread::spawn(move || hive_ok(&["rebalance", "--config", &toml, "--json"]))
    };
    // A third proxy started in the middle of the move routes by the deployment's map from its
    // first request.
    wait_for("the move to start", Duration::from_secs(60), || moving(&p1));
    let p3 = ProxyHandle::start(cfg.clone()).expect("proxy 3");
    assert!(
        epoch(&p3) >= epoch(&p1).min(2),
        "proxy 3 started with the deployment's map"
    );
    let probe = "{cross}:probe";
    let _: () = redis::cmd("SET")
        .arg(probe)
        .arg(7)
        .query(&mut connect(&u1))
        .unwrap();
    let first: Option<u64> = redis::cmd("GET")
        .arg(probe)
        .query(&mut connect(&url(&p3)))
        .unwrap();
    assert_eq!(first, Some(7), "proxy 3's first read");
    let grown = rebalance.join().expect("the rebalance thread");
    let moved = &grown["outcome"];
    assert!(moved["slots"].as_u64().unwrap() >= 4000, "{grown}");
    let grown_epoch = grown["epoch"].as_u64().unwrap();
    // INFO counts the keys MIGRATE restored into the masters (RESTORE calls): at least the
    // moved ones.
    let want = moved["keys"].as_u64().unwrap();
    let mut seen = 0;
    let counted = hive_tests::module_cluster::poll_until(Duration::from_secs(20), || {
        let text: String = redis::cmd("INFO").query(&mut connect(&u1)).unwrap();
        seen = hive_common::info::field(&text, "reshard_keys_moved")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        seen >= want
    });
    assert!(counted, "INFO's reshard_keys_moved {seen} < {want}");
    wait_for(
        "every proxy to take the final map",
        Duration::from_secs(10),
        || {
            [&p1, &p2, &p3]
                .iter()
                .all(|p| epoch(p) == grown_epoch && !moving(p))
        },
    );
    // A request routed by the old map that reaches the master which gave a slot away (a late
    // one from a proxy) is sent on to the slot's new master: the giver keeps guarding it.
    let layout = p1.shared.plane.layout.load_full();
    let new_i = layout.names.iter().position(|n| *n == shard).unwrap();
    let gone = hive_common::Slot::new(layout.ranges[new_i][0].start).unwrap();
    let tag = (0..)
        .map(|n| format!("{{m{n}}}"))
        .find(|t| hive_common::Slot::for_key(t.as_bytes()) == gone)
        .unwrap();
    let asks = g
        .initial_masters()
        .iter()
        .filter(|m| {
            let r: redis::RedisResult<Option<String>> = redis::cmd("GET")
                .arg(format!("{tag}late"))
                .query(&mut connect(&hive_tests::suites::url(m, password)));
            r.is_err_and(|e| e.to_string().contains("ASK"))
        })
        .count();
    assert_eq!(
        asks, 1,
        "the giver of slot {gone:?} sends a late request on"
    );
    let counts = slot_counts(&p1);
    assert!(
        counts.iter().all(|c| (4013..=4178).contains(c)),
        "{counts:?}"
    );

    // And leaves again.
    let shrunk = hive_ok(&["remove-shard", "--config", &toml, &shard, "--json"]);
    assert_eq!(shrunk["outcome"]["slots"], moved["slots"], "{shrunk}");
    let final_epoch = shrunk["epoch"].as_u64().unwrap();
    wait_for(
        "every proxy to drop the group",
        Duration::from_secs(10),
        || [&p1, &p2, &p3].iter().all(|p| epoch(p) == final_epoch),
    );
    stop.store(true, Ordering::Relaxed);
    let (a, b) = (la.stop(), lb.stop());
    let (checks, bad, first_bad) = cross.join().unwrap();
    for (name, out) in [("proxy 1", &a), ("proxy 2", &b)] {
        assert_eq!(
            out.errors, 0,
            "{name}: client errors: {:?}",
            out.first_errors
        );
        assert_eq!(
            out.stale, 0,
            "{name}: reads that missed their own last write"
        );
    }
    assert_eq!(
        bad, 0,
        "{bad} of {checks} writes not read back through the other proxy: {first_bad:?}"
    );
    for (out, via) in [(&a, &u2), (&b, &u1), (&a, &url(&p3))] {
        let lost = out.lost(via);
        assert!(
            lost.is_empty(),
            "{} writes lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
    assert_eq!(check_populated(&url(&p3), KEYS, 37), KEYS.div_ceil(37));
    assert_eq!(
        hive_tests::backups::dbsize(&hive_tests::suites::url(&new_master, password)),
        0,
        "the removed group is empty"
    );

    // Every node and proxy restarts: the map is the deployment's, not hive.toml's.
    drop((p1, p2, p3));
    let addrs: Vec<String> = g
        .static_shards()
        .iter()
        .flat_map(|s| std::iter::once(s.master.clone().unwrap()).chain(s.replicas.clone()))
        .collect();
    for a in &addrs {
        g.node_mut(a).unwrap().restart().expect("restart a node");
    }
    let p4 = ProxyHandle::start(cfg).expect("proxy 4");
    wait_for(
        "the restarted proxy to read the map",
        Duration::from_secs(20),
        || epoch(&p4) == final_epoch,
    );
    let u4 = url(&p4);
    wait_for(
        "the restarted nodes to serve",
        Duration::from_secs(30),
        || {
            redis::cmd("GET")
                .arg(probe)
                .query::<Option<u64>>(&mut connect(&u4))
                .is_ok_and(|v| v == Some(7))
        },
    );
    for out in [&a, &b] {
        let lost = out.lost(&u4);
        assert!(
            lost.is_empty(),
            "{} writes lost after the restart, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
    assert_eq!(check_populated(&u4, KEYS, 37), KEYS.div_ceil(37));
    eprintln!(
        "{mode:?}: {} slots and {} keys each way; {} + {} ops, {checks} cross-proxy reads, 0 errors",
        moved["slots"], moved["keys"], a.ops, b.ops
    );
}

/// The first `Some` that `f` gives within 15 s.
fn wait_for_value<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let mut got = None;
    wait_for("a value", Duration::from_secs(15), || {
        got = f();
        got.is_some()
    });
    got.expect("waited for above")
}

#[test]
fn reshard_static_groups_two_proxies_lose_nothing() {
    grow_and_shrink(Mode::Static, None);
}

/// With node and sentinel passwords: MIGRATE carries them, and the new group is monitored with
/// its `auth-pass`.
#[test]
fn reshard_sentinel_groups_two_proxies_lose_nothing() {
    grow_and_shrink(Mode::Sentinel, Some("s3cret-reshard"));
}
