//! PUBSUB NUMSUB and NUMPAT, counted from the proxy's own index of its clients'
//! subscriptions: the nodes would count Hive's subscriber connections instead (one per
//! subscribing client on its home node, plus its keyspace connections on every other master).

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
                write_integer(out, shared.pubsub.numsub(c));
            }
        }
        PubsubSub::NumPat => write_integer(out, shared.pubsub.numpat()),
    }
}
