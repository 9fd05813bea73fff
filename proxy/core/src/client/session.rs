//! What a client chose for its connection (id, name, protocol), and RESET, which drops every
//! piece of connection state.

use bytes::Bytes;

use super::Conn;
use crate::upstream::Proto;

#[derive(Debug, Default)]
pub struct Session {
    pub id: u64,
    pub name: Option<Bytes>,
    pub proto: Proto,
}

impl Session {
    pub fn new(id: u64) -> Session {
        Session {
            id,
            ..Session::default()
        }
    }

    pub fn resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }
}

impl Conn {
    pub(super) fn reset(&mut self) {
        self.multi = None;
        self.watch = None;
        self.subs = None;
        self.own.clear();
        self.session = Session::new(self.session.id);
        self.entry.update(|c| {
            c.name = None;
            c.resp = 2;
            c.multi = false;
            c.sub = 0;
            c.psub = 0;
            c.ssub = 0;
        });
        self.push_done(Bytes::from_static(b"+RESET\r\n"));
    }
}
