//! Creates backend connection tasks with the configured timeouts and credentials: shared ones
//! (cached per worker thread by `conns`) and dedicated ones owned by a single client.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::backend::{Backend, BackendOpts, PushSink};
use super::control::{ControlConn, QueryError};
use super::demote::Demotions;
use super::{Auth, Proto};
use crate::stats::UpstreamStats;

pub struct Connector {
    opts: BackendOpts,
    on_failure: Arc<Notify>,
    stats: Arc<UpstreamStats>,
    /// Shared master connections, told when their node is demoted.
    demotions: Arc<Demotions>,
}

impl Connector {
    pub fn new(opts: BackendOpts, on_failure: Arc<Notify>, stats: Arc<UpstreamStats>) -> Connector {
        Connector {
            opts,
            on_failure,
            stats,
            demotions: Arc::default(),
        }
    }

    /// Where a followed failover tells the old master's connections (`demote.rs`).
    pub fn demotions(&self) -> Arc<Demotions> {
        self.demotions.clone()
    }

    /// A control connection (topology discovery, sentinel events) through the configured
    /// dialer, so it is TLS when backend connections are.
    pub async fn control(
        &self,
        addr: &str,
        auth: Option<&Auth>,
    ) -> Result<ControlConn, QueryError> {
        ControlConn::dial(&*self.opts.dialer, addr, self.opts.connect_timeout, auth).await
    }

    /// A control connection whose replies may take up to `timeout` (a MIGRATE of a big key).
    pub async fn control_waiting(
        &self,
        addr: &str,
        auth: Option<&Auth>,
        timeout: Duration,
    ) -> Result<ControlConn, QueryError> {
        ControlConn::dial(&*self.opts.dialer, addr, timeout, auth).await
    }

    /// A new shared connection task to `addr` on the current runtime; it connects on first use.
    pub fn spawn(&self, addr: &str, proto: Proto) -> Arc<Backend> {
        let opts = BackendOpts {
            proto,
            ..self.opts.clone()
        };
        let demoted = self.demotions.register(addr.into());
        Backend::spawn(
            addr.into(),
            opts,
            self.on_failure.clone(),
            self.stats.clone(),
            Some(demoted),
        )
    }

    /// A shared connection to a replica that serves reads; `cluster` sends READONLY first, as a
    /// cluster replica redirects reads without it.
    pub fn replica(&self, addr: &str, proto: Proto, cluster: bool) -> Arc<Backend> {
        // Reads only: nothing to confirm.
        let opts = BackendOpts {
            readonly: cluster,
            ack: None,
            ..self.opts.clone()
        };
        self.start_with(
            opts,
            addr,
            proto,
            None,
            self.opts.command_timeout,
            self.opts.hand_off_at,
        )
    }

    /// A connection for one client's large requests and replies: with the command timeout,
    /// never handed off (it carries nobody else's requests).
    pub fn large(&self, addr: &str, proto: Proto) -> Arc<Backend> {
        self.start(addr, proto, None, self.opts.command_timeout, None)
    }

    /// A connection for one client only, without a command timeout (blocking commands wait as
    /// long as their own timeout says). It closes when the client drops it, which is how Redis
    /// learns that a blocked client has gone.
    pub fn dedicated(&self, addr: &str, proto: Proto, push: Option<PushSink>) -> Arc<Backend> {
        self.start(addr, proto, push, None, None)
    }

    /// A client's own connection for blocking commands: as `dedicated`, and it learns its
    /// node-side `CLIENT ID`, so CLIENT UNBLOCK through Hive can release what blocks on it.
    pub fn blocking(&self, addr: &str, proto: Proto) -> Arc<Backend> {
        let opts = BackendOpts {
            ask_id: true,
            ..self.opts.clone()
        };
        self.start_with(opts, addr, proto, None, None, None)
    }

    fn start(
        &self,
        addr: &str,
        proto: Proto,
        push: Option<PushSink>,
        command_timeout: Option<Duration>,
        hand_off_at: Option<usize>,
    ) -> Arc<Backend> {
        let base = self.opts.clone();
        self.start_with(base, addr, proto, push, command_timeout, hand_off_at)
    }

    fn start_with(
        &self,
        base: BackendOpts,
        addr: &str,
        proto: Proto,
        push: Option<PushSink>,
        command_timeout: Option<Duration>,
        hand_off_at: Option<usize>,
    ) -> Arc<Backend> {
        let opts = BackendOpts {
            proto,
            push,
            command_timeout,
            hand_off_at,
            ..base
        };
        Backend::spawn(
            addr.into(),
            opts,
            self.on_failure.clone(),
            self.stats.clone(),
            None,
        )
    }
}
