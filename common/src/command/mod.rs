//! The Redis 7.0 command table: arity, flags and key specs, loaded from generated data.
//!
//! `data/commands.json` is produced by `cargo run -p hive-common --example gen_commands` from a
//! real server's `COMMAND` reply and checked in; a test compares it with a live server.

mod index;
mod keys;

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use index::{NameIndex, MAX_NAME};
pub use keys::{KeyError, KeyPositions};

/// How a key spec finds where its keys begin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeginSearch {
    Index { pos: i64 },
    Keyword { keyword: String, startfrom: i64 },
    Unknown,
}

/// How a key spec finds the keys once it knows where they begin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindKeys {
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        keystep: i64,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySpec {
    pub flags: Vec<String>,
    pub begin_search: BeginSearch,
    pub find_keys: FindKeys,
    /// The `incomplete` flag, precomputed so key extraction compares no strings.
    #[serde(skip)]
    pub(crate) incomplete: bool,
    /// What the keys are used for, as ACL key permissions see it (`access::READ` for the
    /// `access` flag, `access::WRITE` for `insert`, `delete` or `update`).
    #[serde(skip)]
    pub access: u8,
}

/// Key access bits (`KeySpec::access`), as Redis's ACL key patterns `%R~` and `%W~` test them.
pub mod access {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
}

/// One command (or subcommand, named `parent|sub`) as `COMMAND INFO` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    pub name: String,
    /// Positive: exact argument count (including the name); negative: at least `-arity`.
    pub arity: i64,
    pub flags: Vec<String>,
    pub first_key: i64,
    pub last_key: i64,
    pub step: i64,
    pub acl_categories: Vec<String>,
    pub tips: Vec<String>,
    pub key_specs: Vec<KeySpec>,
    pub subcommands: Vec<CommandSpec>,
    #[serde(skip)]
    bits: u32,
    /// The argument index of the one key when the key specs name exactly one, at a fixed
    /// index (GET's 1, HSET's 1); 0 otherwise. Key extraction then walks no spec.
    #[serde(skip)]
    one_key: u32,
    /// A dense number for every command and subcommand (`0..CommandTable::ids()`), so a set
    /// of commands (an ACL user's) is a bitmap.
    #[serde(skip)]
    pub id: u16,
}

/// Command flags the proxy decides on, as bits for cheap tests.
pub mod flag {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const ADMIN: u32 = 1 << 2;
    pub const PUBSUB: u32 = 1 << 3;
    pub const NOSCRIPT: u32 = 1 << 4;
    pub const BLOCKING: u32 = 1 << 5;
    pub const MOVABLEKEYS: u32 = 1 << 6;
    pub const NO_MULTI: u32 = 1 << 7;
    pub const FAST: u32 = 1 << 8;
    pub const DENYOOM: u32 = 1 << 9;
    /// May run before the client authenticates (AUTH, HELLO, QUIT, RESET).
    pub const NO_AUTH: u32 = 1 << 10;
    /// Never shown to MONITOR (AUTH, HELLO, ...), like admin commands.
    pub const SKIP_MONITOR: u32 = 1 << 11;
    /// Changes data that replicas receive: a `write` command, or one Redis marks
    /// `CMD_MAY_REPLICATE` (scripts, functions) or that runs writes (EXEC). Redis 7.0's
    /// COMMAND output does not show `may_replicate`, so those few are named in `prepare`.
    pub const REPLICATES: u32 = 1 << 12;

    /// Commands that may write without the `write` flag (see `REPLICATES`).
    pub(super) const MAY_REPLICATE: &[&str] = &["eval", "evalsha", "fcall", "exec"];

    pub(super) fn from_name(name: &str) -> u32 {
        match name {
            "write" => WRITE,
            "readonly" => READONLY,
            "admin" => ADMIN,
            "pubsub" => PUBSUB,
            "noscript" => NOSCRIPT,
            "blocking" => BLOCKING,
            "movablekeys" => MOVABLEKEYS,
            "no_multi" => NO_MULTI,
            "fast" => FAST,
            "denyoom" => DENYOOM,
            "no_auth" => NO_AUTH,
            "skip_monitor" => SKIP_MONITOR,
            _ => 0,
        }
    }
}

