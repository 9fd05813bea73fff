//! Sentinel and static modes against real redis-server and redis-sentinel processes: routing,
//! failovers (kill -9, graceful, with a sentinel down), the restarted old master, a stale
//! sentinel, and the hold running out.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hive_common::resp::{Request, RequestDecoder};
use hive_tests::{heavy, suites, GroupEnv};
use redis::Commands;

#[test]
fn sentinel_mode_routes_splits_and_pipelines_with_auth() {
    let env = GroupEnv::sentinel(3, Some("s3cret"), |_| {});
    suites::keys_land_on_owners(&env.proxy, Some("s3cret"));
    suites::splits_merge(&env.url());
    suites::pipeline_keeps_order(&env.url());
    let info: String = redis::cmd("INFO")
        .arg("proxy")
        .query(&mut env.client())
        .unwrap();
    assert!(info.contains("backend_mode:sentinel"), "{info}");
    assert!(info.contains("shard0:name=hive-a,"), "{info}");
}

#[test]
fn static_mode_routes_splits_and_pipelines() {
    let env = GroupEnv::statik(3, |_| {});
    suites::keys_land_on_owners(&env.proxy, None);
    suites::splits_merge(&env.url());
    suites::pipeline_keeps_order(&env.url());
}

/// Standalone masters take keys of any slot, so a split sends each master one command, not one
/// per slot; the merged reply keeps the request's key order.
#[test]
fn static_mode_splits_one_part_per_shard() {
    let env = GroupEnv::statik(3, |_| {});
    let masters: Vec<String> = (0..3).map(|i| env.routed_master(i)).collect();
    for m in &masters {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut env.node(m))
            .unwrap();
    }
    let keys: Vec<String> = (0..30).map(|i| format!("split:{i}")).collect();
    let owners: std::collections::HashSet<usize> = keys
        .iter()
        .filter_map(|k| {
            let topo = env.proxy.shared.plane.topology.load();
            topo.map.shard_of(hive_common::Slot::for_key(k.as_bytes()))
        })
        .collect();
    assert_eq!(owners.len(), 3, "the keys must cover every shard");
    let pairs: Vec<(String, usize)> = keys.iter().cloned().zip(0..).collect();
    let mut c = env.client();
    let _: () = c.mset(&pairs).unwrap();
    let got: Vec<usize> = c.mget(&keys).unwrap();
    assert_eq!(got, (0..30).collect::<Vec<_>>());
    for m in &masters {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut env.node(m))
            .unwrap();
        for cmd in ["mset", "mget"] {
            assert!(
                stats.contains(&format!("cmdstat_{cmd}:calls=1,")),
                "{m} should have run one {cmd}: {stats}"
            );
        }
    }
}

/// Writers over every shard; records acknowledged values and errors per shard.
struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<thread::JoinHandle<Seen>>,
}

#[derive(Default)]
struct Seen {
    acked: HashMap<String, i64>,
    errors: Vec<(usize, String, Instant)>,
    ok_at: Vec<(usize, Instant)>,
}

fn start_load(env: &GroupEnv, writers: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let shards = env.proxy.shared.plane.topology.load().map.shards().len();
    let tags: Vec<String> = (0..shards).map(|i| env.tag_of(i)).collect();
    let handles = (0..writers)
        .map(|w| {
            let (url, stop, tags) = (env.url(), stop.clone(), tags.clone());
            thread::spawn(move || {
                let mut c = hive_tests::connect(&url);
                let mut seen = Seen::default();
                let started = Instant::now();
                let mut i: i64 = 0;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    let shard = i as usize % tags.len();
                    let key = format!("{}w{w}:{i}", tags[shard]);
                    match c.set::<_, _, ()>(&key, i) {
                        Ok(()) => {
                            seen.acked.insert(key, i);
                            seen.ok_at.push((shard, Instant::now()));
                        }
                        Err(e) => seen.errors.push((shard, e.to_string(), Instant::now())),
                    }
                    i += 1;
                }
                seen
            })
        })
        .collect();
    Load { stop, handles }
}

