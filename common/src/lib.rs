//! hive-common: the RESP codec, hash slots, the command table and topology types. No I/O.
#![forbid(unsafe_code)]

pub mod command;
pub mod error;
pub mod resp;
pub mod slot;
pub mod topology;

pub use error::ProtocolError;
pub use slot::{Slot, SLOT_COUNT};
