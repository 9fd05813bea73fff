//! States a connection can be in beyond plain requests: holding a connection of its own for a
//! blocking command (`blocking`), subscribed (`subscriber`, with
//! keyspace notifications from every master in `keyspace`), in a transaction (`transaction`,
//! across shards in `transaction::shards`), running a command the proxy emulates across slots
//! (`emulated`), held by CLIENT PAUSE (`paused`), tracking keys for client-side caching
//! (`tracking`), or reading and writing through the near cache (`near_cache`).

pub(crate) mod blocking;
pub(crate) mod emulated;
pub(crate) mod keyspace;
pub(crate) mod near_cache;
pub(crate) mod paused;
pub(crate) mod subscriber;
pub(crate) mod tracking;
pub(crate) mod transaction;
