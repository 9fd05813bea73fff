//! The monitor's event feed: a subscription to hive-module's `__hive__:events` on every node
//! that has the module, re-made after the node comes back.

use std::time::Duration;

use hive_common::resp::Value;
use hive_upstream::facts::Snapshot;
use hive_upstream::Backplane;
use std::sync::Arc;
use tokio::sync::mpsc;

pub fn subscribe_all(plane: &Arc<Backplane>, s: &Snapshot, tx: mpsc::UnboundedSender<String>) {
    for n in s.nodes.iter().filter(|n| n.module_version.is_some()) {
        let (plane, addr, tx) = (plane.clone(), n.addr.clone(), tx.clone());
        tokio::spawn(async move {
            loop {
                let why = follow(&plane, &addr, &tx).await;
                if tx.is_closed() {
                    return;
                }
                let _ = why;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// Follows one node's events until its connection fails.
async fn follow(plane: &Backplane, addr: &str, tx: &mpsc::UnboundedSender<String>) -> String {
    let auth = plane.config.node_auth();
    let mut c = match plane.connector.control(addr, auth.as_ref()).await {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = c.send(&["SUBSCRIBE", "__hive__:events"]).await {
        return e.to_string();
    }
    loop {
        let v = match c.read(Duration::from_secs(3600)).await {
            Ok(v) => v,
            Err(e) => return e.to_string(),
        };
        let Some(items) = v.as_array() else { continue };
        if items.first().and_then(Value::as_str) != Some("message") {
            continue;
        }
        let body = items.get(2).and_then(Value::as_str).unwrap_or_default();
        if tx.send(describe(addr, body)).is_err() {
            return "closed".into();
        }
    }
}

/// `{"event":"role_change","role":"master",...}` as one line.
pub fn describe(addr: &str, body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let event = v["event"].as_str().unwrap_or("event");
    match event {
        "role_change" => format!(
            "{addr}: role_change -> {} (offset {})",
            v["role"].as_str().unwrap_or("?"),
            v["offset"]
        ),
        _ => format!("{addr}: {event}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_the_event() {
        let e = describe(
            "127.0.0.1:7003",
            r#"{"event":"role_change","role":"master","master":null,"offset":7,"time_ms":9}"#,
        );
        assert_eq!(e, "127.0.0.1:7003: role_change -> master (offset 7)");
        assert_eq!(
            describe("a", r#"{"event":"master_link_down"}"#),
            "a: master_link_down"
        );
    }
}
