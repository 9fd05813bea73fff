//! Upgrading `hive proxy` in place under load, with the real binary: SIGUSR2, then
//! `hive proxy --upgrade --pidfile`, each moving 50 pipelining clients, a client blocked in
//! BLPOP, a MULTI in progress and a subscriber to a new process with no refused connection and
//! no wrong or error reply; then a new process with an invalid config, which leaves the old one
//! serving.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hive_local::RedisProcess;
use hive_tests::backups::hive;
use hive_tests::{free_port_pair, hive_bin};

use super::{signal, wait_for, Proc};

/// What the clients saw.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    /// Error replies and wrong values: must stay 0.
    wrong: Mutex<Vec<String>>,
    refused: AtomicU64,
    /// Connections closed by the proxy (between replies, during the drain) and reopened.
    reconnects: AtomicU64,
    /// The longest time a client waited between two answered pipelines.
    longest_gap_ms: AtomicU64,
}

/// Client `t` of round `round` (its keys are its own: a key left by an earlier round would
/// look like a write that ran unanswered).
fn load(addr: String, round: u32, t: usize, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let mut conn: Option<redis::Connection> = None;
    let mut i = 0u64;
    let mut last = Instant::now();
    // A pipeline whose connection closed before its replies: none of it may have run (the
    // proxy closes a connection only once it has answered everything it read).
    let mut unanswered = false;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match redis::Client::open(format!("redis://{addr}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    // A refused connection fails the test: this client stops here.
                    seen.refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            continue;
        };
        if std::mem::take(&mut unanswered) {
            let keys: Vec<String> = (i..i + 8).map(|k| format!("u{round}:{t}:{k}")).collect();
            match redis::cmd("EXISTS").arg(&keys).query::<u64>(c) {
                Ok(0) => {}
                Ok(n) => seen.wrong.lock().unwrap().push(format!(
                    "{n} writes of a pipeline ran, unanswered: {keys:?}"
                )),
                Err(_) => {
                    unanswered = true;
                    conn = None;
                    continue;
                }
            }
        }
        // P16: 8 SET + GET pairs, each GET must read its SET.
        let mut p = redis::pipe();
        for k in 0..8 {
            let key = format!("u{round}:{t}:{}", i + k);
            p.set(&key, i + k).ignore().get(&key);
        }
        match p.query::<Vec<u64>>(c) {
            Ok(v) => {
                if v != (i..i + 8).collect::<Vec<_>>() {
                    seen.wrong.lock().unwrap().push(format!("{v:?} for {i}"));
                }
                i += 8;
                seen.ok.fetch_add(16, Ordering::Relaxed);
                let gap = last.elapsed().as_millis() as u64;
                seen.longest_gap_ms.fetch_max(gap, Ordering::Relaxed);
                last = Instant::now();
            }
            Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                seen.reconnects.fetch_add(1, Ordering::Relaxed);
                conn = None;
                unanswered = true;
            }
            Err(e) => seen.wrong.lock().unwrap().push(e.to_string()),
        }
    }
}

/// Kills whichever process the pid file names on Drop: the upgraded processes are not this
/// test's children, and a failed assertion must not leave one running.
struct KillPidFile(std::path::PathBuf);

