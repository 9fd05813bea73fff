//! What a user may do: the command or subcommand, the keys (by what each key spec says the
//! command does with them) and the pub/sub channels, checked before a request is routed, with
//! Redis 7.0's `-NOPERM` texts.

use hive_common::command::CommandSpec;
use hive_common::resp::Request;
use smallvec::SmallVec;

use super::User;
use crate::error::{ClientReason, ProxyError};
use hive_common::glob::glob_match;

/// What a user was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Command(String),
    Key(Vec<u8>),
    Channel(Vec<u8>),
}

impl Denied {
    /// The reply, with Redis 7.0's text.
    pub fn error(&self) -> ProxyError {
        let what = match self {
            Denied::Command(c) => format!("run the '{c}' command"),
            Denied::Key(_) => "access one of the keys used as arguments".into(),
            Denied::Channel(_) => "access one of the channels used as arguments".into(),
        };
        ProxyError::client(
            ClientReason::NoPerm,
            format!("this user has no permissions to {what}"),
        )
    }

    /// ACL LOG's `reason` and `object`.
    pub fn log_fields(&self) -> (&'static str, String) {
        match self {
            Denied::Command(c) => ("command", c.clone()),
            Denied::Key(k) => ("key", String::from_utf8_lossy(k).into_owned()),
            Denied::Channel(c) => ("channel", String::from_utf8_lossy(c).into_owned()),
        }
    }

    /// ACL DRYRUN's answer.
    pub fn dryrun(&self) -> String {
        let (reason, object) = self.log_fields();
        match reason {
            "command" => format!("This user has no permissions to run the '{object}' command"),
            _ => format!("This user has no permissions to access the '{object}' {reason}"),
        }
    }
}

/// Checks `req` (whose command is `spec`) for `user`.
pub fn check(user: &User, spec: &CommandSpec, req: &Request) -> Result<(), ProxyError> {
    match denied(user, spec, req) {
        None => Ok(()),
        Some(d) => Err(d.error()),
    }
}

/// What of `req` the user may not do, the command first, then the keys, then the channels.
pub fn denied(user: &User, spec: &CommandSpec, req: &Request) -> Option<Denied> {
    if !user.may_run(spec) {
        return Some(Denied::Command(spec.name.clone()));
    }
    if !user.all_keys && !spec.key_specs.is_empty() {
        let mut keys: SmallVec<[(u32, u8); 8]> = SmallVec::new();
        // A bad key count is the command's own error; the node answers it.
        let _ = spec.keys_with_access(req, &mut keys);
        let allowed = |key: &[u8], need: u8| {
            user.keys
                .iter()
                .any(|p| p.access & need == need && glob_match(&p.pattern, key))
        };
        if let Some(&(i, _)) = keys
            .iter()
            .find(|&&(i, need)| !allowed(req.arg(i as usize), need))
        {
            return Some(Denied::Key(req.arg(i as usize).to_vec()));
        }
    }
    if !user.all_channels {
        let refused = match channels(spec, req) {
            Some((args, true)) => args
                .into_iter()
                .find(|c| !user.channels.iter().any(|p| p.as_slice() == *c)),
            Some((args, false)) => args
                .into_iter()
                .find(|c| !user.channels.iter().any(|p| glob_match(p, c))),
            None => None,
        };
        if let Some(c) = refused {
            return Some(Denied::Channel(c.to_vec()));
        }
    }
    None
}

/// The channels a command publishes or subscribes to, and whether they are patterns (which
/// must equal an allowed pattern literally, as Redis checks them).
fn channels<'r>(spec: &CommandSpec, req: &'r Request) -> Option<(Vec<&'r [u8]>, bool)> {
    match spec.name.as_str() {
        "publish" | "spublish" => Some((vec![req.arg(1)], false)),
        "subscribe" | "ssubscribe" => Some((req.args().skip(1).collect(), false)),
        "psubscribe" => Some((req.args().skip(1).collect(), true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_common::command::CommandTable;

    fn run(rules: &str, args: &[&str]) -> Result<(), String> {
        let mut u = User::new("u");
        u.apply_all(rules).unwrap();
        let req = Request::from_args(args);
        let t = CommandTable::get();
        let mut spec = t.lookup(req.arg(0)).unwrap();
        if !spec.subcommands.is_empty() {
            spec = spec.subcommand(req.arg(1)).unwrap();
        }
        check(&u, spec, &req).map_err(|e| e.to_string())
    }

    #[test]
    fn check_commands_keys_and_channels_like_redis() {
        let app = "on ~app:* %R~ro:* %W~wo:* &events:* +@all";
        assert!(run(app, &["get", "app:1"]).is_ok());
        assert_eq!(
            run(app, &["get", "other"]).unwrap_err(),
            "NOPERM this user has no permissions to access one of the keys used as arguments"
        );
        assert!(run(app, &["get", "ro:1"]).is_ok());
        assert!(run(app, &["set", "ro:1", "x"]).is_err(), "%R~ is read-only");
        assert!(run(app, &["set", "wo:1", "x"]).is_ok());
        assert!(run(app, &["get", "wo:1"]).is_err(), "%W~ is write-only");
        // Every key of a multi-key command is checked.
        assert!(run(app, &["mget", "app:1", "other"]).is_err());
        assert!(run(app, &["publish", "events:a", "m"]).is_ok());
        assert_eq!(
            run(app, &["publish", "other", "m"]).unwrap_err(),
            "NOPERM this user has no permissions to access one of the channels used as arguments"
        );
        assert!(run(app, &["psubscribe", "events:*"]).is_ok());
        assert!(
            run(app, &["psubscribe", "events:a*"]).is_err(),
            "patterns match literally"
        );
        assert_eq!(
            run("on ~* &* +@read", &["set", "k", "v"]).unwrap_err(),
            "NOPERM this user has no permissions to run the 'set' command"
        );
        assert_eq!(
            run("on ~* &* +@all -config|set", &["config", "set", "a", "b"]).unwrap_err(),
            "NOPERM this user has no permissions to run the 'config|set' command"
        );
    }
}
