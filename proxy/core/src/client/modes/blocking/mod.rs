//! Commands that hold a connection: blocking commands (BLPOP, XREAD BLOCK, ...) and WAIT run
//! on connections of the client's own, so they never stall the shared ones; CLIENT UNBLOCK
//! releases another client of the proxy from them; one parked on a master whose slot moved
//! away is sent on (`parked`).

pub(crate) mod parked;

use bytes::Bytes;
use hive_common::resp::Request;
use smallvec::SmallVec;

use crate::client::pending::{Shape, Unit};
use crate::client::send::redirect::no_topology;
use crate::client::Conn;
use crate::command::reply::merge::{Merge, MergeKind};
use crate::command::route::Route;
use crate::error::ProxyError;
use crate::state::registry::Blocked;
use hive_upstream::route::pool;

/// The replicated write before WAIT: it moves the connection's replication offset past every
/// write the client made before, so WAIT measures them (needs hive-module; without it the
/// error is dropped and WAIT counts the replicas that are connected).
const HEARTBEAT: &[u8] = b"*1\r\n$14\r\nHIVE.HEARTBEAT\r\n";

impl Conn {
    pub(crate) fn blocking(&mut self, req: Request, route: Route) {
        let mut unit = Unit::new(req, route);
        unit.own = true;
        self.push_unit(unit, Shape::Single);
    }

    /// WAIT on every master, each on the client's own connection after a replicated write;
    /// the answer is the smallest count, the one that holds for every shard.
    pub(crate) fn wait(&mut self, req: Request) {
        let n = self.shared.plane.topology.load().map.shards().len();
        if n == 0 {
            // A merge of no parts would never complete.
            return self.push_error(&no_topology());
        }
        let units: SmallVec<[Unit; 1]> = (0..n)
            .map(|i| {
                let mut u = Unit::new(req.clone(), Route::Master(i));
                u.own = true;
                u.extra().prefix = Some(Bytes::from_static(HEARTBEAT));
                u
            })
            .collect();
        let merge = Merge::new(MergeKind::Min, n, Vec::new());
        self.push_merge(units, Shape::Merge(Box::new(merge)));
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: `:1` when the client was blocked and is released (a
    /// timeout's null, or `-UNBLOCKED`, as from Redis), `:0` otherwise.
    pub(crate) fn client_unblock(&mut self, req: &Request) {
        let Some(id) = hive_common::resp::parse_i64(req.arg(2)) else {
            return self.push_error(&ProxyError::invalid(
                "value is not an integer or out of range",
            ));
        };
        let error = match req.get(3) {
            None => false,
            Some(m) if m.eq_ignore_ascii_case(b"timeout") => false,
            Some(m) if m.eq_ignore_ascii_case(b"error") => true,
            Some(_) => {
                return self.push_error(&ProxyError::invalid(
                    "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                ))
            }
        };
        if req.argc() > 4 {
            return self.push_error(&ProxyError::invalid("syntax error"));
        }
        let target = self
            .shared
            .clients
            .all()
            .into_iter()
            .find(|c| c.id as i64 == id);
        let conns = match target.as_ref().map(|t| {
            let b = t.blocked.lock().unwrap_or_else(|p| p.into_inner());
            match &*b {
                Blocked::No => None,
                Blocked::Task(r) => Some(Err(r.clone())),
                Blocked::Conns(c) => Some(Ok(c.clone())),
            }
        }) {
            Some(Some(Ok(conns))) => conns,
            Some(Some(Err(release))) => {
                let n = i64::from(release.release(error));
                return self.push_done(int(n));
            }
            _ => return self.push_done(int(0)),
        };
        let router = self.router();
        let mode = if error { "ERROR" } else { "TIMEOUT" };
        self.spawn_reply(async move {
            let calls = conns.iter().filter_map(|c| {
                let id = c.node_client_id()?.to_string();
                let via = pool::backend(&router.plane, &c.addr, router.proto, pool::Lane::Plain);
                let req = Request::from_args(&["CLIENT", "UNBLOCK", &id, mode]);
                let router = &router;
                Some(async move { router.call_on(&via, vec![req]).await })
            });
            let released = futures_util::future::join_all(calls)
                .await
                .into_iter()
                .any(|r| matches!(r, Ok(f) if f[0][..] == b":1\r\n"[..]));
            int(i64::from(released))
        });
    }
}

fn int(n: i64) -> Bytes {
    let mut out = bytes::BytesMut::new();
    hive_common::resp::write_integer(&mut out, n);
    out.freeze()
}
