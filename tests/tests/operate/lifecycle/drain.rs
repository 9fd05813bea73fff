//! The drain of a stopping proxy as a probe sees it: from SIGTERM, `/readyz` answers 503
//! ("draining") while a client blocked in BLPOP is still being served, and the process exits
//! once that client has its answer.

use std::process::{Command, Stdio};

use hive_local::RedisProcess;
use hive_tests::{free_port_pair, hive_bin, http};

use super::{signal, wait_for, Proc};

#[test]
fn drain_answers_readyz_503_until_the_last_client_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let node = RedisProcess::start(dir.path(), free_port_pair().unwrap(), &[]).unwrap();
    let listen = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let admin = format!("127.0.0.1:{}", free_port_pair().unwrap());
    let config = dir.path().join("hive.toml");
    std::fs::write(&config, "[proxy]\nshutdown_grace_ms = 20000\n").unwrap();
    let p = Proc::new(
        Command::new(hive_bin())
            .args([
                "proxy", "--static", &node.addr, "--listen", &listen, "--admin", &admin,
            ])
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin_addr = admin.parse().unwrap();
    wait_for(|| {
        std::net::TcpStream::connect(&admin).is_ok() && http::get(admin_addr, "/readyz").0 == 200
    });
    let url = format!("redis://{listen}/");
    let blocked = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        redis::cmd("BLPOP")
            .arg("drain:list")
            .arg(30)
            .query::<Option<(String, String)>>(&mut c)
    });
    let mut direct = redis::Client::open(format!("redis://{}/", node.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    wait_for(|| {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query(&mut direct)
            .unwrap();
        info.contains("blocked_clients:1")
    });
    signal(&p, "-TERM");
    wait_for(|| {
        let (status, body) = http::get(admin_addr, "/readyz");
        status == 503 && body.contains("draining")
    });
    // The blocked client is still served; once it has its answer the process goes.
    let _: () = redis::cmd("LPUSH")
        .arg("drain:list")
        .arg("v")
        .query(&mut direct)
        .unwrap();
    let popped = blocked
        .join()
        .unwrap()
        .expect("BLPOP answered during the drain");
    assert_eq!(popped, Some(("drain:list".into(), "v".into())));
    let out = p.output();
    assert!(out.status.success(), "{}", out.status);
}
