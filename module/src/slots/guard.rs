//! What a master does with a command while it hands slots over, as Redis Cluster's source node
//! does (`getNodeByQuery`, with 7.2's rule for split keys): a command whose keys in a handed
//! slot are all here runs; one whose keys are all gone is sent to the target with `-ASK`; one
//! with some here and some gone gets `-TRYAGAIN` until the slot is done. A suspect key (one a
//! promoted replica may hold a stale copy of, `takeover`) gets `-TRYAGAIN` too. Pure.

use std::collections::{BTreeMap, BTreeSet};

use hive_common::command::CommandTable;
use hive_common::command::{BeginSearch, CommandSpec, FindKeys, KeyPositions};
use hive_common::resp::Request;
use hive_common::Slot;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Run,
    Ask { slot: u16, to: String },
    TryAgain,
}

impl Verdict {
    /// The error reply, as Redis Cluster words it.
    pub fn error(&self) -> Option<String> {
        match self {
            Verdict::Run => None,
            Verdict::Ask { slot, to } => Some(format!("ASK {slot} {to}")),
            Verdict::TryAgain => {
                Some("TRYAGAIN Multiple keys request during rehashing of slot".to_string())
            }
        }
    }
}

/// Commands that must reach the node whatever their keys: the handover itself.
fn exempt(name: &[u8]) -> bool {
    [&b"migrate"[..], b"restore", b"restore-asking"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        || name.len() > 5 && name[..5].eq_ignore_ascii_case(b"hive.")
}

/// Judges `args` against the handed slots; `exists` says whether a key is on this node, and
/// `suspects` are keys held back even when here.
pub fn judge(
    args: &[&[u8]],
    migrating: &BTreeMap<u16, String>,
    suspects: &BTreeSet<Vec<u8>>,
    mut exists: impl FnMut(&[u8]) -> bool,
) -> Verdict {
    let Some(name) = args.first() else {
        return Verdict::Run;
    };
    if migrating.is_empty() || exempt(name) {
        return Verdict::Run;
    }
    let table = CommandTable::get();
    let Some(mut spec) = table.lookup(name) else {
        return Verdict::Run;
    };
    if !spec.arity_ok(args.len()) {
        // Redis answers with the arity error itself.
        return Verdict::Run;
    }
    if let Some(sub) = args.get(1).and_then(|s| spec.subcommand(s)) {
        spec = sub;
    }
    // Most commands (GET, SET, HSET…) name one key at a fixed place: judged without copying
    // the arguments (the filter runs for every command while a slot is handed over).
    if let Some(i) = single_key(spec) {
        let Some(key) = args.get(i) else {
            return Verdict::Run;
        };
        let slot = Slot::for_key(key).get();
        return match migrating.get(&slot) {
            Some(to) if !exists(key) => Verdict::Ask {
                slot,
                to: to.clone(),
            },
            Some(_) if suspects.contains(*key) => Verdict::TryAgain,
            _ => Verdict::Run,
        };
    }
    let req = Request::from_args(args);
    let mut pos = KeyPositions::new();
    if spec.keys(&req, &mut pos).is_err() || pos.is_empty() {
        return Verdict::Run;
    }
    let (mut here, mut gone, mut outside) = (0usize, 0usize, 0usize);
    let mut ask: Option<(u16, &String)> = None;
    let mut targets_differ = false;
    for &i in &pos {
        let key = req.arg(i as usize);
        let slot = Slot::for_key(key).get();
        match migrating.get(&slot) {
            None => outside += 1,
            Some(to) => {
                if exists(key) {
                    if suspects.contains(key) {
                        return Verdict::TryAgain;
                    }
                    here += 1;
                } else {
                    gone += 1;
                    match ask {
                        None => ask = Some((slot, to)),
                        Some((_, t)) if t != to => targets_differ = true,
                        Some(_) => {}
                    }
                }
            }
        }
    }
    match ask {
        None => Verdict::Run,
        Some((slot, to)) if here == 0 && outside == 0 && !targets_differ && gone > 0 => {
            Verdict::Ask {
                slot,
                to: to.clone(),
            }
        }
        Some(_) => Verdict::TryAgain,
    }
}

/// The argument index of the one key of a command with a single fixed-place key spec.
fn single_key(spec: &CommandSpec) -> Option<usize> {
    match spec.key_specs.as_slice() {
        [k] => match (&k.begin_search, &k.find_keys) {
            (BeginSearch::Index { pos }, FindKeys::Range { lastkey: 0, .. }) if *pos > 0 => {
                Some(*pos as usize)
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handing(key: &str, to: &str) -> BTreeMap<u16, String> {
        BTreeMap::from([(Slot::for_key(key.as_bytes()).get(), to.to_string())])
    }

    fn judge_with(args: &[&str], m: &BTreeMap<u16, String>, present: &[&str]) -> Verdict {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        judge(&args, m, &BTreeSet::new(), |k| {
            present.iter().any(|p| p.as_bytes() == k)
        })
    }

    #[test]
    fn guard_runs_keys_that_are_here_and_asks_for_gone_ones() {
        let m = handing("{u}", "127.0.0.1:7002");
        let slot = Slot::for_key(b"{u}").get();
        assert_eq!(judge_with(&["GET", "{u}a"], &m, &["{u}a"]), Verdict::Run);
        let v = judge_with(&["set", "{u}a", "1"], &m, &[]);
        assert_eq!(v.error().unwrap(), format!("ASK {slot} 127.0.0.1:7002"));
        // Keys outside the handed slots never look up anything.
        assert_eq!(judge_with(&["GET", "other"], &m, &[]), Verdict::Run);
        // No key, or not a command: Redis answers.
        assert_eq!(judge_with(&["PING"], &m, &[]), Verdict::Run);
        assert_eq!(judge_with(&["NOSUCH", "{u}a"], &m, &[]), Verdict::Run);
        assert_eq!(judge_with(&["GET"], &m, &[]), Verdict::Run);
        assert_eq!(judge_with(&[], &m, &[]), Verdict::Run);
    }

    #[test]
    fn guard_tries_again_when_keys_are_split() {
        let m = handing("{u}", "127.0.0.1:7002");
        let v = judge_with(&["MGET", "{u}a", "{u}b"], &m, &["{u}a"]);
        assert_eq!(v, Verdict::TryAgain);
        assert!(v.error().unwrap().starts_with("TRYAGAIN "));
        assert!(matches!(
            judge_with(&["MGET", "{u}a", "{u}b"], &m, &[]),
            Verdict::Ask { .. }
        ));
        // A gone key with a key of another slot: neither node can run it whole.
        assert_eq!(
            judge_with(&["MGET", "{u}a", "x"], &m, &[]),
            Verdict::TryAgain
        );
        // Script keys count like any others.
        assert!(matches!(
            judge_with(&["EVAL", "return 1", "1", "{u}a"], &m, &[]),
            Verdict::Ask { .. }
        ));
        assert_eq!(
            judge_with(&["EVAL", "return 1", "0"], &m, &[]),
            Verdict::Run
        );
    }

    #[test]
    fn guard_finds_single_keys_in_place_and_others_by_their_specs() {
        let m = handing("{u}", "127.0.0.1:7002");
        // One key at a fixed place, after a subcommand, and several keys.
        assert!(matches!(
            judge_with(&["HSET", "{u}h", "f", "v"], &m, &[]),
            Verdict::Ask { .. }
        ));
        assert!(matches!(
            judge_with(&["OBJECT", "ENCODING", "{u}h"], &m, &[]),
            Verdict::Ask { .. }
        ));
        assert_eq!(
            judge_with(&["OBJECT", "ENCODING", "{u}h"], &m, &["{u}h"]),
            Verdict::Run
        );
        assert!(matches!(
            judge_with(&["DEL", "{u}a", "{u}b"], &m, &[]),
            Verdict::Ask { .. }
        ));
        assert!(single_key(CommandTable::get().lookup(b"get").unwrap()).is_some());
        assert!(single_key(CommandTable::get().lookup(b"mget").unwrap()).is_none());
    }

    #[test]
    fn guard_holds_back_suspect_keys_that_are_here() {
        let m = handing("{u}", "127.0.0.1:7002");
        let suspects = BTreeSet::from([b"{u}a".to_vec()]);
        let j = |args: &[&str], present: &[&str]| {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            judge(&args, &m, &suspects, |k| {
                present.iter().any(|p| p.as_bytes() == k)
            })
        };
        assert_eq!(j(&["GET", "{u}a"], &["{u}a"]), Verdict::TryAgain);
        assert_eq!(
            j(&["MGET", "{u}b", "{u}a"], &["{u}a", "{u}b"]),
            Verdict::TryAgain
        );
        assert_eq!(j(&["GET", "{u}b"], &["{u}b"]), Verdict::Run);
        // Gone from here: the target has the only copy.
        assert!(matches!(j(&["GET", "{u}a"], &[]), Verdict::Ask { .. }));
    }

    #[test]
    fn guard_lets_the_handover_itself_through() {
        let m = handing("{u}", "127.0.0.1:7002");
        let mig = [
            "MIGRATE",
            "127.0.0.1",
            "7002",
            "",
            "0",
            "5000",
            "KEYS",
            "{u}a",
        ];
        assert_eq!(judge_with(&mig, &m, &[]), Verdict::Run);
        assert_eq!(judge_with(&["hive.slots", "get"], &m, &[]), Verdict::Run);
        assert_eq!(
            judge_with(&["GET", "{u}a"], &BTreeMap::new(), &[]),
            Verdict::Run
        );
    }
}
