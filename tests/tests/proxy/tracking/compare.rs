//! The same transcripts against Hive (in front of a 3-master cluster) and one redis-server:
//! every frame must be the same, invalidations included.

use super::{Session, Step, Step::*};
use hive_tests::{single_node, Env};

/// Runs `steps` with `conns` connections on both servers and compares.
fn same(name: &str, conns: usize, steps: &[Step]) {
    let _g = hive_tests::heavy();
    let dir = tempfile::tempdir().unwrap();
    let redis = single_node(&dir, false);
    let env = Env::with(3, 0, |_| {});
    let want = Session::open(&redis.addr, conns).run(steps);
    let got = Session::open(&env.proxy.addr.to_string(), conns).run(steps);
    assert_eq!(
        got, want,
        "{name}: Hive (left) and redis-server (right) differ"
    );
}

const HELLO3: &[&str] = &["HELLO", "3"];

#[test]
fn tracking_default_mode_matches_redis() {
    same(
        "default mode, RESP3",
        2,
        &[
            Send(0, HELLO3),
            Send(0, &["CLIENT", "TRACKING", "on"]),
            Expect(0, 2),
            Send(0, &["GET", "k"]),
            Send(0, &["MGET", "a", "b"]),
            Expect(0, 2),
            Send(1, &["SET", "k", "v"]),
            Expect(1, 1),
            Expect(0, 1),
            // Told once: a second change needs a second read.
            Send(1, &["SET", "k", "w"]),
            Expect(1, 1),
            Send(1, &["SET", "b", "x"]),
            Expect(1, 1),
            Expect(0, 1),
            Send(0, &["GET", "k"]),
            Expect(0, 1),
            // Its own write: the reply, then the invalidation.
            Send(0, &["SET", "k", "mine"]),
            Expect(0, 2),
            Send(0, &["GET", "a"]),
            Expect(0, 1),
            Send(1, &["FLUSHALL"]),
            Expect(1, 1),
            Expect(0, 1),
            Send(0, &["CLIENT", "TRACKINGINFO"]),
            Send(0, &["CLIENT", "GETREDIR"]),
            Send(0, &["CLIENT", "TRACKING", "off"]),
            Send(0, &["CLIENT", "TRACKINGINFO"]),
            Expect(0, 4),
        ],
    );
}

#[test]
fn tracking_resp2_redirect_matches_redis() {
    same(
        "RESP2 with REDIRECT",
        3,
        &[
            Send(2, &["SUBSCRIBE", "__redis__:invalidate"]),
            Expect(2, 1),
            Send(0, &["CLIENT", "TRACKING", "on", "REDIRECT", "$ID2"]),
            Send(0, &["GET", "user:1"]),
            Send(0, &["CLIENT", "GETREDIR"]),
            Send(0, &["CLIENT", "TRACKINGINFO"]),
            Expect(0, 4),
            Send(1, &["SET", "user:1", "x"]),
            Expect(1, 1),
            Expect(2, 1),
            Send(0, &["GET", "user:1"]),
            Expect(0, 1),
            Send(0, &["SET", "user:1", "y"]),
            Expect(0, 1),
            Expect(2, 1),
            // A RESP2 connection without a redirect is tracked but told nothing.
            Send(1, &["CLIENT", "TRACKING", "on"]),
            Send(1, &["GET", "user:2"]),
            Send(1, &["SET", "user:2", "z"]),
            Expect(1, 3),
        ],
    );
}

#[test]
fn tracking_bcast_prefixes_matches_redis() {
    same(
        "BCAST with PREFIX",
        2,
        &[
            Send(0, HELLO3),
            Send(
                0,
                &[
                    "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "cfg:",
                ],
            ),
            Expect(0, 2),
            Send(1, &["SET", "user:1", "a"]),
            Send(1, &["SET", "other", "b"]),
            Send(1, &["SET", "cfg:x", "c"]),
            Expect(1, 3),
            Expect(0, 2),
            Send(0, &["CLIENT", "TRACKINGINFO"]),
            Expect(0, 1),
        ],
    );
}

#[test]
fn tracking_optin_optout_noloop_match_redis() {
    same(
        "OPTIN, OPTOUT, NOLOOP",
        3,
        &[
            Send(0, HELLO3),
            Send(0, &["CLIENT", "TRACKING", "on", "OPTIN"]),
            Send(0, &["GET", "k1"]),
            Send(0, &["CLIENT", "CACHING", "yes"]),
            Send(0, &["GET", "k2"]),
            Expect(0, 5),
            Send(1, &["SET", "k1", "a"]),
            Send(1, &["SET", "k2", "b"]),
            Expect(1, 2),
            Expect(0, 1),
            Send(2, HELLO3),
            Send(2, &["CLIENT", "TRACKING", "on", "OPTOUT", "NOLOOP"]),
            Send(2, &["CLIENT", "CACHING", "no"]),
            Send(2, &["GET", "k3"]),
            Send(2, &["GET", "k4"]),
            Send(2, &["SET", "k4", "mine"]),
            Expect(2, 6),
            Send(1, &["SET", "k3", "c"]),
            Send(1, &["SET", "k4", "d"]),
            Expect(1, 2),
        ],
    );
}

#[test]
fn tracking_bad_input_matches_redis() {
    same(
        "errors",
        1,
        &[
            Send(0, &["CLIENT", "TRACKING", "on", "REDIRECT", "999999"]),
            Send(0, &["CLIENT", "TRACKING", "on", "REDIRECT", "abc"]),
            Send(0, &["CLIENT", "TRACKING", "on", "PREFIX", "a"]),
            Send(
                0,
                &[
                    "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "ab",
                ],
            ),
            Send(0, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
            Send(0, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]),
            Send(0, &["CLIENT", "TRACKING", "maybe"]),
            Send(0, &["CLIENT", "TRACKING", "on", "NOSUCH"]),
            Send(0, &["CLIENT", "TRACKING"]),
            Send(0, &["CLIENT", "CACHING", "yes"]),
            Send(0, &["CLIENT", "TRACKING", "on"]),
            Send(0, &["CLIENT", "CACHING", "yes"]),
            Send(0, &["CLIENT", "TRACKING", "on", "BCAST"]),
            Send(0, &["CLIENT", "TRACKING", "on", "OPTIN"]),
            Send(0, &["CLIENT", "CACHING", "no"]),
            Send(0, &["CLIENT", "CACHING", "maybe"]),
            Send(0, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
            Send(0, &["CLIENT", "TRACKING", "off"]),
            Send(0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab"]),
            Send(0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a"]),
            Send(
                0,
                &[
                    "CLIENT", "TRACKING", "on", "REDIRECT", "$ID0", "REDIRECT", "$ID0",
                ],
            ),
            Expect(0, 21),
        ],
    );
}
