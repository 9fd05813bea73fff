//! Byte sizes written as Redis writes them (`1gb`, `64mb`, `512kb`, `100k`, or a plain number),
//! and `client-output-buffer-limit`'s `<hard> <soft> <soft seconds>`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes; `0` means no limit where a limit is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemSize(pub usize);

/// Redis's `memtoull`: `k`/`m`/`g` are powers of 1000, `kb`/`mb`/`gb` powers of 1024, case
/// does not matter.
pub fn parse_memsize(text: &str) -> Result<usize, String> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "`{text}` is not a size (use e.g. 512mb, 1gb or bytes)"
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (use e.g. 512mb, 1gb or bytes)"))?;
    n.checked_mul(mul)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("`{text}` is too large"))
}

impl<'de> Deserialize<'de> for MemSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MemSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => usize::try_from(n)
                .map(MemSize)
                .map_err(|_| serde::de::Error::custom("too large")),
            Raw::S(s) => parse_memsize(&s)
                .map(MemSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for MemSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0 as u64)
    }
}

/// Redis's `client-output-buffer-limit normal <hard> <soft> <soft seconds>`: a client whose
/// unwritten replies pass `hard`, or stay above `soft` for `soft_seconds`, is disconnected.
/// Above `soft` the proxy also stops reading the client's requests until it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_seconds: u64,
}

impl OutputLimit {
    pub fn parse(text: &str) -> Result<OutputLimit, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [hard, soft, secs] = parts[..] else {
            return Err(format!(
                "`{text}` is not `<hard> <soft> <soft seconds>` (e.g. \"1gb 256mb 60\")"
            ));
        };
        Ok(OutputLimit {
            hard: parse_memsize(hard)?,
            soft: parse_memsize(soft)?,
            soft_seconds: secs
                .parse()
                .map_err(|_| format!("`{secs}` is not a number of seconds"))?,
        })
    }
}

impl<'de> Deserialize<'de> for OutputLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OutputLimit, D::Error> {
        OutputLimit::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for OutputLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{} {} {}",
            self.hard, self.soft, self.soft_seconds
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memsize_reads_redis_units() {
        assert_eq!(parse_memsize("1gb"), Ok(1 << 30));
        assert_eq!(parse_memsize("64MB"), Ok(64 << 20));
        assert_eq!(parse_memsize("100k"), Ok(100_000));
        assert_eq!(parse_memsize("42"), Ok(42));
        assert!(parse_memsize("12xb").is_err());
        assert!(parse_memsize("mb").is_err());
        assert!(parse_memsize("99999999999999gb").is_err());
    }

    #[test]
    fn output_limit_reads_hard_soft_seconds() {
        assert_eq!(
            OutputLimit::parse("1gb 256mb 60"),
            Ok(OutputLimit {
                hard: 1 << 30,
                soft: 256 << 20,
                soft_seconds: 60
            })
        );
        assert!(OutputLimit::parse("1gb 256mb").is_err());
        assert!(OutputLimit::parse("1gb x 60").is_err());
    }
}
