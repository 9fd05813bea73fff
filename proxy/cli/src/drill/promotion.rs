//! The promotion as the node reports it: `hive drill` subscribes to hive-module's
//! `__hive__:events` on the drilled shard's replicas and keeps the first promotion's time.

use std::sync::Arc;
use std::time::Duration;

use hive_common::resp::Value;
use hive_proxy::upstream::control::ControlConn;
use hive_proxy::upstream::Auth;
use tokio::sync::Mutex;

/// The first `role_change` to master reported on any of `replicas`: (node, its unix ms).
pub type Promotion = Arc<Mutex<Option<(String, u64)>>>;

/// Subscribes on every replica that has hive-module; returns once the subscriptions are made.
pub async fn watch(replicas: &[String], auth: Option<&Auth>, until: Duration) -> Promotion {
    let found: Promotion = Arc::default();
    for addr in replicas {
        let Ok(mut c) = ControlConn::connect_auth(addr, Duration::from_secs(2), auth).await else {
            continue;
        };
        let module = c.call(&["COMMAND", "INFO", "hive.topology"]).await;
        if !matches!(&module, Ok(v) if v.as_array().and_then(|a| a.first()).is_some_and(|f| *f != Value::Nil))
        {
            continue;
        }
        if c.call(&["SUBSCRIBE", "__hive__:events"]).await.is_err() {
            continue;
        }
        let (addr, found) = (addr.clone(), found.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + until;
            while tokio::time::Instant::now() < deadline {
                let Ok(v) = c.read(Duration::from_millis(500)).await else {
                    continue;
                };
                let Some(payload) = v.as_array().and_then(|a| a.get(2)).and_then(Value::as_str)
                else {
                    continue;
                };
                let Ok(ev) = serde_json::from_str::<serde_json::Value>(payload) else {
                    continue;
                };
                if ev["event"] == "role_change" && ev["role"] == "master" {
                    let at = ev["time_ms"].as_u64().unwrap_or(0);
                    let mut f = found.lock().await;
                    if f.is_none() {
                        *f = Some((addr.clone(), at));
                    }
                    return;
                }
            }
        });
    }
    found
}
