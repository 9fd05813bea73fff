//! Commands the proxy answers itself, matched exhaustively on `LocalCmd` (a command without a
//! handler does not compile). PING, ECHO, QUIT, SELECT, AUTH, READONLY/READWRITE and CLUSTER
//! KEYSLOT are here; HELLO, CLIENT, ACL, COMMAND, SLOWLOG, PUBSUB's counts and the one-node
//! CLUSTER view have a file each. A new one gets its name in `command::local_cmd`, its arm here and, if it is
//! more than a line, a file of its own.

mod acl;
mod clients;
pub mod cluster_view;
mod command_info;
mod hello;
mod pubsub;
pub mod slowlog;

use bytes::BytesMut;
use hive_common::resp::{parse_i64, write_bulk, write_simple, Request};

use crate::client::session::Session;
use crate::command::local_cmd::{LocalCmd, Plain};
use crate::config::ReadFrom;
use crate::error::{ClientReason, ProxyError};
use crate::state::registry::ClientEntry;
use crate::state::Shared;

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
    cmd: LocalCmd,
    req: &Request,
    session: &mut Session,
    ctx: &Ctx<'_>,
    out: &mut BytesMut,
) -> Result<After, ProxyError> {
    let resp3 = session.resp3();
    match cmd {
        LocalCmd::Plain(p) => return plain(p, req, session, ctx, out),
        LocalCmd::Client(sub) => clients::answer(sub, req, session, ctx.entry, ctx.shared, out)?,
        LocalCmd::Acl(sub) => acl::answer(sub, req, session, ctx, out)?,
        LocalCmd::Cluster(sub) => {
            cluster_view::answer(sub, req, &ctx.entry.local, ctx.shared, resp3, out)
        }
        LocalCmd::Command(sub) => command_info::answer(sub, req, resp3, out)?,
        LocalCmd::Slowlog(sub) => slowlog::answer(sub, req, ctx.shared, out)?,
        LocalCmd::Pubsub(sub) => pubsub::answer(sub, req, ctx.shared, out),
    }
    Ok(After::Continue)
}

/// The commands without subcommands.
fn plain(
    cmd: Plain,
    req: &Request,
    session: &mut Session,
    ctx: &Ctx<'_>,
    out: &mut BytesMut,
) -> Result<After, ProxyError> {
    let err = |m: &str| ProxyError::invalid(m);
    match cmd {
        Plain::Ping => match req.get(1) {
            None => write_simple(out, "PONG"),
            Some(msg) => write_bulk(out, msg),
        },
        Plain::Echo => write_bulk(out, req.arg(1)),
        Plain::Quit => {
            write_simple(out, "OK");
            return Ok(After::Close);
        }
        Plain::Select => {
            let db = parse_i64(req.arg(1))
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(|| err("value is not an integer or out of range"))?;
            if db != 0 {
                return Err(err("SELECT is not allowed in cluster mode"));
            }
            write_simple(out, "OK");
        }
        // Redis Cluster clients' read preference, per connection.
        Plain::ReadOnly => {
            session.read_from = match ctx.shared.live.load().backend.read_from {
                ReadFrom::Replica => ReadFrom::Replica,
                _ => ReadFrom::PreferReplica,
            };
            ctx.shared.plane.reads.want();
            write_simple(out, "OK");
        }
        Plain::ReadWrite => {
            session.read_from = ReadFrom::Master;
            write_simple(out, "OK");
        }
        Plain::Auth => {
            if req.argc() > 3 {
                return Err(err("syntax error"));
            }
            if req.argc() == 2 && ctx.shared.auth.users().default_user().nopass {
                return Err(err("AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
            }
            let (name, password) = match req.argc() {
                2 => (&b"default"[..], req.arg(1)),
                _ => (req.arg(1), req.arg(2)),
            };
            login(session, ctx, name, password)?;
            write_simple(out, "OK");
        }
        Plain::Hello => hello::answer(req, session, ctx, out)?,
    }
    Ok(After::Continue)
}

/// Authenticates the connection as `name`, or answers WRONGPASS and leaves it as it was.
fn login(
    session: &mut Session,
    ctx: &Ctx<'_>,
    name: &[u8],
    password: &[u8],
) -> Result<(), ProxyError> {
    let users = ctx.shared.auth.users();
    let Some(user) = users.authenticate(name, password) else {
        let username = String::from_utf8_lossy(name).into_owned();
        crate::metrics::Stats::add(&ctx.shared.stats.auth_failures, 1);
        let _in = ctx.entry.span.enter();
        tracing::warn!(client = session.id, user = %username, "authentication failed");
        ctx.shared.auth.record(crate::auth::log::Entry {
            reason: "auth",
            context: "toplevel",
            object: "AUTH".into(),
            username,
            client_info: ctx.entry.line(),
        });
        return Err(ProxyError::client(
            ClientReason::WrongPass,
            "invalid username-password pair or user is disabled.",
        ));
    };
    let name = user.name.clone();
    session.login(user, &users);
    ctx.entry.update(|c| c.user = name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::classify::{classify, Action};
    use hive_common::command::{CommandTable, KeyPositions};

    fn run(args: &[&str]) -> Result<(Vec<u8>, After), String> {
        let mut out = BytesMut::new();
        let shared = Shared::new(crate::config::Config::default()).unwrap();
        let mut s = Session::new(7, &shared.auth);
        let entry = crate::state::registry::ClientEntry::new(
            7,
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:6380".parse().unwrap(),
        );
        let ctx = Ctx {
            shared: &shared,
            entry: &entry,
        };
        let req = Request::from_args(args);
        let spec = classify(&req, &mut KeyPositions::new());
        let Action::Local(cmd) = spec else {
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
        // CLIENT TRACKING is the connection's (client::modes::tracking), not a local answer.
        let req = Request::from_args(&["client", "tracking", "on"]);
        assert!(matches!(
            classify(&req, &mut KeyPositions::new()),
            Action::Tracking
        ));
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
