//! `[cache]`: the near cache (off by default), which answers hot reads from the proxy's
//! memory, and the checks on its settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, MemSize};

/// Which keys a miss may bring into the near cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admit {
    /// Keys the hot-key sampler (`proxy.hotkeys_sample_every`) counts among the hottest.
    Hot,
    /// Every key that matches `key_patterns`.
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Keys, values and bookkeeping held at most; past it the least recently used go.
    pub max_memory: MemSize,
    /// Glob patterns in Redis's syntax; empty: every key.
    pub key_patterns: Vec<String>,
    pub admit: Admit,
    /// A larger value (a string, or a whole hash) is never cached.
    pub max_value_bytes: MemSize,
    /// An entry is dropped this long after it was read at the latest; 0: kept until an
    /// invalidation (or the key's TTL) ends it.
    pub max_ttl_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            max_memory: MemSize(256 << 20),
            key_patterns: Vec::new(),
            admit: Admit::Hot,
            max_value_bytes: MemSize(64 << 10),
            max_ttl_ms: 0,
        }
    }
}

impl Config {
    pub(super) fn validate_cache(&self, file: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
        };
        let c = &self.cache;
        if !c.enabled {
            return Ok(());
        }
        if c.max_memory.0 < 1 << 20 {
            return Err(bad("cache.max_memory", "must be at least 1mb"));
        }
        if c.max_value_bytes.0 == 0 {
            return Err(bad("cache.max_value_bytes", "must be above 0"));
        }
        if c.admit == Admit::Hot && self.proxy.hotkeys_sample_every == 0 {
            return Err(bad(
                "cache.admit",
                "\"hot\" needs the hot-key sampler, which proxy.hotkeys_sample_every = 0 turns off (use admit = \"all\", or sample)",
            ));
        }
        if c.key_patterns.iter().any(|p| p.is_empty()) {
            return Err(bad("cache.key_patterns", "a pattern is empty"));
        }
        Ok(())
    }
}
