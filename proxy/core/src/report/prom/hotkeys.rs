//! Hot and big keys in `/metrics`: the top 20 of each, from the sampled requests, with the
//! key (escaped as INFO shows it) and its shard as labels.

use super::Families;
use crate::report::hotkeys::{escape, shard_of, top, TOP};
use crate::state::Shared;

pub(super) fn metrics(shared: &Shared, f: &mut Families) {
    let (hot, big) = top(shared, TOP);
    for h in &hot {
        let (key, shard) = (escape(&h.key), shard_of(shared, &h.key));
        f.gauge(
            "hive_hotkey_ops_per_second",
            "The hottest keys by requests per second, estimated from 1 request in proxy.hotkeys_sample_every (top 20).",
            &[("key", &key), ("shard", &shard)],
            h.ops_per_sec.round(),
        );
    }
    for b in &big {
        let (key, shard) = (escape(&b.key), shard_of(shared, &b.key));
        f.gauge(
            "hive_bigkey_reply_bytes",
            "The keys with the biggest replies among the sampled requests, in bytes (top 20).",
            &[("key", &key), ("shard", &shard)],
            b.reply_bytes as f64,
        );
    }
}
