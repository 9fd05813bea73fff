//! CLUSTER NODES parsed into nodes, their slots and the slots a node has open (`[slot->-id]`
//! migrating, `[slot-<-id]` importing, which only a node's own line shows). Used by the CLI's
//! resharding and by hive-module. Pure: the text in, plain data out.

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
    /// Flagged `fail`: the cluster agreed it is down (a replica may have taken its place).
    pub down: bool,
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
        Some((h, p)) if !h.is_empty() && p != "0" => crate::addr::join(h, p),
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
        down: has("fail"),
        myself: has("myself"),
        addr,
        slots,
        open,
    })
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
}
