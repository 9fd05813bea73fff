//! A BLPOP parked through Hive on a static master whose slot is then handed to another: Redis
//! Cluster would unblock it with MOVED; a standalone master never learns the slot moved. Hive
//! releases it when the map changes and blocks it again on the new owner, so a push made
//! after the move (which goes to the new owner) wakes it.

use std::time::Duration;

use hive_common::Slot;
use hive_proxy::config::Mode;
use hive_proxy::server::ProxyHandle;
use hive_tests::module_cluster::wait_for;
use hive_tests::{connect, node_url};

use super::super::hive_ok;
use super::{config, groups, url, write_toml};

fn blocked_clients(addr: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut connect(&node_url(addr)))
        .unwrap();
    hive_tests::module_cluster::field(&info, "blocked_clients")
}

#[test]
fn reshard_static_blocked_pop_follows_its_slot_to_the_new_master() {
    let dir = tempfile::tempdir().unwrap();
    let g = groups(dir.path(), 2, 0);
    let cfg = config(&g, Mode::Static);
    let toml = write_toml(dir.path(), &cfg);
    let proxy = ProxyHandle::start(cfg).expect("proxy");
    let m = g.initial_masters();
    // The first master gives its highest slot.
    let slot = proxy.shared.plane.layout.load().ranges[0]
        .last()
        .unwrap()
        .end;
    let key = (0..)
        .map(|i| format!("queue{i}"))
        .find(|k| Slot::for_key(k.as_bytes()).get() == slot)
        .unwrap();
    let popper = {
        let (u, key) = (url(&proxy), key.clone());
        std::thread::spawn(move || {
            let v: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(&key)
                .arg(60)
                .query(&mut connect(&u))
                .unwrap();
            v
        })
    };
    wait_for(
        "the BLPOP on the first master",
        Duration::from_secs(10),
        || blocked_clients(&m[0]) == 1,
    );

    let out = hive_ok(&[
        "reshard", "--config", &toml, "--slots", "1", "--from", &m[0], "--to", &m[1], "--json",
    ]);
    assert_eq!(out["outcome"]["slots"], 1, "{out}");
    wait_for(
        "the BLPOP on the new owner",
        Duration::from_secs(10),
        || blocked_clients(&m[1]) == 1 && blocked_clients(&m[0]) == 0,
    );
    assert!(!popper.is_finished(), "the client still waits: no error");
    let _: i64 = redis::cmd("LPUSH")
        .arg(&key)
        .arg("job")
        .query(&mut connect(&url(&proxy)))
        .unwrap();
    assert_eq!(popper.join().unwrap(), Some((key, "job".to_string())));
}
