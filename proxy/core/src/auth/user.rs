//! One proxy user and Redis's ACL rule syntax (`on >secret ~app:* &events:* +@read -@dangerous`)
//! applied to it, with the error texts of `ACL SETUSER`.

use hive_common::command::{access, CommandSpec, CommandTable};

/// A user's key pattern and what it allows (`~` both, `%R~` reading, `%W~` writing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    pub access: u8,
}

/// A proxy user. `Debug` shows no password hash.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// SHA-256 of each password, lowercase hex, as Redis stores them.
    pub(super) passwords: Vec<String>,
    /// Allowed commands and subcommands by `CommandSpec::id`.
    commands: Vec<u64>,
    /// Set only by `+@all` (as Redis's reserved command bit): the user was given every
    /// command, including any added later; ACL LIST then starts its rules from `+@all`.
    all_commands: bool,
    pub keys: Vec<KeyPattern>,
    pub all_keys: bool,
    pub channels: Vec<Vec<u8>>,
    pub all_channels: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("passwords", &self.passwords.len())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of `password`, lowercase hex.
pub fn hash_password(password: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(password);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The category names Redis 7.0 knows (`ACL CAT`).
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

impl User {
    /// A user as `ACL SETUSER name` creates it: off, no password, no commands, keys or
    /// channels (Redis 7.0's `acl-pubsub-default resetchannels`).
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            commands: vec![0; CommandTable::get().ids().div_ceil(64)],
            all_commands: false,
            keys: Vec::new(),
            all_keys: false,
            channels: Vec::new(),
            all_channels: false,
        }
    }

    /// Applies rules separated by spaces; the error is `ACL SETUSER`'s text.
    pub fn apply_all(&mut self, rules: &str) -> Result<(), String> {
        for op in rules.split_ascii_whitespace() {
            self.apply(op).map_err(|why| {
                // Never echo a password back: name the modifier by its kind only.
                let shown = match op.as_bytes().first() {
                    Some(b'>' | b'<') => &op[..1],
                    _ => op,
                };
                format!("Error in ACL SETUSER modifier '{shown}': {why}")
            })?;
        }
        Ok(())
    }

    /// Applies one rule.
    pub fn apply(&mut self, op: &str) -> Result<(), &'static str> {
        let lower = op.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.apply("~*")?,
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            "allchannels" => self.apply("&*")?,
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" => self.apply("+@all")?,
            "nocommands" => self.apply("-@all")?,
            "reset" => {
                for r in ["resetpass", "resetkeys", "resetchannels", "off", "-@all"] {
                    self.apply(r)?;
                }
            }
            // Payload sanitizing is the node's business: Hive forwards RESTORE as it is.
            "sanitize-payload" | "skip-sanitize-payload" => {}
            _ => return self.apply_prefixed(op),
        }
        Ok(())
    }

    fn apply_prefixed(&mut self, op: &str) -> Result<(), &'static str> {
        let (first, rest) = op.split_at(op.chars().next().map_or(0, char::len_utf8));
        match first {
            ">" => {
                let h = hash_password(rest.as_bytes());
                if !self.passwords.contains(&h) {
                    self.passwords.push(h);
                }
                self.nopass = false;
            }
            "#" => {
                if !valid_hash(rest) {
                    return Err("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters");
                }
                if !self.passwords.iter().any(|p| p == rest) {
                    self.passwords.push(rest.to_string());
                }
                self.nopass = false;
            }
            "<" | "!" => {
                let h = if first == "<" {
                    hash_password(rest.as_bytes())
                } else if valid_hash(rest) {
                    rest.to_string()
                } else {
                    return Err("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters");
                };
                let before = self.passwords.len();
                self.passwords.retain(|p| *p != h);
                if self.passwords.len() == before {
                    return Err(
                        "The password you are trying to remove from the user does not exist",
                    );
                }
            }
            "~" => self.add_keys(rest, access::READ | access::WRITE)?,
            "%" => {
                let (flags, pattern) = rest.split_once('~').ok_or("Syntax error")?;
                let mut a = 0;
                for c in flags.chars() {
                    a |= match c.to_ascii_uppercase() {
                        'R' => access::READ,
                        'W' => access::WRITE,
                        _ => return Err("Syntax error"),
                    };
                }
                if a == 0 {
                    return Err("Syntax error");
                }
                self.add_keys(pattern, a)?;
            }
            "&" => {
                if self.all_channels && rest != "*" {
                    return Err("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels");
                }
                if rest == "*" {
                    self.all_channels = true;
                    self.channels.clear();
                } else if !self.channels.iter().any(|c| c == rest.as_bytes()) {
                    self.channels.push(rest.as_bytes().to_vec());
                }
            }
            "+" | "-" => self.set_commands(rest, first == "+")?,
            "(" => return Err("Hive does not support ACL selectors yet"),
            _ => return Err("Syntax error"),
        }
        Ok(())
    }

    fn add_keys(&mut self, pattern: &str, a: u8) -> Result<(), &'static str> {
        if pattern == "*" && a == access::READ | access::WRITE {
            self.all_keys = true;
            self.keys.clear();
            return Ok(());
        }
        if self.all_keys {
            return Err("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns");
        }
        match self
            .keys
            .iter_mut()
            .find(|k| k.pattern == pattern.as_bytes())
        {
            Some(k) => k.access |= a,
            None => self.keys.push(KeyPattern {
                pattern: pattern.as_bytes().to_vec(),
                access: a,
            }),
        }
        Ok(())
    }

    fn set_commands(&mut self, what: &str, allow: bool) -> Result<(), &'static str> {
        let table = CommandTable::get();
        if let Some(cat) = what.strip_prefix('@') {
            let cat = cat.to_ascii_lowercase();
            if cat == "all" {
                table.all().for_each(|c| self.set(c, allow));
                self.all_commands = allow;
                return Ok(());
            }
            if !CATEGORIES.contains(&cat.as_str()) {
                return Err("Unknown command or category name in ACL");
            }
            table
                .all()
                .filter(|c| c.in_category(&cat))
                .for_each(|c| self.set(c, allow));
            return Ok(());
        }
        let Some(spec) = table.lookup_full(what.as_bytes()) else {
            let parent = what.split_once('|').map(|(p, _)| p.as_bytes());
            if parent.is_some_and(|p| table.lookup(p).is_some()) {
                return Err("Hive does not support first-argument rules such as '+select|0': allow the whole command or one of its subcommands");
            }
            return Err("Unknown command or category name in ACL");
        };
        self.set(spec, allow);
        spec.subcommands.iter().for_each(|s| self.set(s, allow));
        Ok(())
    }

    fn set(&mut self, c: &CommandSpec, allow: bool) {
        let (word, bit) = (c.id as usize / 64, 1u64 << (c.id % 64));
        if allow {
            self.commands[word] |= bit;
        } else {
            self.commands[word] &= !bit;
        }
    }

    /// Whether `+@all` gave this user every command (and was not taken back by `-@all`).
    pub fn all_commands(&self) -> bool {
        self.all_commands
    }

    /// Whether the user may run this command or subcommand.
    pub fn may_run(&self, c: &CommandSpec) -> bool {
        self.commands
            .get(c.id as usize / 64)
            .is_some_and(|w| w & (1u64 << (c.id % 64)) != 0)
    }

    /// Whether `password` is one of the user's (constant time per candidate).
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let h = hash_password(password);
        self.passwords.iter().fold(false, |found, p| {
            let same = p.bytes().zip(h.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
            found | same
        })
    }

    /// Every command, key and channel allowed: checks can be skipped.
    pub fn unrestricted(&self) -> bool {
        self.all_keys && self.all_channels && CommandTable::get().all().all(|c| self.may_run(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &str) -> User {
        let mut u = User::new("u");
        u.apply_all(rules).unwrap();
        u
    }

    fn spec(name: &str) -> &'static CommandSpec {
        CommandTable::get().lookup_full(name.as_bytes()).unwrap()
    }

    #[test]
    fn user_rules_grant_and_revoke_commands() {
        let u = user("on >s3cret ~app:* +@read +@write -@dangerous");
        assert!(u.enabled);
        assert!(u.may_run(spec("get")) && u.may_run(spec("set")));
        assert!(!u.may_run(spec("flushall")), "flushall is @dangerous");
        assert!(!u.may_run(spec("config|get")));
        let u = user("+config|get");
        assert!(u.may_run(spec("config|get")) && !u.may_run(spec("config|set")));
        let u = user("+config -config|set");
        assert!(u.may_run(spec("config|get")) && !u.may_run(spec("config|set")));
        let u = user("allcommands -keys");
        assert!(!u.may_run(spec("keys")) && u.may_run(spec("scan")));
        assert!(user("+@all ~* &*").unrestricted());
        assert!(!user("+@all ~*").unrestricted());
    }

    #[test]
    fn user_describe_rebuilds_the_same_user() {
        let u = user("on >pw ~app:* %R~ro:* &events:* +@read -keys +config|get");
        let d = u.describe();
        assert!(d.starts_with("on #"), "{d}");
        assert!(d.contains("~app:* %R~ro:* &events:* -@all "), "{d}");
        assert!(d.contains(" +config|get") && !d.contains(" +keys"), "{d}");
        let again = user(&d);
        assert_eq!(again.describe(), d);
        for c in CommandTable::get().all() {
            assert_eq!(again.may_run(c), u.may_run(c), "{}", c.name);
        }
        assert_eq!(
            user("on nopass ~* &* +@all").describe(),
            "on nopass ~* &* +@all"
        );
        assert_eq!(
            User::new("x").describe(),
            "off resetkeys resetchannels -@all"
        );
    }

    /// Whether `rules` give the commands rule Redis 7.0.15 answers (`redis`): the same base and
    /// categories in order, then the same single commands as a set (Redis lists those in its
    /// dictionary's order).
    fn same_as_redis(rules: &str, redis: &str) {
        let got = user(rules).commands_rule();
        let split = |r: &str| -> (Vec<String>, Vec<String>) {
            let words: Vec<String> = r.split_whitespace().map(String::from).collect();
            let (heads, mut singles): (Vec<_>, Vec<_>) =
                words.into_iter().partition(|w| w.contains('@'));
            singles.sort();
            (heads, singles)
        };
        assert_eq!(split(&got), split(redis), "{rules}: {got}");
    }

    #[test]
    fn user_commands_rule_is_redis_compact_form() {
        // Each pair: a SETUSER's rules and what redis-server 7.0.15 shows for them.
        same_as_redis(
            "on >pw ~app:* &chan +get +@hash -hdel +client|id",
            "-@all +@hash +client|id -hdel +get",
        );
        same_as_redis("+@all -get", "+@all -get");
        same_as_redis("+@all -@dangerous", "+@all -@dangerous");
        same_as_redis("+@read +@write -@read", "-@all +@write");
        same_as_redis("+@read -get +set", "-@all +@read +set -get");
        same_as_redis(
            "+@all -get -@dangerous +flushall",
            "+@all -@admin -keys -sort -migrate -info -restore -sort_ro -get -restore-asking \
             -swapdb -flushdb",
        );
        assert_eq!(user("on nopass ~* &* +@all").flags(), ["on", "nopass"]);
    }

    #[test]
    fn user_passwords_plain_and_hashed() {
        let hash = hash_password(b"pw");
        let u = user(&format!("on #{hash} >other"));
        assert!(u.password_ok(b"pw") && u.password_ok(b"other"));
        assert!(!u.password_ok(b"wrong"));
        let mut u = u;
        u.apply("<other").unwrap();
        assert!(!u.password_ok(b"other"));
        assert!(user("nopass").password_ok(b"anything"));
        assert!(!user("resetpass").password_ok(b""));
        // Redis's own SHA-256 of "foobar" (redis.conf's example).
        assert_eq!(
            hash_password(b"foobar"),
            "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"
        );
    }

    #[test]
    fn user_key_and_channel_patterns() {
        let u = user("~app:* %R~ro:* %W~wo:* &events:*");
        assert_eq!(u.keys.len(), 3);
        assert_eq!(u.keys[1].access, access::READ);
        assert_eq!(u.keys[2].access, access::WRITE);
        assert!(!u.all_keys && !u.all_channels);
        assert_eq!(u.channels, vec![b"events:*".to_vec()]);
        let u = user("allkeys allchannels");
        assert!(u.all_keys && u.all_channels);
    }

    #[test]
    fn user_rule_errors_read_like_redis() {
        let err = |r: &str| User::new("u").apply_all(r).unwrap_err();
        assert_eq!(
            err("bogus"),
            "Error in ACL SETUSER modifier 'bogus': Syntax error"
        );
        assert_eq!(
            err("+nosuchcmd"),
            "Error in ACL SETUSER modifier '+nosuchcmd': Unknown command or category name in ACL"
        );
        assert_eq!(
            err("+@nosuchcat"),
            "Error in ACL SETUSER modifier '+@nosuchcat': Unknown command or category name in ACL"
        );
        assert!(err("#abc").contains("exactly 64 characters"));
        // The password of a failing removal is not echoed.
        assert_eq!(
            err("<notthere"),
            "Error in ACL SETUSER modifier '<': The password you are trying to remove from the user does not exist"
        );
        assert!(err("~* ~app:*").contains("Try 'resetkeys'"));
        assert!(err("%X~a").ends_with("Syntax error"));
    }
}
