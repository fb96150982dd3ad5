//! The snapshot engine: runs snapshots on tokio, reports progress as owned events.

pub mod events;
pub mod model;
