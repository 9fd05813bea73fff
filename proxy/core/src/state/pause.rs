//! CLIENT PAUSE as the proxy keeps it: until when, and whether writes or all commands wait.
//! Clients read it once per batch and hold what must wait in the proxy, so paused masters
//! never sit on requests of Hive's shared connections.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hive_common::resp::Request;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMode {
    /// Writes (and commands that may write or replicate) wait.
    Write,
    /// Every command that reaches a node waits.
    All,
}

pub struct PauseState {
    base: Instant,
    /// Milliseconds after `base` when the pause ends; 0 when there is none.
    until_ms: AtomicU64,
    mode: AtomicU8,
}

impl Default for PauseState {
    fn default() -> Self {
        PauseState {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
            mode: AtomicU8::new(0),
        }
    }
}

impl PauseState {
    pub fn pause(&self, mode: PauseMode, for_: Duration) {
        let until = (Instant::now() + for_)
            .duration_since(self.base)
            .as_millis() as u64;
        self.mode.store(mode as u8 + 1, Ordering::Release);
        self.until_ms.store(until.max(1), Ordering::Release);
    }

    pub fn unpause(&self) {
        self.until_ms.store(0, Ordering::Release);
    }

    /// The pause in force now, if any, and when it ends.
    pub fn current(&self) -> Option<(PauseMode, Instant)> {
        let until = self.until_ms.load(Ordering::Acquire);
        if until == 0 {
            return None;
        }
        let end = self.base + Duration::from_millis(until);
        if Instant::now() >= end {
            return None;
        }
        let mode = match self.mode.load(Ordering::Acquire) {
            1 => PauseMode::Write,
            _ => PauseMode::All,
        };
        Some((mode, end))
    }
}

/// Whether `req` waits while CLIENT PAUSE is in force: with WRITE, what may write or replicate
/// (as Redis pauses it), and EXEC only when its transaction (`queued`) holds such a command;
/// with ALL, everything but what the proxy answers itself.
pub fn must_wait(mode: PauseMode, req: &Request, queued: Option<&[Request]>) -> bool {
    let name = req.arg(0).to_ascii_lowercase();
    match mode {
        PauseMode::All => !matches!(
            &name[..],
            b"client"
                | b"ping"
                | b"echo"
                | b"quit"
                | b"reset"
                | b"auth"
                | b"hello"
                | b"acl"
                | b"command"
        ),
        PauseMode::Write if name == b"exec" => {
            queued.is_some_and(|q| q.iter().any(|r| may_write(&r.arg(0).to_ascii_lowercase())))
        }
        PauseMode::Write => may_write(&name),
    }
}

/// Redis's `CMD_WRITE | CMD_MAY_REPLICATE`: what CLIENT PAUSE WRITE holds. COMMAND does not
/// show `may_replicate`, so those commands are named here.
fn may_write(name: &[u8]) -> bool {
    matches!(
        name,
        b"eval" | b"evalsha" | b"fcall" | b"publish" | b"spublish" | b"pfcount" | b"wait"
    ) || hive_common::command::CommandTable::get()
        .lookup(name)
        .is_some_and(|c| c.has(hive_common::command::flag::WRITE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_write_holds_what_may_write_and_exec_only_of_writes() {
        let r = |a: &[&str]| Request::from_args(a);
        let w = PauseMode::Write;
        assert!(must_wait(w, &r(&["SET", "k", "v"]), None));
        assert!(must_wait(w, &r(&["eval", "return 1", "0"]), None));
        assert!(must_wait(w, &r(&["PUBLISH", "c", "m"]), None));
        assert!(!must_wait(w, &r(&["GET", "k"]), None));
        let reads = [r(&["GET", "k"]), r(&["CONFIG", "GET", "x"])];
        assert!(!must_wait(w, &r(&["EXEC"]), Some(&reads)));
        let writes = [r(&["GET", "k"]), r(&["INCR", "k"])];
        assert!(must_wait(w, &r(&["EXEC"]), Some(&writes)));
        assert!(!must_wait(w, &r(&["EXEC"]), None));
        assert!(must_wait(PauseMode::All, &r(&["GET", "k"]), None));
    }

    #[test]
    fn pause_ends_by_time_or_unpause() {
        let p = PauseState::default();
        assert!(p.current().is_none());
        p.pause(PauseMode::Write, Duration::from_secs(60));
        assert_eq!(p.current().map(|c| c.0), Some(PauseMode::Write));
        p.unpause();
        assert!(p.current().is_none());
        p.pause(PauseMode::All, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(p.current().is_none());
    }
}
