//! `hive backups`: one row per backup at a destination.

use serde::Serialize;

use crate::error::Result;
use crate::store::Store;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub id: String,
    pub created: String,
    pub tag: Option<String>,
    pub mode: String,
    pub shards: usize,
    pub keys: u64,
    pub bytes: u64,
    pub kind: String,
    pub compressed: bool,
    pub consistent: bool,
    /// `complete`, `running`, `failed`, or `unreadable` (no manifest).
    pub state: String,
    pub error: Option<String>,
}

/// Every backup at `store`, oldest first.
pub async fn rows(store: &Store) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for id in store.ids().await? {
        out.push(match store.manifest(&id).await {
            Ok(m) => Row {
                created: m.created.clone(),
                tag: m.tag.clone(),
                mode: m.mode.clone(),
                shards: m.shards.len(),
                keys: m.keys(),
                bytes: m.bytes(),
                kind: format!("{:?}", m.kind).to_lowercase(),
                compressed: m.compressed,
                consistent: m.consistent,
                state: m.state.clone(),
                error: m.error.clone(),
                id,
            },
            Err(e) => Row {
                id,
                created: String::new(),
                tag: None,
                mode: String::new(),
                shards: 0,
                keys: 0,
                bytes: 0,
                kind: String::new(),
                compressed: false,
                consistent: false,
                state: "unreadable".into(),
                error: Some(e.to_string()),
            },
        });
    }
    Ok(out)
}
