//! `hive add-shard`, `remove-shard`, `rebalance` and `reshard`: growing and shrinking a live
//! deployment over the `hive-reshard` crate. Each prints its plan (slots, keys and bytes per
//! move; `--dry-run` stops there), shows progress on stderr, and prints what it did as a
//! table or `--json`.

mod args;
mod sentinels;
mod show;
mod standalone;

pub use args::{AddShardArgs, MoveFlags, RebalanceArgs, RemoveShardArgs, ReshardArgs};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use hive_backup::progress::Progress;
use hive_proxy::config::Mode;
use hive_reshard::plan::{self, Member, Move};
use hive_reshard::run::{self, survey::survey, Outcome, Resumed};
use hive_reshard::session::Session;
use hive_reshard::view::View;
use hive_reshard::{members, ReshardError};

use crate::target::Target;
use show::Report;

/// How long a just-finished move may take to reach every master's view.
const SETTLE: Duration = Duration::from_secs(10);
/// How long nodes may take to meet, attach or forget.
const GOSSIP: Duration = Duration::from_secs(60);

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A session on the deployment `target` names.
async fn session(target: &Target, flags: Option<&MoveFlags>) -> Result<Session> {
    let plane = target.connect().await?;
    let migrate_ms = match flags {
        Some(f) => f.options()?.batching.timeout_ms,
        None => 0,
    };
    Ok(Session::new(
        plane,
        Duration::from_millis(migrate_ms) + Duration::from_secs(10),
    ))
}

fn members_of(view: &View, weights: &[(String, f64)]) -> Vec<Member> {
    view.masters()
        .iter()
        .map(|m| Member {
            id: m.id.clone(),
            slots: m.slots.clone(),
            weight: weights
                .iter()
                .find(|(id, _)| *id == m.id)
                .map_or(1.0, |(_, w)| *w),
        })
        .collect()
}

/// Sets the flag on Ctrl-C: the run stops after the slot it is moving.
fn stop_on_ctrl_c(progress: &Progress) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let p = progress.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            p.say("stopping after the slot being moved (the plan's rest does not run)");
            s.store(true, Ordering::Relaxed);
        }
    });
    stop
}

/// The shared path of every moving command: resume or refuse open slots, plan, survey,
/// print, move.
async fn plan_and_move(
    s: &mut Session,
    flags: &MoveFlags,
    report: &mut Report,
    plan_for: impl FnOnce(&View) -> Result<Vec<Move>, String>,
) -> Result<Option<View>> {
    let opts = flags.options()?;
    let progress = Progress::new(flags.json);
    let mut view = run::ready(s, SETTLE).await?;
    if flags.resume {
        if flags.dry_run {
            report.open = view.open_slots().keys().copied().collect();
        } else {
            report.resumed = Some(run::resume(s, &view, &opts).await?);
            view = run::ready(s, SETTLE).await?;
        }
    } else {
        run::no_open_slots(&view)?;
    }
    let moves = plan_for(&view).map_err(ReshardError::Input)?;
    let sizes = survey(s, &view, &moves, opts.big_key_bytes).await?;
    let moves = plan::order(moves, &sizes);
    report.set_plan(&moves, &sizes, |id| {
        view.node(id)
            .map_or_else(|| id.to_string(), |n| n.addr.clone())
    });
    if !flags.json {
        report.print_plan();
    }
    if flags.dry_run || moves.is_empty() {
        return Ok(None);
    }
    let stop = stop_on_ctrl_c(&progress);
    report.outcome = Some(run::execute(s, &view, &moves, &sizes, &opts, &progress, &stop).await?);
    Ok(Some(view))
}

fn clustered(s: &Session) -> bool {
    s.plane().config.mode == Mode::Cluster
}

pub fn run_reshard(a: ReshardArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut s = session(&a.target, Some(&a.flags)).await?;
        let mut report = Report::new("reshard", &a.flags);
        let only_resume = a.slots.is_none() && a.flags.resume;
        if !only_resume && (a.slots.is_none() || a.from.is_none() || a.to.is_none()) {
            bail!("give --slots N --from NODE --to NODE (or --resume alone to finish open slots)");
        }
        if !clustered(&s) {
            let d = standalone::plan_and_move(&mut s, &a.flags, &mut report, |d| {
                if only_resume {
                    return Ok(Vec::new());
                }
                let from = d.find(a.from.as_deref().unwrap_or_default())?;
                let to = d.find(a.to.as_deref().unwrap_or_default())?;
                plan::reshard(&d.members(&[]), a.slots.unwrap_or(0), &from, &to)
            })
            .await?;
            report.epoch = Some(d.map.epoch);
            return report.finish();
        }
        plan_and_move(&mut s, &a.flags, &mut report, |view| {
            if only_resume {
                return Ok(Vec::new());
            }
            let from = view.find(a.from.as_deref().unwrap_or_default())?.id.clone();
            let to = view.find(a.to.as_deref().unwrap_or_default())?.id.clone();
            plan::reshard(&members_of(view, &[]), a.slots.unwrap_or(0), &from, &to)
        })
        .await?;
        report.finish()
    })
}

