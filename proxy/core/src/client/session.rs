//! What a client chose for its connection (id, name, protocol, the user it authenticated as),
//! and RESET, which drops every piece of connection state.

use std::sync::Arc;

use bytes::Bytes;

use super::Conn;
use crate::auth::{AuthState, User, Users};
use crate::command::classify::Caller;
use crate::config::ReadFrom;
use hive_upstream::Proto;

#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub name: Option<Bytes>,
    pub proto: Proto,
    pub user: Arc<User>,
    /// False until AUTH succeeds when the default user needs a password (Redis's
    /// `authRequired`).
    pub authed: bool,
    /// The user may do everything: its requests skip the permission check.
    unrestricted: bool,
    /// The users' generation `user` was taken from.
    generation: u64,
    /// Where this connection's reads go: the deployment's `read_from` until READONLY or
    /// READWRITE.
    pub read_from: ReadFrom,
    /// CLIENT TRACKING's options while it is on.
    pub tracking: Option<Box<Tracking>>,
}

/// CLIENT TRACKING ON's options, and CLIENT CACHING's answer for the next command.
#[derive(Debug, Default, Clone)]
pub struct Tracking {
    pub redirect: Option<u64>,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING YES (OPTIN) or NO (OPTOUT) was given for the next command.
    pub caching: bool,
}

impl Session {
    /// A new connection: the default user, authenticated if it needs no password.
    pub fn new(id: u64, auth: &AuthState) -> Session {
        let generation = auth.generation();
        let users = auth.users();
        let user = users.default_user().clone();
        Session {
            id,
            name: None,
            proto: Proto::Resp2,
            authed: !users.auth_required(),
            unrestricted: users.unrestricted(&user),
            user,
            generation,
            read_from: ReadFrom::Master,
            tracking: None,
        }
    }

    /// Picks up ACL changes to this connection's user (one load per batch). False when the
    /// user was deleted: the connection must close, as Redis closes it.
    pub fn refresh(&mut self, auth: &AuthState) -> bool {
        let g = auth.generation();
        if g == self.generation {
            return true;
        }
        self.generation = g;
        let users = auth.users();
        match users.get(&self.user.name) {
            Some(u) => {
                self.unrestricted = users.unrestricted(u);
                self.user = u.clone();
                true
            }
            None => false,
        }
    }

    pub fn resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }

    /// After a successful AUTH or HELLO AUTH.
    pub fn login(&mut self, user: Arc<User>, users: &Users) {
        self.unrestricted = users.unrestricted(&user);
        self.user = user;
        self.authed = true;
    }

    /// Who is asking, for the checks made before routing.
    pub fn caller(&self) -> Caller<'_> {
        if !self.authed {
            Caller::Unauthenticated
        } else if self.unrestricted {
            Caller::Anyone
        } else {
            Caller::User(&self.user)
        }
    }
}

impl Conn {
    pub(super) fn reset(&mut self) {
        self.multi = None;
        self.release_watch();
        self.subs = None;
        self.own.clear();
        self.shared.monitors.remove(self.entry.id);
        self.shared.tracking.disable(self.entry.id);
        self.shared.tracking.sink(self.entry.id, None);
        // As Redis's RESET: back to the default user, unauthenticated if it has a password.
        self.session = Session::new(self.session.id, &self.shared.auth);
        self.session.read_from = self.shared.live.load().backend.read_from;
        self.entry.update(|c| {
            c.user = "default".into();
            c.name = None;
            c.resp = 2;
            c.multi = false;
            c.sub = 0;
            c.psub = 0;
            c.ssub = 0;
        });
        self.push_done(Bytes::from_static(b"+RESET\r\n"));
    }

    /// MONITOR: from now on every command of the proxy's clients arrives here as a push line
    /// (until RESET or disconnect).
    pub(super) fn monitor(&mut self) {
        self.push_done(Bytes::from_static(b"+OK\r\n"));
        let tx = self.reply_tx();
        self.shared.monitors.add(self.entry.id, tx);
    }
}
