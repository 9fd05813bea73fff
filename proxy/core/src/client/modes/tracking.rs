//! CLIENT TRACKING, CACHING and TRACKINGINFO with Redis 7.0's replies and errors, and what a
//! tracking connection's requests do: a read (in the default mode, unless OPTIN/OPTOUT says
//! otherwise) is remembered by the proxy-wide `Tracker`; a write of a key the connection had
//! read is invalidated to it before the write's reply, as Redis does (unless NOLOOP).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hive_common::command::{flag, CommandSpec, KeyPositions};
use hive_common::resp::{
    parse_i64, write_array_header, write_bulk, write_integer, write_map_header, Request,
};

use crate::client::session::Tracking;
use crate::client::Conn;
use crate::error::ProxyError;
use crate::tracking::{frames, Client};

/// How long CLIENT TRACKING ON waits for the feed to follow every master.
const FEED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn err(m: impl Into<String>) -> ProxyError {
    ProxyError::invalid(m)
}

const SWITCH_MODE: &str = "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.";
const SWITCH_OPT: &str = "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.";

/// CLIENT TRACKING's options, as given.
#[derive(Default)]
struct Options {
    redirect: Option<u64>,
    bcast: bool,
    optin: bool,
    optout: bool,
    noloop: bool,
    prefixes: Vec<Bytes>,
}