impl Load {
    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Seen::default();
        for h in self.handles {
            let s = h.join().expect("writer");
            all.acked.extend(s.acked);
            all.errors.extend(s.errors);
            all.ok_at.extend(s.ok_at);
        }
        all
    }
}

fn read_back(env: &GroupEnv, acked: &HashMap<String, i64>) -> usize {
    let mut c = env.client();
    let keys: Vec<&String> = acked.keys().collect();
    let mut missing = 0;
    for chunk in keys.chunks(500) {
        let vals: Vec<Option<i64>> = redis::cmd("MGET").arg(chunk).query(&mut c).unwrap();
        missing += chunk
            .iter()
            .zip(vals)
            .filter(|(k, v)| *v != Some(acked[**k]))
            .count();
    }
    missing
}

/// Waits until the master's replication offset is acknowledged by its replica.
fn wait_replicated(env: &GroupEnv, master: &str) {
    let mut c = env.node(master);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
        let offset = hive_common::info::field(&info, "master_repl_offset").unwrap();
        let slave = hive_common::info::field(&info, "slave0").unwrap_or_default();
        if slave.contains(&format!("offset={offset},")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica did not catch up: {info}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Subscribes to `+switch-master` on a sentinel; the receiver gets the arrival time.
fn watch_switch(env: &GroupEnv) -> std::sync::mpsc::Receiver<Instant> {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = env.groups.sentinels.last().unwrap().addr.clone();
    let password = env.groups.password.clone();
    thread::spawn(move || {
        let client = redis::Client::open(suites::url(&addr, password.as_deref())).unwrap();
        let mut con = client.get_connection().unwrap();
        let mut ps = con.as_pubsub();
        ps.subscribe("+switch-master").unwrap();
        if ps.get_message().is_ok() {
            let _ = tx.send(Instant::now());
        }
    });
    thread::sleep(Duration::from_millis(200));
    rx
}

#[test]
fn killed_master_fails_over_and_other_groups_never_fail() {
    let _g = heavy();
    let mut env = GroupEnv::sentinel(3, None, |_| {});
    let victim = env.routed_master(0);
    // Phase 1: writes everywhere, then wait until the victim's replica has them all.
    let before = start_load(&env, 3);
    thread::sleep(Duration::from_millis(700));
    let phase1 = before.finish();
    assert!(
        phase1.errors.is_empty(),
        "{:?}",
        &phase1.errors[..phase1.errors.len().min(3)]
    );
    wait_replicated(&env, &victim);
    // Phase 2: kill -9 the master of shard 0 under load.
    let switched = watch_switch(&env);
    let load = start_load(&env, 3);
    thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    env.groups.node_mut(&victim).unwrap().kill();
    let switch_at = switched
        .recv_timeout(Duration::from_secs(30))
        .expect("+switch-master");
    thread::sleep(Duration::from_secs(2));
    let seen = load.finish();
    // Other groups never failed.
    let others: Vec<_> = seen.errors.iter().filter(|(s, _, _)| *s != 0).collect();
    assert!(
        others.is_empty(),
        "errors on healthy groups: {:?}",
        &others[..others.len().min(3)]
    );
    // Shard 0 writes were held, then succeeded again soon after the switch: the longest gap
    // between two successful shard-0 writes is the outage.
    let mut times: Vec<Instant> = seen
        .ok_at
        .iter()
        .filter(|(s, _)| *s == 0)
        .map(|(_, t)| *t)
        .collect();
    times.sort();
    let mut last = killed_at;
    let mut outage = Duration::ZERO;
    for t in times.into_iter().filter(|t| *t > killed_at) {
        outage = outage.max(t - last);
        last = t;
    }
    assert!(last > switch_at, "shard 0 never recovered after the switch");
    let failover = switch_at - killed_at;
    eprintln!(
        "kill -9: sentinel failover took {} ms, shard-0 writes stalled {} ms, {} errors on the failed group",
        failover.as_millis(),
        outage.as_millis(),
        seen.errors.len()
    );
    assert!(
        outage <= Duration::from_millis(1000) + failover + Duration::from_secs(2),
        "outage {outage:?}"
    );
    for (_, e, _) in &seen.errors {
        assert!(e.contains("lost") || e.contains("TRYAGAIN"), "{e}");
    }
    assert_ne!(env.routed_master(0), victim);
    // Everything acknowledged and replicated before the kill is still there; so is everything
    // the healthy groups acknowledged.
    assert_eq!(read_back(&env, &phase1.acked), 0);
    let tag0 = env.tag_of(0);
    let healthy: HashMap<String, i64> = seen
        .acked
        .into_iter()
        .filter(|(k, _)| !k.starts_with(&tag0))
        .collect();
    assert_eq!(read_back(&env, &healthy), 0);

    // The old master comes back: Sentinel turns it into a replica and Hive never writes to it.
    let watching = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (shared, watching, victim) =
            (env.proxy.shared.clone(), watching.clone(), victim.clone());
        thread::spawn(move || {
            let mut routed_to_victim = false;
            while watching.load(Ordering::Relaxed) {
                routed_to_victim |= shared.plane.topology.load().map.shards()[0].master == victim;
                thread::sleep(Duration::from_millis(10));
            }
            routed_to_victim
        })
    };
    let load = start_load(&env, 2);
    env.groups.node_mut(&victim).unwrap().restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut env.node(&victim)).unwrap();
        if role.first() == Some(&redis::Value::BulkString(b"slave".to_vec())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old master was not turned into a replica"
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(500));
    let seen = load.finish();
    watching.store(false, Ordering::Relaxed);
    assert!(
        !sampler.join().unwrap(),
        "the proxy routed to the restarted old master"
    );
    assert!(
        seen.errors.is_empty(),
        "{:?}",
        &seen.errors[..seen.errors.len().min(3)]
    );
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut env.node(&victim))
        .unwrap();
    for line in clients.lines().filter(|l| !l.contains("flags=M")) {
        assert!(
            !line.contains("cmd=set"),
            "a client wrote to the old master: {line}"
        );
    }
    assert_eq!(read_back(&env, &seen.acked), 0);
}

