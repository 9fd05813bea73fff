//! Which slot goes where, decided without touching a node: `reshard` (N slots from one master
//! to another), `rebalance` (every master to its weighted share) and `drain` (a leaving
//! master's slots spread over the rest). Moves take a donor's highest slots, so ranges stay
//! whole; slots holding a big key go last.

mod rows;

pub use rows::{rows, BigKey, Row, Sizes, SlotSize};

use std::collections::BTreeMap;

/// One slot from one master to another (node ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub slot: u16,
    pub from: String,
    pub to: String,
}

/// A master as planning sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    /// Sorted.
    pub slots: Vec<u16>,
    pub weight: f64,
}

/// `n` of `from`'s slots (its highest) to `to`.
pub fn reshard(members: &[Member], n: usize, from: &str, to: &str) -> Result<Vec<Move>, String> {
    if from == to {
        return Err("--from and --to name the same master".into());
    }
    let src = members
        .iter()
        .find(|m| m.id == from)
        .ok_or("--from is not a master")?;
    if !members.iter().any(|m| m.id == to) {
        return Err("--to is not a master".into());
    }
    if n == 0 {
        return Err("--slots must be at least 1".into());
    }
    if n > src.slots.len() {
        return Err(format!(
            "--slots {n}: the source holds only {} slots",
            src.slots.len()
        ));
    }
    Ok(src.slots[src.slots.len() - n..]
        .iter()
        .map(|&slot| Move {
            slot,
            from: from.into(),
            to: to.into(),
        })
        .collect())
}

/// Each master's target slot count for its weight: shares of 16384 rounded down, the
/// remainder to the masters that hold the most already (fewer moves).
pub fn targets(members: &[Member]) -> Vec<usize> {
    let total: f64 = members.iter().map(|m| m.weight).sum();
    if total <= 0.0 {
        return vec![0; members.len()];
    }
    let mut t: Vec<usize> = members
        .iter()
        .map(|m| (16384.0 * m.weight / total).floor() as usize)
        .collect();
    let mut left = 16384 - t.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].weight > 0.0)
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(members[i].slots.len()));
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        t[i] += 1;
        left -= 1;
    }
    t
}

/// Moves that bring every master to its weighted share, or none when every master is within
/// `threshold_pct` of it (a master of weight 0 that holds slots is always off).
pub fn rebalance(members: &[Member], threshold_pct: f64) -> Vec<Move> {
    let want = targets(members);
    let off = members.iter().zip(&want).any(|(m, &w)| {
        let have = m.slots.len() as f64;
        if w == 0 {
            have > 0.0
        } else {
            ((have - w as f64).abs() / w as f64) * 100.0 > threshold_pct
        }
    });
    if !off {
        return Vec::new();
    }
    spread(members, &want)
}

/// Moves that empty `leaving` into the other masters, each brought toward its weighted share
/// of the whole; no other master gives a slot.
pub fn drain(members: &[Member], leaving: &str) -> Result<Vec<Move>, String> {
    if !members.iter().any(|m| m.id == leaving) {
        return Err("not a master of this cluster".into());
    }
    if members
        .iter()
        .filter(|m| m.id != leaving)
        .all(|m| m.weight <= 0.0)
    {
        return Err("the last master cannot be removed".into());
    }
    let staying: Vec<Member> = members
        .iter()
        .map(|m| Member {
            weight: if m.id == leaving { 0.0 } else { m.weight },
            ..m.clone()
        })
        .collect();
    let want = targets(&staying);
    // Only the leaving master gives: each staying master takes what it lacks of its share
    // (the rounding's spare slots to whoever lacks the most), in one whole run each.
    let src = staying.iter().position(|m| m.id == leaving).unwrap_or(0);
    let mut need: Vec<usize> = staying
        .iter()
        .zip(&want)
        .enumerate()
        .map(|(i, (m, &w))| {
            if i == src {
                0
            } else {
                w.saturating_sub(m.slots.len())
            }
        })
        .collect();
    let give = staying[src].slots.len();
    let mut short = give as i64 - need.iter().sum::<usize>() as i64;
    while short > 0 {
        // Masters over their share (others were imbalanced already) leave slots over.
        let i = (0..staying.len())
            .filter(|&i| i != src && staying[i].weight > 0.0)
            .min_by_key(|&i| (staying[i].slots.len() + need[i], i))
            .expect("a staying master exists");
        need[i] += 1;
        short -= 1;
    }
    while short < 0 {
        let i = (0..staying.len())
            .filter(|&i| need[i] > 0)
            .max_by_key(|&i| (staying[i].slots.len() + need[i], i))
            .expect("someone needs a slot");
        need[i] -= 1;
        short += 1;
    }
    let mut moves = Vec::new();
    let mut slots = staying[src].slots.iter();
    for (i, n) in need.iter().enumerate() {
        for &slot in slots.by_ref().take(*n) {
            moves.push(Move {
                slot,
                from: leaving.into(),
                to: staying[i].id.clone(),
            });
        }
    }
    Ok(moves)
}

/// Donors (over their share) give their highest slots to receivers (under it), largest
/// imbalance first, in whole runs.
fn spread(members: &[Member], want: &[usize]) -> Vec<Move> {
    let mut surplus: Vec<(usize, usize)> = Vec::new();
    let mut deficit: Vec<(usize, usize)> = Vec::new();
    for (i, (m, &w)) in members.iter().zip(want).enumerate() {
        let have = m.slots.len();
        if have > w {
            surplus.push((i, have - w));
        } else if have < w {
            deficit.push((i, w - have));
        }
    }
    surplus.sort_by_key(|&(i, n)| (std::cmp::Reverse(n), i));
    deficit.sort_by_key(|&(i, n)| (std::cmp::Reverse(n), i));
    let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
    let mut moves = Vec::new();
    let (mut d, mut r) = (0, 0);
    while d < surplus.len() && r < deficit.len() {
        let n = surplus[d].1.min(deficit[r].1);
        let (di, ri) = (surplus[d].0, deficit[r].0);
        let slots = &members[di].slots;
        let used = taken.entry(di).or_default();
        let end = slots.len() - *used;
        for &slot in &slots[end - n..end] {
            moves.push(Move {
                slot,
                from: members[di].id.clone(),
                to: members[ri].id.clone(),
            });
        }
        *used += n;
        surplus[d].1 -= n;
        deficit[r].1 -= n;
        if surplus[d].1 == 0 {
            d += 1;
        }
        if deficit[r].1 == 0 {
            r += 1;
        }
    }
    moves.sort_by_key(|m| m.slot);
    moves
}

/// The moves in the order they run: slots holding a big key last.
pub fn order(mut moves: Vec<Move>, sizes: &Sizes) -> Vec<Move> {
    moves.sort_by_key(|m| (sizes.has_big(m.slot), m.slot));
    moves
}

#[cfg(test)]
mod tests;
