//! The auto-snapshot schedule: the policy and its layers ([`policy`]), and the pure rule
//! that says when the next run is due ([`next`]). The timer that drives the engine with
//! it lives in the engine; this module does no I/O and reads no clock.

pub mod next;
pub mod policy;

#[cfg(test)]
mod tests;

pub use next::{Due, PastRun, Rule, Runs, Seed, next_run, preview};
pub use policy::{FieldError, Key, Layer, Origin, Policy, Resolved, Settings};
