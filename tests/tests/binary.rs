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
