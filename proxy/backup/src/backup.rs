//! `hive backup`: plans one snapshot per shard, cuts them (optionally at one moment, writes
//! paused on every master), moves them to the destination, writes the manifest, then applies
//! retention.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use hive_common::info;
use hive_upstream::conn::control::ControlConn;
use hive_upstream::facts::Snapshot;
use hive_upstream::watch::collect;
use hive_upstream::Backplane;

use crate::catalog::manifest::{self, Kind, Manifest};
use crate::catalog::retention::{self, Policy};
use crate::error::{BackupError, Result};
use crate::pipe::call;
use crate::progress::Progress;
use crate::snapshot::{self, Method, Plan};
use crate::store::Store;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tag: Option<String>,
    pub kind: Kind,
    pub consistent: bool,
    pub compress: bool,
    /// Snapshot a replica of each shard (keeps the fork off the masters).
    pub replica: bool,
    pub method: Method,
    pub retention: Policy,
    /// The clock, for tests of retention (`HIVE_BACKUP_NOW_MS`); else the system's.
    pub now_ms: Option<u64>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Takes a backup of the deployment behind `plane` into `store`.
pub async fn run(
    plane: &Arc<Backplane>,
    store: &Store,
    opts: &Options,
    progress: &Progress,
) -> Result<Manifest> {
    let now = opts.now_ms.unwrap_or_else(now_ms);
    let mut m = Manifest {
        id: manifest::new_id(now),
        tag: opts.tag.clone(),
        created_ms: now,
        created: manifest::rfc3339(now),
        mode: plane.config.mode.as_str().to_string(),
        state: "running".into(),
        kind: opts.kind,
        compressed: opts.compress,
        consistent: opts.consistent,
        hive_version: env!("CARGO_PKG_VERSION").into(),
        ..Manifest::default()
    };
    let plans = plan(plane, opts).await?;
    for p in &plans {
        progress.say(&format!(
            "{}: {} {} by {} ({})",
            p.name,
            p.role,
            p.node,
            if p.module { "module" } else { "network" },
            p.reason
        ));
    }
    store.put_manifest(&m).await?;
    match take(plane, store, opts, progress, &plans, &mut m).await {
        Ok(()) => {
            m.state = "complete".into();
            m.finished_ms = Some(now_ms());
            store.put_manifest(&m).await?;
        }
        Err(e) => {
            m.state = "failed".into();
            m.error = Some(e.to_string());
            m.finished_ms = Some(now_ms());
            let _ = store.put_manifest(&m).await;
            return Err(e);
        }
    }
    if opts.retention.is_set() {
        apply_retention(store, opts.retention, now, progress).await?;
    }
    Ok(m)
}

/// Shard `i`'s master answered the poll as a master, or why not (NOAUTH, refused, ...).
pub fn master_up(facts: &Snapshot, i: usize) -> Result<()> {
    if facts.master_up(i) {
        return Ok(());
    }
    let s = &facts.shards[i];
    let why = facts
        .node(&s.master)
        .and_then(|n| n.error.clone())
        .unwrap_or_else(|| "it does not answer as a master".into());
    Err(BackupError::node(
        &s.master,
        format!("shard {}'s master: {why}", s.name),
    ))
}

/// Which node of each shard, by which method.
async fn plan(plane: &Arc<Backplane>, opts: &Options) -> Result<Vec<Plan>> {
    let facts = collect::collect(plane).await;
    if facts.shards.is_empty() {
        return Err(BackupError::Target(
            "no shard found: is the deployment up and the config right?".into(),
        ));
    }
    let mut plans = Vec::new();
    for (i, s) in facts.shards.iter().enumerate() {
        master_up(&facts, i)?;
        let node = if opts.replica {
            s.replicas
                .iter()
                .filter_map(|r| facts.node(r))
                .find(|n| n.up && n.role == "replica" && n.master_link_up == Some(true))
                .ok_or_else(|| {
                    BackupError::Target(format!(
                        "--replica: shard {} has no replica up with its master link up",
                        s.name
                    ))
                })?
        } else {
            facts
                .node(&s.master)
                .ok_or_else(|| BackupError::node(&s.master, "not polled"))?
        };
        let mut p = Plan {
            index: i,
            name: s.name.clone(),
            node: node.addr.clone(),
            role: node.role.clone(),
            master: s.master.clone(),
            slots: s.slots.clone(),
            slot_count: s.slot_count,
            redis_version: node.redis_version.clone(),
            module_version: node.module_version.clone(),
            module: false,
            reason: String::new(),
            root: None,
        };
        snapshot::choose(plane, &mut p, opts.method).await?;
        if opts.kind.aof() && !p.module {
            return Err(BackupError::node(
                &p.node,
                format!(
                    "--type {}: the AOF is captured by hive-module on the node, with its backup directory reachable here ({})",
                    if opts.kind == Kind::Aof { "aof" } else { "both" },
                    p.reason
                ),
            ));
        }
        plans.push(p);
    }
    Ok(plans)
}

