//! TLS on both sides, through the stream seam: `server` accepts TLS clients (the certificate
//! re-read on demand, for SIGHUP); dialing nodes over TLS lives in `hive_upstream::tls`.

mod config;
pub mod server;

pub use config::dialer;

pub use hive_upstream::tls::client;
