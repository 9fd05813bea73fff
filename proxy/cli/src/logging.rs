//! Logging: `tracing` to stderr as text or JSON lines (`log.format`), with a level a SIGHUP
//! can change (unless `RUST_LOG` set it).

use hive_proxy::config::LogFormat;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Changes the running log level.
pub struct LogHandle {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LogHandle {
    pub fn set_level(&self, level: &str) {
        if let (Some(h), Ok(f)) = (&self.handle, EnvFilter::try_new(level)) {
            let _ = h.reload(f);
        }
    }
}

pub fn init_logging(level: &str, format: LogFormat) -> LogHandle {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_target(false)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    LogHandle {
        handle: (!from_env).then_some(handle),
    }
}
