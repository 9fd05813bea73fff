//! The planner's unit tests: shares, whole runs, drains that only take from the leaver.

use super::*;

fn member(id: &str, slots: std::ops::Range<u16>, weight: f64) -> Member {
    Member {
        id: id.into(),
        slots: slots.collect(),
        weight,
    }
}

fn three_of_four() -> Vec<Member> {
    vec![
        member("a", 0..5461, 1.0),
        member("b", 5461..10923, 1.0),
        member("c", 10923..16384, 1.0),
        member("d", 0..0, 1.0),
    ]
}

fn counts(members: &[Member], moves: &[Move]) -> Vec<usize> {
    members
        .iter()
        .map(|m| {
            m.slots.len() + moves.iter().filter(|x| x.to == m.id).count()
                - moves.iter().filter(|x| x.from == m.id).count()
        })
        .collect()
}

#[test]
fn rebalance_gives_an_empty_master_its_share_from_every_donor() {
    let m = three_of_four();
    let moves = rebalance(&m, 2.0);
    assert_eq!(counts(&m, &moves), vec![4096, 4096, 4096, 4096]);
    assert!(moves.iter().all(|x| x.to == "d"));
    // Each donor gives one whole run from the top of its range.
    let from_a: Vec<u16> = moves
        .iter()
        .filter(|x| x.from == "a")
        .map(|x| x.slot)
        .collect();
    assert_eq!(
        from_a,
        (4096..5461).collect::<Vec<u16>>()[..from_a.len()].to_vec()
    );
    let sizes = Sizes::default();
    assert_eq!(rows(&moves, &sizes, |s| s.to_string()).len(), 3);
}

#[test]
fn rebalance_within_the_threshold_moves_nothing() {
    let m = vec![member("a", 0..8200, 1.0), member("b", 8200..16384, 1.0)];
    assert!(rebalance(&m, 2.0).is_empty());
    assert_eq!(rebalance(&m, 0.0).len(), 8);
}

#[test]
fn rebalance_follows_weights_and_empties_weight_zero() {
    let mut m = three_of_four();
    m[0].weight = 2.0;
    m[2].weight = 0.0;
    let moves = rebalance(&m, 2.0);
    let c = counts(&m, &moves);
    assert_eq!(c.iter().sum::<usize>(), 16384);
    assert_eq!(c[2], 0);
    assert_eq!(c[0], 8192);
    assert_eq!(targets(&m), c);
}

#[test]
fn drain_takes_only_from_the_leaver() {
    let mut m = three_of_four();
    m[3].slots = (0..100).collect();
    m[0].slots = (100..5461).collect();
    let moves = drain(&m, "a").unwrap();
    assert!(moves.iter().all(|x| x.from == "a"));
    assert_eq!(moves.len(), 5361);
    let c = counts(&m, &moves);
    assert_eq!(c[0], 0);
    assert_eq!(c.iter().sum::<usize>(), 16384);
    // d held the least, so it received nearly all; everyone ends within one slot of a share.
    assert!(moves.iter().filter(|x| x.to == "d").count() >= 5360);
    assert!(c[1..].iter().all(|&n| (5461..=5462).contains(&n)), "{c:?}");
    assert_eq!(
        drain(&m[..1], "a").unwrap_err(),
        "the last master cannot be removed"
    );
    assert!(drain(&m, "zz").is_err());
}

#[test]
fn reshard_takes_the_sources_highest_slots_and_refuses_too_many() {
    let m = three_of_four();
    let moves = reshard(&m, 10, "a", "d").unwrap();
    assert_eq!(moves.first().unwrap().slot, 5451);
    assert_eq!(moves.last().unwrap().slot, 5460);
    assert!(reshard(&m, 6000, "a", "d")
        .unwrap_err()
        .contains("holds only 5461"));
    assert!(reshard(&m, 1, "a", "a").is_err());
    assert!(reshard(&m, 0, "a", "d").is_err());
    assert!(reshard(&m, 1, "a", "x").is_err());
}

#[test]
fn order_moves_slots_with_big_keys_last() {
    let m = three_of_four();
    let moves = reshard(&m, 3, "a", "d").unwrap();
    let sizes = Sizes {
        big: vec![BigKey {
            slot: 5458,
            key: "big".into(),
            bytes: 1 << 27,
        }],
        ..Sizes::default()
    };
    let o: Vec<u16> = order(moves, &sizes).iter().map(|x| x.slot).collect();
    assert_eq!(o, vec![5459, 5460, 5458]);
}
