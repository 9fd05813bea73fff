//! Blocking commands parked on a master that no longer serves their slot (sentinel and static
//! modes, after a handover): Redis Cluster unblocks such a client with `-MOVED` and it blocks
//! again on the new owner; a standalone master never learns that the slot moved, so a BLPOP
//! with no timeout would wait there for a push that now goes elsewhere. Hive follows the map:
//! when it changes, each such command is released on its node (`CLIENT UNBLOCK … ERROR`) and
//! its `-UNBLOCKED` answer is replaced by sending it again, to the slot's new master.

use std::sync::Arc;

use hive_common::resp::Request;
use hive_upstream::conn::backend::Backend;
use hive_upstream::route::pool;
use hive_upstream::{Inbox, Tag};

use crate::client::Conn;
use crate::command::route::Route;

/// A blocking command sent on one of the client's own connections.
pub(crate) struct Parked {
    tag: Tag,
    conn: Arc<Backend>,
    /// Released because its slot moved: its `-UNBLOCKED` means "send again".
    moving: bool,
}

impl Conn {
    /// Remembers a blocking command sent to `conn` (outside cluster mode), and follows the
    /// map while any is parked.
    pub(crate) fn park(&mut self, tag: Tag, conn: Arc<Backend>) {
        self.parked.retain(|p| p.tag != tag);
        let base = self.base;
        let live = |t: &Tag| t.seq >= base;
        self.parked.retain(|p| live(&p.tag));
        self.parked.push(Parked {
            tag,
            conn,
            moving: false,
        });
        if !self.parked_following {
            self.parked_following = true;
            let follow = self.reply_tx();
            let mut changed = self.shared.plane.topology.changes();
            tokio::spawn(async move {
                while changed.changed().await.is_ok() {
                    if follow.send(Inbox::Topology).is_err() {
                        break;
                    }
                }
            });
        }
    }

    /// The map changed: every parked command whose slot's master is now another node is
    /// released there.
    pub(crate) fn release_moved(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let topo = self.shared.plane.topology.load();
        let mut release = Vec::new();
        let mut i = 0;
        while i < self.parked.len() {
            let tag = self.parked[i].tag;
            let Some(slot) = self.unit(tag).and_then(|u| match u.home {
                Route::Slot(s) => Some(s),
                _ => None,
            }) else {
                // Answered already, or not tied to a slot (WAIT).
                self.parked.swap_remove(i);
                continue;
            };
            // Answered, and waiting only for the replies before it: nothing to release.
            let answered = self
                .pending
                .get((tag.seq - self.base) as usize)
                .is_none_or(|p| p.reply.is_some());
            if answered {
                self.parked.swap_remove(i);
                continue;
            }
            let p = &mut self.parked[i];
            let master = topo
                .map
                .shard_of(slot)
                .map(|s| &*topo.map.shards()[s].master);
            if !p.moving && master.is_some_and(|m| m != &*p.conn.addr) {
                p.moving = true;
                release.push(p.conn.clone());
            }
            i += 1;
        }
        drop(topo);
        if release.is_empty() {
            return;
        }
        let router = self.router();
        tokio::spawn(async move {
            for c in release {
                let Some(id) = c.node_client_id() else {
                    continue;
                };
                let via = pool::backend(&router.plane, &c.addr, router.proto, pool::Lane::Plain);
                let req = Request::from_args(&["CLIENT", "UNBLOCK", &id.to_string(), "ERROR"]);
                let _ = router.call_on(&via, vec![req]).await;
            }
        });
    }

    /// Whether `tag` was released because its slot moved; it is then sent again from its
    /// home route.
    pub(crate) fn resend_moved(&mut self, tag: Tag) -> bool {
        let Some(i) = self.parked.iter().position(|p| p.tag == tag && p.moving) else {
            return false;
        };
        self.parked.swap_remove(i);
        let Some(u) = self.unit(tag) else {
            return false;
        };
        u.route = u.home.clone();
        self.send(tag.seq, tag.part as usize);
        true
    }
}
