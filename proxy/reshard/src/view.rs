//! What a Redis Cluster says about itself: CLUSTER NODES parsed into nodes, their slots and the
//! slots each master has open (`[slot->-id]` migrating, `[slot-<-id]` importing, which only a
//! node's own line shows). Pure: the text in, plain data out.

use std::collections::BTreeMap;

/// A slot a master has marked open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Open {
    Migrating { slot: u16, to: String },
    Importing { slot: u16, from: String },
}

impl Open {
    pub fn slot(&self) -> u16 {
        match self {
            Open::Migrating { slot, .. } | Open::Importing { slot, .. } => *slot,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    /// `host:port` for clients (IPv6 bracketed); empty for a node without an address.
    pub addr: String,
    pub master: bool,
    /// A replica's master.
    pub master_id: Option<String>,
    /// Flagged `fail` (or `fail?`, `handshake`, `noaddr`): not to be used.
    pub failed: bool,
    pub myself: bool,
    /// Sorted.
    pub slots: Vec<u16>,
    /// Open slots, from the node's own line only.
    pub open: Vec<Open>,
}

/// Parses CLUSTER NODES. A line that does not parse is an error naming it.
pub fn parse_nodes(text: &str) -> Result<Vec<Node>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_line(l).ok_or_else(|| format!("bad CLUSTER NODES line: {l}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Node> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() < 8 {
        return None;
    }
    let flags: Vec<&str> = f[2].split(',').collect();
    let has = |x: &str| flags.contains(&x);
    let hostport = f[1].split(['@', ',']).next()?;
    let addr = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p != "0" => hive_common::addr::join(h, p),
        _ => String::new(),
    };
    let mut slots = Vec::new();
    let mut open = Vec::new();
    for s in &f[8..] {
        if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            if let Some((slot, to)) = inner.split_once("->-") {
                open.push(Open::Migrating {
                    slot: slot.parse().ok()?,
                    to: to.into(),
                });
            } else if let Some((slot, from)) = inner.split_once("-<-") {
                open.push(Open::Importing {
                    slot: slot.parse().ok()?,
                    from: from.into(),
                });
            } else {
                return None;
            }
        } else if let Some((a, b)) = s.split_once('-') {
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            if a > b || b >= 16384 {
                return None;
            }
            slots.extend(a..=b);
        } else {
            let n: u16 = s.parse().ok()?;
            if n >= 16384 {
                return None;
            }
            slots.push(n);
        }
    }
    slots.sort_unstable();
    Some(Node {
        id: f[0].into(),
        master: has("master"),
        master_id: (f[3] != "-").then(|| f[3].to_string()),
        failed: has("fail") || has("fail?") || has("handshake") || has("noaddr") || addr.is_empty(),
        myself: has("myself"),
        addr,
        slots,
        open,
    })
}

/// The cluster as one node sees it, with every master's own open slots and slot claims added.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub nodes: Vec<Node>,
    /// Each reachable master's own view of who owns which slot, by master id: the slots its
    /// own line claims.
    pub claims: BTreeMap<String, Vec<u16>>,
    /// Masters whose view of the slot owners differs from the first master's.
    pub disagree: Vec<String>,
    /// Masters that report `cluster_state:fail` (one that just joined does for a moment).
    pub down: Vec<String>,
}

impl View {
    /// Masters that are up, in address order.
    pub fn masters(&self) -> Vec<&Node> {
        let mut m: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.master && !n.failed)
            .collect();
        m.sort_by(|a, b| a.addr.cmp(&b.addr));
        m
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// A node named by `host:port` or by its id (or an unambiguous prefix of 8+ characters).
    pub fn find(&self, spec: &str) -> Result<&Node, String> {
        let norm = hive_common::addr::normalize(spec);
        if let Some(n) = self.nodes.iter().find(|n| n.addr == norm || n.id == spec) {
            return Ok(n);
        }
        let by_id: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| spec.len() >= 8 && n.id.starts_with(spec))
            .collect();
        match by_id.as_slice() {
            [n] => Ok(n),
            [] => Err(format!(
                "{spec}: no such node in this cluster (known: {})",
                self.nodes
                    .iter()
                    .map(|n| n.addr.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err(format!("{spec}: more than one node id starts with it")),
        }
    }

    /// The master that owns `slot`, as the queried node sees it.
    pub fn owner(&self, slot: u16) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.master && n.slots.binary_search(&slot).is_ok())
    }

