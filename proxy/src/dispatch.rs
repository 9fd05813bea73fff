//! Classifies a request: answered locally, forwarded by slot, split across slots, fanned out to
//! every master, or refused, with the error text Redis would give.

use hive_common::command::{flag, CommandSpec, CommandTable, KeyPositions};
use hive_common::resp::Request;
use hive_common::Slot;

use crate::error::ProxyError;
use crate::merge::MergeKind;
use crate::route::Route;

#[derive(Debug)]
pub enum Action {
    /// One unit, sent as received.
    Forward(Route),
    /// Split per slot (`step` = arguments per key: 1, or 2 for MSET) and merged.
    Split { kind: MergeKind, step: usize },
    /// The same request to every master, merged.
    FanOut(MergeKind),
    /// INFO: the proxy's section, then one master's sections.
    Info,
    /// Answered by the proxy (`local.rs`); carries the command's full name.
    Local(&'static str),
    /// Answered with an error without touching a backend.
    Error(ProxyError),
}

/// The reply to a command Hive deliberately does not run, with the reason.
fn refused(what: &str, why: &str) -> Action {
    Action::Error(ProxyError::client(
        "ERR",
        format!("Hive does not support '{what}': {why}"),
    ))
}

const NEEDS_DEDICATED: &str =
    "it needs a dedicated backend connection, which this version of Hive does not provide";
const FAN_OUT_TODO: &str = "it must visit every master, which this version of Hive does not do";
const ADMIN: &str = "administrative commands go to the Redis nodes directly";

/// Classifies `req`; `keys` is scratch space for key positions.
pub fn classify(req: &Request, keys: &mut KeyPositions) -> Action {
    let table: &'static CommandTable = CommandTable::get();
    let name = req.arg(0);
    let Some(mut spec) = table.lookup(name) else {
        return Action::Error(unknown_command(req));
    };
    if !spec.subcommands.is_empty() {
        if req.argc() < 2 {
            return Action::Error(wrong_arity(spec));
        }
        match spec.subcommand(req.arg(1)) {
            Some(sub) => spec = sub,
            None => {
                return Action::Error(ProxyError::client(
                    "ERR",
                    format!(
                        "unknown subcommand '{}'. Try {} HELP.",
                        truncate(req.arg(1), 128),
                        spec.name.to_ascii_uppercase()
                    ),
                ))
            }
        }
    }
    if !spec.arity_ok(req.argc()) {
        return Action::Error(wrong_arity(spec));
    }
    let full: &'static str = spec.name.as_str();
    match full {
        "ping" | "echo" | "quit" | "select" | "hello" | "auth" | "readonly" | "readwrite"
        | "cluster|keyslot" | "client|setname" | "client|getname" | "client|id" | "command"
        | "command|count" | "command|info" | "command|list" | "command|getkeys" => {
            return Action::Local(full)
        }
        "info" => return Action::Info,
        "dbsize" => return Action::FanOut(MergeKind::Sum),
        "mget" => {
            return Action::Split {
                kind: MergeKind::Gather,
                step: 1,
            }
        }
        "mset" => {
            return Action::Split {
                kind: MergeKind::AllOk,
                step: 2,
            }
        }
        "del" | "unlink" | "exists" | "touch" => {
            return Action::Split {
                kind: MergeKind::Sum,
                step: 1,
            }
        }
        "multi" | "exec" | "discard" | "watch" | "unwatch" | "wait" | "monitor" | "sync"
        | "psync" | "client|tracking" | "client|caching" | "client|reply" | "reset" => {
            return refused(full, NEEDS_DEDICATED)
        }
        "keys" | "scan" | "flushdb" | "flushall" | "randomkey" | "script|load" | "script|flush"
        | "script|exists" | "script|kill" | "function|load" | "function|delete"
        | "function|flush" | "function|restore" | "function|kill" => {
            return refused(full, FAN_OUT_TODO)
        }
        // Nodes of one cluster normally share their config; one master answers.
        "config|get" => return Action::Forward(Route::Any),
        "xread" | "xreadgroup" if has_block_option(req) => return refused(full, NEEDS_DEDICATED),
        _ => {}
    }
    if spec.has(flag::PUBSUB) {
        return refused(full, "pub/sub is not supported by this version of Hive");
    }
    if spec.has(flag::BLOCKING) && !full.starts_with("xread") {
        return refused(full, NEEDS_DEDICATED);
    }
    keys.clear();
    if spec.keys(req, keys).is_err() {
        // Redis answers a bad key count with the command's own error; any node gives it.
        return Action::Forward(Route::Any);
    }
    let Some(&first) = keys.first() else {
        if spec.has(flag::ADMIN) || full.starts_with("cluster") || full.starts_with("client") {
            return refused(full, ADMIN);
        }
        return Action::Forward(Route::Any);
    };
    let slot = Slot::for_key(req.arg(first as usize));
    if keys[1..]
        .iter()
        .any(|&k| Slot::for_key(req.arg(k as usize)) != slot)
    {
        return Action::Error(crossslot());
    }
    Action::Forward(Route::Slot(slot))
}

pub fn crossslot() -> ProxyError {
    ProxyError::client("CROSSSLOT", "Keys in request don't hash to the same slot")
}

fn has_block_option(req: &Request) -> bool {
    req.args()
        .skip(1)
        .take_while(|a| !a.eq_ignore_ascii_case(b"streams"))
        .any(|a| a.eq_ignore_ascii_case(b"block"))
}

fn wrong_arity(spec: &CommandSpec) -> ProxyError {
    ProxyError::client(
        "ERR",
        format!("wrong number of arguments for '{}' command", spec.name),
    )
}

fn truncate(b: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(n)]).into_owned()
}

