//! What Hives of one fleet tell each other on the deployment's `__hive__:fleet` channel: each
//! message a RESP array of strings, signed with HMAC-SHA256 so that nobody without the fleet's
//! key can speak for a Hive (a forged ACL message would hand out access).

use bytes::Bytes;
use hive_common::resp::{parse_value, Request, Value};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::state::pubsub_index::{Change, CountsImage, IndexImage, Placement};

pub use hive_common::pubsub::FLEET_CHANNEL as CHANNEL;

/// Which ACL state is newer: a version, then the id of the Hive that made it.
pub type Stamp = (u64, String);

/// One Hive process: its fleet id (from its address) and its run (from its start time, so a
/// restarted Hive's messages are told from the old one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub id: String,
    pub run: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// "I am here": the address clients reach it at, the number of its last subscription
    /// change and its ACL stamp.
    Heartbeat {
        from: Origin,
        addr: String,
        seq: u64,
        acl: Stamp,
    },
    /// Leaving (a drain began): forget it now, not at its link's end.
    Bye { from: Origin },
    /// One change of its clients' subscriptions.
    Sub {
        from: Origin,
        seq: u64,
        change: Change,
    },
    /// Its whole subscription index, as of change `seq`.
    Image {
        from: Origin,
        seq: u64,
        image: IndexImage,
    },
    /// `from` missed some of `of`'s changes and asks for its image.
    Want { from: Origin, of: String },
    /// Every user, as ACL file lines (passwords as their SHA-256).
    Acl {
        from: Origin,
        stamp: Stamp,
        lines: Vec<String>,
    },
}

/// The signing key: from `proxy.fleet_secret`, else the backend password, else none.
pub fn key(secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"hive-fleet:");
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn tag(key: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(body);
    m.finalize().into_bytes().into()
}

struct Writer(Vec<Bytes>);

impl Writer {
    fn s(&mut self, v: impl AsRef<[u8]>) -> &mut Self {
        self.0.push(Bytes::copy_from_slice(v.as_ref()));
        self
    }
    fn n(&mut self, v: impl std::fmt::Display) -> &mut Self {
        self.s(v.to_string())
    }
    fn from(&mut self, f: &Origin) -> &mut Self {
        self.s(&f.id).n(f.run)
    }
    fn list(&mut self, items: &[Bytes]) -> &mut Self {
        self.n(items.len());
        items.iter().for_each(|i| self.0.push(i.clone()));
        self
    }
    fn counts(&mut self, c: &CountsImage) -> &mut Self {
        for l in [&c.channels, &c.patterns] {
            self.n(l.len());
            for (k, v) in l {
                self.s(k).n(v);
            }
        }
        self
    }
}

/// The signed payload of `msg`: 64 hex digits of HMAC, then the RESP array.
pub fn encode(msg: &Msg, key: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    match msg {
        Msg::Heartbeat {
            from,
            addr,
            seq,
            acl,
        } => {
            w.s("hb").from(from).s(addr).n(seq).n(acl.0).s(&acl.1);
        }
        Msg::Bye { from } => {
            w.s("bye").from(from);
        }
        Msg::Sub { from, seq, change } => {
            let p = &change.place;
            w.s("sub").from(from).n(seq).n(change.by);
            w.s(p.home.as_deref().unwrap_or(""))
                .n(p.keyspace_nodes.len());
            p.keyspace_nodes.iter().for_each(|n| {
                w.s(n);
            });
            w.list(&change.channels).list(&change.patterns);
        }
        Msg::Image { from, seq, image } => {
            w.s("image").from(from).n(seq).counts(&image.clients);
            w.n(image.nodes.len());
            for (n, c) in &image.nodes {
                w.s(n).counts(c);
            }
        }
        Msg::Want { from, of } => {
            w.s("want").from(from).s(of);
        }
        Msg::Acl { from, stamp, lines } => {
            w.s("acl").from(from).n(stamp.0).s(&stamp.1).n(lines.len());
            lines.iter().for_each(|l| {
                w.s(l);
            });
        }
    }
    let body = Request::from_args(&w.0).raw().to_vec();
    let mut out = hex(&tag(key, &body)).into_bytes();
    out.extend_from_slice(&body);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Reader<'a>(std::slice::Iter<'a, Value>);

impl Reader<'_> {
    fn b(&mut self) -> Option<Bytes> {
        match self.0.next()? {
            Value::Bulk(b) => Some(b.clone()),
            _ => None,
        }
    }
    fn s(&mut self) -> Option<String> {
        String::from_utf8(self.b()?.to_vec()).ok()
    }
    fn n<T: std::str::FromStr>(&mut self) -> Option<T> {
        self.s()?.parse().ok()
    }
    fn from(&mut self) -> Option<Origin> {
        Some(Origin {
            id: self.s()?,
            run: self.n()?,
        })
    }
    /// A count, bounded by what is left, so a bad message cannot make a huge allocation.
    fn len(&mut self) -> Option<usize> {
        let n: usize = self.n()?;
        (n <= self.0.len()).then_some(n)
    }
    fn list(&mut self) -> Option<Vec<Bytes>> {
        let n = self.len()?;
        (0..n).map(|_| self.b()).collect()
    }
    fn counts(&mut self) -> Option<CountsImage> {
        let mut two = [Vec::new(), Vec::new()];
        for l in &mut two {
            let n = self.len()?;
            *l = (0..n)
                .map(|_| Some((self.b()?, self.n()?)))
                .collect::<Option<_>>()?;
        }
        let [channels, patterns] = two;
        Some(CountsImage { channels, patterns })
    }
}

