//! Replies the proxy makes from several nodes' replies: the merge policies of split and
//! fan-out commands (`merge`), commands sent to every node (`every_node`) and SCAN's cursor
//! across shards (`scan_cursor`).

pub mod every_node;
pub mod merge;
pub mod scan_cursor;
