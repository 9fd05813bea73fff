//! A Redis Cluster source master killed with SIGKILL in the middle of a slot. Redis keeps the
//! MIGRATING mark on the master alone; hive-module's marks let the promoted replica carry the
//! move on: a key that moved is asked for on the target, a key of the last unconfirmed
//! MIGRATE waits, and `hive reshard --resume` settles it and finishes the slot. Once with the
//! marks set by hand (each case made to happen), once under a ledger load with a real
//! `hive reshard` killed at a random point.

use std::process::{Command, Stdio};
use std::time::Duration;

use hive_common::Slot;
use hive_proxy::config::WriteAck;
use hive_tests::backups::{check_populated, hive, populate_parallel};
use hive_tests::ledger::LedgerLoad;
use hive_tests::module_cluster::{deployment, poll_until, wait_for, Deployment};
use hive_tests::{connect, hive_bin, node_url};

use super::{masters_of, open_marks};

fn cmd(addr: &str, args: &[&str]) -> redis::Value {
    let mut c = connect(&node_url(addr));
    let mut q = redis::cmd(args[0]);
    for a in &args[1..] {
        q.arg(*a);
    }
    q.query(&mut c)
        .unwrap_or_else(|e| panic!("{args:?} on {addr}: {e}"))
}

/// `args` on `addr` after ASKING (on one connection).
fn asking(addr: &str, args: &[&str]) {
    let mut c = connect(&node_url(addr));
    let _: () = redis::cmd("ASKING").query(&mut c).unwrap();
    let mut q = redis::cmd(args[0]);
    for a in &args[1..] {
        q.arg(*a);
    }
    let _: redis::Value = q.query(&mut c).unwrap();
}

fn id(addr: &str) -> String {
    redis::from_redis_value(&cmd(addr, &["CLUSTER", "MYID"])).unwrap()
}

/// hive-module's slot state on `addr`.
fn module_state(addr: &str) -> serde_json::Value {
    let text: String = redis::from_redis_value(&cmd(addr, &["HIVE.SLOTS", "GET"])).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Waits for the proxy to route by three masters, none of them `dead`.
fn promoted(d: &Deployment, dead: &str) -> Vec<String> {
    wait_for("the replica's promotion", Duration::from_secs(30), || {
        let t = d.proxy.shared.plane.topology.load();
        t.masters().len() == 3 && t.masters().iter().all(|m| m != dead)
    });
    d.proxy.shared.plane.topology.load().masters()
}

/// `hive reshard --resume` until the cluster has settled enough for it to run.
fn resume(seed: &str) -> serde_json::Value {
    let mut last = String::new();
    let mut out = serde_json::Value::Null;
    let done = poll_until(Duration::from_secs(60), || {
        let (ok, stdout, err) = hive(&["reshard", "--cluster", seed, "--resume", "--json"], &[]);
        last = err;
        if ok {
            out = serde_json::from_str(&stdout).unwrap();
        }
        ok
    });
    assert!(done, "--resume never finished: {last}");
    out
}

/// Keys a master holds in slots it does not own (a copy left behind by a move).
fn strays(addr: &str) -> u64 {
    let owned: Vec<(u16, u16)> = {
        let text: String = redis::from_redis_value(&cmd(addr, &["CLUSTER", "NODES"])).unwrap();
        let me = text
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap()
            .to_string();
        me.split(' ')
            .skip(8)
            .filter(|f| !f.starts_with('['))
            .map(|f| match f.split_once('-') {
                Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                None => (f.parse().unwrap(), f.parse().unwrap()),
            })
            .collect()
    };
    let mut c = connect(&node_url(addr));
    let mut p = redis::pipe();
    for s in 0..16384u16 {
        if !owned.iter().any(|(a, b)| (*a..=*b).contains(&s)) {
            p.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(s);
        }
    }
    let counts: Vec<u64> = p.query(&mut c).unwrap();
    counts.iter().sum()
}

/// No slot open, no hive-module mark left, and no master holding a key of a slot it does not
/// own (a copy left on two masters).
fn settled(masters: &[String]) {
    assert!(open_marks(masters).is_empty(), "{:?}", open_marks(masters));
    for m in masters {
        assert_eq!(strays(m), 0, "{m} keeps keys of slots it does not own");
        let st = module_state(m);
        assert!(
            st.get("standby").is_none()
                && st.get("inflight").is_none()
                && st["migrating"] == serde_json::json!([]),
            "{m}: {st}"
        );
    }
}

#[test]
fn reshard_promoted_replica_guards_the_slot_and_resume_keeps_the_live_copy() {
    let _heavy = hive_tests::heavy();
    let mut d = deployment(|c| c.backend.failover_hold_ms = 30_000);
    let m = d.cluster.master_addrs();
    let (src, dst) = (m[0].clone(), m[1].clone());
    // A slot of the first master, and three keys in it.
    let tag = (0..)
        .map(|i| format!("{{t{i}}}"))
        .find(|t| Slot::for_key(t.as_bytes()).get() < 5000)
        .unwrap();
    let slot = Slot::for_key(tag.as_bytes()).get().to_string();
    let (moved, stale, fresh) = (
        format!("{tag}moved"),
        format!("{tag}stale"),
        format!("{tag}fresh"),
    );
    let mut c = d.client();
    for k in [&moved, &stale, &fresh] {
        let () = redis::cmd("SET").arg(k).arg("v1").query(&mut c).unwrap();
    }

    // What `hive reshard` does, step by step: the slot opened, marked on the source's module,
    // one key moved, two more marked in flight (confirmed on the replica).
    cmd(&dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id(&src)]);
    cmd(&src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id(&dst)]);
    cmd(&src, &["HIVE.SETSLOTS", "STANDBY", &dst, &slot]);
    let (host, port) = dst.rsplit_once(':').unwrap();
    cmd(
        &src,
        &["MIGRATE", host, port, "", "0", "5000", "KEYS", &moved],
    );
    cmd(&src, &["HIVE.SETSLOTS", "INFLIGHT", &stale, &fresh]);
    // `stale` reaches the target but its DEL never reaches the replica (COPY keeps it here,
    // as a crash before the DEL is replicated would); a client then writes it on the target.
    cmd(
        &src,
        &[
            "MIGRATE", host, port, "", "0", "5000", "COPY", "KEYS", &stale,
        ],
    );
    asking(&dst, &["SET", &stale, "v2"]);
    asking(&dst, &["SET", &moved, "v2"]);
    let acked: i64 = redis::from_redis_value(&cmd(&src, &["WAIT", "1", "5000"])).unwrap();
    assert_eq!(acked, 1);
    let replica = d.cluster.nodes[3].addr.clone();
    assert_eq!(module_state(&replica)["standby"][0]["slots"], slot.as_str());

    d.cluster.nodes[0].kill();
    // A read sent at once waits out the failover, then the target's repair of its view
    // (CLUSTERDOWN until then), and gets the moved key's value, not an error.
    let early = {
        let (url, k) = (format!("redis://{}/", d.proxy.addr), moved.clone());
        std::thread::spawn(move || {
            redis::cmd("GET")
                .arg(&k)
                .query::<String>(&mut connect(&url))
        })
    };
    let masters = promoted(&d, &src);
    assert!(masters.contains(&replica), "{masters:?}");
    assert_eq!(early.join().unwrap().unwrap(), "v2");
    let st = module_state(&replica);
    assert_eq!(st["migrating"][0]["slots"], slot.as_str(), "{st}");
    assert_eq!(st["suspect"], true, "{st}");

    // Before any resume: the moved key is read from the target, through the promoted
    // replica's ASK; the keys in flight wait.
    let v: String = redis::cmd("GET").arg(&moved).query(&mut c).unwrap();
    assert_eq!(v, "v2", "a key that moved is read where it went");
    let waiting: Vec<_> = [stale.clone(), fresh.clone()]
        .into_iter()
        .map(|k| {
            let url = format!("redis://{}/", d.proxy.addr);
            std::thread::spawn(move || {
                let v: String = redis::cmd("GET").arg(&k).query(&mut connect(&url)).unwrap();
                v
            })
        })
        .collect();
    wait_for("both reads to wait", Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").query(&mut c).unwrap();
        hive_tests::module_cluster::field(&info, "tryagain_waits") >= 2
    });
    assert!(waiting.iter().all(|t| !t.is_finished()));

    let out = resume(&dst);
    assert_eq!(out["resumed"]["stale_copies"], 1, "{out}");
    let got: Vec<String> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(got, ["v2", "v1"], "the live copy of each key in flight");
    settled(&masters);
    for (k, want) in [(&moved, "v2"), (&stale, "v2"), (&fresh, "v1")] {
        let v: String = redis::cmd("GET").arg(k).query(&mut c).unwrap();
        assert_eq!(v, want, "{k}");
    }
}

