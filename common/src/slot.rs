//! Redis Cluster hash slots: CRC16/XMODEM of the key (or its `{hash tag}`) modulo 16384.

use serde::{Deserialize, Serialize};

pub const SLOT_COUNT: u16 = 16384;

/// A hash slot in `0..16384`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slot(u16);

impl Slot {
    /// `None` if `n >= 16384`.
    pub fn new(n: u16) -> Option<Slot> {
        (n < SLOT_COUNT).then_some(Slot(n))
    }

    pub fn get(self) -> u16 {
        self.0
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The slot of `key`, following Redis's `keyHashSlot`: if the key has a `{` and a later
    /// `}` with at least one byte between them, only those bytes are hashed.
    pub fn for_key(key: &[u8]) -> Slot {
        Slot(crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) & (SLOT_COUNT - 1))
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(close) = memchr::memchr(b'}', &key[open + 1..]) {
            if close > 0 {
                return &key[open + 1..open + 1 + close];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_known_values() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(Slot::for_key(b"123456789").get(), 0x31C3 & 16383);
        assert_eq!(Slot::for_key(b"foo").get(), 12182);
        assert_eq!(Slot::for_key(b"").get(), 0);
    }

    #[test]
    fn slot_hash_tags() {
        let foo = Slot::for_key(b"foo");
        assert_eq!(Slot::for_key(b"{foo}.bar"), foo);
        assert_eq!(Slot::for_key(b"x{foo}{bar}"), foo);
        // Keys without a usable tag hash whole, as CLUSTER KEYSLOT says.
        let whole = |k: &[u8]| crc16::State::<crc16::XMODEM>::calculate(k) % 16384;
        assert_eq!(Slot::for_key(b"{}foo").get(), whole(b"{}foo"));
        assert_ne!(Slot::for_key(b"{}foo"), Slot::for_key(b"foo"));
        assert_eq!(Slot::for_key(b"{{foo}}"), Slot::for_key(b"{foo"));
        assert_eq!(Slot::for_key(b"foo}{").get(), whole(b"foo}{"));
        assert_eq!(Slot::for_key(b"}{foo}"), foo);
    }

    #[test]
    fn slot_new_bounds() {
        assert!(Slot::new(16383).is_some());
        assert!(Slot::new(16384).is_none());
    }
}