#[test]
fn graceful_failover_with_a_sentinel_down_loses_nothing() {
    let _g = heavy();
    let mut env = GroupEnv::sentinel(3, None, |_| {});
    let old = env.routed_master(1);
    // The first sentinel in the proxy's list dies: discovery and events use the others.
    env.groups.sentinels[0].kill();
    let load = start_load(&env, 3);
    thread::sleep(Duration::from_millis(500));
    let name = env.groups.names()[1].clone();
    let alive = env.groups.sentinels[1].addr.clone();
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(&name)
        .query(&mut env.node(&alive))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.routed_master(1) == old || env.routed_master(1).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the proxy did not follow the failover"
        );
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_secs(1));
    let seen = load.finish();
    assert!(
        seen.errors.is_empty(),
        "{:?}",
        &seen.errors[..seen.errors.len().min(3)]
    );
    assert_eq!(env.routed_master(1), env.groups.master_of(&name).unwrap());
    // Writes were held, not sent to the demoted master: every acknowledged write survived.
    assert_eq!(read_back(&env, &seen.acked), 0, "acknowledged writes lost");
}

#[test]
fn single_group_deployment_fails_over() {
    let _g = heavy();
    let env = GroupEnv::sentinel(1, None, |_| {});
    let mut c = env.client();
    for i in 0..200 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 200);
    let old = env.routed_master(0);
    let name = env.groups.names()[0].clone();
    let s = env.groups.sentinels[0].addr.clone();
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(&name)
        .query(&mut env.node(&s))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.routed_master(0) == old || env.routed_master(0).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the proxy did not follow the failover"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let v: Vec<i64> = redis::cmd("MGET")
        .arg("k0")
        .arg("k199")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, [0, 199]);
    let _: () = c.set("after", 1).unwrap();
}

