//! The ceiling of issue 29's near-cache goal: a one-thread server (tokio, as Hive) that
//! answers every GET with a fixed bulk of `--value` bytes and everything else with `+OK`,
//! without storing anything. It does the least a server can do per request — read, find the
//! request's end, append a reply, write — so its throughput on one core bounds any cache in
//! front of Redis on that core: a near cache's hit does at least this work. Not a server to
//! use: it checks nothing but the framing it needs, and replies to a malformed request by
//! closing the connection.
//! Usage: cargo run --release -p hive-benches --example ceiling -- LISTEN [VALUE_BYTES]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(listen) = args.get(1).cloned() else {
        eprintln!("usage: ceiling LISTEN [VALUE_BYTES]");
        std::process::exit(2);
    };
    let value: usize = match args.get(2).map(|v| v.parse()) {
        None => 64,
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            eprintln!("ceiling: VALUE_BYTES is a number");
            std::process::exit(2);
        }
    };
    let mut bulk = format!("${value}\r\n").into_bytes();
    bulk.extend(std::iter::repeat_n(b'v', value));
    bulk.extend_from_slice(b"\r\n");
    let bulk: &'static [u8] = Box::leak(bulk.into_boxed_slice());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&listen).await?;
        loop {
            let (mut s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(16 * 1024);
                let mut out = Vec::with_capacity(16 * 1024);
                loop {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let mut at = 0;
                    while let Some((end, get)) = request(&buf[at..]) {
                        out.extend_from_slice(if get { bulk } else { b"+OK\r\n" });
                        at += end;
                    }
                    if at == 0 && buf.len() > 1 << 20 {
                        return;
                    }
                    buf.drain(..at);
                    if !out.is_empty() {
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                }
            });
        }
    })
}

/// The length of the whole multibulk request at the start of `b`, and whether it is a GET;
/// `None` while it is incomplete.
fn request(b: &[u8]) -> Option<(usize, bool)> {
    let (argc, mut at) = number(b, b'*')?;
    let mut get = false;
    for i in 0..argc {
        let (len, start) = number(&b[at..], b'$')?;
        let end = at + start + len + 2;
        if end > b.len() {
            return None;
        }
        if i == 0 {
            get = b[at + start..at + start + len].eq_ignore_ascii_case(b"get");
        }
        at = end;
    }
    Some((at, get))
}

/// `<mark><digits>\r\n` at the start of `b`: the number and the length of the line.
fn number(b: &[u8], mark: u8) -> Option<(usize, usize)> {
    if b.first() != Some(&mark) {
        return None;
    }
    let mut n = 0usize;
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            b'0'..=b'9' => n = n.checked_mul(10)?.checked_add((c - b'0') as usize)?,
            b'\r' => return (b.get(i + 1) == Some(&b'\n')).then_some((n, i + 2)),
            _ => return None,
        }
    }
    None
}
