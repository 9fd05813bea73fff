//! What a CONFIG SET sent to every node also changes in the proxy: the slow log's
//! `slowlog-log-slower-than` and `slowlog-max-len`, so SLOWLOG through Hive follows them as
//! it does on one Redis. Values Redis would refuse change nothing here (the nodes refuse them).

use hive_common::resp::{parse_i64, Request};

use crate::state::Shared;

pub fn follow_config_set(req: &Request, shared: &Shared) {
    if !(req.arg(0).eq_ignore_ascii_case(b"config") && req.arg(1).eq_ignore_ascii_case(b"set")) {
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
