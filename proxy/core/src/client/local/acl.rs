//! The ACL subcommands, acting on the proxy's own users (never the nodes'): WHOAMI, USERS,
//! CAT, LIST, GETUSER, SETUSER, DELUSER, DRYRUN, LOG, SAVE/LOAD with `proxy.aclfile`,
//! GENPASS and HELP.

use bytes::BytesMut;
use hive_common::command::CommandTable;
use hive_common::resp::{
    parse_i64, write_array_header, write_bulk, write_integer, write_map_header, write_null_of,
    write_simple, Request,
};

use super::Ctx;
use crate::auth::{denied, User, CATEGORIES};
use crate::client::session::Session;
use crate::command::local_cmd::AclSub;
use crate::error::ProxyError;

fn err(m: impl Into<String>) -> ProxyError {
    ProxyError::invalid(m)
}

const NO_ACLFILE: &str = "This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// Redis 7.0's ACL HELP, line for line.
const HELP: [&str; 29] = [
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

/// ACL GENPASS [bits]: `bits` (default 256) random bits from the OS, as hex.
fn genpass(req: &Request, out: &mut BytesMut) -> Result<(), ProxyError> {
    use rand::RngCore;
    let bits = match req.get(2) {
        None => 256,
        Some(a) => {
            let n = parse_i64(a).ok_or_else(|| err("value is not an integer or out of range"))?;
            if !(1..=4096).contains(&n) {
                return Err(err("ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"));
            }
            n as usize
        }
    };
    let chars = bits.div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_bulk(out, &hex.as_bytes()[..chars]);
    Ok(())
}

/// A fleet shares its users: the change goes to the other Hives.
fn fleet_changed(ctx: &Ctx) {
    if let Some(f) = &ctx.shared.fleet {
        f.acl_changed(&ctx.shared.auth);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn answer(
    cmd: AclSub,
    req: &Request,
    session: &Session,
    ctx: &Ctx<'_>,
    out: &mut BytesMut,
) -> Result<(), ProxyError> {
    let auth = &ctx.shared.auth;
    let resp3 = session.resp3();
    match cmd {
        AclSub::WhoAmI => write_bulk(out, session.user.name.as_bytes()),
        AclSub::Users => {
            let users = auth.users();
            let names: Vec<&str> = users.names().collect();
            write_array_header(out, names.len());
            names.iter().for_each(|n| write_bulk(out, n.as_bytes()));
        }
        AclSub::Cat => cat(req, out)?,
        AclSub::List => {
            let users = auth.users();
            let lines: Vec<String> = users
                .all()
                .map(|u| format!("user {} {}", u.name, u.describe()))
                .collect();
            write_array_header(out, lines.len());
            lines.iter().for_each(|l| write_bulk(out, l.as_bytes()));
        }
        AclSub::GetUser => match auth.users().get(&text(req.arg(2))) {
            None => write_null_of(out, resp3),
            Some(u) => getuser(u, resp3, out),
        },
        AclSub::SetUser => {
            let name = text(req.arg(2));
            if name.bytes().any(|b| b.is_ascii_whitespace() || b == 0) {
                return Err(err("Usernames can't contain spaces or null characters"));
            }
            let rules: Vec<String> = req.args().skip(3).map(text).collect();
            auth.change(|users| {
                let mut u = match users.get(&name) {
                    Some(u) => (**u).clone(),
                    None => User::new(&name),
                };
                for r in &rules {
                    u.apply_all(r)?;
                }
                Ok((users.with(u), ()))
            })
            .map_err(err)?;
            fleet_changed(ctx);
            write_simple(out, "OK");
        }
        AclSub::DelUser => {
            let names: Vec<String> = req.args().skip(2).map(text).collect();
            let n = auth.change(|users| users.without(&names)).map_err(err)?;
            fleet_changed(ctx);
            // Connections of a deleted user close at their next batch (Session::refresh);
            // the idle ones are told now.
            for c in ctx.shared.clients.all() {
                let user = c.info.lock().map(|i| i.user.clone()).unwrap_or_default();
                if names.contains(&user) {
                    c.signal.raise(hive_upstream::stop::Stop::Kill);
                }
            }
            write_integer(out, n as i64);
        }
        AclSub::DryRun => {
            let users = auth.users();
            let name = text(req.arg(2));
            let user = users
                .get(&name)
                .ok_or_else(|| err(format!("User '{name}' not found")))?;
            let inner = Request::from_args(&req.args().skip(3).collect::<Vec<_>>());
            let t = CommandTable::get();
            let mut spec = t
                .lookup(inner.arg(0))
                .ok_or_else(|| err(format!("Command '{}' not found", text(inner.arg(0)))))?;
            if let Some(sub) = inner.get(1).and_then(|s| spec.subcommand(s)) {
                spec = sub;
            }
            if !spec.arity_ok(inner.argc()) {
                return Err(err(format!(
                    "wrong number of arguments for '{}' command",
                    spec.name
                )));
            }
            match denied(user, spec, &inner) {
                None => write_simple(out, "OK"),
                Some(d) => write_bulk(out, d.dryrun().as_bytes()),
            }
        }
        AclSub::Log => log(req, ctx, resp3, out)?,
        AclSub::GenPass => genpass(req, out)?,
        AclSub::Help => {
            write_array_header(out, HELP.len());
            for line in HELP {
                write_simple(out, line);
            }
        }
        AclSub::Save => {
            let path = ctx
                .shared
                .config
                .proxy
                .aclfile
                .as_ref()
                .ok_or_else(|| err(NO_ACLFILE))?;
            let users = auth.users();
            let mut body = String::new();
            // With requirepass, the default user belongs to hive.toml, not to the file.
            let skip_default = ctx.shared.config.proxy.requirepass.is_some();
            for u in users
                .all()
                .filter(|u| !(skip_default && u.name == "default"))
            {
                body.push_str(&format!("user {} {}\n", u.name, u.describe()));
            }
            // Written beside and renamed, so a crash never leaves half a file.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, body)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| err(format!("There was an error trying to save the ACLs. Please check the server logs for more information ({e})")))?;
            write_simple(out, "OK");
        }
        AclSub::Load => {
            let cfg = &ctx.shared.config;
            if cfg.proxy.aclfile.is_none() {
                return Err(err(NO_ACLFILE));
            }
            let fresh = crate::auth::Users::from_config(cfg, std::path::Path::new("<config>"))
                .map_err(|e| err(e.to_string()))?;
            auth.change(|_| Ok((fresh, ()))).map_err(err)?;
            fleet_changed(ctx);
            write_simple(out, "OK");
        }
    }
    Ok(())
}

fn cat(req: &Request, out: &mut BytesMut) -> Result<(), ProxyError> {
    let Some(cat) = req.get(2) else {
        write_array_header(out, CATEGORIES.len());
        CATEGORIES
            .iter()
            .for_each(|c| write_bulk(out, c.as_bytes()));
        return Ok(());
    };
    let cat = text(cat).to_ascii_lowercase();
    if !CATEGORIES.contains(&cat.as_str()) {
        return Err(err(format!("Unknown category '{cat}'")));
    }
    let names: Vec<&str> = CommandTable::get()
        .all()
        .filter(|c| c.in_category(&cat))
        .map(|c| c.name.as_str())
        .collect();
    write_array_header(out, names.len());
    names.iter().for_each(|n| write_bulk(out, n.as_bytes()));
    Ok(())
}

/// ACL GETUSER in Redis 7.0's layout.
fn getuser(u: &User, resp3: bool, out: &mut BytesMut) {
    write_map_header(out, 6, resp3);
    write_bulk(out, b"flags");
    let flags = u.flags();
    write_array_header(out, flags.len());
    flags.iter().for_each(|f| write_bulk(out, f.as_bytes()));
    write_bulk(out, b"passwords");
    write_array_header(out, u.password_hashes().len());
    u.password_hashes()
        .iter()
        .for_each(|h| write_bulk(out, h.as_bytes()));
    for (k, v) in [
        ("commands", u.commands_rule()),
        ("keys", u.keys_rule()),
        ("channels", u.channels_rule()),
    ] {
        write_bulk(out, k.as_bytes());
        let v = match v.as_str() {
            "resetkeys" | "resetchannels" => String::new(),
            _ => v,
        };
        write_bulk(out, v.as_bytes());
    }
    write_bulk(out, b"selectors");
    write_array_header(out, 0);
}

fn log(req: &Request, ctx: &Ctx<'_>, resp3: bool, out: &mut BytesMut) -> Result<(), ProxyError> {
    let mut log = ctx
        .shared
        .auth
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let n = match req.get(2) {
        None => 10,
        Some(a) if a.eq_ignore_ascii_case(b"reset") => {
            log.reset();
            write_simple(out, "OK");
            return Ok(());
        }
        Some(a) => parse_i64(a)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| err("value is out of range, must be positive"))?,
    };
    let entries = log.newest(n);
    write_array_header(out, entries.len());
    for (e, count, age) in entries {
        write_map_header(out, 7, resp3);
        write_bulk(out, b"count");
        write_integer(out, count as i64);
        for (k, v) in [
            ("reason", e.reason.to_string()),
            ("context", e.context.to_string()),
            ("object", e.object),
            ("username", e.username),
            ("age-seconds", format!("{age:.3}")),
            ("client-info", e.client_info),
        ] {
            write_bulk(out, k.as_bytes());
            write_bulk(out, v.as_bytes());
        }
    }
    Ok(())
}
