//! COMMAND, COMMAND COUNT/LIST/INFO/GETKEYS, answered from the checked-in command table in
//! Redis 7's reply layout.

use bytes::BytesMut;
use hive_common::command::{BeginSearch, CommandSpec, CommandTable, FindKeys, KeyPositions};
use hive_common::resp::{
    write_array_header, write_bulk, write_integer, write_null_of, write_simple, Request,
};

use crate::command::local_cmd::CommandSub;
use crate::error::ProxyError;

/// Answers `command` and its subcommands.
pub(super) fn answer(
    cmd: CommandSub,
    req: &Request,
    resp3: bool,
    out: &mut BytesMut,
) -> Result<(), ProxyError> {
    match cmd {
        CommandSub::Bare => {
            let t = CommandTable::get();
            write_array_header(out, t.len());
            t.iter().for_each(|c| write_command(out, c));
        }
        CommandSub::Count => write_integer(out, CommandTable::get().len() as i64),
        CommandSub::List => command_list(req, out)?,
        CommandSub::Info => {
            let t = CommandTable::get();
            let names: Vec<&[u8]> = req.args().skip(2).collect();
            if names.is_empty() {
                write_array_header(out, t.len());
                t.iter().for_each(|c| write_command(out, c));
            } else {
                write_array_header(out, names.len());
                for n in names {
                    match lookup_full(t, n) {
                        Some(c) => write_command(out, c),
                        None if resp3 => write_null_of(out, true),
                        None => out.extend_from_slice(b"*-1\r\n"),
                    }
                }
            }
        }
        CommandSub::GetKeys => command_getkeys(req, out)?,
    }
    Ok(())
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: every command
/// and subcommand Redis has (those Hive refuses included; COMMAND INFO's flags and the docs
/// say which), in the command table's order.
fn command_list(req: &Request, out: &mut BytesMut) -> Result<(), ProxyError> {
    let t = CommandTable::get();
    let syntax = || ProxyError::invalid("syntax error");
    let keep: Box<dyn Fn(&CommandSpec) -> bool> = match req.argc() {
        2 => Box::new(|_| true),
        5 if req.arg(2).eq_ignore_ascii_case(b"filterby") => {
            let (what, value) = (req.arg(3), req.arg(4).to_ascii_lowercase());
            if what.eq_ignore_ascii_case(b"module") {
                Box::new(|_| false)
            } else if what.eq_ignore_ascii_case(b"aclcat") {
                let cat = String::from_utf8_lossy(&value).into_owned();
                Box::new(move |c| c.in_category(&cat))
            } else if what.eq_ignore_ascii_case(b"pattern") {
                Box::new(move |c| hive_common::glob::glob_match(&value, c.name.as_bytes()))
            } else {
                return Err(syntax());
            }
        }
        _ => return Err(syntax()),
    };
    let names: Vec<&[u8]> = t
        .all()
        .filter(|c| keep(c))
        .map(|c| c.name.as_bytes())
        .collect();
    write_array_header(out, names.len());
    names.into_iter().for_each(|n| write_bulk(out, n));
    Ok(())
}

fn lookup_full<'t>(t: &'t CommandTable, name: &[u8]) -> Option<&'t CommandSpec> {
    let s = std::str::from_utf8(name).ok()?;
    match s.split_once('|') {
        Some((p, sub)) => t.lookup(p.as_bytes())?.subcommand(sub.as_bytes()),
        None => t.lookup(name),
    }
}

