//! The whole check of a config before a proxy starts on it: the plain checks of `config`,
//! then building what is built from it (the users, the TLS acceptor, the backend dialer), so
//! every mistake is reported with the file, the key and the reason before anything listens.

use std::path::Path;

use crate::auth::Users;
use crate::config::{Config, ConfigError};
use crate::tls::server::Acceptor;

pub fn check(config: &Config, file: &Path) -> Result<(), ConfigError> {
    config.validate(file)?;
    Acceptor::from_config(config, file)?;
    crate::tls::dialer(config, file)?;
    Users::from_config(config, file)?;
    Ok(())
}
