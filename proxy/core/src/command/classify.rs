//! Classifies a request: answered locally, forwarded by slot, split across slots, fanned out to
//! every master, or refused, with the error text Redis would give.

use hive_common::command::{flag, CommandSpec, CommandTable, KeyPositions};
use hive_common::resp::{parse_i64, Request};
use hive_common::Slot;

use super::local_cmd::LocalCmd;
use super::pubsub::Family;
use super::reply::merge::MergeKind;
use super::route::Route;
use crate::auth::{self, User};
use crate::error::{ClientReason, ProxyError};

pub use super::action::{Action, NotEmulated, TxCmd};
use super::cross_slot::sort_patterns_denied;
pub use super::cross_slot::{crossslot, crossslot_because};

/// The reply to a command Hive deliberately does not run, with the reason.
pub(super) fn refused(what: &str, why: &str) -> Action {
    Action::Error(ProxyError::client(
        ClientReason::NotSupported,
        format!("Hive does not support '{what}': {why}"),
    ))
}

const ADMIN: &str = "administrative commands go to the Redis nodes directly";
const REPLICATION: &str = "replication and monitoring streams go to the Redis nodes directly";
const MIGRATE: &str =
    "it would copy keys to an address Hive does not route to; reshard with redis-cli --cluster instead";
const TOPOLOGY: &str = "it would change the topology under Hive; run it on the node directly, or use hive drill / Sentinel / CLUSTER FAILOVER on the node";

/// Who sends a request, for the checks made before it is routed.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    /// A user allowed everything (Redis's default user when no ACL is configured).
    Anyone,
    /// A client that has not authenticated while a password is required.
    Unauthenticated,
    /// A user whose command, key and channel rules are checked.
    User(&'a User),
}

/// Classifies `req` for a caller allowed everything; `keys` is scratch space.
pub fn classify(req: &Request, keys: &mut KeyPositions) -> Action {
    classify_as(req, keys, Caller::Anyone)
}

/// Classifies `req` from `caller`: unknown commands and wrong arity first, then
/// authentication and permissions (Redis's order), then the route.
pub fn classify_as(req: &Request, keys: &mut KeyPositions, caller: Caller<'_>) -> Action {
    classify_spec(req, keys, caller).0
}

/// `classify_as`, with the command (or subcommand) it resolved to, for the per-command
/// counters and MONITOR; `None` for an unknown command or subcommand and a wrong arity.
pub fn classify_spec(
    req: &Request,
    keys: &mut KeyPositions,
    caller: Caller<'_>,
) -> (Action, Option<&'static CommandSpec>) {
    match resolve(req) {
        Ok(spec) => (route(spec, req, keys, caller), Some(spec)),
        Err(e) => (Action::Error(e), None),
    }
}

