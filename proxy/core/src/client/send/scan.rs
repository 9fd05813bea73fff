//! SCAN through the proxy: whole slots per step in a cluster, node SCANs shard by shard
//! otherwise (the cursor layout is in `command::scan_cursor`).

use hive_common::resp::Request;
use hive_common::Slot;
use smallvec::SmallVec;

use crate::client::pending::{Shape, Unit};
use crate::client::send::redirect::no_topology;
use crate::client::Conn;
use crate::command::reply::scan_cursor::{
    slot_key, split_cursor, ScanArgs, ScanMerge, SLOT_SCRIPT,
};
use crate::command::route::Route;
use crate::config::Mode;
use crate::error::ProxyError;

/// Slots read per step at most; COUNT asks for more or fewer, as with Redis a hint.
const MAX_SLOTS_PER_STEP: usize = 1024;

impl Conn {
    pub(crate) fn scan(&mut self, req: Request) {
        let args: Vec<&[u8]> = req.args().skip(1).collect();
        let a = match ScanArgs::parse(&args) {
            Ok(a) => a,
            Err(e) => return self.push_error(&ProxyError::invalid(e)),
        };
        if self.shared.config.backend.mode == Mode::Cluster {
            self.scan_slots(a);
        } else {
            self.scan_nodes(&req, a);
        }
    }

    fn scan_slots(&mut self, a: ScanArgs) {
        if a.cursor >= 16384 {
            return self.push_error(&ProxyError::invalid("invalid cursor"));
        }
        let start = a.cursor as usize;
        let end = (start + a.count.clamp(10, MAX_SLOTS_PER_STEP)).min(16384);
        let kind = a.kind.clone().unwrap_or_default();
        let units: SmallVec<[Unit; 1]> = (start..end)
            .filter_map(|s| {
                let slot = Slot::new(s as u16)?;
                let n = s.to_string();
                let req = Request::from_args(&[
                    b"EVAL".as_slice(),
                    SLOT_SCRIPT.as_bytes(),
                    b"1",
                    slot_key(s as u16).as_bytes(),
                    n.as_bytes(),
                    &kind,
                ]);
                let mut u = Unit::new(req, Route::Slot(slot));
                u.no_ask = true;
                Some(u)
            })
            .collect();
        let n = units.len();
        let merge = ScanMerge::Slots {
            next: if end == 16384 { 0 } else { end as u64 },
            pattern: a.pattern,
            parts: vec![None; n],
            left: n,
        };
        self.push_merge(units, Shape::Scan(Box::new(merge)));
    }

    fn scan_nodes(&mut self, req: &Request, a: ScanArgs) {
        let topo = self.shared.plane.topology.load();
        let mut firsts: Vec<(u16, usize)> = topo
            .map
            .ranges()
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((r.iter().map(|r| r.start).min()?, i)))
            .collect();
        firsts.sort();
        let (node_cursor, pos) = if a.cursor == 0 {
            match firsts.first() {
                Some(f) => (0, f.0),
                None => return self.push_error(&no_topology()),
            }
        } else {
            split_cursor(a.cursor)
        };
        let Some(k) = firsts.iter().position(|f| f.0 == pos) else {
            return self.push_error(&ProxyError::invalid("invalid cursor"));
        };
        let cursor = node_cursor.to_string();
        let mut args: Vec<&[u8]> = req.args().collect();
        args[1] = cursor.as_bytes();
        let unit = Unit::new(Request::from_args(&args), Route::Master(firsts[k].1));
        let merge = ScanMerge::Node {
            slot: pos,
            next_slot: firsts.get(k + 1).map(|f| f.0),
        };
        drop(topo);
        self.push_unit(unit, Shape::Scan(Box::new(merge)));
    }
}