const KEYS: usize = 20_000;

#[test]
fn reshard_cluster_source_killed_mid_slot_loses_nothing_acknowledged() {
    let _heavy = hive_tests::heavy();
    let mut d = deployment(|c| {
        // Writes are acknowledged once a replica has them, so a master's crash loses none.
        c.backend.write_ack = WriteAck::Replica;
        c.backend.failover_hold_ms = 30_000;
    });
    let u = format!("redis://{}/", d.proxy.addr);
    populate_parallel(&u, KEYS, 4);
    let m = d.cluster.master_addrs();
    let (src, dst) = (m[0].clone(), m[1].clone());
    let load = LedgerLoad::start_named(&u, 10, Duration::from_secs(240), "c");
    wait_for("the load to run", Duration::from_secs(10), || {
        load.ops() > 100
    });

    // One key per MIGRATE: the source's module is marked for most of the run.
    let mut child = Command::new(hive_bin())
        .args([
            "reshard",
            "--cluster",
            &src,
            "--slots",
            "3000",
            "--from",
            &src,
            "--to",
            &dst,
            "--batch-keys",
            "1",
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hive reshard");
    let caught = poll_until(Duration::from_secs(60), || {
        let st = module_state(&src);
        st.get("standby").is_some() && st.get("inflight").is_some()
    });
    assert!(caught, "the reshard never marked a slot");
    d.cluster.nodes[0].kill();
    let masters = promoted(&d, &src);
    // The run stops (its source is gone); bounded either way.
    let _ = child.kill();
    let _ = child.wait();

    let out = resume(&dst);
    eprintln!("resumed after the source's kill: {out}");
    let ledger = load.stop();
    let lost = ledger.older_than_acknowledged(&u);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    settled(&masters);
    assert_eq!(check_populated(&u, KEYS, 7), KEYS.div_ceil(7));
    assert_eq!(masters_of(&dst).len(), 3);
}
