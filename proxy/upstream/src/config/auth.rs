//! Credentials Hive sends to nodes and sentinels with `AUTH` right after connecting; never a
//! client's.

use crate::config::Secret;

/// Credentials sent with `AUTH` right after connecting. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    pub username: Option<String>,
    pub password: String,
}

impl Auth {
    /// `Some` when a password is configured.
    pub fn from_config(username: &Option<String>, password: &Option<Secret>) -> Option<Auth> {
        password.as_ref().map(|p| Auth {
            username: username.clone(),
            password: p.expose().to_string(),
        })
    }

    /// The AUTH command's arguments.
    pub fn args(&self) -> Vec<&str> {
        match &self.username {
            Some(u) => vec!["AUTH", u, &self.password],
            None => vec!["AUTH", &self.password],
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}
