//! An RDB snapshot streamed over the network with the replication protocol, as `redis-cli
//! --rdb` takes one: `REPLCONF rdb-only 1`, `PSYNC ? -1`, then the node forks, answers
//! `+FULLRESYNC <replid> <offset>` and sends `$<length>` and the RDB. No shell access to the
//! node and no module are needed; the node's user must be allowed `PSYNC`/`REPLCONF`.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use hive_common::resp::Request;
use hive_upstream::conn::control::ControlConn;
use hive_upstream::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{BackupError, Result};
use crate::progress::Bar;
use crate::store::Sink;

/// How long the node may send nothing at all. While it forks and saves it sends a newline
/// every second, so this only fires on a dead node or link.
const IDLE: Duration = Duration::from_secs(60);

/// A snapshot whose fork has happened (the node answered `+FULLRESYNC`).
pub struct Started {
    pub node: String,
    pub offset: i64,
    stream: BoxStream,
    buf: BytesMut,
}

/// Asks the node for a snapshot; returns once it has forked.
pub async fn start(mut conn: ControlConn) -> Result<Started> {
    let node = conn.addr().to_string();
    // 7.0+: the node closes the connection after the RDB instead of streaming commands.
    let _ = conn.call(&["REPLCONF", "rdb-only", "1"]).await;
    let mut stream = conn.into_stream();
    stream
        .write_all(Request::from_args(&["PSYNC", "?", "-1"]).raw())
        .await
        .map_err(|e| BackupError::node(&node, e))?;
    let mut buf = BytesMut::new();
    loop {
        let line = read_line(&mut stream, &mut buf, &node).await?;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("+FULLRESYNC ") {
            let offset = rest
                .split_whitespace()
                .nth(1)
                .and_then(|o| o.parse().ok())
                .unwrap_or(-1);
            return Ok(Started {
                node,
                offset,
                stream,
                buf,
            });
        }
        if let Some(e) = line.strip_prefix('-') {
            return Err(BackupError::node(&node, format!("PSYNC refused: {e}")));
        }
        return Err(BackupError::node(
            &node,
            format!("PSYNC: unexpected reply {line:?}"),
        ));
    }
}

/// Streams the RDB into `sink`; returns its length.
pub async fn transfer(s: Started, sink: &mut Sink, bar: &Bar) -> Result<u64> {
    let Started {
        node,
        mut stream,
        mut buf,
        ..
    } = s;
    let len: u64 = loop {
        let line = read_line(&mut stream, &mut buf, &node).await?;
        if line.is_empty() {
            continue;
        }
        if line.starts_with("$EOF:") {
            return Err(BackupError::node(
                &node,
                "the node sent a diskless (EOF-marked) RDB, which was not asked for",
            ));
        }
        match line.strip_prefix('$').and_then(|n| n.parse().ok()) {
            Some(n) => break n,
            None => {
                return Err(BackupError::node(
                    &node,
                    format!("expected the RDB's length, got {line:?}"),
                ))
            }
        }
    };
    let mut left = len;
    let first = (buf.len() as u64).min(left) as usize;
    if first > 0 {
        sink.write(&buf[..first]).await?;
        bar.inc(first as u64);
        left -= first as u64;
    }
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        let want = (chunk.len() as u64).min(left) as usize;
        let n = match tokio::time::timeout(IDLE, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) => {
                return Err(BackupError::node(
                    &node,
                    format!("connection closed with {left} of {len} RDB bytes still to come"),
                ))
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(BackupError::node(&node, e)),
            Err(_) => {
                return Err(BackupError::node(
                    &node,
                    format!("sent nothing for {} s during the RDB", IDLE.as_secs()),
                ))
            }
        };
        sink.write(&chunk[..n]).await?;
        bar.inc(n as u64);
        left -= n as u64;
    }
    Ok(len)
}

/// One line, without its `\r\n` (the node's keep-alives are a bare `\n`: an empty line).
async fn read_line(stream: &mut BoxStream, buf: &mut BytesMut, node: &str) -> Result<String> {
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&buf[..i])
                .trim_end_matches('\r')
                .to_string();
            buf.advance(i + 1);
            return Ok(line);
        }
        if buf.len() > 64 << 10 {
            return Err(BackupError::node(node, "a reply line longer than 64 KiB"));
        }
        match tokio::time::timeout(IDLE, stream.read_buf(buf)).await {
            Ok(Ok(0)) => return Err(BackupError::node(node, "connection closed")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(BackupError::node(node, e)),
            Err(_) => {
                return Err(BackupError::node(
                    node,
                    format!("no reply within {} s", IDLE.as_secs()),
                ))
            }
        }
    }
}
