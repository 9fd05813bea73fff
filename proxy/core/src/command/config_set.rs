//! Administrative commands Hive sends to every node: CONFIG SET, refused for the parameters
//! Hive itself depends on.

use hive_common::resp::Request;

use super::classify::{refused, Action};
use crate::error::{ClientReason, ProxyError};

/// Node parameters CONFIG SET must not change through Hive: how Hive reaches, authenticates
/// to or routes to a node, and where the node keeps its data.
fn hive_owns(param: &str) -> bool {
    matches!(
        param,
        "port"
            | "bind"
            | "bind-source-addr"
            | "unixsocket"
            | "unixsocketperm"
            | "replicaof"
            | "slaveof"
            | "requirepass"
            | "masterauth"
            | "masteruser"
            | "dir"
            | "dbfilename"
            | "appendfilename"
            | "appenddirname"
            | "aclfile"
            | "protected-mode"
    ) || param.starts_with("cluster-")
        || param.starts_with("tls-")
}

/// CONFIG SET to every node, unless it names a parameter Hive depends on.
pub(super) fn config_set(req: &Request) -> Action {
    if !req.argc().is_multiple_of(2) {
        return Action::Error(ProxyError::client(
            ClientReason::WrongArity,
            "wrong number of arguments for 'config|set' command",
        ));
    }
    let owned = (2..req.argc())
        .step_by(2)
        .map(|i| String::from_utf8_lossy(req.arg(i)).to_ascii_lowercase())
        .find(|p| hive_owns(p));
    match owned {
        Some(p) => refused(
            &format!("config|set' of '{p}"),
            "it would change how Hive reaches, authenticates to or routes to the nodes, or where they keep their data; change it on each node (and in hive.toml)",
        ),
        None => Action::EveryNode { masters: false },
    }
}
