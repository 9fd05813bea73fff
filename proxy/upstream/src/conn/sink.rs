//! `PushSink`: where a subscriber connection sends the messages it receives.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use super::ReplyTx;
use crate::stop::Signal;
use hive_common::pubsub::{carries_keyspace, frame_kind, message_channel, FLEET_CHANNEL};

/// Where a subscriber connection sends the messages it receives, and the bound on how many
/// bytes of them may wait for the client (Redis's `client-output-buffer-limit pubsub`).
#[derive(Debug, Clone)]
pub struct PushSink {
    pub tx: ReplyTx,
    /// Message bytes received and not yet written to the client; the client subtracts.
    pub queued: Arc<AtomicUsize>,
    pub limit: usize,
    /// Disconnects the client once `queued` passes `limit`.
    pub kill: Arc<Signal>,
    /// A connection made only for keyspace notifications: other messages (which the home
    /// connection delivers already) are dropped.
    pub keyspace_only: bool,
}

impl PushSink {
    /// Whether a message goes on to the client.
    pub fn passes(&self, frame: &[u8]) -> bool {
        if self.keyspace_only {
            return carries_keyspace(frame);
        }
        // The Hives of a fleet talk on FLEET_CHANNEL; a client's pattern may match it.
        !(frame_kind(frame) == Some(b"pmessage")
            && message_channel(frame) == Some(FLEET_CHANNEL.as_bytes()))
    }
}
