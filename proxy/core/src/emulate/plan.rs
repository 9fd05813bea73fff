//! How a multi-key command whose keys hash to several slots is run across shards: which slot
//! it runs in, which keys are copied there first and which are copied back after. Pure: no
//! I/O, unit-tested.
//!
//! The command itself always runs on a Redis node, so its reply and its errors are Redis's
//! own: the keys of other slots are copied (DUMP/RESTORE) to scratch keys in the target slot,
//! the command runs with those names, and the keys it changed are copied back.

use hive_common::command::{access, CommandSpec};
use hive_common::resp::{Request, RequestBuilder};
use hive_common::Slot;
use smallvec::SmallVec;

/// One distinct key of the command that lives outside the target slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The key's name.
    pub key: Vec<u8>,
    pub slot: Slot,
    /// Argument indexes where it appears.
    pub args: SmallVec<[u32; 2]>,
    /// Its value is needed where the command runs.
    pub copy_in: bool,
    /// The command may change it: copied back to its owner after.
    pub write_back: bool,
}

/// Replies that mean the command changed nothing (no copy back is needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchanged {
    /// Only an error reply.
    Error,
    /// An error or `:0` (RENAMENX, COPY, MSETNX, SMOVE).
    Zero,
    /// An error or a null (LMOVE, RPOPLPUSH, LMPOP, ZMPOP).
    Null,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub req: Request,
    /// Where the command runs: its destination's slot, or its first key's.
    pub target: Slot,
    pub remotes: Vec<Remote>,
    /// Scratch copies keep their source's TTL (the command moves values whole, or copies
    /// them back); otherwise they expire after `SCRATCH_TTL_MS` in case the proxy dies midway.
    pub exact_ttl: bool,
    pub unchanged: Unchanged,
    /// SORT's BY and GET patterns that name other keys (argument indexes): each element's
    /// keys are copied beside the sorted key and the patterns renamed to match.
    pub patterns: SmallVec<[u32; 2]>,
}

/// Scratch keys that are only read expire after this, should the proxy never delete them.
pub const SCRATCH_TTL_MS: i64 = 60_000;

/// Commands run across slots, and what Redis's own command does with each key is read from
/// the command table's key specs (`access` bits). The names are the ones the README lists.
pub const EMULATED: &[&str] = &[
    "sunion",
    "sinter",
    "sintercard",
    "sdiff",
    "sunionstore",
    "sinterstore",
    "sdiffstore",
    "smove",
    "zunion",
    "zinter",
    "zintercard",
    "zdiff",
    "zunionstore",
    "zinterstore",
    "zdiffstore",
    "zrangestore",
    "pfcount",
    "pfmerge",
    "lcs",
    "bitop",
    "rename",
    "renamenx",
    "copy",
    "msetnx",
    "sort",
    "sort_ro",
    "georadius",
    "georadiusbymember",
    "geosearchstore",
];

