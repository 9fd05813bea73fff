//! CLUSTER SLOTS / SHARDS / NODES / INFO / MYID as cluster clients should see Hive: alone, a
//! one-node cluster whose node (the address the client connected to) owns all 16384 slots;
//! with `proxy.fleet`, the live Hives as the cluster's masters, each with an equal share of
//! the slots (any Hive serves any slot, the split only spreads the clients' load).

use std::net::SocketAddr;

use bytes::BytesMut;
use hive_common::resp::{
    write_array_header, write_bulk, write_integer, write_map_header, write_verbatim, Request,
};
use hive_common::Slot;

use crate::command::local_cmd::ClusterSub;
use crate::fleet::view::slots_of;
use crate::fleet::Member;
use crate::state::Shared;

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
    let (members, me) = match &shared.fleet {
        Some(f) => (f.members().to_vec(), f.me.id.clone()),
        None => {
            let m = Member::new(local.to_string());
            let id = m.id.clone();
            (vec![m], id)
        }
    };
    let n = members.len();
    let ok = state(shared) == "ok";
    match sub {
        ClusterSub::KeySlot => write_integer(out, i64::from(Slot::for_key(req.arg(2)).get())),
        ClusterSub::MyId => write_bulk(out, me.as_bytes()),
        ClusterSub::Slots => {
            write_array_header(out, n);
            for (i, m) in members.iter().enumerate() {
                let (start, end) = slots_of(i, n);
                let (host, port) = m.host_port();
                write_array_header(out, 3);
                write_integer(out, i64::from(start));
                write_integer(out, i64::from(end));
                write_array_header(out, 4);
                write_bulk(out, host.as_bytes());
                write_integer(out, i64::from(port));
                write_bulk(out, m.id.as_bytes());
                write_map_header(out, 0, resp3);
            }
        }
        ClusterSub::Shards => {
            write_array_header(out, n);
            for (i, m) in members.iter().enumerate() {
                let (start, end) = slots_of(i, n);
                let (host, port) = m.host_port();
                write_map_header(out, 2, resp3);
                write_bulk(out, b"slots");
                write_array_header(out, 2);
                write_integer(out, i64::from(start));
                write_integer(out, i64::from(end));
                write_bulk(out, b"nodes");
                write_array_header(out, 1);
                write_map_header(out, 7, resp3);
                for (k, v) in [("id", m.id.as_str()), ("ip", &host), ("endpoint", &host)] {
                    write_bulk(out, k.as_bytes());
                    write_bulk(out, v.as_bytes());
                }
                write_bulk(out, b"port");
                write_integer(out, i64::from(port));
                write_bulk(out, b"role");
                write_bulk(out, b"master");
                write_bulk(out, b"replication-offset");
                write_integer(out, 0);
                write_bulk(out, b"health");
                write_bulk(out, if ok { b"online" } else { b"failed" });
            }
        }
        ClusterSub::Nodes => {
            let mut text = String::new();
            for (i, m) in members.iter().enumerate() {
                let (start, end) = slots_of(i, n);
                let flags = if m.id == me {
                    "myself,master"
                } else {
                    "master"
                };
                let (host, port) = m.host_port();
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                text.push_str(&format!(
                    "{} {host}:{port}@{port} {flags} - 0 0 {} connected {start}-{end}\n",
                    m.id,
                    i + 1
                ));
            }
            write_verbatim(out, text.as_bytes(), resp3);
        }
        ClusterSub::Info => {
            let st = if ok { "ok" } else { "fail" };
            let text = format!(
                "cluster_state:{st}\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:{}\r\n\
cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{n}\r\ncluster_size:{n}\r\n\
cluster_current_epoch:{n}\r\ncluster_my_epoch:{}\r\ncluster_stats_messages_sent:0\r\n\
cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
                if ok { 16384 } else { 0 },
                if ok { 0 } else { 16384 },
                members.iter().position(|m| m.id == me).map_or(1, |i| i + 1),
            );
            write_verbatim(out, text.as_bytes(), resp3);
        }
    }
}
