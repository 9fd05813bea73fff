//! `Action`: what `classify` decided to do with a request, and the transaction commands.

use super::local_cmd::LocalCmd;
use super::pubsub::Family;
use super::reply::merge::MergeKind;
use super::route::Route;
use crate::emulate::Plan;
use crate::error::ProxyError;

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
    /// Answered by the proxy (`client::local`).
    Local(LocalCmd),
    /// CLIENT REPLY ON|OFF|SKIP: a change of the connection's reply mode.
    ClientReply,
    /// Answered with an error without touching a backend.
    Error(ProxyError),
    /// A blocking command: runs on a connection of the client's own, so it cannot stall the
    /// shared ones.
    Blocking(Route),
    /// WAIT: every master, on the client's own connections.
    Wait,
    /// Transaction control.
    Tx(TxCmd),
    /// (P|S)SUBSCRIBE and their UNSUBSCRIBEs; `route` is the slot of shard channels.
    Subscribe {
        family: Family,
        subscribe: bool,
        route: Route,
    },
    /// PUBLISH: one node of a cluster (which broadcasts it), every master otherwise.
    Publish,
    /// SCAN, iterated over every master with a slot-stable cursor.
    Scan,
    /// RESET: drop every piece of connection state.
    Reset,
    /// CONFIG SET/RESETSTAT/REWRITE to every node (`masters: false`), or a command to every
    /// master; `+OK` only when each said OK.
    EveryNode { masters: bool },
    /// CLIENT PAUSE (`on`) or UNPAUSE: every master, and the proxy holds its own clients'
    /// commands meanwhile.
    Pause { on: bool },
    /// MONITOR: the proxy's own clients' commands, streamed to this client.
    Monitor,
    /// CLIENT UNBLOCK id [TIMEOUT|ERROR] of a client of the proxy.
    ClientUnblock,
    /// CLIENT TRACKING, CACHING and TRACKINGINFO: client-side caching's state.
    Tracking,
    /// A blocking pop over keys of several slots: `-CROSSSLOT`, or (`emulate`) blocked on every
    /// shard at once; the plan, or the error Redis gives for its arguments.
    BlockAcross(Result<Box<crate::emulate::blocking::BlockPlan>, ProxyError>),
    /// Keys of several slots: `-CROSSSLOT`, or run across shards (`proxy.cross_slot =
    /// "emulate"`) when `plan` says how.
    CrossSlot {
        plan: Option<Box<Plan>>,
        why: NotEmulated,
    },
}

/// Why a command across slots has no plan, for the error `emulate` mode gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEmulated {
    /// It has a plan.
    No,
    /// A blocking command waits on one node.
    Blocking,
    /// Scripts and other commands whose effect Hive cannot split.
    Unsupported,
}

#[derive(Debug)]
pub enum TxCmd {
    Multi,
    Exec,
    Discard,
    /// WATCH pins the client to the node owning the keys' slot.
    Watch(Route),
    /// WATCH of keys in several slots.
    WatchShards,
    Unwatch,
}
