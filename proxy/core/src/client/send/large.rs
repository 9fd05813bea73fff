//! Isolation of large traffic. A client whose requests or replies reach
//! `backend.large_value_bytes` is "large" for a while: its single-slot requests go over
//! connections of its own, so nothing of another client's waits behind its values on a
//! shared connection. Moving between the shared connection and its own waits until the
//! client's earlier requests are answered, so its commands still run in the order it sent
//! them.

use std::sync::Arc;
use std::time::Duration;

use hive_common::resp::Request;
use tokio::time::Instant;

use crate::client::Conn;
use crate::command::classify::Action;
use crate::command::route::Route;
use crate::metrics::Stats;
use crate::state::Shared;
use hive_upstream::conn::backend::Backend;
use hive_upstream::Proto;

/// How long a client stays large after its last large request or reply.
const LARGE_FOR: Duration = Duration::from_secs(1);

/// A client's large-traffic state.
pub(crate) struct Large {
    /// `backend.large_value_bytes`.
    pub at: usize,
    /// Single-slot requests currently go over `conns`.
    pub on: bool,
    pub until: Option<Instant>,
    pub conns: Vec<Arc<Backend>>,
}

impl Large {
    pub fn new(at: usize) -> Large {
        Large {
            at,
            on: false,
            until: None,
            conns: Vec::new(),
        }
    }

    /// A reply arrived: one this long makes the client large.
    pub fn saw_reply(&mut self, len: usize) {
        if len >= self.at {
            self.until = Some(Instant::now() + LARGE_FOR);
        }
    }

    fn wanted(&mut self, req: &Request) -> bool {
        if req.raw().len() >= self.at {
            self.until = Some(Instant::now() + LARGE_FOR);
            return true;
        }
        match self.until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                self.until = None;
                false
            }
            None => false,
        }
    }

    /// The client's own connection for large traffic to `addr`.
    pub fn conn(&mut self, shared: &Shared, proto: Proto, addr: &str) -> Arc<Backend> {
        Stats::add(&shared.stats.large_requests, 1);
        if let Some(b) = self.conns.iter().find(|b| &*b.addr == addr) {
            return b.clone();
        }
        let b = shared.plane.connector.large(addr, proto);
        self.conns.push(b.clone());
        b
    }
}

impl Conn {
    /// Sets the lane for `req`. `false` when it must wait: the lane changes and earlier
    /// requests are still unanswered (the caller holds it and reads nothing after it).
    pub(crate) fn choose_lane(&mut self, req: &Request, action: &Action) -> bool {
        let single = matches!(
            action,
            Action::Forward(Route::Slot(_) | Route::Replica { .. } | Route::Any)
        );
        let large = single && self.large.wanted(req);
        if large == self.large.on {
            return true;
        }
        if self.pending.iter().any(|p| p.reply.is_none()) {
            return false;
        }
        self.large.on = large;
        true
    }
}
