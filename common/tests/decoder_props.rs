//! Property tests of the request decoder and the reply scanner, bounded for CI: random and
//! mutated frames never panic, and a request split at any byte decodes as it does whole.

use bytes::BytesMut;
use hive_common::resp::{parse_value, ReplyScanner, Request, RequestDecoder};
use proptest::prelude::*;

fn decode_all(d: &mut RequestDecoder, buf: &mut BytesMut) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut out = Vec::new();
    loop {
        match d.decode(buf) {
            Ok(Some(r)) => out.push(r.args().map(<[u8]>::to_vec).collect()),
            Ok(None) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = decode_all(&mut d, &mut buf);
    }

    #[test]
    fn decoder_split_anywhere_equals_whole(reqs in prop::collection::vec(args(), 1..5), cut in any::<prop::sample::Index>()) {
        let mut wire = Vec::new();
        for r in &reqs {
            wire.extend_from_slice(Request::from_args(r).raw());
        }
        let at = cut.index(wire.len() + 1);
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(&wire[..at]);
        let mut got = decode_all(&mut d, &mut buf).unwrap();
        buf.extend_from_slice(&wire[at..]);
        got.extend(decode_all(&mut d, &mut buf).unwrap());
        prop_assert_eq!(got, reqs);
    }

    #[test]
    fn decoder_and_scanner_survive_mutated_frames(reqs in prop::collection::vec(args(), 1..4), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut wire = Vec::new();
        for r in &reqs {
            wire.extend_from_slice(Request::from_args(r).raw());
        }
        for (i, b) in flips {
            let i = i.index(wire.len());
            wire[i] = b;
        }
        let mut d = RequestDecoder::default();
        let mut buf = BytesMut::from(&wire[..]);
        let _ = decode_all(&mut d, &mut buf);
        // The same bytes read as replies: scanning and parsing end without a panic.
        let mut at = 0;
        while at < wire.len() {
            let mut sc = ReplyScanner::default();
            match sc.scan(&wire[at..]) {
                Ok(Some(n)) => at += n,
                _ => break,
            }
        }
        let _ = parse_value(&wire);
    }
}
