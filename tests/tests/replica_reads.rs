//! Reads from replicas and the failover push, against a real 3+3 cluster with hive-module:
//! where reads and writes land (INFO commandstats on every node), READONLY/READWRITE per
//! connection, a frozen replica and one with its master link down set aside, staleness within
//! the bound, read-your-writes, and a promotion followed on the module's push alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hive_local::{ClusterOpts, LocalCluster};
use hive_proxy::config::{Config, ReadFrom};
use hive_proxy::server::ProxyHandle;
use hive_tests::{connect, error_text, module_so, node_url, run};
use redis::Commands;

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

struct Deployment {
    proxy: ProxyHandle,
    cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

/// A 3+3 cluster with hive-module and a proxy configured by `tweak`.
fn deployment(tweak: impl FnOnce(&mut Config)) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ClusterOpts::new(3, 1, dir.path().to_path_buf());
    opts.extra = vec![
        "--loadmodule".into(),
        module_so().display().to_string(),
        // DEBUG SLEEP freezes a replica (from loopback only).
        "--enable-debug-command".into(),
        "local".into(),
    ];
    let cluster = LocalCluster::start(&opts).expect("cluster");
    // Every master's replica attached, as CLUSTER SLOTS shows it (the push test's proxies
    // read the map once).
    let mut node = connect(&node_url(&cluster.master_addrs()[0]));
    wait_for(
        "the replicas in CLUSTER SLOTS",
        Duration::from_secs(20),
        || {
            let v: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut node).unwrap();
            v.len() >= 3
                && v.iter()
                    .all(|r| matches!(r, redis::Value::Array(a) if a.len() >= 4))
        },
    );
    let proxy = proxy_for(&cluster, tweak);
    Deployment {
        proxy,
        cluster,
        _dir: dir,
    }
}

fn proxy_for(cluster: &LocalCluster, tweak: impl FnOnce(&mut Config)) -> ProxyHandle {
    let mut config = Config::default();
    config.proxy.listen = "127.0.0.1:0".into();
    config.proxy.threads = 2;
    config.backend.seeds = cluster.master_addrs();
    tweak(&mut config);
    let proxy = ProxyHandle::start(config).expect("proxy");
    wait_for("the topology", Duration::from_secs(10), || {
        let t = proxy.shared.topology.load();
        t.map.shards().len() == 3 && t.map.shards().iter().all(|s| !s.replicas.is_empty())
    });
    proxy
}

impl Deployment {
    fn client(&self) -> redis::Connection {
        connect(&format!("redis://{}/", self.proxy.addr))
    }

    fn masters(&self) -> Vec<String> {
        let t = self.proxy.shared.topology.load();
        t.map.shards().iter().map(|s| s.master.clone()).collect()
    }

    fn replica_of(&self, i: usize) -> String {
        self.proxy.shared.topology.load().map.shards()[i].replicas[0].clone()
    }

    /// A hash tag whose keys shard `i` owns.
    fn tag_of(&self, i: usize) -> String {
        let topo = self.proxy.shared.topology.load();
        (0..)
            .map(|n| format!("{{t{n}}}"))
            .find(|t| topo.map.shard_of(hive_common::Slot::for_key(t.as_bytes())) == Some(i))
            .unwrap()
    }

    /// Waits until every shard has `n` replicas the read policy may use.
    fn wait_fresh(&self, n: usize) {
        wait_for("fresh replicas", Duration::from_secs(15), || {
            let m = self.proxy.shared.reads.load();
            m.shards.len() == 3 && m.shards.iter().all(|s| s.len() == n)
        });
    }

    fn replica_reads(&self) -> u64 {
        let mut c = self.client();
        let info: String = redis::cmd("INFO").query(&mut c).unwrap();
        field(&info, "replica_reads")
    }
}

