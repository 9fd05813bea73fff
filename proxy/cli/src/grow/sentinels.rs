//! Telling every sentinel about a group that joins (`SENTINEL MONITOR`, with the settings and
//! node password the existing groups have) or leaves (`SENTINEL REMOVE`).

use anyhow::{bail, Result};
use hive_reshard::session::Session;
use hive_reshard::standalone::Deployment;
use hive_upstream::conn::control::ControlConn;

/// A connection to a sentinel, with the sentinels' own credentials.
async fn dial(s: &Session, sen: &str) -> Result<ControlConn> {
    let plane = s.plane();
    let auth = plane.config.sentinel_auth();
    Ok(plane.connector.control(sen, auth.as_ref()).await?)
}

/// The settings copied from an existing group, so the new one fails over alike.
const COPIED: [&str; 3] = [
    "down-after-milliseconds",
    "failover-timeout",
    "parallel-syncs",
];

pub async fn monitor(s: &mut Session, d: &Deployment, name: &str, master: &str) -> Result<()> {
    let sentinels = s.plane().config.sentinels.clone();
    if sentinels.is_empty() {
        bail!("no sentinel is configured; nothing was changed");
    }
    let model = d.map.shards.first().map(|x| x.name.clone());
    let (host, port) = hive_common::addr::split(master)
        .ok_or_else(|| anyhow::anyhow!("{master}: not a host:port"))?;
    let host = host.trim_matches(['[', ']']).to_string();
    let node_auth = s.auth().cloned();
    for sen in &sentinels {
        let mut c = dial(s, sen).await?;
        // The quorum and timings of an existing group, as this sentinel knows them.
        let mut quorum = (sentinels.len() / 2 + 1).to_string();
        let mut copied = Vec::new();
        if let Some(m) = &model {
            if let Ok(v) = c.call(&["SENTINEL", "MASTER", m]).await {
                if let Some(q) = v.field("quorum").and_then(|q| q.as_str()) {
                    quorum = q.to_string();
                }
                for key in COPIED {
                    if let Some(val) = v.field(key).and_then(|q| q.as_str()) {
                        copied.push((key, val.to_string()));
                    }
                }
            }
        }
        match c
            .call(&["SENTINEL", "MONITOR", name, &host, port, &quorum])
            .await
        {
            Ok(_) => {}
            // Already monitored (a retried add-shard): the settings below still apply.
            Err(e) if e.to_string().contains("Duplicated master name") => {}
            Err(e) => return Err(e.into()),
        }
        for (key, val) in &copied {
            c.call(&["SENTINEL", "SET", name, key, val]).await?;
        }
        if let Some(auth) = &node_auth {
            if let Some(u) = &auth.username {
                c.call(&["SENTINEL", "SET", name, "auth-user", u]).await?;
            }
            c.call(&["SENTINEL", "SET", name, "auth-pass", &auth.password])
                .await?;
        }
    }
    Ok(())
}

pub async fn forget(s: &mut Session, name: &str) -> Result<()> {
    for sen in s.plane().config.sentinels.clone() {
        let mut c = dial(s, &sen).await?;
        match c.call(&["SENTINEL", "REMOVE", name]).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("No such master") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
