//! hive-module loaded into real redis-server processes: lag, heartbeats, topology, events and
//! HIVE.BACKUP.

mod module;
mod module_backup;
