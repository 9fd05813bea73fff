//! Reads from replicas and the failover push, against a real 3+3 cluster with hive-module:
//! where reads and writes land (INFO commandstats on every node), READONLY/READWRITE per
//! connection, a frozen replica and one with its master link down set aside, staleness within
//! the bound, and read-your-writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hive_proxy::config::ReadFrom;
use hive_tests::module_cluster::{
    break_master_link, calls, deployment, mend_master_link, reset_stats, wait_caught_up, wait_for,
};
use hive_tests::{connect, error_text, heavy, node_url, run};
use redis::Commands;

#[test]
fn replica_reads_land_on_replicas_and_writes_on_masters() {
    let d = deployment(|c| c.backend.read_from = ReadFrom::PreferReplica);
    d.wait_fresh(1);
    let mut c = d.client();
    for i in 0..300 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    // Replication of the writes, so every value below is the one just written.
    d.wait_replicated();
    let nodes = d.cluster.addrs();
    reset_stats(&nodes);
    for i in 0..300 {
        let v: i64 = c.get(format!("k{i}")).unwrap();
        assert_eq!(v, i);
    }
    // Cluster replicas serve reads only on connections that sent READONLY.
    for i in 0..3 {
        assert!(calls(&d.replica_of(i), "readonly") >= 1);
    }
    for i in 0..90 {
        let _: () = c.set(format!("w{i}"), i).unwrap();
    }
    let masters = d.masters();
    let replicas: Vec<String> = (0..3).map(|i| d.replica_of(i)).collect();
    let on_masters: u64 = masters.iter().map(|m| calls(m, "get")).sum();
    let on_replicas: Vec<u64> = replicas.iter().map(|r| calls(r, "get")).collect();
    assert_eq!(on_masters, 0, "no read may reach a master");
    assert_eq!(on_replicas.iter().sum::<u64>(), 300, "{on_replicas:?}");
    assert!(on_replicas.iter().all(|&n| n > 0), "{on_replicas:?}");
    assert_eq!(masters.iter().map(|m| calls(m, "set")).sum::<u64>(), 90);
    // Replicas run the masters' writes over replication, and no other.
    d.wait_replicated();
    assert_eq!(replicas.iter().map(|r| calls(r, "set")).sum::<u64>(), 90);
    // Inside MULTI every command goes to the master.
    redis::cmd("MULTI").query::<()>(&mut c).unwrap();
    redis::cmd("GET").arg("k1").query::<()>(&mut c).unwrap();
    let r: Vec<i64> = redis::cmd("EXEC").query(&mut c).unwrap();
    assert_eq!(r, vec![1]);
    assert_eq!(masters.iter().map(|m| calls(m, "get")).sum::<u64>(), 1);
    assert!(d.replica_reads() >= 300);
}

#[test]
fn replica_reads_follow_readonly_and_readwrite_per_connection() {
    let d = deployment(|_| {});
    let mut plain = d.client();
    let mut reader = d.client();
    let _: () = plain.set("{t}k", "v").unwrap();
    let _: String = redis::cmd("READONLY").query(&mut reader).unwrap();
    d.wait_fresh(1);
    d.wait_replicated();
    let nodes = d.cluster.addrs();
    reset_stats(&nodes);
    let slot_shard = d
        .proxy
        .shared
        .plane
        .topology
        .load()
        .map
        .shard_of(hive_common::Slot::for_key(b"{t}k"))
        .unwrap();
    let (master, replica) = (d.masters()[slot_shard].clone(), d.replica_of(slot_shard));
    for _ in 0..50 {
        let v: String = reader.get("{t}k").unwrap();
        assert_eq!(v, "v");
        let v: String = plain.get("{t}k").unwrap();
        assert_eq!(v, "v");
    }
    assert_eq!(
        calls(&replica, "get"),
        50,
        "READONLY reads go to the replica"
    );
    assert_eq!(
        calls(&master, "get"),
        50,
        "the other connection reads the master"
    );
    let _: String = redis::cmd("READWRITE").query(&mut reader).unwrap();
    for _ in 0..20 {
        let _: String = reader.get("{t}k").unwrap();
    }
    assert_eq!(calls(&master, "get"), 70, "READWRITE brings reads back");
    assert_eq!(calls(&replica, "get"), 50);
    // Writes of a READONLY connection still go to the master.
    let _: String = redis::cmd("READONLY").query(&mut reader).unwrap();
    let _: () = reader.set("{t}k", "w").unwrap();
    assert_eq!(calls(&master, "set"), 1);
}

