//! A backend connection against a scripted node: jobs sent in a burst (joined into few writes)
//! are written in order and each gets its own reply.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::backend::{Backend, BackendOpts};
use super::{Inbox, Job, Proto, Tag};
use crate::stats::UpstreamStats;
use crate::stream::TcpDialer;

fn ping(n: u64) -> Bytes {
    let arg = n.to_string();
    Bytes::from(format!("*2\r\n$4\r\nPING\r\n${}\r\n{arg}\r\n", arg.len()))
}

/// A node that answers each `PING n` with `+n`, in the order the requests arrive.
async fn echo_node() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            // Requests are `*2 $4 PING $k n`: seven CRLF-ended lines each.
            while buf.windows(2).filter(|w| w == b"\r\n").count() >= 5 {
                let text = String::from_utf8_lossy(&buf).to_string();
                let lines: Vec<&str> = text.split("\r\n").collect();
                let reply = format!("+{}\r\n", lines[4]);
                let used: usize = lines[..5].iter().map(|l| l.len() + 2).sum();
                buf.drain(..used);
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        }
    });
    addr
}

#[tokio::test]
async fn backend_keeps_order_of_a_burst_of_jobs() {
    let addr = echo_node().await;
    let opts = BackendOpts {
        connect_timeout: Duration::from_secs(2),
        command_timeout: Some(Duration::from_secs(5)),
        auth: None,
        proto: Proto::Resp2,
        push: None,
        dialer: Arc::new(TcpDialer),
        hand_off_at: None,
        readonly: false,
        ask_id: false,
        ack: None,
    };
    let b = Backend::spawn(
        addr.into(),
        opts,
        Arc::new(Notify::new()),
        Arc::new(UpstreamStats::default()),
        None,
    );
    let (tx, mut rx) = crate::mailbox::channel();
    let job = |seq: u64| Job {
        data: ping(seq),
        prefix: None,
        frames: 1,
        tag: Tag { seq, part: 0 },
        reply: tx.clone(),
        ack: false,
    };
    for seq in 0..42 {
        b.send(job(seq));
    }
    for want in 0..42u64 {
        let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a reply within 5 s")
            .expect("the channel stays open");
        match msg {
            Inbox::Reply { tag, frame } => {
                assert_eq!(tag.seq, want);
                assert_eq!(frame, Bytes::from(format!("+{want}\r\n")));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
