//! A link to one peer Hive: a TCP connection to its client port, held open and PINGed each
//! heartbeat, so a Hive killed or cut off leaves the fleet's view at once (its connection
//! ends) or within two heartbeats (its PINGs go unanswered), not at a timeout of minutes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::{debug, info};

/// The link's state, read by the fleet task.
pub struct Alive {
    pub up: AtomicBool,
    /// Raised on every change of `up` (shared by every link of the fleet task).
    changed: Arc<Notify>,
}

impl Alive {
    pub fn new(changed: Arc<Notify>) -> Alive {
        Alive {
            up: AtomicBool::new(false),
            changed,
        }
    }

    fn set(&self, up: bool, addr: &str) {
        if self.up.swap(up, Ordering::AcqRel) != up {
            info!(peer = %addr, up, "fleet peer link");
            self.changed.notify_one();
        }
    }
}

/// Keeps a link to `addr` until the task is aborted. A connection that ends is dialled again
/// at once: a peer handing its sockets to an upgraded process stays up.
pub async fn keep(addr: String, every: Duration, ping: bool, alive: Arc<Alive>) {
    let answer_within = every * 2;
    loop {
        let conn = tokio::time::timeout(answer_within, TcpStream::connect(&addr)).await;
        let mut s = match conn {
            Ok(Ok(s)) => s,
            other => {
                debug!(peer = %addr, ?other, "fleet peer unreachable");
                alive.set(false, &addr);
                tokio::time::sleep(every).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        alive.set(true, &addr);
        let mut buf = [0u8; 512];
        loop {
            if ping && s.write_all(b"*1\r\n$4\r\nPING\r\n").await.is_err() {
                break;
            }
            // Any reply will do (a Hive that wants a password answers -NOAUTH): it is alive.
            let deadline = tokio::time::Instant::now() + every;
            let read = tokio::time::timeout(answer_within, s.read(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                Err(_) if !ping => {}
                _ => break,
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}
