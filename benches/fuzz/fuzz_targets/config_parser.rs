//! hive.toml parsing and validation on any text: an error names where it is, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = hive_proxy::config::Config::parse(text, Path::new("fuzz.toml")) {
        // hive.toml's own mistakes name it; an ACL or TLS file's name that file.
        assert!(e.to_string().contains(": "), "{e}");
    }
});
