//! What a Redis Cluster target does when the source of a slot it imports fails over. Redis
//! leaves an importing slot's owner alone whatever the gossip says ("it should be modified
//! only manually"), so the target goes on naming the dead master as the owner, reports
//! `cluster_state:fail`, and refuses every command (CLUSTERDOWN) until someone fixes it by
//! hand. The target's hive-module remembers the replicas of each source while it is up; once
//! the cluster marks the source failed and one of them is a master, the slot is given to it
//! and imported from it (`CLUSTER SETSLOT … NODE`, then `IMPORTING`), and the move goes on
//! from there (`hive reshard --resume`). Pure: CLUSTER NODES in, the repairs out.

use std::collections::{BTreeMap, BTreeSet};

use hive_common::topology::nodes::{Node, Open};

/// A slot to give to `owner` (its source's promoted replica) and import from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub slot: u16,
    pub owner: String,
}

/// The replicas of each source this node imports from, as last seen while it was up.
#[derive(Debug, Default)]
pub struct Imports {
    replicas: BTreeMap<String, BTreeSet<String>>,
}

impl Imports {
    /// One look at CLUSTER NODES (this node's own view).
    pub fn look(&mut self, nodes: &[Node]) -> Vec<Repair> {
        let Some(me) = nodes.iter().find(|n| n.myself).filter(|n| n.master) else {
            self.replicas.clear();
            return Vec::new();
        };
        let mut sources = BTreeSet::new();
        let mut out = Vec::new();
        for open in &me.open {
            let Open::Importing { slot, from } = open else {
                continue;
            };
            sources.insert(from.clone());
            let src = nodes.iter().find(|n| n.id == *from);
            if src.is_some_and(|s| !s.down) {
                let seen = self.replicas.entry(from.clone()).or_default();
                seen.extend(
                    nodes
                        .iter()
                        .filter(|n| n.master_id.as_deref() == Some(from.as_str()))
                        .map(|n| n.id.clone()),
                );
                continue;
            }
            let Some(seen) = self.replicas.get(from) else {
                continue;
            };
            if let Some(p) = nodes
                .iter()
                .find(|n| seen.contains(&n.id) && n.master && !n.failed)
            {
                out.push(Repair {
                    slot: *slot,
                    owner: p.id.clone(),
                });
            }
        }
        self.replicas.retain(|id, _| sources.contains(id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_common::topology::nodes::parse_nodes;

    const BEFORE: &str = "\
aaaa 127.0.0.1:7000@17000 master - 0 0 1 connected 0-5460
bbbb 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 5461-10922 [100-<-aaaa]
rrrr 127.0.0.1:7003@17003 slave aaaa 0 0 1 connected
";
    const AFTER: &str = "\
aaaa 127.0.0.1:7000@17000 master,fail - 0 0 1 disconnected 100
bbbb 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 5461-10922 [100-<-aaaa]
rrrr 127.0.0.1:7003@17003 master - 0 0 7 connected 0-99 101-5460
";

    #[test]
    fn imports_give_the_slot_to_the_promoted_replica() {
        let mut im = Imports::default();
        assert!(im.look(&parse_nodes(BEFORE).unwrap()).is_empty());
        assert_eq!(
            im.look(&parse_nodes(AFTER).unwrap()),
            vec![Repair {
                slot: 100,
                owner: "rrrr".into()
            }]
        );
    }

    #[test]
    fn imports_wait_while_the_source_is_only_suspected() {
        let mut im = Imports::default();
        im.look(&parse_nodes(BEFORE).unwrap());
        let pfail = AFTER.replace("master,fail", "master,fail?");
        let pfail = pfail.replace(
            "rrrr 127.0.0.1:7003@17003 master -",
            "rrrr 127.0.0.1:7003@17003 slave aaaa",
        );
        assert!(im.look(&parse_nodes(&pfail).unwrap()).is_empty());
    }

    #[test]
    fn imports_do_nothing_without_a_known_replica_or_as_a_replica() {
        // Never saw the source's replicas (started after the failover): left to the operator.
        let mut im = Imports::default();
        assert!(im.look(&parse_nodes(AFTER).unwrap()).is_empty());
        let mut im = Imports::default();
        im.look(&parse_nodes(BEFORE).unwrap());
        let replica = AFTER.replace("myself,master -", "myself,slave rrrr");
        assert!(im.look(&parse_nodes(&replica).unwrap()).is_empty());
        assert!(im.replicas.is_empty());
    }
}
