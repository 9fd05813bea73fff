//! Backups and restores of a whole deployment (cluster, sentinel or static): one snapshot per
//! shard, taken through hive-module (`HIVE.BACKUP`) or streamed with the replication protocol,
//! one manifest, a local or S3 destination, retention, verification, and a restore onto a
//! deployment of any shape through the backplane's router.
#![forbid(unsafe_code)]

pub mod backup;
pub mod catalog;
pub mod error;
pub mod pipe;
pub mod progress;
pub mod restore;
pub mod snapshot;
pub mod store;

pub use catalog::{list, manifest, rdb, retention, verify};
pub use error::BackupError;
pub use manifest::{Manifest, ShardBackup};
pub use store::Store;
