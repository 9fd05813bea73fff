//! PUBSUB NUMSUB and NUMPAT, counted from the proxy's own index of its clients'
//! subscriptions: the nodes would count Hive's subscriber connections instead (one per
//! subscribing client on its home node, plus its keyspace connections on every other master).
//! A fleet adds the other Hives' clients.

use bytes::BytesMut;
use hive_common::resp::{write_array_header, write_bulk, write_integer, Request};

use crate::command::local_cmd::PubsubSub;
use crate::state::Shared;

pub fn answer(sub: PubsubSub, req: &Request, shared: &Shared, out: &mut BytesMut) {
    match sub {
        PubsubSub::NumSub => {
            let channels: Vec<&[u8]> = req.args().skip(2).collect();
            write_array_header(out, channels.len() * 2);
            for c in channels {
                write_bulk(out, c);
                let peers = shared.fleet.as_ref().map_or(0, |f| f.peers.numsub(c));
                write_integer(out, shared.pubsub.numsub(c) + peers);
            }
        }
        PubsubSub::NumPat => match &shared.fleet {
            Some(f) => write_integer(out, f.peers.patterns(shared.pubsub.patterns()) as i64),
            None => write_integer(out, shared.pubsub.numpat()),
        },
    }
}
