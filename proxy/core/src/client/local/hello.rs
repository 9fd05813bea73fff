//! HELLO: the protocol version, the client name, and the server's self-description.

use bytes::{Bytes, BytesMut};
use hive_common::resp::{
    parse_i64, write_array_header, write_bulk, write_integer, write_map_header, Request,
};

use super::{login, Ctx};
use crate::client::session::Session;
use crate::error::{ClientReason, ProxyError};
use hive_upstream::Proto;

fn err(m: impl Into<String>) -> ProxyError {
    ProxyError::invalid(m)
}

/// HELLO [protover [AUTH user pass] [SETNAME name]].
pub fn answer(
    req: &Request,
    session: &mut Session,
    ctx: &Ctx<'_>,
    out: &mut BytesMut,
) -> Result<(), ProxyError> {
    let entry = ctx.entry;
    let mut i = 1;
    let mut proto = session.proto;
    if let Some(v) = req.get(1) {
        proto = match parse_i64(v) {
            Some(2) => Proto::Resp2,
            Some(3) => Proto::Resp3,
            Some(_) => {
                return Err(ProxyError::client(
                    ClientReason::NoProto,
                    "unsupported protocol version",
                ))
            }
            None => return Err(err("Protocol version is not an integer or out of range")),
        };
        i = 2;
    }
    let mut name = None;
    let mut auth = None;
    while i < req.argc() {
        let opt = req.arg(i);
        if opt.eq_ignore_ascii_case(b"auth") && i + 2 < req.argc() {
            auth = Some((req.arg(i + 1), req.arg(i + 2)));
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && i + 1 < req.argc() {
            name = Some(valid_name(req.arg(i + 1), "Client names")?);
            i += 2;
        } else {
            return Err(err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if let Some((user, password)) = auth {
        login(session, ctx, user, password)?;
    }
    if !session.authed {
        return Err(ProxyError::client(
            ClientReason::NoAuth,
            "HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(n) = name {
        session.name = n.clone();
        entry.update(|c| c.name = n);
    }
    session.proto = proto;
    entry.update(|c| c.resp = if proto == Proto::Resp3 { 3 } else { 2 });
    let resp3 = session.resp3();
    write_map_header(out, 7, resp3);
    for (k, v) in [("server", "redis"), ("version", "7.0.15")] {
        write_bulk(out, k.as_bytes());
        write_bulk(out, v.as_bytes());
    }
    write_bulk(out, b"proto");
    write_integer(out, if resp3 { 3 } else { 2 });
    write_bulk(out, b"id");
    write_integer(out, session.id as i64);
    for (k, v) in [("mode", "cluster"), ("role", "master")] {
        write_bulk(out, k.as_bytes());
        write_bulk(out, v.as_bytes());
    }
    write_bulk(out, b"modules");
    write_array_header(out, 0);
    Ok(())
}

/// Validates a client or library name as Redis does; an empty name clears it.
pub fn valid_name(n: &[u8], what: &str) -> Result<Option<Bytes>, ProxyError> {
    if n.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(err(format!(
            "{what} cannot contain spaces, newlines or special characters."
        )));
    }
    Ok((!n.is_empty()).then(|| Bytes::copy_from_slice(n)))
}
