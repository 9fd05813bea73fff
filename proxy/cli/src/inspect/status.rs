//! `hive status`: one shot of the deployment (every node's role, slots, link, lag, memory,
//! keys, ops/s, hit rate, clients, persistence; the sentinels' view; the proxy's clients and
//! throughput with `--proxy`). Exit status 0 healthy, 1 degraded, 2 down; `--json` for scripts.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use comfy_table::{presets, Table};
use hive_upstream::facts::health::{self, Thresholds};
use hive_upstream::facts::Snapshot;
use serde_json::json;

use crate::inspect::view::{self, ProxyFacts};
use crate::target::{poll, ProxyArg, Target};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// A running proxy to include (its clients and throughput).
    #[command(flatten)]
    pub proxy: ProxyArg,
    /// Replicas each master should have.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Replication lag above which a replica is a finding, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub max_lag_ms: u64,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

impl StatusArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            expected_replicas: self.replicas,
            max_lag_ms: self.max_lag_ms,
            ..Thresholds::default()
        }
    }
}

pub fn run(a: StatusArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (snapshot, proxy) = rt.block_on(async {
        let plane = a.target.connect().await?;
        let snapshot = poll(&plane).await;
        let proxy = match &a.proxy.proxy {
            Some(p) => Some(
                view::proxy_facts(p, a.proxy.proxy_user.as_deref(), Duration::from_millis(500))
                    .await,
            ),
            None => None,
        };
        anyhow::Ok((snapshot, proxy))
    })?;
    let (h, findings) = health::evaluate(&snapshot, &a.thresholds());
    if a.json {
        let out = json!({
            "health": h,
            "findings": findings,
            "deployment": snapshot,
            "proxy": proxy,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&snapshot, proxy.as_ref(), h, &findings));
    }
    std::process::exit(h.exit_code());
}

pub fn render(
    s: &Snapshot,
    proxy: Option<&ProxyFacts>,
    h: health::Health,
    findings: &[health::Finding],
) -> String {
    let mut out = format!(
        "Hive status: {} ({} mode, {} shards, {}/{} slots covered, {} nodes, polled in {} ms)\n\n",
        h.as_str().to_uppercase(),
        s.mode,
        s.shards.len(),
        s.slots_covered,
        hive_common::SLOT_COUNT,
        s.nodes.len(),
        s.poll_ms
    );
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(view::HEADERS);
    for r in view::rows(s) {
        t.add_row(r.cells());
    }
    out.push_str(&t.to_string());
    out.push('\n');
    let (migrating, importing, moved) = s.resharding();
    if migrating + importing > 0 {
        out.push_str(&format!(
            "\nResharding: {migrating} slots migrating, {importing} importing; {moved} keys moved into masters since they started\n"
        ));
    }
    if !s.sentinels.is_empty() {
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        t.set_header([
            "SENTINEL",
            "MASTER",
            "ADDRESS",
            "FLAGS",
            "QUORUM",
            "SENTINELS",
            "REPLICAS",
            "CKQUORUM",
        ]);
        for sen in &s.sentinels {
            if !sen.up {
                t.add_row([
                    sen.addr.as_str(),
                    "DOWN",
                    sen.error.as_deref().unwrap_or(""),
                ]);
                continue;
            }
            for m in &sen.masters {
                t.add_row([
                    sen.addr.clone(),
                    m.name.clone(),
                    m.addr.clone(),
                    m.flags.clone(),
                    m.quorum.to_string(),
                    (m.other_sentinels + 1).to_string(),
                    m.replicas.to_string(),
                    if m.ckquorum_ok {
                        "OK".into()
                    } else {
                        "FAIL".to_string()
                    },
                ]);
            }
        }
        out.push('\n');
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if let Some(p) = proxy {
        out.push('\n');
        match &p.error {
            None => out.push_str(&format!(
                "Proxy {}: {} clients, {:.0} ops/s, {} commands, {} error replies\n",
                p.addr,
                p.connected_clients,
                p.ops_per_sec,
                p.total_commands_processed,
                p.error_replies
            )),
            Some(e) => out.push_str(&format!("Proxy {}: DOWN ({e})\n", p.addr)),
        }
    }
    if !findings.is_empty() {
        out.push_str("\nFindings:\n");
        for f in findings {
            let sev = serde_json::to_value(f.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!("  {sev:<8} {}: {}\n", f.subject, f.what));
        }
    }
    out
}