pub fn run_rebalance(a: RebalanceArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut s = session(&a.target, Some(&a.flags)).await?;
        let mut report = Report::new("rebalance", &a.flags);
        let weights = a.weights()?;
        if !clustered(&s) {
            let d = standalone::plan_and_move(&mut s, &a.flags, &mut report, |d| {
                let mut w = Vec::new();
                for (node, weight) in &weights {
                    w.push((d.find(node)?, *weight));
                }
                let m = d.members(&w);
                if m.iter().all(|m| m.weight <= 0.0) {
                    return Err("--weight: every master has weight 0".into());
                }
                Ok(plan::rebalance(&m, a.threshold))
            })
            .await?;
            report.epoch = Some(d.map.epoch);
            return report.finish();
        }
        plan_and_move(&mut s, &a.flags, &mut report, |view| {
            let mut w = Vec::new();
            for (node, weight) in &weights {
                let n = view.find(node)?;
                if !n.master {
                    return Err(format!("--weight {node}: not a master"));
                }
                w.push((n.id.clone(), *weight));
            }
            let m = members_of(view, &w);
            if m.iter().all(|m| m.weight <= 0.0) {
                return Err("--weight: every master has weight 0".into());
            }
            Ok(plan::rebalance(&m, a.threshold))
        })
        .await?;
        report.finish()
    })
}

pub fn run_remove_shard(a: RemoveShardArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut s = session(&a.target, Some(&a.flags)).await?;
        let mut report = Report::new("remove-shard", &a.flags);
        if !clustered(&s) {
            let mut leaving = String::new();
            let mut d = standalone::plan_and_move(&mut s, &a.flags, &mut report, |d| {
                leaving = d.find(&a.master)?;
                plan::drain(&d.members(&[]), &leaving).map_err(|e| format!("{}: {e}", a.master))
            })
            .await?;
            let stopped = report.outcome.as_ref().is_some_and(|o: &Outcome| o.stopped);
            if !a.flags.dry_run && !stopped {
                report.removed = standalone::forget_shard(&mut s, &mut d, &leaving).await?;
            }
            report.epoch = Some(d.map.epoch);
            return report.finish();
        }
        let mut leaving = None;
        let moved = plan_and_move(&mut s, &a.flags, &mut report, |view| {
            let n = view.find(&a.master)?;
            if !n.master {
                return Err(format!("{}: a replica; name its master", a.master));
            }
            leaving = Some(members::shard_of(view, &n.id));
            plan::drain(&members_of(view, &[]), &n.id).map_err(|e| format!("{}: {e}", a.master))
        })
        .await?;
        let stopped = report.outcome.as_ref().is_some_and(|o: &Outcome| o.stopped);
        let nothing_to_move = report.plan_slots() == 0;
        if !a.flags.dry_run && !stopped && (moved.is_some() || nothing_to_move) {
            let view = run::ready(&mut s, SETTLE).await?;
            let shard = leaving.expect("the plan named the leaving master");
            report.removed = members::forget_shard(&mut s, &view, &shard, GOSSIP).await?;
        }
        report.finish()
    })
}

pub fn run_add_shard(a: AddShardArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut s = session(&a.target, None).await?;
        if !clustered(&s) {
            let (shard, epoch) = standalone::add_shard(
                &mut s,
                &a.master,
                &a.replicas,
                a.name.as_deref(),
                a.dry_run,
            )
            .await?;
            let what = if a.dry_run { "dry run: may add" } else { "added" };
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"dry_run": a.dry_run, "shard": shard, "master": a.master, "replicas": a.replicas, "epoch": epoch})
                );
            } else {
                println!(
                    "{what} shard {shard} (master {}, {} replica(s)) at slot map epoch {epoch}; it holds no slots: run `hive rebalance` to give it its share",
                    a.master,
                    a.replicas.len()
                );
            }
            return Ok(());
        }
        if a.name.is_some() {
            bail!("--name is for sentinel mode (a cluster names its nodes itself)");
        }
        let view = run::ready(&mut s, SETTLE).await?;
        if a.dry_run {
            members::check_joiners(&mut s, &view, &a.master, &a.replicas).await?;
            println!(
                "dry run: {} may join (empty, in no cluster); CLUSTER MEET {} and {} replica(s), then CLUSTER REPLICATE; no slots move until `hive rebalance`",
                a.master,
                a.master,
                a.replicas.len()
            );
            return Ok(());
        }
        let joined = members::add_shard(&mut s, &view, &a.master, &a.replicas, GOSSIP).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&joined)?);
        } else {
            println!(
                "added master {} ({}) with {} replica(s); it holds no slots: run `hive rebalance` to give it its share",
                joined.master,
                &joined.master_id[..8.min(joined.master_id.len())],
                joined.replicas.len()
            );
        }
        Ok(())
    })
}

/// What `--resume` did, for the report.
pub fn resumed_line(r: &Resumed) -> String {
    format!(
        "resumed {} open slot(s), {} keys moved",
        r.slots.len(),
        r.keys
    )
}
