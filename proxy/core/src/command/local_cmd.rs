//! The commands Hive answers itself, as a type: each name appears once, here; `classify`
//! parses it once and `client::local::answer` matches the value exhaustively, so a command
//! without a handler is a compile error, not a run-time `no local handler`.

use std::sync::LazyLock;

use hive_common::command::{CommandSpec, CommandTable};

/// Defines a subcommand enum with its names: the only table of them.
macro_rules! names {
    ($(#[$doc:meta])* $ty:ident { $($var:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $ty {
            $($var),*
        }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$var),*];

            /// The command table's full name (`container|sub`).
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$var => $text),*
                }
            }

            fn parse(full: &str) -> Option<$ty> {
                match full {
                    $($text => Some($ty::$var),)*
                    _ => None,
                }
            }
        }
    };
}

names!(
    /// Commands without subcommands.
    Plain {
        Ping => "ping",
        Echo => "echo",
        Quit => "quit",
        Select => "select",
        Hello => "hello",
        Auth => "auth",
        ReadOnly => "readonly",
        ReadWrite => "readwrite",
    }
);

names!(
    /// The one-node CLUSTER view a cluster client expects, and CLUSTER KEYSLOT.
    ClusterSub {
        KeySlot => "cluster|keyslot",
        Slots => "cluster|slots",
        Shards => "cluster|shards",
        Nodes => "cluster|nodes",
        Info => "cluster|info",
        MyId => "cluster|myid",
    }
);

names!(
    /// CLIENT subcommands about the client's own connection and the proxy's client list.
    ClientSub {
        SetName => "client|setname",
        GetName => "client|getname",
        Id => "client|id",
        Info => "client|info",
        List => "client|list",
        Kill => "client|kill",
        NoEvict => "client|no-evict",
        SetInfo => "client|setinfo",
        GetRedir => "client|getredir",
    }
);

names!(
    /// COMMAND and its subcommands, from the command table.
    CommandSub {
        Bare => "command",
        Count => "command|count",
        Info => "command|info",
        List => "command|list",
        GetKeys => "command|getkeys",
    }
);

names!(
    /// ACL subcommands for the proxy's own users.
    AclSub {
        WhoAmI => "acl|whoami",
        Users => "acl|users",
        Cat => "acl|cat",
        SetUser => "acl|setuser",
        DelUser => "acl|deluser",
        List => "acl|list",
        GetUser => "acl|getuser",
        Log => "acl|log",
        DryRun => "acl|dryrun",
        Save => "acl|save",
        Load => "acl|load",
        GenPass => "acl|genpass",
        Help => "acl|help",
    }
);

names!(
    /// The proxy's own slow log.
    SlowlogSub {
        Get => "slowlog|get",
        Len => "slowlog|len",
        Reset => "slowlog|reset",
        Help => "slowlog|help",
    }
);

names!(
    /// PUBSUB counts of the proxy's own clients' subscriptions.
    PubsubSub {
        NumSub => "pubsub|numsub",
        NumPat => "pubsub|numpat",
    }
);

/// A command Hive answers without a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCmd {
    Plain(Plain),
    Cluster(ClusterSub),
    Client(ClientSub),
    Command(CommandSub),
    Acl(AclSub),
    Slowlog(SlowlogSub),
    Pubsub(PubsubSub),
}

impl LocalCmd {
    /// The local command `spec` is, if Hive answers it: one index into a table made once from
    /// the command table, since classification asks it of every request.
    pub fn of(spec: &CommandSpec) -> Option<LocalCmd> {
        static BY_ID: LazyLock<Vec<Option<LocalCmd>>> = LazyLock::new(|| {
            let table = CommandTable::get();
            let mut by_id = vec![None; table.ids()];
            for c in table.all() {
                by_id[usize::from(c.id)] = LocalCmd::parse(&c.name);
            }
            by_id
        });
        BY_ID.get(usize::from(spec.id)).copied().flatten()
    }

    /// The local command with the command table's full name `full`, if Hive answers it.
    pub fn parse(full: &str) -> Option<LocalCmd> {
        Plain::parse(full)
            .map(LocalCmd::Plain)
            .or_else(|| ClusterSub::parse(full).map(LocalCmd::Cluster))
            .or_else(|| ClientSub::parse(full).map(LocalCmd::Client))
            .or_else(|| CommandSub::parse(full).map(LocalCmd::Command))
            .or_else(|| AclSub::parse(full).map(LocalCmd::Acl))
            .or_else(|| SlowlogSub::parse(full).map(LocalCmd::Slowlog))
            .or_else(|| PubsubSub::parse(full).map(LocalCmd::Pubsub))
    }

    pub fn name(self) -> &'static str {
        match self {
            LocalCmd::Plain(c) => c.name(),
            LocalCmd::Cluster(c) => c.name(),
            LocalCmd::Client(c) => c.name(),
            LocalCmd::Command(c) => c.name(),
            LocalCmd::Acl(c) => c.name(),
            LocalCmd::Slowlog(c) => c.name(),
            LocalCmd::Pubsub(c) => c.name(),
        }
    }

    /// Every local command, for tests that each is in the command table and answered.
    pub fn all() -> impl Iterator<Item = LocalCmd> {
        let p = Plain::ALL.iter().map(|c| LocalCmd::Plain(*c));
        let cl = ClusterSub::ALL.iter().map(|c| LocalCmd::Cluster(*c));
        let ci = ClientSub::ALL.iter().map(|c| LocalCmd::Client(*c));
        let co = CommandSub::ALL.iter().map(|c| LocalCmd::Command(*c));
        let a = AclSub::ALL.iter().map(|c| LocalCmd::Acl(*c));
        let s = SlowlogSub::ALL.iter().map(|c| LocalCmd::Slowlog(*c));
        let ps = PubsubSub::ALL.iter().map(|c| LocalCmd::Pubsub(*c));
        p.chain(cl).chain(ci).chain(co).chain(a).chain(s).chain(ps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_cmd_names_round_trip_and_are_in_the_command_table() {
        let table = CommandTable::get();
        for c in LocalCmd::all() {
            assert_eq!(LocalCmd::parse(c.name()), Some(c), "{}", c.name());
            let spec = table.lookup_full(c.name().as_bytes());
            assert!(spec.is_some(), "{} is not a Redis command", c.name());
            assert_eq!(LocalCmd::of(spec.unwrap()), Some(c), "{}", c.name());
        }
        assert_eq!(LocalCmd::parse("get"), None);
        assert_eq!(LocalCmd::of(table.lookup(b"get").unwrap()), None);
        assert_eq!(LocalCmd::parse("client|tracking"), None);
    }
}
