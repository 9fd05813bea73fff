//! Finding one byte in input that is mostly short: RESP header lines (`*2`, `$16`) end within a
//! few bytes, and most keys hold no `{`. Eight bytes are tested at once for the first 16;
//! `memchr` does the rest. `memchr`'s vector set-up cost 42 instructions per call on such input
//! (five calls per GET request through the proxy, callgrind, issue 27).

/// A one in every byte, and every byte's high bit: the word-at-a-time masks (`command/index.rs`
/// lowercases with them too).
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;
const HEAD: usize = 16;

/// Where the first `needle` of `hay` is.
#[inline]
pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let pattern = ONES * u64::from(needle);
    let mut at = 0;
    while at < HEAD {
        let Some(chunk) = hay.get(at..at + 8) else {
            // Under 8 bytes left before the end.
            return hay[at..].iter().position(|&b| b == needle).map(|i| at + i);
        };
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // The high bit of each byte that was `needle` (zero now); the lowest one is exact,
        // bits above it may be a borrow's.
        let zero = x.wrapping_sub(ONES) & !x & HIGH;
        if zero != 0 {
            return Some(at + zero.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr(needle, &hay[HEAD..]).map(|i| HEAD + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_agrees_with_memchr_at_every_length_and_place() {
        for needle in [b'\r', b'{', 0, 0x80, 0xff] {
            for len in 0..48 {
                for at in 0..=len {
                    // Bytes next to the needle's value on both sides, 0x80 and 0xff, which a
                    // careless zero-byte test could take for it.
                    let mut hay: Vec<u8> = (0..len)
                        .map(|i| [needle ^ 1, needle.wrapping_add(1), 0x80, 0xff, 0][i % 5])
                        .map(|b| if b == needle { needle ^ 2 } else { b })
                        .collect();
                    if at < len {
                        hay[at] = needle;
                        if at + 3 < len {
                            hay[at + 3] = needle;
                        }
                    }
                    assert_eq!(
                        find_byte(needle, &hay),
                        memchr::memchr(needle, &hay),
                        "{needle:#x} {len} {at}"
                    );
                }
            }
        }
    }
}
