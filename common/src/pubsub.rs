//! Reading pub/sub frames without parsing them whole: what kind a frame is, the channel a
//! message was published on, and whether it is a keyspace notification.

pub const KEYSPACE: &[u8] = b"__keyspace@";
pub const KEYEVENT: &[u8] = b"__keyevent@";

/// The channel the Hives of a fleet talk on, on the deployment's nodes.
pub const FLEET_CHANNEL: &str = "__hive__:fleet";

/// Whether `channel` is a keyspace notification channel (made by each node for its own keys).
pub fn is_keyspace_channel(channel: &[u8]) -> bool {
    channel.starts_with(KEYSPACE) || channel.starts_with(KEYEVENT)
}

/// The first element of an array or push frame when it is a bulk string.
pub fn frame_kind(frame: &[u8]) -> Option<&[u8]> {
    if !matches!(frame.first(), Some(b'*' | b'>')) {
        return None;
    }
    let nl = memchr::memchr(b'\n', frame)?;
    let rest = frame.get(nl + 1..)?.strip_prefix(b"$")?;
    let nl2 = memchr::memchr(b'\n', rest)?;
    let len: usize = std::str::from_utf8(rest.get(..nl2.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    rest.get(nl2 + 1..nl2 + 1 + len)
}

/// Whether a frame from a subscriber connection is a published message (as opposed to the
/// reply to a command the client sent).
pub fn is_message(frame: &[u8]) -> bool {
    matches!(
        frame_kind(frame),
        Some(b"message" | b"pmessage" | b"smessage")
    )
}

/// The channel a `message` or `pmessage` frame was published on.
pub fn message_channel(frame: &[u8]) -> Option<&[u8]> {
    let skip = match frame_kind(frame)? {
        b"message" | b"smessage" => 1,
        b"pmessage" => 2,
        _ => return None,
    };
    // Header line, then `skip` bulk strings (the kind, and the pattern of a pmessage).
    let mut at = memchr::memchr(b'\n', frame)? + 1;
    for _ in 0..skip {
        at = bulk_at(frame, at)?.1;
    }
    bulk_at(frame, at).map(|(b, _)| b)
}

/// The bulk string starting at `at` and where the next element starts.
fn bulk_at(frame: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = frame.get(at..)?.strip_prefix(b"$")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let len: usize = std::str::from_utf8(rest.get(..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    let start = at + 1 + nl + 1;
    Some((frame.get(start..start + len)?, start + len + 2))
}

/// Whether a message frame is a keyspace notification.
pub fn carries_keyspace(frame: &[u8]) -> bool {
    message_channel(frame).is_some_and(is_keyspace_channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_channels_found() {
        let m = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n";
        assert_eq!(message_channel(m), Some(&b"news"[..]));
        let p = b">4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$22\r\n__keyevent@0__:expired\r\n$1\r\nk\r\n";
        assert_eq!(message_channel(p), Some(&b"__keyevent@0__:expired"[..]));
        assert!(carries_keyspace(p));
        assert!(!carries_keyspace(m));
    }

    #[test]
    fn messages_are_told_from_replies() {
        assert!(is_message(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n"));
        assert!(is_message(
            b">4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nx\r\n"
        ));
        assert!(!is_message(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"));
        assert!(!is_message(b"+PONG\r\n"));
        assert!(!is_message(b"*2\r\n:1\r\n:2\r\n"));
        assert_eq!(
            frame_kind(b">3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"),
            Some(&b"unsubscribe"[..])
        );
    }
}
