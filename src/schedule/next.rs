//! When the next automatic snapshot is due: a pure function of the policy, the runs so
//! far, the time now and the box's jitter seed, so every edge (window edges, the week,
//! daylight-saving changes, cooldown, missed runs) is tested without a clock.
//!
//! The rule:
//! - Inside the business window, a run is due one business interval after the last run
//!   (of any trigger). When the window opens after the last run, the business cadence
//!   starts at once: due at the opening plus the box's fixed offset.
//! - Outside it, a run is due one off-hours interval after the last run; a window that
//!   opens first wins (above).
//! - No automatic run within `cooldown_after_manual` of a manual one.
//! - A due time already past (the process was closed, or a run overran) is due now, once:
//!   missed slots are never replayed one by one (systemd's `Persistent=true`).
//! - The window is read in calendar terms in the policy's zone (08:00 local on the day
//!   after a daylight-saving change too); intervals are spans of real time.
//! - Jitter: the window's opening is shifted by a fixed per-box share of the jitter
//!   (boxes of one team spread out instead of all asking GitHub at 08:00), and each
//!   interval by a small per-run share, so a box's runs stay evenly spaced.

use std::time::Duration;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use sha2::{Digest, Sha256};

use super::policy::Policy;

/// Share of the jitter span used for the fixed per-box offset of a window's opening.
const FIXED_SHARE: f64 = 0.8;
/// Share of the jitter span a run's interval may grow by (per run, deterministic).
const PER_RUN_SHARE: f64 = 0.2;
/// How far ahead windows are looked for: past the longest interval and a long weekend.
const HORIZON_DAYS: i64 = 15;

/// A run the rule counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastRun {
    pub started: Timestamp,
    /// Started by someone (TUI, CLI, HTTP) rather than by the schedule.
    pub manual: bool,
    /// Whether it found new deployments (None: not known, e.g. it failed).
    pub changed: Option<bool>,
}

/// What the rule needs of the run history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Runs {
    pub last: Option<Timestamp>,
    pub last_manual: Option<Timestamp>,
    /// Runs in a row, newest back, that found new deployments (adaptive intervals).
    pub changed_streak: u32,
}

impl Runs {
    /// From runs oldest first.
    pub fn from_runs(runs: impl IntoIterator<Item = PastRun>) -> Runs {
        let mut r = Runs::default();
        for run in runs {
            r.record(run);
        }
        r
    }

    pub fn record(&mut self, run: PastRun) {
        if self.last.is_none_or(|l| run.started >= l) {
            self.last = Some(run.started);
        }
        if run.manual && self.last_manual.is_none_or(|l| run.started >= l) {
            self.last_manual = Some(run.started);
        }
        self.changed_streak = match run.changed {
            Some(true) => self.changed_streak.saturating_add(1),
            Some(false) => 0,
            // A run that could not tell keeps the interval where it was.
            None => self.changed_streak,
        };
    }
}

/// The per-box jitter seed; `None` turns jitter off (`--no-jitter`, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seed(pub Option<u64>);

impl Seed {
    pub const NONE: Seed = Seed(None);

    /// Derived from the host name and what the config snapshots, like Prometheus'
    /// scrape offsets: stable on one box, different between boxes of a team.
    pub fn for_box(host: &str, config_identity: &str) -> Seed {
        let digest = Sha256::new()
            .chain_update(host.as_bytes())
            .chain_update([0])
            .chain_update(config_identity.as_bytes())
            .finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        Seed(Some(u64::from_le_bytes(bytes)))
    }

    /// The fixed share in [0, 1) of this box.
    fn fixed(self) -> f64 {
        self.0.map_or(0.0, |s| unit(splitmix(s)))
    }

    /// A share in [0, 1) that changes from run to run, the same for the same run.
    fn per_run(self, last: Timestamp) -> f64 {
        self.0
            .map_or(0.0, |s| unit(splitmix(s ^ last.as_millisecond() as u64)))
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Why a run is due then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// No run in the store yet.
    First,
    /// One business interval after the last run.
    Business,
    /// The business window opens.
    WindowOpen,
    /// One off-hours interval after the last run.
    OffHours,
    /// Held back until the cooldown after a manual run ends.
    Cooldown,
    /// The due time passed while nothing ran (closed, or a run overran): due now, once.
    #[serde(rename = "missed-run")]
    Missed,
}

impl Rule {
    pub fn label(self) -> &'static str {
        match self {
            Rule::First => "first run",
            Rule::Business => "business",
            Rule::WindowOpen => "business (window opens)",
            Rule::OffHours => "off-hours",
            Rule::Cooldown => "after cooldown",
            Rule::Missed => "missed run",
        }
    }
}

/// The next automatic run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub at: Timestamp,
    pub rule: Rule,
    /// The time falls inside the business window.
    pub business: bool,
}

