//! The reply scanner and the value parser on any bytes: no panic, and they agree on where a
//! complete frame ends.
#![no_main]

use hive_common::resp::{parse_value, ReplyScanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sc = ReplyScanner::default();
    let scanned = sc.scan(data);
    let parsed = parse_value(data);
    if let (Ok(Some(n)), Ok(Some((_, m)))) = (&scanned, &parsed) {
        assert_eq!(n, m, "scanner and parser disagree on the frame's end");
    }
});
