//! `hive drill failover`: force a failover of one shard while bounded writers run through the
//! proxy, then report how long writes stalled, the errors seen, and any acknowledged write that
//! is missing afterwards. Operator tooling, so errors are `anyhow`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hive_common::resp::Value;
use hive_common::Slot;
use tokio::sync::Mutex;

use crate::localcluster::info_field;
use crate::upstream::query::Conn;
use crate::upstream::Auth;

#[derive(Debug, Clone)]
pub struct DrillOpts {
    pub proxy: String,
    /// Shard name (as in INFO `shardN:name=`), or the first shard.
    pub group: Option<String>,
    /// Kill -9 the master (a local process) instead of a graceful failover.
    pub kill: bool,
    pub duration: Duration,
    pub writers: usize,
    /// Password for the nodes and sentinels, if they need one.
    pub auth: Option<Auth>,
}

/// One shard as the proxy's INFO describes it.
#[derive(Debug, Clone)]
struct ShardInfo {
    name: String,
    master: String,
    slots: Vec<(u16, u16)>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub group: String,
    pub old_master: String,
    pub new_master: String,
    pub writes: u64,
    pub acked: usize,
    /// Longest time between two successful writes to the drilled shard after the trigger.
    pub outage: Duration,
    pub errors: BTreeMap<String, u64>,
    pub missing: usize,
    pub other_shard_errors: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "failover drill of shard '{}'", self.group)?;
        writeln!(
            f,
            "  master:             {} -> {}",
            self.old_master, self.new_master
        )?;
        writeln!(
            f,
            "  writes:             {} ({} acknowledged)",
            self.writes, self.acked
        )?;
        writeln!(
            f,
            "  write outage:       {} ms (longest gap between successful writes to the shard)",
            self.outage.as_millis()
        )?;
        writeln!(
            f,
            "  errors (shard):     {}",
            self.errors.values().sum::<u64>()
        )?;
        for (e, n) in &self.errors {
            writeln!(f, "    {n} x {e}")?;
        }
        writeln!(f, "  errors (others):    {}", self.other_shard_errors)?;
        write!(f, "  missing acked:      {}", self.missing)
    }
}

