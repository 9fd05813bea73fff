//! The request decoder on any bytes, whole and split in two: no panic, the same requests.
#![no_main]

use bytes::BytesMut;
use hive_common::resp::{Limits, RequestDecoder};
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]], unauthenticated: bool) -> (Vec<Vec<Vec<u8>>>, bool) {
    let mut d = RequestDecoder::new(Limits {
        max_bulk_len: 1 << 20,
        ..Limits::default()
    });
    d.set_unauthenticated(unauthenticated);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(r)) => out.push(r.args().map(<[u8]>::to_vec).collect()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let whole = decode(&[rest], first & 1 == 1);
    let at = (first as usize * 7) % (rest.len() + 1);
    let split = decode(&[&rest[..at], &rest[at..]], first & 1 == 1);
    assert_eq!(whole, split, "a split changed what decoded");
});
