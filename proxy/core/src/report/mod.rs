//! What the proxy tells about itself: INFO's sections (`info`) and the Prometheus metrics
//! (`prom`), read from the counters, the state stores and the backplane's facts.

pub mod hotkeys;
pub mod info;
pub mod prom;
