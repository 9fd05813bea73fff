//! The admin HTTP listener (`proxy.admin_listen`): `/metrics` (Prometheus text format),
//! `/healthz` (the process is up) and `/readyz` (a topology is loaded and every shard has a
//! reachable master), for scrapes and Kubernetes probes. Served by hyper on worker 0.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::report::prom;
use crate::state::Shared;

/// Serves until shutdown.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(sock), svc);
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            prom::render(shared),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match not_ready(shared) {
            None => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            Some(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{why}\n"),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// Why the proxy is not ready to serve, if it is not: draining for a shutdown, no topology, slots no shard serves, a
/// shard without a master, or (from the last poll) a master that did not answer.
pub fn not_ready(shared: &Shared) -> Option<String> {
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Some("draining: the proxy is stopping".into());
    }
    let topo = shared.plane.topology.load();
    let n = topo.map.shards().len();
    if n == 0 {
        return Some("no topology loaded yet".into());
    }
    if topo.map.unassigned() > 0 {
        return Some(format!("{} slots have no shard", topo.map.unassigned()));
    }
    if let Some(i) = (0..n).find(|&i| !topo.has_master(i)) {
        return Some(format!("shard {} has no master", topo.shard_name(i)));
    }
    if let Some(s) = shared.plane.facts.latest() {
        if let Some(i) = (0..s.shards.len()).find(|&i| !s.master_up(i)) {
            return Some(format!(
                "the master of shard {} ({}) did not answer the last poll",
                s.shards[i].name, s.shards[i].master
            ));
        }
    }
    None
}
