//! What a plan moves, as an operator reads it: runs of consecutive slots between the same two
//! masters, with their keys and bytes, and the big keys listed on their own.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Move;

/// Keys and bytes (MEMORY USAGE) in one slot, as surveyed before the move.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SlotSize {
    pub keys: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BigKey {
    pub slot: u16,
    /// Lossy UTF-8 for display; the move itself uses the key's bytes.
    pub key: String,
    pub bytes: u64,
}

/// The survey of the slots a plan moves.
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    pub slots: BTreeMap<u16, SlotSize>,
    pub big: Vec<BigKey>,
}

impl Sizes {
    pub fn get(&self, slot: u16) -> SlotSize {
        self.slots.get(&slot).copied().unwrap_or_default()
    }

    pub fn has_big(&self, slot: u16) -> bool {
        self.big.iter().any(|b| b.slot == slot)
    }

    /// Mean bytes per key of a slot (for batching keys the survey did not see).
    pub fn mean(&self, slot: u16) -> u64 {
        let s = self.get(slot);
        s.bytes.checked_div(s.keys).unwrap_or(0)
    }
}

/// A run of consecutive slots moved between the same two masters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub from: String,
    pub to: String,
    pub first: u16,
    pub last: u16,
    pub slots: u64,
    pub keys: u64,
    pub bytes: u64,
}

/// `moves` (any order) as runs, sorted by slot; `name` turns a node id into what to print.
pub fn rows(moves: &[Move], sizes: &Sizes, name: impl Fn(&str) -> String) -> Vec<Row> {
    let mut sorted: Vec<&Move> = moves.iter().collect();
    sorted.sort_by_key(|m| m.slot);
    let mut out: Vec<Row> = Vec::new();
    for m in sorted {
        let s = sizes.get(m.slot);
        let (from, to) = (name(&m.from), name(&m.to));
        match out.last_mut() {
            Some(r) if r.from == from && r.to == to && r.last + 1 == m.slot => {
                r.last = m.slot;
                r.slots += 1;
                r.keys += s.keys;
                r.bytes += s.bytes;
            }
            _ => out.push(Row {
                from,
                to,
                first: m.slot,
                last: m.slot,
                slots: 1,
                keys: s.keys,
                bytes: s.bytes,
            }),
        }
    }
    out
}
