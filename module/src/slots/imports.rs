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

/// What this node last saw of a source while it was up.
#[derive(Debug, Default, Clone)]
struct Source {
    replicas: BTreeSet<String>,
    /// Its slots besides those this node imports from it: a replica that took its place
    /// claims them, and this node's view (which only importing slots ignore) shows it.
    slots: Vec<u16>,
}

/// The sources this node imports from, as last seen while each was up.
#[derive(Debug, Default)]
pub struct Imports {
    sources: BTreeMap<String, Source>,
}

impl Imports {
    /// One look at CLUSTER NODES (this node's own view).
    pub fn look(&mut self, nodes: &[Node]) -> Vec<Repair> {
        let Some(me) = nodes.iter().find(|n| n.myself).filter(|n| n.master) else {
            self.sources.clear();
            return Vec::new();
        };
        let importing: BTreeSet<u16> = me
            .open
            .iter()
            .filter_map(|o| match o {
                Open::Importing { slot, .. } => Some(*slot),
                _ => None,
            })
            .collect();
        let mut sources = BTreeSet::new();
        let mut out = Vec::new();
        for open in &me.open {
            let Open::Importing { slot, from } = open else {
                continue;
            };
            sources.insert(from.clone());
            let src = nodes.iter().find(|n| n.id == *from);
            if let Some(src) = src.filter(|s| !s.down) {
                let seen = Source {
                    replicas: nodes
                        .iter()
                        .filter(|n| n.master_id.as_deref() == Some(from.as_str()))
                        .map(|n| n.id.clone())
                        .collect(),
                    slots: src
                        .slots
                        .iter()
                        .copied()
                        .filter(|s| !importing.contains(s))
                        .collect(),
                };
                self.sources.insert(from.clone(), seen);
                continue;
            }
            let Some(seen) = self.sources.get(from) else {
                continue;
            };
            let took_over = |n: &Node| {
                seen.replicas.contains(&n.id)
                    && n.master
                    && !n.failed
                    && (seen.slots.is_empty()
                        || seen.slots.iter().any(|s| n.slots.binary_search(s).is_ok()))
            };
            if let Some(p) = nodes.iter().find(|n| took_over(n)) {
                out.push(Repair {
                    slot: *slot,
                    owner: p.id.clone(),
                });
            }
        }
        self.sources.retain(|id, _| sources.contains(id));
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
        assert!(im.sources.is_empty());
    }

    #[test]
    fn imports_skip_a_former_replica_that_did_not_take_the_slots() {
        // rrrr moved to another master earlier and is a master of other slots now; the
        // source's slots went to nobody this node can see.
        let mut im = Imports::default();
        im.look(&parse_nodes(BEFORE).unwrap());
        let elsewhere = AFTER.replace("0-99 101-5460", "10923-16383").replace(
            "master,fail - 0 0 1 disconnected 100",
            "master,fail - 0 0 1 disconnected 0-5460",
        );
        assert!(im.look(&parse_nodes(&elsewhere).unwrap()).is_empty());
    }
}
