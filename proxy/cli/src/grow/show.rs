//! What the growing commands print: the plan as runs of slots with keys and bytes, big keys,
//! what a resume finished, and the result; one JSON document with `--json`.

use anyhow::Result;
use comfy_table::{presets, Table};
use hive_reshard::plan::{rows, BigKey, Move, Row, Sizes};
use hive_reshard::run::{Outcome, Resumed};
use serde::Serialize;

use super::{resumed_line, MoveFlags};
use crate::inspect::view::bytes;

#[derive(Serialize, Default)]
pub struct PlanOut {
    pub rows: Vec<Row>,
    pub slots: u64,
    pub keys: u64,
    pub bytes: u64,
    pub big_keys: Vec<BigKey>,
}

#[derive(Serialize)]
pub struct Report {
    pub command: &'static str,
    pub dry_run: bool,
    /// Open slots found (`--resume --dry-run`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<u16>,
    pub resumed: Option<Resumed>,
    pub plan: PlanOut,
    pub outcome: Option<Outcome>,
    /// Sentinel/static modes: the slot map's epoch when the command ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Nodes `remove-shard` took out of the cluster.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    #[serde(skip)]
    json: bool,
}

impl Report {
    pub fn new(command: &'static str, flags: &MoveFlags) -> Report {
        Report {
            command,
            dry_run: flags.dry_run,
            open: Vec::new(),
            resumed: None,
            plan: PlanOut::default(),
            outcome: None,
            epoch: None,
            removed: Vec::new(),
            json: flags.json,
        }
    }

    /// The plan's rows; `name` turns a node id or shard name into what to print.
    pub fn set_plan(&mut self, moves: &[Move], sizes: &Sizes, name: impl Fn(&str) -> String) {
        let r = rows(moves, sizes, name);
        self.plan = PlanOut {
            slots: r.iter().map(|r| r.slots).sum(),
            keys: r.iter().map(|r| r.keys).sum(),
            bytes: r.iter().map(|r| r.bytes).sum(),
            rows: r,
            big_keys: sizes.big.clone(),
        };
    }

    pub fn plan_slots(&self) -> u64 {
        self.plan.slots
    }

    pub fn print_plan(&self) {
        if let Some(r) = &self.resumed {
            println!("{}", resumed_line(r));
        }
        if !self.open.is_empty() {
            println!(
                "{} open slot(s) to finish: {:?}",
                self.open.len(),
                &self.open[..self.open.len().min(20)]
            );
        }
        if self.plan.rows.is_empty() {
            println!("plan: nothing to move");
            return;
        }
        println!(
            "{}plan: {} slots, {} keys, {} (MEMORY USAGE)",
            if self.dry_run { "dry run, " } else { "" },
            self.plan.slots,
            self.plan.keys,
            bytes(self.plan.bytes)
        );
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        t.set_header(["FROM", "TO", "SLOTS", "COUNT", "KEYS", "BYTES"]);
        for r in &self.plan.rows {
            let range = if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.last)
            };
            t.add_row([
                r.from.clone(),
                r.to.clone(),
                range,
                r.slots.to_string(),
                r.keys.to_string(),
                bytes(r.bytes),
            ]);
        }
        println!("{t}");
        if !self.plan.big_keys.is_empty() {
            println!(
                "big keys (their slots move last; each key blocks both nodes while it moves):"
            );
            for b in &self.plan.big_keys {
                println!("  slot {} {} {}", b.slot, b.key, bytes(b.bytes));
            }
        }
    }

    pub fn finish(&self) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        if let Some(o) = &self.outcome {
            println!(
                "moved {} slots, {} keys, {} in {:.1} s ({:.0} keys/s, {}/s){}",
                o.slots,
                o.keys,
                bytes(o.bytes),
                o.seconds,
                o.keys_per_sec,
                bytes(o.bytes_per_sec as u64),
                if o.stopped {
                    "; stopped on request: run the command again for the rest"
                } else {
                    ""
                }
            );
        }
        if !self.removed.is_empty() {
            println!(
                "removed {} from the deployment (they hold no slot; they can be stopped)",
                self.removed.join(", ")
            );
        }
        if let Some(e) = self.epoch {
            println!("slot map epoch {e}");
        }
        Ok(())
    }
}
