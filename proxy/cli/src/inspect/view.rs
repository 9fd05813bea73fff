//! What `hive status` and `hive monitor` show of a snapshot, worded once: one row per node,
//! the proxy's figures, and the small formatters both use.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hive_upstream::facts::{NodeFacts, Snapshot};
use serde::Serialize;

/// One node, as text cells.
pub struct NodeRow {
    pub shard: String,
    pub addr: String,
    pub role: String,
    pub slots: String,
    pub link: String,
    pub lag: String,
    pub memory: String,
    pub keys: String,
    pub ops: String,
    pub hit: String,
    pub clients: String,
    pub saved: String,
    pub aof: String,
    pub module: String,
}

pub const HEADERS: [&str; 14] = [
    "SHARD",
    "NODE",
    "ROLE",
    "SLOTS",
    "LINK",
    "LAG",
    "MEMORY",
    "KEYS",
    "OPS/S",
    "HIT%",
    "CLIENTS",
    "LAST SAVE",
    "AOF",
    "MODULE",
];

impl NodeRow {
    pub fn cells(&self) -> [&str; 14] {
        [
            &self.shard,
            &self.addr,
            &self.role,
            &self.slots,
            &self.link,
            &self.lag,
            &self.memory,
            &self.keys,
            &self.ops,
            &self.hit,
            &self.clients,
            &self.saved,
            &self.aof,
            &self.module,
        ]
    }
}

/// A shard's label: its Sentinel name, or its number where its name is just its master's
/// address (cluster and static modes), which the NODE column already shows.
pub fn shard_label(s: &Snapshot, i: Option<usize>) -> String {
    match i.and_then(|i| s.shards.get(i).map(|sh| (i, sh))) {
        Some((i, sh)) if sh.name == sh.master || sh.name.is_empty() => i.to_string(),
        Some((_, sh)) => sh.name.clone(),
        None => "-".into(),
    }
}

pub fn rows(s: &Snapshot) -> Vec<NodeRow> {
    let now = unix_s();
    s.nodes
        .iter()
        .map(|n| {
            let slots = match (n.expected_role.as_str(), n.shard) {
                ("master", Some(i)) => s.shards[i].slots.join(","),
                _ => String::new(),
            };
            if !n.up {
                return NodeRow {
                    shard: shard_label(s, n.shard),
                    addr: n.addr.clone(),
                    role: "DOWN".into(),
                    slots,
                    link: n.error.clone().unwrap_or_default(),
                    lag: String::new(),
                    memory: String::new(),
                    keys: String::new(),
                    ops: String::new(),
                    hit: String::new(),
                    clients: String::new(),
                    saved: String::new(),
                    aof: String::new(),
                    module: String::new(),
                };
            }
            NodeRow {
                shard: shard_label(s, n.shard),
                addr: n.addr.clone(),
                role: n.role.clone(),
                slots,
                link: match n.master_link_up {
                    Some(true) => "up".into(),
                    Some(false) => "DOWN".into(),
                    None => "-".into(),
                },
                lag: lag(n),
                memory: memory(n),
                keys: n.keys.to_string(),
                ops: n.ops_per_sec.to_string(),
                hit: n
                    .hit_rate()
                    .map_or("-".into(), |r| format!("{:.1}", r * 100.0)),
                clients: n.connected_clients.to_string(),
                saved: match n.rdb_last_save_time {
                    0 => "never".into(),
                    t => format!(
                        "{} ago{}",
                        age(now.saturating_sub(t)),
                        if n.rdb_last_bgsave_ok {
                            ""
                        } else {
                            " (FAILED)"
                        }
                    ),
                },
                aof: match (n.aof_enabled, n.aof_last_write_ok) {
                    (false, _) => "off".into(),
                    (true, true) => "on".into(),
                    (true, false) => "WRITE ERR".into(),
                },
                module: n.module_version.clone().unwrap_or_else(|| "-".into()),
            }
        })
        .collect()
}

pub fn lag(n: &NodeFacts) -> String {
    match (n.lag_ms, n.lag_source.as_deref()) {
        (Some(ms), Some("info")) => format!("{}s", ms / 1000),
        (Some(ms), _) => format!("{ms}ms"),
        _ => "-".into(),
    }
}

pub fn memory(n: &NodeFacts) -> String {
    match n.maxmemory {
        0 => format!("{} / -", bytes(n.used_memory)),
        max => format!("{} / {}", bytes(n.used_memory), bytes(max)),
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    match u {
        0 => format!("{n}B"),
        _ => format!("{v:.1}{}", UNITS[u]),
    }
}

pub fn age(s: u64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the proxy's INFO says, sampled twice for a rate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxyFacts {
    pub addr: String,
    pub up: bool,
    pub error: Option<String>,
    pub connected_clients: u64,
    pub total_commands_processed: u64,
    pub ops_per_sec: f64,
    pub error_replies: u64,
    /// Round trip of a PING through the proxy, microseconds.
    pub ping_us: u64,
}

/// Reads the proxy's `# Proxy` section twice, `gap` apart. The password comes from
/// `HIVE_PROXY_PASSWORD` (never a flag, so it stays out of `ps`).
pub async fn proxy_facts(addr: &str, user: Option<&str>, gap: Duration) -> ProxyFacts {
    let mut p = ProxyFacts {
        addr: addr.to_string(),
        ..ProxyFacts::default()
    };
    match sample_proxy(addr, user, gap).await {
        Ok((a, b, secs, ping)) => {
            p.up = true;
            p.ping_us = ping;
            p.connected_clients = b.0;
            p.total_commands_processed = b.1;
            p.error_replies = b.2;
            p.ops_per_sec = b.1.saturating_sub(a.1) as f64 / secs;
        }
        Err(e) => p.error = Some(e),
    }
    p
}

type Sample = (u64, u64, u64);

async fn sample_proxy(
    addr: &str,
    user: Option<&str>,
    gap: Duration,
) -> Result<(Sample, Sample, f64, u64), String> {
    let mut c = crate::target::connect_proxy(addr, user).await?;
    let mut once = async || -> Result<Sample, String> {
        let v = c
            .call(&["INFO", "proxy"])
            .await
            .map_err(|e| e.to_string())?;
        let text = v.as_str().unwrap_or_default().to_string();
        let num = |k: &str| {
            hive_common::info::field(&text, k)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            num("connected_clients"),
            num("total_commands_processed"),
            num("error_replies"),
        ))
    };
    let t = std::time::Instant::now();
    let a = once().await?;
    tokio::time::sleep(gap).await;
    let b = once().await?;
    let secs = t.elapsed().as_secs_f64().max(0.001);
    let p = std::time::Instant::now();
    c.call(&["PING"]).await.map_err(|e| e.to_string())?;
    Ok((a, b, secs, p.elapsed().as_micros() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatters_read_like_redis_cli() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(3 << 30), "3.0G");
        assert_eq!(age(59), "59s");
        assert_eq!(age(3600), "60m");
        assert_eq!(age(86_400 * 3), "3d");
    }
}
