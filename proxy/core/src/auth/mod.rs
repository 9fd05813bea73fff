//! The proxy's own users: `proxy.requirepass`, ACL users in Redis's rule syntax (inline in
//! `proxy.users` or from `proxy.aclfile`), authentication, and the permission check made
//! before routing. Backend credentials are elsewhere (`hive_upstream::Auth`) and never mixed in.

mod check;
mod config;
mod describe;
pub mod log;
mod registry;
mod user;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use check::{check, denied, Denied};
pub use registry::AuthState;
pub use user::{hash_password, KeyPattern, User, CATEGORIES};

/// Every user, by name, as configured.
#[derive(Debug)]
pub struct Users {
    users: BTreeMap<String, Arc<User>>,
    default: Arc<User>,
    /// Whether the default user needs no checks (Redis's unconfigured default user).
    default_unrestricted: bool,
}

/// Where a user definition came from, for error messages.
#[derive(Debug)]
pub enum Source<'a> {
    /// `proxy.users[i]` of the config file.
    Config(usize),
    /// A line of the ACL file.
    AclFile(&'a Path, usize),
}

impl Users {
    fn with_default(d: User) -> Users {
        let d = Arc::new(d);
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), d.clone());
        Users {
            default_unrestricted: d.unrestricted(),
            users,
            default: d,
        }
    }

    /// The users of a config: `requirepass` for the default user, then `lines` (each
    /// `[user] <name> <rules>`, as in an ACL file). Errors name the line and the reason.
    pub fn build<'a>(
        requirepass: Option<&str>,
        lines: impl IntoIterator<Item = (Source<'a>, &'a str)>,
    ) -> Result<Users, (Source<'a>, String)> {
        let mut d = User::new("default");
        let rules = match requirepass {
            Some(_) => "on ~* &* +@all",
            None => "on nopass ~* &* +@all",
        };
        d.apply_all(rules)
            .expect("the default user's rules are valid");
        if let Some(p) = requirepass {
            d.apply(&format!(">{p}"))
                .expect("a password rule is always valid");
        }
        let mut users = Users::with_default(d);
        for (src, line) in lines {
            let line = line.trim();
            let body = line.strip_prefix("user ").unwrap_or(line).trim_start();
            let (name, rules) = body.split_once(' ').unwrap_or((body, ""));
            if name.is_empty() {
                return Err((src, "a user line needs a name".into()));
            }
            if name == "default" && requirepass.is_some() {
                return Err((
                    src,
                    "the default user is set by proxy.requirepass too; give it in one place".into(),
                ));
            }
            // An ACL file defines its users whole (ACL SAVE writes them so); entries of
            // `proxy.users` with the same name add to one another.
            let mut u = match (&src, users.users.get(name)) {
                (Source::Config(_), Some(u)) => (**u).clone(),
                _ => User::new(name),
            };
            if let Err(e) = u.apply_all(rules) {
                return Err((src, e));
            }
            let u = Arc::new(u);
            if name == "default" {
                users.default_unrestricted = u.unrestricted();
                users.default = u.clone();
            }
            users.users.insert(name.to_string(), u);
        }
        Ok(users)
    }

    /// The user `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.users.get(name)
    }

    /// These users with `user` added or replaced.
    pub fn with(&self, user: User) -> Users {
        let mut next = Users {
            users: self.users.clone(),
            default: self.default.clone(),
            default_unrestricted: self.default_unrestricted,
        };
        let user = Arc::new(user);
        if user.name == "default" {
            next.default_unrestricted = user.unrestricted();
            next.default = user.clone();
        }
        next.users.insert(user.name.clone(), user);
        next
    }

    /// These users without `names`; how many were there. The default user stays.
    pub fn without(&self, names: &[String]) -> Result<(Users, usize), String> {
        if names.iter().any(|n| n == "default") {
            return Err("The 'default' user cannot be removed".into());
        }
        let mut users = self.users.clone();
        let n = names.iter().filter(|n| users.remove(*n).is_some()).count();
        Ok((
            Users {
                users,
                default: self.default.clone(),
                default_unrestricted: self.default_unrestricted,
            },
            n,
        ))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }

    /// The user a connection starts as.
    pub fn default_user(&self) -> &Arc<User> {
        &self.default
    }

    /// Whether a new connection must authenticate before anything else (Redis's
    /// `authRequired`: the default user has a password or is off).
    pub fn auth_required(&self) -> bool {
        !self.default.nopass || !self.default.enabled
    }

    /// Whether `user` is the unconfigured default user, whose requests need no checks.
    pub fn unrestricted(&self, user: &Arc<User>) -> bool {
        Arc::ptr_eq(user, &self.default) && self.default_unrestricted || user.unrestricted()
    }

    /// The user `name` with `password`, if it exists, is on and the password matches.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let name = std::str::from_utf8(name).ok()?;
        let u = self.users.get(name)?;
        (u.enabled && u.password_ok(password)).then(|| u.clone())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_authenticate_like_redis() {
        let open = Users::build(None, []).map_err(|(_, e)| e).unwrap();
        assert!(!open.auth_required());
        assert!(open.authenticate(b"default", b"anything").is_some());
        let u = Users::build(
            Some("topsecret"),
            [
                (Source::Config(0), "user app on >apppw ~app:* +@read"),
                (Source::Config(1), "ops off >opspw +@all"),
            ],
        )
        .map_err(|(_, e)| e)
        .unwrap();
        assert!(u.auth_required());
        assert!(u.authenticate(b"default", b"topsecret").is_some());
        assert!(u.authenticate(b"default", b"wrong").is_none());
        assert!(u.authenticate(b"app", b"apppw").is_some());
        assert!(u.authenticate(b"nosuchuser", b"x").is_none());
        assert!(
            u.authenticate(b"ops", b"opspw").is_none(),
            "a user that is off"
        );
        assert_eq!(u.names().collect::<Vec<_>>(), ["app", "default", "ops"]);
    }

    #[test]
    fn users_errors_name_the_line() {
        let e = Users::build(None, [(Source::Config(3), "user app on +nosuch")]);
        let Err((Source::Config(3), why)) = e else {
            panic!("expected an error for line 3");
        };
        assert_eq!(
            why,
            "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
        );
        let e = Users::build(Some("pw"), [(Source::Config(0), "user default on")]);
        assert!(e.is_err());
    }
}
