//! Finishing slots an interrupted move left open (Ctrl-C, a killed `hive`, a restarted or
//! failed-over node). For each open slot: the target is the node importing it (or the one the
//! source names), the source the node migrating it (or, when that one failed over, the slot's
//! owner now); the keys still on the source move, then every master is told the target owns
//! the slot. Marks on any other node are cleared. A replica promoted mid-move first settles
//! the keys it held back (`marks::settle_suspects`), and hive-module's marks end with the move.

use serde::Serialize;

use super::{marks, move_slots, Ends, Options};
use crate::error::{ReshardError, Result};
use crate::plan::Sizes;
use crate::session::Session;
use crate::view::{Open, View};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Resumed {
    pub slots: Vec<u16>,
    pub keys: u64,
    pub bytes: u64,
    /// Copies a replica promoted mid-move held of keys its old master had handed over, dropped
    /// because the target holds the live one.
    pub stale_copies: u64,
}

pub async fn resume(s: &mut Session, view: &View, opts: &Options) -> Result<Resumed> {
    let masters: Vec<String> = view.masters().iter().map(|m| m.addr.clone()).collect();
    let up = |id: &str| view.node(id).filter(|n| !n.failed && n.master);
    let mut out = Resumed::default();
    for m in &masters {
        if let Some(held) = marks::held(s, m).await? {
            if !held.suspects.is_empty() {
                out.stale_copies += marks::settle_suspects(s, m, &held).await? as u64;
            }
        }
    }
    for (slot, marks) in view.open_slots() {
        let dst = marks
            .iter()
            .find_map(|(id, o)| matches!(o, Open::Importing { .. }).then_some(id.clone()))
            .or_else(|| {
                marks.iter().find_map(|(_, o)| match o {
                    Open::Migrating { to, .. } => Some(to.clone()),
                    _ => None,
                })
            })
            .expect("an open slot has a mark");
        let Some(dst_node) = up(&dst) else {
            return Err(ReshardError::Move {
                slot,
                why: format!(
                    "its target {dst} is failed or gone; bring it back (or fail it over) first"
                ),
            });
        };
        let owner = view.owner(slot).map(|n| n.id.clone());
        let src = marks
            .iter()
            .find_map(|(id, o)| {
                (matches!(o, Open::Migrating { .. }) && up(id).is_some()).then_some(id.clone())
            })
            .or_else(|| owner.filter(|o| *o != dst && up(o).is_some()));
        let mut e = Ends {
            slots: vec![slot],
            src_id: String::new(),
            src: String::new(),
            dst_id: dst.clone(),
            dst: dst_node.addr.clone(),
        };
        let slot_s = slot.to_string();
        match src {
            Some(src) => {
                let node = up(&src).expect("checked above");
                e.src_id = src.clone();
                e.src = node.addr.clone();
                if view.claims(&src, slot) {
                    let c = move_slots(s, &e, &Sizes::default(), opts, &masters, &mut |_, _| {})
                        .await?;
                    out.keys += c.keys;
                    out.bytes += c.bytes;
                } else {
                    // The source gave the slot away already; it holds no keys of it.
                    super::migrate::settle(s, &e, &masters).await?;
                }
            }
            None => {
                // The target owns it already: settle the rest of the masters on it.
                for m in &masters {
                    let _ = s
                        .call(m, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &dst])
                        .await;
                }
            }
        }
        for (id, _) in &marks {
            if *id != e.src_id && *id != dst {
                if let Some(n) = up(id) {
                    s.call(&n.addr, &["CLUSTER", "SETSLOT", &slot_s, "STABLE"])
                        .await?;
                }
            }
        }
        out.slots.push(slot);
    }
    // Every open slot is settled: a mark left on a module (a source stopped between its
    // settling and its clearing) no longer stands for anything.
    for m in &masters {
        if marks::held(s, m)
            .await?
            .is_some_and(|h| !h.handed.is_empty())
        {
            s.call(m, &["HIVE.SETSLOTS", "STABLE"]).await?;
        }
    }
    Ok(out)
}