fn overlap(a: &[u8], b: &[u8]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

impl Conn {
    pub(crate) fn tracking_cmd(&mut self, req: Request) {
        let sub = req.arg(1).to_ascii_lowercase();
        let mut out = BytesMut::new();
        let done = match sub.as_slice() {
            b"tracking" => match self.tracking_on_off(&req) {
                Ok(true) => {
                    out.extend_from_slice(b"+OK\r\n");
                    Ok(())
                }
                Ok(false) => return,
                Err(e) => Err(e),
            },
            b"caching" => self.caching(&req, &mut out),
            _ => {
                self.trackinginfo(&mut out);
                Ok(())
            }
        };
        match done {
            Ok(()) => self.push_done(out.freeze()),
            Err(e) => self.push_error(&e),
        }
    }

    /// CLIENT TRACKING ON|OFF [options]: `Ok(false)` when held until the feed is up.
    fn tracking_on_off(&mut self, req: &Request) -> Result<bool, ProxyError> {
        let mut o = Options::default();
        let mut j = 3;
        while j < req.argc() {
            let a = req.arg(j).to_ascii_lowercase();
            let more = j + 1 < req.argc();
            match a.as_slice() {
                b"redirect" if more => {
                    j += 1;
                    if o.redirect.is_some() {
                        return Err(err("A client can only redirect to a single other client"));
                    }
                    let id = parse_i64(req.arg(j))
                        .ok_or_else(|| err("value is not an integer or out of range"))?;
                    if id <= 0 || !self.shared.clients.contains(id as u64) {
                        return Err(err("The client ID you want redirect to does not exist"));
                    }
                    o.redirect = Some(id as u64);
                }
                b"bcast" => o.bcast = true,
                b"optin" => o.optin = true,
                b"optout" => o.optout = true,
                b"noloop" => o.noloop = true,
                b"prefix" if more => {
                    j += 1;
                    o.prefixes.push(req.arg_bytes(j));
                }
                _ => return Err(err("syntax error")),
            }
            j += 1;
        }
        let on = req.arg(2);
        if on.eq_ignore_ascii_case(b"off") {
            self.session.tracking = None;
            self.tracking_wait = None;
            self.shared.tracking.disable(self.session.id);
            return Ok(true);
        }
        if !on.eq_ignore_ascii_case(b"on") {
            return Err(err("syntax error"));
        }
        if !o.bcast && !o.prefixes.is_empty() {
            return Err(err("PREFIX option requires BCAST mode to be enabled"));
        }
        let old = self.session.tracking.as_deref();
        if old.is_some_and(|t| t.bcast != o.bcast) {
            return Err(err(SWITCH_MODE));
        }
        if o.bcast && (o.optin || o.optout) {
            return Err(err("OPTIN and OPTOUT are not compatible with BCAST"));
        }
        if o.optin && o.optout {
            return Err(err("You can't specify both OPTIN mode and OPTOUT mode"));
        }
        if old.is_some_and(|t| (o.optin && t.optout) || (o.optout && t.optin)) {
            return Err(err(SWITCH_OPT));
        }
        let existing: &[Bytes] = old.map_or(&[], |t| &t.prefixes);
        for (i, p) in o.prefixes.iter().enumerate() {
            if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
                return Err(err(format!(
                    "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(e)
                )));
            }
            if let Some(q) = o.prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                return Err(err(format!(
                    "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(q)
                )));
            }
        }
        let mut prefixes = existing.to_vec();
        prefixes.extend(o.prefixes.iter().cloned());
        let client = Client {
            tx: self.reply_tx(),
            resp3: self.session.resp3(),
            redirect: o.redirect,
            bcast: o.bcast.then(|| prefixes.clone()),
        };
        self.shared.tracking.enable(self.session.id, client);
        if !self.shared.tracking_ready.get() {
            // Until the feed follows every master, a change could go unreported: the +OK
            // waits for it (the request is dispatched again shortly).
            let since = *self.tracking_wait.get_or_insert_with(Instant::now);
            if since.elapsed() < FEED_WAIT {
                self.held = Some(req.clone());
                return Ok(false);
            }
            self.tracking_wait = None;
            if self.session.tracking.is_none() {
                self.shared.tracking.disable(self.session.id);
            }
            return Err(ProxyError::upstream(
                crate::error::UpstreamReason::Unreachable,
                "Hive cannot follow every master's changes now, so it cannot track keys; try again",
            ));
        }
        self.tracking_wait = None;
        self.session.tracking = Some(Box::new(Tracking {
            redirect: o.redirect,
            bcast: o.bcast,
            prefixes,
            optin: o.optin,
            optout: o.optout,
            noloop: o.noloop,
            caching: false,
        }));
        // Invalidations must not come from a replica that has not seen a write yet.
        self.session.read_from = crate::config::ReadFrom::Master;
        Ok(true)
    }

    /// CLIENT CACHING YES|NO.
    fn caching(&mut self, req: &Request, out: &mut BytesMut) -> Result<(), ProxyError> {
        let Some(t) = self.session.tracking.as_deref_mut() else {
            return Err(err("CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
        };
        let a = req.arg(2);
        if a.eq_ignore_ascii_case(b"yes") {
            if !t.optin {
                return Err(err(
                    "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
                ));
            }
        } else if a.eq_ignore_ascii_case(b"no") {
            if !t.optout {
                return Err(err(
                    "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
                ));
            }
        } else {
            return Err(err("syntax error"));
        }
        t.caching = true;
        out.extend_from_slice(b"+OK\r\n");
        Ok(())
    }

    /// CLIENT TRACKINGINFO: flags, redirect, prefixes, as Redis 7.0 lists them.
    fn trackinginfo(&self, out: &mut BytesMut) {
        let resp3 = self.session.resp3();
        let t = self.session.tracking.as_deref();
        let mut flags: Vec<&str> = Vec::new();
        match t {
            None => flags.push("off"),
            Some(t) => {
                flags.push("on");
                if t.bcast {
                    flags.push("bcast");
                }
                if t.optin {
                    flags.push("optin");
                    if t.caching {
                        flags.push("caching-yes");
                    }
                }
                if t.optout {
                    flags.push("optout");
                    if t.caching {
                        flags.push("caching-no");
                    }
                }
                if t.noloop {
                    flags.push("noloop");
                }
                if t.redirect.is_some_and(|r| !self.shared.clients.contains(r)) {
                    flags.push("broken_redirect");
                }
            }
        }
        write_map_header(out, 3, resp3);
        write_bulk(out, b"flags");
        if resp3 {
            out.extend_from_slice(format!("~{}\r\n", flags.len()).as_bytes());
        } else {
            write_array_header(out, flags.len());
        }
        flags.iter().for_each(|f| write_bulk(out, f.as_bytes()));
        write_bulk(out, b"redirect");
        write_integer(out, t.map_or(-1, |t| t.redirect.map_or(0, |r| r as i64)));
        write_bulk(out, b"prefixes");
        // In Redis's order: its prefix tree's, sorted.
        let mut prefixes: Vec<&Bytes> = t.map_or(Vec::new(), |t| t.prefixes.iter().collect());
        prefixes.sort();
        write_array_header(out, prefixes.len());
        prefixes.iter().for_each(|p| write_bulk(out, p));
    }

    /// Before a tracking connection's request is sent: a read is remembered (in the default
    /// mode, as OPTIN/OPTOUT and CACHING say); whether it is a write of keys, to be looked at
    /// by `tell_own_writes` once it is under way.
    pub(crate) fn track_read(&mut self, req: &Request, spec: &CommandSpec) -> bool {
        let client_cmd = spec.name.starts_with("client");
        let id = self.session.id;
        let in_multi = self.multi.is_some();
        let Some(t) = self.session.tracking.as_deref_mut() else {
            return false;
        };
        let (bcast, optin, optout, caching) = (t.bcast, t.optin, t.optout, t.caching);
        if !client_cmd && !in_multi {
            t.caching = false;
        }
        if spec.key_specs.is_empty() {
            return false;
        }
        if !spec.has(flag::READONLY) {
            return spec.has(flag::WRITE) && !bcast && !in_multi;
        }
        if bcast {
            self.shared.tracking.read_by_bcast();
        } else if !((optin && !caching) || (optout && caching)) {
            let mut at = KeyPositions::new();
            if spec.keys(req, &mut at).is_ok() {
                let keys = at.iter().map(|&i| req.arg(i as usize));
                self.shared.tracking.track(id, keys);
            }
        }
        false
    }

    /// A write of keys the connection had read: it stops tracking them, and (unless NOLOOP)
    /// is told right after the write's reply, as Redis 7.0 tells it. A connection that
    /// redirects, or speaks RESP2, is told by the feed instead.
    pub(crate) fn tell_own_writes(&mut self, req: &Request, spec: &CommandSpec) {
        let Some(t) = self.session.tracking.as_deref() else {
            return;
        };
        let (noloop, direct) = (t.noloop, t.redirect.is_none() && self.session.resp3());
        if !(noloop || direct) {
            return;
        }
        let mut at = KeyPositions::new();
        if spec.keys(req, &mut at).is_err() {
            return;
        }
        let id = self.session.id;
        let mine: Vec<Bytes> = at
            .iter()
            .map(|&i| req.arg(i as usize))
            .filter(|k| self.shared.tracking.written_by(id, k))
            .map(Bytes::copy_from_slice)
            .collect();
        if noloop {
            return;
        }
        for k in mine {
            self.push_done(frames::invalidate(Some(&[k]), true));
        }
    }
}
