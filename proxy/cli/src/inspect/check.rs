//! `hive check`: the health suite of `test-cluster.sh` and `redis-cli --cluster check` in one
//! command. Every node reachable and authenticated, all slots covered with none open, each
//! master with its replicas, sentinel quorum, persistence as the templates set it, hive-module
//! everywhere, and SET/GET/DEL through the proxy on every shard with latency percentiles.
//! A pass/fail table (or `--json`); exit 1 on any failure.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use comfy_table::{presets, Table};
use hive_common::Slot;
use hive_proxy::config::Mode;
use hive_upstream::facts::Snapshot;
use hive_upstream::Backplane;
use serde::Serialize;

use crate::target::{poll, ProxyArg, Target};

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: Target,
    /// The proxy to run the data checks through.
    #[command(flatten)]
    pub proxy: ProxyArg,
    /// Replicas each master should have.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// SET/GET/DEL rounds per shard for the latency figures.
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub result: &'static str,
    pub detail: String,
}

fn check(name: &str, failures: Vec<String>, ok: String) -> Check {
    Check {
        name: name.into(),
        result: if failures.is_empty() { "pass" } else { "fail" },
        detail: if failures.is_empty() {
            ok
        } else {
            failures.join("; ")
        },
    }
}

pub fn run(a: CheckArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checks = rt.block_on(async {
        let plane = a.target.connect().await?;
        let s = poll(&plane).await;
        anyhow::Ok(suite(&a, &plane, &s).await)
    })?;
    let failed = checks.iter().any(|c| c.result == "fail");
    if a.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        t.set_header(["CHECK", "RESULT", "DETAIL"]);
        for c in &checks {
            t.add_row([c.name.as_str(), &c.result.to_uppercase(), &c.detail]);
        }
        println!("{t}");
        let n = checks.iter().filter(|c| c.result == "fail").count();
        println!("\n{} checks, {n} failed", checks.len());
    }
    std::process::exit(i32::from(failed));
}

async fn suite(a: &CheckArgs, plane: &Backplane, s: &Snapshot) -> Vec<Check> {
    let mut out = Vec::new();
    let down: Vec<String> = s
        .nodes
        .iter()
        .filter(|n| !n.up)
        .map(|n| format!("{}: {}", n.addr, n.error.clone().unwrap_or_default()))
        .collect();
    out.push(check(
        "nodes reachable and authenticated",
        down,
        format!("{} nodes answered", s.nodes.len()),
    ));
    let mut slots = Vec::new();
    if s.slots_covered < hive_common::SLOT_COUNT as usize {
        slots.push(format!(
            "{} of {} slots served by a reachable master",
            s.slots_covered,
            hive_common::SLOT_COUNT
        ));
    }
    if plane.config.mode == Mode::Cluster {
        slots.extend(open_slots(plane, s).await);
    } else {
        slots.extend(handed_slots(s));
    }
    out.push(check(
        "slots covered, none open",
        slots,
        format!("{} slots, none migrating or importing", s.slots_covered),
    ));
    let few: Vec<String> = s
        .shards
        .iter()
        .filter_map(|sh| {
            let up = sh
                .replicas
                .iter()
                .filter(|r| s.node(r).is_some_and(|n| n.up && n.role == "replica"))
                .count();
            (up < a.replicas)
                .then(|| format!("{}: {up} replica(s) up, {} expected", sh.name, a.replicas))
        })
        .collect();
    out.push(check(
        "replicas per master",
        few,
        format!("every master has at least {}", a.replicas),
    ));
    if s.sentinels.is_empty() {
        out.push(Check {
            name: "sentinel quorum".into(),
            result: "skip",
            detail: "no sentinels configured".into(),
        });
    } else {
        let bad: Vec<String> = s
            .sentinels
            .iter()
            .flat_map(|sen| match &sen.error {
                Some(e) => vec![format!("{}: {e}", sen.addr)],
                None => sen
                    .masters
                    .iter()
                    .filter(|m| !m.ckquorum_ok)
                    .map(|m| format!("{} {}: {}", sen.addr, m.name, m.ckquorum))
                    .collect(),
            })
            .collect();
        out.push(check(
            "sentinel quorum (CKQUORUM)",
            bad,
            format!(
                "{} sentinels, quorum reachable for every master",
                s.sentinels.len()
            ),
        ));
    }
    out.push(check(
        "persistence (AOF on, RDB save rules)",
        persistence(plane, s).await,
        "every node has appendonly yes and save rules".into(),
    ));
    let missing: Vec<String> = s
        .nodes
        .iter()
        .filter(|n| n.up && n.module_version.is_none())
        .map(|n| n.addr.clone())
        .collect();
    out.push(check(
        "hive-module loaded",
        missing.iter().map(|m| format!("{m}: not loaded")).collect(),
        "on every node".into(),
    ));
    match &a.proxy.proxy {
        None => out.push(Check {
            name: "write/read/delete through the proxy".into(),
            result: "skip",
            detail: "give --proxy ADDR to run it".into(),
        }),
        Some(p) => out.extend(data_checks(a, p, s).await),
    }
    out
}

