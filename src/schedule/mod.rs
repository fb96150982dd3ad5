//! The auto-snapshot schedule: the policy and its layers ([`policy`]), and the pure rule
//! that says when the next run is due ([`next`]). The timer that drives the engine with
//! it lives in the engine. The policy and the rule do no I/O and read no clock; [`cli`]
//! is `snaptop schedule`.

pub mod cli;
pub mod next;
pub mod policy;

#[cfg(test)]
mod tests;

pub use next::{Due, PastRun, Rule, Runs, Seed, next_run, preview};
pub use policy::{FieldError, Key, Layer, Origin, Policy, Resolved, Settings};
