//! `hive init`: forms a deployment from running nodes, as operators' setup scripts do: three or
//! more cluster-enabled nodes become a Redis Cluster (the first third, or half with
//! `--replicas 1`, masters), two standalone nodes a master and its replica watched by the
//! `--sentinels`. It prints its plan (`--dry-run` stops there), applies it, and waits until the
//! deployment is healthy. What is already so is left alone, so a second run changes nothing.

mod plan;

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use hive_common::info;
use hive_local::wait_until;
use hive_upstream::conn::control::ControlConn;
use hive_upstream::Auth;

use plan::{Standalone, Step};

#[derive(Args)]
pub struct InitArgs {
    /// The running nodes, comma-separated host:port (names are resolved); masters first.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Replicas per master (cluster); default 1 with 6 or more nodes, else 0.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Two nodes: the sentinels that watch them (comma-separated host:port; their own password,
    /// if any, from `HIVE_SENTINEL_PASSWORD`).
    #[arg(long, value_delimiter = ',')]
    pub sentinels: Vec<String>,
    /// Two nodes: the master name the sentinels monitor.
    #[arg(long, default_value = "hive-a")]
    pub master_name: String,
    #[arg(long, default_value_t = 2)]
    pub quorum: u32,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The nodes' credentials from `HIVE_NODE_PASSWORD` (and `HIVE_NODE_USER`), never flags, so
/// they stay out of `ps`.
fn auth() -> Option<Auth> {
    std::env::var("HIVE_NODE_PASSWORD")
        .ok()
        .map(|password| Auth {
            username: std::env::var("HIVE_NODE_USER").ok(),
            password,
        })
}

/// The sentinels' own password, `HIVE_SENTINEL_PASSWORD`, when they have one.
fn sentinel_auth() -> Option<Auth> {
    std::env::var("HIVE_SENTINEL_PASSWORD")
        .ok()
        .map(|password| Auth {
            username: None,
            password,
        })
}

/// `host:port` with the host resolved to an IP (CLUSTER MEET and REPLICAOF take addresses).
async fn resolve(addr: &str) -> Result<String> {
    let sock = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("{addr}: cannot resolve"))?
        .next()
        .ok_or_else(|| anyhow!("{addr}: no address"))?;
    Ok(hive_common::addr::join(&sock.ip().to_string(), sock.port()))
}

async fn call_as(
    addr: &str,
    auth: Option<&Auth>,
    args: &[&str],
) -> Result<hive_common::resp::Value> {
    let mut c = ControlConn::connect_auth(addr, Duration::from_secs(5), auth).await?;
    Ok(c.call(args).await?)
}

async fn call(addr: &str, args: &[&str]) -> Result<hive_common::resp::Value> {
    call_as(addr, auth().as_ref(), args).await
}

async fn sentinel(addr: &str, args: &[&str]) -> Result<hive_common::resp::Value> {
    call_as(addr, sentinel_auth().as_ref(), args).await
}