impl Drop for KillPidFile {
    fn drop(&mut self) {
        let pid = pid_in(&self.0);
        if pid != 0 {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

fn pid_in(file: &std::path::Path) -> u32 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Runs one upgrade (`how`) under load and checks what the clients saw.
fn upgrade_under_load(addr: &str, pidfile: &std::path::Path, how: &dyn Fn(u32)) {
    let old = pid_in(pidfile);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let (addr, stop, seen) = (addr.to_string(), stop.clone(), seen.clone());
            std::thread::spawn(move || load(addr, old, t, stop, seen))
        })
        .collect();
    // A client blocked in BLPOP, and one inside MULTI, both on the old process.
    let url = format!("redis://{addr}/");
    let blpop = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            redis::cmd("BLPOP")
                .arg("upgrade:list")
                .arg(20)
                .query::<Option<(String, String)>>(&mut c)
        })
    };
    // A subscriber: having nothing unanswered, it is closed as the drain starts, and
    // subscribes again through the new process.
    let (tx, messages) = std::sync::mpsc::channel::<String>();
    let subscriber = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut closed = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection())
                else {
                    continue;
                };
                let mut ps = c.as_pubsub();
                if ps.subscribe("upgrade:ch").is_err() {
                    continue;
                }
                ps.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let _ = tx.send("subscribed".into());
                loop {
                    match ps.get_message() {
                        Ok(m) => {
                            let _ = tx.send(m.get_payload::<String>().unwrap_or_default());
                        }
                        Err(e) if e.is_timeout() => {
                            if stop.load(Ordering::Relaxed) {
                                return closed;
                            }
                        }
                        Err(_) => {
                            closed += 1;
                            break;
                        }
                    }
                }
            }
            closed
        })
    };
    assert_eq!(
        messages.recv_timeout(Duration::from_secs(10)).unwrap(),
        "subscribed"
    );
    let mut multi = redis::Client::open(url.clone())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("MULTI").query(&mut multi).unwrap();
    let queued: String = redis::cmd("SET")
        .arg("upgrade:tx")
        .arg(old)
        .query(&mut multi)
        .unwrap();
    assert_eq!(queued, "QUEUED");
    // redis-py with retries, as apps run it: it must see no error at all.
    let stop_file = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let stop_path = stop_file.to_path_buf();
    stop_file.close().unwrap();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let mut py = std::process::Command::new(hive_tests::python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/py/retry_load.py"))
        .args(["--port", &port, "--stop-file"])
        .arg(&stop_path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut py_out = std::io::BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut py_out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    wait_for(|| seen.ok.load(Ordering::Relaxed) > 2000);
    how(old);
    wait_for(|| pid_in(pidfile) != old);
    let new = pid_in(pidfile);
    // The blocked client is answered by the old process, from an LPUSH through the new one.
    let mut c = redis::Client::open(url.clone())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg("upgrade:list")
        .arg("v")
        .query(&mut c)
        .unwrap();
    let popped = blpop.join().unwrap().expect("BLPOP answered");
    assert_eq!(popped, Some(("upgrade:list".into(), "v".into())));
    // MULTI in progress: finished as if the client had disconnected, or run whole.
    let exec: redis::RedisResult<Vec<String>> = redis::cmd("EXEC").query(&mut multi);
    let tx: Option<u32> = redis::cmd("GET").arg("upgrade:tx").query(&mut c).unwrap();
    match exec {
        Ok(v) => assert!(v == ["OK"] && tx == Some(old), "{v:?} {tx:?}"),
        Err(e) => assert!(e.is_io_error() || e.is_connection_dropped(), "{e}"),
    }
    let _: () = redis::cmd("DEL").arg("upgrade:tx").query(&mut c).unwrap();
    wait_for(|| !alive(old));
    // Closed as the drain began, it subscribed again through the new process.
    assert_eq!(
        messages.recv_timeout(Duration::from_secs(10)).unwrap(),
        "subscribed"
    );
    let published: u32 = redis::cmd("PUBLISH")
        .arg("upgrade:ch")
        .arg("after")
        .query(&mut c)
        .unwrap();
    assert_eq!(published, 1);
    assert_eq!(
        messages.recv_timeout(Duration::from_secs(10)).unwrap(),
        "after"
    );
    // The clients carry on through the new process.
    let before = seen.ok.load(Ordering::Relaxed);
    wait_for(|| seen.ok.load(Ordering::Relaxed) > before + 2000);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    std::fs::write(&stop_path, b"").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut py_out, &mut line).unwrap();
    assert!(py.wait().unwrap().success());
    let _ = std::fs::remove_file(&stop_path);
    let report: serde_json::Value = serde_json::from_str(line.trim()).expect("redis-py's report");
    println!("redis-py with retries through the upgrade: {report}");
    assert_eq!(report["errors"], 0, "redis-py saw errors: {report}");
    assert_eq!(report["wrong"], 0, "redis-py read a wrong value: {report}");
    assert!(
        report["connects"].as_u64().unwrap() >= 2,
        "redis-py never reconnected: {report}"
    );
    assert_eq!(
        subscriber.join().unwrap(),
        1,
        "the subscriber was closed once, by the drain"
    );
    let wrong = seen.wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "wrong or error replies: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(
        seen.refused.load(Ordering::Relaxed),
        0,
        "refused connections"
    );
    println!(
        "upgrade {old} -> {new}: {} requests answered, {} reconnects, longest gap {} ms",
        seen.ok.load(Ordering::Relaxed),
        seen.reconnects.load(Ordering::Relaxed),
        seen.longest_gap_ms.load(Ordering::Relaxed)
    );
}

#[test]
fn upgrade_moves_clients_to_a_new_process_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = RedisProcess::start(dir.path(), free_port_pair().unwrap(), &[]).unwrap();
    let addr = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let config = dir.path().join("hive.toml");
    let text = format!(
        "[proxy]\nlisten = \"{addr}\"\nshutdown_grace_ms = 3000\n[backend]\nmode = \"static\"\n\
         [[backend.shards]]\nmaster = \"{}\"\n",
        node.addr
    );
    std::fs::write(&config, &text).unwrap();
    let pidfile = dir.path().join("hive.pid");
    let _last = KillPidFile(pidfile.clone());
    let log = std::fs::File::create(dir.path().join("hive.log")).unwrap();
    let first = Proc::new(
        Command::new(hive_bin())
            .args(["proxy", "--config"])
            .arg(&config)
            .arg("--pidfile")
            .arg(&pidfile)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for(|| pid_in(&pidfile) == first.pid());
    // SIGUSR2.
    upgrade_under_load(&addr, &pidfile, &|_| signal(&first, "-USR2"));
    drop(first);
    // `hive proxy --upgrade`, from a shell.
    let file = pidfile.to_str().unwrap().to_string();
    upgrade_under_load(&addr, &pidfile, &|old| {
        let (ok, out, err) = hive(&["proxy", "--upgrade", "--pidfile", &file], &[]);
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("pid {old} drains and exits")),
            "{out}"
        );
    });
    // A new process whose config is invalid: the running one keeps serving, and says why.
    let running = pid_in(&pidfile);
    std::fs::write(
        &config,
        text.replace("[proxy]\n", "[proxy]\nmax_clients = \"lots\"\n"),
    )
    .unwrap();
    let (ok, _, err) = hive(&["proxy", "--upgrade", "--pidfile", &file], &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("the upgrade failed; pid {running} keeps serving"))
            && err.contains("key `proxy.max_clients`"),
        "{err}"
    );
    assert_eq!(pid_in(&pidfile), running);
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    // The last process stops on SIGTERM, and removes its pid file.
    let _ = Command::new("kill").arg(running.to_string()).status();
    wait_for(|| !pidfile.exists());
    wait_for(|| !alive(running));
    let log = std::fs::read_to_string(dir.path().join("hive.log")).unwrap();
    assert!(log.contains("upgrade: the new process accepts"), "{log}");
}
