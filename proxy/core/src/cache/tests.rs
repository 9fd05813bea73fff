use bytes::Bytes;
use hive_common::resp::Request;

use super::entry::{split, FillKind, Known};
use super::{Lookup, NearCache};
use crate::config::{Admit, CacheConfig, MemSize};

fn cache(max_memory: usize) -> NearCache {
    let c = NearCache::new(&CacheConfig {
        enabled: true,
        max_memory: MemSize(max_memory),
        admit: Admit::All,
        ..CacheConfig::default()
    });
    c.set_ready(true);
    c
}

fn req(args: &[&str]) -> Request {
    Request::from_args(args)
}

fn id(name: &str) -> u16 {
    hive_common::command::CommandTable::get()
        .lookup(name.as_bytes())
        .unwrap()
        .id
}

/// A GET of `key`: its hit, or the fill it asks for.
fn get(c: &NearCache, key: &str) -> Lookup {
    c.lookup(id("get"), &req(&["GET", key]), false)
}

fn hit(l: Lookup) -> Option<Bytes> {
    match l {
        Lookup::Hit(b) => Some(b),
        _ => None,
    }
}

fn fill_of(l: Lookup) -> Box<super::Fill> {
    match l {
        Lookup::Miss(f, wire) => {
            // The read as sent, then PTTL of its key.
            let key = String::from_utf8_lossy(&f.key).to_string();
            let pttl = format!("*2\r\n$4\r\nPTTL\r\n${}\r\n{key}\r\n", key.len());
            assert!(wire.starts_with(b"*2\r\n$3\r\nGET\r\n"), "{wire:?}");
            assert!(wire.ends_with(pttl.as_bytes()), "{wire:?}");
            f
        }
        _ => panic!("not a miss"),
    }
}

#[test]
fn cache_fill_then_hit() {
    let c = cache(1 << 20);
    let f = fill_of(get(&c, "k"));
    let reply = c.fill(&f, &Bytes::from_static(b"$2\r\nv1\r\n:-1\r\n"));
    assert_eq!(&reply[..], b"$2\r\nv1\r\n");
    assert_eq!(hit(get(&c, "k")).as_deref(), Some(&b"$2\r\nv1\r\n"[..]));
    let strlen = c.lookup(id("strlen"), &req(&["STRLEN", "k"]), false);
    assert_eq!(hit(strlen).as_deref(), Some(&b":2\r\n"[..]));
}

#[test]
fn cache_reply_that_raced_an_invalidation_is_not_kept() {
    let c = cache(1 << 20);
    let f = fill_of(get(&c, "k"));
    c.invalidate(&[b"k"]);
    // A new read after the invalidation marks the key again: the old reply must not land on
    // the new mark either.
    let f2 = fill_of(get(&c, "k"));
    c.fill(&f, &Bytes::from_static(b"$3\r\nold\r\n:-1\r\n"));
    assert!(hit(get(&c, "k")).is_none());
    c.fill(&f2, &Bytes::from_static(b"$3\r\nnew\r\n:-1\r\n"));
    assert_eq!(hit(get(&c, "k")).as_deref(), Some(&b"$3\r\nnew\r\n"[..]));
}

