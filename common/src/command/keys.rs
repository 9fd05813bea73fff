//! Key extraction from a request by the command's key specs (Redis's `getKeysUsingKeySpecs`).

use smallvec::SmallVec;
use thiserror::Error;

use super::{access, BeginSearch, CommandSpec, FindKeys};
use crate::resp::{parse_i64, Request};

/// Argument indexes of the keys in a request.
pub type KeyPositions = SmallVec<[u32; 8]>;

/// Why the keys of a request could not be found. Redis itself answers such requests with the
/// command's own error, so the caller may send them to any node to get the exact reply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("the number of keys is not a valid count")]
    BadKeyCount,
    #[error("the key specification points past the last argument")]
    OutOfRange,
}

impl CommandSpec {
    /// Appends the argument indexes of `req`'s keys to `out`, in argument order per spec.
    /// `req` must already satisfy the arity.
    pub fn keys(&self, req: &Request, out: &mut KeyPositions) -> Result<(), KeyError> {
        self.walk_keys(req, |i, _| out.push(i))
    }

    /// The keys with what they are used for (`access::READ`/`WRITE` bits), for ACL key
    /// permissions.
    pub fn keys_with_access(
        &self,
        req: &Request,
        out: &mut SmallVec<[(u32, u8); 8]>,
    ) -> Result<(), KeyError> {
        // `variable_flags` specs: what Redis's getkeys procs report for this very request.
        let has = |words: &[&[u8]]| {
            req.args()
                .skip(2)
                .any(|a| words.iter().any(|w| a.eq_ignore_ascii_case(w)))
        };
        let fixed = match self.name.as_str() {
            "set" if has(&[b"get"]) => Some(access::READ | access::WRITE),
            "set" => Some(access::WRITE),
            "bitfield" if has(&[b"set", b"incrby"]) => Some(access::READ | access::WRITE),
            "bitfield" => Some(access::READ),
            _ => None,
        };
        self.walk_keys(req, |i, a| out.push((i, fixed.unwrap_or(a))))
    }

    fn walk_keys(&self, req: &Request, mut emit: impl FnMut(u32, u8)) -> Result<(), KeyError> {
        if self.one_key > 0 {
            // What the walk below does for a single `index` + `range 0` spec.
            let spec = &self.key_specs[0];
            if (self.one_key as usize) < req.argc() {
                emit(self.one_key, spec.access);
            } else if !spec.incomplete {
                return Err(KeyError::OutOfRange);
            }
            return Ok(());
        }
        self.walk_specs(req, emit)
    }

    fn walk_specs(&self, req: &Request, mut emit: impl FnMut(u32, u8)) -> Result<(), KeyError> {
        let argc = req.argc() as i64;
        // `MIGRATE host port "" db timeout ... KEYS k1 k2`: the empty key is a placeholder.
        let placeholder = self.name == "migrate" && req.argc() > 3 && req.arg(3).is_empty();
        for spec in &self.key_specs {
            let incomplete = spec.incomplete;
            let first = match &spec.begin_search {
                BeginSearch::Index { pos } => *pos,
                BeginSearch::Keyword { keyword, startfrom } => {
                    match find_keyword(req, keyword, *startfrom) {
                        Some(i) => i + 1,
                        None => continue,
                    }
                }
                BeginSearch::Unknown => continue,
            };
            let (first, last, step) = match &spec.find_keys {
                FindKeys::Range {
                    lastkey,
                    keystep,
                    limit,
                } => {
                    let last = if *lastkey >= 0 {
                        first + lastkey
                    } else if *limit <= 1 {
                        argc + lastkey
                    } else {
                        first + ((argc - first) / limit + lastkey)
                    };
                    (first, last, *keystep)
                }
                FindKeys::Keynum {
                    keynumidx,
                    firstkey,
                    keystep,
                } => {
                    let idx = first + keynumidx;
                    if idx >= argc {
                        return Err(KeyError::OutOfRange);
                    }
                    let n = parse_i64(req.arg(idx as usize))
                        .filter(|n| *n >= 0)
                        .ok_or(KeyError::BadKeyCount)?;
                    let start = first + firstkey;
                    // `n` is the client's number: checked, so a huge count is an error
                    // (the node answers it), never an overflow.
                    let last = n
                        .checked_sub(1)
                        .and_then(|m| m.checked_mul(*keystep))
                        .and_then(|span| span.checked_add(start))
                        .ok_or(KeyError::OutOfRange)?;
                    (start, last, *keystep)
                }
                FindKeys::Unknown => continue,
            };
            if step <= 0 {
                continue;
            }
            let mut i = first;
            while i <= last {
                if i >= argc || i < 1 {
                    if incomplete {
                        break;
                    }
                    return Err(KeyError::OutOfRange);
                }
                if !(placeholder && i == 3) {
                    emit(i as u32, spec.access);
                }
                i += step;
            }
        }
        self.special_keys(req, emit);
        Ok(())
    }

    /// Commands whose key specs are `unknown`, as Redis's getkeys procs find their keys.
    fn special_keys(&self, req: &Request, mut emit: impl FnMut(u32, u8)) {
        if self.name == "sort" {
            // `SORT key ... STORE dest`: STORE may appear anywhere after the key.
            let mut i = 2;
            while i < req.argc() {
                let a = req.arg(i);
                let skip = if a.eq_ignore_ascii_case(b"limit") {
                    2
                } else if a.eq_ignore_ascii_case(b"by") || a.eq_ignore_ascii_case(b"get") {
                    1
                } else if a.eq_ignore_ascii_case(b"store") && i + 1 < req.argc() {
                    emit((i + 1) as u32, access::WRITE);
                    1
                } else {
                    0
                };
                i += 1 + skip;
            }
        }
    }
}

