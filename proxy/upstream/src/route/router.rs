//! Sub-requests a proxy-side command (an emulated command across slots, a transaction across
//! shards) sends on its own: a batch of requests to the master owning a slot, as one job on
//! this thread's shared connection, following MOVED and waiting out failovers like any client
//! request (bounded by `backend.failover_hold_ms`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hive_common::resp::{ReplyScanner, Request};
use hive_common::Slot;
use tokio::time::Instant;

use crate::conn::backend::Backend;
use crate::conn::{Inbox, Job, Proto, Tag};
use crate::error::{ProxyError, UpstreamReason};
use crate::reply_error::{Redirect, ReplyError};
use crate::route::pool::{self, Lane};
use crate::Backplane;
use hive_common::command::{flag, CommandTable};

/// Sends batches for one client's proxy-side command, in that client's protocol.
#[derive(Clone)]
pub struct Router {
    pub plane: Arc<Backplane>,
    pub proto: Proto,
}

impl Router {
    pub fn new(plane: Arc<Backplane>, proto: Proto) -> Router {
        Router { plane, proto }
    }

    /// Runs `reqs` back to back on the master of `slot`; one reply frame per request.
    /// Redirected or held as a whole: every request of a batch names keys of `slot` only.
    pub async fn call(&self, slot: Slot, reqs: Vec<Request>) -> Result<Vec<Bytes>, ProxyError> {
        let cfg = &self.plane.config;
        let hold = Duration::from_millis(cfg.failover_hold_ms);
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut redirects = 0u8;
        let mut to: Option<Arc<Backend>> = None;
        let ack = self.acks(&reqs);
        let lane = if ack { Lane::Ack } else { Lane::Plain };
        loop {
            let backend = match to.take() {
                Some(b) => Some(b),
                None => self.master_of(slot, lane),
            };
            let outcome = match backend {
                Some(b) => self.once(&b, &reqs, ack).await,
                None => Err(Retry::Wait(no_master(slot))),
            };
            let why = match outcome {
                Ok(frames) => return Ok(frames),
                Err(Retry::No(e)) => return Err(e),
                Err(Retry::Moved(addr)) if redirects < cfg.max_redirects => {
                    redirects += 1;
                    self.plane.refresh.notify_one();
                    to = Some(pool::backend(&self.plane, &addr, self.proto, lane));
                    continue;
                }
                Err(Retry::Moved(addr)) => ProxyError::upstream(
                    UpstreamReason::Refused,
                    format!("Hive: slot {} keeps moving (last to {addr})", slot.get()),
                ),
                Err(Retry::Wait(e)) => e,
            };
            if started.elapsed() >= hold {
                return Err(why);
            }
            attempts += 1;
            let delay = Duration::from_millis(
                (cfg.retry_backoff_ms << attempts.min(5)).min(cfg.retry_backoff_max_ms),
            );
            let mut changed = self.plane.topology.changes();
            tokio::select! {
                _ = tokio::time::sleep(delay.min(hold.saturating_sub(started.elapsed()))) => {}
                _ = changed.changed() => {}
            }
        }
    }

    /// Runs requests of any slots: grouped by slot, each group as one `call` (redirected and
    /// held on its own), all groups at once. One result per request, in order; a group that
    /// fails gives its error to each of its requests.
    pub async fn scatter(&self, reqs: Vec<(Slot, Request)>) -> Vec<Result<Bytes, ProxyError>> {
        let n = reqs.len();
        let mut groups: HashMap<u16, (Slot, Vec<usize>, Vec<Request>)> = HashMap::new();
        for (i, (slot, r)) in reqs.into_iter().enumerate() {
            let g = groups
                .entry(slot.get())
                .or_insert_with(|| (slot, Vec::new(), Vec::new()));
            g.1.push(i);
            g.2.push(r);
        }
        let runs = groups
            .into_values()
            .map(|(slot, at, reqs)| async move { (at, self.call(slot, reqs).await) });
        let mut out: Vec<Option<Result<Bytes, ProxyError>>> = (0..n).map(|_| None).collect();
        for (at, res) in futures_util::future::join_all(runs).await {
            match res {
                Ok(frames) => {
                    for (i, f) in at.into_iter().zip(frames) {
                        out[i] = Some(Ok(f));
                    }
                }
                Err(e) => {
                    for i in at {
                        out[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ProxyError::upstream(
                        UpstreamReason::BadReply,
                        "Hive: a node sent fewer replies than requests",
                    ))
                })
            })
            .collect()
    }

