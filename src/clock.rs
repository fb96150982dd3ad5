//! Wall-clock times for messages ("waiting until 06:12:05"), in the user's time zone.
//!
//! The local offset can only be read safely while the process has one thread (the
//! `time` crate refuses later), so `main` reads it once at start; UTC until then.

use std::sync::OnceLock;

use time::{OffsetDateTime, UtcOffset};

static LOCAL: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local offset; call before any thread is started.
pub fn init_local_offset() {
    if let Ok(offset) = UtcOffset::current_local_offset() {
        let _ = LOCAL.set(offset);
    }
}

/// The local offset read at start (UTC when it could not be read).
pub fn local_offset() -> UtcOffset {
    LOCAL.get().copied().unwrap_or(UtcOffset::UTC)
}

/// `06:12:05` in local time, with ` UTC` when the local offset is unknown or zero.
pub fn hms(t: OffsetDateTime) -> String {
    let offset = local_offset();
    let t = t.to_offset(offset);
    let suffix = if offset == UtcOffset::UTC { " UTC" } else { "" };
    format!(
        "{:02}:{:02}:{:02}{suffix}",
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// [`hms`] of `now + wait`.
pub fn hms_after(wait: std::time::Duration) -> String {
    hms(OffsetDateTime::now_utc() + wait)
}
