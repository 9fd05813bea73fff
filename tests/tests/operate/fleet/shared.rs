//! What a fleet shares: ACL users changed on one Hive hold on every Hive (one started later
//! too), PUBLISH and PUBSUB NUMSUB count the subscribers of every Hive, and the fleet's own
//! channel is closed to clients and deaf to messages signed with another key.

use std::time::Duration;

use hive_proxy::fleet::message::{encode, key, Msg, Origin, CHANNEL};
use hive_tests::module_cluster::wait_for;

use super::Fleet;

fn auth_ok(f: &Fleet, i: usize, user: &str, pw: &str) -> bool {
    let Ok(mut c) = redis::Client::open(f.url(i)).and_then(|c| c.get_connection()) else {
        return false;
    };
    redis::cmd("AUTH")
        .arg(user)
        .arg(pw)
        .query::<()>(&mut c)
        .is_ok()
}

fn wait(what: &str, f: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(15), f);
}

#[test]
fn fleet_acl_change_on_one_hive_holds_on_the_others() {
    let _g = hive_tests::heavy();
    let mut f = Fleet::start(false, "");
    let mut c0 = f.client(0);
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">s3cret", "~app:*", "+@all"])
        .query(&mut c0)
        .unwrap();
    wait("app's user on every Hive", || {
        (1..3).all(|i| auth_ok(&f, i, "app", "s3cret"))
    });
    // The wrong password and the wrong key are refused on a Hive that only heard of app.
    assert!(!auth_ok(&f, 2, "app", "wrong"));
    let mut c2 = hive_tests::connect(&f.url(2));
    let _: () = redis::cmd("AUTH")
        .arg("app")
        .arg("s3cret")
        .query(&mut c2)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("app:1")
        .arg("v")
        .query(&mut c2)
        .unwrap();
    let denied = hive_tests::error_text(hive_tests::run(&mut c2, &["SET", "other", "v"]));
    assert!(denied.starts_with("NOPERM"), "{denied}");
    // The password went to the other Hives as its hash only.
    let list: Vec<String> = redis::cmd("ACL")
        .arg("LIST")
        .query(&mut f.client(1))
        .unwrap();
    assert!(list.iter().all(|l| !l.contains("s3cret")), "{list:?}");
    // A deletion on another Hive reaches the first one.
    let n: i64 = redis::cmd("ACL")
        .arg(&["DELUSER", "app"])
        .query(&mut f.client(1))
        .unwrap();
    assert_eq!(n, 1);
    wait("app gone from every Hive", || {
        (0..3).all(|i| !auth_ok(&f, i, "app", "s3cret"))
    });
    // A Hive started after the changes catches up from the others' heartbeats.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "ops", "on", ">pw2", "~*", "+@all"])
        .query(&mut c0)
        .unwrap();
    f.kill(2);
    f.restart(2);
    wait("the restarted Hive has ops", || {
        auth_ok(&f, 2, "ops", "pw2")
    });
    assert!(!auth_ok(&f, 2, "app", "s3cret"));
    // A reload whose users differ is a change too, as ACL LOAD is.
    let h0 = f.hives[0].as_ref().unwrap();
    let path = h0.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "[proxy]\n",
        "[proxy]\nusers = [\"reloaded on >r ~* +@all\"]\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &h0.pid().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -HUP");
    wait("the reloaded user on Hive 1", || {
        auth_ok(&f, 1, "reloaded", "r")
    });
}

fn publish(f: &Fleet, i: usize, channel: &str) -> i64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg("hello")
        .query(&mut f.client(i))
        .unwrap()
}

#[test]
fn fleet_publish_counts_subscribers_on_every_hive() {
    let _g = hive_tests::heavy();
    let mut f = Fleet::start(true, "");
    let subscribe = |i: usize, pattern: bool| {
        let c = redis::Client::open(f.url(i)).unwrap();
        let mut p = c.get_connection().unwrap();
        if pattern {
            redis::cmd("PSUBSCRIBE").arg("n*").exec(&mut p).unwrap();
        } else {
            redis::cmd("SUBSCRIBE").arg("news").exec(&mut p).unwrap();
        }
        p
    };
    let mut a = subscribe(0, false);
    let _b1 = subscribe(1, false);
    let b2 = subscribe(1, false);
    let _bp = subscribe(1, true);
    // Three subscribers of news and one pattern that matches it, on two Hives.
    wait("PUBLISH to count 4", || publish(&f, 2, "news") == 4);
    let numsub: (String, i64) = redis::cmd("PUBSUB")
        .arg(&["NUMSUB", "news"])
        .query(&mut f.client(2))
        .unwrap();
    assert_eq!(numsub.1, 3);
    let numpat: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query(&mut f.client(0))
        .unwrap();
    assert_eq!(numpat, 1);
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let got: Vec<redis::Value> =
        redis::FromRedisValue::from_redis_value(&a.recv_response().unwrap()).unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    drop(b2);
    wait("PUBLISH to count 3", || publish(&f, 0, "news") == 3);
    // A Hive that dies takes its subscribers out of the count.
    f.kill(1);
    wait("PUBLISH to count 1", || publish(&f, 2, "news") == 1);
}

#[test]
fn fleet_channel_is_closed_to_clients_and_forgeries() {
    let _g = hive_tests::heavy();
    let f = Fleet::start(false, "");
    let mut c = f.client(0);
    for args in [vec!["SUBSCRIBE", CHANNEL], vec!["PUBLISH", CHANNEL, "x"]] {
        let e = hive_tests::error_text(hive_tests::run(&mut c, &args));
        assert!(e.starts_with("NOPERM"), "{args:?}: {e}");
    }
    // A pattern that matches the fleet's channel delivers only the clients' messages.
    let mut p = redis::Client::open(f.url(0))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("PSUBSCRIBE").arg("*").exec(&mut p).unwrap();
    p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A forged ACL message, signed with a key that is not the fleet's, on every master.
    let forged = Msg::Acl {
        from: Origin {
            id: "f".repeat(40),
            run: 1,
        },
        stamp: (1_000_000, "f".repeat(40)),
        lines: vec!["user evil on nopass ~* &* +@all".into()],
    };
    let payload = encode(&forged, &key("not the fleet's key"));
    for m in f.cluster.master_addrs() {
        let mut n = hive_tests::connect(&hive_tests::node_url(&m));
        let _: i64 = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(&payload)
            .query(&mut n)
            .unwrap();
    }
    // A real change made after it arrives; the forgery, sent first, was dropped.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "marker", "on", ">m", "+ping"])
        .query(&mut f.client(1))
        .unwrap();
    wait("the marker user on Hive 2", || {
        auth_ok(&f, 2, "marker", "m")
    });
    for i in 0..3 {
        assert!(!auth_ok(&f, i, "evil", "x"), "Hive {i} took a forged user");
    }
    let _: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("last")
        .query(&mut c)
        .unwrap();
    // Every message before the client's own is a client's too: none on the fleet's channel.
    loop {
        let m = p.recv_response().unwrap();
        let parts: Vec<redis::Value> = redis::FromRedisValue::from_redis_value(&m).unwrap();
        let channel: String = redis::FromRedisValue::from_redis_value(&parts[2]).unwrap();
        assert_ne!(channel, CHANNEL);
        if channel == "news" {
            break;
        }
    }
}
