//! Commands the proxy answers itself: PING, ECHO, QUIT, SELECT, AUTH, CLUSTER KEYSLOT, COMMAND
//! (from the table), the `# Proxy` section of INFO, and (through `session` and `cluster_view`)
//! HELLO, CLIENT and the one-node CLUSTER view.

use bytes::BytesMut;
use hive_common::command::{BeginSearch, CommandSpec, CommandTable, FindKeys, KeyPositions};
use hive_common::resp::{
    parse_i64, write_array_header, write_bulk, write_integer, write_null_of, write_simple, Request,
};
use hive_common::Slot;

use crate::clients::ClientEntry;
use crate::cluster_view;
use crate::error::ProxyError;
use crate::session::{self, Session};
use crate::shared::Shared;
use crate::stats::Stats;

/// Whether the connection closes after this reply (QUIT).
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
}

/// What a local command may read besides the request.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub entry: &'a ClientEntry,
}

pub fn answer(
    cmd: &'static str,
    req: &Request,
    session: &mut Session,
    ctx: &Ctx<'_>,
    out: &mut BytesMut,
) -> Result<After, ProxyError> {
    let err = |m: &str| ProxyError::client("ERR", m);
    let resp3 = session.resp3();
    if cmd.starts_with("client|") {
        session::client(cmd, req, session, ctx.entry, ctx.shared, out)?;
        return Ok(After::Continue);
    }
    match cmd {
        "ping" => match req.get(1) {
            None => write_simple(out, "PONG"),
            Some(msg) => write_bulk(out, msg),
        },
        "echo" => write_bulk(out, req.arg(1)),
        "quit" => {
            write_simple(out, "OK");
            return Ok(After::Close);
        }
        "select" => {
            let db = parse_i64(req.arg(1))
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(|| err("value is not an integer or out of range"))?;
            if db != 0 {
                return Err(err("SELECT is not allowed in cluster mode"));
            }
            write_simple(out, "OK");
        }
        "readonly" | "readwrite" => write_simple(out, "OK"),
        "auth" => {
            // No proxy password is configured: answer as a Redis without requirepass does.
            if req.argc() == 2 {
                return Err(err("AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
            }
            write_simple(out, "OK");
        }
        "hello" => session::hello(req, session, ctx.entry, out)?,
        "cluster|slots" | "cluster|shards" | "cluster|nodes" | "cluster|info" | "cluster|myid" => {
            cluster_view::answer(cmd, &ctx.entry.local, ctx.shared, resp3, out)
        }
        "cluster|keyslot" => write_integer(out, i64::from(Slot::for_key(req.arg(2)).get())),
        "command" => {
            let t = CommandTable::get();
            write_array_header(out, t.len());
            t.iter().for_each(|c| write_command(out, c));
        }
        "command|count" => write_integer(out, CommandTable::get().len() as i64),
        "command|list" => {
            let t = CommandTable::get();
            write_array_header(out, t.len());
            t.iter().for_each(|c| write_bulk(out, c.name.as_bytes()));
        }
        "command|info" => {
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
        "command|getkeys" => command_getkeys(req, out)?,
        other => {
            return Err(ProxyError::internal(format!(
                "no local handler for '{other}'"
            )))
        }
    }
    Ok(After::Continue)
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
        .ok_or_else(|| ProxyError::client("ERR", "Invalid command specified"))?;
    if !spec.subcommands.is_empty() {
        spec = inner
            .get(1)
            .and_then(|s| spec.subcommand(s))
            .ok_or_else(|| ProxyError::client("ERR", "Invalid command specified"))?;
    }
    if !spec.arity_ok(inner.argc()) {
        return Err(ProxyError::client(
            "ERR",
            "Invalid number of arguments specified for command",
        ));
    }
    let mut keys = KeyPositions::new();
    if spec.keys(&inner, &mut keys).is_err() {
        return Err(ProxyError::client(
            "ERR",
            "Invalid arguments specified for command",
        ));
    }
    if keys.is_empty() {
        return Err(ProxyError::client(
            "ERR",
            "The command has no key arguments",
        ));
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

/// The `# Proxy` INFO section.
pub fn proxy_info(shared: &Shared) -> String {
    let s = &shared.stats;
    let topo = shared.topology.load();
    let mut out = format!(
        "# Proxy\r\nhive_version:{}\r\nbackend_mode:{}\r\nuptime_in_seconds:{}\r\n\
connected_clients:{}\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\
total_commands_processed:{}\r\nerror_replies:{}\r\nmoved_redirects:{}\r\nask_redirects:{}\r\n\
retries:{}\r\nbackend_failures:{}\r\ntopology_refreshes:{}\r\nsentinel_events:{}\r\n\
masters:{}\r\nunassigned_slots:{}\r\nmaster_nodes:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        shared.config.backend.mode.as_str(),
        s.started.elapsed().as_secs(),
        Stats::get(&s.connected_clients),
        Stats::get(&s.connections_received),
        Stats::get(&s.rejected_connections),
        Stats::get(&s.commands_processed),
        Stats::get(&s.error_replies),
        Stats::get(&s.moved),
        Stats::get(&s.ask),
        Stats::get(&s.retries),
        Stats::get(&s.backend_failures),
        Stats::get(&s.topology_refreshes),
        Stats::get(&s.sentinel_events),
        (0..topo.map.shards().len())
            .filter(|&i| topo.has_master(i))
            .count(),
        topo.map.unassigned(),
        topo.map
            .shards()
            .iter()
            .map(|s| s.master.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    if !shared.config.backend.sentinels.is_empty() {
        out.push_str(&format!(
            "sentinels:{}\r\n",
            shared.config.backend.sentinels.join(",")
        ));
    }
    for (i, (shard, ranges)) in topo.map.shards().iter().zip(topo.map.ranges()).enumerate() {
        let slots: Vec<String> = ranges
            .iter()
            .map(|r| {
                if r.start == r.end {
                    r.start.to_string()
                } else {
                    format!("{}-{}", r.start, r.end)
                }
            })
            .collect();
        let status = if topo.has_master(i) {
            "ok"
        } else {
            "no_master"
        };
        out.push_str(&format!(
            "shard{i}:name={},master={},replicas={},slots={},status={status}\r\n",
            topo.shard_name(i),
            shard.master,
            shard.replicas.join("|"),
            slots.join("|"),
        ));
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<(Vec<u8>, After), String> {
        let mut out = BytesMut::new();
        let mut s = Session {
            id: 7,
            ..Session::default()
        };
        let shared = Shared::new(crate::config::Config::default());
        let entry = crate::clients::ClientEntry::new(
            7,
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:6380".parse().unwrap(),
        );
        let ctx = Ctx {
            shared: &shared,
            entry: &entry,
        };
        let req = Request::from_args(args);
        let spec = crate::dispatch::classify(&req, &mut KeyPositions::new());
        let crate::dispatch::Action::Local(cmd) = spec else {
            return Err(format!("not local: {spec:?}"));
        };
        answer(cmd, &req, &mut s, &ctx, &mut out)
            .map(|a| (out.to_vec(), a))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn local_replies_match_redis() {
        assert_eq!(run(&["ping"]).unwrap().0, b"+PONG\r\n");
        assert_eq!(run(&["ping", "hi"]).unwrap().0, b"$2\r\nhi\r\n");
        assert_eq!(run(&["quit"]).unwrap(), (b"+OK\r\n".to_vec(), After::Close));
        assert_eq!(run(&["select", "0"]).unwrap().0, b"+OK\r\n");
        assert_eq!(
            run(&["select", "1"]).unwrap_err(),
            "ERR SELECT is not allowed in cluster mode"
        );
        assert_eq!(
            run(&["select", "x"]).unwrap_err(),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            run(&["cluster", "keyslot", "foo"]).unwrap().0,
            b":12182\r\n"
        );
        assert_eq!(
            run(&["command", "count"]).unwrap().0,
            format!(":{}\r\n", CommandTable::get().len()).into_bytes()
        );
        assert_eq!(
            run(&["command", "getkeys", "mset", "a", "1", "b", "2"])
                .unwrap()
                .0,
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert!(run(&["hello", "4"]).unwrap_err().starts_with("NOPROTO"));
        assert!(run(&["hello", "3"])
            .unwrap()
            .0
            .starts_with(b"%7\r\n$6\r\nserver"));
        assert!(run(&["hello", "2"]).unwrap().0.starts_with(b"*14\r\n"));
        assert_eq!(
            run(&["client", "setinfo", "lib-name", "redis-py"])
                .unwrap()
                .0,
            b"+OK\r\n"
        );
        assert_eq!(
            run(&["client", "setinfo", "foo", "x"]).unwrap_err(),
            "ERR Unrecognized option 'foo'"
        );
        assert!(run(&["client", "tracking", "on"]).is_err());
        assert_eq!(
            run(&["client", "setname", "a b"]).unwrap_err(),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
    }

    #[test]
    fn command_info_is_valid_resp() {
        let (out, _) = run(&["command", "info", "get", "config|get", "nope"]).unwrap();
        let (v, used) = hive_common::resp::parse_value(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].as_array().unwrap()[0].as_str(), Some("get"));
        assert_eq!(a[1].as_array().unwrap()[1].as_int(), Some(-3));
        assert_eq!(a[2], hive_common::resp::Value::Nil);
    }
}
