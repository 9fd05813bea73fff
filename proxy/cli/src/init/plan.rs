//! What `hive init` must do to the nodes it was given, from what they say about themselves:
//! a list of steps, empty when the deployment is already formed (so a second run changes
//! nothing). Pure: unit-tested on CLUSTER NODES and INFO texts.

use std::fmt;

/// One change to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AddSlots {
        node: String,
        start: u16,
        end: u16,
    },
    SetEpoch {
        node: String,
        epoch: u64,
    },
    Meet {
        node: String,
        other: String,
    },
    Replicate {
        node: String,
        master: String,
        master_id: String,
    },
    ReplicaOf {
        node: String,
        master: String,
    },
    Monitor {
        sentinel: String,
        name: String,
        master: String,
        quorum: u32,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::AddSlots { node, start, end } => {
                write!(f, "{node}: CLUSTER ADDSLOTSRANGE {start} {end}")
            }
            Step::SetEpoch { node, epoch } => write!(f, "{node}: CLUSTER SET-CONFIG-EPOCH {epoch}"),
            Step::Meet { node, other } => write!(f, "{node}: CLUSTER MEET {other}"),
            Step::Replicate {
                node,
                master,
                master_id,
            } => {
                write!(
                    f,
                    "{node}: CLUSTER REPLICATE {master_id} (a replica of {master})"
                )
            }
            Step::ReplicaOf { node, master } => write!(f, "{node}: REPLICAOF {master}"),
            Step::Monitor {
                sentinel,
                name,
                master,
                quorum,
            } => {
                write!(f, "{sentinel}: SENTINEL MONITOR {name} {master} {quorum}")
            }
        }
    }
}

/// A cluster node as its own CLUSTER NODES `myself` line and the lines it knows describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterNode {
    pub addr: String,
    pub id: String,
    /// Addresses (`ip:port`) of every other node it knows, handshakes excluded.
    pub known: Vec<String>,
    /// Slots it serves.
    pub slots: usize,
    /// The id of its master, when it is a replica.
    pub master_id: Option<String>,
}

/// Reads a node's CLUSTER NODES text.
pub fn parse_cluster_nodes(addr: &str, text: &str) -> Result<ClusterNode, String> {
    let mut me = ClusterNode {
        addr: addr.to_string(),
        ..ClusterNode::default()
    };
    let mut found = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let flags = f[2];
        let endpoint = f[1].split('@').next().unwrap_or("").to_string();
        if flags.contains("myself") {
            found = true;
            me.id = f[0].to_string();
            me.master_id = (f[3] != "-").then(|| f[3].to_string());
            me.slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => {
                        b.parse::<usize>().unwrap_or(0) + 1 - a.parse::<usize>().unwrap_or(0)
                    }
                    None => 1,
                })
                .sum();
        } else if !flags.contains("handshake") && !flags.contains("noaddr") {
            me.known.push(endpoint);
        }
    }
    if !found {
        return Err(format!("{addr}: CLUSTER NODES has no `myself` line"));
    }
    Ok(me)
}

/// Even slot ranges for `n` masters, as Redis's own `--cluster create` splits them.
pub fn ranges(n: usize) -> Vec<(u16, u16)> {
    let per = 16384.0 / n as f64;
    (0..n)
        .map(|i| {
            let start = (i as f64 * per).round() as u16;
            let end = (((i + 1) as f64 * per).round() as u16).saturating_sub(1);
            (start, end)
        })
        .collect()
}

/// Whether `nodes` already are one formed cluster: every slot served, everyone knows everyone,
/// every node a master with slots or a replica of one, `replicas` per master.
fn formed(nodes: &[ClusterNode], replicas: usize) -> bool {
    let slots: usize = nodes.iter().map(|n| n.slots).sum();
    let everyone_known = nodes.iter().all(|n| n.known.len() + 1 >= nodes.len());
    let masters: Vec<&ClusterNode> = nodes.iter().filter(|n| n.slots > 0).collect();
    let attached = masters.iter().all(|m| {
        nodes
            .iter()
            .filter(|n| n.master_id.as_deref() == Some(m.id.as_str()))
            .count()
            >= replicas
    });
    let placed = nodes.iter().all(|n| {
        n.slots > 0
            || n.master_id
                .as_ref()
                .is_some_and(|id| masters.iter().any(|m| &m.id == id))
    });
    slots == 16384 && everyone_known && attached && placed
}

/// The steps that form a cluster of `nodes` with `replicas` replicas per master: the first
/// `nodes.len() / (replicas + 1)` nodes become masters, in order, the rest their replicas.
pub fn cluster(nodes: &[ClusterNode], replicas: usize) -> Result<Vec<Step>, String> {
    let masters = nodes.len() / (replicas + 1);
    if masters < 3 {
        return Err(format!(
            "a cluster needs at least 3 masters: {} nodes with {replicas} replica(s) each make {masters}",
            nodes.len()
        ));
    }
    if formed(nodes, replicas) {
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    let assigned: usize = nodes.iter().map(|n| n.slots).sum();
    if assigned == 0 {
        for (i, (start, end)) in ranges(masters).into_iter().enumerate() {
            steps.push(Step::AddSlots {
                node: nodes[i].addr.clone(),
                start,
                end,
            });
            steps.push(Step::SetEpoch {
                node: nodes[i].addr.clone(),
                epoch: i as u64 + 1,
            });
        }
    } else if assigned != 16384 {
        return Err(format!(
            "{assigned} of 16384 slots are assigned: a cluster half made by hand; fix it with `redis-cli --cluster fix` first"
        ));
    }
    let first = &nodes[0];
    for n in &nodes[1..] {
        if !first.known.contains(&n.addr) {
            steps.push(Step::Meet {
                node: first.addr.clone(),
                other: n.addr.clone(),
            });
        }
    }
    for (j, r) in nodes[masters..].iter().enumerate() {
        let m = &nodes[j % masters];
        if r.master_id.as_deref() == Some(m.id.as_str()) {
            continue;
        }
        if r.slots > 0 {
            return Err(format!(
                "{} serves slots: it cannot become a replica of {}",
                r.addr, m.addr
            ));
        }
        steps.push(Step::Replicate {
            node: r.addr.clone(),
            master: m.addr.clone(),
            master_id: m.id.clone(),
        });
    }
    Ok(steps)
}

/// A standalone node as INFO replication shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standalone {
    pub addr: String,
    /// `host:port` of its master, when it is a replica.
    pub master: Option<String>,
}