/// Redis's `unknown command` error, with the first arguments quoted.
pub fn unknown_command(req: &Request) -> ProxyError {
    let mut args = String::new();
    for a in req.args().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push('\'');
        args.push_str(&truncate(a, room));
        args.push_str("' ");
    }
    ProxyError::client(
        "ERR",
        format!(
            "unknown command '{}', with args beginning with: {}",
            truncate(req.arg(0), 128),
            args
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_args(args: &[&str]) -> Action {
        classify(&Request::from_args(args), &mut KeyPositions::new())
    }

    fn error_text(a: Action) -> String {
        match a {
            Action::Error(e) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn classify_errors_match_redis() {
        assert_eq!(
            error_text(classify_args(&["FOO", "bar"])),
            "ERR unknown command 'FOO', with args beginning with: 'bar' "
        );
        assert_eq!(
            error_text(classify_args(&["get"])),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            error_text(classify_args(&["config", "get"])),
            "ERR wrong number of arguments for 'config|get' command"
        );
        assert_eq!(
            error_text(classify_args(&["config", "foo"])),
            "ERR unknown subcommand 'foo'. Try CONFIG HELP."
        );
        assert_eq!(
            error_text(classify_args(&["rename", "a", "b"])),
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
    }

    #[test]
    fn classify_routes_by_slot_and_splits() {
        match classify_args(&["set", "foo", "1"]) {
            Action::Forward(Route::Slot(s)) => assert_eq!(s.get(), 12182),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_args(&["rename", "{a}1", "{a}2"]),
            Action::Forward(Route::Slot(_))
        ));
        assert!(matches!(
            classify_args(&["mget", "a", "b"]),
            Action::Split {
                kind: MergeKind::Gather,
                step: 1
            }
        ));
        assert!(matches!(
            classify_args(&["eval", "return 1", "0"]),
            Action::Forward(Route::Any)
        ));
        assert!(matches!(
            classify_args(&["eval", "x", "9", "a"]),
            Action::Forward(Route::Any)
        ));
        assert!(matches!(classify_args(&["PING"]), Action::Local("ping")));
        assert!(matches!(
            classify_args(&["cluster", "KEYSLOT", "a"]),
            Action::Local("cluster|keyslot")
        ));
        assert!(matches!(
            classify_args(&["xread", "streams", "s", "0"]),
            Action::Forward(_)
        ));
    }

    #[test]
    fn classify_refuses_with_reason() {
        for cmd in [
            &["blpop", "a", "0"][..],
            &["multi"],
            &["subscribe", "c"],
            &["keys", "*"],
            &["config", "set", "a", "b"],
            &["xread", "BLOCK", "0", "STREAMS", "s", "$"],
        ] {
            let e = error_text(classify_args(cmd));
            assert!(e.starts_with("ERR Hive does not support"), "{cmd:?}: {e}");
        }
    }
}