async fn take(
    plane: &Arc<Backplane>,
    store: &Store,
    opts: &Options,
    progress: &Progress,
    plans: &[Plan],
    m: &mut Manifest,
) -> Result<()> {
    let tag = opts.tag.clone().unwrap_or_else(|| m.id.clone());
    let aof = opts.kind.aof();
    let starts = join_all(plans.iter().map(|p| snapshot::start(plane, p, &tag, aof)));
    let started: Vec<_> = if opts.consistent {
        let (started, pause) = paused(plane, plans, starts).await?;
        progress.say(&format!(
            "writes paused on {} masters for {:.1} ms",
            plans.len(),
            pause.as_secs_f64() * 1e3
        ));
        m.pause_ms = Some((pause.as_secs_f64() * 1e4).round() / 10.0);
        started
    } else {
        starts.await
    };
    let started = started.into_iter().collect::<Result<Vec<_>>>()?;
    let id = m.id.clone();
    let dest = snapshot::Dest {
        store,
        backup_id: &id,
        compress: opts.compress,
        rdb: opts.kind.rdb(),
    };
    let moved = join_all(
        started
            .into_iter()
            .zip(plans)
            .map(|(s, p)| snapshot::transfer(plane, s, p, &dest, progress)),
    )
    .await;
    m.shards = moved.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(())
}

/// The longest writes may stay paused if `hive backup` dies between PAUSE and UNPAUSE.
const PAUSE_BOUND_MS: u64 = 10_000;

/// Runs `f` with writes paused on every master (`CLIENT PAUSE … WRITE`); with `--replica`,
/// first waits until each replica has every write its master has. The pause is released
/// whatever `f` or the wait returned, and is bounded by `PAUSE_BOUND_MS` even if this process
/// dies. Returns `f`'s result and how long writes were paused.
async fn paused<T>(
    plane: &Arc<Backplane>,
    plans: &[Plan],
    f: impl std::future::Future<Output = T>,
) -> Result<(T, Duration)> {
    let mut masters = Vec::new();
    for p in plans {
        masters.push(snapshot::connect(plane, &p.master).await?);
    }
    let t0 = Instant::now();
    let bound = PAUSE_BOUND_MS.to_string();
    let pauses = join_all(
        masters
            .iter_mut()
            .map(|c| async { call(c, &["CLIENT", "PAUSE", &bound, "WRITE"]).await }),
    )
    .await;
    // Redis lifts the pause itself after PAUSE_BOUND_MS: the cut must be made well before.
    let limit = Duration::from_millis(PAUSE_BOUND_MS - 2_000);
    let result = match pauses.into_iter().collect::<Result<Vec<_>>>() {
        Ok(_) => match caught_up(plane, plans, &mut masters).await {
            Ok(()) => tokio::time::timeout(limit.saturating_sub(t0.elapsed()), f)
                .await
                .map_err(|_| {
                    BackupError::Target(format!(
                        "--consistent: the snapshots did not all start within {} s of pausing writes (a node busy with another fork: BGSAVE or AOF rewrite?); writes are unpaused, nothing was kept",
                        limit.as_secs()
                    ))
                }),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let unpauses = join_all(
        masters
            .iter_mut()
            .map(|c| async { call(c, &["CLIENT", "UNPAUSE"]).await }),
    )
    .await;
    let pause = t0.elapsed();
    let value = result?;
    unpauses.into_iter().collect::<Result<Vec<_>>>()?;
    Ok((value, pause))
}

/// With writes paused, waits (up to 5 s) until each replica planned has its master's offset.
async fn caught_up(
    plane: &Arc<Backplane>,
    plans: &[Plan],
    masters: &mut [ControlConn],
) -> Result<()> {
    for (p, master) in plans.iter().zip(masters.iter_mut()) {
        if p.node == p.master {
            continue;
        }
        let want = offset(master, "master_repl_offset").await?;
        let mut replica = snapshot::connect(plane, &p.node).await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let at = offset(&mut replica, "slave_repl_offset").await?;
            if at >= want {
                break;
            }
            if Instant::now() > deadline {
                return Err(BackupError::node(
                    &p.node,
                    format!(
                        "--consistent --replica: at offset {at}, its master at {want} after 5 s"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

async fn offset(c: &mut ControlConn, field: &str) -> Result<i64> {
    let v = call(c, &["INFO", "replication"]).await?;
    Ok(info::field(v.as_str().unwrap_or_default(), field)
        .and_then(|o| o.parse().ok())
        .unwrap_or(-1))
}

/// Removes what the retention policy does not keep.
pub async fn apply_retention(
    store: &Store,
    policy: Policy,
    now: u64,
    progress: &Progress,
) -> Result<Vec<String>> {
    let mut entries = Vec::new();
    for id in store.ids().await? {
        let e = match store.manifest(&id).await {
            Ok(m) => retention::Entry {
                id,
                created_ms: m.created_ms,
                complete: m.is_complete(),
            },
            // A backup without a readable manifest never completed; its age is unknown, so
            // it counts as old (it is removed once a complete backup exists).
            Err(_) => retention::Entry {
                id,
                created_ms: 0,
                complete: false,
            },
        };
        entries.push(e);
    }
    let gone = retention::to_remove(&entries, policy, now);
    for id in &gone {
        store.remove(id).await?;
        progress.say(&format!("retention: removed {id}"));
    }
    Ok(gone)
}
