//! `backend.write_ack = "replica"` against a real 3+3 cluster and a static group: every kind
//! of write is answered only once a replica has it (one WAIT per batch), a shard whose replica
//! is gone refuses writes with Redis's NOREPLICAS while reads and other shards carry on, and a
//! backend user that may not run WAIT is named instead of being silently trusted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hive_proxy::config::{Config, CrossSlot, WriteAck};
use hive_proxy::server::ProxyHandle;
use hive_tests::module_cluster::{
    break_master_link, calls, deployment, mend_master_link, reset_stats, wait_for,
};
use hive_tests::{connect, error_text, heavy, node_url, run, GroupEnv};
use redis::Commands;

const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

fn replica_mode(c: &mut Config) {
    c.backend.write_ack = WriteAck::Replica;
    c.backend.write_ack_timeout_ms = 2000;
}

/// `key` read on `replica` directly, at once (READONLY: a cluster replica redirects otherwise).
fn on_replica(replica: &str, key: &str) -> Option<String> {
    let mut r = connect(&node_url(replica));
    redis::cmd("READONLY").query::<()>(&mut r).unwrap();
    r.get(key).unwrap()
}

#[test]
fn write_ack_replica_answers_writes_once_a_replica_has_them() {
    let _h = heavy();
    let d = deployment(replica_mode);
    let masters = d.masters();
    reset_stats(&masters);
    let tags: Vec<String> = (0..3).map(|i| d.tag_of(i)).collect();
    let mut c = d.client();
    // A pipeline of writes over every shard: one WAIT per batch, not one per write.
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.set(format!("{}p{i}", tags[i % 3]), i).ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    let waits: u64 = masters.iter().map(|m| calls(m, "wait")).sum();
    assert!(
        (3..300).contains(&waits),
        "{waits} WAITs for 300 pipelined writes"
    );
    // Every kind of write, each checked on its replica the moment it is answered.
    let keys: Vec<String> = tags.iter().map(|t| format!("{t}k")).collect();
    let mut mset = redis::cmd("MSET");
    for k in &keys {
        mset.arg(k).arg("mset");
    }
    mset.query::<()>(&mut c).unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(on_replica(&d.replica_of(i), k).as_deref(), Some("mset"));
    }
    let script = "redis.call('SET', KEYS[1], ARGV[1])";
    let _: () = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg(&keys[1])
        .arg("eval")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        on_replica(&d.replica_of(1), &keys[1]).as_deref(),
        Some("eval")
    );
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .set(&keys[2], "tx")
        .ignore()
        .append(&keys[2], "!")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        on_replica(&d.replica_of(2), &keys[2]).as_deref(),
        Some("tx!")
    );
    // Reads are not confirmed: a read-only pipeline sends no WAIT.
    let before: u64 = masters.iter().map(|m| calls(m, "wait")).sum();
    let mut reads = redis::pipe();
    for i in 0..50 {
        reads.get(format!("{}p{i}", tags[i % 3]));
    }
    let got: Vec<i64> = reads.query(&mut c).unwrap();
    assert_eq!(got, (0..50).collect::<Vec<i64>>());
    assert_eq!(
        masters.iter().map(|m| calls(m, "wait")).sum::<u64>(),
        before
    );
    let info: String = redis::cmd("INFO").arg("proxy").query(&mut c).unwrap();
    assert!(info.contains("write_ack:replica"), "{info}");
}

