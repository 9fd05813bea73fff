//! What can stop a reshard, with whether anything changed: bad input and an unsettled cluster
//! are refused before the first change; a failed move leaves its slot open for `--resume`.

use hive_upstream::conn::control::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum ReshardError {
    /// The request cannot be carried out as given; nothing was changed.
    #[error("{0}; nothing was changed")]
    Input(String),
    /// The cluster is not in a state to start (a failed master, disagreeing nodes); nothing
    /// was changed.
    #[error("{0}; nothing was changed")]
    Unsettled(String),
    /// A node could not be reached or did not answer.
    #[error(transparent)]
    Node(#[from] QueryError),
    /// A slot's move stopped part-way: the slot stays open until `--resume` finishes it.
    #[error("slot {slot}: {why}; the slot stays open: `hive reshard --resume` finishes it")]
    Move { slot: u16, why: String },
    /// A node answered something a reshard cannot go on from.
    #[error("{addr}: {why}")]
    Reply { addr: String, why: String },
}

pub type Result<T> = std::result::Result<T, ReshardError>;
