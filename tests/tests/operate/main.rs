//! What an operator runs and sees: the `hive` binary itself, administrative commands,
//! `/metrics` and the probes, `hive status`/`check`/`monitor`/`top`, `hive init`, security and TLS.

mod admin;
mod binary;
mod fleet;
mod init;
mod lifecycle;
mod observe;
mod operator;
mod reshard;
mod security;
mod tls;
