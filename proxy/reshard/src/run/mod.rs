//! Carrying out a plan: the cluster checked ready (no failed master, every master agreeing on
//! the owners, no slot left open unless resuming), then each slot moved in turn with progress,
//! stopping between slots when asked.

pub(crate) mod marks;
pub mod migrate;
mod resume;
pub mod survey;

pub use migrate::{Batching, Carried, Ends};
pub use resume::{resume, Resumed};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hive_backup::progress::{Progress, Unit};
use serde::Serialize;

use crate::error::{ReshardError, Result};
use crate::plan::{Move, Sizes};
use crate::session::Session;
use crate::view::View;

/// Tunables of a run (the CLI's flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub batching: Batching,
    /// Keys at or over this many bytes are listed in the plan and moved last.
    pub big_key_bytes: u64,
    /// The share of the time the move works (0.01-1); it rests the rest, so clients keep
    /// most of the nodes' time.
    pub pace: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batching: Batching {
                list: 1000,
                keys: 100,
                bytes: 4 << 20,
                timeout_ms: 60_000,
            },
            big_key_bytes: 64 << 20,
            pace: 0.35,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub slots: u64,
    pub keys: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub keys_per_sec: f64,
    pub bytes_per_sec: f64,
    /// Stopped between slots on request (Ctrl-C); the rest of the plan did not run.
    pub stopped: bool,
}

/// Refuses to start on a cluster that is not settled; waits up to `settle` for gossip to
/// carry a just-finished move to every master first.
pub async fn ready(s: &mut Session, settle: Duration) -> Result<View> {
    let deadline = Instant::now() + settle;
    loop {
        let view = s.view().await?;
        let failed: Vec<&str> = view
            .nodes
            .iter()
            .filter(|n| n.master && n.failed && !n.slots.is_empty())
            .map(|n| n.id.as_str())
            .collect();
        let problem = if !failed.is_empty() {
            Some(format!(
                "master {} is failed: let the cluster fail over first",
                failed.join(", ")
            ))
        } else if !view.disagree.is_empty() {
            Some(format!(
                "masters {} see other slot owners than the rest",
                view.disagree.join(", ")
            ))
        } else if !view.down.is_empty() {
            Some(format!(
                "masters {} report cluster_state:fail",
                view.down.join(", ")
            ))
        } else if view.uncovered() > 0 {
            Some(format!("{} slots have no master", view.uncovered()))
        } else {
            None
        };
        match problem {
            None => return Ok(view),
            Some(p) if Instant::now() >= deadline => {
                return Err(ReshardError::Unsettled(format!(
                    "the cluster is not settled: {p}"
                )))
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Refuses a new plan while a slot is open: an interrupted move comes first.
pub fn no_open_slots(view: &View) -> Result<()> {
    let open = view.open_slots();
    if let Some((slot, _)) = open.iter().next() {
        return Err(ReshardError::Unsettled(format!(
            "{} slot(s) are open from an interrupted move (first: {slot}); run `hive reshard --resume`",
            open.len()
        )));
    }
    Ok(())
}

/// Slots opened and settled together: one nodes.conf write per group on each node instead
/// of one per slot, and one round trip per step.
const GROUP: usize = 32;

/// Moves the slots of `moves` in order, in groups of consecutive moves between the same two
/// masters. `stop` is checked between groups.
pub async fn execute(
    s: &mut Session,
    view: &View,
    moves: &[Move],
    sizes: &Sizes,
    opts: &Options,
    progress: &Progress,
    stop: &AtomicBool,
) -> Result<Outcome> {
    let total: u64 = moves.iter().map(|m| sizes.get(m.slot).keys).sum();
    let bar = progress.bar("moving", Some(total), Unit::Keys);
    let masters: Vec<String> = view.masters().iter().map(|m| m.addr.clone()).collect();
    let started = Instant::now();
    let mut out = Outcome::default();
    // Resting (1 / pace - 1) times as long as each group took leaves the nodes and the
    // proxy that share of their time for the clients.
    let rest = 1.0 / opts.pace.clamp(0.01, 1.0) - 1.0;
    for group in groups(moves, GROUP) {
        let t0 = Instant::now();
        if stop.load(Ordering::Relaxed) {
            out.stopped = true;
            break;
        }
        let ends = ends(view, group)?;
        let c = move_slots(s, &ends, sizes, opts, &masters, &mut |k, b| {
            bar.inc_keys_bytes(k, b)
        })
        .await?;
        out.slots += group.len() as u64;
        out.keys += c.keys;
        out.bytes += c.bytes;
        if rest > 0.0 {
            tokio::time::sleep(t0.elapsed().mul_f64(rest)).await;
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    let secs = out.seconds.max(1e-3);
    out.keys_per_sec = out.keys as f64 / secs;
    out.bytes_per_sec = out.bytes as f64 / secs;
    bar.finish(&format!("{} slots", out.slots));
    Ok(out)
}

/// Runs of at most GROUP consecutive moves with the same two ends.
fn groups(moves: &[Move], size: usize) -> Vec<&[Move]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=moves.len() {
        let split = i == moves.len()
            || i - start >= size
            || moves[i].from != moves[start].from
            || moves[i].to != moves[start].to;
        if split {
            out.push(&moves[start..i]);
            start = i;
        }
    }
    out
}

fn ends(view: &View, group: &[Move]) -> Result<Ends> {
    let m = &group[0];
    let addr = |id: &str| {
        view.node(id)
            .map(|n| n.addr.clone())
            .ok_or_else(|| ReshardError::Input(format!("slot {}: node {id} is not known", m.slot)))
    };
    Ok(Ends {
        slots: group.iter().map(|m| m.slot).collect(),
        src: addr(&m.from)?,
        src_id: m.from.clone(),
        dst: addr(&m.to)?,
        dst_id: m.to.clone(),
    })
}

/// Opens, drains and settles a group of slots; slots whose source gained keys before SETSLOT
/// NODE (it refuses then) are drained again.
pub async fn move_slots(
    s: &mut Session,
    e: &Ends,
    sizes: &Sizes,
    opts: &Options,
    masters: &[String],
    done: &mut dyn FnMut(u64, u64),
) -> Result<Carried> {
    let mut marked = migrate::open(s, e).await?;
    let mut carried = Carried::default();
    let group = e.slots.clone();
    let mut e = e.clone();
    for _ in 0..4 {
        let c = migrate::drain(s, &e, &opts.batching, sizes, marked.as_mut(), &mut *done).await?;
        carried.keys += c.keys;
        carried.bytes += c.bytes;
        let again = migrate::settle(s, &e, masters).await?;
        if again.is_empty() {
            if let Some(m) = marked.as_mut() {
                marks::clear(s, &e.src, m, &group).await?;
            }
            return Ok(carried);
        }
        e.slots = again;
    }
    Err(ReshardError::Move {
        slot: e.slots[0],
        why: format!("{} still holds keys after four rounds", e.src),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_on_ends_and_size() {
        let mv = |slot: u16, to: &str| Move {
            slot,
            from: "a".into(),
            to: to.into(),
        };
        let mut moves: Vec<Move> = (0..40).map(|s| mv(s, "b")).collect();
        moves.push(mv(40, "c"));
        let g: Vec<usize> = groups(&moves, GROUP).iter().map(|g| g.len()).collect();
        assert_eq!(g, vec![32, 8, 1]);
        assert!(groups(&[], GROUP).is_empty());
    }
}
