//! What apps written for one Redis expect of it, through Hive: SCRIPT FLUSH forgets scripts
//! everywhere, CLIENT REPLY ON|OFF|SKIP, PUBLISH counting every subscriber reached, and
//! keyspace notifications from every master, each exactly once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hive_tests::{error_text, run, Env, GroupEnv};
use redis::Value;

#[test]
fn script_flush_forgets_scripts_on_every_master_and_in_hive() {
    let env = Env::with(3, 0, |_| {});
    let mut c = env.client();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 7")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("EVAL").arg("return 8").arg(0).query(&mut c).unwrap();
    let exists: Vec<i64> = redis::cmd("SCRIPT").arg("EXISTS").arg(&sha).query(&mut c).unwrap();
    assert_eq!(exists, [1]);
    assert_eq!(run(&mut c, &["SCRIPT", "FLUSH"]).unwrap(), Value::Okay);
    let exists: Vec<i64> = redis::cmd("SCRIPT").arg("EXISTS").arg(&sha).query(&mut c).unwrap();
    assert_eq!(exists, [0]);
    // Hive does not heal a flushed script: the app sees NOSCRIPT, as from Redis, on every
    // shard's keys.
    for key in ["a", "b", "c"] {
        let e = error_text(run(&mut c, &["EVALSHA", &sha, "1", key]));
        assert!(e.starts_with("NOSCRIPT"), "{e}");
    }
}

/// Sends raw RESP and reads what comes back within `wait`.
fn raw(stream: &mut TcpStream, send: &str, wait: Duration) -> String {
    stream.write_all(send.as_bytes()).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + wait;
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn cmd(args: &[&str]) -> String {
    let mut s = format!("*{}\r\n", args.len());
    for a in args {
        s.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s
}

#[test]
fn client_reply_off_skip_on_as_redis() {
    let env = Env::with(3, 0, |_| {});
    let mut s = TcpStream::connect(env.proxy.addr).unwrap();
    let wait = Duration::from_millis(300);
    // SKIP drops its own reply and the next command's; a pipeline stays in order.
    let mut batch = cmd(&["CLIENT", "REPLY", "SKIP"]);
    batch += &cmd(&["SET", "a", "1"]);
    batch += &cmd(&["GET", "a"]);
    batch += &cmd(&["CLIENT", "REPLY", "OFF"]);
    batch += &cmd(&["SET", "b", "2"]);
    batch += &cmd(&["GET", "b"]);
    batch += &cmd(&["NOSUCHCOMMAND"]);
    batch += &cmd(&["CLIENT", "REPLY", "ON"]);
    batch += &cmd(&["GET", "b"]);
    assert_eq!(raw(&mut s, &batch, wait), "$1\r\n1\r\n+OK\r\n$1\r\n2\r\n");
    let mut c = env.client();
    assert_eq!(
        error_text(run(&mut c, &["CLIENT", "REPLY", "MAYBE"])),
        "ERR syntax error"
    );
}

/// A subscriber through Hive on a raw connection; returns its stream after the confirmation.
fn subscriber(addr: std::net::SocketAddr, args: &[&str]) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(cmd(args).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..(args.len() - 1) * 6 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
    }
    r
}

fn publish_counts(addr: std::net::SocketAddr, url: &str) {
    // Subscribers land on different masters (by client id); each counts once.
    let subs: Vec<_> = (0..5)
        .map(|_| subscriber(addr, &["SUBSCRIBE", "news"]))
        .collect();
    let pats: Vec<_> = (0..2)
        .map(|_| subscriber(addr, &["PSUBSCRIBE", "ne*"]))
        .collect();
    // A subscriber to every channel also holds connections to every master (it can see
    // keyspace notifications); it still counts once.
    let all = subscriber(addr, &["PSUBSCRIBE", "*"]);
    let mut c = hive_tests::connect(url);
    let n: i64 = redis::cmd("PUBLISH").arg("news").arg("hi").query(&mut c).unwrap();
    assert_eq!(n, 8);
    let n: i64 = redis::cmd("PUBLISH").arg("other").arg("hi").query(&mut c).unwrap();
    assert_eq!(n, 1);
    drop(subs);
    drop(pats);
    drop(all);
    // Gone subscribers leave the count (once the proxy has seen them close).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = redis::cmd("PUBLISH").arg("news").arg("hi").query(&mut c).unwrap();
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still {n} receivers");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn publish_counts_every_hive_subscriber_in_cluster_mode() {
    let env = Env::with(3, 0, |_| {});
    publish_counts(env.proxy.addr, &env.url());
}

#[test]
fn publish_counts_every_hive_subscriber_in_sentinel_and_static_modes() {
    let env = GroupEnv::sentinel(2, None, |_| {});
    publish_counts(env.proxy.addr, &env.url());
    let env = GroupEnv::statik(3, |_| {});
    publish_counts(env.proxy.addr, &env.url());
}