impl CommandSpec {
    pub fn has(&self, f: u32) -> bool {
        self.bits & f != 0
    }

    /// Whether `argc` arguments (including the command name) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// The subcommand named by `sub` (case-insensitive), for container commands like CONFIG.
    pub fn subcommand(&self, sub: &[u8]) -> Option<&CommandSpec> {
        let mut lower = [0u8; MAX_NAME];
        let sub = lowercase(sub, &mut lower)?;
        self.subcommands
            .binary_search_by(|c| {
                let (_, tail) = c.name.split_once('|').unwrap_or(("", &c.name));
                tail.as_bytes().cmp(sub)
            })
            .ok()
            .map(|i| &self.subcommands[i])
    }

    /// Whether the command is in ACL category `cat` (`read`, without the `@`).
    pub fn in_category(&self, cat: &str) -> bool {
        self.acl_categories
            .iter()
            .any(|c| c.strip_prefix('@') == Some(cat))
    }

    /// Numbers this command and its subcommands from `*next` on.
    fn prepare(&mut self, next: &mut u16) {
        self.bits = self
            .flags
            .iter()
            .map(|f| flag::from_name(f))
            .fold(0, |a, b| a | b);
        if self.bits & flag::WRITE != 0 || flag::MAY_REPLICATE.contains(&self.name.as_str()) {
            self.bits |= flag::REPLICATES;
        }
        self.id = *next;
        *next += 1;
        for ks in &mut self.key_specs {
            ks.incomplete = ks.flags.iter().any(|f| f == "incomplete");
            ks.access = ks.flags.iter().fold(0, |a, f| {
                a | match f.as_str() {
                    "access" => access::READ,
                    "insert" | "delete" | "update" => access::WRITE,
                    _ => 0,
                }
            });
        }
        self.one_key = match self.key_specs.as_slice() {
            [KeySpec {
                begin_search: BeginSearch::Index { pos },
                find_keys:
                    FindKeys::Range {
                        lastkey: 0,
                        keystep,
                        ..
                    },
                ..
            }] if *keystep > 0 && !matches!(self.name.as_str(), "sort" | "migrate") => {
                u32::try_from(*pos).unwrap_or(0)
            }
            _ => 0,
        };
        self.subcommands.sort_by(|a, b| a.name.cmp(&b.name));
        for s in &mut self.subcommands {
            s.prepare(next);
        }
    }
}

fn lowercase<'a>(name: &[u8], buf: &'a mut [u8; MAX_NAME]) -> Option<&'a [u8]> {
    let out = buf.get_mut(..name.len())?;
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

/// All commands, sorted by name, with an open-addressing index for lookups.
pub struct CommandTable {
    commands: Vec<CommandSpec>,
    /// How many ids `prepare` gave out.
    ids: u16,
    index: NameIndex,
}

static TABLE: LazyLock<CommandTable> = LazyLock::new(|| {
    CommandTable::from_json_with(
        include_str!("../../data/commands.json"),
        include_str!("../../data/commands_added.json"),
    )
    .expect("the checked-in command table parses (tested)")
});

