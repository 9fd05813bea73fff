//! SLOWLOG GET/LEN/RESET/HELP, answered from the proxy's own slow log (`metrics::slowlog`):
//! the requests that were slow through the proxy, which is what the client saw; and the
//! CONFIG SET parameters that log follows.

use bytes::BytesMut;
use hive_common::resp::{parse_i64, write_array_header, write_integer, write_simple, Request};

use crate::command::local_cmd::SlowlogSub;
use crate::error::ProxyError;
use crate::state::Shared;

const HELP: [&str; 10] = [
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
];

pub fn answer(
    cmd: SlowlogSub,
    req: &Request,
    shared: &Shared,
    out: &mut BytesMut,
) -> Result<(), ProxyError> {
    match cmd {
        SlowlogSub::Get => {
            let count = match req.get(2) {
                None => Some(10),
                Some(a) => {
                    let n = parse_i64(a).ok_or_else(|| {
                        ProxyError::invalid("value is not an integer or out of range")
                    })?;
                    if n < -1 {
                        return Err(ProxyError::invalid(
                            "count should be greater than or equal to -1",
                        ));
                    }
                    usize::try_from(n).ok()
                }
            };
            shared.slowlog.write_get(count, out);
        }
        SlowlogSub::Len => write_integer(out, shared.slowlog.len() as i64),
        SlowlogSub::Reset => {
            shared.slowlog.reset();
            write_simple(out, "OK");
        }
        SlowlogSub::Help => {
            write_array_header(out, HELP.len());
            for line in HELP {
                write_simple(out, line);
            }
        }
    }
    Ok(())
}

/// What a CONFIG SET sent to every node also changes in the proxy: the slow log's
/// `slowlog-log-slower-than` and `slowlog-max-len`, so SLOWLOG through Hive follows them as
/// it does on one Redis. Values Redis would refuse change nothing here (the nodes refuse them).
pub fn follow_config_set(req: &Request, shared: &Shared) {
    if !req.arg(0).eq_ignore_ascii_case(b"config") {
        return;
    }
    if req.arg(1).eq_ignore_ascii_case(b"resetstat") {
        // INFO's counters start again, as on one Redis.
        crate::report::info::reset_counters(shared);
        return;
    }
    if !req.arg(1).eq_ignore_ascii_case(b"set") {
        return;
    }
    let mut i = 2;
    while i + 1 < req.argc() {
        let (name, value) = (req.arg(i), parse_i64(req.arg(i + 1)));
        if name.eq_ignore_ascii_case(b"slowlog-log-slower-than") {
            if let Some(us) = value.filter(|&v| v >= -1) {
                shared.slowlog.set_slower_than(us);
            }
        } else if name.eq_ignore_ascii_case(b"slowlog-max-len") {
            if let Some(n) = value.and_then(|v| usize::try_from(v).ok()) {
                shared.slowlog.set_max_len(n);
            }
        }
        i += 2;
    }
}
