//! The `hive proxy` binary as a process of its own (for what an in-process proxy cannot show:
//! its memory, its allocator, its death), killed on Drop.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port_pair, hive_bin};

pub struct HiveProcess {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl HiveProcess {
    /// `hive proxy --config` with `toml` (its `[proxy] listen` is added), waiting until it
    /// accepts connections.
    pub fn start(toml: &str) -> HiveProcess {
        let port = free_port_pair().expect("port");
        HiveProcess::start_at(format!("127.0.0.1:{port}").parse().unwrap(), toml)
    }

    /// As `start`, listening on `addr` (a fleet's members must know each other's ports).
    pub fn start_at(addr: SocketAddr, toml: &str) -> HiveProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hive.toml");
        let text = toml.replacen("[proxy]", &format!("[proxy]\nlisten = \"{addr}\""), 1);
        std::fs::write(&path, text).expect("write config");
        let child = Command::new(hive_bin())
            .args(["proxy", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run hive");
        let mut p = HiveProcess {
            addr,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(p.running(), "hive proxy exited at startup");
            assert!(Instant::now() < deadline, "hive proxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// The config file it was started with (to change it and send SIGHUP).
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("hive.toml")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kb(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl Drop for HiveProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
