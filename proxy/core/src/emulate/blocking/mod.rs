//! Blocking pops whose keys hash to several slots (`proxy.cross_slot = "emulate"`): BLPOP,
//! BRPOP, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, and BLMOVE/BRPOPLPUSH across slots. The plan
//! is pure (`plan`); `run` blocks on every shard at once and keeps the first to pop.

pub mod plan;
pub mod release;
pub mod run;

pub use plan::{BlockPlan, POPS};