/// The message in a signed payload; `None` when the signature or the shape is wrong.
pub fn decode(payload: &[u8], key: &[u8; 32]) -> Option<Msg> {
    let (sig, body) = (payload.get(..64)?, payload.get(64..)?);
    let want = hex(&tag(key, body));
    // Compared whole, in constant time, so timing says nothing about the tag.
    if sig.len() != want.len()
        || sig
            .iter()
            .zip(want.bytes())
            .fold(0, |a, (x, y)| a | (x ^ y))
            != 0
    {
        return None;
    }
    let (v, used) = parse_value(body).ok()??;
    if used != body.len() {
        return None;
    }
    let mut r = Reader(v.as_array()?.iter());
    let kind = r.s()?;
    let msg = match kind.as_str() {
        "hb" => Msg::Heartbeat {
            from: r.from()?,
            addr: r.s()?,
            seq: r.n()?,
            acl: (r.n()?, r.s()?),
        },
        "bye" => Msg::Bye { from: r.from()? },
        "sub" => {
            let from = r.from()?;
            let seq = r.n()?;
            let by = r.n()?;
            let home = r.s()?;
            let n = r.len()?;
            let keyspace_nodes = (0..n).map(|_| r.s()).collect::<Option<_>>()?;
            let place = Placement {
                home: (!home.is_empty()).then_some(home),
                keyspace_nodes,
            };
            Msg::Sub {
                from,
                seq,
                change: Change {
                    place,
                    channels: r.list()?,
                    patterns: r.list()?,
                    by,
                },
            }
        }
        "image" => {
            let from = r.from()?;
            let seq = r.n()?;
            let clients = r.counts()?;
            let n = r.len()?;
            let nodes = (0..n)
                .map(|_| Some((r.s()?, r.counts()?)))
                .collect::<Option<_>>()?;
            Msg::Image {
                from,
                seq,
                image: IndexImage { clients, nodes },
            }
        }
        "want" => Msg::Want {
            from: r.from()?,
            of: r.s()?,
        },
        "acl" => {
            let from = r.from()?;
            let stamp = (r.n()?, r.s()?);
            let n = r.len()?;
            let lines = (0..n).map(|_| r.s()).collect::<Option<_>>()?;
            Msg::Acl { from, stamp, lines }
        }
        _ => return None,
    };
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> Origin {
        Origin {
            id: "a".repeat(40),
            run: 7,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn message_round_trips_every_kind() {
        let k = key("s3cret");
        let counts = CountsImage {
            channels: vec![(b("news"), 2)],
            patterns: vec![(b("a*"), 1)],
        };
        let msgs = [
            Msg::Heartbeat {
                from: from(),
                addr: "127.0.0.1:6380".into(),
                seq: 4,
                acl: (3, "b".into()),
            },
            Msg::Bye { from: from() },
            Msg::Sub {
                from: from(),
                seq: 9,
                change: Change {
                    place: Placement {
                        home: Some("127.0.0.1:7000".into()),
                        keyspace_nodes: vec!["127.0.0.1:7001".into()],
                    },
                    channels: vec![b("bin\r\n\0ary")],
                    patterns: vec![],
                    by: -1,
                },
            },
            Msg::Image {
                from: from(),
                seq: 9,
                image: IndexImage {
                    clients: counts.clone(),
                    nodes: vec![("127.0.0.1:7000".into(), counts)],
                },
            },
            Msg::Want {
                from: from(),
                of: "c".into(),
            },
            Msg::Acl {
                from: from(),
                stamp: (2, "a".into()),
                lines: vec!["user app on #ab ~* &* +@all".into()],
            },
        ];
        for m in msgs {
            assert_eq!(decode(&encode(&m, &k), &k), Some(m));
        }
    }

    #[test]
    fn message_with_wrong_key_or_bytes_is_dropped() {
        let m = Msg::Bye { from: from() };
        let payload = encode(&m, &key("one"));
        assert_eq!(decode(&payload, &key("two")), None);
        let mut bent = payload.clone();
        let last = bent.len() - 3;
        bent[last] ^= 1;
        assert_eq!(decode(&bent, &key("one")), None);
        assert_eq!(decode(b"short", &key("one")), None);
        // A well-signed message with a count larger than what follows is refused, not
        // allocated.
        let body = Request::from_args(&["acl", "a", "1", "1", "a", "999999999"])
            .raw()
            .to_vec();
        let mut forged = hex(&tag(&key("one"), &body)).into_bytes();
        forged.extend_from_slice(&body);
        assert_eq!(decode(&forged, &key("one")), None);
    }
}
