//! The module's configuration values (`hive.heartbeat-ms`, `hive.backup-*`), as Redis's
//! config registration sets them and the handlers read them. Plain statics, no Redis types.

use std::sync::atomic::AtomicI64;
use std::sync::Mutex;

pub static HEARTBEAT_MS: AtomicI64 = AtomicI64::new(100);
pub static BACKUP_KEEP: AtomicI64 = AtomicI64::new(0);
pub static BACKUP_DIR: Mutex<String> = Mutex::new(String::new());
pub static BACKUP_HOOK: Mutex<String> = Mutex::new(String::new());
pub static BACKUP_DIRS_ALLOWED: Mutex<String> = Mutex::new(String::new());
