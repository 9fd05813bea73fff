//! `hive proxy` under systemd's conventions, with the real protocol and tools: state over a
//! `NOTIFY_SOCKET` (READY=1 only once it accepts, RELOADING=1 then READY=1 on SIGHUP,
//! STOPPING=1 on SIGTERM), and socket activation through systemd's own
//! `systemd-socket-activate`, including a socket on an address the config does not use.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use hive_local::RedisProcess;
use hive_tests::{free_port_pair, hive_bin};

use super::{signal, wait_for, Proc};

fn node() -> (tempfile::TempDir, RedisProcess) {
    let dir = tempfile::tempdir().unwrap();
    let n = RedisProcess::start(dir.path(), free_port_pair().unwrap(), &[]).unwrap();
    (dir, n)
}

/// The next datagram, as text (10 s at most).
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn ping(addr: &str) -> redis::RedisResult<String> {
    let c = redis::Client::open(format!("redis://{addr}/"))?;
    let mut c = c.get_connection_with_timeout(Duration::from_secs(5))?;
    redis::cmd("PING").query(&mut c)
}

#[test]
fn systemd_notify_reports_ready_reload_and_stopping() {
    let (_d, n) = node();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let listen = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let p = Proc::new(
        Command::new(hive_bin())
            .args(["proxy", "--static", &n.addr, "--listen", &listen])
            .env("NOTIFY_SOCKET", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ready = next(&sock);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=serving on {listen}")),
        "{ready:?}"
    );
    // Ready means accepting: the first connection after READY=1 is served.
    assert_eq!(ping(&listen).unwrap(), "PONG");
    signal(&p, "-HUP");
    let reloading = next(&sock);
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    assert!(next(&sock).lines().any(|l| l == "READY=1"));
    assert_eq!(ping(&listen).unwrap(), "PONG");
    signal(&p, "-TERM");
    assert!(next(&sock).lines().any(|l| l == "STOPPING=1"));
    let out = p.output();
    assert!(out.status.success(), "{}", out.status);
}

#[test]
fn systemd_notify_is_silent_without_notify_socket() {
    // No NOTIFY_SOCKET: nothing is sent and nothing fails (`hive proxy` on a plain host).
    let (_d, n) = node();
    let listen = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let p = Proc::new(
        Command::new(hive_bin())
            .args(["proxy", "--static", &n.addr, "--listen", &listen])
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for(|| ping(&listen).is_ok());
    signal(&p, "-TERM");
    let out = p.output();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("NOTIFY_SOCKET"), "{err}");
}

/// `systemd-socket-activate -l ADDR hive proxy ...`: systemd's tool holds the socket and
/// starts the proxy with it on the first connection.
fn activate(socket: &str, listen: &str, node: &str) -> Proc {
    let tool = "systemd-socket-activate";
    Proc::new(
        Command::new(tool)
            .args(["-l", socket])
            .arg(hive_bin())
            .args(["proxy", "--static", node, "--listen", listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool} (Debian's systemd; deploy/local/deps.sh): {e}")),
    )
}

#[test]
fn systemd_socket_activation_serves_on_the_passed_socket() {
    let (_d, n) = node();
    let listen = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let p = activate(&listen, &listen, &n.addr);
    // The tool holds the port: had the proxy bound its own, it would have failed with
    // "address in use". The first connection, made before the proxy runs, waits in the
    // backlog and is served.
    wait_for(|| std::net::TcpStream::connect(&listen).is_ok());
    assert_eq!(ping(&listen).unwrap(), "PONG");
    assert_eq!(ping(&listen).unwrap(), "PONG");
    drop(p);
}

#[test]
fn systemd_socket_activation_refuses_a_socket_the_config_does_not_use() {
    let (_d, n) = node();
    let passed = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let listen = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let p = activate(&passed, &listen, &n.addr);
    // The tool starts the proxy on the first connection to the socket it holds.
    wait_for(|| std::net::TcpStream::connect(&passed).is_ok());
    let out = p.output();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "socket activation passed a socket listening on {passed}, and no listener of the config"
        )),
        "{err}"
    );
}
