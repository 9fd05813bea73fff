//! Pub/sub bookkeeping for one subscribed client: which channels, patterns and shard channels it
//! holds (so its subscriptions can be re-established after a failover), how many reply frames
//! each subscription command produces, and which frames are messages rather than replies.

use std::collections::BTreeSet;

use bytes::Bytes;

/// The three kinds of subscription, each with its own commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Channel,
    Pattern,
    Shard,
}

impl Family {
    /// The family and direction of a subscription command (`true` = subscribe).
    pub fn of(cmd: &str) -> Option<(Family, bool)> {
        Some(match cmd {
            "subscribe" => (Family::Channel, true),
            "unsubscribe" => (Family::Channel, false),
            "psubscribe" => (Family::Pattern, true),
            "punsubscribe" => (Family::Pattern, false),
            "ssubscribe" => (Family::Shard, true),
            "sunsubscribe" => (Family::Shard, false),
            _ => return None,
        })
    }

    pub fn subscribe_command(self) -> &'static str {
        match self {
            Family::Channel => "SUBSCRIBE",
            Family::Pattern => "PSUBSCRIBE",
            Family::Shard => "SSUBSCRIBE",
        }
    }
}

/// A client's subscriptions, as Redis counts them.
#[derive(Debug, Default)]
pub struct Subscriptions {
    pub channels: BTreeSet<Bytes>,
    pub patterns: BTreeSet<Bytes>,
    pub shard: BTreeSet<Bytes>,
}

impl Subscriptions {
    fn set(&mut self, f: Family) -> &mut BTreeSet<Bytes> {
        match f {
            Family::Channel => &mut self.channels,
            Family::Pattern => &mut self.patterns,
            Family::Shard => &mut self.shard,
        }
    }

    /// Records a (un)subscription and returns how many reply frames Redis sends for it: one
    /// per argument, or for an argument-less unsubscribe one per subscription dropped (at
    /// least one).
    /// `changed` gets the items actually added or removed.
    pub fn apply(
        &mut self,
        f: Family,
        subscribe: bool,
        args: &[Bytes],
        changed: &mut Vec<Bytes>,
    ) -> u32 {
        let set = self.set(f);
        if subscribe {
            changed.extend(args.iter().filter(|a| set.insert((*a).clone())).cloned());
            return args.len() as u32;
        }
        if args.is_empty() {
            let n = set.len().max(1) as u32;
            changed.extend(std::mem::take(set));
            return n;
        }
        changed.extend(args.iter().filter(|a| set.remove(*a)).cloned());
        args.len() as u32
    }

    /// Redis's subscribed state (RESP2 restricts the commands a client may send in it).
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }
}

/// The first element of an array or push frame when it is a bulk string.
pub fn frame_kind(frame: &[u8]) -> Option<&[u8]> {
    if !matches!(frame.first(), Some(b'*' | b'>')) {
        return None;
    }
    let nl = memchr::memchr(b'\n', frame)?;
    let rest = frame.get(nl + 1..)?.strip_prefix(b"$")?;
    let nl2 = memchr::memchr(b'\n', rest)?;
    let len: usize = std::str::from_utf8(rest.get(..nl2.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    rest.get(nl2 + 1..nl2 + 1 + len)
}

/// Whether a frame from a subscriber connection is a published message (as opposed to the
/// reply to a command the client sent).
pub fn is_message(frame: &[u8]) -> bool {
    matches!(
        frame_kind(frame),
        Some(b"message" | b"pmessage" | b"smessage")
    )
}

/// The channel a `message` or `pmessage` frame was published on.
pub fn message_channel(frame: &[u8]) -> Option<&[u8]> {
    let skip = match frame_kind(frame)? {
        b"message" | b"smessage" => 1,
        b"pmessage" => 2,
        _ => return None,
    };
    // Header line, then `skip` bulk strings (the kind, and the pattern of a pmessage).
    let mut at = memchr::memchr(b'\n', frame)? + 1;
    for _ in 0..skip {
        at = bulk_at(frame, at)?.1;
    }
    bulk_at(frame, at).map(|(b, _)| b)
}

/// The bulk string starting at `at` and where the next element starts.
fn bulk_at(frame: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = frame.get(at..)?.strip_prefix(b"$")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let len: usize = std::str::from_utf8(rest.get(..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    let start = at + 1 + nl + 1;
    Some((frame.get(start..start + len)?, start + len + 2))
}

/// Whether a message frame is a keyspace notification.
pub fn carries_keyspace(frame: &[u8]) -> bool {
    message_channel(frame).is_some_and(super::pubsub_index::is_keyspace_channel)
}

/// The reply Redis gives to PING from a RESP2 client in subscribed state.
pub fn subscribed_pong(msg: Option<&[u8]>) -> Bytes {
    let mut out = bytes::BytesMut::new();
    hive_common::resp::write_array_header(&mut out, 2);
    hive_common::resp::write_bulk(&mut out, b"pong");
    hive_common::resp::write_bulk(&mut out, msg.unwrap_or(b""));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn subscriptions_count_frames_as_redis() {
        let mut s = Subscriptions::default();
        assert!(!s.active());
        let mut changed = Vec::new();
        assert_eq!(
            s.apply(
                Family::Channel,
                true,
                &[b("a"), b("b"), b("a")],
                &mut changed
            ),
            3
        );
        assert_eq!(changed, [b("a"), b("b")]);
        assert_eq!(s.channels.len(), 2);
        assert!(s.active());
        changed.clear();
        assert_eq!(s.apply(Family::Pattern, false, &[], &mut changed), 1);
        assert_eq!(s.apply(Family::Channel, false, &[b("zz")], &mut changed), 1);
        assert!(changed.is_empty());
        assert_eq!(s.apply(Family::Channel, false, &[], &mut changed), 2);
        assert_eq!(changed, [b("a"), b("b")]);
        assert!(!s.active());
    }

    #[test]
    fn message_channels_found() {
        let m = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n";
        assert_eq!(message_channel(m), Some(&b"news"[..]));
        let p = b">4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$22\r\n__keyevent@0__:expired\r\n$1\r\nk\r\n";
        assert_eq!(message_channel(p), Some(&b"__keyevent@0__:expired"[..]));
        assert!(carries_keyspace(p));
        assert!(!carries_keyspace(m));
    }

    #[test]
    fn messages_are_told_from_replies() {
        assert!(is_message(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n"));
        assert!(is_message(
            b">4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nx\r\n"
        ));
        assert!(!is_message(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"));
        assert!(!is_message(b"+PONG\r\n"));
        assert!(!is_message(b"*2\r\n:1\r\n:2\r\n"));
        assert_eq!(
            frame_kind(b">3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"),
            Some(&b"unsubscribe"[..])
        );
    }
}
