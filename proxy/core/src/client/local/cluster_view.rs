//! CLUSTER SLOTS / SHARDS / NODES / INFO / MYID as a one-node cluster: the proxy's own address
//! owns all 16384 slots, so cluster-aware clients send everything through the proxy.

use std::net::SocketAddr;

use bytes::BytesMut;
use hive_common::resp::{
    write_array_header, write_bulk, write_integer, write_map_header, write_verbatim, Request,
};
use hive_common::Slot;

use crate::command::local_cmd::ClusterSub;
use crate::state::Shared;

/// A stable 40-hex-digit node id derived from the address clients reach the proxy at.
pub fn node_id(local: &SocketAddr) -> String {
    let mut parts = [0u64; 3];
    for (i, p) in parts.iter_mut().enumerate() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ i as u64;
        for b in format!("hive:{local}:{i}").bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        *p = h;
    }
    format!("{:016x}{:016x}{:08x}", parts[0], parts[1], parts[2] >> 32)
}

fn state(shared: &Shared) -> &'static str {
    let topo = shared.plane.topology.load();
    let n = topo.map.shards().len();
    if n > 0 && topo.map.unassigned() == 0 && (0..n).all(|i| topo.has_master(i)) {
        "ok"
    } else {
        "fail"
    }
}

/// Answers `cluster|<sub>`; `local` is the address this client connected to.
pub fn answer(
    sub: ClusterSub,
    req: &Request,
    local: &SocketAddr,
    shared: &Shared,
    resp3: bool,
    out: &mut BytesMut,
) {
    let id = node_id(local);
    let ip = local.ip().to_string();
    let port = i64::from(local.port());
    match sub {
        ClusterSub::KeySlot => write_integer(out, i64::from(Slot::for_key(req.arg(2)).get())),
        ClusterSub::MyId => write_bulk(out, id.as_bytes()),
        ClusterSub::Slots => {
            write_array_header(out, 1);
            write_array_header(out, 3);
            write_integer(out, 0);
            write_integer(out, 16383);
            write_array_header(out, 4);
            write_bulk(out, ip.as_bytes());
            write_integer(out, port);
            write_bulk(out, id.as_bytes());
            write_map_header(out, 0, resp3);
        }
        ClusterSub::Shards => {
            write_array_header(out, 1);
            write_map_header(out, 2, resp3);
            write_bulk(out, b"slots");
            write_array_header(out, 2);
            write_integer(out, 0);
            write_integer(out, 16383);
            write_bulk(out, b"nodes");
            write_array_header(out, 1);
            write_map_header(out, 7, resp3);
            for (k, v) in [("id", id.as_str()), ("ip", &ip), ("endpoint", &ip)] {
                write_bulk(out, k.as_bytes());
                write_bulk(out, v.as_bytes());
            }
            write_bulk(out, b"port");
            write_integer(out, port);
            write_bulk(out, b"role");
            write_bulk(out, b"master");
            write_bulk(out, b"replication-offset");
            write_integer(out, 0);
            write_bulk(out, b"health");
            write_bulk(
                out,
                if state(shared) == "ok" {
                    b"online"
                } else {
                    b"failed"
                },
            );
        }
        ClusterSub::Nodes => {
            let line = format!("{id} {ip}:{port}@{port} myself,master - 0 0 1 connected 0-16383\n");
            write_verbatim(out, line.as_bytes(), resp3);
        }
        ClusterSub::Info => {
            let st = state(shared);
            let text = format!(
                "cluster_state:{st}\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:{}\r\n\
cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:1\r\ncluster_size:1\r\n\
cluster_current_epoch:1\r\ncluster_my_epoch:1\r\ncluster_stats_messages_sent:0\r\n\
cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
                if st == "ok" { 16384 } else { 0 },
                if st == "ok" { 0 } else { 16384 },
            );
            write_verbatim(out, text.as_bytes(), resp3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_stable_hex() {
        let a: SocketAddr = "127.0.0.1:6380".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:6381".parse().unwrap();
        assert_eq!(node_id(&a).len(), 40);
        assert!(node_id(&a).bytes().all(|c| c.is_ascii_hexdigit()));
        // Pinned: clients cache node ids, so the id for an address must not change between
        // proxy restarts or releases.
        assert_eq!(node_id(&a), "6ec0bc140e763f3fdc41604662159fef4ef78b75");
        assert_ne!(node_id(&a), node_id(&b));
    }
}
