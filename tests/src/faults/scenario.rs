//! One fault scenario run against a deployment with load through Hive: load before, the fault
//! (for its window), the heal, load after; then what the writers lost and saw, as a `Report`.

use std::time::{Duration, Instant};

use hive_proxy::config::WriteAck;

use super::sentinel::{ip, SentinelLab, DOWN_AFTER_MS};
use super::workload::{verify, Load};

/// The faults of issue 30's list that this harness runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 1: kill -9 of the master under load.
    Kill,
    /// 2: the master (and Hive, with its clients) cut off from the replicas and the sentinels.
    PartitionMinority,
    /// 3: Hive cut off from the master; Hive on the majority side.
    ProxyFromMaster,
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
            Fault::Stop => "sigstop-master",
            Fault::OneSentinel => "one-sentinel-cut",
        }
    }
}

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
    /// From the fault to the first write sent after it that succeeded.
    pub first_write: Option<Duration>,
}

impl Report {
    pub fn json(&self) -> String {
        format!(
            "{{\"mode\":\"{}\",\"fault\":\"{}\",\"write_ack\":\"{}\",\"acked\":{},\"lost\":{},\"registers_behind\":{},\"stale_reads\":{},\"errors_during\":{},\"errors_after\":{},\"first_write_ms\":{}}}",
            self.mode,
            self.fault.name(),
            self.write_ack.as_str(),
            self.acked,
            self.lost,
            self.registers_behind,
            self.stale_reads,
            self.errors_during,
            self.errors_after,
            self.first_write.map_or("null".into(), |d| d.as_millis().to_string())
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
    let mut d = SentinelLab::start(write_ack)?;
    let url = d.url();
    let old = d.routed();
    let load = Load::start(&url, "{f}", 4);
    std::thread::sleep(t.before);
    let lab = &d.lab;
    let majority = ["r1", "r2", "s1", "s2", "s3"];
    let cut_pairs: Vec<(&str, &str)> = match fault {
        Fault::PartitionMinority => ["m", "hive"]
            .iter()
            .flat_map(|a| majority.iter().map(move |b| (*a, *b)))
            .collect(),
        Fault::ProxyFromMaster => vec![("hive", "m")],
        Fault::OneSentinel => ["ctl", "hive", "m", "r1", "r2", "s2", "s3"]
            .iter()
            .map(|o| ("s1", *o))
            .collect(),
        _ => Vec::new(),
    };
    for (a, b) in &cut_pairs {
        lab.cut(a, &ip(lab, a), b, &ip(lab, b))?;
    }
    let master_pid = pid_of(&old);
    match fault {
        Fault::Kill => d.nodes[0].kill(),
        Fault::Stop => signal(&master_pid, "-STOP"),
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
    for (a, b) in &cut_pairs {
        d.lab.heal(a, &ip(&d.lab, a), b, &ip(&d.lab, b))?;
    }
    // Load goes on until a write succeeded after the heal, and for `after` more.
    wait_write_after(&load, heal_at);
    std::thread::sleep(t.after);
    let seen = load.stop();
    let seen = seen.lock().unwrap();
    // Every write acknowledged must be readable once the deployment has settled.
    let (lost, registers_behind) = verify(&url, &seen);
    let first_write = seen.ok_at.iter().find(|t| **t > at).map(|t| *t - at);
    let report = Report {
        mode: "sentinel",
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
        first_write,
    };
    Ok(report)
}

/// Waits (at most a minute) until a write sent after `at` succeeded.
fn wait_write_after(load: &Load, at: Instant) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if load
            .seen
            .lock()
            .unwrap()
            .ok_at
            .iter()
            .rev()
            .any(|t| *t > at)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
