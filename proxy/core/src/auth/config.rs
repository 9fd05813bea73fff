//! The proxy's users built from the config: `proxy.requirepass`, `proxy.users` and
//! `proxy.aclfile`. Errors name the file, the key (or the ACL file's line) and the reason.

use std::path::Path;

use super::{Source, Users};
use crate::config::{Config, ConfigError};

impl Users {
    /// Builds the users, reading `proxy.aclfile`. `file` is the config file, for errors.
    pub fn from_config(config: &Config, file: &Path) -> Result<Users, ConfigError> {
        let p = &config.proxy;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn users(text: &str) -> Result<Users, String> {
        let file = Path::new("hive.toml");
        let c = Config::parse(text, file).map_err(|e| e.to_string())?;
        Users::from_config(&c, file).map_err(|e| e.to_string())
    }

    #[test]
    fn users_from_config_errors_name_the_entry_or_line() {
        let e = users("[proxy]\nusers = [\"app on >pw +get\", \"ops on +nosuch\"]\n").unwrap_err();
        assert_eq!(
            e,
            "hive.toml: key `proxy.users[1]`: Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
        );
        let dir = std::env::temp_dir().join(format!("hive-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let acl = dir.join("users.acl");
        std::fs::write(
            &acl,
            "user app on >pw ~app:* +@read\n\nuser bad on ~x bogus\n",
        )
        .unwrap();
        let text = format!("[proxy]\naclfile = {:?}\n", acl.display().to_string());
        let e = users(&text).unwrap_err();
        assert_eq!(
            e,
            format!(
                "{}:3: Error in ACL SETUSER modifier 'bogus': Syntax error",
                acl.display()
            )
        );
        std::fs::write(&acl, "app on >pw\n").unwrap();
        let e = users(&text).unwrap_err();
        assert!(e.ends_with(":1: should start with user keyword"), "{e}");
        std::fs::write(&acl, "user app on >pw ~app:* +@read\n").unwrap();
        let text = format!("{text}requirepass = \"x\"\n");
        let c = Config::parse(&text, Path::new("hive.toml")).unwrap();
        let users = Users::from_config(&c, Path::new("hive.toml")).unwrap();
        assert!(users.authenticate(b"app", b"pw").is_some());
        assert!(users.authenticate(b"default", b"x").is_some());
        // The password is not in the config's Debug output.
        assert!(!format!("{c:?}").contains("\"x\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
