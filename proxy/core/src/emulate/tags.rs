//! A short hash tag for every slot, so the proxy can name a scratch key that lands in any slot
//! it chooses (`{<tag>}...`).

use std::sync::OnceLock;

use hive_common::slot::SLOT_COUNT;
use hive_common::Slot;

/// 16384 tags of at most four characters, found once (about 150,000 CRC16s, under 10 ms).
fn table() -> &'static [[u8; 4]] {
    static TAGS: OnceLock<Vec<[u8; 4]>> = OnceLock::new();
    TAGS.get_or_init(|| {
        const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut tags = vec![[0u8; 4]; SLOT_COUNT as usize];
        let mut found = vec![false; SLOT_COUNT as usize];
        let mut left = SLOT_COUNT as usize;
        let mut n = 0usize;
        while left > 0 {
            let mut t = [b'0'; 4];
            let mut k = n;
            for c in t.iter_mut().rev() {
                *c = ALPHABET[k % 36];
                k /= 36;
            }
            let s = Slot::for_key(&t).index();
            if !found[s] {
                found[s] = true;
                tags[s] = t;
                left -= 1;
            }
            n += 1;
        }
        tags
    })
}

/// A tag whose slot is `slot`.
pub fn tag(slot: Slot) -> &'static [u8] {
    &table()[slot.index()]
}

/// A scratch key name in `slot`: `{<tag>}hive:x:<unique>`.
pub fn scratch_key(slot: Slot, unique: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + unique.len());
    k.push(b'{');
    k.extend_from_slice(tag(slot));
    k.extend_from_slice(b"}hive:x:");
    k.extend_from_slice(unique.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_cover_every_slot() {
        for i in 0..hive_common::slot::SLOT_COUNT {
            let s = Slot::new(i).unwrap();
            assert_eq!(Slot::for_key(&scratch_key(s, "a:1")), s);
        }
    }
}