fn field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Calls of `cmd` on the node at `addr` since its last CONFIG RESETSTAT.
fn calls(addr: &str, cmd: &str) -> u64 {
    let mut c = connect(&node_url(addr));
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_stats(addrs: &[String]) {
    for a in addrs {
        let mut c = connect(&node_url(a));
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    }
}

#[test]
fn replica_reads_land_on_replicas_and_writes_on_masters() {
    let d = deployment(|c| c.backend.read_from = ReadFrom::PreferReplica);
    d.wait_fresh(1);
    let mut c = d.client();
    for i in 0..300 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    // Replication of the writes, so every value below is the one just written.
    thread::sleep(Duration::from_millis(300));
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
    thread::sleep(Duration::from_millis(200));
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
    thread::sleep(Duration::from_millis(200));
    let nodes = d.cluster.addrs();
    reset_stats(&nodes);
    let slot_shard = d
        .proxy
        .shared
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
        c.backend.max_replica_lag_ms = 300;
    });
    d.wait_fresh(1);
    let tag = d.tag_of(0);
    let key = format!("{tag}k");
    let mut c = d.client();
    let _: () = c.set(&key, "v").unwrap();
    // The replica stops replicating: its master link goes down and stays down.
    let replica = d.replica_of(0);
    let mut r = connect(&node_url(&replica));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("masterauth")
        .arg("not-the-password")
        .query(&mut r)
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query(&mut r)
        .unwrap();
    wait_for("the replica set aside", Duration::from_secs(10), || {
        d.proxy.shared.reads.load().shards[0].is_empty()
    });
    let e = error_text(run(&mut c, &["GET", &key]));
    assert!(e.starts_with("NOREPLICAS Hive: no replica of shard"), "{e}");
    // Other shards still read from their replicas.
    let other = format!("{}k", d.tag_of(1));
    let _: () = c.set(&other, "x").unwrap();
    wait_for("the write on the replica", Duration::from_secs(5), || {
        c.get::<_, Option<String>>(&other).unwrap().as_deref() == Some("x")
    });
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("masterauth")
        .arg("")
        .query(&mut r)
        .unwrap();
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
    let mut r = connect(&node_url(&replica));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("masterauth")
        .arg("not-the-password")
        .query(&mut r)
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query(&mut r)
        .unwrap();
    wait_for("the link down seen", Duration::from_secs(10), || {
        d.proxy.shared.reads.load().shards[1].is_empty()
    });
    // Written while the replica cannot see it: a read of it must come from the master.
    for i in 0..100 {
        let _: () = c.set(format!("{tag}{i}"), i + 1000).unwrap();
    }
    reset_stats(&[replica.clone()]);
    for i in 0..300 {
        let v: i64 = c.get(format!("{tag}{}", i % 100)).unwrap();
        assert_eq!(v, i % 100 + 1000);
    }
    assert_eq!(
        calls(&replica, "get"),
        0,
        "a replica with its link down got reads"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("masterauth")
        .arg("")
        .query(&mut r)
        .unwrap();
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
    // (sent, answered and value; `None`: no answer within 500 ms, the read waited on the
    // frozen replica and the reader moved to a new connection).
    type Read = (Instant, Option<(Instant, i64)>);
    let reads: Arc<Mutex<Vec<Read>>> = Arc::default();
    let reader = {
        let (url, key, stop, reads) = (url.clone(), key.clone(), stop.clone(), reads.clone());
        thread::spawn(move || {
            let open = || {
                let c = connect(&url);
                c.set_read_timeout(Some(Duration::from_millis(500)))
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
    thread::sleep(Duration::from_millis(800));
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
    // Set aside within the bound plus two polls (and scheduling slack): reads sent later in
    // the freeze are answered at once, by the master.
    let cutoff = frozen_at + Duration::from_millis(bound + 2 * poll + 300);
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
    // Staleness: a read returns at least what was acknowledged `bound + 2 polls` (+ slack)
    // before it was sent.
    let allowed = Duration::from_millis(bound + 2 * poll + 200);
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
    // Once replicas hold the writes, this connection's reads go to them again.
    thread::sleep(Duration::from_millis(600));
    let before = d.replica_reads();
    for i in 0..100 {
        let _: i64 = c.get(format!("ryw{}", i % 64)).unwrap();
    }
    assert_eq!(d.replica_reads() - before, 100);
}

/// Two proxies on one cluster that never re-read the topology on their own (60 s timer, no
/// traffic): the one with the push follows a promotion at once; the one without still
/// routes to the old master.
#[test]
fn failover_push_follows_a_promotion_without_waiting_for_a_poll() {
    let d = deployment(|c| c.backend.refresh_interval_ms = 60_000);
    let blind = proxy_for(&d.cluster, |c| {
        c.backend.refresh_interval_ms = 60_000;
        c.backend.failover_push = false;
    });
    // Subscriptions are made once the topology is in.
    thread::sleep(Duration::from_millis(1000));
    let old = d.masters()[0].clone();
    let replica = d.replica_of(0);
    let mut r = connect(&node_url(&replica));
    let _: String = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("TAKEOVER")
        .query(&mut r)
        .unwrap();
    let promoted = Instant::now();
    wait_for("the pushed promotion", Duration::from_secs(5), || {
        d.proxy
            .shared
            .topology
            .load()
            .map
            .shards()
            .iter()
            .any(|s| s.master == replica)
    });
    let followed_in = promoted.elapsed();
    let masters: Vec<String> = blind
        .shared
        .topology
        .load()
        .map
        .shards()
        .iter()
        .map(|s| s.master.clone())
        .collect();
    assert!(
        masters.contains(&old),
        "without the push nothing re-read the map: {masters:?}"
    );
    assert!(!masters.contains(&replica));
    let mut c = d.client();
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    assert!(field(&info, "failover_pushes") >= 1, "{info}");
    assert!(field(&info, "module_events") >= 1);
    // Writes through either proxy land (the blind one follows the MOVED).
    let tag = d.tag_of(0);
    let _: () = c.set(format!("{tag}a"), 1).unwrap();
    let mut b = connect(&format!("redis://{}/", blind.addr));
    let _: () = b.set(format!("{tag}b"), 2).unwrap();
    eprintln!("promotion followed in {} ms", followed_in.as_millis());
}