    pub fn replicas_of(&self, id: &str) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| !n.master && n.master_id.as_deref() == Some(id))
            .collect()
    }

    /// Whether `id` claims `slot` in its own view.
    pub fn claims(&self, id: &str, slot: u16) -> bool {
        self.claims
            .get(id)
            .is_some_and(|s| s.binary_search(&slot).is_ok())
    }

    /// Every open slot, with the marks the masters hold for it.
    pub fn open_slots(&self) -> BTreeMap<u16, Vec<(String, Open)>> {
        let mut out: BTreeMap<u16, Vec<(String, Open)>> = BTreeMap::new();
        for n in &self.nodes {
            for o in &n.open {
                out.entry(o.slot())
                    .or_default()
                    .push((n.id.clone(), o.clone()));
            }
        }
        out
    }

    /// Slots no master holds.
    pub fn uncovered(&self) -> usize {
        let mut seen = vec![false; 16384];
        for n in self.nodes.iter().filter(|n| n.master) {
            for &s in &n.slots {
                seen[s as usize] = true;
            }
        }
        seen.iter().filter(|s| !**s).count()
    }
}

/// One master's view reduced to what must agree: every master id (empty ones too: a node
/// that just became a replica must not be planned as a master) with its slots.
pub fn owners_signature(nodes: &[Node]) -> Vec<(String, Vec<u16>)> {
    let mut v: Vec<(String, Vec<u16>)> = nodes
        .iter()
        .filter(|n| n.master && !n.failed)
        .map(|n| (n.id.clone(), n.slots.clone()))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5459 5460 [5460->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] [93-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 master,fail,noaddr - 1426238316232 1426238316232 5 disconnected
";

    #[test]
    fn parse_nodes_reads_slots_marks_and_flags() {
        let n = parse_nodes(NODES).unwrap();
        assert_eq!(n.len(), 5);
        let me = &n[3];
        assert!(me.myself && me.master && !me.failed);
        assert_eq!(me.slots.len(), 5461);
        assert_eq!(me.addr, "127.0.0.1:30001");
        assert_eq!(
            me.open,
            vec![
                Open::Migrating {
                    slot: 5460,
                    to: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f".into()
                },
                Open::Importing {
                    slot: 93,
                    from: "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1".into()
                }
            ]
        );
        assert_eq!(n[0].master_id.as_deref(), Some(me.id.as_str()));
        assert!(!n[0].master && !n[0].failed);
        assert!(n[4].failed, "a noaddr node is not usable");
    }

    #[test]
    fn parse_nodes_refuses_bad_lines() {
        assert!(parse_nodes("abc 1.2.3.4:5@6 master").is_err());
        assert!(parse_nodes("a 127.0.0.1:1@2 master - 0 0 1 connected 0-16384\n").is_err());
        assert!(parse_nodes("a 127.0.0.1:1@2 master - 0 0 1 connected [x]\n").is_err());
    }

    #[test]
    fn view_finds_nodes_by_address_and_id_prefix() {
        let v = View {
            nodes: parse_nodes(NODES).unwrap(),
            ..View::default()
        };
        assert_eq!(v.find("127.0.0.1:30002").unwrap().id[..4], *"67ed");
        assert_eq!(v.find("292f8b365b").unwrap().addr, "127.0.0.1:30003");
        assert!(v.find("127.0.0.1:1").unwrap_err().contains("no such node"));
        assert_eq!(v.owner(5460).unwrap().addr, "127.0.0.1:30001");
        assert_eq!(v.masters().len(), 3);
        assert_eq!(v.open_slots().len(), 2);
        assert_eq!(v.uncovered(), 0);
        assert_eq!(
            v.replicas_of(&v.find("127.0.0.1:30001").unwrap().id).len(),
            1
        );
    }
}
