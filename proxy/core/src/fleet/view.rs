//! The fleet as cluster clients see it: each live Hive a master node with an equal share of
//! the slots, in id order, so every Hive that sees the same members gives the same map.

use hive_common::SLOT_COUNT;

/// One Hive of the fleet: the address clients reach it at and the node id made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub addr: String,
}

impl Member {
    pub fn new(addr: String) -> Member {
        Member {
            id: node_id(&addr),
            addr,
        }
    }

    /// Host and port, for CLUSTER SLOTS and NODES.
    pub fn host_port(&self) -> (String, u16) {
        match hive_common::addr::split(&self.addr) {
            Some((h, p)) => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse().unwrap_or(0),
            ),
            None => (self.addr.clone(), 0),
        }
    }
}

/// A stable 40-hex-digit node id derived from the address clients reach a Hive at.
pub fn node_id(addr: &str) -> String {
    let mut parts = [0u64; 3];
    for (i, p) in parts.iter_mut().enumerate() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ i as u64;
        for b in format!("hive:{addr}:{i}").bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        *p = h;
    }
    format!("{:016x}{:016x}{:08x}", parts[0], parts[1], parts[2] >> 32)
}

/// The slot range of member `i` of `n`: equal shares, the first ones one slot larger.
pub fn slots_of(i: usize, n: usize) -> (u16, u16) {
    let total = usize::from(SLOT_COUNT);
    let start = i * total / n;
    let end = (i + 1) * total / n - 1;
    (start as u16, end as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_stable_hex() {
        let a = node_id("127.0.0.1:6380");
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        // Pinned: clients cache node ids, so the id for an address must not change between
        // proxy restarts or releases.
        assert_eq!(a, "6ec0bc140e763f3fdc41604662159fef4ef78b75");
        assert_ne!(a, node_id("127.0.0.1:6381"));
    }

    #[test]
    fn slots_cover_every_slot_once() {
        for n in 1..=7 {
            let mut next = 0usize;
            for i in 0..n {
                let (s, e) = slots_of(i, n);
                assert_eq!(s as usize, next);
                assert!(e >= s);
                next = e as usize + 1;
            }
            assert_eq!(next, usize::from(SLOT_COUNT));
        }
    }

    #[test]
    fn member_host_port_reads_ipv6() {
        let m = Member::new("[::1]:6380".into());
        assert_eq!(m.host_port(), ("::1".into(), 6380));
        assert_eq!(Member::new("hive-0.hive:6380".into()).host_port().1, 6380);
    }
}
