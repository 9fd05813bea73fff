//! One fault scenario run against a deployment with load through Hive: load before, the fault
//! (for its window), the heal, load after; then what the writers lost and saw, as a `Report`.

use std::time::{Duration, Instant};

use hive_proxy::config::WriteAck;

use super::cluster::ClusterLab;
use super::netns::Lab;
use super::relay::{Faults, LinkFaults, Relay};
use super::sentinel::{SentinelLab, DOWN_AFTER_MS, NODE_PORT};
use super::workload::{verify, Load};
use hive_local::RedisProcess;
use hive_proxy::server::ProxyHandle;

/// A deployment a scenario runs on: Sentinel groups or a Redis Cluster, in namespaces.
pub trait FaultLab {
    fn mode(&self) -> &'static str;
    /// Hive, the data nodes (the faulted master first) and the namespaces.
    fn parts(&self) -> (&ProxyHandle, &[RedisProcess], &Lab);
    fn kill_master(&mut self);
    /// The hash tag of the keys the load writes: a slot of the faulted shard.
    fn tag(&self) -> String;
    /// The faulted shard's master, its replicas, and every member on the other side of a
    /// partition from it.
    fn master_member(&self) -> &'static str;
    fn replica_members(&self) -> &'static [&'static str];
    fn others(&self) -> &'static [&'static str];
    /// The faulted shard's master as Hive routes it now.
    fn master_addr(&self) -> String;
    /// The fault relay every peer reaches the master through, when the lab was started with it.
    fn relay(&self) -> Option<&Relay>;

    fn lab(&self) -> &Lab {
        self.parts().2
    }
    fn url(&self) -> String {
        format!("redis://{}/", self.parts().0.addr)
    }
    /// Every data node's address (for a diagnosis when a scenario goes wrong).
    fn nodes(&self) -> Vec<String> {
        self.parts().1.iter().map(|n| n.addr.clone()).collect()
    }
    fn replicas(&self) -> Vec<String> {
        self.replica_members()
            .iter()
            .map(|m| format!("{}:{NODE_PORT}", self.lab().ip(m)))
            .collect()
    }
}

/// Starts Hive with `config` from a thread inside the `hive` namespace (its threads stay
/// there), so the proxy is a member of the lab like any node.
pub(super) fn start_proxy(
    lab: &Lab,
    config: hive_proxy::config::Config,
) -> anyhow::Result<ProxyHandle> {
    std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<ProxyHandle> {
            lab.enter("hive")?;
            Ok(ProxyHandle::start(config)?)
        })
        .join()
        .expect("the proxy's starting thread")
    })
}

/// The faults of issue 30's list that this harness runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 1: kill -9 of the master under load.
    Kill,
    /// 2: the master (and Hive, with its clients) cut off from the replicas and the sentinels.
    PartitionMinority,
    /// 3: Hive cut off from the master; Hive on the majority side.
    ProxyFromMaster,
    /// 4: 200 ms delay and 5% loss, each way, on every link of the master (through the relay).
    SlowLink,
    /// 5: SIGSTOP of the master for longer than down-after-milliseconds, then SIGCONT.
    Stop,
    /// 6: one sentinel cut off from everyone (the quorum of 2 still holds).
    OneSentinel,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill-master",
            Fault::PartitionMinority => "partition-minority",
            Fault::ProxyFromMaster => "proxy-cut-from-master",
            Fault::SlowLink => "slow-lossy-link",
            Fault::Stop => "sigstop-master",
            Fault::OneSentinel => "one-sentinel-cut",
        }
    }
}

/// Scenario 4's link: the 200 ms and 5%, in each direction.
pub const SLOW_LINK_DELAY: Duration = Duration::from_millis(200);
pub const SLOW_LINK_LOSS: f64 = 0.05;

/// How long each phase lasts: short in CI, long in `benches/faults.sh`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub before: Duration,
    /// How long a partition or a stop lasts (past down-after-milliseconds, so Sentinel acts).
    pub window: Duration,
    pub after: Duration,
}