    /// Runs `reqs` on one given connection (a transaction's pinned WATCH connection).
    pub async fn call_on(
        &self,
        backend: &Arc<Backend>,
        reqs: Vec<Request>,
    ) -> Result<Vec<Bytes>, ProxyError> {
        match self.once(backend, &reqs, self.acks(&reqs)).await {
            Ok(f) => Ok(f),
            Err(Retry::No(e) | Retry::Wait(e)) => Err(e),
            Err(Retry::Moved(addr)) => Err(ProxyError::upstream(
                UpstreamReason::Refused,
                format!("Hive: the slot moved to {addr}"),
            )),
        }
    }

    fn master_of(&self, slot: Slot, lane: Lane) -> Option<Arc<Backend>> {
        let topo = self.plane.topology.load();
        let i = topo.map.shard_of(slot)?;
        pool::master(&self.plane, &topo, i, self.proto, lane)
    }

    /// Whether a batch holds a write that `write_ack = "replica"` confirms.
    pub fn acks(&self, reqs: &[Request]) -> bool {
        self.plane.config.write_ack == crate::config::WriteAck::Replica
            && reqs.iter().any(|r| {
                CommandTable::get()
                    .lookup(r.arg(0))
                    .is_some_and(|s| s.has(flag::REPLICATES))
            })
    }

    async fn once(
        &self,
        backend: &Arc<Backend>,
        reqs: &[Request],
        ack: bool,
    ) -> Result<Vec<Bytes>, Retry> {
        let mut data = BytesMut::with_capacity(reqs.iter().map(|r| r.raw().len()).sum());
        for r in reqs {
            data.extend_from_slice(r.raw());
        }
        let (tx, mut rx) = crate::mailbox::channel();
        let tag = Tag { seq: 0, part: 0 };
        backend.send(Job {
            data: data.freeze(),
            prefix: None,
            frames: reqs.len() as u32,
            tag,
            reply: tx,
            ack,
        });
        let frame = match rx.recv().await {
            Some(Inbox::Reply { frame, .. }) => frame,
            Some(Inbox::Failed { err, .. }) if err.retry() => return Err(Retry::Wait(err)),
            Some(Inbox::Failed { err, .. }) => return Err(Retry::No(err)),
            _ => {
                return Err(Retry::No(ProxyError::upstream(
                    UpstreamReason::Lost,
                    "Hive: the backend connection closed",
                )))
            }
        };
        let frames = split_frames(&frame, reqs.len());
        if frames.len() != reqs.len() {
            // One error for the whole job: the connection failed.
            if let Some(f) = frames.first().filter(|f| f.first() == Some(&b'-')) {
                return Err(Retry::No(ProxyError::upstream(
                    UpstreamReason::Lost,
                    String::from_utf8_lossy(&f[1..f.len().saturating_sub(2)]).into_owned(),
                )));
            }
            return Err(Retry::No(ProxyError::upstream(
                UpstreamReason::BadReply,
                "Hive: a node sent fewer replies than requests",
            )));
        }
        // The first request's redirect speaks for the batch: all of it names one slot.
        if let Some(e) = frames
            .first()
            .and_then(|f| ReplyError::parse(f))
            .filter(ReplyError::acted_on)
        {
            return Err(match e {
                ReplyError::Redirect(Redirect::Moved { addr, .. }) => Retry::Moved(addr),
                ReplyError::ClusterDown | ReplyError::ReadOnly => {
                    self.plane.refresh.notify_one();
                    Retry::Wait(reply_error(&frames[0]))
                }
                // ASK (a migrating slot), TRYAGAIN, LOADING: wait until the slot settles.
                _ => Retry::Wait(reply_error(&frames[0])),
            });
        }
        Ok(frames)
    }
}

enum Retry {
    No(ProxyError),
    Wait(ProxyError),
    Moved(String),
}

fn reply_error(frame: &[u8]) -> ProxyError {
    ProxyError::upstream(
        UpstreamReason::Refused,
        String::from_utf8_lossy(&frame[1..frame.len().saturating_sub(2)]).into_owned(),
    )
}

fn no_master(slot: Slot) -> ProxyError {
    ProxyError::upstream(
        UpstreamReason::NoMaster,
        format!("Hive: no writable master for slot {}", slot.get()),
    )
}

/// Up to `n` complete frames of a concatenated reply.
pub fn split_frames(buf: &Bytes, n: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    while at < buf.len() && out.len() < n {
        let mut sc = ReplyScanner::default();
        match sc.scan(&buf[at..]) {
            Ok(Some(len)) => {
                out.push(buf.slice(at..at + len));
                at += len;
            }
            _ => break,
        }
    }
    out
}
