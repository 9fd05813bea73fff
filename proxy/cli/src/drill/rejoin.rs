//! Before a drill, the shard's replicas that answer (a failover needs one to promote); after
//! `--kill`, the killed node started again from the command line hive-local recorded for it,
//! and how long until it serves as a replica of the new master (its link up), as the seeds'
//! failover test checks.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hive_common::info;
use hive_upstream::conn::control::ControlConn;
use hive_upstream::Auth;

/// How long a restarted node may take to load its data and rejoin.
const REJOIN_LIMIT: Duration = Duration::from_secs(60);

/// The replicas of `shard` that answer as replicas: those the proxy reports, and those its
/// master reports (the proxy's view lags a replica that attached a moment ago); an error naming
/// the shard when none does.
pub async fn live_replicas(
    shard: &str,
    master: &str,
    replicas: &[String],
    auth: Option<&Auth>,
) -> Result<Vec<String>> {
    let mut candidates = replicas.to_vec();
    for r in attached(master, auth).await {
        if !candidates.contains(&r) {
            candidates.push(r);
        }
    }
    let mut live = Vec::new();
    for r in &candidates {
        let Ok(mut c) = ControlConn::connect_auth(r, Duration::from_secs(2), auth).await else {
            continue;
        };
        let role = c.call(&["ROLE"]).await.ok();
        let is_replica = role
            .as_ref()
            .and_then(|v| v.as_array())
            .and_then(|a| a.first())
            .and_then(|v| v.as_str())
            == Some("slave");
        if is_replica {
            live.push(r.clone());
        }
    }
    if live.is_empty() {
        let known = if candidates.is_empty() {
            "none".to_string()
        } else {
            format!("{} (not answering as replicas)", candidates.join(", "))
        };
        bail!(
            "shard '{shard}' has no replica to promote (replicas: {known}); a failover now would leave it without a master. Start the node an earlier drill killed, or add a replica, then drill again"
        );
    }
    Ok(live)
}

/// The replicas `master` reports as online (`INFO replication`); none if it cannot be asked.
async fn attached(master: &str, auth: Option<&Auth>) -> Vec<String> {
    let Ok(mut c) = ControlConn::connect_auth(master, Duration::from_secs(2), auth).await else {
        return Vec::new();
    };
    let Ok(v) = c.call(&["INFO", "replication"]).await else {
        return Vec::new();
    };
    let text = v.as_str().unwrap_or("");
    (0..)
        .map_while(|i| info::field(text, &format!("slave{i}")))
        .filter_map(|line| {
            let f = info::pairs(line);
            let port: u16 = f.get("port")?.parse().ok()?;
            let ip = f.get("ip")?;
            (f.get("state") == Some(&"online")).then(|| hive_common::addr::join(ip, port))
        })
        .collect()
}

/// The pid file of the node on `c`, where hive-local keeps its start command beside it.
pub async fn pid_file(c: &mut ControlConn) -> Option<PathBuf> {
    let v = c.call(&["CONFIG", "GET", "pidfile"]).await.ok()?;
    let path = v.as_array()?.get(1)?.as_str()?.to_string();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// What became of the killed node.
#[derive(Debug)]
pub enum Rejoin {
    /// Started again and replicating from `master`, `after` the restart.
    Replica { master: String, after: Duration },
    /// Not started again, or not a replica in time: why.
    Failed(String),
}

/// Starts `node` again from its recorded command line and waits until it is a replica with
/// its master link up.
pub async fn restart(node: &str, pid_file: Option<PathBuf>, auth: Option<&Auth>) -> Rejoin {
    let Some(pid_file) = pid_file else {
        return Rejoin::Failed(format!(
            "{node} has no pid file, so no start command is recorded for it; start it as you normally do"
        ));
    };
    if let Err(e) = hive_local::restart::start_again(&pid_file) {
        return Rejoin::Failed(format!("{e:#}"));
    }
    let started = Instant::now();
    let mut last = "not answering".to_string();
    while started.elapsed() < REJOIN_LIMIT {
        if let Ok(mut c) = ControlConn::connect_auth(node, Duration::from_secs(1), auth).await {
            match c.call(&["INFO", "replication"]).await {
                Ok(v) => {
                    let text = v.as_str().unwrap_or("");
                    let role = info::field(text, "role").unwrap_or("?");
                    let link = info::field(text, "master_link_status").unwrap_or("");
                    if role == "slave" && link == "up" {
                        let host = info::field(text, "master_host").unwrap_or("?");
                        let port = info::field(text, "master_port").unwrap_or("?");
                        return Rejoin::Replica {
                            master: hive_common::addr::join(host, port.parse().unwrap_or(0)),
                            after: started.elapsed(),
                        };
                    }
                    last = format!(
                        "role {role}, master link {}",
                        if link.is_empty() { "-" } else { link }
                    );
                }
                // LOADING while it reads its data back.
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Rejoin::Failed(format!(
        "{node} was started again but is no replica after {} s ({last})",
        REJOIN_LIMIT.as_secs()
    ))
}
