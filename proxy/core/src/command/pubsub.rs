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
}