#[test]
fn replica_read_from_replica_refuses_when_none_is_fresh() {
    let d = deployment(|c| {
        c.backend.read_from = ReadFrom::Replica;
    });
    d.wait_fresh(1);
    let tag = d.tag_of(0);
    let key = format!("{tag}k");
    let mut c = d.client();
    let _: () = c.set(&key, "v").unwrap();
    // The replica stops replicating: its master link goes down and stays down.
    let replica = d.replica_of(0);
    break_master_link(&replica);
    wait_for("the replica set aside", Duration::from_secs(10), || {
        d.proxy.shared.plane.reads.load().shards[0].is_empty()
    });
    let e = error_text(run(&mut c, &["GET", &key]));
    assert!(e.starts_with("NOREPLICAS Hive: no replica of shard"), "{e}");
    // Other shards still read from their replicas.
    let other = format!("{}k", d.tag_of(1));
    let _: () = c.set(&other, "x").unwrap();
    wait_for("the write on the replica", Duration::from_secs(5), || {
        c.get::<_, Option<String>>(&other).ok().flatten().as_deref() == Some("x")
    });
    mend_master_link(&replica);
    wait_for("the replica back", Duration::from_secs(15), || {
        run(&mut c, &["GET", &key]).is_ok()
    });
}

#[test]
fn replica_with_master_link_down_gets_no_reads() {
    let d = deployment(|c| c.backend.read_from = ReadFrom::PreferReplica);
    d.wait_fresh(1);
    let tag = d.tag_of(1);
    let mut c = d.client();
    for i in 0..100 {
        let _: () = c.set(format!("{tag}{i}"), i).unwrap();
    }
    let replica = d.replica_of(1);
    break_master_link(&replica);
    wait_for("the link down seen", Duration::from_secs(10), || {
        d.proxy.shared.plane.reads.load().shards[1].is_empty()
    });
    // Written while the replica cannot see it: a read of it must come from the master.
    for i in 0..100 {
        let _: () = c.set(format!("{tag}{i}"), i + 1000).unwrap();
    }
    reset_stats(std::slice::from_ref(&replica));
    for i in 0..300 {
        let v: i64 = c.get(format!("{tag}{}", i % 100)).unwrap();
        assert_eq!(v, i % 100 + 1000);
    }
    assert_eq!(
        calls(&replica, "get"),
        0,
        "a replica with its link down got reads"
    );
    mend_master_link(&replica);
    d.wait_fresh(1);
    wait_for("reads back on the replica", Duration::from_secs(10), || {
        let _: i64 = c.get(format!("{tag}1")).unwrap();
        calls(&replica, "get") > 0
    });
}