impl Timing {
    pub fn from_env() -> Timing {
        if std::env::var("HIVE_FAULTS").as_deref() == Ok("long") {
            Timing {
                before: Duration::from_secs(5),
                window: Duration::from_secs(30),
                after: Duration::from_secs(15),
            }
        } else {
            Timing {
                before: Duration::from_secs(2),
                window: Duration::from_millis(DOWN_AFTER_MS + 5000),
                after: Duration::from_secs(4),
            }
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub mode: &'static str,
    pub fault: Fault,
    pub write_ack: WriteAck,
    pub acked: usize,
    pub lost: usize,
    pub registers_behind: usize,
    pub stale_reads: u64,
    /// Client errors from the fault to the heal, and from the heal on.
    pub errors_during: usize,
    pub errors_after: usize,
    /// Writes acknowledged from the fault to the heal, and the 99th percentile of their
    /// latency (what a slow link costs, per setting).
    pub acked_during: usize,
    pub p99_during: Option<Duration>,
    /// From the fault to the first write sent after it that succeeded.
    pub first_write: Option<Duration>,
    /// From the fault to when a replica first said it was master (`ROLE`, polled every 20
    /// ms): the deployment's own failover, which Hive cannot shorten.
    pub promoted: Option<Duration>,
    /// The errors seen, by their first words, and when the first few came (ms from the fault).
    pub error_kinds: std::collections::BTreeMap<String, usize>,
    pub error_times_ms: Vec<i64>,
    /// The first stale reads: ms from the fault, and what was read.
    pub stale: Vec<(i64, String)>,
}

impl Report {
    pub fn json(&self) -> String {
        format!(
            "{{\"mode\":\"{}\",\"fault\":\"{}\",\"write_ack\":\"{}\",\"acked\":{},\"lost\":{},\"registers_behind\":{},\"stale_reads\":{},\"errors_during\":{},\"errors_after\":{},\"acked_during\":{},\"p99_during_ms\":{},\"first_write_ms\":{},\"promoted_ms\":{},\"error_kinds\":{},\"error_times_ms\":{:?},\"stale\":{}}}",
            self.mode,
            self.fault.name(),
            self.write_ack.as_str(),
            self.acked,
            self.lost,
            self.registers_behind,
            self.stale_reads,
            self.errors_during,
            self.errors_after,
            self.acked_during,
            self.p99_during.map_or("null".into(), |d| d.as_millis().to_string()),
            self.first_write.map_or("null".into(), |d| d.as_millis().to_string()),
            self.promoted.map_or("null".into(), |d| d.as_millis().to_string()),
            serde_json::to_string(&self.error_kinds).unwrap_or_default(),
            self.error_times_ms,
            serde_json::to_string(&self.stale).unwrap_or_default()
        )
    }

    /// Prints the report, and appends it to `$HIVE_FAULTS_REPORT` when set.
    pub fn publish(&self) {
        let line = self.json();
        println!("faults: {line}");
        if let Ok(path) = std::env::var("HIVE_FAULTS_REPORT") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}

/// Runs `fault` on a fresh Sentinel deployment with `write_ack`.
pub fn sentinel(fault: Fault, write_ack: WriteAck, t: Timing) -> anyhow::Result<Report> {
    let mut d = SentinelLab::start(write_ack, fault == Fault::SlowLink)?;
    run(&mut d, fault, write_ack, t)
}

/// Runs `fault` on a fresh Redis Cluster with `write_ack`.
pub fn cluster(fault: Fault, write_ack: WriteAck, t: Timing) -> anyhow::Result<Report> {
    let mut d = ClusterLab::start(write_ack, fault == Fault::SlowLink)?;
    run(&mut d, fault, write_ack, t)
}

fn run(
    d: &mut dyn FaultLab,
    fault: Fault,
    write_ack: WriteAck,
    t: Timing,
) -> anyhow::Result<Report> {
    let url = d.url();
    let old = d.master_addr();
    let load = Load::start(&url, &d.tag(), 4);
    std::thread::sleep(t.before);
    let master = d.master_member();
    let cut_pairs: Vec<(&str, &str)> = match fault {
        Fault::PartitionMinority => [master, "hive"]
            .into_iter()
            .flat_map(|a| d.others().iter().map(move |b| (a, *b)))
            .collect(),
        Fault::ProxyFromMaster => vec![("hive", master)],
        // Sentinel only: s1 from everyone.
        Fault::OneSentinel => ["ctl", "hive", master]
            .into_iter()
            .chain(d.others().iter().copied().filter(|o| *o != "s1"))
            .map(|o| ("s1", o))
            .collect(),
        _ => Vec::new(),
    };
    let lab = d.lab();
    for (a, b) in &cut_pairs {
        lab.cut(a, &lab.ip(a), b, &lab.ip(b))?;
    }
    let master_pid = pid_of(&old);
    let promotion = watch_promotion(d.replicas());
    match fault {
        Fault::Kill => d.kill_master(),
        Fault::Stop => signal(&master_pid, "-STOP"),
        Fault::SlowLink => {
            let link = LinkFaults {
                delay: SLOW_LINK_DELAY,
                loss: SLOW_LINK_LOSS,
                stall: false,
            };
            d.relay().expect("a relayed lab").set(Faults {
                up: link,
                down: link,
                cut: false,
            });
        }
        _ => {}
    }
    let at = Instant::now();
    if fault == Fault::Kill {
        // Nothing to heal: the fault lasts until writes succeed again.
        wait_write_after(&load, at);
    } else {
        std::thread::sleep(t.window);
    }
    let heal_at = Instant::now();
    if fault == Fault::Stop {
        signal(&master_pid, "-CONT");
    }
    if let Some(r) = d.relay() {
        r.set(Faults::default());
    }
    let lab = d.lab();
    for (a, b) in &cut_pairs {
        lab.heal(a, &lab.ip(a), b, &lab.ip(b))?;
    }
    // Load goes on until a write succeeded after the heal, and for `after` more.
    wait_write_after(&load, heal_at);
    std::thread::sleep(t.after);
    let seen = load.stop();
    let seen = seen.lock().unwrap();
    // Every write acknowledged must be readable once the deployment has settled.
    let (lost, registers_behind) = verify(&url, &seen);
    // The reply time of the first write sent after the fault that succeeded.
    let first_write = seen
        .ok_at
        .iter()
        .filter(|(sent, _)| *sent > at)
        .map(|(_, done)| *done - at)
        .min();
    let mut during: Vec<Duration> = seen
        .ok_at
        .iter()
        .filter(|(sent, _)| *sent >= at && *sent < heal_at)
        .map(|(sent, done)| *done - *sent)
        .collect();
    during.sort();
    let p99_during = (!during.is_empty()).then(|| during[(during.len() - 1) * 99 / 100]);
    let promoted = promotion.stop().map(|t| t.saturating_duration_since(at));
    if first_write.is_none() {
        eprintln!(
            "faults: no write succeeded after the fault; the nodes:\n{}",
            roles(&d.nodes())
        );
    }
    // Negative before the fault.
    let since = |t: Instant| -> i64 {
        let ms = |d: Duration| d.as_millis() as i64;
        if t >= at {
            ms(t - at)
        } else {
            -ms(at - t)
        }
    };
    let report = Report {
        mode: d.mode(),
        fault,
        write_ack,
        acked: seen.acked.len(),
        lost,
        registers_behind,
        stale_reads: seen.stale_reads,
        errors_during: seen
            .errors
            .iter()
            .filter(|(t, _)| *t >= at && *t < heal_at)
            .count(),
        errors_after: seen.errors.iter().filter(|(t, _)| *t >= heal_at).count(),
        acked_during: during.len(),
        p99_during,
        first_write,
        promoted,
        error_kinds: seen
            .errors
            .iter()
            .fold(Default::default(), |mut m, (_, e)| {
                let kind: String = e.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
                *m.entry(kind).or_default() += 1;
                m
            }),
        error_times_ms: seen
            .errors
            .iter()
            .take(12)
            .map(|(t, _)| since(*t))
            .collect(),
        stale: seen
            .stale
            .iter()
            .take(5)
            .map(|(t, what)| (since(*t), what.clone()))
            .collect(),
    };
    Ok(report)
}

/// Waits (at most a minute) until a write sent after `at` succeeded.
fn wait_write_after(load: &Load, at: Instant) {
    // No assertion here: a scenario with no write after the fault reports it as such.
    crate::module_cluster::poll_until(Duration::from_secs(60), || {
        let seen = load.seen.lock().unwrap();
        seen.ok_at.iter().rev().any(|(t, _)| *t > at)
    });
}

/// Polls `ROLE` on `nodes` until stopped; `stop` returns when one first answered master.
struct Promotion {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<Instant>>,
}

impl Promotion {
    fn stop(self) -> Option<Instant> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

fn watch_promotion(nodes: Vec<String>) -> Promotion {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        // Reconnected on every poll: Sentinel kills the clients of the replica it promotes.
        let role = |n: &String| -> Option<bool> {
            let c = redis::Client::open(format!("redis://{n}/")).ok()?;
            let mut c = c
                .get_connection_with_timeout(Duration::from_millis(500))
                .ok()?;
            c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            let r: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
            Some(r.first() == Some(&redis::Value::BulkString(b"master".to_vec())))
        };
        // Until stopped (a scenario lasts minutes at most), every 50 ms: the promotion time is
        // known to within a poll.
        let mut at = None;
        crate::module_cluster::poll_until(Duration::from_secs(600), || {
            if nodes.iter().any(|n| role(n) == Some(true)) {
                at = Some(Instant::now());
            }
            at.is_some() || flag.load(std::sync::atomic::Ordering::Relaxed)
        });
        at
    });
    Promotion { stop, thread }
}

/// Each node's replication state, one line each.
fn roles(nodes: &[String]) -> String {
    nodes
        .iter()
        .map(|a| {
            let info = redis::Client::open(format!("redis://{a}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut c| {
                    redis::cmd("INFO")
                        .arg("replication")
                        .query::<String>(&mut c)
                })
                .unwrap_or_else(|e| e.to_string());
            let keep = |l: &&str| {
                [
                    "role:",
                    "master_host:",
                    "master_link_status:",
                    "connected_slaves:",
                    "slave",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            };
            let lines: Vec<&str> = info.lines().filter(keep).collect();
            format!("  {a}: {}", lines.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn pid_of(addr: &str) -> String {
    let mut c = crate::connect(&format!("redis://{addr}/"));
    let info: String = redis::cmd("INFO").arg("server").query(&mut c).unwrap();
    hive_common::info::field(&info, "process_id")
        .expect("process_id in INFO")
        .to_string()
}

fn signal(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}
