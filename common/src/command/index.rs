//! The command table's name index: a case-insensitive, allocation-free lookup of a command by
//! the name a client sent, asked once per request.
//!
//! Names of up to 8 bytes (nearly all that clients send: GET, SET, HGETALL, EVALSHA) are
//! lowercased and compared as one `u64`, eight bytes at a time; FNV over the bytes and a
//! `memcmp` cost GET's lookup 122 instructions (callgrind, issue 27), this about a quarter of
//! that. Longer names take the byte-wise path.

use crate::find::{HIGH, ONES};

/// A bucket's command, `EMPTY` where none.
const EMPTY: u16 = u16::MAX;

/// Longest name looked up; longer ones are no command.
pub(super) const MAX_NAME: usize = 48;

#[derive(Clone, Copy)]
struct Entry {
    /// The lowercased name packed by `pack` (0 for names over 8 bytes).
    packed: u64,
    command: u16,
    len: u8,
}

const VACANT: Entry = Entry {
    packed: 0,
    command: EMPTY,
    len: 0,
};

/// Open addressing, at most a quarter full, so probes stay short.
pub(super) struct NameIndex {
    entries: Vec<Entry>,
}

impl NameIndex {
    /// Indexes `names` (lowercase, as the table holds them) by their position.
    pub fn build<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> NameIndex {
        let size = (names.len() * 4).next_power_of_two().max(16);
        let mut entries = vec![VACANT; size];
        for (i, name) in names.enumerate() {
            let name = name.as_bytes();
            let mut buf = [0u8; MAX_NAME];
            let Some((h, _)) = hash(name, &mut buf) else {
                continue;
            };
            let mut at = h as usize & (size - 1);
            while entries[at].command != EMPTY {
                at = (at + 1) & (size - 1);
            }
            entries[at] = Entry {
                packed: pack(name).unwrap_or(0),
                command: i as u16,
                len: name.len() as u8,
            };
        }
        NameIndex { entries }
    }

    /// The position of the command named `name`, in any case; `name_of` gives the indexed
    /// names back, for the names too long to pack.
    pub fn find<'a>(&self, name: &[u8], name_of: impl Fn(u16) -> &'a str) -> Option<u16> {
        let mask = self.entries.len() - 1;
        if let Some(x) = pack(name) {
            let mut at = hash_packed(x) as usize & mask;
            loop {
                let e = self.entries[at];
                if e.command == EMPTY {
                    return None;
                }
                // The length too: a NUL byte in the name packs like the padding.
                if e.packed == x && usize::from(e.len) == name.len() {
                    return Some(e.command);
                }
                at = (at + 1) & mask;
            }
        }
        let mut buf = [0u8; MAX_NAME];
        let (h, lower) = hash(name, &mut buf)?;
        let mut at = h as usize & mask;
        loop {
            let e = self.entries[at];
            if e.command == EMPTY {
                return None;
            }
            if usize::from(e.len) == lower.len() && name_of(e.command).as_bytes() == lower {
                return Some(e.command);
            }
            at = (at + 1) & mask;
        }
    }
}

/// The bucket hash of `name` (any case), with its lowercased bytes.
fn hash<'a>(name: &[u8], buf: &'a mut [u8; MAX_NAME]) -> Option<(u32, &'a [u8])> {
    let out = buf.get_mut(..name.len())?;
    // FNV-1a over the lowercased name, unless it packs.
    let mut h: u32 = 0x811c_9dc5;
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
        h = (h ^ u32::from(*o)).wrapping_mul(0x0100_0193);
    }
    Some((pack(name).map_or(h, hash_packed), out))
}

fn hash_packed(x: u64) -> u32 {
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

/// A name of 1 to 8 bytes, lowercased, little-endian in a `u64` whose other bytes are zero.
fn pack(name: &[u8]) -> Option<u64> {
    if name.is_empty() || name.len() > 8 {
        return None;
    }
    let mut x = 0u64;
    for (i, &b) in name.iter().enumerate() {
        x |= u64::from(b) << (8 * i);
    }
    Some(lower(x))
}

/// ASCII lowercase of eight bytes at once; bytes outside `A..=Z` (non-ASCII too) unchanged.
fn lower(x: u64) -> u64 {
    let low7 = x & !HIGH;
    // Per byte, the high bit says: its low 7 bits are at least `A`, resp. above `Z` (no sum
    // reaches 0x100, so no carry crosses into the next byte).
    let from_a = low7 + ONES * u64::from(0x80 - b'A');
    let past_z = low7 + ONES * u64::from(0x7f - b'Z');
    let upper = from_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_matches_ascii_lowercase_for_every_byte() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let x = u64::from(b) << (8 * at) | 0x4100_0000_0000_005a_u64 & !(0xff << (8 * at));
                let want = u64::from_le_bytes(x.to_le_bytes().map(|c| c.to_ascii_lowercase()));
                assert_eq!(lower(x), want, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn index_finds_names_in_any_case_and_only_them() {
        let names = ["get", "set", "zrangebyscore", "client", "a", "12345678"];
        let index = NameIndex::build(names.iter().copied());
        let find = |n: &[u8]| index.find(n, |i| names[usize::from(i)]);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(find(n.as_bytes()), Some(i as u16));
            assert_eq!(find(n.to_uppercase().as_bytes()), Some(i as u16));
        }
        assert_eq!(find(b"GeT"), Some(0));
        assert_eq!(find(b"ZRangeByScore"), Some(2));
        // A NUL packs like the padding, an empty name or one past MAX_NAME is none.
        assert_eq!(find(b"get\0"), None);
        assert_eq!(find(b"\0get"), None);
        assert_eq!(find(b""), None);
        assert_eq!(find(&[b'a'; 100]), None);
        assert_eq!(find(b"ge"), None);
        assert_eq!(find(b"gets"), None);
        assert_eq!(find(b"zrangebyscorE\0"), None);
        // Non-ASCII bytes are not folded: 0xc7 is not 'G' with a high bit.
        assert_eq!(find(&[0xc7, b'e', b't']), None);
        assert_eq!(find(&[b'g' | 0x80, b'e', b't']), None);
    }
}
