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
        Slot(crc16_xmodem(hash_tag(key)) & (SLOT_COUNT - 1))
    }
}

/// CRC16/XMODEM (Redis's `crc16`: polynomial 0x1021, initial value 0, not reflected), eight
/// bytes per step. Hand-written because it runs for every keyed request: the `crc16` crate's
/// byte-at-a-time loop was 4% of the proxy's CPU under cluster-mode GET P16 (`perf`, issue 27),
/// and `benches/hot_path.rs`'s `slot/for_key_16b` measures the two.
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // The running remainder joins the next two bytes; each byte's share is then its
        // table entry, advanced by the bytes that follow it in the step.
        let hi = c[0] ^ (crc >> 8) as u8;
        let lo = c[1] ^ crc as u8;
        crc = TABLES[7][hi as usize]
            ^ TABLES[6][lo as usize]
            ^ TABLES[5][c[2] as usize]
            ^ TABLES[4][c[3] as usize]
            ^ TABLES[3][c[4] as usize]
            ^ TABLES[2][c[5] as usize]
            ^ TABLES[1][c[6] as usize]
            ^ TABLES[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ TABLES[0][((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

/// `TABLES[k][b]`: the remainder of byte `b` followed by `k` zero bytes.
static TABLES: [[u16; 256]; 8] = tables();

const fn tables() -> [[u16; 256]; 8] {
    let mut t = [[0u16; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = (b as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = crate::find::find_byte(b'{', key) {
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
    fn crc16_matches_the_bytewise_crate_at_every_length() {
        // Lengths 0..=40 cover every remainder after the eight-byte steps, twice over.
        let mut seed = 0x2545_f491_u32;
        for len in 0..=40 {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        seed as u8
                    })
                    .collect();
                assert_eq!(
                    crc16_xmodem(&data),
                    crc16::State::<crc16::XMODEM>::calculate(&data),
                    "{data:?}"
                );
            }
        }
    }

    #[test]
    fn slot_new_bounds() {
        assert!(Slot::new(16383).is_some());
        assert!(Slot::new(16384).is_none());
    }
}
