//! The control plane under load: how long the proxy takes to install a new map after a
//! promoted node publishes its `role_change` on `__hive__:events` (the event's `time_ms` to the
//! map's `installed_unix_ms`, both wall-clock ms on this machine), with the proxy's one worker
//! idle and with it saturated by pipelining clients. The control plane runs on a thread of
//! its own, so the two medians must agree within 10 ms.
//!
//! `cargo bench -p hive-benches --bench control_plane -- [ROUNDS] [--json]` (default 5 rounds
//! each; a 3+3 cluster with hive-module on loopback, `CLUSTER FAILOVER TAKEOVER` back and forth).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hive_common::Slot;
use hive_tests::module_cluster::{deployment, wait_for, Deployment};
use hive_tests::{connect, node_url};

/// The master the proxy routes slot 0 to.
fn master0(d: &Deployment) -> String {
    let t = d.proxy.shared.plane.topology.load();
    let i = t.map.shard_of(Slot::new(0).unwrap()).unwrap();
    t.map.shards()[i].master.clone()
}

/// A node that is `master`'s replica with its link up, as the node itself says.
fn replica_in_sync(d: &Deployment, master: &str) -> Option<String> {
    d.cluster.addrs().into_iter().find(|addr| {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut connect(&node_url(addr)))
            .unwrap_or_default();
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        field("role") == "slave"
            && format!("{}:{}", field("master_host"), field("master_port")) == master
            && field("master_link_status") == "up"
    })
}

/// One failover of slot 0's shard: from the promoted node's own event to the proxy's new map.
fn failover(d: &Deployment) -> Duration {
    let master = master0(d);
    // In sync for longer than hive-module's tick (100 ms), so the node's module has seen it
    // as a replica: a demotion and a promotion within one tick make no event.
    let mut seen: Option<(String, Instant)> = None;
    wait_for("a replica in sync", Duration::from_secs(30), || {
        match (replica_in_sync(d, &master), &seen) {
            (Some(r), Some((s, since))) if *s == r => since.elapsed() >= Duration::from_millis(300),
            (Some(r), _) => {
                seen = Some((r, Instant::now()));
                false
            }
            (None, _) => {
                seen = None;
                false
            }
        }
    });
    let replica = seen.unwrap().0;
    let mut sub = connect(&node_url(&replica));
    let mut ps = sub.as_pubsub();
    ps.subscribe("__hive__:events").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Events travel the cluster bus too: only one made after this failover counts.
    let asked_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let _: String = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("TAKEOVER")
        .query(&mut connect(&node_url(&replica)))
        .unwrap();
    let published = loop {
        let m = ps.get_message().expect("the promoted node's event");
        let payload: String = m.get_payload().unwrap();
        let ev: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
        match ev["time_ms"].as_u64() {
            Some(t) if ev["event"] == "role_change" && ev["role"] == "master" && t >= asked_ms => {
                break t
            }
            _ => {}
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while master0(d) != replica {
        assert!(Instant::now() < deadline, "the proxy never followed");
        thread::sleep(Duration::from_millis(1));
    }
    let installed = d.proxy.shared.plane.topology.load().installed_unix_ms;
    Duration::from_millis(installed.saturating_sub(published))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let rounds: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(5)
        .clamp(1, 50);
    let d = deployment(|c| {
        c.proxy.threads = 1;
        // Only the push moves the map: no periodic refresh races it.
        c.backend.refresh_interval_ms = 60_000;
    });
    let mut idle: Vec<Duration> = (0..rounds).map(|_| failover(&d)).collect();
    // Saturate the one worker: pipelines of 32 GETs from 8 connections, for as long as the
    // loaded rounds take (at most 10 minutes).
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let url = format!("redis://{}/", d.proxy.addr);
    // Keys of the other shards only: a MOVED from the failing one would refresh the map
    // without the push, and this measures the push.
    let failing = {
        let t = d.proxy.shared.plane.topology.load();
        t.map.shard_of(Slot::new(0).unwrap()).unwrap()
    };
    let tags: Vec<String> = (0..3)
        .filter(|&i| i != failing)
        .map(|i| d.tag_of(i))
        .collect();
    let load: Vec<_> = (0..8)
        .map(|n| {
            let (stop, served, url) = (stop.clone(), served.clone(), url.clone());
            let tag = tags[n % tags.len()].clone();
            thread::spawn(move || {
                let mut c = connect(&url);
                let until = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    let mut p = redis::pipe();
                    for i in 0..32 {
                        p.cmd("GET").arg(format!("{tag}k{n}:{i}"));
                    }
                    // A failover answers some with an error; the load goes on.
                    let _: Result<Vec<Option<String>>, _> = p.query(&mut c);
                    served.fetch_add(32, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let started = (Instant::now(), served.load(Ordering::Relaxed));
    let mut loaded: Vec<Duration> = (0..rounds).map(|_| failover(&d)).collect();
    let rate =
        (served.load(Ordering::Relaxed) - started.1) as f64 / started.0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    load.into_iter().for_each(|t| t.join().unwrap());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mi, ml) = (median(&mut idle), median(&mut loaded));
    let (xi, xl) = (idle[idle.len() - 1], loaded[loaded.len() - 1]);
    let diff = ms(ml) - ms(mi);
    if json {
        println!(
            "{{\"rounds\":{rounds},\"idle_median_ms\":{:.2},\"idle_max_ms\":{:.2},\"loaded_median_ms\":{:.2},\"loaded_max_ms\":{:.2},\"difference_ms\":{diff:.2},\"load_requests_per_s\":{rate:.0}}}",
            ms(mi), ms(xi), ms(ml), ms(xl)
        );
    } else {
        println!("event -> new map, {rounds} failovers each (proxy with 1 worker)");
        println!("{:<28}{:>10}{:>10}", "", "median", "max");
        println!("{:<28}{:>8.2}ms{:>8.2}ms", "worker idle", ms(mi), ms(xi));
        println!(
            "{:<28}{:>8.2}ms{:>8.2}ms",
            format!("worker saturated ({:.0}k/s)", rate / 1000.0),
            ms(ml),
            ms(xl)
        );
        println!("difference of medians: {diff:+.2} ms (target: within 10 ms)");
    }
}
