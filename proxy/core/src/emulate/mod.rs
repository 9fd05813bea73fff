//! Commands the proxy runs across shards itself (`proxy.cross_slot = "emulate"`): multi-key
//! commands whose keys hash to several slots (`plan`, `run`), with scratch keys named into any
//! slot (`tags`), over sub-requests of their own (`router`).

pub mod blocking;
pub mod plan;
pub use hive_upstream::route::router;
pub mod run;
pub mod tags;

pub use plan::Plan;
pub use router::Router;