/// The plan for `req` (already known to name keys of several slots), or `None` when the
/// command is not one Hive runs across slots.
pub fn plan(spec: &CommandSpec, req: &Request) -> Option<Plan> {
    let name = spec.name.as_str();
    if !EMULATED.contains(&name) {
        return None;
    }
    let mut keys: SmallVec<[(u32, u8); 8]> = SmallVec::new();
    spec.keys_with_access(req, &mut keys).ok()?;
    let first = *keys.first()?;
    // PFCOUNT is flagged as writing (it caches a cardinality in a single key); with several
    // keys it only reads.
    let writes = |a: u8| name != "pfcount" && a & access::WRITE != 0;
    let anchor = keys.iter().find(|(_, a)| writes(*a)).unwrap_or(&first).0;
    let target = Slot::for_key(req.arg(anchor as usize));
    let mut remotes: Vec<Remote> = Vec::new();
    for (n, &(i, a)) in keys.iter().enumerate() {
        let key = req.arg(i as usize);
        let slot = Slot::for_key(key);
        if slot == target {
            continue;
        }
        // RENAME's destination is overwritten whatever it held: no need to copy it in.
        let copy_in = !(name == "rename" && n == 1);
        match remotes.iter_mut().find(|r| r.key == key) {
            Some(r) => {
                r.args.push(i);
                r.copy_in |= copy_in;
                r.write_back |= writes(a);
            }
            None => remotes.push(Remote {
                key: key.to_vec(),
                slot,
                args: SmallVec::from_slice(&[i]),
                copy_in,
                write_back: writes(a),
            }),
        }
    }
    let unchanged = match name {
        "renamenx" | "copy" | "msetnx" | "smove" => Unchanged::Zero,
        "rpoplpush" | "lmove" | "lmpop" | "zmpop" => Unchanged::Null,
        _ => Unchanged::Error,
    };
    let exact_ttl = matches!(
        name,
        "rename"
            | "renamenx"
            | "copy"
            | "smove"
            | "rpoplpush"
            | "lmove"
            | "msetnx"
            | "lmpop"
            | "zmpop"
    );
    let patterns = match name {
        "sort" | "sort_ro" => sort_patterns(req),
        _ => SmallVec::new(),
    };
    Some(Plan {
        req: req.clone(),
        target,
        remotes,
        exact_ttl,
        unchanged,
        patterns,
    })
}

