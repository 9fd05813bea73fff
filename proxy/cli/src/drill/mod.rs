//! `hive drill failover`: force a failover of one shard while bounded writers run through the
//! proxy, then report how long writes stalled, the errors seen, and any acknowledged write that
//! is missing afterwards, and how long after the promotion (as hive-module on the promoted node
//! reports it) the first write succeeded.

mod promotion;
mod rejoin;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use hive_common::info;
use hive_common::resp::Value;
use hive_common::Slot;
use hive_upstream::conn::control::ControlConn;
use hive_upstream::Auth;
use tokio::sync::Mutex;

#[derive(Subcommand)]
pub enum DrillCmd {
    /// Force a failover of one shard while writers run through the proxy; report the outage.
    Failover(DrillArgs),
}

#[derive(Args)]
pub struct DrillArgs {
    /// The proxy to write through.
    #[arg(long, default_value = "127.0.0.1:6380")]
    proxy: String,
    /// The shard to fail over (its name in INFO: the Sentinel master name, or the master address).
    #[arg(long)]
    group: Option<String>,
    /// Kill -9 the shard's master (local nodes only) instead of SENTINEL/CLUSTER FAILOVER;
    /// it is started again afterwards and must rejoin as a replica.
    #[arg(long)]
    kill: bool,
    /// With --kill: leave the killed node down.
    #[arg(long, requires = "kill")]
    no_restart: bool,
    /// How long the writers run, in seconds.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Password of the nodes and sentinels, if any.
    #[arg(long)]
    password: Option<String>,
}

pub fn run(cmd: DrillCmd) -> Result<()> {
    let DrillCmd::Failover(a) = cmd;
    let opts = DrillOpts {
        proxy: a.proxy,
        group: a.group,
        kill: a.kill,
        restart: !a.no_restart,
        duration: Duration::from_secs(a.duration.max(2)),
        writers: a.writers,
        auth: a.password.map(|p| Auth {
            username: None,
            password: p,
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(failover(opts))?;
    println!("{report}");
    if report.missing > 0 {
        anyhow::bail!(
            "{} acknowledged writes are missing after the failover",
            report.missing
        );
    }
    if let Some(rejoin::Rejoin::Failed(why)) = &report.rejoin {
        anyhow::bail!("the killed node did not rejoin: {why}");
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct DrillOpts {
    pub proxy: String,
    /// Shard name (as in INFO `shardN:name=`), or the first shard.
    pub group: Option<String>,
    /// Kill -9 the master (a local process) instead of a graceful failover.
    pub kill: bool,
    /// With `kill`: start the node again afterwards and wait until it is a replica.
    pub restart: bool,
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
    replicas: Vec<String>,
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
    /// The node whose hive-module reported its promotion, and from then to the first
    /// successful write to the shard through the proxy (`None` without the module).
    pub promoted: Option<String>,
    pub promotion_to_write: Option<Duration>,
    /// `--kill`: the killed node started again (or why not).
    pub rejoin: Option<rejoin::Rejoin>,
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
        match (&self.promoted, self.promotion_to_write) {
            (Some(node), Some(d)) => writeln!(
                f,
                "  promotion -> write: {} ms (from {node}'s promotion event to the first successful write)",
                d.as_millis()
            )?,
            (Some(node), None) => writeln!(f, "  promotion -> write: none ({node} promoted, no write succeeded after)")?,
            _ => writeln!(f, "  promotion -> write: unknown (no promotion event: hive-module not loaded?)")?,
        }
        match &self.rejoin {
            Some(rejoin::Rejoin::Replica { master, after }) => writeln!(
                f,
                "  restarted:          {} rejoined as a replica of {master} in {} ms",
                self.old_master,
                after.as_millis()
            )?,
            Some(rejoin::Rejoin::Failed(why)) => writeln!(f, "  restarted:          no: {why}")?,
            None => {}
        }
        write!(f, "  missing acked:      {}", self.missing)
    }
}

fn shards_from_info(text: &str) -> Vec<ShardInfo> {
    let mut out = Vec::new();
    while let Some(line) = info::field(text, &format!("shard{}", out.len())) {
        let f = info::pairs(line);
        let field = |k: &str| f.get(k).copied().unwrap_or("").to_string();
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
            replicas: field("replicas")
                .split('|')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            slots,
        });
    }
    out
}

/// A hash tag whose slot shard `s` owns; an error if it owns none (then no key can reach it).
fn tag_for(s: &ShardInfo, salt: usize) -> Result<String> {
    // Hash tags spread evenly over the 16384 slots: this many candidates find any owned slot
    // with near certainty, and the loop ends even when the shard owns nothing.
    (0..1_000_000)
        .map(|n| format!("{{drill{salt}-{n}}}"))
        .find(|t| {
            let slot = Slot::for_key(t.as_bytes()).get();
            s.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
        })
        .ok_or_else(|| anyhow!("shard '{}' owns no slots, so no write can reach it", s.name))
}

pub async fn failover(opts: DrillOpts) -> Result<Report> {
    let t = Duration::from_secs(5);
    let mut proxy = ControlConn::connect(&opts.proxy, t)
        .await
        .context("connect to the proxy")?;
    let info = proxy.call(&["INFO", "proxy"]).await?;
    let info = info.as_str().unwrap_or("").to_string();
    let mode = info::field(&info, "backend_mode").unwrap_or_default();
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
    let sentinels: Vec<String> = info::field(&info, "sentinels")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let tags: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| tag_for(s, i))
        .collect::<Result<_>>()?;
    let auth = opts.auth.as_ref();
    let replicas = rejoin::live_replicas(&shard.name, &shard.master, &shard.replicas, auth).await?;

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
    let promo = promotion::watch(&replicas, opts.auth.as_ref(), opts.duration).await;
    tokio::time::sleep(Duration::from_secs(1).min(opts.duration / 4)).await;
    let trigger = Instant::now();
    let killed = trigger_failover(&opts, mode, &shard, &sentinels).await?;
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
    let rejoin = match killed {
        Some(pid_file) if opts.restart => {
            Some(rejoin::restart(&shard.master, pid_file, opts.auth.as_ref()).await)
        }
        _ => None,
    };
    let promoted = promo.lock().await.clone();
    let promotion_to_write = promoted.as_ref().and_then(|(_, at)| {
        w.target_ok_unix
            .iter()
            .find(|&&ok| ok >= *at)
            .map(|ok| Duration::from_millis(ok - at))
    });
    Ok(Report {
        promoted: promoted.map(|(node, _)| node),
        promotion_to_write,
        group: shard.name,
        old_master: shard.master,
        new_master,
        writes: w.writes,
        acked: w.acked.len(),
        outage,
        errors: w.target_errors.clone(),
        missing,
        other_shard_errors: w.other_errors,
        rejoin,
    })
}

#[derive(Default)]
struct Writes {
    writes: u64,
    acked: BTreeMap<String, String>,
    /// Completion times of successful writes to the drilled shard.
    target_ok: Vec<Instant>,
    /// The same, in unix milliseconds (comparable with the module's event times).
    target_ok_unix: Vec<u64>,
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
    let mut c = ControlConn::connect(&proxy, Duration::from_secs(30)).await?;
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
                    s.target_ok_unix.push(unix_ms());
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
                c = ControlConn::connect(&proxy, Duration::from_secs(30))
                    .await
                    .with_context(|| format!("proxy unreachable after {e}"))?;
            }
        }
        i += 1;
    }
    Ok(())
}

