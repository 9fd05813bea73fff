//! ACL WHOAMI, ACL USERS and ACL CAT, answered from the proxy's own users. The other ACL
//! subcommands are refused by `classify`: users come from hive.toml.

use bytes::BytesMut;
use hive_common::command::CommandTable;
use hive_common::resp::{write_array_header, write_bulk, Request};

use crate::auth::CATEGORIES;
use crate::client::session::Session;
use crate::error::ProxyError;
use crate::server::Shared;

pub(super) fn answer(
    cmd: &str,
    req: &Request,
    session: &Session,
    shared: &Shared,
    out: &mut BytesMut,
) -> Result<(), ProxyError> {
    match cmd {
        "acl|whoami" => write_bulk(out, session.user.name.as_bytes()),
        "acl|users" => {
            let names: Vec<&str> = shared.users.names().collect();
            write_array_header(out, names.len());
            names.iter().for_each(|n| write_bulk(out, n.as_bytes()));
        }
        _ => match req.get(2) {
            None => {
                write_array_header(out, CATEGORIES.len());
                CATEGORIES
                    .iter()
                    .for_each(|c| write_bulk(out, c.as_bytes()));
            }
            Some(cat) => {
                let cat = String::from_utf8_lossy(cat).to_ascii_lowercase();
                if !CATEGORIES.contains(&cat.as_str()) {
                    return Err(ProxyError::invalid(format!("Unknown category '{cat}'")));
                }
                let names: Vec<&str> = CommandTable::get()
                    .all()
                    .filter(|c| c.in_category(&cat))
                    .map(|c| c.name.as_str())
                    .collect();
                write_array_header(out, names.len());
                names.iter().for_each(|n| write_bulk(out, n.as_bytes()));
            }
        },
    }
    Ok(())
}
