//! The growing commands in sentinel and static modes, over `hive_reshard::standalone`: the slot
//! map on the masters (seeded from `hive.toml` by the first change), handovers guarded by
//! hive-module, and `add-shard`/`remove-shard` as map changes (with Sentinel told to monitor or
//! forget the group).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Result};
use bytes::Bytes;
use hive_backup::progress::{Progress, Unit};
use hive_reshard::plan::{self, Move, Sizes};
use hive_reshard::run::{Outcome, Resumed};
use hive_reshard::session::Session;
use hive_reshard::standalone::{self, handover::hand_over, maps, survey::survey, Deployment};
use hive_reshard::ReshardError;

use super::show::Report;
use super::{stop_on_ctrl_c, MoveFlags};

/// Moves grouped by their two ends, in plan order.
fn pairs(moves: &[Move]) -> Vec<(String, String, Vec<u16>)> {
    let mut out: Vec<(String, String, Vec<u16>)> = Vec::new();
    for m in moves {
        match out.iter_mut().find(|(f, t, _)| *f == m.from && *t == m.to) {
            Some(p) => p.2.push(m.slot),
            None => out.push((m.from.clone(), m.to.clone(), vec![m.slot])),
        }
    }
    out
}

fn label(d: &Deployment, name: &str) -> String {
    match d.addrs.get(name) {
        Some(a) if a != name => format!("{name} ({a})"),
        _ => name.to_string(),
    }
}

/// Finishes (or, with `--dry-run`, lists) the handovers an interrupted run left.
async fn resume(
    s: &mut Session,
    d: &mut Deployment,
    flags: &MoveFlags,
    report: &mut Report,
) -> Result<()> {
    let open = maps::moving(&d.map);
    if open.is_empty() {
        return Ok(());
    }
    if !flags.resume {
        let n: usize = open.iter().map(|(_, _, s)| s.len()).sum();
        return Err(ReshardError::Unsettled(format!(
            "{n} slot(s) are moving from an interrupted run (first: {}); run `hive reshard --resume`",
            open[0].2[0]
        ))
        .into());
    }
    if flags.dry_run {
        report.open = open.iter().flat_map(|(_, _, s)| s.clone()).collect();
        return Ok(());
    }
    let opts = flags.options()?;
    let mut r = Resumed::default();
    for (from, to, slots) in open {
        let c = hand_over(s, d, &from, &to, &slots, None, &opts, &mut |_, _| {}).await?;
        r.slots.extend(slots);
        r.keys += c.keys;
        r.bytes += c.bytes;
    }
    report.resumed = Some(r);
    Ok(())
}

/// Resume or refuse interrupted handovers, plan, survey, print, move.
pub async fn plan_and_move(
    s: &mut Session,
    flags: &MoveFlags,
    report: &mut Report,
    plan_for: impl FnOnce(&Deployment) -> Result<Vec<Move>, String>,
) -> Result<Deployment> {
    let opts = flags.options()?;
    let progress = Progress::new(flags.json);
    let mut d = standalone::load(s).await?;
    resume(s, &mut d, flags, report).await?;
    let moves = plan_for(&d).map_err(ReshardError::Input)?;
    let mut sizes = Sizes::default();
    let mut known: Vec<BTreeMap<u16, Vec<(Bytes, u64)>>> = Vec::new();
    let grouped = pairs(&moves);
    for (from, _, slots) in &grouped {
        let set: BTreeSet<u16> = slots.iter().copied().collect();
        let addr = d.addr(from)?;
        known.push(survey(s, &addr, &set, opts.big_key_bytes, &mut sizes).await?);
    }
    let moves = plan::order(moves, &sizes);
    report.set_plan(&moves, &sizes, |n| label(&d, n));
    if !flags.json {
        report.print_plan();
    }
    if flags.dry_run || moves.is_empty() {
        return Ok(d);
    }
    standalone::seed(s, &mut d).await?;
    let stop = stop_on_ctrl_c(&progress);
    let total = sizes.slots.values().map(|z| z.keys).sum();
    let bar = progress.bar("moving", Some(total), Unit::Keys);
    let started = Instant::now();
    let mut out = Outcome::default();
    for ((from, to, slots), keys) in grouped.into_iter().zip(known) {
        if stop.load(Ordering::Relaxed) {
            out.stopped = true;
            break;
        }
        // Big keys last within the pair too (the survey order is by slot).
        let c = hand_over(
            s,
            &mut d,
            &from,
            &to,
            &slots,
            Some(keys),
            &opts,
            &mut |k, b| bar.inc_keys_bytes(k, b),
        )
        .await?;
        out.slots += slots.len() as u64;
        out.keys += c.keys;
        out.bytes += c.bytes;
    }
    out.seconds = started.elapsed().as_secs_f64();
    let secs = out.seconds.max(1e-3);
    out.keys_per_sec = out.keys as f64 / secs;
    out.bytes_per_sec = out.bytes as f64 / secs;
    bar.finish(&format!("{} slots", out.slots));
    report.outcome = Some(out);
    Ok(d)
}

