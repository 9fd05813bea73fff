//! The CLIENT subcommands answered for the proxy's own clients: SETNAME, GETNAME, ID, INFO,
//! LIST, KILL, SETINFO, NO-EVICT, GETREDIR.

use bytes::BytesMut;
use hive_common::resp::{
    parse_i64, write_bulk, write_integer, write_null_of, write_simple, write_verbatim, Request,
};

use super::hello::valid_name;
use crate::client::session::Session;
use crate::command::local_cmd::ClientSub;
use crate::error::ProxyError;
use crate::state::registry::ClientEntry;
use crate::state::Shared;
use hive_upstream::stop::Stop;

fn err(m: impl Into<String>) -> ProxyError {
    ProxyError::invalid(m)
}

/// The CLIENT subcommands answered by the proxy.
pub fn answer(
    sub: ClientSub,
    req: &Request,
    session: &mut Session,
    entry: &ClientEntry,
    shared: &Shared,
    out: &mut BytesMut,
) -> Result<(), ProxyError> {
    let resp3 = session.resp3();
    match sub {
        ClientSub::SetName => {
            let n = valid_name(req.arg(2), "Client names")?;
            session.name = n.clone();
            entry.update(|c| c.name = n);
            write_simple(out, "OK");
        }
        ClientSub::GetName => match &session.name {
            Some(n) => write_bulk(out, n),
            None => write_null_of(out, resp3),
        },
        ClientSub::Id => write_integer(out, session.id as i64),
        ClientSub::GetRedir => write_integer(
            out,
            session
                .tracking
                .as_deref()
                .map_or(-1, |t| t.redirect.map_or(0, |r| r as i64)),
        ),
        ClientSub::NoEvict => {
            let v = req.arg(2);
            if !(v.eq_ignore_ascii_case(b"on") || v.eq_ignore_ascii_case(b"off")) {
                return Err(err("syntax error"));
            }
            write_simple(out, "OK");
        }
        ClientSub::SetInfo => {
            let attr = req.arg(2);
            let val = req.arg(3);
            if attr.eq_ignore_ascii_case(b"lib-name") {
                let v = valid_name(val, "lib-name")?;
                entry.update(|c| c.lib_name = v);
            } else if attr.eq_ignore_ascii_case(b"lib-ver") {
                let v = valid_name(val, "lib-ver")?;
                entry.update(|c| c.lib_ver = v);
            } else {
                return Err(err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(attr)
                )));
            }
            write_simple(out, "OK");
        }
        ClientSub::Info => {
            let line = entry.line() + "\n";
            write_verbatim(out, line.as_bytes(), resp3);
        }
        ClientSub::List => {
            let f = Filter::parse(req, 2)?;
            let mut text = String::new();
            for c in shared
                .clients
                .all()
                .iter()
                .filter(|c| f.matches(c, session.id))
            {
                text.push_str(&c.line());
                text.push('\n');
            }
            write_verbatim(out, text.as_bytes(), resp3);
        }
        ClientSub::Kill => {
            if req.argc() == 3 {
                // The old form: CLIENT KILL addr:port.
                let target = String::from_utf8_lossy(req.arg(2)).into_owned();
                let c = shared
                    .clients
                    .all()
                    .into_iter()
                    .find(|c| c.peer.to_string() == target)
                    .ok_or_else(|| err("No such client"))?;
                c.signal.raise(Stop::Kill);
                write_simple(out, "OK");
            } else {
                let f = Filter::parse(req, 2)?;
                let mut n = 0;
                for c in shared
                    .clients
                    .all()
                    .iter()
                    .filter(|c| f.matches(c, session.id))
                {
                    c.signal.raise(Stop::Kill);
                    n += 1;
                }
                write_integer(out, n);
            }
        }
    }
    Ok(())
}

/// The filters of CLIENT LIST and CLIENT KILL.
#[derive(Default)]
struct Filter {
    ids: Vec<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    kind: Option<String>,
    skip_me: bool,
}

impl Filter {
    fn parse(req: &Request, from: usize) -> Result<Filter, ProxyError> {
        let mut f = Filter {
            skip_me: req.arg(1).eq_ignore_ascii_case(b"kill"),
            ..Filter::default()
        };
        let mut i = from;
        let text = |i: usize| String::from_utf8_lossy(req.arg(i)).to_ascii_lowercase();
        while i < req.argc() {
            let key = text(i);
            if key == "id" {
                // CLIENT LIST ID takes many ids; CLIENT KILL ID takes one.
                i += 1;
                while i < req.argc() {
                    match parse_i64(req.arg(i)).and_then(|n| u64::try_from(n).ok()) {
                        Some(id) if id > 0 => f.ids.push(id),
                        _ if f.ids.is_empty() => return Err(err("Invalid client ID")),
                        _ => break,
                    }
                    i += 1;
                }
                continue;
            }
            if i + 1 >= req.argc() {
                return Err(err("syntax error"));
            }
            let val = String::from_utf8_lossy(req.arg(i + 1)).into_owned();
            match key.as_str() {
                "addr" => f.addr = Some(val),
                "laddr" => f.laddr = Some(val),
                "type" => {
                    let v = val.to_ascii_lowercase();
                    if !matches!(
                        v.as_str(),
                        "normal" | "pubsub" | "master" | "replica" | "slave"
                    ) {
                        return Err(err(format!("Unknown client type '{val}'")));
                    }
                    f.kind = Some(v);
                }
                "skipme" => f.skip_me = val.eq_ignore_ascii_case("yes"),
                "user" | "maxage" => {}
                _ => return Err(err("syntax error")),
            }
            i += 2;
        }
        Ok(f)
    }

    fn matches(&self, c: &ClientEntry, me: u64) -> bool {
        if self.skip_me && c.id == me {
            return false;
        }
        if !self.ids.is_empty() && !self.ids.contains(&c.id) {
            return false;
        }
        if self.addr.as_ref().is_some_and(|a| *a != c.peer.to_string()) {
            return false;
        }
        if self
            .laddr
            .as_ref()
            .is_some_and(|a| *a != c.local.to_string())
        {
            return false;
        }
        match self.kind.as_deref() {
            Some("pubsub") => c.is_subscriber(),
            Some("normal") => !c.is_subscriber(),
            Some(_) => false,
            None => true,
        }
    }
}
