//! `hive-common` checked against a live redis-server: hash slots and the command table.

use std::collections::{BTreeMap, BTreeSet};

use hive_common::command::CommandTable;
use hive_common::Slot;
use hive_tests::single_node;
use rand::{Rng, SeedableRng};

#[test]
fn slot_for_key_matches_cluster_keyslot() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node(&dir, true);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut keys: Vec<Vec<u8>> = [
        "",
        "{",
        "}",
        "{}",
        "}{",
        "{}{}",
        "{{}}",
        "{a}{b}",
        "{{a}}",
        "a{b}c",
        "a{}b{c}",
        "{a",
        "a}",
        "foo",
        "{user1000}.following",
        "{user1000}.followers",
        "x{}",
        "\u{00e9}{\u{00e9}}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for _ in 0..10_000 {
        let len = rng.gen_range(0..24);
        let alphabet = b"ab{}xyz09_:-\x00\xff";
        keys.push(
            (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect(),
        );
    }
    let mut con = hive_tests::connect(&hive_tests::node_url(&node.addr));
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("CLUSTER").arg("KEYSLOT").arg(k);
    }
    let slots: Vec<u16> = pipe.query(&mut con).unwrap();
    assert_eq!(slots.len(), keys.len());
    for (k, s) in keys.iter().zip(slots) {
        assert_eq!(
            Slot::for_key(k).get(),
            s,
            "key {:?}",
            String::from_utf8_lossy(k)
        );
    }
}

#[test]
fn command_table_matches_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node(&dir, false);
    let mut con = hive_tests::connect(&hive_tests::node_url(&node.addr));
    let info: Vec<redis::Value> = redis::cmd("COMMAND").query(&mut con).unwrap();
    let mut live: BTreeMap<String, i64> = BTreeMap::new();
    for entry in &info {
        let redis::Value::Array(fields) = entry else {
            panic!("bad COMMAND entry")
        };
        let name: String = redis::from_redis_value(&fields[0]).unwrap();
        let arity: i64 = redis::from_redis_value(&fields[1]).unwrap();
        live.insert(name.to_lowercase(), arity);
        if let redis::Value::Array(subs) = &fields[9] {
            for s in subs {
                let redis::Value::Array(sf) = s else {
                    panic!("bad subcommand")
                };
                let n: String = redis::from_redis_value(&sf[0]).unwrap();
                live.insert(n.to_lowercase(), redis::from_redis_value(&sf[1]).unwrap());
            }
        }
    }
    // Commands newer than the live server, added for clients that send them on connect.
    let added: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../../common/data/commands_added.json")).unwrap();
    for a in added {
        let name = a["name"].as_str().unwrap().to_string();
        live.entry(name).or_insert(a["arity"].as_i64().unwrap());
    }
    let mut ours: BTreeMap<String, i64> = BTreeMap::new();
    for c in CommandTable::get().iter() {
        ours.insert(c.name.clone(), c.arity);
        for s in &c.subcommands {
            ours.insert(s.name.clone(), s.arity);
        }
    }
    let live_names: BTreeSet<_> = live.keys().collect();
    let our_names: BTreeSet<_> = ours.keys().collect();
    assert_eq!(live_names, our_names, "command sets differ");
    assert_eq!(live, ours, "arities differ");
    assert!(ours.len() > 350, "commands + subcommands: {}", ours.len());
}
