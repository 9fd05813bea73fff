//! Micro-benchmarks of the proxy's per-request work: decode, reply scan, slot, lookup, route,
//! and the MGET split/merge.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hive_benches::{reply_stream, set_pipeline};
use hive_common::command::{CommandTable, KeyPositions};
use hive_common::resp::{ReplyScanner, Request, RequestDecoder};
use hive_common::Slot;
use hive_proxy::command::classify::classify;
use hive_proxy::command::reply::merge::{Merge, MergeKind};
use smallvec::smallvec;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Heap allocations per call of `f`, averaged over `n` calls.
fn allocs_per_op(n: u32, mut f: impl FnMut()) -> f64 {
    f();
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        f();
    }
    region.change().allocations as f64 / f64::from(n)
}

/// Prints allocations per request for the hot-path steps (a table, not a timing).
fn allocations(_: &mut Criterion) {
    let mut decoder = RequestDecoder::default();
    let pipeline = set_pipeline(100);
    let mut buf = BytesMut::with_capacity(pipeline.len() * 2);
    let decode = allocs_per_op(1000, || {
        buf.clear();
        buf.extend_from_slice(&pipeline);
        while let Some(r) = decoder.decode(&mut buf).unwrap() {
            black_box(r);
        }
    }) / 100.0;
    let replies = reply_stream(100);
    let scan = allocs_per_op(1000, || {
        let mut sc = ReplyScanner::default();
        let mut at = 0;
        while let Some(n) = sc.scan(&replies[at..]).unwrap() {
            at += n;
        }
    }) / 100.0;
    let get = Request::from_args(&["GET", "key:00001234"]);
    let mut keys = KeyPositions::new();
    let route = allocs_per_op(10_000, || {
        black_box(classify(&get, &mut keys));
    });
    let slot = allocs_per_op(10_000, || {
        black_box(Slot::for_key(black_box(b"key:00001234")));
    });
    println!("allocations per request: decode (100-SET pipeline) {decode:.3}, reply scan {scan:.3}, route GET {route:.3}, slot {slot:.3}");
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("inline_get", b"GET key:00000001\r\n".to_vec(), 1),
        ("multibulk_set_64b", set_pipeline(1), 1),
        (
            "multibulk_mset_100_keys",
            {
                let mut args = vec!["MSET".to_string()];
                for i in 0..100 {
                    args.push(format!("key:{i}"));
                    args.push("v".repeat(64));
                }
                Request::from_args(&args).raw().to_vec()
            },
            1,
        ),
        ("pipeline_100_set", set_pipeline(100), 100),
    ];
    for (name, input, n) in cases {
        g.throughput(Throughput::Elements(n));
        g.bench_function(name, |b| {
            let mut d = RequestDecoder::default();
            b.iter(|| {
                let mut buf = BytesMut::from(&input[..]);
                let mut count = 0;
                while let Some(r) = d.decode(&mut buf).unwrap() {
                    black_box(&r);
                    count += 1;
                }
                assert_eq!(count, n);
            })
        });
    }
    g.finish();
}

fn reply_scan(c: &mut Criterion) {
    let input = reply_stream(100);
    let mut g = c.benchmark_group("reply_scan");
    g.throughput(Throughput::Elements(100));
    g.bench_function("100_bulk_64b", |b| {
        b.iter(|| {
            let mut sc = ReplyScanner::default();
            let mut at = 0;
            while let Some(n) = sc.scan(&input[at..]).unwrap() {
                at += n;
            }
            assert_eq!(at, input.len());
        })
    });
    g.finish();
}

fn slot_and_lookup(c: &mut Criterion) {
    c.bench_function("slot/for_key_16b", |b| {
        b.iter(|| Slot::for_key(black_box(b"key:000000001234")))
    });
    c.bench_function("slot/for_key_tagged", |b| {
        b.iter(|| Slot::for_key(black_box(b"{user1000}.following")))
    });
    let t = CommandTable::get();
    c.bench_function("command/lookup_get", |b| {
        b.iter(|| t.lookup(black_box(b"get")).is_some())
    });
    c.bench_function("command/lookup_zrangebyscore_mixed_case", |b| {
        b.iter(|| t.lookup(black_box(b"ZRangeByScore")).is_some())
    });
}

fn route(c: &mut Criterion) {
    let get = Request::from_args(&["GET", "key:00001234"]);
    let set = Request::from_args(&["SET", "key:00001234", &"v".repeat(64)]);
    let eval = Request::from_args(&["EVAL", "return 1", "2", "{a}1", "{a}2", "x"]);
    let mut keys = KeyPositions::new();
    c.bench_function("route/get", |b| {
        b.iter(|| black_box(classify(&get, &mut keys)))
    });
    c.bench_function("route/set", |b| {
        b.iter(|| black_box(classify(&set, &mut keys)))
    });
    c.bench_function("route/eval_2_keys", |b| {
        b.iter(|| black_box(classify(&eval, &mut keys)))
    });
}

fn mget_merge(c: &mut Criterion) {
    // 3 shards' replies to an MGET of 30 keys, merged back into key order.
    let part = {
        let mut p = b"*10\r\n".to_vec();
        for _ in 0..10 {
            p.extend_from_slice(b"$8\r\nvalue-xx\r\n");
        }
        Bytes::from(p)
    };
    c.bench_function("merge/mget_30_keys_3_parts", |b| {
        b.iter(|| {
            let pos = |o: u32| {
                smallvec![
                    o,
                    o + 3,
                    o + 6,
                    o + 9,
                    o + 12,
                    o + 15,
                    o + 18,
                    o + 21,
                    o + 24,
                    o + 27
                ]
            };
            let mut m = Merge::new(MergeKind::Gather, 3, vec![pos(0), pos(1), pos(2)]);
            m.add(0, part.clone());
            m.add(1, part.clone());
            black_box(m.add(2, part.clone()).unwrap())
        })
    });
}

criterion_group!(
    benches,
    allocations,
    decode,
    reply_scan,
    slot_and_lookup,
    route,
    mget_merge
);
criterion_main!(benches);