fn command_getkeys(req: &Request, out: &mut BytesMut) -> Result<(), ProxyError> {
    let inner = Request::from_args(&req.args().skip(2).collect::<Vec<_>>());
    let t = CommandTable::get();
    let mut spec = t
        .lookup(inner.arg(0))
        .ok_or_else(|| ProxyError::invalid("Invalid command specified"))?;
    if !spec.subcommands.is_empty() {
        spec = inner
            .get(1)
            .and_then(|s| spec.subcommand(s))
            .ok_or_else(|| ProxyError::invalid("Invalid command specified"))?;
    }
    if !spec.arity_ok(inner.argc()) {
        return Err(ProxyError::invalid(
            "Invalid number of arguments specified for command",
        ));
    }
    let mut keys = KeyPositions::new();
    if spec.keys(&inner, &mut keys).is_err() {
        return Err(ProxyError::invalid(
            "Invalid arguments specified for command",
        ));
    }
    if keys.is_empty() {
        // EVAL, FCALL and the like may name no key at all: an empty list, as in Redis.
        if spec.flags.iter().any(|f| f == "no_mandatory_keys") {
            write_array_header(out, 0);
            return Ok(());
        }
        return Err(ProxyError::invalid("The command has no key arguments"));
    }
    write_array_header(out, keys.len());
    for k in keys {
        write_bulk(out, inner.arg(k as usize));
    }
    Ok(())
}

/// One `COMMAND INFO` entry in Redis 7's RESP2 layout.
fn write_command(out: &mut BytesMut, c: &CommandSpec) {
    write_array_header(out, 10);
    write_bulk(out, c.name.as_bytes());
    write_integer(out, c.arity);
    write_simples(out, &c.flags);
    write_integer(out, c.first_key);
    write_integer(out, c.last_key);
    write_integer(out, c.step);
    write_simples(out, &c.acl_categories);
    write_simples(out, &c.tips);
    write_array_header(out, c.key_specs.len());
    for ks in &c.key_specs {
        write_array_header(out, 6);
        write_bulk(out, b"flags");
        write_simples(out, &ks.flags);
        write_bulk(out, b"begin_search");
        let (ty, fields): (&str, Vec<(&str, Field)>) = match &ks.begin_search {
            BeginSearch::Index { pos } => ("index", vec![("index", Field::Int(*pos))]),
            BeginSearch::Keyword { keyword, startfrom } => (
                "keyword",
                vec![
                    ("keyword", Field::Str(keyword)),
                    ("startfrom", Field::Int(*startfrom)),
                ],
            ),
            BeginSearch::Unknown => ("unknown", vec![]),
        };
        write_typed(out, ty, &fields);
        write_bulk(out, b"find_keys");
        let (ty, fields): (&str, Vec<(&str, Field)>) = match &ks.find_keys {
            FindKeys::Range {
                lastkey,
                keystep,
                limit,
            } => (
                "range",
                vec![
                    ("lastkey", Field::Int(*lastkey)),
                    ("keystep", Field::Int(*keystep)),
                    ("limit", Field::Int(*limit)),
                ],
            ),
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => (
                "keynum",
                vec![
                    ("keynumidx", Field::Int(*keynumidx)),
                    ("firstkey", Field::Int(*firstkey)),
                    ("keystep", Field::Int(*keystep)),
                ],
            ),
            FindKeys::Unknown => ("unknown", vec![]),
        };
        write_typed(out, ty, &fields);
    }
    write_array_header(out, c.subcommands.len());
    c.subcommands.iter().for_each(|s| write_command(out, s));
}

enum Field<'a> {
    Int(i64),
    Str(&'a str),
}

fn write_typed(out: &mut BytesMut, ty: &str, fields: &[(&str, Field)]) {
    write_array_header(out, 4);
    write_bulk(out, b"type");
    write_bulk(out, ty.as_bytes());
    write_bulk(out, b"spec");
    write_array_header(out, fields.len() * 2);
    for (k, v) in fields {
        write_bulk(out, k.as_bytes());
        match v {
            Field::Int(n) => write_integer(out, *n),
            Field::Str(s) => write_bulk(out, s.as_bytes()),
        }
    }
}

fn write_simples(out: &mut BytesMut, items: &[String]) {
    write_array_header(out, items.len());
    items.iter().for_each(|s| write_simple(out, s));
}
