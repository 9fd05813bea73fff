//! A user written back as rules (ACL LIST, ACL SAVE) and as ACL GETUSER's fields.

use hive_common::command::{access, CommandTable};

use super::{User, CATEGORIES};

impl User {
    /// The rules that rebuild this user, as ACL LIST shows them and ACL SAVE writes them.
    pub fn describe(&self) -> String {
        let mut parts = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            parts.push("nopass".into());
        }
        parts.extend(self.passwords.iter().map(|h| format!("#{h}")));
        parts.push(self.keys_rule());
        parts.push(self.channels_rule());
        parts.push(self.commands_rule());
        parts.join(" ")
    }

    /// SHA-256 hashes of the passwords (ACL GETUSER shows them, as Redis does).
    pub fn password_hashes(&self) -> &[String] {
        &self.passwords
    }

    /// ACL GETUSER's `flags`, as Redis 7.0 shows them (`allkeys`, `allchannels` and
    /// `allcommands` are rules there, not flags).
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        f
    }

    pub fn keys_rule(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        if self.keys.is_empty() {
            return "resetkeys".into();
        }
        self.keys
            .iter()
            .map(|k| {
                let prefix = match k.access {
                    a if a == access::READ => "%R~",
                    a if a == access::WRITE => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(&k.pattern))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn channels_rule(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        if self.channels.is_empty() {
            return "resetchannels".into();
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command rules in Redis 7.0's compact form: `+@all` (when `+@all` gave the user
    /// every command) or `-@all`; then, greedily, the category that differs least from the
    /// user's commands while agreeing with more than it differs (ties: the one agreeing with
    /// more), until none is left; then the single commands and subcommands that still differ,
    /// in the command table's order (Redis's come in its dictionary's order). Applied again,
    /// the rules give the same commands.
    pub fn commands_rule(&self) -> String {
        let table = CommandTable::get();
        let adding = !self.all_commands();
        let ids = table.ids();
        let allowed: Vec<bool> = {
            let mut v = vec![false; ids];
            table
                .all()
                .for_each(|c| v[usize::from(c.id)] = self.may_run(c));
            v
        };
        // What the rules so far give, and what is left to explain (categories applied are
        // taken out of it, as Redis's temporary selector does).
        let mut shown = vec![!adding; ids];
        let mut left = allowed.clone();
        let mut out = vec![if adding { "-@all" } else { "+@all" }.to_string()];
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best: Option<(usize, usize, usize)> = None;
            for (j, cat) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (mut on, mut off) = (0usize, 0usize);
                for c in table.all().filter(|c| c.in_category(cat)) {
                    if left[usize::from(c.id)] {
                        on += 1;
                    } else {
                        off += 1;
                    }
                }
                let (diff, same) = if adding { (off, on) } else { (on, off) };
                let better = best.is_none_or(|(_, d, s)| diff < d || (diff == d && same > s));
                if same > diff && better {
                    best = Some((j, diff, same));
                }
            }
            let Some((j, _, _)) = best else { break };
            let cat = CATEGORIES[j];
            out.push(format!("{}@{cat}", if adding { '+' } else { '-' }));
            for c in table.all().filter(|c| c.in_category(cat)) {
                shown[usize::from(c.id)] = adding;
                left[usize::from(c.id)] = !adding;
            }
            applied[j] = true;
        }
        for c in table.iter() {
            let may = allowed[usize::from(c.id)];
            if shown[usize::from(c.id)] != may {
                out.push(format!("{}{}", if may { '+' } else { '-' }, c.name));
                // A rule on a command covers its subcommands too.
                shown[usize::from(c.id)] = may;
                for s in &c.subcommands {
                    shown[usize::from(s.id)] = may;
                }
            }
            for s in &c.subcommands {
                let may = allowed[usize::from(s.id)];
                if shown[usize::from(s.id)] != may {
                    out.push(format!("{}{}", if may { '+' } else { '-' }, s.name));
                    shown[usize::from(s.id)] = may;
                }
            }
        }
        out.join(" ")
    }
}
