//! Pipelined batches over one control connection: the commands are encoded into one buffer,
//! written at once, and their replies read in order. Restores and verification move keys a
//! thousand at a time this way.

use bytes::BytesMut;
use hive_common::resp::{Request, Value};
use hive_upstream::conn::control::ControlConn;

use crate::error::{BackupError, Result};

/// Sends every command of `batch` and returns the replies, errors included, in order.
pub async fn batch<A: AsRef<[u8]>>(conn: &mut ControlConn, batch: &[Vec<A>]) -> Result<Vec<Value>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = BytesMut::new();
    for args in batch {
        buf.extend_from_slice(Request::from_args(args).raw());
    }
    let node = conn.addr().to_string();
    conn.send_raw(&buf)
        .await
        .map_err(|e| BackupError::node(&node, e))?;
    let mut out = Vec::with_capacity(batch.len());
    let timeout = conn.timeout().max(std::time::Duration::from_secs(30));
    for _ in 0..batch.len() {
        out.push(
            conn.read(timeout)
                .await
                .map_err(|e| BackupError::node(&node, e))?,
        );
    }
    Ok(out)
}

/// One command; a Redis error reply becomes an error naming the node.
pub async fn call<A: AsRef<[u8]>>(conn: &mut ControlConn, args: &[A]) -> Result<Value> {
    let node = conn.addr().to_string();
    conn.call(args)
        .await
        .map_err(|e| BackupError::node(&node, e))
}
