//! The one parser of `INFO` text (a node's, or the proxy's `# Proxy` section) and of
//! `CLUSTER NODES` output, used by the proxy, the CLI and hive-module.

use std::collections::HashMap;

/// `field:value` lines of INFO output (section headers and blank lines skipped).
pub fn fields(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
        .collect()
}

/// One field of INFO output, trimmed.
pub fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The `k=v,k=v` pairs of a composite INFO value (`slave0:ip=...,port=...`).
pub fn pairs(value: &str) -> HashMap<&str, &str> {
    value.split(',').filter_map(|p| p.split_once('=')).collect()
}

/// A replica as its master's `INFO replication` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub host: String,
    pub port: u16,
    pub state: String,
    pub offset: i64,
    /// Seconds since the replica's last ACK (Redis's `lag` field).
    pub lag_s: i64,
}

impl ReplicaInfo {
    /// Bytes the replica has not yet acknowledged, given the master's offset.
    pub fn lag_bytes(&self, master_offset: i64) -> i64 {
        (master_offset - self.offset).max(0)
    }
}

/// What `INFO replication` says about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// `master` or `replica`.
    pub role: String,
    pub offset: i64,
    /// Replica side: the master, its link status and seconds since its last I/O.
    pub master: Option<(String, u16)>,
    pub link_up: bool,
    pub last_io_s: Option<i64>,
    /// Master side.
    pub replicas: Vec<ReplicaInfo>,
}

pub fn replication(text: &str) -> Replication {
    let f = fields(text);
    let int = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok());
    let role = match f.get("role") {
        Some(&"slave") => "replica",
        _ => "master",
    };
    let master = match (f.get("master_host"), int("master_port")) {
        (Some(h), Some(p)) if role == "replica" => Some((h.to_string(), p as u16)),
        _ => None,
    };
    let mut replicas = Vec::new();
    for i in 0.. {
        let Some(line) = f.get(format!("slave{i}").as_str()) else {
            break;
        };
        let kv = pairs(line);
        let num = |k: &str| kv.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        replicas.push(ReplicaInfo {
            host: kv.get("ip").unwrap_or(&"").to_string(),
            port: num("port") as u16,
            state: kv.get("state").unwrap_or(&"").to_string(),
            offset: num("offset"),
            lag_s: num("lag"),
        });
    }
    let offset = if role == "replica" {
        int("slave_repl_offset").or(int("master_repl_offset"))
    } else {
        int("master_repl_offset")
    };
    Replication {
        role: role.into(),
        offset: offset.unwrap_or(0),
        master,
        link_up: f.get("master_link_status") == Some(&"up"),
        last_io_s: int("master_last_io_seconds_ago"),
        replicas,
    }
}

/// This node's entry in `CLUSTER NODES`: id, master id (replicas), and owned slot ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterSelf {
    pub id: String,
    pub master_id: Option<String>,
    pub slots: Vec<String>,
}

pub fn cluster_self(nodes: &str) -> Option<ClusterSelf> {
    let line = nodes.lines().find(|l| {
        l.split(' ')
            .nth(2)
            .is_some_and(|flags| flags.split(',').any(|f| f == "myself"))
    })?;
    let parts: Vec<&str> = line.split(' ').collect();
    let master_id = parts.get(3).filter(|m| **m != "-").map(|m| m.to_string());
    // Slot fields start at index 8; `[slot->-node]` entries are migrations, not ownership.
    let slots = parts
        .iter()
        .skip(8)
        .filter(|s| !s.starts_with('['))
        .map(|s| s.to_string())
        .collect();
    Some(ClusterSelf {
        id: parts.first()?.to_string(),
        master_id,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
slave0:ip=127.0.0.1,port=7003,state=online,offset=1234,lag=0\r\nmaster_repl_offset:1300\r\n";
    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7000\r\n\
master_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nslave_repl_offset:99\r\nmaster_repl_offset:99\r\n";

    #[test]
    fn info_fields_and_pairs() {
        assert_eq!(field(MASTER, "role"), Some("master"));
        assert_eq!(field(MASTER, "master_repl_offset"), Some("1300"));
        assert_eq!(field(MASTER, "master"), None);
        assert_eq!(fields(MASTER).get("connected_slaves"), Some(&"1"));
        let p = pairs("ip=127.0.0.1,port=7003,state=online");
        assert_eq!((p["ip"], p["port"]), ("127.0.0.1", "7003"));
    }

    #[test]
    fn replication_of_a_master() {
        let r = replication(MASTER);
        assert_eq!(r.role, "master");
        assert_eq!(r.offset, 1300);
        assert_eq!(r.master, None);
        assert_eq!(r.replicas.len(), 1);
        assert_eq!(r.replicas[0].port, 7003);
        assert_eq!(r.replicas[0].offset, 1234);
        assert_eq!(r.replicas[0].state, "online");
        assert_eq!(r.replicas[0].lag_bytes(r.offset), 66);
        assert_eq!(r.replicas[0].lag_bytes(0), 0);
    }

    #[test]
    fn replication_of_a_replica() {
        let r = replication(REPLICA);
        assert_eq!(r.role, "replica");
        assert_eq!(r.master, Some(("127.0.0.1".into(), 7000)));
        assert!(!r.link_up);
        assert_eq!(r.offset, 99);
        assert_eq!(r.last_io_s, Some(-1));
    }

    #[test]
    fn cluster_self_reads_myself_line() {
        let nodes = "a1 127.0.0.1:7001@17001 master - 0 1 2 connected 5461-10922\n\
b2 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 12000 [5000->-a1]\n\
c3 127.0.0.1:7003@17003 slave b2 0 1 1 connected\n";
        let me = cluster_self(nodes).unwrap();
        assert_eq!(me.id, "b2");
        assert_eq!(me.master_id, None);
        assert_eq!(me.slots, vec!["0-5460".to_string(), "12000".to_string()]);
        let replica = nodes
            .replace("myself,master", "master")
            .replace("slave b2", "myself,slave b2");
        let me = cluster_self(&replica).unwrap();
        assert_eq!(
            (me.id.as_str(), me.master_id.as_deref()),
            ("c3", Some("b2"))
        );
        assert!(me.slots.is_empty());
    }
}
