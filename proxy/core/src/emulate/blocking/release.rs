//! CLIENT UNBLOCK of a blocking pop that runs across shards: the client's task watches this
//! and releases every shard when asked.

/// CLIENT UNBLOCK of a client whose blocking pop runs across shards: the task releases every
/// shard and answers as the node would (a timeout's null, or `-UNBLOCKED`).
#[derive(Debug, Default)]
pub struct Release {
    /// 0: not asked; 1: TIMEOUT; 2: ERROR.
    mode: std::sync::atomic::AtomicU8,
    pub(super) notify: tokio::sync::Notify,
}

impl Release {
    /// Asks the task to stop blocking; false when it was already asked.
    pub fn release(&self, error: bool) -> bool {
        let asked = self
            .mode
            .compare_exchange(
                0,
                1 + u8::from(error),
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_ok();
        if asked {
            self.notify.notify_one();
        }
        asked
    }

    pub(super) fn error(&self) -> bool {
        self.mode.load(std::sync::atomic::Ordering::Acquire) == 2
    }
}

/// What a client released by CLIENT UNBLOCK ... ERROR gets, as from Redis.
pub(super) const UNBLOCKED: &[u8] = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n";