async fn text(addr: &str, args: &[&str]) -> Result<String> {
    Ok(call(addr, args)
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

pub fn run(a: InitArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: InitArgs) -> Result<()> {
    let mut nodes = Vec::new();
    for n in &a.nodes {
        nodes.push(resolve(n).await?);
    }
    let steps = match nodes.len() {
        0 | 1 => bail!("--nodes: give 2 nodes (master + replica) or 3 or more (a cluster)"),
        2 => plan_group(&nodes, &a).await?,
        _ => plan_cluster(&nodes, &a).await?,
    };
    if steps.is_empty() {
        println!("already formed: nothing to do");
        return Ok(());
    }
    println!("{}plan:", if a.dry_run { "dry run, " } else { "" });
    for s in &steps {
        println!("  {s}");
    }
    if a.dry_run {
        return Ok(());
    }
    apply(&steps).await?;
    if nodes.len() == 2 {
        wait_group(&nodes).await?;
    } else {
        wait_cluster(&nodes).await?;
    }
    println!(
        "done: {} steps applied; the deployment is healthy",
        steps.len()
    );
    Ok(())
}

async fn plan_cluster(nodes: &[String], a: &InitArgs) -> Result<Vec<Step>> {
    let mut states = Vec::new();
    for n in nodes {
        let i = text(n, &["INFO", "cluster"]).await?;
        if info::field(&i, "cluster_enabled") != Some("1") {
            bail!("{n}: cluster_enabled is 0; start it with `cluster-enabled yes` (or give 2 nodes for a master and replica)");
        }
        let nodes_text = text(n, &["CLUSTER", "NODES"]).await?;
        states.push(plan::parse_cluster_nodes(n, &nodes_text).map_err(|e| anyhow!(e))?);
    }
    let replicas = a.replicas.unwrap_or(if nodes.len() >= 6 { 1 } else { 0 });
    plan::cluster(&states, replicas).map_err(|e| anyhow!(e))
}

async fn standalone(addr: &str) -> Result<Standalone> {
    let r = text(addr, &["INFO", "replication"]).await?;
    let master = match (
        info::field(&r, "master_host"),
        info::field(&r, "master_port"),
    ) {
        (Some(h), Some(p)) if info::field(&r, "role") == Some("slave") => {
            Some(resolve(&hive_common::addr::join(h, p.parse().unwrap_or(0))).await?)
        }
        _ => None,
    };
    Ok(Standalone {
        addr: addr.to_string(),
        master,
    })
}

async fn plan_group(nodes: &[String], a: &InitArgs) -> Result<Vec<Step>> {
    let (m, r) = (standalone(&nodes[0]).await?, standalone(&nodes[1]).await?);
    let mut sentinels = Vec::new();
    for s in &a.sentinels {
        let s = resolve(s).await?;
        let watching = match sentinel(&s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &a.master_name])
            .await?
        {
            hive_common::resp::Value::Array(v) if v.len() == 2 => Some(hive_common::addr::join(
                v[0].as_str().unwrap_or_default(),
                v[1].as_str().and_then(|p| p.parse().ok()).unwrap_or(0),
            )),
            _ => None,
        };
        sentinels.push((s, watching));
    }
    Ok(plan::group(&m, &r, &sentinels, &a.master_name, a.quorum))
}

fn host_port(addr: &str) -> Result<(String, String)> {
    let (h, p) = hive_common::addr::split(addr).ok_or_else(|| anyhow!("{addr}: not host:port"))?;
    Ok((h.to_string(), p.to_string()))
}

async fn apply(steps: &[Step]) -> Result<()> {
    for s in steps {
        let r = match s {
            Step::AddSlots { node, start, end } => call(
                node,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &start.to_string(),
                    &end.to_string(),
                ],
            )
            .await
            .map(drop),
            Step::SetEpoch { node, epoch } => {
                // Refused once the node knows others; the epochs then come from the bus.
                let _ = call(node, &["CLUSTER", "SET-CONFIG-EPOCH", &epoch.to_string()]).await;
                Ok(())
            }
            Step::Meet { node, other } => {
                let (h, p) = host_port(other)?;
                call(node, &["CLUSTER", "MEET", &h, &p]).await.map(drop)
            }
            Step::Replicate {
                node, master_id, ..
            } => {
                // A node may refuse while it does not yet know its master: retry briefly.
                wait_until(
                    "CLUSTER REPLICATE to be accepted",
                    Duration::from_secs(20),
                    || async {
                        Ok(call(node, &["CLUSTER", "REPLICATE", master_id])
                            .await
                            .is_ok())
                    },
                )
                .await
            }
            Step::ReplicaOf { node, master } => {
                let (h, p) = host_port(master)?;
                if let Some(a) = auth() {
                    call(node, &["CONFIG", "SET", "masterauth", &a.password]).await?;
                }
                call(node, &["REPLICAOF", &h, &p]).await.map(drop)
            }
            Step::Monitor {
                sentinel,
                name,
                master,
                quorum,
            } => {
                let (h, p) = host_port(master)?;
                let q = quorum.to_string();
                self::sentinel(sentinel, &["SENTINEL", "MONITOR", name, &h, &p, &q]).await?;
                if let Some(a) = auth() {
                    self::sentinel(
                        sentinel,
                        &["SENTINEL", "SET", name, "auth-pass", &a.password],
                    )
                    .await?;
                }
                Ok(())
            }
        };
        r.with_context(|| format!("{s}"))?;
        println!("  done: {s}");
    }
    Ok(())
}

/// Whether node `n` is a master, or a replica whose link to its master is up.
async fn linked(n: &str) -> Result<bool> {
    let r = text(n, &["INFO", "replication"]).await?;
    Ok(info::field(&r, "role") != Some("slave")
        || info::field(&r, "master_link_status") == Some("up"))
}

async fn wait_cluster(nodes: &[String]) -> Result<()> {
    let all = nodes.len().to_string();
    wait_until(
        "every node to know every other and report cluster_state:ok",
        Duration::from_secs(60),
        || async {
            for n in nodes {
                let i = text(n, &["CLUSTER", "INFO"]).await?;
                if info::field(&i, "cluster_state") != Some("ok")
                    || info::field(&i, "cluster_known_nodes") != Some(all.as_str())
                    || !linked(n).await?
                {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await
}

async fn wait_group(nodes: &[String]) -> Result<()> {
    wait_until(
        "the replica's link to its master",
        Duration::from_secs(30),
        || async {
            for n in nodes {
                if !linked(n).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await
}