/// SORT's BY patterns with a `*` and GET patterns other than `#`: the arguments that make it
/// read keys its key specs do not name.
pub fn sort_patterns(req: &Request) -> SmallVec<[u32; 2]> {
    let mut out = SmallVec::new();
    let mut i = 2;
    while i < req.argc() {
        let a = req.arg(i);
        let next = req.get(i + 1);
        if a.eq_ignore_ascii_case(b"limit") {
            i += 3;
            continue;
        }
        if a.eq_ignore_ascii_case(b"store") {
            i += 2;
            continue;
        }
        match next {
            Some(p) if a.eq_ignore_ascii_case(b"by") && p.contains(&b'*') => out.push(i as u32 + 1),
            Some(p) if a.eq_ignore_ascii_case(b"get") && p != b"#" => out.push(i as u32 + 1),
            _ => {}
        }
        if a.eq_ignore_ascii_case(b"by") || a.eq_ignore_ascii_case(b"get") {
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

/// The key a SORT pattern names for `element` (Redis's `lookupKeyByPattern`): the first `*`
/// replaced by the element, without a `->field` suffix. `None` when it names no key.
pub fn pattern_key(pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return None;
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let rest = &pattern[star + 1..];
    let suffix = match memchr::memmem::find(rest, b"->") {
        Some(f) if f + 2 < rest.len() => &rest[..f],
        _ => rest,
    };
    let mut k = Vec::with_capacity(pattern.len() + element.len());
    k.extend_from_slice(&pattern[..star]);
    k.extend_from_slice(element);
    k.extend_from_slice(suffix);
    Some(k)
}

impl Plan {
    /// The command with each remote key replaced by its scratch name (`scratch[i]` for
    /// `remotes[i]`) and each SORT pattern prefixed with `prefix`.
    pub fn rewritten(&self, scratch: &[Vec<u8>], prefix: &[u8]) -> Request {
        let argc = self.req.argc();
        let mut b = RequestBuilder::new(argc);
        for i in 0..argc {
            let at = self
                .remotes
                .iter()
                .position(|r| r.args.contains(&(i as u32)));
            match at {
                Some(r) => b.arg(&scratch[r]),
                None if self.patterns.contains(&(i as u32)) => {
                    b.arg(&[prefix, self.req.arg(i)].concat())
                }
                None => b.arg(self.req.arg(i)),
            };
        }
        b.finish()
    }

    /// Whether `reply` (the command's, from the target) means nothing needs copying back.
    pub fn nothing_changed(&self, reply: &[u8]) -> bool {
        let null = matches!(reply, b"$-1\r\n" | b"*-1\r\n" | b"_\r\n");
        reply.first() == Some(&b'-')
            || match self.unchanged {
                Unchanged::Error => false,
                Unchanged::Zero => reply == b":0\r\n",
                Unchanged::Null => null,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_common::command::CommandTable;

    fn plan_of(args: &[&str]) -> Option<Plan> {
        let req = Request::from_args(args);
        let spec = CommandTable::get().lookup(req.arg(0)).unwrap();
        plan(spec, &req)
    }

    #[test]
    fn plan_runs_store_commands_at_the_destination() {
        let p = plan_of(&["sunionstore", "d", "a", "b", "d"]).unwrap();
        assert_eq!(p.target, Slot::for_key(b"d"));
        let keys: Vec<&[u8]> = p.remotes.iter().map(|r| &r.key[..]).collect();
        assert_eq!(keys, [&b"a"[..], b"b"]);
        assert!(p.remotes.iter().all(|r| r.copy_in && !r.write_back));
        assert!(!p.exact_ttl);
    }

    #[test]
    fn plan_copies_back_what_the_command_changes() {
        let p = plan_of(&["smove", "a", "b", "m"]).unwrap();
        assert_eq!(p.target, Slot::for_key(b"a"));
        assert_eq!(p.remotes.len(), 1);
        assert!(p.remotes[0].copy_in && p.remotes[0].write_back);
        assert!(p.exact_ttl);
        assert!(p.nothing_changed(b":0\r\n"));
        assert!(!p.nothing_changed(b":1\r\n"));

        let p = plan_of(&["rename", "a", "b"]).unwrap();
        assert!(!p.remotes[0].copy_in && p.remotes[0].write_back);

        let p = plan_of(&["pfcount", "a", "b", "c"]).unwrap();
        assert_eq!(p.target, Slot::for_key(b"a"));
        assert!(p.remotes.iter().all(|r| !r.write_back));

        let p = plan_of(&["sort", "a", "STORE", "b"]).unwrap();
        assert_eq!(p.target, Slot::for_key(b"b"));
        assert_eq!(p.remotes[0].key, b"a");
    }

    #[test]
    fn plan_rewrites_every_occurrence() {
        let p = plan_of(&["sunion", "a", "b", "b"]).unwrap();
        assert_eq!(p.remotes.len(), 1);
        let r = p.rewritten(&[b"t".to_vec()], b"");
        let args: Vec<&[u8]> = r.args().collect();
        assert_eq!(args, [&b"sunion"[..], b"a", b"t", b"t"]);
    }

    #[test]
    fn plan_finds_sort_patterns_and_their_keys() {
        let p = plan_of(&[
            "sort", "l", "LIMIT", "0", "5", "BY", "w_*", "GET", "#", "GET", "h_*->f", "BY",
            "nosort",
        ])
        .unwrap();
        assert_eq!(&p.patterns[..], &[6, 10]);
        let r = p.rewritten(&[], b"P:");
        let args: Vec<&[u8]> = r.args().collect();
        assert_eq!(args[6], b"P:w_*");
        assert_eq!(args[8], b"#");
        assert_eq!(args[10], b"P:h_*->f");
        assert_eq!(pattern_key(b"w_*", b"3").unwrap(), b"w_3");
        assert_eq!(pattern_key(b"h_*_x->f", b"3").unwrap(), b"h_3_x");
        assert_eq!(pattern_key(b"h_*->", b"3").unwrap(), b"h_3->");
        assert!(pattern_key(b"const", b"3").is_none());
        assert!(pattern_key(b"#", b"3").is_none());
    }

    #[test]
    fn plan_leaves_other_commands_alone() {
        assert!(plan_of(&["eval", "return 1", "2", "a", "b"]).is_none());
        assert!(plan_of(&["blpop", "a", "b", "0"]).is_none());
    }
}
