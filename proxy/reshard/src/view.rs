//! What a Redis Cluster says about itself: CLUSTER NODES parsed into nodes, their slots and the
//! slots each master has open (`[slot->-id]` migrating, `[slot-<-id]` importing, which only a
//! node's own line shows). Pure: the text in, plain data out.

use std::collections::BTreeMap;

pub use hive_common::topology::nodes::{parse_nodes, Node, Open};

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
