//! Backups and restores of whole deployments: consistent cluster backups restored onto
//! three shapes, sentinel and static deployments, and the destinations (S3 through moto).

mod backup;
mod backup_modes;
mod backup_store;