/// The command or subcommand `req` names, with a valid arity.
fn resolve(req: &Request) -> Result<&'static CommandSpec, ProxyError> {
    let table: &'static CommandTable = CommandTable::get();
    let name = req.arg(0);
    let Some(mut spec) = table.lookup(name) else {
        return Err(unknown_command(req));
    };
    // COMMAND alone is valid; other containers need a subcommand.
    let bare_ok = req.argc() == 1 && spec.arity_ok(1);
    if !spec.subcommands.is_empty() && !bare_ok {
        if req.argc() < 2 {
            return Err(wrong_arity(spec));
        }
        match spec.subcommand(req.arg(1)) {
            Some(sub) => spec = sub,
            None => {
                return Err(ProxyError::client(
                    ClientReason::UnknownSubcommand,
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
        return Err(wrong_arity(spec));
    }
    Ok(spec)
}

/// What to do with a resolved command: permissions first (Redis's order), then the route.
fn route(
    spec: &'static CommandSpec,
    req: &Request,
    keys: &mut KeyPositions,
    caller: Caller<'_>,
) -> Action {
    match caller {
        Caller::Anyone => {}
        Caller::Unauthenticated if spec.has(flag::NO_AUTH) => {}
        Caller::Unauthenticated => {
            return Action::Error(ProxyError::client(
                ClientReason::NoAuth,
                "Authentication required.",
            ))
        }
        Caller::User(u) => {
            if let Err(e) = auth::check(u, spec, req) {
                return Action::Error(e);
            }
            if !u.all_keys && matches!(spec.name.as_str(), "sort" | "sort_ro") {
                if let Some(e) = sort_patterns_denied(req) {
                    return Action::Error(e);
                }
            }
        }
    }
    let full: &'static str = spec.name.as_str();
    if let Some(local) = LocalCmd::of(spec) {
        return Action::Local(local);
    }
    match full {
        "info" => return Action::Info,
        "dbsize" => return Action::FanOut(MergeKind::Sum),
        "keys" => return Action::FanOut(MergeKind::Concat),
        "pubsub|channels" => return Action::FanOut(MergeKind::Union),
        "flushdb" | "flushall" | "script|flush" | "function|flush" | "function|delete"
        | "function|restore" => return Action::FanOut(MergeKind::AllOk),
        "script|load" | "function|load" => return Action::FanOut(MergeKind::First),
        "script|exists" => return Action::FanOut(MergeKind::And),
        "script|kill" | "function|kill" => return Action::FanOut(MergeKind::AnyOk),
        "randomkey" => return Action::FanOut(MergeKind::Random(0)),
        "config|get" => return Action::FanOut(MergeKind::Pairs),
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
        "config|set" => return super::config_set::config_set(req),
        "config|resetstat" | "config|rewrite" => return Action::EveryNode { masters: false },
        "client|pause" => return Action::Pause { on: true },
        "client|unblock" => return Action::ClientUnblock,
        "client|unpause" => return Action::Pause { on: false },
        "multi" => return Action::Tx(TxCmd::Multi),
        "exec" => return Action::Tx(TxCmd::Exec),
        "discard" => return Action::Tx(TxCmd::Discard),
        "unwatch" => return Action::Tx(TxCmd::Unwatch),
        "reset" => return Action::Reset,
        "scan" => return Action::Scan,
        "publish" => return Action::Publish,
        "wait" => return Action::Wait,
        "client|tracking" | "client|caching" | "client|trackinginfo" => return Action::Tracking,
        "sync" | "psync" | "replconf" => return refused(full, REPLICATION),
        "monitor" => return Action::Monitor,
        "migrate" => return refused(full, MIGRATE),
        "swapdb" => return refused(full, "Hive serves database 0 only, and swapping it on one master at a time would hide keys"),
        "asking" => return refused(full, "Hive follows ASK redirects itself; a client never needs ASKING"),
        "debug" if req.argc() == 3 && req.arg(1).eq_ignore_ascii_case(b"object") => {
            return Action::Forward(Route::Slot(Slot::for_key(req.arg(2))));
        }
        "pfdebug" | "pfselftest" | "memory|purge" | "memory|doctor" | "debug" => {
            return refused(full, "it inspects or changes one node; run it on that node directly")
        }
        // A snapshot of every master; every node loads the same modules; samples cleared.
        "bgsave" => return Action::FanOut(MergeKind::First),
        "module|list" => return Action::Forward(Route::Any),
        "latency|reset" => return Action::FanOut(MergeKind::Sum),
        full if full.starts_with("latency|") && full != "latency|help" => {
            return refused(full, "each node keeps its own latency samples and their events would mix; run it on each node (redis-cli -h <node> latency latest), or read the nodes' figures in Hive's /metrics")
        }
        "shutdown" | "replicaof" | "slaveof" | "failover" | "module" | "module|load"
        | "module|loadex" | "module|unload" => return refused(full, TOPOLOGY),
        full if full.starts_with("acl|") => {
            return refused(full, "Hive answers ACL WHOAMI, USERS, CAT, LIST, GETUSER, SETUSER, DELUSER, LOG, DRYRUN, SAVE, LOAD, GENPASS and HELP for its own users")
        }
        "client|reply" => return Action::ClientReply,
        // The slot argument says where the keys are.
        "cluster|countkeysinslot" | "cluster|getkeysinslot" => {
            return match parse_i64(req.arg(2))
                .and_then(|n| u16::try_from(n).ok())
                .and_then(Slot::new)
            {
                Some(s) => Action::Forward(Route::Slot(s)),
                None => Action::Error(ProxyError::invalid("Invalid slot")),
            };
        }
        _ => {}
    }
    if let Some((family, subscribe)) = Family::of(full) {
        let mut route = Route::Any;
        if family == Family::Shard && req.argc() > 1 {
            let slot = Slot::for_key(req.arg(1));
            if req.args().skip(2).any(|c| Slot::for_key(c) != slot) {
                return Action::Error(crossslot());
            }
            route = Route::Slot(slot);
        }
        return Action::Subscribe {
            family,
            subscribe,
            route,
        };
    }
    let blocking = match full {
        "xread" | "xreadgroup" => has_block_option(req),
        _ => spec.has(flag::BLOCKING),
    };
    keys.clear();
    if spec.keys(req, keys).is_err() {
        // Redis answers a bad key count with the command's own error; any node gives it.
        return Action::Forward(Route::Any);
    }
    let Some(&first) = keys.first() else {
        if spec.has(flag::ADMIN) || full.starts_with("cluster") || full.starts_with("client") {
            return refused(full, ADMIN);
        }
        return if blocking {
            Action::Blocking(Route::Any)
        } else {
            Action::Forward(Route::Any)
        };
    };
    let slot = Slot::for_key(req.arg(first as usize));
    // SORT's BY/GET patterns name keys of any slot.
    if matches!(full, "sort" | "sort_ro") && !crate::emulate::plan::sort_patterns(req).is_empty() {
        let plan = crate::emulate::plan::plan(spec, req).map(Box::new);
        return Action::CrossSlot {
            plan,
            why: NotEmulated::No,
        };
    }
    if keys.len() > 1
        && keys[1..]
            .iter()
            .any(|&k| Slot::for_key(req.arg(k as usize)) != slot)
    {
        if full == "watch" {
            return Action::Tx(TxCmd::WatchShards);
        }
        if crate::emulate::blocking::POPS.contains(&full) {
            return Action::BlockAcross(
                crate::emulate::blocking::plan::plan(full, req).map(Box::new),
            );
        }
        let plan = if blocking {
            None
        } else {
            crate::emulate::plan::plan(spec, req).map(Box::new)
        };
        let why = match (&plan, blocking) {
            (Some(_), _) => NotEmulated::No,
            (None, true) => NotEmulated::Blocking,
            (None, false) => NotEmulated::Unsupported,
        };
        return Action::CrossSlot { plan, why };
    }
    if full == "watch" {
        return Action::Tx(TxCmd::Watch(Route::Slot(slot)));
    }
    if blocking {
        return Action::Blocking(Route::Slot(slot));
    }
    Action::Forward(Route::Slot(slot))
}

fn has_block_option(req: &Request) -> bool {
    req.args()
        .skip(1)
        .take_while(|a| !a.eq_ignore_ascii_case(b"streams"))
        .any(|a| a.eq_ignore_ascii_case(b"block"))
}

fn wrong_arity(spec: &CommandSpec) -> ProxyError {
    ProxyError::client(
        ClientReason::WrongArity,
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
        ClientReason::UnknownCommand,
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
    use crate::command::local_cmd::{ClusterSub, CommandSub, Plain};

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
        assert!(matches!(
            classify_args(&["rename", "a", "b"]),
            Action::CrossSlot {
                plan: Some(_),
                why: NotEmulated::No
            }
        ));
        assert!(matches!(
            classify_args(&["blpop", "a", "b", "0"]),
            Action::BlockAcross(Ok(_))
        ));
        assert!(matches!(
            classify_args(&["blpop", "a", "b", "-1"]),
            Action::BlockAcross(Err(_))
        ));
        assert!(matches!(
            classify_args(&["xread", "block", "0", "streams", "a", "b", "0", "0"]),
            Action::CrossSlot {
                plan: None,
                why: NotEmulated::Blocking
            }
        ));
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
        assert!(matches!(
            classify_args(&["PING"]),
            Action::Local(LocalCmd::Plain(Plain::Ping))
        ));
        assert!(matches!(
            classify_args(&["COMMAND"]),
            Action::Local(LocalCmd::Command(CommandSub::Bare))
        ));
        assert!(matches!(
            classify_args(&["cluster", "KEYSLOT", "a"]),
            Action::Local(LocalCmd::Cluster(ClusterSub::KeySlot))
        ));
        assert!(matches!(
            classify_args(&["xread", "streams", "s", "0"]),
            Action::Forward(_)
        ));
    }

    #[test]
    fn classify_stateful_and_fan_out() {
        assert!(matches!(
            classify_args(&["blpop", "a", "0"]),
            Action::Blocking(Route::Slot(_))
        ));
        assert!(matches!(
            classify_args(&["xread", "BLOCK", "0", "STREAMS", "s", "$"]),
            Action::Blocking(Route::Slot(_))
        ));
        assert!(matches!(
            classify_args(&["multi"]),
            Action::Tx(TxCmd::Multi)
        ));
        assert!(matches!(
            classify_args(&["watch", "a", "{a}b"]),
            Action::Tx(TxCmd::Watch(Route::Slot(_)))
        ));
        assert!(matches!(
            classify_args(&["watch", "a", "b"]),
            Action::Tx(TxCmd::WatchShards)
        ));
        assert!(matches!(
            classify_args(&["ssubscribe", "a", "b"]),
            Action::Error(_)
        ));
        assert!(matches!(
            classify_args(&["psubscribe", "a*"]),
            Action::Subscribe {
                family: Family::Pattern,
                subscribe: true,
                ..
            }
        ));
        assert!(matches!(
            classify_args(&["keys", "*"]),
            Action::FanOut(MergeKind::Concat)
        ));
        assert!(matches!(classify_args(&["scan", "0"]), Action::Scan));
    }

    #[test]
    fn classify_refuses_with_reason() {
        assert!(matches!(
            classify_args(&["client", "tracking", "on"]),
            Action::Tracking
        ));
        for cmd in [
            &["sync"][..],
            &["config", "set", "port", "1"],
            &[
                "config",
                "set",
                "maxmemory",
                "1",
                "CLUSTER-node-timeout",
                "5",
            ],
            &["migrate", "127.0.0.1", "7000", "k", "0", "1000"],
            &["swapdb", "0", "1"],
            &["asking"],
            &["pfdebug", "getreg", "k"],
            &["memory", "purge"],
            &["pfselftest"],
            &["shutdown"],
        ] {
            let e = error_text(classify_args(cmd));
            assert!(e.starts_with("ERR Hive does not support"), "{cmd:?}: {e}");
        }
    }
}
