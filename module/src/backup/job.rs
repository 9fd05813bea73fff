//! The backup state machine: a BGSAVE started by `HIVE.BACKUP START` is polled from the timer
//! until INFO persistence says it ended; then it has failed (metadata written as such) or its
//! RDB is ready to be captured on a background thread. Pure: unit-tested without Redis.

use std::path::PathBuf;

use hive_common::info;

use crate::backup::Metadata;

/// A backup whose BGSAVE is running.
#[derive(Debug, Clone)]
pub struct Job {
    pub meta: Metadata,
    pub dir: PathBuf,
    pub rdb: PathBuf,
    /// `rdb_saves` before the BGSAVE, to tell whether it ran.
    pub saves_before: i64,
    /// The AOF set staged at START (`START … AOF`).
    pub aof: Option<crate::backup::aof::Staged>,
}

/// What one look at INFO persistence says about a running job.
#[derive(Debug)]
pub enum Step {
    /// The BGSAVE is still running (or INFO was unreadable): look again later.
    Running(Job),
    /// The BGSAVE failed: the metadata to write, marked failed.
    Failed(Job),
    /// The RDB is complete: capture it.
    Saved(Job),
}

/// `rdb_saves` from INFO persistence text (0 when absent).
pub fn saves(persistence: &str) -> i64 {
    info::field(persistence, "rdb_saves")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Job {
    pub fn poll(mut self, persistence: &str, now_ms: u64) -> Step {
        let f = info::fields(persistence);
        if f.get("rdb_bgsave_in_progress") != Some(&"0") {
            return Step::Running(self);
        }
        // `rdb_saves` counts BGSAVEs started; the status says whether this one succeeded.
        let status = f.get("rdb_last_bgsave_status").copied().unwrap_or("?");
        if saves(persistence) <= self.saves_before || status != "ok" {
            self.meta.status = "failed".into();
            self.meta.error = Some(format!(
                "BGSAVE failed (rdb_last_bgsave_status:{status}); see the Redis log"
            ));
            self.meta.finished_ms = Some(now_ms);
            return Step::Failed(self);
        }
        Step::Saved(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            meta: Metadata {
                id: "b1".into(),
                status: "running".into(),
                ..Default::default()
            },
            dir: PathBuf::from("/tmp/b1"),
            rdb: PathBuf::from("/tmp/dump.rdb"),
            saves_before: 4,
            aof: None,
        }
    }

    fn persistence(in_progress: u8, saves: i64, status: &str) -> String {
        format!(
            "# Persistence\r\nrdb_bgsave_in_progress:{in_progress}\r\nrdb_saves:{saves}\r\n\
rdb_last_bgsave_status:{status}\r\n"
        )
    }

    #[test]
    fn backup_job_waits_then_saves() {
        let j = match job().poll(&persistence(1, 4, "ok"), 10) {
            Step::Running(j) => j,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            j.poll(&persistence(0, 5, "ok"), 20),
            Step::Saved(_)
        ));
        // Unreadable INFO is not taken for an ended BGSAVE.
        assert!(matches!(job().poll("", 20), Step::Running(_)));
    }

    #[test]
    fn backup_job_fails_on_error_or_no_save() {
        let Step::Failed(j) = job().poll(&persistence(0, 5, "err"), 30) else {
            panic!("a failed BGSAVE must fail the backup");
        };
        assert_eq!(j.meta.status, "failed");
        assert_eq!(j.meta.finished_ms, Some(30));
        assert!(j.meta.error.unwrap().contains("rdb_last_bgsave_status:err"));
        // The counter did not move: this BGSAVE never ran.
        assert!(matches!(
            job().poll(&persistence(0, 4, "ok"), 30),
            Step::Failed(_)
        ));
    }
}
