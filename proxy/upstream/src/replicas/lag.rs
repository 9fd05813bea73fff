//! Pure freshness rules: a master's offset history, which writes a replica certainly holds,
//! and whether a probed replica may serve reads. No I/O; times are the proxy clock's raw ticks.

use std::collections::VecDeque;

/// A master's replication offset as sampled by the poller: `(at, offset)`, where `at` is taken
/// just before the INFO was sent, so every write acknowledged before `at` is within `offset`.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<(u64, i64)>,
    cap: usize,
}

impl History {
    pub fn new(cap: usize) -> History {
        History {
            samples: VecDeque::new(),
            cap: cap.max(2),
        }
    }

    pub fn push(&mut self, at: u64, offset: i64) {
        // A lower offset is another replication history (a restarted or different master):
        // the old samples say nothing about it.
        if self.samples.back().is_some_and(|&(_, o)| offset < o) {
            self.samples.clear();
        }
        self.samples.push_back((at, offset));
        while self.samples.len() > self.cap {
            self.samples.pop_front();
        }
    }

    /// The newest sample time whose offset `replica_offset` has reached: the replica holds
    /// every write the master acknowledged before it. `None` when it is behind every sample.
    pub fn covers(&self, replica_offset: i64) -> Option<u64> {
        self.samples
            .iter()
            .rev()
            .find(|&&(_, o)| o <= replica_offset)
            .map(|&(at, _)| at)
    }
}

/// What one poll of a replica found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// It answered within the poll interval.
    pub answered: bool,
    /// `INFO` says `role:slave`.
    pub replica: bool,
    pub link_up: bool,
    /// Loading a dataset (`loading:1`) or in a full resync (`master_sync_in_progress:1`).
    pub loading: bool,
    pub offset: i64,
    /// `HIVE.LAG`'s `lag_ms`, where the module is loaded.
    pub module_lag_ms: Option<u64>,
}

/// Why a replica is not read from (`None`: it may be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    NoAnswer,
    NotReplica,
    LinkDown,
    Loading,
    /// Lag above `max_replica_lag_ms`, or unknown (behind every master sample).
    Lagging,
}

impl Stale {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stale::NoAnswer => "no answer",
            Stale::NotReplica => "not a replica",
            Stale::LinkDown => "master link down",
            Stale::Loading => "loading",
            Stale::Lagging => "lagging",
        }
    }
}

/// Judges a probe. `offset_lag_ms` is how long ago the newest master sample the replica has
/// reached was taken (`None`: behind all of them); the module's heartbeat lag is preferred
/// where present, as it also moves while the master takes no writes.
pub fn judge(p: &Probe, offset_lag_ms: Option<u64>, max_lag_ms: u64) -> Result<u64, Stale> {
    if !p.answered {
        return Err(Stale::NoAnswer);
    }
    if !p.replica {
        return Err(Stale::NotReplica);
    }
    if !p.link_up {
        return Err(Stale::LinkDown);
    }
    if p.loading {
        return Err(Stale::Loading);
    }
    let lag = p.module_lag_ms.or(offset_lag_ms).ok_or(Stale::Lagging)?;
    if lag > max_lag_ms {
        return Err(Stale::Lagging);
    }
    Ok(lag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(offset: i64) -> Probe {
        Probe {
            answered: true,
            replica: true,
            link_up: true,
            loading: false,
            offset,
            module_lag_ms: None,
        }
    }

    #[test]
    fn history_covers_the_newest_sample_reached() {
        let mut h = History::new(8);
        h.push(10, 100);
        h.push(20, 150);
        h.push(30, 150);
        h.push(40, 200);
        assert_eq!(h.covers(99), None);
        assert_eq!(h.covers(100), Some(10));
        assert_eq!(h.covers(160), Some(30));
        assert_eq!(h.covers(200), Some(40));
        assert_eq!(h.covers(10_000), Some(40));
    }

    #[test]
    fn history_forgets_another_replication_history_and_stays_bounded() {
        let mut h = History::new(3);
        h.push(10, 500);
        h.push(20, 40);
        assert_eq!(h.covers(450), Some(20));
        for i in 0..10 {
            h.push(30 + i, 100 + i as i64);
        }
        assert_eq!(h.samples.len(), 3);
        assert_eq!(h.covers(100), None);
    }

    #[test]
    fn judge_refuses_every_unsafe_replica() {
        assert_eq!(judge(&probe(1), Some(5), 1000), Ok(5));
        let mut p = probe(1);
        p.answered = false;
        assert_eq!(judge(&p, Some(5), 1000), Err(Stale::NoAnswer));
        let mut p = probe(1);
        p.replica = false;
        assert_eq!(judge(&p, Some(5), 1000), Err(Stale::NotReplica));
        let mut p = probe(1);
        p.link_up = false;
        assert_eq!(judge(&p, Some(5), 1000), Err(Stale::LinkDown));
        let mut p = probe(1);
        p.loading = true;
        assert_eq!(judge(&p, Some(5), 1000), Err(Stale::Loading));
        assert_eq!(judge(&probe(1), Some(1001), 1000), Err(Stale::Lagging));
        assert_eq!(judge(&probe(1), None, 1000), Err(Stale::Lagging));
    }

    #[test]
    fn judge_prefers_the_module_lag() {
        let mut p = probe(1);
        p.module_lag_ms = Some(2000);
        assert_eq!(judge(&p, Some(3), 1000), Err(Stale::Lagging));
        p.module_lag_ms = Some(7);
        assert_eq!(judge(&p, None, 1000), Ok(7));
    }
}