/// The steps for a master and a replica, and the sentinels watching them as `name`; nothing
/// for what is already so (either node may be the master after a failover).
pub fn group(
    master: &Standalone,
    replica: &Standalone,
    sentinels: &[(String, Option<String>)],
    name: &str,
    quorum: u32,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let paired = replica.master.as_deref() == Some(master.addr.as_str())
        || master.master.as_deref() == Some(replica.addr.as_str());
    if !paired {
        steps.push(Step::ReplicaOf {
            node: replica.addr.clone(),
            master: master.addr.clone(),
        });
    }
    for (s, watching) in sentinels {
        let known = watching
            .as_deref()
            .is_some_and(|a| a == master.addr || a == replica.addr);
        if !known {
            steps.push(Step::Monitor {
                sentinel: s.clone(),
                name: name.to_string(),
                master: master.addr.clone(),
                quorum,
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        addr: &str,
        id: &str,
        known: &[&str],
        slots: usize,
        master: Option<&str>,
    ) -> ClusterNode {
        ClusterNode {
            addr: addr.into(),
            id: id.into(),
            known: known.iter().map(|s| s.to_string()).collect(),
            slots,
            master_id: master.map(str::to_string),
        }
    }

    #[test]
    fn init_parses_cluster_nodes() {
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b2]\n\
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922\n\
c3 127.0.0.1:7002@17002 handshake - 0 0 0 connected\n";
        let n = parse_cluster_nodes("127.0.0.1:7000", text).unwrap();
        assert_eq!(n.id, "a1");
        assert_eq!(n.slots, 5461);
        assert_eq!(n.known, ["127.0.0.1:7001"]);
        assert_eq!(n.master_id, None);
        assert!(parse_cluster_nodes("x", "").is_err());
    }

    #[test]
    fn init_ranges_cover_every_slot_once() {
        for n in [3, 5, 7] {
            let r = ranges(n);
            assert_eq!(r[0].0, 0);
            assert_eq!(r[n - 1].1, 16383);
            assert!(r.windows(2).all(|w| w[0].1 + 1 == w[1].0));
        }
        assert_eq!(ranges(3), [(0, 5460), (5461, 10922), (10923, 16383)]);
    }

    #[test]
    fn init_plans_a_fresh_cluster_then_nothing() {
        let addrs: Vec<String> = (0..6).map(|i| format!("10.0.0.{i}:6379")).collect();
        let fresh: Vec<ClusterNode> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| node(a, &format!("id{i}"), &[], 0, None))
            .collect();
        let steps = cluster(&fresh, 1).unwrap();
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s, Step::AddSlots { .. }))
                .count(),
            3
        );
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s, Step::Meet { .. }))
                .count(),
            5
        );
        assert_eq!(
            steps.last(),
            Some(&Step::Replicate {
                node: addrs[5].clone(),
                master: addrs[2].clone(),
                master_id: "id2".into()
            })
        );
        // Formed (even with roles swapped by a failover): nothing to do.
        let all = |i: usize| -> Vec<&str> {
            addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.as_str())
                .collect()
        };
        let done = vec![
            node(&addrs[0], "id0", &all(0), 5461, None),
            node(&addrs[1], "id1", &all(1), 5462, None),
            node(&addrs[2], "id2", &all(2), 0, Some("id5")),
            node(&addrs[3], "id3", &all(3), 0, Some("id0")),
            node(&addrs[4], "id4", &all(4), 0, Some("id1")),
            node(&addrs[5], "id5", &all(5), 5461, None),
        ];
        assert_eq!(cluster(&done, 1).unwrap(), []);
        // Half made by hand: refused with the way out.
        let mut half = fresh.clone();
        half[0].slots = 100;
        assert!(cluster(&half, 1)
            .unwrap_err()
            .contains("redis-cli --cluster fix"));
        assert!(cluster(&fresh[..4], 1)
            .unwrap_err()
            .contains("at least 3 masters"));
    }

    #[test]
    fn init_plans_a_group_once() {
        let m = Standalone {
            addr: "a:1".into(),
            master: None,
        };
        let r = Standalone {
            addr: "b:1".into(),
            master: None,
        };
        let s = vec![
            ("s:1".to_string(), None),
            ("s:2".to_string(), Some("a:1".to_string())),
        ];
        let steps = group(&m, &r, &s, "hive", 2);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].to_string(), "b:1: REPLICAOF a:1");
        assert_eq!(steps[1].to_string(), "s:1: SENTINEL MONITOR hive a:1 2");
        // After a failover: b is master, a its replica, sentinels follow b.
        let m2 = Standalone {
            addr: "a:1".into(),
            master: Some("b:1".into()),
        };
        let r2 = Standalone {
            addr: "b:1".into(),
            master: None,
        };
        let s2 = vec![("s:1".to_string(), Some("b:1".to_string()))];
        assert!(group(&m2, &r2, &s2, "hive", 2).is_empty());
    }
}
