//! Retention: which backups to keep under `--keep-hourly N --keep-daily N --keep-weekly N`.
//! A complete backup is kept if it is the newest of its hour, day or week among the newest N
//! such periods that hold one; the newest complete backup is always kept, and backups that
//! never completed are removed once a newer one has. Pure: the clock is a parameter.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub hourly: usize,
    pub daily: usize,
    pub weekly: usize,
}

impl Policy {
    /// Whether any count was given (no counts: nothing is ever removed).
    pub fn is_set(&self) -> bool {
        self.hourly + self.daily + self.weekly > 0
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub created_ms: u64,
    pub complete: bool,
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
/// 1970-01-01 was a Thursday: shifting by three days starts every week on a Monday (UTC).
const WEEK_SHIFT_MS: u64 = 3 * DAY_MS;

/// The ids to remove. Backups still running (not complete, newer than every complete one,
/// or younger than a day) are never removed.
pub fn to_remove(entries: &[Entry], policy: Policy, now_ms: u64) -> Vec<String> {
    if !policy.is_set() {
        return Vec::new();
    }
    let mut good: Vec<&Entry> = entries.iter().filter(|e| e.complete).collect();
    good.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
    let mut keep: HashSet<&str> = HashSet::new();
    if let Some(newest) = good.first() {
        keep.insert(&newest.id);
    }
    let periods = [
        (policy.hourly, HOUR_MS, 0),
        (policy.daily, DAY_MS, 0),
        (policy.weekly, 7 * DAY_MS, WEEK_SHIFT_MS),
    ];
    for (count, len, shift) in periods {
        let mut seen = HashSet::new();
        for e in &good {
            if seen.len() >= count {
                break;
            }
            if seen.insert((e.created_ms + shift) / len) {
                keep.insert(&e.id);
            }
        }
    }
    let newest_good = good.first().map(|e| e.created_ms);
    let mut out: Vec<String> = entries
        .iter()
        .filter(|e| !keep.contains(e.id.as_str()))
        .filter(|e| {
            e.complete
                || (newest_good.is_some_and(|t| e.created_ms < t)
                    && now_ms.saturating_sub(e.created_ms) > DAY_MS)
        })
        .map(|e| e.id.clone())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_996_800_000; // Monday 2026-11-30 00:00 UTC

    fn hourly_week() -> Vec<Entry> {
        // One backup at 5 past every hour for 7 days, starting on a Monday.
        (0..168)
            .map(|h| Entry {
                id: format!("b{h:03}"),
                created_ms: T0 + h * HOUR_MS + 5 * 60_000,
                complete: true,
            })
            .collect()
    }

    fn kept(entries: &[Entry], p: Policy, now: u64) -> Vec<String> {
        let gone: HashSet<String> = to_remove(entries, p, now).into_iter().collect();
        entries
            .iter()
            .map(|e| e.id.clone())
            .filter(|id| !gone.contains(id))
            .collect()
    }

    #[test]
    fn retention_t0_is_a_monday_midnight() {
        let t = chrono::DateTime::from_timestamp_millis(T0 as i64).unwrap();
        assert_eq!(t.format("%A %H:%M").to_string(), "Monday 00:00");
    }

    #[test]
    fn retention_over_a_simulated_week_of_hourly_backups() {
        let week = hourly_week();
        let now = T0 + 168 * HOUR_MS;
        let p = Policy {
            hourly: 3,
            daily: 7,
            weekly: 4,
        };
        // The newest three hours (165, 166, 167), then the newest of each of the 7 days (the
        // 23:05 backups, day 6's being b167), and the newest of the one week (b167).
        let mut want: Vec<String> = ["b165", "b166", "b167"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for d in 0..6 {
            want.push(format!("b{:03}", d * 24 + 23));
        }
        want.sort();
        assert_eq!(kept(&week, p, now), want);
        // Hour by hour: after each new backup, the kept set is exactly the policy's: the
        // newest 3, plus the last backup of each earlier day (at most 6 of them), counted once
        // when the previous day's last is also among the newest 3.
        for n in 1..=week.len() {
            let now = week[n - 1].created_ms + 1;
            let k = kept(&week[..n], p, now);
            let days = (n - 1) / 24 + 1;
            let today = n - (days - 1) * 24;
            let overlap = usize::from(days > 1 && today < 3);
            assert_eq!(
                k.len(),
                n.min(3) + days.min(7) - 1 - overlap,
                "after {n} backups: {k:?}"
            );
            assert!(k.contains(&week[n - 1].id), "the newest is always kept");
        }
    }

    #[test]
    fn retention_weekly_keeps_one_per_monday_week() {
        let entries: Vec<Entry> = (0..30)
            .map(|d| Entry {
                id: format!("d{d:02}"),
                created_ms: T0 + d * DAY_MS + HOUR_MS,
                complete: true,
            })
            .collect();
        let p = Policy {
            weekly: 3,
            ..Default::default()
        };
        // Days 0-6 are week 1 (newest d06), 7-13 week 2, ..., 28-29 week 5.
        assert_eq!(kept(&entries, p, T0 + 31 * DAY_MS), ["d20", "d27", "d29"]);
    }

    #[test]
    fn retention_never_removes_the_only_good_backup() {
        let entries = vec![
            Entry {
                id: "a".into(),
                created_ms: T0,
                complete: true,
            },
            Entry {
                id: "b".into(),
                created_ms: T0 + 3 * DAY_MS,
                complete: false,
            },
        ];
        // No period count lets "a" in (hourly 1 is taken by... nothing newer is complete).
        let p = Policy {
            hourly: 1,
            ..Default::default()
        };
        assert_eq!(kept(&entries, p, T0 + 10 * DAY_MS), ["a", "b"]);
    }

    #[test]
    fn retention_removes_failed_backups_older_than_a_good_one() {
        let e = |id: &str, h: u64, complete| Entry {
            id: id.into(),
            created_ms: T0 + h * HOUR_MS,
            complete,
        };
        let entries = vec![e("f1", 0, false), e("g1", 1, true), e("f2", 2, false)];
        let p = Policy {
            daily: 5,
            ..Default::default()
        };
        // f1 is older than g1 and more than a day old: removed. f2 may still be running.
        assert_eq!(to_remove(&entries, p, T0 + 2 * DAY_MS), ["f1"]);
        assert!(to_remove(&entries, Policy::default(), T0 + 9 * DAY_MS).is_empty());
    }
}
