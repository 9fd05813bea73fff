use std::sync::Arc;

use bytes::Bytes;
use hive_common::resp::Request;

use super::entry::{split, FillKind, Known};
use super::{Lookup, NearCache, Waiter};
use crate::config::{Admit, CacheConfig, MemSize};
use hive_upstream::{Inbox, ReplyTx};

fn cache(max_memory: usize) -> Arc<NearCache> {
    let c = NearCache::new(&CacheConfig {
        enabled: true,
        max_memory: MemSize(max_memory),
        admit: Admit::All,
        ..CacheConfig::default()
    });
    c.set_ready(true);
    Arc::new(c)
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
fn get(c: &Arc<NearCache>, key: &str) -> Lookup {
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
    let mut f = fill_of(get(&c, "k"));
    let reply = c.fill(&mut f, &Bytes::from_static(b"$2\r\nv1\r\n:-1\r\n"));
    assert_eq!(&reply[..], b"$2\r\nv1\r\n");
    assert_eq!(hit(get(&c, "k")).as_deref(), Some(&b"$2\r\nv1\r\n"[..]));
    let strlen = c.lookup(id("strlen"), &req(&["STRLEN", "k"]), false);
    assert_eq!(hit(strlen).as_deref(), Some(&b":2\r\n"[..]));
}

#[test]
fn cache_reply_that_raced_an_invalidation_is_not_kept() {
    let c = cache(1 << 20);
    let mut f = fill_of(get(&c, "k"));
    c.invalidate(&[b"k"]);
    // A new read after the invalidation marks the key again: the old reply must not land on
    // the new mark either.
    let mut f2 = fill_of(get(&c, "k"));
    c.fill(&mut f, &Bytes::from_static(b"$3\r\nold\r\n:-1\r\n"));
    assert!(hit(get(&c, "k")).is_none());
    c.fill(&mut f2, &Bytes::from_static(b"$3\r\nnew\r\n:-1\r\n"));
    assert_eq!(hit(get(&c, "k")).as_deref(), Some(&b"$3\r\nnew\r\n"[..]));
}

#[test]
fn cache_flush_and_not_ready_serve_nothing() {
    let c = cache(1 << 20);
    let mut f = fill_of(get(&c, "k"));
    c.fill(&mut f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    c.set_ready(false);
    assert!(matches!(get(&c, "k"), Lookup::Pass));
    c.set_ready(true);
    assert!(matches!(get(&c, "k"), Lookup::Miss(..)));
}

#[test]
fn cache_entry_expires_with_its_ttl() {
    let c = cache(1 << 20);
    let mut f = fill_of(get(&c, "k"));
    c.fill(&mut f, &Bytes::from_static(b"$1\r\nv\r\n:60000\r\n"));
    assert!(hit(get(&c, "k")).is_some());
    // A TTL counts from when the read was sent: 0 ms left is gone already.
    c.invalidate(&[b"k"]);
    let mut f = fill_of(get(&c, "k"));
    c.fill(&mut f, &Bytes::from_static(b"$1\r\nv\r\n:0\r\n"));
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
    let c = Arc::new(c);
    let mut f = fill_of(get(&c, "k"));
    c.fill(
        &mut f,
        &Bytes::from_static(b"$12\r\n0123456789ab\r\n:-1\r\n"),
    );
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
        if let Lookup::Miss(mut f, _) = get(&c, &key) {
            c.fill(&mut f, &Bytes::from(value.clone()));
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
    let mut f = match hget("a") {
        Lookup::Miss(f, _) => f,
        _ => panic!(),
    };
    c.fill(&mut f, &Bytes::from_static(b"$1\r\n1\r\n:-1\r\n"));
    let mut f = match hget("b") {
        Lookup::Miss(f, _) => f,
        _ => panic!(),
    };
    c.fill(&mut f, &Bytes::from_static(b"$-1\r\n:-1\r\n"));
    assert_eq!(hit(hget("a")).as_deref(), Some(&b"$1\r\n1\r\n"[..]));
    assert_eq!(hit(hget("b")).as_deref(), Some(&b"$-1\r\n"[..]));
    // Some fields only: HGETALL goes to the node.
    let all = c.lookup(id("hgetall"), &req(&["HGETALL", "h"]), true);
    let mut f = match all {
        Lookup::Miss(f, _) => f,
        _ => panic!(),
    };
    c.fill(
        &mut f,
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
        let mut f = fill_of(get(&c, key));
        c.fill(&mut f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    }
    let mut moved = vec![false; 16384];
    moved[hive_common::Slot::for_key(b"a").index()] = true;
    c.flush_slots(&moved);
    assert!(hit(get(&c, "a")).is_none());
    assert!(hit(get(&c, "b")).is_some());
}

#[test]
fn cache_second_read_while_a_fill_is_out_waits_or_passes_through() {
    let c = cache(1 << 20);
    let mut f = fill_of(get(&c, "k"));
    // A GET may wait for it; other reads go as they are: one fill per key at a time.
    assert!(matches!(get(&c, "k"), Lookup::InFlight(_)));
    let hget = c.lookup(id("hget"), &req(&["HGET", "k", "f"]), false);
    assert!(matches!(hget, Lookup::Busy));
    // A fill that learned nothing (an error) lets the next read fill.
    c.fill(&mut f, &Bytes::from_static(b"-ERR down\r\n"));
    let mut f = fill_of(get(&c, "k"));
    c.fill(&mut f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    assert!(hit(get(&c, "k")).is_some());
}

/// A GET of `key` that waits for the fill on its way; its reply goes to `tx` as entry `seq`.
fn join(c: &Arc<NearCache>, key: &str, tx: &ReplyTx, seq: u64, resp3: bool) {
    let Lookup::InFlight(gen) = c.lookup(id("get"), &req(&["GET", key]), resp3) else {
        panic!("no fill on its way");
    };
    let w = Waiter {
        tx: tx.clone(),
        seq,
        resp3,
    };
    c.join(key.as_bytes(), gen, w).expect("joined");
}

/// The replies the waiters got, by entry.
fn joined(rx: &mut hive_upstream::mailbox::Receiver<Inbox>) -> Vec<(u64, Option<Bytes>)> {
    std::iter::from_fn(|| rx.try_recv())
        .map(|m| match m {
            Inbox::Joined { seq, frame } => (seq, frame),
            m => panic!("not a joined reply: {m:?}"),
        })
        .collect()
}

#[test]
fn cache_gets_waiting_for_a_fill_take_its_reply_in_their_protocol() {
    let c = cache(1 << 20);
    let (tx, mut rx) = hive_upstream::mailbox::channel();
    let mut f = fill_of(get(&c, "k"));
    join(&c, "k", &tx, 7, false);
    join(&c, "k", &tx, 8, true);
    let reply = c.fill(&mut f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
    assert_eq!(&reply[..], b"$1\r\nv\r\n");
    let v = Some(Bytes::from_static(b"$1\r\nv\r\n"));
    assert_eq!(joined(&mut rx), vec![(7, v.clone()), (8, v)]);
    // A missing key is nil in each waiter's own protocol.
    let mut f = fill_of(get(&c, "gone"));
    join(&c, "gone", &tx, 9, false);
    join(&c, "gone", &tx, 10, true);
    c.fill(&mut f, &Bytes::from_static(b"_\r\n:-2\r\n"));
    assert_eq!(
        joined(&mut rx),
        vec![
            (9, Some(Bytes::from_static(b"$-1\r\n"))),
            (10, Some(Bytes::from_static(b"_\r\n")))
        ]
    );
    // Once the fill is back, a read is a hit, and nothing waits on that fill any more.
    assert!(hit(get(&c, "k")).is_some());
    let w = Waiter {
        tx,
        seq: 11,
        resp3: false,
    };
    assert!(c.join(b"k", f.gen, w).is_err());
}

#[test]
fn cache_gets_waiting_for_a_fill_that_taught_nothing_send_their_own_read() {
    let c = cache(1 << 20);
    let (tx, mut rx) = hive_upstream::mailbox::channel();
    let mut f = fill_of(get(&c, "k"));
    join(&c, "k", &tx, 1, false);
    c.fill(&mut f, &Bytes::from_static(b"-ERR down\r\n"));
    assert_eq!(joined(&mut rx), vec![(1, None)]);
    // A fill whose client went away before its reply came: dropped.
    let f = fill_of(get(&c, "k"));
    join(&c, "k", &tx, 2, true);
    drop(f);
    assert_eq!(joined(&mut rx), vec![(2, None)]);
    // Its entry ended with it: the next read fills, it does not wait for a fill that is gone.
    assert!(matches!(get(&c, "k"), Lookup::Miss(..)));
}

#[test]
fn cache_get_that_waited_before_an_invalidation_takes_the_reply_but_it_is_not_kept() {
    let c = cache(1 << 20);
    let (tx, mut rx) = hive_upstream::mailbox::channel();
    let mut f = fill_of(get(&c, "k"));
    join(&c, "k", &tx, 1, false);
    // A write: the reads after it start a fill of their own.
    c.invalidate(&[b"k"]);
    let mut f2 = fill_of(get(&c, "k"));
    join(&c, "k", &tx, 2, false);
    c.fill(&mut f, &Bytes::from_static(b"$3\r\nold\r\n:-1\r\n"));
    // Sent before the write was acknowledged, the first waiter may read the old value; the
    // cache does not keep it.
    assert_eq!(
        joined(&mut rx),
        vec![(1, Some(Bytes::from_static(b"$3\r\nold\r\n")))]
    );
    assert!(hit(get(&c, "k")).is_none());
    c.fill(&mut f2, &Bytes::from_static(b"$3\r\nnew\r\n:-1\r\n"));
    assert_eq!(
        joined(&mut rx),
        vec![(2, Some(Bytes::from_static(b"$3\r\nnew\r\n")))]
    );
    assert_eq!(hit(get(&c, "k")).as_deref(), Some(&b"$3\r\nnew\r\n"[..]));
}

#[test]
fn cache_admit_hot_takes_only_the_samplers_hot_keys() {
    let c = NearCache::new(&CacheConfig {
        enabled: true,
        ..CacheConfig::default()
    });
    c.set_ready(true);
    let c = Arc::new(c);
    assert!(matches!(get(&c, "k"), Lookup::Pass));
    c.set_hot([b"k".to_vec().into_boxed_slice()].into_iter().collect());
    let mut f = fill_of(get(&c, "k"));
    c.fill(&mut f, &Bytes::from_static(b"$1\r\nv\r\n:-1\r\n"));
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
    let mut f = fill_of(get(&c, "k"));
    let freed = Arc::new(AtomicBool::new(false));
    let frame = Bytes::from_owner(ReadBuffer(b"$2\r\nv1\r\n:-1\r\n".to_vec(), freed.clone()));
    let reply = c.fill(&mut f, &frame);
    assert_eq!(&reply[..], b"$2\r\nv1\r\n");
    drop((reply, frame));
    assert!(
        freed.load(Ordering::SeqCst),
        "the cached value keeps the buffer it was read into"
    );
    assert_eq!(hit(get(&c, "k")).as_deref(), Some(&b"$2\r\nv1\r\n"[..]));
}

#[test]
fn cache_hits_cut_from_one_arena_keep_their_own_bytes() {
    let c = cache(1 << 20);
    let value = format!("${}\r\n{}\r\n", 5000, "y".repeat(5000));
    for (key, reply) in [("a", "$1\r\na\r\n".to_string()), ("b", value.clone())] {
        let mut f = fill_of(get(&c, key));
        c.fill(&mut f, &Bytes::from(format!("{reply}:-1\r\n")));
    }
    let mut arena = bytes::BytesMut::new();
    let mut replies = Vec::new();
    // More than one arena's worth: the later hits come from a new block.
    for i in 0..20 {
        let key = if i % 2 == 0 { "a" } else { "b" };
        let l = c.lookup_into(id("get"), &req(&["GET", key]), false, &mut arena);
        replies.push((key, hit(l).expect("a hit")));
    }
    for (key, r) in replies {
        let want = if key == "a" { "$1\r\na\r\n" } else { &value };
        assert_eq!(&r[..], want.as_bytes());
    }
}