#[test]
fn cache_flush_and_not_ready_serve_nothing() {
    let c = cache(1 << 20);
    let f = fill_of(get(&c, "k"));
    c.fill(&f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    c.set_ready(false);
    assert!(matches!(get(&c, "k"), Lookup::Pass));
    c.set_ready(true);
    assert!(matches!(get(&c, "k"), Lookup::Miss(..)));
}

#[test]
fn cache_entry_expires_with_its_ttl() {
    let c = cache(1 << 20);
    let f = fill_of(get(&c, "k"));
    c.fill(&f, &Bytes::from_static(b"$1\r\nv\r\n:60000\r\n"));
    assert!(hit(get(&c, "k")).is_some());
    // A TTL counts from when the read was sent: 0 ms left is gone already.
    c.invalidate(&[b"k"]);
    let f = fill_of(get(&c, "k"));
    c.fill(&f, &Bytes::from_static(b"$1\r\nv\r\n:0\r\n"));
    assert!(matches!(get(&c, "k"), Lookup::Miss(..)));
}

#[test]
fn cache_big_value_is_not_kept() {
    let c = NearCache::new(&CacheConfig {
        enabled: true,
        admit: Admit::All,
        max_value_bytes: MemSize(8),
        ..CacheConfig::default()
    });
    c.set_ready(true);
    let f = fill_of(get(&c, "k"));
    c.fill(&f, &Bytes::from_static(b"$12\r\n0123456789ab\r\n:-1\r\n"));
    // Known too big: passed through, and no fill is tried again until the key changes.
    assert!(matches!(get(&c, "k"), Lookup::Busy));
    c.invalidate(&[b"k"]);
    assert!(matches!(get(&c, "k"), Lookup::Miss(..)));
}

#[test]
fn cache_stays_within_max_memory() {
    let c = cache(1 << 20);
    let value = format!("$1000\r\n{}\r\n:-1\r\n", "x".repeat(1000));
    for i in 0..5000 {
        let key = format!("key:{i}");
        if let Lookup::Miss(f, _) = get(&c, &key) {
            c.fill(&f, &Bytes::from(value.clone()));
        }
        assert!(c.counts().1 <= 1 << 20);
    }
    assert!(c.evictions.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(c.counts().0 > 100);
}

#[test]
fn cache_hash_fields_add_up_and_answer_like_redis() {
    let c = cache(1 << 20);
    let hget = |f: &str| c.lookup(id("hget"), &req(&["HGET", "h", f]), false);
    let f = match hget("a") {
        Lookup::Miss(f, _) => f,
        _ => panic!(),
    };
    c.fill(&f, &Bytes::from_static(b"$1\r\n1\r\n:-1\r\n"));
    let f = match hget("b") {
        Lookup::Miss(f, _) => f,
        _ => panic!(),
    };
    c.fill(&f, &Bytes::from_static(b"$-1\r\n:-1\r\n"));
    assert_eq!(hit(hget("a")).as_deref(), Some(&b"$1\r\n1\r\n"[..]));
    assert_eq!(hit(hget("b")).as_deref(), Some(&b"$-1\r\n"[..]));
    // Some fields only: HGETALL goes to the node.
    let all = c.lookup(id("hgetall"), &req(&["HGETALL", "h"]), true);
    let f = match all {
        Lookup::Miss(f, _) => f,
        _ => panic!(),
    };
    c.fill(
        &f,
        &Bytes::from_static(b"%1\r\n$1\r\na\r\n$1\r\n1\r\n:-1\r\n"),
    );
    let all = c.lookup(id("hgetall"), &req(&["HGETALL", "h"]), false);
    assert_eq!(
        hit(all).as_deref(),
        Some(&b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"[..])
    );
    let mget = c.lookup(id("mget"), &req(&["MGET", "h"]), true);
    assert_eq!(hit(mget).as_deref(), Some(&b"*1\r\n_\r\n"[..]));
    let exists = c.lookup(id("exists"), &req(&["EXISTS", "h", "h"]), false);
    assert_eq!(hit(exists).as_deref(), Some(&b":2\r\n"[..]));
}

#[test]
fn cache_split_learns_only_from_consistent_replies() {
    let get = FillKind::Get;
    let (r, k) = split(&Bytes::from_static(b"$-1\r\n:-2\r\n"), &get);
    assert_eq!(&r[..], b"$-1\r\n");
    assert_eq!(k, Some((Known::Absent, -2)));
    // Created between the GET and the PTTL: nothing learned.
    assert_eq!(split(&Bytes::from_static(b"$-1\r\n:-1\r\n"), &get).1, None);
    let (r, k) = split(&Bytes::from_static(b"-WRONGTYPE x\r\n:-1\r\n"), &get);
    assert_eq!(&r[..], b"-WRONGTYPE x\r\n");
    assert_eq!(k, None);
    // A lone error (the fill failed on the way): passed on as it is.
    let (r, k) = split(&Bytes::from_static(b"-ERR down\r\n"), &get);
    assert_eq!(&r[..], b"-ERR down\r\n");
    assert_eq!(k, None);
}

#[test]
fn cache_moved_slots_drop_their_entries() {
    let c = cache(1 << 20);
    for key in ["a", "b"] {
        let f = fill_of(get(&c, key));
        c.fill(&f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    }
    let mut moved = vec![false; 16384];
    moved[hive_common::Slot::for_key(b"a").index()] = true;
    c.flush_slots(&moved);
    assert!(hit(get(&c, "a")).is_none());
    assert!(hit(get(&c, "b")).is_some());
}

#[test]
fn cache_second_miss_while_a_fill_is_out_passes_through() {
    let c = cache(1 << 20);
    let f = fill_of(get(&c, "k"));
    // Sent as it is: one fill per key at a time.
    assert!(matches!(get(&c, "k"), Lookup::Busy));
    // A fill that learned nothing (an error) lets the next read fill.
    c.fill(&f, &Bytes::from_static(b"-ERR down\r\n"));
    let f = fill_of(get(&c, "k"));
    c.fill(&f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    assert!(hit(get(&c, "k")).is_some());
}

#[test]
fn cache_admit_hot_takes_only_the_samplers_hot_keys() {
    let c = NearCache::new(&CacheConfig {
        enabled: true,
        ..CacheConfig::default()
    });
    c.set_ready(true);
    assert!(matches!(get(&c, "k"), Lookup::Pass));
    c.set_hot([b"k".to_vec().into_boxed_slice()].into_iter().collect());
    let f = fill_of(get(&c, "k"));
    c.fill(&f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    // Held until it changes, hot or not.
    c.set_hot(Default::default());
    assert!(hit(get(&c, "k")).is_some());
    assert!(matches!(get(&c, "other"), Lookup::Pass));
}

#[test]
fn cache_entry_does_not_keep_the_nodes_read_buffer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    /// A node's read buffer that says when it is freed.
    struct ReadBuffer(Vec<u8>, Arc<AtomicBool>);
    impl AsRef<[u8]> for ReadBuffer {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for ReadBuffer {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }
    let c = cache(1 << 20);
    let f = fill_of(get(&c, "k"));
    let freed = Arc::new(AtomicBool::new(false));
    let frame = Bytes::from_owner(ReadBuffer(b"$2\r\nv1\r\n:-1\r\n".to_vec(), freed.clone()));
    let reply = c.fill(&f, &frame);
    assert_eq!(&reply[..], b"$2\r\nv1\r\n");
    drop((reply, frame));
    assert!(
        freed.load(Ordering::SeqCst),
        "the cached value keeps the buffer it was read into"
    );
    assert_eq!(hit(get(&c, "k")).as_deref(), Some(&b"$2\r\nv1\r\n"[..]));
}
