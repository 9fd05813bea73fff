//! A user written back as rules (ACL LIST, ACL SAVE) and as ACL GETUSER's fields.

use hive_common::command::{access, CommandTable};

use super::User;

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

    /// ACL GETUSER's `flags`.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.all_keys {
            f.push("allkeys");
        }
        if self.all_channels {
            f.push("allchannels");
        }
        if CommandTable::get().all().all(|c| self.may_run(c)) {
            f.push("allcommands");
        }
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

    /// `+@all`, or `-@all` and each command (or subcommand) allowed.
    pub fn commands_rule(&self) -> String {
        let table = CommandTable::get();
        if table.all().all(|c| self.may_run(c)) {
            return "+@all".into();
        }
        let mut out = vec!["-@all".to_string()];
        for c in table.iter() {
            let subs_allowed = c.subcommands.iter().filter(|s| self.may_run(s)).count();
            if self.may_run(c) && subs_allowed == c.subcommands.len() {
                out.push(format!("+{}", c.name));
            } else {
                out.extend(
                    c.subcommands
                        .iter()
                        .filter(|s| self.may_run(s))
                        .map(|s| format!("+{}", s.name)),
                );
            }
        }
        out.join(" ")
    }
}
