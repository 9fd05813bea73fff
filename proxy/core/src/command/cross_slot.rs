//! The errors of keys across slots: Redis Cluster's `-CROSSSLOT`, the same with what to do
//! when Hive still cannot run a command across slots, and SORT patterns refused to users
//! without every key.

use hive_common::resp::Request;

use super::action::NotEmulated;
use crate::error::{ClientReason, ProxyError};

pub fn crossslot() -> ProxyError {
    ProxyError::client(
        ClientReason::CrossSlot,
        "Keys in request don't hash to the same slot",
    )
}

/// `-CROSSSLOT` with what to do, for `proxy.cross_slot = "emulate"` when a command still
/// cannot run across slots.
pub fn crossslot_because(why: NotEmulated, cmd: &[u8]) -> ProxyError {
    let cmd = String::from_utf8_lossy(cmd).to_ascii_lowercase();
    let reason = match why {
        NotEmulated::Blocking => {
            format!("'{cmd}' blocks on one node and cannot wait on several shards at once")
        }
        _ => format!("Hive does not run '{cmd}' across slots"),
    };
    ProxyError::client(
        ClientReason::CrossSlot,
        format!("Keys in request don't hash to the same slot ({reason}; put its keys under one hash tag, such as {{user1}}:a {{user1}}:b)"),
    )
}

/// SORT's BY and GET read keys no key spec names, so Redis allows them only to users with
/// access to every key, with these errors (checked left to right, as Redis parses).
pub(super) fn sort_patterns_denied(req: &Request) -> Option<ProxyError> {
    let mut i = 2;
    while i + 1 < req.argc() {
        let a = req.arg(i);
        if a.eq_ignore_ascii_case(b"by") && req.arg(i + 1).contains(&b'*') {
            return Some(ProxyError::invalid(
                "BY option of SORT denied due to insufficient ACL permissions.",
            ));
        }
        if a.eq_ignore_ascii_case(b"get") {
            return Some(ProxyError::invalid(
                "GET option of SORT denied due to insufficient ACL permissions.",
            ));
        }
        i += if a.eq_ignore_ascii_case(b"limit") {
            3
        } else if a.eq_ignore_ascii_case(b"by") || a.eq_ignore_ascii_case(b"store") {
            2
        } else {
            1
        };
    }
    None
}
