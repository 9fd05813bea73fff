//! INFO's `# Hotkeys` section and the hot/big key metrics: every worker's sampled keys merged
//! (`metrics::hotkeys`), with the shard each key's slot is on now.

use hive_common::Slot;

use crate::metrics::hotkeys::{merge, Big, Hot};
use crate::state::Shared;

/// How many keys of each list INFO and /metrics show.
pub const TOP: usize = 20;

/// The hottest keys and the biggest replies, merged over every worker.
pub fn top(shared: &Shared, n: usize) -> (Vec<Hot>, Vec<Big>) {
    let workers = shared.stats.workers.all();
    merge(workers.iter().map(|w| &w.hotkeys), n)
}

/// The shard a key is on now, by name.
pub fn shard_of(shared: &Shared, key: &[u8]) -> String {
    let topo = shared.plane.topology.load();
    topo.map
        .shard_of(Slot::for_key(key))
        .map_or("-".to_string(), |i| topo.shard_name(i).to_string())
}

/// A key as INFO prints it: printable ASCII as is, other bytes and the field separators
/// (`,` `=` and `\`) as `\xHH`, so a key can neither break a line nor a field. A `:` stays:
/// INFO lines split at their first one.
pub fn escape(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() && !matches!(b, b',' | b'=' | b'\\') {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `# Hotkeys`: the sampling rate, then `hotkey_N:key=…,shard=…,ops_per_sec=…` hottest first
/// and `bigkey_N:key=…,shard=…,reply_bytes=…` biggest first.
pub fn section(shared: &Shared) -> String {
    let every = shared.live.load().proxy.hotkeys_sample_every;
    let (hot, big) = top(shared, TOP);
    let mut out = format!("# Hotkeys\r\nhotkeys_sample_every:{every}\r\n");
    for (i, h) in hot.iter().enumerate() {
        out.push_str(&format!(
            "hotkey_{i}:key={},shard={},ops_per_sec={:.0}\r\n",
            escape(&h.key),
            escape(shard_of(shared, &h.key).as_bytes()),
            h.ops_per_sec
        ));
    }
    for (i, b) in big.iter().enumerate() {
        out.push_str(&format!(
            "bigkey_{i}:key={},shard={},reply_bytes={}\r\n",
            escape(&b.key),
            escape(shard_of(shared, &b.key).as_bytes()),
            b.reply_bytes
        ));
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_keeps_fields_and_lines_whole() {
        assert_eq!(escape(b"user:1"), "user:1");
        assert_eq!(escape(b"a,b=c\r\n"), "a\\x2cb\\x3dc\\x0d\\x0a");
        assert_eq!(escape(b"plain-key_9"), "plain-key_9");
        assert_eq!(escape(&[0xff, b' ']), "\\xff\\x20");
    }
}
