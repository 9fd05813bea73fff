//! The invalidation messages of Redis's client-side caching, as Redis 7.0 writes them: a
//! RESP3 `invalidate` push on the tracking connection itself, or a `message` on
//! `__redis__:invalidate` to a RESP2 connection it redirects to; a null key list is a flush.

use bytes::{Bytes, BytesMut};
use hive_common::resp::{write_array_header, write_bulk, write_integer};

pub const CHANNEL: &[u8] = b"__redis__:invalidate";

fn push_header(out: &mut BytesMut, n: usize) {
    out.extend_from_slice(format!(">{n}\r\n").as_bytes());
}

/// An invalidation of `keys` (`None`: every key, a flush) for a connection speaking RESP3
/// (`resp3`) or a RESP2 subscriber of `__redis__:invalidate`.
pub fn invalidate(keys: Option<&[Bytes]>, resp3: bool) -> Bytes {
    let mut out = BytesMut::new();
    if resp3 {
        push_header(&mut out, 2);
        write_bulk(&mut out, b"invalidate");
    } else {
        write_array_header(&mut out, 3);
        write_bulk(&mut out, b"message");
        write_bulk(&mut out, CHANNEL);
    }
    match keys {
        Some(keys) => {
            write_array_header(&mut out, keys.len());
            keys.iter().for_each(|k| write_bulk(&mut out, k));
        }
        None if resp3 => out.extend_from_slice(b"_\r\n"),
        None => out.extend_from_slice(b"$-1\r\n"),
    }
    out.freeze()
}

/// `tracking-redir-broken`: the connection invalidations were redirected to is gone.
pub fn redirect_broken(id: u64) -> Bytes {
    let mut out = BytesMut::new();
    push_header(&mut out, 2);
    write_bulk(&mut out, b"tracking-redir-broken");
    write_integer(&mut out, id as i64);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidate_frames_match_redis() {
        let k = [Bytes::from_static(b"a")];
        assert_eq!(
            &invalidate(Some(&k), true)[..],
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            &invalidate(Some(&k), false)[..],
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            &invalidate(None, true)[..],
            b">2\r\n$10\r\ninvalidate\r\n_\r\n"
        );
        assert_eq!(
            &redirect_broken(7)[..],
            b">2\r\n$21\r\ntracking-redir-broken\r\n:7\r\n"
        );
    }
}
