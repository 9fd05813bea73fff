//! The errors of backups and restores: what failed, and on which node, file or key.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The deployment or its config (unreachable seeds, no shards).
    #[error("{0}")]
    Target(String),
    /// A node refused or failed a step.
    #[error("{node}: {message}")]
    Node { node: String, message: String },
    /// The destination (a directory or S3) failed.
    #[error("{location}: {message}")]
    Store { location: String, message: String },
    /// A backup does not exist, is incomplete or is damaged.
    #[error("backup {id}: {message}")]
    Backup { id: String, message: String },
    /// A local file or process.
    #[error("{}: {message}", path.display())]
    Local { path: PathBuf, message: String },
    /// The restore was refused before it wrote anything.
    #[error("{0}")]
    Refused(String),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl BackupError {
    pub fn node(node: &str, message: impl std::fmt::Display) -> BackupError {
        BackupError::Node {
            node: node.to_string(),
            message: message.to_string(),
        }
    }

    pub fn local(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> BackupError {
        BackupError::Local {
            path: path.into(),
            message: message.to_string(),
        }
    }

    pub fn backup(id: &str, message: impl std::fmt::Display) -> BackupError {
        BackupError::Backup {
            id: id.to_string(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = BackupError> = std::result::Result<T, E>;
