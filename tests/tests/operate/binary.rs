//! The `hive` binary itself: CLI flags, config errors, and graceful shutdown on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_common::resp::Request;
use hive_tests::{hive_bin, Env};

#[test]
fn config_errors_name_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[proxy]\nmax_clients = \"lots\"\n").unwrap();
    let out = Command::new(hive_bin())
        .args(["proxy", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml: key `proxy.max_clients`: invalid type"),
        "{err}"
    );

    std::fs::write(&path, "[backend]\nseeds = [\"127.0.0.1\"]\n").unwrap();
    let out = Command::new(hive_bin())
        .args(["proxy", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key `backend.seeds`: `127.0.0.1` is not a host:port address"),
        "{err}"
    );

    let out = Command::new(hive_bin())
        .args(["proxy", "--config", "/nonexistent/hive.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/hive.toml: cannot read"), "{err}");
}

/// Starts `hive proxy` with CLI flags in front of `env`'s cluster; waits until it answers.
fn spawn_proxy(env: &Env) -> (std::process::Child, String) {
    let port = hive_tests::free_port_pair().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(hive_bin())
        .args([
            "proxy",
            "--cluster",
            &env.cluster.master_addrs().join(","),
            "--listen",
            &listen,
            "--threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "hive proxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, listen)
}

#[test]
fn sigterm_lets_in_flight_replies_finish() {
    let env = Env::with(1, 0, |_| {});
    let (mut child, listen) = spawn_proxy(&env);
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A script that takes 500 ms, then a GET behind it.
    let busy = "local t = redis.call('TIME'); local s = t[1]*1000000 + t[2]; \
                while true do local n = redis.call('TIME'); if n[1]*1000000 + n[2] - s > 500000 then break end end; return 'done'";
    let mut req = Request::from_args(&["EVAL", busy, "1", "k"]).raw().to_vec();
    req.extend_from_slice(Request::from_args(&["GET", "k"]).raw());
    s.write_all(&req).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(String::from_utf8_lossy(&out), "$4\r\ndone\r\n$-1\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "proxy did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        TcpStream::connect(&listen).is_err(),
        "listener must be closed"
    );
}

/// `hive up`, interrupted and waited for on Drop so that a failed assertion leaves no
/// redis-server behind.
struct Up(std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn hive_up_serves_then_tears_down_on_ctrl_c() {
    hive_up(&[], 6, "masters:3");
}

#[test]
fn hive_up_sentinel_mode_serves_then_tears_down() {
    // 6 nodes and 3 sentinels.
    hive_up(&["--mode", "sentinel"], 9, "backend_mode:sentinel");
}

fn hive_up(extra: &[&str], ports: u16, info_has: &str) {
    use std::io::BufRead;
    let base = hive_tests::free_port_block(ports).unwrap();
    let proxy_port = hive_tests::free_port_pair().unwrap();
    let listen = format!("127.0.0.1:{proxy_port}");
    let mut up = Up(Command::new(hive_bin())
        .args(["up", "--port", &base.to_string(), "--listen", &listen])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let child = &mut up.0;
    // stderr too, so that a start that fails says why.
    let (tx, rx) = std::sync::mpsc::channel();
    let out: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for pipe in out {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("Press Ctrl-C")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("hive up did not come up: {seen:?}"),
        }
    }
    let text = seen.join("\n");
    assert!(
        text.contains(&format!("redis-cli -h 127.0.0.1 -p {proxy_port}")),
        "{text}"
    );
    let mut c = hive_tests::connect(&format!("redis://{listen}/"));
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg(1)
        .arg("b")
        .arg(2)
        .arg("c")
        .arg(3)
        .query(&mut c)
        .unwrap();
    let v: Vec<i64> = redis::cmd("MGET")
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, [1, 2, 3]);
    // Every node runs hive-module.
    let mut node = hive_tests::connect(&format!("redis://127.0.0.1:{base}/"));
    let topo: Vec<redis::Value> = redis::cmd("HIVE.TOPOLOGY").query(&mut node).unwrap();
    assert!(topo.len() >= 18, "{topo:?}");
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    assert!(
        info.contains(info_has) && info.contains("masters:3"),
        "{info}"
    );
    drop(c);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "hive up exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "hive up did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    for port in std::iter::once(proxy_port).chain(base..base + ports) {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
}
