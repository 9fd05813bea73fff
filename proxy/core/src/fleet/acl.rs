//! ACL users shared across the fleet. A change made with ACL SETUSER, DELUSER or LOAD on any
//! Hive is sent to the others whole (every user as an ACL file line, passwords as their
//! SHA-256, as ACL LIST shows them), stamped with a version one above any seen. A Hive takes a
//! stamp newer than its own; one that hears an older stamp in a peer's heartbeat sends its
//! users again, so a Hive that starts or missed a message catches up within a heartbeat.
//! Why propagated and not stored on the deployment: the users then never sit in the
//! deployment's keyspace, where any client of the nodes could read or overwrite them.

use std::path::Path;

use tracing::{info, warn};

use super::message::Stamp;
use super::{Fleet, Out};
use crate::auth::{AuthState, Source, Users};
use crate::state::Shared;

/// Every user as an ACL file line.
pub fn lines(users: &Users) -> Vec<String> {
    users
        .all()
        .map(|u| format!("user {} {}", u.name, u.describe()))
        .collect()
}

impl Fleet {
    /// Called after a local ACL change: stamps it and has the fleet task send it.
    pub fn acl_changed(&self, auth: &AuthState) {
        let stamp = {
            let mut s = self.acl.lock().unwrap_or_else(|p| p.into_inner());
            *s = (s.0 + 1, self.me.id.clone());
            s.clone()
        };
        let _ = self.out.send(Out::Acl {
            stamp,
            lines: lines(&auth.users()),
        });
    }

    /// Takes a peer's users if `stamp` is newer than this Hive's; whether it did.
    pub(crate) fn acl_heard(&self, shared: &Shared, stamp: &Stamp, lines: &[String]) -> bool {
        let mut mine = self.acl.lock().unwrap_or_else(|p| p.into_inner());
        if *stamp <= *mine {
            return false;
        }
        let file = Path::new("<fleet>");
        let parsed = Users::build(
            None,
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| (Source::AclFile(file, i + 1), l.as_str())),
        );
        let users = match parsed {
            Ok(u) => u,
            Err((_, reason)) => {
                warn!(%reason, "fleet ACL users refused");
                return false;
            }
        };
        let names: Vec<String> = users.names().map(str::to_string).collect();
        if shared.auth.change(|_| Ok((users, ()))).is_err() {
            return false;
        }
        *mine = stamp.clone();
        drop(mine);
        info!(version = stamp.0, from = %stamp.1, "fleet ACL users taken");
        // Connections of a user that is gone close at their next batch; the idle ones now.
        for c in shared.clients.all() {
            let user = c.info.lock().map(|i| i.user.clone()).unwrap_or_default();
            if !names.contains(&user) {
                c.signal.raise(hive_upstream::stop::Stop::Kill);
            }
        }
        true
    }
}

/// Whether a peer holding `theirs` needs this Hive's users (`mine`).
pub fn peer_behind(mine: &Stamp, theirs: &Stamp) -> bool {
    mine.0 > 0 && theirs < mine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_stamps_order_by_version_then_origin() {
        let a = (2, "a".to_string());
        assert!(peer_behind(&a, &(1, "z".into())));
        assert!(peer_behind(&(2, "b".into()), &a));
        assert!(!peer_behind(&a, &a));
        assert!(!peer_behind(&(0, String::new()), &(0, String::new())));
    }

    #[test]
    fn acl_lines_rebuild_the_same_users() {
        let users =
            Users::build(None, [(Source::Config(0), "user app on >pw ~app:* +get")]).unwrap();
        let l = lines(&users);
        let file = Path::new("<fleet>");
        let again = Users::build(
            None,
            l.iter().map(|x| (Source::AclFile(file, 1), x.as_str())),
        )
        .unwrap();
        assert_eq!(lines(&again), l);
        assert!(again.authenticate(b"app", b"pw").is_some());
        assert!(again.authenticate(b"app", b"wrong").is_none());
        // The password travels as its hash only.
        assert!(l.iter().all(|x| !x.contains(">pw")));
    }
}
