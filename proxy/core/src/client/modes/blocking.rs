//! Commands that hold a connection: blocking commands (BLPOP, XREAD BLOCK, ...) and WAIT run
//! on connections of the client's own, so they never stall the shared ones.

use bytes::Bytes;
use hive_common::resp::Request;
use smallvec::SmallVec;

use crate::client::pending::{Shape, Unit};
use crate::client::send::redirect::no_topology;
use crate::client::Conn;
use crate::command::reply::merge::{Merge, MergeKind};
use crate::command::route::Route;

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
                u.prefix = Some(Bytes::from_static(HEARTBEAT));
                u
            })
            .collect();
        let merge = Merge::new(MergeKind::Min, n, Vec::new());
        self.push_merge(units, Shape::Merge(Box::new(merge)));
    }
}
