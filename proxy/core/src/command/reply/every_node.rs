//! Replies of a command sent to every node (CONFIG SET/RESETSTAT/REWRITE) or every master
//! (CLIENT PAUSE/UNPAUSE): `+OK` only when every node said OK, else the first error, naming
//! the nodes that refused.

use bytes::Bytes;

use crate::error::{ProxyError, UpstreamReason};

#[derive(Debug)]
pub struct NodeReplies {
    nodes: Vec<String>,
    replies: Vec<Option<Bytes>>,
    left: usize,
}

impl NodeReplies {
    pub fn new(nodes: Vec<String>) -> NodeReplies {
        NodeReplies {
            replies: vec![None; nodes.len()],
            left: nodes.len(),
            nodes,
        }
    }

    pub fn add(&mut self, part: usize, frame: Bytes) -> Option<Bytes> {
        if let Some(r) = self.replies.get_mut(part) {
            if r.replace(frame).is_none() {
                self.left -= 1;
            }
        }
        (self.left == 0).then(|| self.finish())
    }

    fn finish(&self) -> Bytes {
        let refused: Vec<(&str, &Bytes)> = self
            .nodes
            .iter()
            .zip(&self.replies)
            .filter_map(|(n, r)| {
                r.as_ref()
                    .filter(|r| r.first() != Some(&b'+'))
                    .map(|r| (n.as_str(), r))
            })
            .collect();
        let Some((_, first)) = refused.first() else {
            return Bytes::from_static(b"+OK\r\n");
        };
        let text = String::from_utf8_lossy(first);
        let text = text.trim_start_matches('-').trim_end();
        // The node's message after its code (`ERR`, `NOPERM`, ...).
        let msg = text.split_once(' ').map_or(text, |(_, m)| m);
        let names: Vec<&str> = refused.iter().map(|(n, _)| *n).collect();
        let applied: Vec<&str> = self
            .nodes
            .iter()
            .map(|n| n.as_str())
            .filter(|n| !names.contains(n))
            .collect();
        let applied = if applied.is_empty() {
            "no node applied it".to_string()
        } else {
            format!("applied by {}", applied.join(", "))
        };
        ProxyError::upstream(
            UpstreamReason::Refused,
            format!(
                "{msg} (Hive: refused by {} of {} nodes: {}; {applied})",
                names.len(),
                self.nodes.len(),
                names.join(", ")
            ),
        )
        .frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_ok_only_when_all_ok_and_names_refusers() {
        let mut r = NodeReplies::new(vec!["a:1".into(), "b:2".into()]);
        assert!(r.add(0, Bytes::from_static(b"+OK\r\n")).is_none());
        assert_eq!(
            &r.add(1, Bytes::from_static(b"+OK\r\n")).unwrap()[..],
            b"+OK\r\n"
        );
        let mut r = NodeReplies::new(vec!["a:1".into(), "b:2".into(), "c:3".into()]);
        r.add(0, Bytes::from_static(b"+OK\r\n"));
        r.add(1, Bytes::from_static(b"-ERR Invalid argument 'x'\r\n"));
        let out = r
            .add(2, Bytes::from_static(b"-ERR Invalid argument 'x'\r\n"))
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "-ERR Invalid argument 'x' (Hive: refused by 2 of 3 nodes: b:2, c:3; applied by a:1)\r\n"
        );
    }
}
