//! The shapes of `HIVE.TOPOLOGY` and `HIVE.LAG` replies, built from what INFO and CLUSTER
//! NODES said. Pure: unit-tested without Redis; the adapter only gathers the inputs.

use hive_common::info::{ClusterSelf, Replication};

use crate::reply::Reply;

fn s(v: impl Into<String>) -> Reply {
    Reply::Str(v.into())
}

fn map(pairs: Vec<(&str, Reply)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// `HIVE.TOPOLOGY`: the node's role, ids, offset, master link, replicas and (in a cluster)
/// its slots.
pub fn topology(
    repl: &Replication,
    run_id: &str,
    me: Option<&ClusterSelf>,
    version: &str,
) -> Reply {
    let master = match &repl.master {
        Some((host, port)) => map(vec![
            ("host", s(host.clone())),
            ("port", Reply::Int(i64::from(*port))),
            ("link_status", s(if repl.link_up { "up" } else { "down" })),
            (
                "last_io_age_ms",
                match repl.last_io_s {
                    Some(n) if n >= 0 => Reply::Int(n * 1000),
                    _ => Reply::Null,
                },
            ),
        ]),
        None => Reply::Null,
    };
    let replicas = repl
        .replicas
        .iter()
        .map(|r| {
            map(vec![
                ("host", s(r.host.clone())),
                ("port", Reply::Int(i64::from(r.port))),
                ("state", s(r.state.clone())),
                ("offset", Reply::Int(r.offset)),
                ("lag_bytes", Reply::Int(r.lag_bytes(repl.offset))),
            ])
        })
        .collect();
    map(vec![
        ("role", s(repl.role.clone())),
        ("run_id", s(run_id)),
        ("node_id", me.map_or(Reply::Null, |m| s(m.id.clone()))),
        ("repl_offset", Reply::Int(repl.offset)),
        ("master", master),
        ("replicas", Reply::Array(replicas)),
        ("cluster_enabled", Reply::Bool(me.is_some())),
        (
            "slots",
            Reply::Array(
                me.map(|m| m.slots.iter().cloned().map(Reply::Str).collect())
                    .unwrap_or_default(),
            ),
        ),
        ("module_version", s(version)),
    ])
}

/// What a replica knows of the master's heartbeats (unix ms): the master's clock in the last
/// one, our clock when it arrived, and when the module loaded.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeats {
    pub master_ms: Option<u64>,
    pub local_ms: Option<u64>,
    pub loaded_ms: u64,
}

