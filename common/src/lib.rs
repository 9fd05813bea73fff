//! hive-common: the RESP codec, hash slots, the command table, topology types, addresses and
//! INFO parsing. No I/O.
#![forbid(unsafe_code)]

pub mod addr;
pub mod command;
pub mod error;
pub mod find;
pub mod glob;
pub mod info;
pub mod pubsub;
pub mod resp;
pub mod slot;
pub mod topology;

pub use error::ProtocolError;
pub use slot::{Slot, SLOT_COUNT};
