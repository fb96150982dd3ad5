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

/// A `time` instant (the rest of the app's) as a jiff one (the schedule's).
pub fn timestamp_of(t: time::OffsetDateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(t.unix_timestamp_nanos())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// A jiff instant as a `time` one, in UTC.
pub fn offset_of(t: jiff::Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanosecond())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