/// The next automatic run, or None when the policy is disabled.
pub fn next_run(policy: &Policy, runs: &Runs, now: Timestamp, seed: Seed) -> Option<Due> {
    if !policy.enabled {
        return None;
    }
    let Some(last) = runs.last else {
        return Some(Due {
            at: now,
            rule: Rule::First,
            business: in_window(policy, now),
        });
    };
    let (mut at, mut rule) = cadence(policy, runs, last, seed);
    if let Some(manual) = runs.last_manual {
        let free = manual + policy.cooldown_after_manual;
        if free > at {
            at = free;
            rule = Rule::Cooldown;
        }
    }
    if at < now {
        at = now;
        rule = Rule::Missed;
    }
    Some(Due {
        at,
        rule,
        business: in_window(policy, at),
    })
}

/// The next `n` runs if each ran when due and found nothing new (the tab's preview and
/// `snaptop schedule next`).
pub fn preview(policy: &Policy, runs: &Runs, now: Timestamp, seed: Seed, n: usize) -> Vec<Due> {
    let mut runs = *runs;
    let mut now = now;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let Some(due) = next_run(policy, &runs, now, seed) else {
            break;
        };
        out.push(due);
        runs.record(PastRun {
            started: due.at,
            manual: false,
            changed: Some(false),
        });
        now = due.at;
    }
    out
}

/// The interval in force for a base interval, halved per run in a row that found new
/// deployments when adaptive, never under the floor (nor above the base).
pub fn effective_interval(policy: &Policy, base: Duration, runs: &Runs) -> Duration {
    if !policy.adaptive || runs.changed_streak == 0 || base <= policy.adaptive_floor {
        return base;
    }
    let halved = base / 2u32.saturating_pow(runs.changed_streak.min(16));
    halved.max(policy.adaptive_floor)
}

/// The due time from the last run by the window's cadence, before cooldown and missed.
fn cadence(policy: &Policy, runs: &Runs, last: Timestamp, seed: Seed) -> (Timestamp, Rule) {
    let business = effective_interval(policy, policy.interval_business, runs);
    let off_hours = effective_interval(policy, policy.interval_off_hours, runs);
    let horizon = last + Duration::from_secs(HORIZON_DAYS as u64 * 24 * 3600);
    let windows = windows(policy, last, horizon);
    let shift = |interval: Duration, share: f64| policy.jitter.span(interval).mul_f64(share);
    let mut cursor = last;
    while cursor < horizon {
        if let Some(&(start, end)) = windows.iter().find(|(s, e)| *s <= cursor && cursor < *e) {
            let (at, rule) = if start > last {
                (
                    start + shift(business, FIXED_SHARE * seed.fixed()),
                    Rule::WindowOpen,
                )
            } else {
                let r = PER_RUN_SHARE * seed.per_run(last);
                (last + business + shift(business, r), Rule::Business)
            };
            if at < end {
                return (at, rule);
            }
            cursor = end;
        } else {
            let opens = windows
                .iter()
                .map(|w| w.0)
                .find(|s| *s > cursor)
                .unwrap_or(horizon);
            let r = PER_RUN_SHARE * seed.per_run(last);
            let at = (last + off_hours + shift(off_hours, r)).max(cursor);
            if at < opens {
                return (at, Rule::OffHours);
            }
            cursor = opens;
        }
    }
    (last + off_hours, Rule::OffHours)
}

/// Whether `t` falls inside the business window.
pub fn in_window(policy: &Policy, t: Timestamp) -> bool {
    windows(policy, t, t + Duration::from_secs(1))
        .iter()
        .any(|(s, e)| *s <= t && t < *e)
}

/// The business windows touching [from, to), in order and merged, as real instants.
/// Each day's window is placed in calendar terms in the policy's zone: a start that
/// falls in a daylight-saving gap moves to the first time after it (jiff's
/// "compatible" rule), an end before the start runs past midnight.
pub fn windows(policy: &Policy, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    if policy.days.is_empty() {
        return Vec::new();
    }
    let tz = &policy.timezone;
    let first = tz.to_datetime(from).date().yesterday().unwrap_or(Date::MIN);
    let last = tz.to_datetime(to).date();
    let place = |date: Date, time| tz.to_timestamp(date.to_datetime(time)).ok();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
    let mut date = first;
    while date <= last {
        if policy.days.contains(date.weekday()) {
            let end_date = if policy.end > policy.start {
                Some(date)
            } else {
                date.tomorrow().ok()
            };
            if let (Some(s), Some(e)) = (
                place(date, policy.start),
                end_date.and_then(|d| place(d, policy.end)),
            ) && e > s
                && e > from
                && s < to
            {
                match out.last_mut() {
                    Some(prev) if prev.1 >= s => prev.1 = prev.1.max(e),
                    _ => out.push((s, e)),
                }
            }
        }
        match date.checked_add(1.day()) {
            Ok(d) => date = d,
            Err(_) => break,
        }
    }
    out
}
