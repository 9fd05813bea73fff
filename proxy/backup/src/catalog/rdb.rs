//! What an RDB file's opening says, read without loading it: the Redis version that wrote it
//! (`redis-ver` aux field) and db 0's key and TTL counts (the RESIZEDB opcode, written at the
//! fork, so the count is the snapshot's own). Pure: unit-tested on bytes.

const AUX: u8 = 0xFA;
const RESIZEDB: u8 = 0xFB;
const SELECTDB: u8 = 0xFE;
const EOF: u8 = 0xFF;
const FUNCTION2: u8 = 0xF5;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub rdb_version: u32,
    pub redis_version: Option<String>,
    /// db 0's keys and keys with a TTL; 0 when db 0 is empty (Redis writes no db section).
    pub db0_keys: u64,
    pub db0_expires: u64,
    /// Whether the header was read up to the first key (or the end of an empty file).
    pub complete: bool,
}

/// Reads what it can from the first bytes of an RDB (a few KB suffice, unless functions or
/// large aux fields come first). `Err` means the bytes are not an RDB.
pub fn header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 9 || &bytes[..5] != b"REDIS" {
        return Err("not an RDB file (no REDIS signature)".into());
    }
    let version = std::str::from_utf8(&bytes[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or("not an RDB file (bad version)")?;
    let mut h = Header {
        rdb_version: version,
        ..Header::default()
    };
    let mut r = Reader { b: bytes, at: 9 };
    let mut db: Option<u64> = None;
    loop {
        let Some(op) = r.byte() else { return Ok(h) };
        match op {
            AUX => {
                let (Some(k), Some(v)) = (r.string(), r.string()) else {
                    return Ok(h);
                };
                if k == b"redis-ver" {
                    h.redis_version = Some(String::from_utf8_lossy(&v).into_owned());
                }
            }
            FUNCTION2 => {
                if r.string().is_none() {
                    return Ok(h);
                }
            }
            SELECTDB => match r.length() {
                Some((n, false)) => db = Some(n),
                _ => return Ok(h),
            },
            RESIZEDB => {
                let (Some((keys, false)), Some((expires, false))) = (r.length(), r.length()) else {
                    return Ok(h);
                };
                if db == Some(0) {
                    h.db0_keys = keys;
                    h.db0_expires = expires;
                }
                h.complete = true;
                return Ok(h);
            }
            EOF => {
                h.complete = true;
                return Ok(h);
            }
            // A key (or an opcode this reader does not know): the header ended without db 0's
            // sizes, which only RDBs older than version 7 omit.
            _ => return Ok(h),
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    /// A length, and whether it is a special string encoding instead.
    fn length(&mut self) -> Option<(u64, bool)> {
        let first = self.byte()?;
        match first >> 6 {
            0 => Some((u64::from(first & 0x3F), false)),
            1 => Some((
                (u64::from(first & 0x3F) << 8) | u64::from(self.byte()?),
                false,
            )),
            2 => match first {
                0x80 => Some((
                    u64::from(u32::from_be_bytes(self.take(4)?.try_into().ok()?)),
                    false,
                )),
                0x81 => Some((u64::from_be_bytes(self.take(8)?.try_into().ok()?), false)),
                _ => None,
            },
            _ => Some((u64::from(first & 0x3F), true)),
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let (n, special) = self.length()?;
        if !special {
            return Some(self.take(usize::try_from(n).ok()?)?.to_vec());
        }
        let int = |bytes: &[u8]| -> i64 {
            match bytes.len() {
                1 => i64::from(bytes[0] as i8),
                2 => i64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
                _ => i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            }
        };
        match n {
            0 => Some(int(self.take(1)?).to_string().into_bytes()),
            1 => Some(int(self.take(2)?).to_string().into_bytes()),
            2 => Some(int(self.take(4)?).to_string().into_bytes()),
            // LZF: aux fields are never this long; skip it, its value is not needed.
            3 => {
                let (clen, _) = self.length()?;
                let _ = self.length()?;
                self.take(usize::try_from(clen).ok()?)?;
                Some(Vec::new())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aux(out: &mut Vec<u8>, k: &str, v: &[u8]) {
        out.push(AUX);
        out.push(k.len() as u8);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v);
    }

    #[test]
    fn rdb_header_reads_version_and_db0_sizes() {
        let mut b = b"REDIS0010".to_vec();
        aux(&mut b, "redis-ver", b"\x067.0.15");
        aux(&mut b, "redis-bits", b"\xC0\x40"); // int8 64
        aux(&mut b, "ctime", b"\xC2\x01\x02\x03\x04"); // int32
        b.extend_from_slice(&[SELECTDB, 0, RESIZEDB, 0x41, 0x00, 0x05, 0x00]);
        let h = header(&b).unwrap();
        assert_eq!(h.rdb_version, 10);
        assert_eq!(h.redis_version.as_deref(), Some("7.0.15"));
        assert_eq!((h.db0_keys, h.db0_expires), (256, 5));
        assert!(h.complete);
    }

    #[test]
    fn rdb_header_of_empty_and_other_db_files() {
        let mut b = b"REDIS0010".to_vec();
        b.push(EOF);
        assert_eq!(header(&b).unwrap().db0_keys, 0);
        assert!(header(&b).unwrap().complete);
        // Keys only in db 3: db 0 holds none.
        let mut b = b"REDIS0010".to_vec();
        b.extend_from_slice(&[SELECTDB, 3, RESIZEDB, 0x80, 0, 1, 0, 0, 0]);
        assert_eq!(header(&b).unwrap().db0_keys, 0);
        // 32-bit length.
        let mut b = b"REDIS0010".to_vec();
        b.extend_from_slice(&[SELECTDB, 0, RESIZEDB, 0x80, 0, 1, 0x86, 0xA0, 0]);
        assert_eq!(header(&b).unwrap().db0_keys, 100_000);
    }

    #[test]
    fn rdb_header_refuses_other_files_and_survives_truncation() {
        assert!(header(b"hello world").is_err());
        assert!(header(b"REDIS").is_err());
        let mut b = b"REDIS0010".to_vec();
        aux(&mut b, "redis-ver", b"\x057.0");
        let h = header(&b).unwrap();
        assert!(!h.complete);
        for cut in 9..b.len() {
            let _ = header(&b[..cut]);
        }
    }
}
