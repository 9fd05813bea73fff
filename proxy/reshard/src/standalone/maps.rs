//! The slot maps a handover writes, each one epoch above the last: slots marked moving, slots
//! given to their target, a shard added or taken out. Pure.

use std::collections::BTreeSet;

use hive_common::topology::deployed::{expand, format_slots, parse_ranges, DeployedMap, Moving};

fn slots_of(map: &DeployedMap, name: &str) -> BTreeSet<u16> {
    map.shards
        .iter()
        .find(|s| s.name == name)
        .map(|s| {
            expand(&parse_ranges(&s.slots).unwrap_or_default())
                .into_iter()
                .collect()
        })
        .unwrap_or_default()
}

fn next(map: &DeployedMap) -> DeployedMap {
    DeployedMap {
        epoch: map.epoch + 1,
        ..map.clone()
    }
}

/// `slots` marked as moving from `from` to `to`.
pub fn with_moving(map: &DeployedMap, slots: &[u16], from: &str, to: &str) -> DeployedMap {
    let mut m = next(map);
    m.moving.retain(|mv| !(mv.from == from && mv.to == to));
    let mut all: BTreeSet<u16> = slots.iter().copied().collect();
    for mv in &map.moving {
        if mv.from == from && mv.to == to {
            all.extend(expand(&parse_ranges(&mv.slots).unwrap_or_default()));
        }
    }
    m.moving.push(Moving {
        slots: format_slots(&all.into_iter().collect::<Vec<_>>()),
        from: from.into(),
        to: to.into(),
    });
    m
}

/// `slots` now owned by `to`, and no longer moving.
pub fn committed(map: &DeployedMap, slots: &[u16], from: &str, to: &str) -> DeployedMap {
    let mut m = next(map);
    let moved: BTreeSet<u16> = slots.iter().copied().collect();
    for s in &mut m.shards {
        let mut own = slots_of(map, &s.name);
        if s.name == to {
            own.extend(&moved);
        } else {
            own.retain(|x| !moved.contains(x));
        }
        s.slots = format_slots(&own.into_iter().collect::<Vec<_>>());
    }
    m.moving = map
        .moving
        .iter()
        .filter_map(|mv| {
            let mut left: Vec<u16> = expand(&parse_ranges(&mv.slots).unwrap_or_default());
            if mv.from == from && mv.to == to {
                left.retain(|x| !moved.contains(x));
            }
            (!left.is_empty()).then(|| Moving {
                slots: format_slots(&left),
                ..mv.clone()
            })
        })
        .collect();
    m
}

/// A new shard without slots.
pub fn with_shard(map: &DeployedMap, name: &str, replicas: &[String]) -> DeployedMap {
    let mut m = next(map);
    m.shards
        .push(hive_common::topology::deployed::DeployedShard {
            name: name.into(),
            replicas: replicas.to_vec(),
            slots: String::new(),
        });
    m
}

/// The map without shard `name` (which must hold no slot by now).
pub fn without_shard(map: &DeployedMap, name: &str) -> DeployedMap {
    let mut m = next(map);
    m.shards.retain(|s| s.name != name);
    m
}

/// Every slot of a map's moving entries, with its two ends.
pub fn moving(map: &DeployedMap) -> Vec<(String, String, Vec<u16>)> {
    map.moving
        .iter()
        .map(|mv| {
            (
                mv.from.clone(),
                mv.to.clone(),
                expand(&parse_ranges(&mv.slots).unwrap_or_default()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> DeployedMap {
        DeployedMap::parse(
            r#"{"epoch":1,"shards":[{"name":"a","slots":"0-8191"},{"name":"b","slots":"8192-16383"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn maps_mark_then_commit_a_move() {
        let m = with_moving(&two(), &[8190, 8191], "a", "b");
        assert_eq!(m.epoch, 2);
        assert_eq!(m.moving[0].slots, "8190-8191");
        m.check().unwrap();
        let c = committed(&m, &[8190, 8191], "a", "b");
        assert_eq!(c.epoch, 3);
        assert!(c.moving.is_empty());
        assert_eq!(c.shards[0].slots, "0-8189");
        assert_eq!(c.shards[1].slots, "8190-16383");
        c.check().unwrap();
    }

    #[test]
    fn maps_commit_part_of_a_move_and_keep_the_rest_moving() {
        let m = with_moving(&two(), &[8189, 8190, 8191], "a", "b");
        let c = committed(&m, &[8191], "a", "b");
        assert_eq!(c.moving[0].slots, "8189-8190");
        assert_eq!(moving(&c), vec![("a".into(), "b".into(), vec![8189, 8190])]);
    }

    #[test]
    fn maps_add_and_remove_shards() {
        let m = with_shard(&two(), "c", &["127.0.0.1:9".into()]);
        assert_eq!(m.shards.len(), 3);
        assert_eq!(m.shards[2].slots, "");
        m.check().unwrap();
        let r = without_shard(&m, "c");
        assert_eq!(r.shards.len(), 2);
        assert_eq!(r.epoch, 3);
    }
}
