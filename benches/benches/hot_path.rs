//! Micro-benchmarks of the proxy's per-request work: decode, reply scan, slot, lookup, route,
//! and the MGET split/merge.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hive_benches::{reply_stream, set_pipeline};
use hive_common::command::{CommandTable, KeyPositions};
use hive_common::resp::{ReplyScanner, Request, RequestDecoder};
use hive_common::Slot;
use hive_proxy::dispatch::classify;
use hive_proxy::merge::{Merge, MergeKind};
use smallvec::smallvec;

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
    decode,
    reply_scan,
    slot_and_lookup,
    route,
    mget_merge
);
criterion_main!(benches);
