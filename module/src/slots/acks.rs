//! Which proxies have seen which slot map: each Hive acknowledges the epoch it routes by
//! (`HIVE.SLOTS ACK id epoch`) every poll, and `hive reshard` waits until every proxy that
//! acknowledged recently has seen a change before it moves keys. Pure; bounded in size.

use std::collections::HashMap;

/// An acknowledgement older than this is forgotten (the proxy stopped or lost the node).
pub const FORGET_MS: u64 = 60_000;
/// At most this many proxies are remembered; past it the oldest acknowledgement goes.
pub const MAX_PROXIES: usize = 4096;
const MAX_ID: usize = 128;

#[derive(Debug, Default)]
pub struct Acks {
    by: HashMap<String, (u64, u64)>,
}

impl Acks {
    pub fn ack(&mut self, id: &str, epoch: u64, now_ms: u64) -> Result<(), String> {
        if id.is_empty() || id.len() > MAX_ID || id.chars().any(|c| c.is_whitespace()) {
            return Err(format!(
                "a proxy id is 1-{MAX_ID} characters without spaces"
            ));
        }
        self.by
            .retain(|_, (_, at)| now_ms.saturating_sub(*at) < FORGET_MS);
        if !self.by.contains_key(id) && self.by.len() >= MAX_PROXIES {
            if let Some(oldest) = self
                .by
                .iter()
                .min_by_key(|(_, v)| v.1)
                .map(|(k, _)| k.clone())
            {
                self.by.remove(&oldest);
            }
        }
        self.by.insert(id.to_string(), (epoch, now_ms));
        Ok(())
    }

    /// `(id, epoch, age_ms)` of the proxies heard from within `FORGET_MS`, by id.
    pub fn list(&self, now_ms: u64) -> Vec<(String, u64, u64)> {
        let mut v: Vec<_> = self
            .by
            .iter()
            .map(|(id, (e, at))| (id.clone(), *e, now_ms.saturating_sub(*at)))
            .filter(|(_, _, age)| *age < FORGET_MS)
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_keep_the_latest_and_forget_the_silent() {
        let mut a = Acks::default();
        a.ack("p1", 3, 1000).unwrap();
        a.ack("p2", 2, 1000).unwrap();
        a.ack("p1", 4, 2000).unwrap();
        assert_eq!(
            a.list(2500),
            vec![("p1".into(), 4, 500), ("p2".into(), 2, 1500)]
        );
        assert_eq!(
            a.list(1000 + FORGET_MS),
            vec![("p1".into(), 4, FORGET_MS - 1000)]
        );
        assert!(a.ack("", 1, 0).is_err());
        assert!(a.ack("a b", 1, 0).is_err());
        assert!(a.ack(&"x".repeat(200), 1, 0).is_err());
    }

    #[test]
    fn acks_are_bounded() {
        let mut a = Acks::default();
        for i in 0..MAX_PROXIES + 10 {
            a.ack(&format!("p{i}"), 1, i as u64).unwrap();
        }
        assert_eq!(a.list(MAX_PROXIES as u64 + 10).len(), MAX_PROXIES);
    }
}
