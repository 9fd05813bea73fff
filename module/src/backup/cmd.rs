//! `HIVE.BACKUP` arguments: `START [DIR path] [TAG tag] [AOF] | STATUS [id] | LIST | PRUNE KEEP n
//! | RECORD TAG tag`, parsed into a command or Redis's error text. Pure: unit-tested without
//! Redis.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupCmd {
    Start {
        dir: Option<PathBuf>,
        tag: Option<String>,
        /// Capture the multi-part AOF directory too.
        aof: bool,
    },
    /// A backup by id, or the running or latest one.
    Status(Option<String>),
    List,
    Prune {
        keep: usize,
    },
    /// A backup of this node taken elsewhere (`hive backup --method network` streamed its
    /// RDB): recorded as done, so the node's newest backup (and the proxy's metric) counts it.
    Record {
        tag: String,
    },
}

/// Parses the words after `HIVE.BACKUP`; an error is the message after `ERR `, except arity,
/// which is `None` (the adapter answers Redis's own wrong-arity error).
pub fn parse(words: &[String]) -> Result<BackupCmd, Option<String>> {
    let Some(sub) = words.first() else {
        return Err(None);
    };
    let rest = &words[1..];
    match sub.to_ascii_uppercase().as_str() {
        "START" => {
            let (mut dir, mut tag, mut aof) = (None, None, false);
            let mut it = rest.iter();
            while let Some(o) = it.next() {
                match o.to_ascii_uppercase().as_str() {
                    "AOF" => aof = true,
                    "DIR" | "TAG" => {
                        let Some(v) = it.next() else {
                            return Err(Some("syntax error".into()));
                        };
                        if o.eq_ignore_ascii_case("DIR") {
                            dir = Some(PathBuf::from(v));
                        } else {
                            tag = Some(v.clone());
                        }
                    }
                    _ => return Err(Some("syntax error".into())),
                }
            }
            Ok(BackupCmd::Start { dir, tag, aof })
        }
        "STATUS" if rest.len() <= 1 => Ok(BackupCmd::Status(rest.first().cloned())),
        "LIST" if rest.is_empty() => Ok(BackupCmd::List),
        "PRUNE" if rest.len() == 2 && rest[0].eq_ignore_ascii_case("KEEP") => rest[1]
            .parse()
            .map(|keep| BackupCmd::Prune { keep })
            .map_err(|_| Some("value is not an integer or out of range".into())),
        "RECORD" if rest.len() == 2 && rest[0].eq_ignore_ascii_case("TAG") => {
            Ok(BackupCmd::Record {
                tag: rest[1].clone(),
            })
        }
        "RECORD" => Err(Some("syntax error".into())),
        "STATUS" | "LIST" | "PRUNE" => Err(Some(format!(
            "wrong number of arguments for 'hive.backup|{}' command",
            sub.to_ascii_lowercase()
        ))),
        _ => Err(Some(format!(
            "unknown subcommand '{sub}'. Try HIVE.BACKUP START|STATUS|LIST|PRUNE|RECORD."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<BackupCmd, Option<String>> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn backup_cmd_parses_every_form() {
        assert_eq!(
            p(&["start", "DIR", "/nas/x", "tag", "hourly"]),
            Ok(BackupCmd::Start {
                dir: Some(PathBuf::from("/nas/x")),
                tag: Some("hourly".into()),
                aof: false,
            })
        );
        assert_eq!(
            p(&["START"]),
            Ok(BackupCmd::Start {
                dir: None,
                tag: None,
                aof: false,
            })
        );
        assert_eq!(
            p(&["START", "aof", "TAG", "t"]),
            Ok(BackupCmd::Start {
                dir: None,
                tag: Some("t".into()),
                aof: true,
            })
        );
        assert_eq!(p(&["status"]), Ok(BackupCmd::Status(None)));
        assert_eq!(
            p(&["STATUS", "b1"]),
            Ok(BackupCmd::Status(Some("b1".into())))
        );
        assert_eq!(p(&["list"]), Ok(BackupCmd::List));
        assert_eq!(p(&["prune", "keep", "3"]), Ok(BackupCmd::Prune { keep: 3 }));
        assert_eq!(
            p(&["record", "tag", "20261206"]),
            Ok(BackupCmd::Record {
                tag: "20261206".into()
            })
        );
        assert_eq!(p(&["RECORD", "x"]), Err(Some("syntax error".into())));
    }

    #[test]
    fn backup_cmd_errors_read_like_redis() {
        assert_eq!(p(&[]), Err(None));
        assert_eq!(p(&["START", "DIR"]), Err(Some("syntax error".into())));
        assert_eq!(p(&["START", "NOPE", "x"]), Err(Some("syntax error".into())));
        assert_eq!(
            p(&["PRUNE", "KEEP", "-1"]),
            Err(Some("value is not an integer or out of range".into()))
        );
        assert_eq!(
            p(&["LIST", "x"]),
            Err(Some(
                "wrong number of arguments for 'hive.backup|list' command".into()
            ))
        );
        assert_eq!(
            p(&["frob"]),
            Err(Some(
                "unknown subcommand 'frob'. Try HIVE.BACKUP START|STATUS|LIST|PRUNE|RECORD.".into()
            ))
        );
    }
}