/// Checks a joining master (and replicas): reachable, hive-module loaded, empty, not in the map.
async fn check_joiner(s: &mut Session, d: &Deployment, addr: &str, master: bool) -> Result<()> {
    if d.addrs.values().any(|a| a == addr) {
        bail!("{addr} is already a master of this deployment; nothing was changed");
    }
    standalone::node_state(s, addr).await?;
    let role = s.call(addr, &["ROLE"]).await?;
    let role = role
        .as_array()
        .and_then(|a| a.first())
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .replace("slave", "replica");
    if master && role != "master" {
        bail!("{addr} is a {role}, not a master; nothing was changed");
    }
    let keys = s.int(addr, &["DBSIZE"]).await?;
    if master && keys > 0 {
        bail!("{addr} holds {keys} keys; a new master must be empty; nothing was changed");
    }
    Ok(())
}

/// `add-shard` in static mode (the master's address names the shard) or sentinel mode (`name`,
/// monitored by every sentinel from then on).
pub async fn add_shard(
    s: &mut Session,
    master: &str,
    replicas: &[String],
    name: Option<&str>,
    dry_run: bool,
) -> Result<(String, u64)> {
    let mut d = standalone::load(s).await?;
    if !maps::moving(&d.map).is_empty() {
        bail!("slots are moving from an interrupted run; run `hive reshard --resume` first; nothing was changed");
    }
    let shard = match (&d.mode, name) {
        (hive_upstream::config::Mode::Sentinel, Some(n)) => n.to_string(),
        (hive_upstream::config::Mode::Sentinel, None) => {
            bail!("sentinel mode: give the new group's Sentinel name with --name; nothing was changed")
        }
        (_, Some(_)) => {
            bail!("--name is for sentinel mode; a static shard is named by its master's address")
        }
        (_, None) => master.to_string(),
    };
    check_joiner(s, &d, master, true).await?;
    for r in replicas {
        check_joiner(s, &d, r, false).await?;
    }
    if d.map.shards.iter().any(|x| x.name == shard) {
        bail!("{shard} is already a shard of this deployment; nothing was changed");
    }
    if dry_run {
        return Ok((shard, d.map.epoch));
    }
    standalone::seed(s, &mut d).await?;
    for r in replicas {
        let (h, p) = hive_common::addr::split(master)
            .ok_or_else(|| anyhow::anyhow!("{master}: not a host:port"))?;
        s.call(r, &["REPLICAOF", h.trim_matches(['[', ']']), p])
            .await?;
    }
    if matches!(d.mode, hive_upstream::config::Mode::Sentinel) {
        super::sentinels::monitor(s, &d, &shard, master).await?;
    }
    let static_replicas: Vec<String> = if matches!(d.mode, hive_upstream::config::Mode::Static) {
        replicas.to_vec()
    } else {
        Vec::new()
    };
    let next = maps::with_shard(&d.map, &shard, &static_replicas);
    d.addrs.insert(shard.clone(), master.to_string());
    standalone::write_map(s, &mut d, next, &[]).await?;
    Ok((shard, d.map.epoch))
}

/// After a drain: the shard leaves the map (and Sentinel forgets the group).
pub async fn forget_shard(s: &mut Session, d: &mut Deployment, shard: &str) -> Result<Vec<String>> {
    if d.members(&[])
        .iter()
        .any(|m| m.id == shard && !m.slots.is_empty())
    {
        bail!("{shard} still owns slots; it stays in the map");
    }
    let addr = d.addr(shard)?;
    let next = maps::without_shard(&d.map, shard);
    standalone::write_map(s, d, next, std::slice::from_ref(&addr)).await?;
    d.addrs.remove(shard);
    if matches!(d.mode, hive_upstream::config::Mode::Sentinel) {
        super::sentinels::forget(s, shard).await?;
    }
    Ok(vec![addr])
}
