//! CLIENT TRACKING through Hive: transcripts of raw RESP exchanges on several connections, run
//! against Hive and against one standalone redis-server and compared frame by frame
//! (`compare`), then what only a proxy in front of many nodes must do: report changes made
//! on the nodes directly or through another Hive, flush after a failover, in every backend mode,
//! within a bounded table (`deployment`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hive_common::resp::{parse_value, Request};

mod compare;
mod deployment;
mod library;

/// One step of a transcript.
pub(super) enum Step {
    /// Send a command on connection `n`; `$ID<m>` in an argument stands for connection m's
    /// client id.
    Send(usize, &'static [&'static str]),
    /// Read `k` frames on connection `n` (waiting up to 10 s for them).
    Expect(usize, usize),
}

/// Connections to one server, each with its client id and unread bytes.
pub(super) struct Session {
    conns: Vec<(TcpStream, u64, Vec<u8>)>,
}

impl Session {
    pub fn open(addr: &str, n: usize) -> Session {
        let conns = (0..n)
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(Request::from_args(&["CLIENT", "ID"]).raw())
                    .unwrap();
                let mut buf = Vec::new();
                let f = read_frame(&mut s, &mut buf);
                let id = std::str::from_utf8(&f[1..f.len() - 2])
                    .unwrap()
                    .parse()
                    .unwrap();
                (s, id, buf)
            })
            .collect();
        Session { conns }
    }

    pub fn send(&mut self, n: usize, args: &[&str]) {
        let ids: Vec<u64> = self.conns.iter().map(|c| c.1).collect();
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.strip_prefix("$ID") {
                Some(m) => ids[m.parse::<usize>().unwrap()].to_string(),
                None => a.to_string(),
            })
            .collect();
        self.conns[n]
            .0
            .write_all(Request::from_args(&args).raw())
            .unwrap();
    }

    /// The next frame on connection `n`, with every client id of the session written `ID<m>`.
    pub fn frame(&mut self, n: usize) -> String {
        let (s, _, buf) = &mut self.conns[n];
        let f = read_frame(s, buf);
        let mut text = String::from_utf8_lossy(&f).into_owned();
        // HELLO's reply names the server (id, mode): not what is compared.
        if text.starts_with("%7\r\n$6\r\nserver\r\n") {
            return "<HELLO reply>".into();
        }
        // Only where an id is the answer (GETREDIR, TRACKINGINFO's redirect, a broken
        // redirect): other integers (a SUBSCRIBE count) may equal an id by chance.
        if text.starts_with(':') || text.contains("redirect") {
            for (m, c) in self.conns.iter().enumerate() {
                text = text.replace(&format!(":{}\r\n", c.1), &format!(":ID{m}\r\n"));
            }
        }
        text
    }

    /// Runs `steps`, then a PING on every connection (an invalidation too many would come
    /// before its PONG); every frame read, labelled by connection.
    pub fn run(&mut self, steps: &[Step]) -> Vec<String> {
        let mut out = Vec::new();
        for s in steps {
            match s {
                Step::Send(n, args) => self.send(*n, args),
                Step::Expect(n, k) => {
                    for _ in 0..*k {
                        let f = self.frame(*n);
                        out.push(format!("{n}: {f:?}"));
                    }
                }
            }
        }
        for n in 0..self.conns.len() {
            self.send(n, &["PING"]);
            let f = self.frame(n);
            out.push(format!("{n}: {f:?}"));
        }
        out
    }
}

/// Reads one whole RESP frame from `s` (bytes after it stay in `buf`).
fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Ok(Some((_, used))) = parse_value(buf) {
            return buf.drain(..used).collect();
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("a frame within 10 s");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}
