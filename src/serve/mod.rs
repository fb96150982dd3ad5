//! The daemon's parts (`snaptop serve`, issue 13). So far: [`metrics`], the Prometheus
//! exposition of what the engine and the cache say.

pub mod metrics;