fn shards_from_info(info: &str) -> Vec<ShardInfo> {
    let mut out = Vec::new();
    for i in 0.. {
        let Some(line) = info_field(info, &format!("shard{i}")) else {
            break;
        };
        let field = |k: &str| {
            line.split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap_or("")
                .to_string()
        };
        let slots = field("slots")
            .split('|')
            .filter_map(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        out.push(ShardInfo {
            name: field("name"),
            master: field("master"),
            slots,
        });
    }
    out
}

/// A hash tag whose slot shard `s` owns.
fn tag_for(s: &ShardInfo, salt: usize) -> String {
    (0..)
        .map(|n| format!("{{drill{salt}-{n}}}"))
        .find(|t| {
            let slot = Slot::for_key(t.as_bytes()).get();
            s.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
        })
        .expect("every shard owns a slot")
}

pub async fn failover(opts: DrillOpts) -> Result<Report> {
    let t = Duration::from_secs(5);
    let mut proxy = Conn::connect(&opts.proxy, t)
        .await
        .context("connect to the proxy")?;
    let info = proxy.call(&["INFO", "proxy"]).await?;
    let info = info.as_str().unwrap_or("").to_string();
    let mode = info_field(&info, "backend_mode").unwrap_or_default();
    let shards = shards_from_info(&info);
    let target = match &opts.group {
        Some(g) => shards
            .iter()
            .position(|s| &s.name == g)
            .ok_or_else(|| anyhow!("no shard named '{g}'"))?,
        None => 0,
    };
    let shard = shards
        .get(target)
        .cloned()
        .ok_or_else(|| anyhow!("the proxy reports no shards"))?;
    let sentinels: Vec<String> = info_field(&info, "sentinels")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let tags: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| tag_for(s, i))
        .collect();

    let state = Arc::new(Mutex::new(Writes::default()));
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut tasks = Vec::new();
    for w in 0..opts.writers.max(1) {
        let (proxy_addr, tags, state) = (opts.proxy.clone(), tags.clone(), state.clone());
        tasks.push(tokio::spawn(async move {
            write_loop(proxy_addr, w, tags, target, deadline, state).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(1).min(opts.duration / 4)).await;
    let trigger = Instant::now();
    trigger_failover(&opts, &mode, &shard, &sentinels).await?;
    for task in tasks {
        task.await.context("writer task")??;
    }
    let after = proxy.call(&["INFO", "proxy"]).await?;
    let new_master = shards_from_info(after.as_str().unwrap_or(""))
        .get(target)
        .map(|s| s.master.clone())
        .unwrap_or_default();
    let w = state.lock().await;
    let mut missing = 0;
    let keys: Vec<&String> = w.acked.keys().collect();
    for chunk in keys.chunks(200) {
        let mut args: Vec<&str> = vec!["MGET"];
        args.extend(chunk.iter().map(|k| k.as_str()));
        let v = proxy.call(&args).await?;
        for (k, got) in chunk.iter().zip(v.as_array().unwrap_or(&[])) {
            if got.as_str() != Some(w.acked[*k].as_str()) {
                missing += 1;
            }
        }
    }
    let mut last_ok = trigger;
    let mut outage = Duration::ZERO;
    for &at in w.target_ok.iter().filter(|at| **at > trigger) {
        outage = outage.max(at - last_ok);
        last_ok = at;
    }
    Ok(Report {
        group: shard.name,
        old_master: shard.master,
        new_master,
        writes: w.writes,
        acked: w.acked.len(),
        outage,
        errors: w.target_errors.clone(),
        missing,
        other_shard_errors: w.other_errors,
    })
}

#[derive(Default)]
struct Writes {
    writes: u64,
    acked: BTreeMap<String, String>,
    /// Completion times of successful writes to the drilled shard.
    target_ok: Vec<Instant>,
    target_errors: BTreeMap<String, u64>,
    other_errors: u64,
}

async fn write_loop(
    proxy: String,
    w: usize,
    tags: Vec<String>,
    target: usize,
    deadline: Instant,
    state: Arc<Mutex<Writes>>,
) -> Result<()> {
    let mut c = Conn::connect(&proxy, Duration::from_secs(30)).await?;
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        let shard = (i as usize) % tags.len();
        let key = format!("{}w{w}:{i}", tags[shard]);
        let value = format!("{i}");
        let r = c.call_raw(&["SET", &key, &value]).await;
        let mut s = state.lock().await;
        s.writes += 1;
        match r {
            Ok(Value::Simple(_)) => {
                if shard == target {
                    s.target_ok.push(Instant::now());
                }
                s.acked.insert(key, value);
            }
            Ok(Value::Error(e)) if shard == target => {
                *s.target_errors
                    .entry(String::from_utf8_lossy(&e).into_owned())
                    .or_default() += 1;
            }
            Ok(_) => s.other_errors += 1,
            Err(e) => {
                drop(s);
                // The proxy itself went away: reconnect and go on.
                tokio::time::sleep(Duration::from_millis(50)).await;
                c = Conn::connect(&proxy, Duration::from_secs(30))
                    .await
                    .with_context(|| format!("proxy unreachable after {e}"))?;
            }
        }
        i += 1;
    }
    Ok(())
}

async fn trigger_failover(
    opts: &DrillOpts,
    mode: &str,
    shard: &ShardInfo,
    sentinels: &[String],
) -> Result<()> {
    let t = Duration::from_secs(5);
    if opts.kill {
        return kill_local(&shard.master, opts.auth.as_ref()).await;
    }
    match mode {
        "sentinel" => {
            for s in sentinels {
                if let Ok(mut c) = Conn::connect_auth(s, t, opts.auth.as_ref()).await {
                    c.call(&["SENTINEL", "FAILOVER", &shard.name]).await?;
                    return Ok(());
                }
            }
            bail!("no sentinel could be reached")
        }
        "cluster" => {
            let mut m = Conn::connect_auth(&shard.master, t, opts.auth.as_ref()).await?;
            let id = m.call(&["CLUSTER", "MYID"]).await?;
            let id = id.as_str().unwrap_or("").to_string();
            let nodes = m.call(&["CLUSTER", "NODES"]).await?;
            let replica = nodes
                .as_str()
                .unwrap_or("")
                .lines()
                .find(|l| l.split(' ').nth(3) == Some(id.as_str()) && !l.contains("fail"))
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|a| a.split('@').next())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("{} has no healthy replica to promote", shard.master))?;
            let mut r = Conn::connect_auth(&replica, t, opts.auth.as_ref()).await?;
            r.call(&["CLUSTER", "FAILOVER"]).await?;
            Ok(())
        }
        other => bail!("a graceful failover needs sentinel or cluster mode (this proxy runs {other}); use --kill"),
    }
}

/// Kills the master's process: only for a node on this machine's loopback interface.
async fn kill_local(addr: &str, auth: Option<&Auth>) -> Result<()> {
    let sa: SocketAddr = addr
        .parse()
        .with_context(|| format!("{addr} is not an ip:port"))?;
    if !matches!(sa.ip(), IpAddr::V4(ip) if ip.is_loopback())
        && sa.ip() != IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
    {
        bail!("--kill only kills local nodes; {addr} is not a loopback address");
    }
    let mut c = Conn::connect_auth(addr, Duration::from_secs(5), auth).await?;
    let info = c.call(&["INFO", "server"]).await?;
    let pid = info_field(info.as_str().unwrap_or(""), "process_id")
        .ok_or_else(|| anyhow!("no process_id in INFO"))?;
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()?;
    if !status.success() {
        bail!("kill -9 {pid} failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_from_info_reads_proxy_section() {
        let info = "# Proxy\r\nbackend_mode:sentinel\r\n\
shard0:name=a,master=127.0.0.1:1,replicas=,slots=0-5460,status=ok\r\n\
shard1:name=b,master=127.0.0.1:2,replicas=127.0.0.1:3,slots=5461-10922|16000,status=ok\r\n";
        let s = shards_from_info(info);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "b");
        assert_eq!(s[1].slots, vec![(5461, 10922), (16000, 16000)]);
        let tag = tag_for(&s[0], 0);
        assert!(Slot::for_key(tag.as_bytes()).get() <= 5460);
    }
}