/// `HIVE.LAG`: on a master, each replica's unacknowledged bytes and ACK age; on a replica,
/// how far behind the master's clock the last heartbeat is.
pub fn lag(repl: &Replication, hb: Heartbeats, now_ms: u64) -> Reply {
    if repl.role == "master" {
        let replicas = repl
            .replicas
            .iter()
            .map(|r| {
                map(vec![
                    ("host", s(r.host.clone())),
                    ("port", Reply::Int(i64::from(r.port))),
                    ("lag_bytes", Reply::Int(r.lag_bytes(repl.offset))),
                    ("ack_age_ms", Reply::Int(r.lag_s.max(0) * 1000)),
                ])
            })
            .collect();
        return map(vec![
            ("role", s("master")),
            ("replicas", Reply::Array(replicas)),
        ]);
    }
    // Without any heartbeat yet, lag counts from module load: it grows, never reads 0.
    let lag_ms = now_ms.saturating_sub(hb.master_ms.unwrap_or(hb.loaded_ms));
    let since = now_ms.saturating_sub(hb.local_ms.unwrap_or(hb.loaded_ms));
    map(vec![
        ("role", s("replica")),
        ("lag_ms", Reply::Int(lag_ms as i64)),
        ("since_last_heartbeat_ms", Reply::Int(since as i64)),
        ("link", s(if repl.link_up { "up" } else { "down" })),
        // A replica cannot know the master's current offset.
        ("lag_bytes", Reply::Null),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_common::info::ReplicaInfo;

    fn get<'a>(r: &'a Reply, k: &str) -> &'a Reply {
        let Reply::Map(m) = r else {
            panic!("not a map: {r:?}")
        };
        &m.iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("no {k}"))
            .1
    }

    fn master_with_replica() -> Replication {
        Replication {
            role: "master".into(),
            offset: 1000,
            master: None,
            link_up: false,
            last_io_s: None,
            replicas: vec![ReplicaInfo {
                host: "127.0.0.1".into(),
                port: 7003,
                state: "online".into(),
                offset: 900,
                lag_s: 2,
            }],
        }
    }

    #[test]
    fn topology_of_a_cluster_master_names_its_slots_and_replicas() {
        let me = ClusterSelf {
            id: "abc".into(),
            master_id: None,
            slots: vec!["0-5460".into()],
        };
        let r = topology(&master_with_replica(), "run1", Some(&me), "0.1.0");
        assert_eq!(get(&r, "role"), &Reply::Str("master".into()));
        assert_eq!(get(&r, "run_id"), &Reply::Str("run1".into()));
        assert_eq!(get(&r, "node_id"), &Reply::Str("abc".into()));
        assert_eq!(get(&r, "repl_offset"), &Reply::Int(1000));
        assert_eq!(get(&r, "master"), &Reply::Null);
        assert_eq!(get(&r, "cluster_enabled"), &Reply::Bool(true));
        assert_eq!(
            get(&r, "slots"),
            &Reply::Array(vec![Reply::Str("0-5460".into())])
        );
        let Reply::Array(reps) = get(&r, "replicas") else {
            panic!("replicas is an array")
        };
        assert_eq!(get(&reps[0], "port"), &Reply::Int(7003));
        assert_eq!(get(&reps[0], "state"), &Reply::Str("online".into()));
        assert_eq!(get(&reps[0], "lag_bytes"), &Reply::Int(100));
        assert_eq!(get(&r, "module_version"), &Reply::Str("0.1.0".into()));
    }

    #[test]
    fn topology_of_a_standalone_replica_shows_its_master_link() {
        let repl = Replication {
            role: "slave".into(),
            offset: 5,
            master: Some(("127.0.0.1".into(), 7000)),
            link_up: true,
            last_io_s: Some(1),
            replicas: Vec::new(),
        };
        let r = topology(&repl, "run2", None, "0.1.0");
        assert_eq!(get(&r, "node_id"), &Reply::Null);
        assert_eq!(get(&r, "cluster_enabled"), &Reply::Bool(false));
        assert_eq!(get(&r, "slots"), &Reply::Array(Vec::new()));
        let m = get(&r, "master");
        assert_eq!(get(m, "port"), &Reply::Int(7000));
        assert_eq!(get(m, "link_status"), &Reply::Str("up".into()));
        assert_eq!(get(m, "last_io_age_ms"), &Reply::Int(1000));
        // A negative `master_last_io_seconds_ago` (never) is no age at all.
        let never = Replication {
            last_io_s: Some(-1),
            ..repl
        };
        let r = topology(&never, "run2", None, "0.1.0");
        assert_eq!(get(get(&r, "master"), "last_io_age_ms"), &Reply::Null);
    }

    #[test]
    fn lag_on_a_master_lists_each_replica() {
        let hb = Heartbeats {
            master_ms: None,
            local_ms: None,
            loaded_ms: 0,
        };
        let r = lag(&master_with_replica(), hb, 10);
        assert_eq!(get(&r, "role"), &Reply::Str("master".into()));
        let Reply::Array(reps) = get(&r, "replicas") else {
            panic!("replicas is an array")
        };
        assert_eq!(get(&reps[0], "lag_bytes"), &Reply::Int(100));
        assert_eq!(get(&reps[0], "ack_age_ms"), &Reply::Int(2000));
    }

    #[test]
    fn lag_on_a_replica_counts_from_the_last_heartbeat_or_from_load() {
        let repl = Replication {
            role: "slave".into(),
            offset: 5,
            master: Some(("127.0.0.1".into(), 7000)),
            link_up: false,
            last_io_s: None,
            replicas: Vec::new(),
        };
        let beat = Heartbeats {
            master_ms: Some(9_700),
            local_ms: Some(9_800),
            loaded_ms: 1_000,
        };
        let r = lag(&repl, beat, 10_000);
        assert_eq!(get(&r, "role"), &Reply::Str("replica".into()));
        assert_eq!(get(&r, "lag_ms"), &Reply::Int(300));
        assert_eq!(get(&r, "since_last_heartbeat_ms"), &Reply::Int(200));
        assert_eq!(get(&r, "link"), &Reply::Str("down".into()));
        assert_eq!(get(&r, "lag_bytes"), &Reply::Null);
        let none = Heartbeats {
            master_ms: None,
            local_ms: None,
            loaded_ms: 1_000,
        };
        let r = lag(&repl, none, 10_000);
        assert_eq!(get(&r, "lag_ms"), &Reply::Int(9_000));
        assert_eq!(get(&r, "since_last_heartbeat_ms"), &Reply::Int(9_000));
    }
}
