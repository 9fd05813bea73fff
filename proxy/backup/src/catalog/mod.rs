//! What a destination holds and what is known of it without a deployment: the manifests
//! (`manifest`), the listing (`list`), retention (`retention`), verification of a backup's
//! files (`verify`) and what an RDB file's opening says (`rdb`).

pub mod list;
pub mod manifest;
pub mod rdb;
pub mod retention;
pub mod verify;
