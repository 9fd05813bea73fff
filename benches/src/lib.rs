//! Inputs shared by the benchmarks: request pipelines and reply streams built once.

use hive_common::resp::Request;

/// `n` SET requests with 64-byte values, concatenated as a client would pipeline them.
pub fn set_pipeline(n: usize) -> Vec<u8> {
    let value = "x".repeat(64);
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(Request::from_args(&["SET", &format!("key:{i:08}"), &value]).raw());
    }
    out
}

/// `n` bulk replies of 64 bytes plus an array reply, as a backend would send them.
pub fn reply_stream(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend_from_slice(b"$64\r\n");
        out.extend_from_slice(&[b'v'; 64]);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Inline `SET key:i vi` + `GET key:i` lines, as Redis's pipelining stresser sends them, up to
/// at least `bytes` bytes.
pub fn inline_pipeline(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 64);
    let mut i = 0u64;
    while out.len() < bytes {
        out.extend_from_slice(format!("SET key:{i} v{i}\r\nGET key:{i}\r\n").as_bytes());
        i += 1;
    }
    out
}
