//! The proxy's life as a process, with the real `hive` binary: systemd's conventions
//! (`systemd`), the drain as probes see it (`drain`) and upgrades in place (`upgrade`).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod drain;
mod systemd;
mod upgrade;

/// Kills the child on Drop, so a failed assertion leaves no proxy running.
pub(super) struct Proc(Option<Child>);

impl Proc {
    pub(super) fn new(c: Child) -> Proc {
        Proc(Some(c))
    }

    pub(super) fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Waits (20 s at most, then kills it) for the child to exit; its status and output.
    pub(super) fn output(mut self) -> std::process::Output {
        let mut child = self.0.take().expect("a child");
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(super) fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.pid().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig}");
}

pub(super) fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}
