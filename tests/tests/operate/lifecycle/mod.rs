//! The proxy's life as a process, with the real `hive` binary: systemd's conventions
//! (`systemd`), the drain as probes see it (`drain`) and upgrades in place (`upgrade`).

use std::process::{Child, Command};
use std::time::Duration;

use hive_tests::module_cluster::poll_until;

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
        poll_until(Duration::from_secs(20), || {
            child.try_wait().ok().flatten().is_some()
        });
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

/// Waits up to 15 s for a state of the processes under test.
pub(super) fn wait_for(f: impl FnMut() -> bool) {
    hive_tests::module_cluster::wait_for("the process state", Duration::from_secs(15), f);
}