/// Fails the shard over; with `--kill`, returns the killed node's pid file (where its start
/// command is recorded), if it has one.
async fn trigger_failover(
    opts: &DrillOpts,
    mode: &str,
    shard: &ShardInfo,
    sentinels: &[String],
) -> Result<Option<Option<PathBuf>>> {
    let t = Duration::from_secs(5);
    if opts.kill {
        return kill_local(&shard.master, opts.auth.as_ref())
            .await
            .map(Some);
    }
    match mode {
        "sentinel" => {
            for s in sentinels {
                if let Ok(mut c) = ControlConn::connect_auth(s, t, opts.auth.as_ref()).await {
                    c.call(&["SENTINEL", "FAILOVER", &shard.name]).await?;
                    return Ok(None);
                }
            }
            bail!("no sentinel could be reached")
        }
        "cluster" => {
            let mut m = ControlConn::connect_auth(&shard.master, t, opts.auth.as_ref()).await?;
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
            let mut r = ControlConn::connect_auth(&replica, t, opts.auth.as_ref()).await?;
            r.call(&["CLUSTER", "FAILOVER"]).await?;
            Ok(None)
        }
        other => bail!("a graceful failover needs sentinel or cluster mode (this proxy runs {other}); use --kill"),
    }
}

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Kills the master's process: only for a node on this machine's loopback interface. Returns
/// its pid file, read before the kill.
async fn kill_local(addr: &str, auth: Option<&Auth>) -> Result<Option<PathBuf>> {
    let sa: SocketAddr = addr
        .parse()
        .with_context(|| format!("{addr} is not an ip:port"))?;
    if !matches!(sa.ip(), IpAddr::V4(ip) if ip.is_loopback())
        && sa.ip() != IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
    {
        bail!("--kill only kills local nodes; {addr} is not a loopback address");
    }
    let mut c = ControlConn::connect_auth(addr, Duration::from_secs(5), auth).await?;
    let pid_file = rejoin::pid_file(&mut c).await;
    let info = c.call(&["INFO", "server"]).await?;
    let pid = info::field(info.as_str().unwrap_or(""), "process_id")
        .ok_or_else(|| anyhow!("no process_id in INFO"))?;
    let status = std::process::Command::new("kill")
        .args(["-9", pid])
        .status()?;
    if !status.success() {
        bail!("kill -9 {pid} failed");
    }
    Ok(pid_file)
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
        assert_eq!(s[1].replicas, vec!["127.0.0.1:3".to_string()]);
        assert!(s[0].replicas.is_empty());
        let tag = tag_for(&s[0], 0).unwrap();
        assert!(Slot::for_key(tag.as_bytes()).get() <= 5460);
    }

    #[test]
    fn tag_for_a_shard_without_slots_is_an_error() {
        let info = "shard0:name=a,master=127.0.0.1:1,replicas=,slots=,status=no_master\r\n";
        let s = shards_from_info(info);
        let e = tag_for(&s[0], 0).unwrap_err().to_string();
        assert_eq!(e, "shard 'a' owns no slots, so no write can reach it");
    }
}
