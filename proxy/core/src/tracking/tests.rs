use super::*;
use hive_upstream::mailbox;

fn client(
    resp3: bool,
    redirect: Option<u64>,
    bcast: Option<Vec<Bytes>>,
) -> (Client, mailbox::Receiver<Inbox>) {
    let (tx, rx) = mailbox::channel();
    (
        Client {
            tx,
            resp3,
            redirect,
            bcast,
        },
        rx,
    )
}

fn frames(rx: &mut mailbox::Receiver<Inbox>) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(Inbox::Invalidate { frame }) = rx.try_recv() {
        out.push(frame);
    }
    out
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn tracker_tells_readers_once_per_read() {
    let t = Tracker::new(0);
    let (c, mut rx) = client(true, None, None);
    t.enable(1, c);
    t.track(1, [&b"a"[..], b"b"].into_iter());
    t.invalidate(&[b("a"), b("z")]);
    assert_eq!(
        frames(&mut rx),
        vec![frames::invalidate(Some(&[b("a")]), true)]
    );
    // Told once: a second change of `a` needs a second read.
    t.invalidate(&[b("a")]);
    assert!(frames(&mut rx).is_empty());
    // Its own write of `b` is reported to the caller, and the feed then has nobody to tell.
    assert!(t.written_by(1, b"b"));
    assert!(!t.written_by(1, b"b"));
    t.invalidate(&[b("b")]);
    assert!(frames(&mut rx).is_empty());
}

#[test]
fn tracker_redirects_and_reports_a_broken_redirect() {
    let t = Tracker::new(0);
    let (sink_tx, mut sink_rx) = mailbox::channel();
    t.sink(9, Some((sink_tx, false)));
    let (c, mut rx) = client(true, Some(9), None);
    t.enable(1, c);
    t.track(1, [&b"k"[..]].into_iter());
    t.invalidate(&[b("k")]);
    assert_eq!(
        frames(&mut sink_rx),
        vec![frames::invalidate(Some(&[b("k")]), false)]
    );
    t.sink(9, None);
    t.track(1, [&b"k"[..]].into_iter());
    t.invalidate(&[b("k")]);
    assert_eq!(frames(&mut rx), vec![frames::redirect_broken(9)]);
}

#[test]
fn tracker_broadcasts_by_prefix_and_flushes() {
    let t = Tracker::new(0);
    let (c, mut rx) = client(true, None, Some(vec![b("a:"), b("b:")]));
    t.enable(1, c);
    let (all, mut all_rx) = client(true, None, Some(vec![]));
    t.enable(2, all);
    t.invalidate(&[b("a:1"), b("c:1"), b("a:2"), b("b:1")]);
    assert_eq!(
        frames(&mut rx),
        vec![
            frames::invalidate(Some(&[b("a:1"), b("a:2")]), true),
            frames::invalidate(Some(&[b("b:1")]), true)
        ]
    );
    assert_eq!(frames(&mut all_rx).len(), 1);
    t.flush();
    assert_eq!(frames(&mut rx), vec![frames::invalidate(None, true)]);
    t.disable(1);
    t.disable(2);
    assert!(!t.active());
}

#[test]
fn tracker_table_bound_evicts_oldest_with_an_invalidation() {
    let t = Tracker::new(2);
    let (c, mut rx) = client(true, None, None);
    t.enable(1, c);
    for k in ["a", "b", "c"] {
        t.track(1, [k.as_bytes()].into_iter());
    }
    assert_eq!(t.counts(), (1, 2));
    assert_eq!(
        frames(&mut rx),
        vec![frames::invalidate(Some(&[b("a")]), true)]
    );
    // Many keys invalidated then re-read keep the order queue bounded.
    for i in 0..10_000 {
        let k = format!("k{}", i % 2);
        t.track(1, [k.as_bytes()].into_iter());
        t.invalidate(&[Bytes::from(k)]);
    }
    let g = t.lock();
    assert!(g.order.len() <= 2 * g.keys.len() + 1025);
}
