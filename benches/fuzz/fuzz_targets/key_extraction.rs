//! Key extraction and classification of any request: no panic, and every key position is an
//! argument of the request.
#![no_main]

use hive_common::command::{CommandTable, KeyPositions};
use hive_common::resp::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let req = Request::from_args(&args);
    let mut keys = KeyPositions::new();
    let _ = hive_proxy::command::classify::classify(&req, &mut keys);
    let t = CommandTable::get();
    if let Some(spec) = t.lookup(req.arg(0)) {
        let spec = req.get(1).and_then(|s| spec.subcommand(s)).unwrap_or(spec);
        let mut keys = KeyPositions::new();
        if spec.keys(&req, &mut keys).is_ok() {
            assert!(keys.iter().all(|&k| (k as usize) < req.argc()));
        }
    }
});
