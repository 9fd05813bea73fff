//! Decoding a client's whole read buffer of inline commands costs time in proportion to its
//! bytes: 100 KB and 10 MB buffers, per byte, within 2x of each other (the check at the end
//! fails the run otherwise). Before, each inline command scanned the rest of the buffer.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, Criterion, Throughput};
use hive_benches::inline_pipeline;
use hive_common::resp::RequestDecoder;

const SIZES: [(&str, usize); 2] = [("100KB", 100 * 1024), ("10MB", 10 * 1024 * 1024)];

/// Decodes every request in `input`; the number decoded.
fn decode_all(input: &[u8]) -> usize {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    while let Some(r) = decoder.decode(&mut buf).expect("valid inline commands") {
        black_box(r);
        n += 1;
    }
    assert!(buf.is_empty(), "every byte decoded");
    n
}

fn inline_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("inline_decode");
    g.sample_size(10);
    for (name, size) in SIZES {
        let input = inline_pipeline(size);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| b.iter(|| decode_all(&input)));
    }
    g.finish();
}

/// The fastest of a few runs, in nanoseconds per byte.
fn ns_per_byte(input: &[u8]) -> f64 {
    let mut best = Duration::MAX;
    let rounds = if input.len() > 1 << 20 { 5 } else { 200 };
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(decode_all(input));
        best = best.min(t.elapsed());
    }
    best.as_nanos() as f64 / input.len() as f64
}

fn linear_check() {
    let small = ns_per_byte(&inline_pipeline(SIZES[0].1));
    let large = ns_per_byte(&inline_pipeline(SIZES[1].1));
    let ratio = large / small;
    println!(
        "inline decode: {small:.2} ns/byte at 100 KB, {large:.2} ns/byte at 10 MB: {ratio:.2}x"
    );
    assert!(
        ratio <= 2.0,
        "inline decoding is not linear: 10 MB costs {ratio:.2}x per byte what 100 KB does"
    );
}

criterion_group!(benches, inline_decode);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    linear_check();
}