/// Slots a master has marked migrating or importing (`[slot->-node]` in CLUSTER NODES).
async fn open_slots(plane: &Backplane, s: &Snapshot) -> Vec<String> {
    let auth = plane.config.node_auth();
    let mut out = Vec::new();
    for sh in &s.shards {
        let Ok(mut c) = plane.connector.control(&sh.master, auth.as_ref()).await else {
            continue;
        };
        let Ok(v) = c.call(&["CLUSTER", "NODES"]).await else {
            continue;
        };
        let text = v.as_str().unwrap_or_default();
        if let Some(me) = text.lines().find(|l| l.contains("myself")) {
            for open in me.split(' ').filter(|f| f.starts_with('[')) {
                out.push(format!(
                    "{}: open slot {open} (an interrupted move; fix: hive reshard --resume)",
                    sh.master
                ));
            }
        }
    }
    out
}

/// Sentinel/static modes: slots a master is handing over, or the deployment's map moves
/// (hive-module's state, from the poll).
fn handed_slots(s: &Snapshot) -> Vec<String> {
    s.nodes
        .iter()
        .filter(|n| n.role == "master" && (n.slots_migrating > 0 || n.slots_importing > 0))
        .map(|n| {
            format!(
                "{}: {} slot(s) handed over, {} coming in (an interrupted move; fix: hive reshard --resume)",
                n.addr, n.slots_migrating, n.slots_importing
            )
        })
        .collect()
}

/// Nodes whose persistence differs from the templates, grouped by what is wrong.
async fn persistence(plane: &Backplane, s: &Snapshot) -> Vec<String> {
    let auth = plane.config.node_auth();
    let (mut no_aof, mut no_rdb, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for n in s.nodes.iter().filter(|n| n.up) {
        if !n.aof_enabled {
            no_aof.push(n.addr.clone());
        }
        let save = match plane.connector.control(&n.addr, auth.as_ref()).await {
            Ok(mut c) => c.call(&["CONFIG", "GET", "save"]).await.ok(),
            Err(_) => None,
        };
        let rules = save
            .as_ref()
            .and_then(|v| v.as_array())
            .and_then(|a| a.get(1))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        match rules.as_deref() {
            Some("") => no_rdb.push(n.addr.clone()),
            None => unknown.push(n.addr.clone()),
            Some(_) => {}
        }
    }
    [
        ("appendonly no", no_aof),
        ("no RDB save rules (save \"\")", no_rdb),
        ("CONFIG GET save refused", unknown),
    ]
    .into_iter()
    .filter(|(_, nodes)| !nodes.is_empty())
    .map(|(what, nodes)| format!("{what} on {}", nodes.join(" ")))
    .collect()
}

/// A key whose slot shard `i` serves.
fn key_for(s: &Snapshot, i: usize) -> Option<String> {
    let ranges: Vec<(u16, u16)> = s.shards[i]
        .slots
        .iter()
        .filter_map(|r| match r.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => r.parse().ok().map(|n| (n, n)),
        })
        .collect();
    (0..200_000).map(|n| format!("hive:check:{n}")).find(|k| {
        let slot = Slot::for_key(k.as_bytes()).get();
        ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    })
}

async fn data_checks(a: &CheckArgs, proxy: &str, s: &Snapshot) -> Vec<Check> {
    let mut out = Vec::new();
    for i in 0..s.shards.len() {
        let name = format!(
            "SET/GET/DEL through the proxy, shard {}",
            crate::inspect::view::shard_label(s, Some(i))
        );
        let Some(key) = key_for(s, i) else {
            out.push(check(
                &name,
                vec!["no key maps to its slots".into()],
                String::new(),
            ));
            continue;
        };
        out.push(
            match rounds(proxy, a.proxy.proxy_user.as_deref(), &key, a.rounds).await {
                Ok(mut lat) => {
                    lat.sort_unstable();
                    let pct =
                        |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
                    check(
                        &name,
                        Vec::new(),
                        format!(
                            "{} rounds on {key}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                            lat.len(),
                            pct(0.5),
                            pct(0.99),
                            pct(1.0)
                        ),
                    )
                }
                Err(e) => check(&name, vec![e], String::new()),
            },
        );
    }
    out
}

/// SET, GET (checked) and DEL of `key`, `n` times; the round trip of each.
async fn rounds(
    proxy: &str,
    user: Option<&str>,
    key: &str,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let mut c = crate::target::connect_proxy(proxy, user).await?;
    let mut lat = Vec::with_capacity(n);
    for round in 0..n.max(1) {
        let value = format!("v{round}");
        let t = Instant::now();
        c.call(&["SET", key, &value])
            .await
            .map_err(|e| e.to_string())?;
        let got = c.call(&["GET", key]).await.map_err(|e| e.to_string())?;
        if got.as_str() != Some(value.as_str()) {
            return Err(format!("GET {key} returned {got:?}, expected {value}"));
        }
        c.call(&["DEL", key]).await.map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}
