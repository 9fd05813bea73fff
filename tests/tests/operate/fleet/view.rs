//! What cluster clients are shown: every live Hive a master with an equal share of the slots,
//! the same map from each, and a Hive killed gone from it within moments.

use super::Fleet;

fn nodes_text(f: &Fleet, i: usize) -> String {
    redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut f.client(i))
        .unwrap()
}

fn check_view_and_kill(discover: bool) {
    let _g = hive_tests::heavy();
    let mut f = Fleet::start(discover, "");
    // Every Hive gives the same map: three masters, all 16384 slots, in the same order.
    let first = f.slot_owners(0);
    assert_eq!(first.len(), 3);
    for i in 1..3 {
        assert_eq!(f.slot_owners(i), first, "Hive {i} shows another map");
    }
    for i in 0..3 {
        let text = nodes_text(&f, i);
        assert_eq!(text.lines().count(), 3, "{text}");
        let me = text.lines().find(|l| l.contains("myself")).unwrap();
        assert!(me.contains(&f.addrs[i].to_string()), "{me}");
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut f.client(i))
            .unwrap();
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
        assert!(info.contains("cluster_state:ok"), "{info}");
        let mut c = f.client(i);
        assert_eq!(hive_tests::info_u64(&mut c, "fleet_members"), 3);
    }
    // Any Hive serves any slot: a key works through each, whatever the map says.
    for i in 0..3 {
        let mut c = f.client(i);
        let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut c).unwrap();
        let v: usize = redis::cmd("GET")
            .arg("k")
            .query(&mut f.client((i + 1) % 3))
            .unwrap();
        assert_eq!(v, i);
    }
    f.kill(1);
    f.wait_members(&[0, 2]);
    let text = nodes_text(&f, 2);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains(&f.addrs[1].to_string()), "{text}");
}

#[test]
fn fleet_listed_shows_live_hives_as_the_cluster() {
    check_view_and_kill(false);
}

#[test]
fn fleet_discovered_shows_live_hives_as_the_cluster() {
    check_view_and_kill(true);
}

/// `hive proxy --check-config` of `text`: its stderr, and whether it passed.
fn check_config(text: &str) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hive.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(hive_tests::hive_bin())
        .args(["proxy", "--check-config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn fleet_wildcard_listen_without_announce_is_refused() {
    let (err, ok) = check_config(
        "[proxy]\nlisten = \"0.0.0.0:6390\"\nfleet = \"discover\"\n[backend]\nmode = \"cluster\"\nseeds = [\"127.0.0.1:1\"]\n",
    );
    assert!(!ok);
    assert!(
        err.contains("proxy.announce") && err.contains("hive.toml"),
        "{err}"
    );
    let (err, ok) = check_config(
        "[proxy]\nfleet = \"everyone\"\n[backend]\nmode = \"cluster\"\nseeds = [\"127.0.0.1:1\"]\n",
    );
    assert!(!ok);
    assert!(
        err.contains("proxy.fleet") && err.contains("everyone"),
        "{err}"
    );
}