/// A fake sentinel that names `reported` as the master of every group.
fn stale_sentinel(reported: String) -> (String, Arc<Mutex<u32>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let asked = Arc::new(Mutex::new(0));
    let counter = asked.clone();
    thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let counter = counter.clone();
            let reported = reported.clone();
            thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                let mut dec = RequestDecoder::default();
                let mut buf = bytes::BytesMut::new();
                loop {
                    let Ok(chunk) = r.fill_buf() else { return };
                    if chunk.is_empty() {
                        return;
                    }
                    buf.extend_from_slice(chunk);
                    let n = chunk.len();
                    r.consume(n);
                    while let Ok(Some(req)) = dec.decode(&mut buf) {
                        let args: Vec<String> = req
                            .args()
                            .map(|a| String::from_utf8_lossy(a).to_lowercase())
                            .collect();
                        let reply: Vec<u8> = match args
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .as_slice()
                        {
                            ["sentinel", "get-master-addr-by-name", _] => {
                                *counter.lock().unwrap() += 1;
                                let (h, p) = reported.split_once(':').unwrap();
                                Request::from_args(&[h, p]).raw().to_vec()
                            }
                            ["sentinel", "replicas", _] => b"*0\r\n".to_vec(),
                            // Subscribed, but never says anything.
                            ["subscribe", ..] => Vec::new(),
                            _ => b"-ERR unknown\r\n".to_vec(),
                        };
                        let _ = w.write_all(&reply);
                    }
                }
            });
        }
    });
    (addr, asked)
}

#[test]
fn stale_sentinel_answer_is_refused() {
    let env = GroupEnv::sentinel(2, None, |_| {});
    let real = env.groups.sentinel_addrs();
    let replica = env.groups.groups[0].nodes[1].addr.clone();
    let (fake, asked) = stale_sentinel(replica.clone());
    let masters = env.groups.initial_masters();
    let mut config = env.proxy.shared.config.clone();
    config.backend.sentinels = std::iter::once(fake).chain(real).collect();
    let proxy = hive_proxy::server::ProxyHandle::start(config).unwrap();
    assert!(
        *asked.lock().unwrap() >= 1,
        "the stale sentinel was asked first"
    );
    let topo = proxy.shared.plane.topology.load();
    let routed: Vec<&str> = topo
        .map
        .shards()
        .iter()
        .map(|s| s.master.as_str())
        .collect();
    assert_eq!(
        routed,
        masters.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let mut c = hive_tests::connect(&format!("redis://{}/", proxy.addr));
    for i in 0..100 {
        let _: () = c.set(format!("s{i}"), i).unwrap();
    }
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut env.node(&replica))
        .unwrap();
    for line in clients.lines().filter(|l| !l.contains("flags=M")) {
        assert!(
            !line.contains("cmd=set"),
            "a client wrote to the replica: {line}"
        );
    }
}

#[test]
fn hold_running_out_answers_tryagain_and_spares_other_shards() {
    let mut env = GroupEnv::statik(2, |c| c.backend.failover_hold_ms = 300);
    let dead = env.routed_master(0);
    env.groups.node_mut(&dead).unwrap().kill();
    let mut c = env.client();
    let started = Instant::now();
    let e = c
        .set::<_, _, ()>(format!("{}x", env.tag_of(0)), 1)
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(e.code(), Some("TRYAGAIN"), "{e}");
    assert!(e.to_string().contains(&dead), "{e}");
    assert!(
        waited >= Duration::from_millis(250),
        "answered after {waited:?}, before the hold ran out"
    );
    let _: () = c.set(format!("{}x", env.tag_of(1)), 1).unwrap();
}
