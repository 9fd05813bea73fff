//! The promotion as the node reports it: `hive drill` subscribes to hive-module's
//! `__hive__:events` on the drilled shard's replicas and keeps the first promotion's time.
//! Sentinel kills every client of the replica it promotes, in the same transaction as
//! `REPLICAOF NO ONE`; a subscription closed that way, after which `ROLE` says master, dates
//! the promotion at the close (the module's event, published on its next tick, may come later
//! or be missed while reconnecting).

use std::sync::Arc;
use std::time::Duration;

use hive_common::resp::Value;
use hive_upstream::conn::control::ControlConn;
use hive_upstream::watch::push::{has_module, Event, CHANNEL};
use hive_upstream::Auth;
use tokio::sync::Mutex;

use super::unix_ms;

/// The earliest promotion reported on any of `replicas`: (node, its unix ms).
pub type Promotion = Arc<Mutex<Option<(String, u64)>>>;

/// Subscribes on every replica that has hive-module; returns once the subscriptions are made.
pub async fn watch(replicas: &[String], auth: Option<&Auth>, until: Duration) -> Promotion {
    let found: Promotion = Arc::default();
    for addr in replicas {
        let Some(c) = subscribe(addr, auth).await else {
            continue;
        };
        let (addr, found, auth) = (addr.clone(), found.clone(), auth.cloned());
        tokio::spawn(follow(c, addr, auth, found, until));
    }
    found
}

async fn note(found: &Promotion, addr: &str, at: u64) {
    let mut f = found.lock().await;
    if f.as_ref().is_none_or(|(_, t)| at < *t) {
        *f = Some((addr.to_string(), at));
    }
}

async fn follow(
    mut c: ControlConn,
    addr: String,
    auth: Option<Auth>,
    found: Promotion,
    until: Duration,
) {
    let deadline = tokio::time::Instant::now() + until;
    while tokio::time::Instant::now() < deadline {
        let v = match c.read(Duration::from_millis(500)).await {
            Ok(v) => v,
            Err(hive_upstream::conn::control::QueryError::Timeout { .. }) => continue,
            Err(_) => {
                let closed = unix_ms();
                let Some(next) = subscribe(&addr, auth.as_ref()).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                c = next;
                if role(&addr, auth.as_ref()).await.as_deref() == Some("master") {
                    note(&found, &addr, closed).await;
                }
                continue;
            }
        };
        let Some(payload) = v.as_array().and_then(|a| a.get(2)).and_then(Value::as_str) else {
            continue;
        };
        let Ok(ev) = serde_json::from_str::<Event>(payload) else {
            continue;
        };
        if ev.event == "role_change" && ev.role == "master" {
            note(&found, &addr, ev.time_ms).await;
        }
    }
}

/// A connection subscribed to the events, if the node has hive-module.
async fn subscribe(addr: &str, auth: Option<&Auth>) -> Option<ControlConn> {
    let mut c = ControlConn::connect_auth(addr, Duration::from_secs(2), auth)
        .await
        .ok()?;
    if !has_module(&mut c).await.ok()? {
        return None;
    }
    c.call(&["SUBSCRIBE", CHANNEL]).await.ok()?;
    Some(c)
}

async fn role(addr: &str, auth: Option<&Auth>) -> Option<String> {
    let mut c = ControlConn::connect_auth(addr, Duration::from_secs(2), auth)
        .await
        .ok()?;
    let v = c.call(&["ROLE"]).await.ok()?;
    v.as_array()?.first()?.as_str().map(str::to_string)
}