impl CommandTable {
    /// The table generated from Redis 7.0.
    pub fn get() -> &'static CommandTable {
        &TABLE
    }

    pub fn from_json(json: &str) -> Result<CommandTable, serde_json::Error> {
        Self::from_json_with(json, "[]")
    }

    /// `added` holds commands newer than the generated table that modern clients send on
    /// connect (Redis 7.2's `CLIENT SETINFO`); `parent|sub` names become subcommands.
    pub fn from_json_with(json: &str, added: &str) -> Result<CommandTable, serde_json::Error> {
        let mut commands: Vec<CommandSpec> = serde_json::from_str(json)?;
        let added: Vec<CommandSpec> = serde_json::from_str(added)?;
        for a in added {
            let parent = a.name.split_once('|').map(|(p, _)| p.to_string());
            match parent.and_then(|p| commands.iter_mut().find(|c| c.name == p)) {
                Some(c) => c.subcommands.push(a),
                None => commands.push(a),
            }
        }
        commands.sort_by(|a, b| a.name.cmp(&b.name));
        let mut ids = 0;
        for c in &mut commands {
            c.prepare(&mut ids);
        }
        let index = NameIndex::build(commands.iter().map(|c| c.name.as_str()));
        Ok(CommandTable {
            commands,
            ids,
            index,
        })
    }

    /// Case-insensitive lookup without allocation.
    pub fn lookup(&self, name: &[u8]) -> Option<&CommandSpec> {
        let i = self
            .index
            .find(name, |i| self.commands[usize::from(i)].name.as_str())?;
        Some(&self.commands[usize::from(i)])
    }

    pub fn iter(&self) -> impl Iterator<Item = &CommandSpec> {
        self.commands.iter()
    }

    /// Every command and subcommand.
    pub fn all(&self) -> impl Iterator<Item = &CommandSpec> {
        self.commands
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
    }

    /// The full name (`get`, `config|get`) of command `id`; a linear search, for slow paths.
    pub fn name_of(&self, id: u16) -> Option<&str> {
        self.all().find(|c| c.id == id).map(|c| c.name.as_str())
    }

    /// The number of command ids (`CommandSpec::id` is below it).
    pub fn ids(&self) -> usize {
        self.ids as usize
    }

    /// A command (`get`) or subcommand (`config|get`) by its full name, case-insensitive.
    pub fn lookup_full(&self, name: &[u8]) -> Option<&CommandSpec> {
        match name.iter().position(|&b| b == b'|') {
            Some(bar) => self.lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
            None => self.lookup(name),
        }
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_loads_every_redis_7_command() {
        let t = CommandTable::get();
        assert!(t.len() >= 230, "only {} commands", t.len());
        let get = t.lookup(b"GeT").unwrap();
        assert_eq!(get.arity, 2);
        assert!(get.has(flag::READONLY) && get.has(flag::FAST));
        assert!(t.lookup(b"blpop").unwrap().has(flag::BLOCKING));
        assert!(t.lookup(b"nosuchcommand").is_none());
        assert!(t.lookup(&[b'a'; 100]).is_none());
        assert!(t.lookup(b"").is_none());
        for c in t.iter() {
            assert_eq!(
                t.lookup(c.name.to_uppercase().as_bytes()).map(|x| &x.name),
                Some(&c.name)
            );
        }
    }

    #[test]
    fn table_subcommands_resolve() {
        let t = CommandTable::get();
        let config = t.lookup(b"config").unwrap();
        let get = config.subcommand(b"GET").unwrap();
        assert_eq!(get.name, "config|get");
        assert!(config.subcommand(b"nope").is_none());
        let keyslot = t
            .lookup(b"cluster")
            .unwrap()
            .subcommand(b"keyslot")
            .unwrap();
        assert_eq!(keyslot.arity, 3);
    }

    #[test]
    fn table_ids_are_dense_and_key_access_is_read_from_flags() {
        let t = CommandTable::get();
        let mut seen = vec![false; t.ids()];
        for c in t.all() {
            assert!(
                !std::mem::replace(&mut seen[c.id as usize], true),
                "{}",
                c.name
            );
        }
        assert!(seen.iter().all(|s| *s));
        let get = t.lookup(b"get").unwrap();
        assert_eq!(get.key_specs[0].access, access::READ);
        let set = t.lookup(b"set").unwrap();
        assert_eq!(set.key_specs[0].access & access::WRITE, access::WRITE);
        assert_eq!(t.lookup_full(b"CONFIG|get").unwrap().name, "config|get");
        assert!(get.in_category("read") && !get.in_category("write"));
    }

    #[test]
    fn table_replicates_covers_writes_scripts_and_exec() {
        let t = CommandTable::get();
        for w in [
            "set",
            "mset",
            "blmove",
            "xreadgroup",
            "eval",
            "evalsha",
            "fcall",
            "exec",
        ] {
            assert!(t.lookup(w.as_bytes()).unwrap().has(flag::REPLICATES), "{w}");
        }
        for r in ["get", "eval_ro", "fcall_ro", "ping", "publish", "multi"] {
            assert!(
                !t.lookup(r.as_bytes()).unwrap().has(flag::REPLICATES),
                "{r}"
            );
        }
    }

    #[test]
    fn arity_rules() {
        let t = CommandTable::get();
        let get = t.lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let mget = t.lookup(b"mget").unwrap();
        assert!(mget.arity_ok(2) && mget.arity_ok(10) && !mget.arity_ok(1));
    }
}
