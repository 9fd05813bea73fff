//! The proxy's users from the config: `proxy.requirepass`, `proxy.users` and `proxy.aclfile`.

use std::path::Path;

use super::{Config, ConfigError};
use crate::auth::{Source, Users};

impl Config {
    /// Builds the users, reading `proxy.aclfile`. `file` is the config file, for errors.
    pub fn users(&self, file: &Path) -> Result<Users, ConfigError> {
        let p = &self.proxy;
        let acl_text = match &p.aclfile {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                file: path.clone(),
                source,
            })?,
            None => String::new(),
        };
        let inline = p
            .users
            .iter()
            .enumerate()
            .map(|(i, l)| (Source::Config(i), l.expose()));
        let from_file = acl_text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let path = p.aclfile.as_deref().unwrap_or(Path::new(""));
                (Source::AclFile(path, i + 1), l)
            });
        // An ACL file's lines must start with `user`, as Redis requires.
        if let Some((n, _)) = acl_text
            .lines()
            .enumerate()
            .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("user "))
        {
            return Err(ConfigError::AclFile {
                file: p.aclfile.clone().unwrap_or_default(),
                line: n + 1,
                reason: "should start with user keyword".into(),
            });
        }
        let requirepass = p.requirepass.as_ref().map(|s| s.expose());
        Users::build(requirepass, inline.chain(from_file)).map_err(|(src, reason)| match src {
            Source::Config(i) => ConfigError::Invalid {
                file: file.into(),
                key: format!("proxy.users[{i}]"),
                reason,
            },
            Source::AclFile(path, line) => ConfigError::AclFile {
                file: path.into(),
                line,
                reason,
            },
        })
    }
}
