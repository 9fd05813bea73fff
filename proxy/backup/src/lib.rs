//! Backups and restores of a whole deployment (cluster, sentinel or static): one snapshot per
//! shard, taken through hive-module (`HIVE.BACKUP`) or streamed with the replication protocol,
//! one manifest, a local or S3 destination, retention, verification, and a restore onto a
//! deployment of any shape through Hive's own routing.
#![forbid(unsafe_code)]

pub mod backup;
pub mod error;
pub mod list;
pub mod manifest;
pub mod pipe;
pub mod progress;
pub mod rdb;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod store;
pub mod verify;

pub use error::BackupError;
pub use manifest::{Manifest, ShardBackup};
pub use store::Store;
