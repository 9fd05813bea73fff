//! Role and master-link change detection and the JSON published on `__hive__:events`.

use serde::Serialize;

use hive_common::info::Replication;

pub const CHANNEL: &str = "__hive__:events";

/// The state events are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub role: String,
    pub master: Option<String>,
    pub link_up: bool,
}

impl LinkState {
    pub fn of(r: &Replication) -> LinkState {
        LinkState {
            role: r.role.clone(),
            master: r.master.as_ref().map(|(h, p)| format!("{h}:{p}")),
            link_up: r.role == "replica" && r.link_up,
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Event {
    pub event: &'static str,
    pub role: String,
    pub master: Option<String>,
    pub offset: i64,
    pub time_ms: u64,
}

/// The events a change from `old` to `new` produces (none on the first observation).
pub fn changes(old: Option<&LinkState>, new: &LinkState, offset: i64, time_ms: u64) -> Vec<Event> {
    let Some(old) = old else { return Vec::new() };
    let ev = |event| Event {
        event,
        role: new.role.clone(),
        master: new.master.clone(),
        offset,
        time_ms,
    };
    let mut out = Vec::new();
    if old.role != new.role || old.master != new.master {
        out.push(ev("role_change"));
    }
    if new.role == "replica" && old.link_up != new.link_up {
        out.push(ev(if new.link_up {
            "master_link_up"
        } else {
            "master_link_down"
        }));
    }
    out
}

pub fn to_json(e: &Event) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(role: &str, master: Option<&str>, up: bool) -> LinkState {
        LinkState {
            role: role.into(),
            master: master.map(str::to_string),
            link_up: up,
        }
    }

    #[test]
    fn changes_detects_promotion_and_link_flaps() {
        assert!(changes(None, &st("master", None, false), 0, 1).is_empty());
        let promoted = changes(
            Some(&st("replica", Some("h:1"), true)),
            &st("master", None, false),
            7,
            9,
        );
        assert_eq!(promoted.len(), 1);
        assert_eq!(promoted[0].event, "role_change");
        assert_eq!(
            to_json(&promoted[0]),
            r#"{"event":"role_change","role":"master","master":null,"offset":7,"time_ms":9}"#
        );
        let down = changes(
            Some(&st("replica", Some("h:1"), true)),
            &st("replica", Some("h:1"), false),
            7,
            9,
        );
        assert_eq!(
            down.iter().map(|e| e.event).collect::<Vec<_>>(),
            ["master_link_down"]
        );
        let same = changes(
            Some(&st("master", None, false)),
            &st("master", None, false),
            7,
            9,
        );
        assert!(same.is_empty());
    }
}
