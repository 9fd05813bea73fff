//! `hive init` on running nodes: six cluster-enabled nodes become a 3+3 cluster, two standalone
//! nodes with a password a master and replica watched by three sentinels; `--dry-run` changes
//! nothing, and a second run finds nothing to do.

use std::time::Duration;

use hive_common::info;
use hive_local::process::redis_sentinel_bin;
use hive_local::{free_port_pair, RedisProcess};
use hive_tests::backups::hive;
use hive_tests::{connect, node_url};

fn text(addr: &str, args: &[&str], pw: Option<&str>) -> String {
    let url = match pw {
        Some(p) => format!("redis://:{p}@{addr}/"),
        None => node_url(addr),
    };
    let mut c = connect(&url);
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<String>(&mut c).unwrap()
}

#[test]
fn init_forms_a_cluster_from_running_nodes_once() {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<RedisProcess> = (0..6)
        .map(|_| {
            let p = free_port_pair().unwrap();
            let conf = format!("nodes-{p}.conf");
            RedisProcess::start(
                dir.path(),
                p,
                &["--cluster-enabled", "yes", "--cluster-config-file", &conf],
            )
            .unwrap()
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let list = addrs.join(",");
    let (ok, out, err) = hive(&["init", "--nodes", &list, "--dry-run"], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("dry run, plan:") && out.contains("CLUSTER ADDSLOTSRANGE 0 5460"),
        "{out}"
    );
    assert_eq!(
        info::field(
            &text(&addrs[0], &["CLUSTER", "INFO"], None),
            "cluster_slots_assigned"
        ),
        Some("0")
    );
    let (ok, out, err) = hive(&["init", "--nodes", &list], &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("the deployment is healthy"), "{out}");
    for a in &addrs {
        let i = text(a, &["CLUSTER", "INFO"], None);
        assert_eq!(info::field(&i, "cluster_state"), Some("ok"), "{a}");
        assert_eq!(info::field(&i, "cluster_known_nodes"), Some("6"), "{a}");
        assert_eq!(info::field(&i, "cluster_size"), Some("3"), "{a}");
    }
    for a in &addrs[3..] {
        assert_eq!(
            info::field(&text(a, &["INFO", "replication"], None), "role"),
            Some("slave"),
            "{a}"
        );
    }
    let (ok, out, _) = hive(&["init", "--nodes", &list], &[]);
    assert!(ok && out.contains("already formed: nothing to do"), "{out}");
    // A standalone node in the list is named, not half-formed.
    let lone = RedisProcess::start(dir.path(), free_port_pair().unwrap(), &[]).unwrap();
    let mut bad = addrs[..3].to_vec();
    bad.push(lone.addr.clone());
    let (ok, _, err) = hive(&["init", "--nodes", &bad.join(",")], &[]);
    assert!(!ok && err.contains("cluster_enabled is 0"), "{err}");
}

#[test]
fn init_forms_a_master_replica_pair_with_sentinels_once() {
    let dir = tempfile::tempdir().unwrap();
    let pw = "init-node-pw";
    let nodes: Vec<RedisProcess> = (0..2)
        .map(|_| {
            RedisProcess::start(
                dir.path(),
                free_port_pair().unwrap(),
                &["--requirepass", pw, "--masterauth", pw],
            )
            .unwrap()
        })
        .collect();
    let sentinels: Vec<RedisProcess> = (0..3)
        .map(|_| {
            let p = free_port_pair().unwrap();
            let conf = dir.path().join(format!("sentinel-{p}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {p}\nbind 127.0.0.1\ndaemonize no\ndir {}\nlogfile sentinel-{p}.log\n",
                    dir.path().display()
                ),
            )
            .unwrap();
            RedisProcess::start_with(
                redis_sentinel_bin(),
                dir.path(),
                p,
                vec![conf.display().to_string()],
            )
            .unwrap()
        })
        .collect();
    let list = format!("{},{}", nodes[0].addr, nodes[1].addr);
    let sl = sentinels
        .iter()
        .map(|s| s.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let env = [("HIVE_NODE_PASSWORD", pw)];
    let args = [
        "init",
        "--nodes",
        &list,
        "--sentinels",
        &sl,
        "--master-name",
        "hive-a",
    ];
    let (ok, out, err) = hive(&args, &env);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("REPLICAOF {}", nodes[0].addr)),
        "{out}"
    );
    assert!(
        !out.contains(pw) && !err.contains(pw),
        "the password leaked: {out}{err}"
    );
    let r = text(&nodes[1].addr, &["INFO", "replication"], Some(pw));
    assert_eq!(info::field(&r, "master_link_status"), Some("up"));
    for s in &sentinels {
        let mut c = connect(&node_url(&s.addr));
        let (host, port): (String, String) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg("hive-a")
            .query(&mut c)
            .unwrap();
        assert_eq!(format!("{host}:{port}"), nodes[0].addr);
    }
    // The sentinels see the replica and each other (they authenticate with the password).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = connect(&node_url(&sentinels[0].addr));
        let ok: redis::RedisResult<String> = redis::cmd("SENTINEL")
            .arg("CKQUORUM")
            .arg("hive-a")
            .query(&mut c);
        if ok.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no quorum: {ok:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, out, _) = hive(&args, &env);
    assert!(ok && out.contains("already formed: nothing to do"), "{out}");
}