fn find_keyword(req: &Request, keyword: &str, startfrom: i64) -> Option<i64> {
    let argc = req.argc() as i64;
    let matches = |i: i64| req.arg(i as usize).eq_ignore_ascii_case(keyword.as_bytes());
    if startfrom >= 0 {
        (startfrom..argc).find(|&i| matches(i))
    } else {
        let start = argc + startfrom;
        (1..=start).rev().find(|&i| i < argc && matches(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandTable;

    fn keys_of(args: &[&str]) -> Result<Vec<String>, KeyError> {
        let req = Request::from_args(args);
        let spec = CommandTable::get().lookup(args[0].as_bytes()).unwrap();
        let spec = if spec.subcommands.is_empty() {
            spec
        } else {
            spec.subcommand(args[1].as_bytes()).unwrap()
        };
        let mut out = KeyPositions::new();
        spec.keys(&req, &mut out)?;
        Ok(out.iter().map(|&i| args[i as usize].to_string()).collect())
    }

    #[test]
    fn keys_one_key_shortcut_matches_the_spec_walk() {
        let mut shortcut = 0;
        for spec in CommandTable::get().all() {
            if spec.one_key == 0 {
                continue;
            }
            shortcut += 1;
            for argc in 1..6 {
                let args: Vec<String> = (0..argc).map(|i| format!("a{i}")).collect();
                let req = Request::from_args(&args);
                let (mut fast, mut walked) = (Vec::new(), Vec::new());
                let a = spec.walk_keys(&req, |i, acc| fast.push((i, acc)));
                let b = spec.walk_specs(&req, |i, acc| walked.push((i, acc)));
                assert_eq!(
                    (a, fast),
                    (b, walked),
                    "{} with {argc} arguments",
                    spec.name
                );
            }
        }
        // GET, SET, HSET, INCR, EXPIRE, ... take it; MGET, EVAL, SORT do not.
        assert!(shortcut > 100, "only {shortcut} commands take the shortcut");
        let t = CommandTable::get();
        assert!(t.lookup(b"get").unwrap().one_key == 1);
        for name in [
            &b"mget"[..],
            b"eval",
            b"sort",
            b"migrate",
            b"ping",
            b"rename",
        ] {
            assert_eq!(t.lookup(name).unwrap().one_key, 0, "{name:?}");
        }
    }

    #[test]
    fn keys_simple_and_ranges() {
        assert_eq!(keys_of(&["get", "a"]).unwrap(), ["a"]);
        assert_eq!(keys_of(&["mget", "a", "b", "c"]).unwrap(), ["a", "b", "c"]);
        assert_eq!(keys_of(&["mset", "a", "1", "b", "2"]).unwrap(), ["a", "b"]);
        assert_eq!(keys_of(&["rename", "a", "b"]).unwrap(), ["a", "b"]);
        assert!(keys_of(&["ping"]).unwrap().is_empty());
    }

    #[test]
    fn keys_numkeys_commands() {
        assert_eq!(
            keys_of(&["eval", "s", "2", "a", "b", "x"]).unwrap(),
            ["a", "b"]
        );
        assert!(keys_of(&["eval", "s", "0"]).unwrap().is_empty());
        assert_eq!(keys_of(&["fcall", "f", "1", "k", "arg"]).unwrap(), ["k"]);
        assert_eq!(
            keys_of(&["zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"]).unwrap(),
            ["d", "a", "b"]
        );
        assert_eq!(
            keys_of(&["eval", "s", "x"]).unwrap_err(),
            KeyError::BadKeyCount
        );
        assert_eq!(
            keys_of(&["eval", "s", "-1"]).unwrap_err(),
            KeyError::BadKeyCount
        );
        assert_eq!(
            keys_of(&["eval", "s", "3", "a"]).unwrap_err(),
            KeyError::OutOfRange
        );
        // A client's count near i64::MAX is refused, not overflowed into a wrong key range.
        assert_eq!(
            keys_of(&["eval", "s", "9223372036854775807", "a"]).unwrap_err(),
            KeyError::OutOfRange
        );
    }

    #[test]
    fn keys_keyword_commands() {
        assert_eq!(
            keys_of(&["xread", "COUNT", "2", "streams", "s1", "s2", "0", "0"]).unwrap(),
            ["s1", "s2"]
        );
        assert_eq!(
            keys_of(&["xreadgroup", "GROUP", "g", "c", "STREAMS", "s1", ">"]).unwrap(),
            ["s1"]
        );
        assert_eq!(
            keys_of(&["georadius", "g", "0", "0", "1", "km", "STORE", "d"]).unwrap(),
            ["g", "d"]
        );
    }

    #[test]
    fn keys_special_commands() {
        assert_eq!(
            keys_of(&["sort", "l", "LIMIT", "0", "1", "STORE", "d"]).unwrap(),
            ["l", "d"]
        );
        assert_eq!(
            keys_of(&["sort", "l", "BY", "store", "ALPHA"]).unwrap(),
            ["l"]
        );
        assert_eq!(
            keys_of(&["migrate", "h", "1", "", "0", "5", "KEYS", "a", "b"]).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            keys_of(&["migrate", "h", "1", "k", "0", "5"]).unwrap(),
            ["k"]
        );
    }
}