/// A writer increments a counter through the proxy while a reader reads it through the proxy;
/// the counter's replica is frozen for 3 s. Reads stop reaching it within the lag bound plus
/// a poll or two, and no read returns a value older than the bound allows.
#[test]
fn replica_frozen_stops_reads_and_staleness_stays_bounded() {
    let _g = heavy();
    let bound = 500;
    let poll = 100;
    let d = deployment(|c| {
        c.backend.read_from = ReadFrom::PreferReplica;
        c.backend.max_replica_lag_ms = bound;
        c.backend.replica_poll_interval_ms = poll;
    });
    d.wait_fresh(1);
    let tag = d.tag_of(2);
    let key = format!("{tag}counter");
    let replica = d.replica_of(2);
    let url = format!("redis://{}/", d.proxy.addr);
    let stop = Arc::new(AtomicBool::new(false));
    // (when acknowledged, value)
    let acked: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let writer = {
        let (url, key, stop, acked) = (url.clone(), key.clone(), stop.clone(), acked.clone());
        thread::spawn(move || {
            let mut c = connect(&url);
            while !stop.load(Ordering::Relaxed) {
                let v: i64 = c.incr(&key, 1).unwrap();
                acked.lock().unwrap().push((Instant::now(), v));
                thread::sleep(Duration::from_millis(2));
            }
        })
    };
    // (sent, answered and value; `None`: no answer within 1.5 s, the read waited on the
    // frozen replica and the reader moved to a new connection).
    type Read = (Instant, Option<(Instant, i64)>);
    let reads: Arc<Mutex<Vec<Read>>> = Arc::default();
    let reader = {
        let (url, key, stop, reads) = (url.clone(), key.clone(), stop.clone(), reads.clone());
        thread::spawn(move || {
            let open = || {
                let c = connect(&url);
                c.set_read_timeout(Some(Duration::from_millis(1500)))
                    .unwrap();
                c
            };
            let mut c = open();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                match c.get::<_, Option<i64>>(&key) {
                    Ok(v) => reads
                        .lock()
                        .unwrap()
                        .push((sent, Some((Instant::now(), v.unwrap_or(0))))),
                    Err(_) => {
                        reads.lock().unwrap().push((sent, None));
                        c = open();
                    }
                }
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Reads flow to the replica before it freezes.
    let flowing = calls(&replica, "get");
    wait_for("reads on the replica", Duration::from_secs(10), || {
        calls(&replica, "get") > flowing + 50
    });
    let frozen_at = Instant::now();
    let sleeper = {
        let replica = replica.clone();
        thread::spawn(move || {
            let mut r = connect(&node_url(&replica));
            let _: () = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(3)
                .query(&mut r)
                .unwrap();
        })
    };
    sleeper.join().unwrap();
    let woke_at = Instant::now();
    // Back on the replica once it caught up.
    let before = calls(&replica, "get");
    wait_for(
        "reads back on the woken replica",
        Duration::from_secs(10),
        || calls(&replica, "get") > before + 10,
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    reader.join().unwrap();
    let acked = acked.lock().unwrap();
    let reads = reads.lock().unwrap();
    assert!(reads.len() > 200, "{} reads", reads.len());
    // Set aside within the bound plus a poll and a probe (and scheduling slack): reads sent later in
    // the freeze are answered at once, by the master.
    // A probe gets the interval, and at least 250 ms.
    let probe = 250;
    let cutoff = frozen_at + Duration::from_millis(bound + poll + probe + 300);
    let late: Vec<_> = reads
        .iter()
        .filter(|(sent, _)| *sent > cutoff && *sent < woke_at - Duration::from_millis(200))
        .collect();
    assert!(late.len() > 50, "{} reads during the freeze", late.len());
    for (sent, answer) in &late {
        assert!(
            answer.is_some(),
            "a read sent {} ms into the freeze waited for the frozen replica",
            (*sent - frozen_at).as_millis(),
        );
    }
    let waited = reads.iter().filter(|(_, a)| a.is_none()).count();
    eprintln!("{waited} read(s) caught by the freeze before it was seen");
    // Staleness: a read returns at least what was acknowledged `bound + poll + probe` (+ slack)
    // before it was sent.
    let allowed = Duration::from_millis(bound + poll + probe + 200);
    for (sent, answer) in reads.iter() {
        let Some((_, v)) = answer else { continue };
        let Some(horizon) = sent.checked_sub(allowed) else {
            continue;
        };
        let floor = acked
            .iter()
            .take_while(|(at, _)| *at <= horizon)
            .last()
            .map_or(0, |(_, v)| *v);
        assert!(
            *v >= floor,
            "a read sent {} ms after the freeze returned {v}, older than {floor} (acknowledged {} ms before)",
            sent.saturating_duration_since(frozen_at).as_millis(),
            allowed.as_millis()
        );
    }
}

#[test]
fn read_your_writes_never_returns_an_older_value() {
    let _g = heavy();
    let d = deployment(|c| {
        c.backend.read_from = ReadFrom::PreferReplica;
        c.backend.read_your_writes = true;
    });
    d.wait_fresh(1);
    let mut c = d.client();
    for i in 0..10_000i64 {
        let key = format!("ryw{}", i % 64);
        let _: () = c.set(&key, i).unwrap();
        let v: i64 = c.get(&key).unwrap();
        assert_eq!(v, i, "pair {i} read an older value");
    }
    // Pipelined: the read is sent before the write is answered.
    for i in 0..500i64 {
        let key = format!("ryw{}", i % 64);
        let (_, v): ((), i64) = redis::pipe().set(&key, -i).get(&key).query(&mut c).unwrap();
        assert_eq!(v, -i);
    }
    // Once replicas hold the writes (and the poller has seen it), this connection's reads go
    // to them again: on every shard, so each of the 64 keys is read until all land there (one
    // key alone shows only its own shard's replica caught up).
    d.wait_replicated();
    wait_for(
        "reads back on every shard's replica",
        Duration::from_secs(10),
        || {
            let before = d.replica_reads();
            for i in 0..64 {
                let _: i64 = c.get(format!("ryw{i}")).unwrap();
            }
            d.replica_reads() - before == 64
        },
    );
    let before = d.replica_reads();
    for i in 0..100 {
        let _: i64 = c.get(format!("ryw{}", i % 64)).unwrap();
    }
    assert_eq!(d.replica_reads() - before, 100);
}

/// Static mode without the module: the replicas listed in `[[backend.shards]]`, judged by
/// offsets alone (how long ago the master had the offset the replica reached).
#[test]
fn replica_reads_in_static_mode_use_the_configured_replicas_by_offset() {
    let env = hive_tests::GroupEnv::statik(2, |c| c.backend.read_from = ReadFrom::PreferReplica);
    wait_for("fresh replicas", Duration::from_secs(15), || {
        let m = env.proxy.shared.plane.reads.load();
        m.shards.len() == 2 && m.shards.iter().all(|s| s.len() == 1)
    });
    let mut c = env.client();
    for i in 0..100 {
        let _: () = c.set(format!("s{i}"), i).unwrap();
    }
    let replicas: Vec<String> = env
        .groups
        .static_shards()
        .iter()
        .map(|s| s.replicas[0].clone())
        .collect();
    let masters = env.groups.initial_masters();
    // Without read_your_writes a replica may lag by up to the staleness bound: wait until each
    // has its master's offset, so every value below must be there (a fixed sleep failed on a
    // loaded machine).
    let pairs: Vec<(String, String)> = masters
        .iter()
        .cloned()
        .zip(replicas.iter().cloned())
        .collect();
    wait_caught_up(&pairs);
    reset_stats(&replicas);
    reset_stats(&masters);
    for i in 0..100 {
        let v: i64 = c.get(format!("s{i}")).unwrap();
        assert_eq!(v, i);
    }
    assert_eq!(replicas.iter().map(|r| calls(r, "get")).sum::<u64>(), 100);
    assert_eq!(masters.iter().map(|m| calls(m, "get")).sum::<u64>(), 0);
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    assert!(info.contains("state=readable"), "{info}");
}
