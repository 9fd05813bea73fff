//! Growing and shrinking a live Redis Cluster with `hive add-shard`, `rebalance`,
//! `remove-shard` and `reshard`: under a load that records every acknowledged write, after a
//! kill -9 half-way, and with bad input.

mod auth;
mod groups;
mod grow;
mod input;
mod resume;
mod takeover;

use std::time::Duration;

use hive_local::{free_port_pair, RedisProcess};
use hive_tests::backups::hive;
use hive_tests::module_cluster::wait_for;
use hive_tests::{connect, module_so, node_url};

/// Empty cluster-enabled nodes with hive-module, in no cluster yet.
fn spare_nodes(dir: &std::path::Path, n: usize) -> Vec<RedisProcess> {
    (0..n)
        .map(|_| {
            let port = free_port_pair().expect("a free port");
            let conf = format!("nodes-{port}.conf");
            let so = module_so().display().to_string();
            RedisProcess::start(
                dir,
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "2000",
                    "--loadmodule",
                    &so,
                ],
            )
            .expect("start a spare node")
        })
        .collect()
}

/// `hive <args>` that must succeed; its stdout as JSON.
fn hive_ok(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = hive(args, &[]);
    assert!(ok, "hive {args:?} failed:\nstdout: {out}\nstderr: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("hive {args:?}: {e}: {out}"))
}

/// Every master's open-slot marks (`[slot->-id]`, `[slot-<-id]`), from each one's own line.
fn open_marks(masters: &[String]) -> Vec<String> {
    masters
        .iter()
        .flat_map(|m| {
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut connect(&node_url(m)))
                .unwrap_or_default();
            let me = text
                .lines()
                .find(|l| l.contains("myself"))
                .unwrap_or("")
                .to_string();
            me.split(' ')
                .filter(|f| f.starts_with('['))
                .map(|f| format!("{m} {f}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The masters the cluster has now (address → slot count), as `node` sees it.
fn masters_of(node: &str) -> Vec<(String, usize)> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connect(&node_url(node)))
        .unwrap();
    text.lines()
        .filter(|l| l.contains("master") && !l.contains("fail"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let addr = f[1].split('@').next().unwrap().to_string();
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                    None => 1,
                })
                .sum();
            (addr, slots)
        })
        .collect()
}

/// Keys on every master of the cluster `node` belongs to.
fn total_keys(node: &str) -> u64 {
    masters_of(node)
        .iter()
        .map(|(m, _)| hive_tests::backups::dbsize(&node_url(m)))
        .sum()
}

/// Waits until every master agrees on the owners (after a move, gossip takes a moment).
fn settled(node: &str, masters: usize) {
    wait_for("the cluster to settle", Duration::from_secs(20), || {
        let m = masters_of(node);
        m.len() == masters && m.iter().map(|(_, s)| s).sum::<usize>() == 16384
    });
}
