//! Connections to the cluster's nodes for one run: one kept per node (TLS and credentials as
//! the deployment's config gives them), pipelined batches, and the cluster's view loaded from
//! every master.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hive_common::resp::{Request, Value};
use hive_upstream::conn::control::{ControlConn, QueryError};
use hive_upstream::{Auth, Backplane};

use crate::error::{ReshardError, Result};
use crate::view::{owners_signature, parse_nodes, View};

pub struct Session {
    plane: Arc<Backplane>,
    auth: Option<Auth>,
    /// How long a reply may take: above MIGRATE's own timeout, so a big key's move is waited
    /// for rather than abandoned.
    wait: Duration,
    conns: HashMap<String, ControlConn>,
}

impl Session {
    pub fn new(plane: Arc<Backplane>, wait: Duration) -> Session {
        let auth = plane.config.node_auth();
        Session {
            plane,
            auth,
            wait,
            conns: HashMap::new(),
        }
    }

    pub fn plane(&self) -> &Arc<Backplane> {
        &self.plane
    }

    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// The seeds to read the cluster from: the masters the deployment's poll found, then the
    /// configured seeds.
    pub fn seeds(&self) -> Vec<String> {
        let mut s = self.plane.topology.load().masters();
        s.extend(self.plane.config.seeds.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        s.retain(|a| seen.insert(a.clone()));
        s
    }

    async fn conn(&mut self, addr: &str) -> Result<&mut ControlConn> {
        if !self.conns.contains_key(addr) {
            let c = self
                .plane
                .connector
                .control_waiting(addr, self.auth.as_ref(), self.wait)
                .await?;
            self.conns.insert(addr.to_string(), c);
        }
        Ok(self.conns.get_mut(addr).expect("inserted above"))
    }

    /// One command; an error reply is an error. A broken connection is dropped, so the next
    /// call dials again.
    pub async fn call<A: AsRef<[u8]>>(&mut self, addr: &str, args: &[A]) -> Result<Value> {
        let r = self.conn(addr).await?.call(args).await;
        if matches!(
            r,
            Err(QueryError::Io { .. } | QueryError::Timeout { .. } | QueryError::BadReply { .. })
        ) {
            self.conns.remove(addr);
        }
        Ok(r?)
    }

    /// A string reply (CLUSTER NODES, INFO).
    pub async fn text(&mut self, addr: &str, args: &[&str]) -> Result<String> {
        Ok(self
            .call(addr, args)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub async fn int(&mut self, addr: &str, args: &[&str]) -> Result<i64> {
        let v = self.call(addr, args).await?;
        v.as_int().ok_or_else(|| ReshardError::Reply {
            addr: addr.into(),
            why: format!("{} answered {v:?}, not an integer", args.join(" ")),
        })
    }

    /// Sends `reqs` in one write and returns every reply, error replies included.
    pub async fn pipeline(&mut self, addr: &str, reqs: &[Vec<Bytes>]) -> Result<Vec<Value>> {
        let mut buf = BytesMut::new();
        for r in reqs {
            buf.put_slice(Request::from_args(r).raw());
        }
        let c = self.conn(addr).await?;
        let wait = c.timeout();
        let mut out = Vec::with_capacity(reqs.len());
        let r: std::result::Result<(), QueryError> = async {
            c.send_raw(&buf).await?;
            for _ in reqs {
                out.push(c.read(wait).await?);
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            self.conns.remove(addr);
            return Err(e.into());
        }
        Ok(out)
    }

    /// `MEMORY USAGE` of each key on `addr`, pipelined; `None` for a key gone meanwhile.
    pub async fn memory_usage(&mut self, addr: &str, keys: &[&Bytes]) -> Result<Vec<Option<u64>>> {
        let reqs: Vec<Vec<Bytes>> = keys
            .iter()
            .map(|k| {
                vec![
                    Bytes::from_static(b"MEMORY"),
                    Bytes::from_static(b"USAGE"),
                    (*k).clone(),
                ]
            })
            .collect();
        Ok(self
            .pipeline(addr, &reqs)
            .await?
            .iter()
            .map(|v| v.as_int().map(|n| n.max(0) as u64))
            .collect())
    }

    /// The cluster as the first reachable seed sees it, with every master's own open slots,
    /// its own slot claims, and whether its view of the owners matches the others'.
    pub async fn view(&mut self) -> Result<View> {
        let mut last = None;
        let mut text = None;
        for s in self.seeds() {
            match self.text(&s, &["CLUSTER", "NODES"]).await {
                Ok(t) => {
                    text = Some((s, t));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((seed, text)) = text else {
            return Err(last.unwrap_or_else(|| {
                ReshardError::Input("the deployment names no cluster seed".into())
            }));
        };
        let nodes = parse_nodes(&text).map_err(|why| ReshardError::Reply { addr: seed, why })?;
        let mut view = View {
            nodes,
            ..View::default()
        };
        let masters: Vec<(String, String)> = view
            .masters()
            .iter()
            .map(|m| (m.id.clone(), m.addr.clone()))
            .collect();
        let mut first_sig = None;
        for (id, addr) in masters {
            // A master that cannot answer now (LOADING: it just turned into a replica and
            // syncs) counts as down: the caller waits for the cluster to settle.
            let (own, state) = match (
                self.text(&addr, &["CLUSTER", "NODES"]).await,
                self.text(&addr, &["CLUSTER", "INFO"]).await,
            ) {
                (Ok(n), Ok(i)) => (n, i),
                _ => {
                    view.down.push(addr.clone());
                    continue;
                }
            };
            let own = parse_nodes(&own).map_err(|why| ReshardError::Reply {
                addr: addr.clone(),
                why,
            })?;
            if hive_common::info::field(&state, "cluster_state") != Some("ok") {
                view.down.push(addr.clone());
            }
            let sig = owners_signature(&own);
            match &first_sig {
                None => first_sig = Some(sig),
                Some(f) if *f != sig => view.disagree.push(addr.clone()),
                Some(_) => {}
            }
            if let Some(me) = own.iter().find(|n| n.myself) {
                view.claims.insert(id.clone(), me.slots.clone());
                if let Some(n) = view.nodes.iter_mut().find(|n| n.id == id) {
                    n.open = me.open.clone();
                }
            }
        }
        Ok(view)
    }
}

/// `args` as owned bytes, for a pipeline.
pub fn req<A: AsRef<[u8]>>(args: &[A]) -> Vec<Bytes> {
    args.iter()
        .map(|a| Bytes::copy_from_slice(a.as_ref()))
        .collect()
}
