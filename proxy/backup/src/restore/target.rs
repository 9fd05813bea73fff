//! Where a restore writes and reads back: the target's masters through the backplane's
//! router (each key to the master owning its slot, following MOVED/ASK and waiting out a
//! failover like a proxied request), in batches grouped by slot and sent all at once.

use std::sync::Arc;

use bytes::Bytes;
use hive_common::resp::{parse_value, Request, Value};
use hive_common::Slot;
use hive_upstream::route::router::Router;
use hive_upstream::{Backplane, Proto};

/// The target deployment, reached without a proxy in between.
pub struct Target {
    router: Router,
}

impl Target {
    pub fn new(plane: Arc<Backplane>) -> Target {
        Target {
            router: Router::new(plane, Proto::Resp2),
        }
    }

    /// Runs every command (`[name, key, ...]`) on its key's master; one reply per command, in
    /// order. A command the deployment could not run (no master for its slot past
    /// `backend.failover_hold_ms`) gets its error as its reply, as a proxy would answer it.
    pub async fn batch(&self, cmds: &[Vec<Bytes>]) -> Vec<Value> {
        let reqs = cmds
            .iter()
            .map(|args| {
                let slot = args.get(1).map_or(Slot::for_key(b""), |k| Slot::for_key(k));
                (slot, Request::from_args(args))
            })
            .collect();
        self.router
            .scatter(reqs)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(frame) => match parse_value(&frame) {
                    Ok(Some((v, _))) => v,
                    _ => Value::Error(Bytes::from_static(
                        b"ERR Hive: a node's reply does not parse",
                    )),
                },
                Err(e) => Value::Error(e.to_string().into_bytes().into()),
            })
            .collect()
    }
}