#[test]
fn write_ack_replica_refuses_writes_of_a_shard_without_replicas() {
    let _h = heavy();
    // One worker: the writer and the reader below share its connections to the shard.
    let d = deployment(|c| {
        replica_mode(c);
        c.proxy.threads = 1;
        c.proxy.cross_slot = CrossSlot::Emulate;
    });
    let t0 = d.tag_of(0);
    let t1 = d.tag_of(1);
    let mut c = d.client();
    let _: () = c.set(format!("{t0}r"), "before").unwrap();
    break_master_link(&d.replica_of(0));
    let lost = format!("{t0}a");
    let e = error_text(run(&mut c, &["SET", &lost, "1"]));
    assert_eq!(e, NOREPLICAS);
    // The master applied it: the outcome of a refused write is unknown, as with WAIT.
    let mut m0 = connect(&node_url(&d.masters()[0]));
    assert_eq!(
        m0.get::<_, Option<String>>(&lost).unwrap().as_deref(),
        Some("1")
    );
    // Other shards take writes; splits and scripts touching the shard are refused.
    let _: () = c.set(format!("{t1}a"), "1").unwrap();
    let e = error_text(run(
        &mut c,
        &["MSET", &format!("{t0}b"), "1", &format!("{t1}b"), "1"],
    ));
    assert!(e.starts_with("NOREPLICAS"), "{e}");
    let e = error_text(run(
        &mut c,
        &[
            "EVAL",
            "return redis.call('INCR', KEYS[1])",
            "1",
            &format!("{t0}c"),
        ],
    ));
    assert_eq!(e, NOREPLICAS);
    // An emulated command whose result lands on the shard: its copy there is refused.
    let _: () = c.set(format!("{t1}src"), "v").unwrap();
    let e = error_text(run(
        &mut c,
        &["RENAME", &format!("{t1}src"), &format!("{t0}dst")],
    ));
    assert!(e.starts_with("NOREPLICAS"), "{e}");
    // A read of another client is answered while a write of the shard still waits.
    reset_stats(&d.masters()[..1]);
    let mut writer = TcpStream::connect(d.proxy.addr).unwrap();
    writer
        .write_all(format!("SET {t0}w 1\r\n").as_bytes())
        .unwrap();
    wait_for(
        "the write to reach its WAIT",
        Duration::from_secs(5),
        || calls(&d.masters()[0], "set") > 0,
    );
    let mut reader = d.client();
    let v: String = reader.get(format!("{t0}r")).unwrap();
    assert_eq!(v, "before");
    writer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 128];
    assert!(
        matches!(writer.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the write was answered before its WAIT timed out"
    );
    writer.set_nonblocking(false).unwrap();
    writer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = writer.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], format!("-{NOREPLICAS}\r\n").as_bytes());
    let info: String = redis::cmd("INFO").arg("proxy").query(&mut c).unwrap();
    assert!(!info.contains("write_ack_refused:0\r"), "{info}");
    // The replica back: the shard takes writes again.
    mend_master_link(&d.replica_of(0));
    wait_for("writes confirmed again", Duration::from_secs(20), || {
        run(&mut c, &["SET", &format!("{t0}d"), "1"]).is_ok()
    });
}

#[test]
fn write_ack_replica_names_a_backend_user_that_may_not_wait() {
    let env = GroupEnv::statik(1, |_| {});
    let master = env.groups.initial_masters()[0].clone();
    let mut m = env.node(&master);
    let secret = "s3cret-pw";
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "nowait",
            "on",
            &format!(">{secret}"),
            "~*",
            "&*",
            "+@all",
            "-wait",
        ])
        .query(&mut m)
        .unwrap();
    let mut config = env.proxy.shared.live.load().as_ref().clone();
    config.proxy.listen = "127.0.0.1:0".into();
    config.backend.username = Some("nowait".into());
    config.backend.password = Some(secret.to_string().into());
    config.backend.write_ack = WriteAck::Replica;
    let proxy = ProxyHandle::start(config).expect("proxy");
    let mut c = connect(&format!("redis://{}/", proxy.addr));
    let e = error_text(run(&mut c, &["SET", "k", "v"]));
    assert!(
        e.starts_with(&format!("{NOREPLICAS} (WAIT on {master} answered: NOPERM")),
        "{e}"
    );
    assert!(!e.contains(secret), "{e}");
    // Reads need no WAIT.
    let v: String = c.get("k").unwrap();
    assert_eq!(v, "v");
}
