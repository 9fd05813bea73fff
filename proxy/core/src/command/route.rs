//! Where one request unit goes: a slot's master or one of its fresh replicas, a given master,
//! any master, or a node named by its address. Plain data: the client resolves it to a
//! connection when it sends.

use std::sync::Arc;

use hive_common::Slot;

/// Where one request unit is sent.
#[derive(Debug, Clone)]
pub enum Route {
    /// The master that owns the slot in the current topology.
    Slot(Slot),
    /// A read of the slot's shard, from a fresh replica when one is (`client::reads`), else
    /// from the master; `strict` (`read_from = "replica"`) refuses instead.
    Replica { slot: Slot, strict: bool },
    /// Master number `n` of the topology (fan-out to every master).
    Master(usize),
    /// Any master: keyless commands.
    Any,
    /// A node by address (a redirect's target, or every node); `asking` sends `ASKING` first.
    Node { addr: Arc<str>, asking: bool },
}
