//! Driving a terminal UI under tmux for a test: start it in a detached session of a given
//! size, read the screen with `capture-pane`, send keys; the session ends on Drop.

use std::process::Command;

/// Runs `tmux args` and returns its standard output.
pub fn tmux(args: &[&str]) -> String {
    let o = Command::new("tmux").args(args).output().expect("tmux");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A tmux session, ended on Drop, so a failed assertion leaves nothing running.
pub struct Session(pub String);

impl Session {
    /// Starts `cmd` in a new detached session `name` of `width` x `height`.
    pub fn start(name: &str, width: u16, height: u16, cmd: &str) -> Session {
        let (w, h) = (width.to_string(), height.to_string());
        tmux(&["new-session", "-d", "-s", name, "-x", &w, "-y", &h, cmd]);
        Session(name.to_string())
    }

    /// What the screen shows now.
    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.0])
    }

    pub fn keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.0, keys]);
    }

    /// Whether the session still runs (its program has not exited).
    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}
