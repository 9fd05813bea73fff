//! Gives memory back to the OS after bursts. glibc's malloc raises its mmap threshold each time
//! a large block is freed (up to 32 MB), after which buffers of large values come from the heap
//! and stay there: an idle proxy kept 16-66 MB after a burst of 10 MB replies. Fixing the
//! threshold at its starting value (128 KiB) keeps every large buffer in its own mapping, which
//! `free` returns at once; small allocations, the hot path, are untouched. glibc reads these
//! settings only when a process starts, so `hive proxy` and `hive up` re-execute themselves once
//! with them set (same pid, nothing else changes). Setting `MALLOC_MMAP_THRESHOLD_` yourself
//! opts out. jemalloc was measured too: it gives memory back as well, but its large-buffer
//! growth copies where glibc remaps, and 20 concurrent 50 MB SETs took 1.8x as long
//! (benches/README.md).

use std::os::unix::process::CommandExt;

const SETTINGS: [(&str, &str); 2] = [
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("MALLOC_TRIM_THRESHOLD_", "131072"),
];

/// Re-executes this process with the settings unless they are set (returns only then, or if
/// the re-exec fails, which is logged and harmless).
pub fn tune() {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os(SETTINGS[0].0).is_some()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).envs(SETTINGS);
    let err = cmd.exec();
    eprintln!("hive: could not re-execute with malloc settings ({err}); continuing without");
}
