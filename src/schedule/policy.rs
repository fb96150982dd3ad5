//! The auto-snapshot policy: its keys, their text form (the config file, the tab's
//! fields and `snaptop schedule set` all write the same text), and the layers a value
//! can come from (built-in default < config file < an edit kept in the store).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::config::HumanDuration;

/// Shortest interval accepted: a snapshot costs the team's API budget.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Longest interval accepted (the rule looks this far ahead for a window).
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Jitter above half the interval would make the cadence meaningless.
pub const MAX_JITTER_PERCENT: u32 = 50;

/// One setting of `[schedule]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    Enabled,
    IntervalBusiness,
    IntervalOffHours,
    Days,
    Start,
    End,
    Timezone,
    CooldownAfterManual,
    Jitter,
    RunTimeout,
    Adaptive,
    AdaptiveFloor,
}

impl Key {
    pub const ALL: [Key; 12] = [
        Key::Enabled,
        Key::IntervalBusiness,
        Key::IntervalOffHours,
        Key::Days,
        Key::Start,
        Key::End,
        Key::Timezone,
        Key::CooldownAfterManual,
        Key::Jitter,
        Key::RunTimeout,
        Key::Adaptive,
        Key::AdaptiveFloor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Key::Enabled => "enabled",
            Key::IntervalBusiness => "interval_business",
            Key::IntervalOffHours => "interval_off_hours",
            Key::Days => "days",
            Key::Start => "start",
            Key::End => "end",
            Key::Timezone => "timezone",
            Key::CooldownAfterManual => "cooldown_after_manual",
            Key::Jitter => "jitter",
            Key::RunTimeout => "run_timeout",
            Key::Adaptive => "adaptive",
            Key::AdaptiveFloor => "adaptive_floor",
        }
    }

    pub fn parse(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The built-in value, in the text form.
    pub fn default_text(self) -> &'static str {
        match self {
            Key::Enabled => "true",
            Key::IntervalBusiness => "30m",
            Key::IntervalOffHours => "2h",
            Key::Days => "mon-fri",
            Key::Start => "08:00",
            Key::End => "18:00",
            Key::Timezone => "local",
            Key::CooldownAfterManual => "5m",
            Key::Jitter => "10%",
            Key::RunTimeout => "15m",
            Key::Adaptive => "false",
            Key::AdaptiveFloor => "10m",
        }
    }

    /// What the value looks like, for errors and the tab's hints.
    pub fn expects(self) -> &'static str {
        match self {
            Key::Enabled | Key::Adaptive => "true or false",
            Key::IntervalBusiness
            | Key::IntervalOffHours
            | Key::CooldownAfterManual
            | Key::RunTimeout
            | Key::AdaptiveFloor => "a duration like 90s, 30m, 2h, 1h30m",
            Key::Days => "days like mon-fri or mon,wed,fri (or none)",
            Key::Start | Key::End => "a time of day like 08:00",
            Key::Timezone => "an IANA zone like Europe/Berlin, or local",
            Key::Jitter => "a share of the interval like 10%, or a duration like 2m",
        }
    }

    pub fn is_bool(self) -> bool {
        matches!(self, Key::Enabled | Key::Adaptive)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the value in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Default,
    /// The config file's `[schedule]`.
    Config,
    /// Saved from the Schedule tab or `snaptop schedule set`; wins over the file.
    Store,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Config => "config file",
            Origin::Store => "saved edit",
        }
    }
}

/// Values in their text form, per key: one layer of the policy.
pub type Layer = BTreeMap<Key, String>;

/// A value rejected, with the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The key's name as written (an unknown key is named too).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(key: Key, message: impl Into<String>) -> FieldError {
        FieldError {
            field: key.name().to_string(),
            message: message.into(),
        }
    }

    /// The field, when it is a known key.
    pub fn key(&self) -> Option<Key> {
        Key::parse(&self.field)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// How far past the nominal time a run may be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// A share of the interval the run belongs to.
    Percent(u32),
    Fixed(Duration),
}

impl Jitter {
    /// The widest shift for a run of this interval, never above half of it.
    pub fn span(self, interval: Duration) -> Duration {
        let span = match self {
            Jitter::Percent(p) => interval.mul_f64(f64::from(p) / 100.0),
            Jitter::Fixed(d) => d,
        };
        span.min(interval / 2)
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jitter::Percent(p) => write!(f, "{p}%"),
            Jitter::Fixed(d) => write!(f, "{}", HumanDuration(*d)),
        }
    }
}

/// The set of business days, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Days(u8);

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Days {
    pub const WEEKDAYS: Days = Days(0b001_1111);

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }

    pub fn toggle(&mut self, day: Weekday) {
        self.0 ^= 1 << day.to_monday_zero_offset();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn parse(text: &str) -> Result<Days, String> {
        let text = text.trim().to_ascii_lowercase();
        if text == "none" {
            return Ok(Days(0));
        }
        let index = |name: &str| {
            let name = name.trim();
            DAY_NAMES
                .iter()
                .position(|d| name.len() >= 3 && (name.starts_with(d)))
                .ok_or_else(|| format!("{name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
        };
        let mut days = Days(0);
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (index(from)?, index(to)?);
                    // A range may wrap the week: fri-mon.
                    let mut d = from;
                    loop {
                        days.0 |= 1 << d;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days.0 |= 1 << index(part)?,
            }
        }
        if days.is_empty() {
            return Err("no days given (write none for no business window)".into());
        }
        Ok(days)
    }
}

impl fmt::Display for Days {
    /// The shortest text that parses back: `mon-fri`, `mon,wed,fri`, `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        let mut d = 0;
        while d < 7 {
            if self.0 & (1 << d) == 0 {
                d += 1;
                continue;
            }
            let start = d;
            while d + 1 < 7 && self.0 & (1 << (d + 1)) != 0 {
                d += 1;
            }
            parts.push(match d - start {
                0 => DAY_NAMES[start].to_string(),
                1 => format!("{},{}", DAY_NAMES[start], DAY_NAMES[d]),
                _ => format!("{}-{}", DAY_NAMES[start], DAY_NAMES[d]),
            });
            d += 1;
        }
        f.write_str(&parts.join(","))
    }
}

/// The policy in force, every value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub enabled: bool,
    pub interval_business: Duration,
    pub interval_off_hours: Duration,
    pub days: Days,
    pub start: Time,
    pub end: Time,
    /// The zone the window is read in, with the name it was given by.
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub cooldown_after_manual: Duration,
    pub jitter: Jitter,
    pub run_timeout: Duration,
    pub adaptive: bool,
    pub adaptive_floor: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Settings::default()
            .resolve()
            .expect("the built-in schedule is valid")
            .policy
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    HumanDuration::parse(text).map(|d| d.0)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "{} is shorter than the shortest interval, {}",
            HumanDuration(d),
            HumanDuration(MIN_INTERVAL)
        ));
    }
    if d > MAX_INTERVAL {
        return Err(format!(
            "{} is longer than the longest interval, {}",
            HumanDuration(d),
            HumanDuration(MAX_INTERVAL)
        ));
    }
    Ok(d)
}

fn parse_time(text: &str) -> Result<Time, String> {
    let text = text.trim();
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not a time like 08:00"))?;
    let h: i8 = h
        .parse()
        .map_err(|_| format!("{text:?} is not a time like 08:00"))?;
    let m: i8 = m
        .parse()
        .map_err(|_| format!("{text:?} is not a time like 08:00"))?;
    if h == 24 && m == 0 {
        return Err("24:00 is not a time of day: end the window at 23:59 or at 00:00".into());
    }
    Time::new(h, m, 0, 0).map_err(|_| format!("{text:?} is not a time of day (00:00 to 23:59)"))
}

fn parse_timezone(text: &str) -> Result<(TimeZone, String), String> {
    let name = text.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("local") {
        let tz = TimeZone::system();
        let shown = tz.iana_name().unwrap_or("local").to_string();
        return Ok((tz, format!("local ({shown})")));
    }
    TimeZone::get(name)
        .map(|tz| (tz, name.to_string()))
        .map_err(|_| format!("{name:?} is not a time zone of the tz database (like Europe/Berlin)"))
}

fn parse_jitter(text: &str) -> Result<Jitter, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        let p: u32 = p
            .trim()
            .parse()
            .map_err(|_| format!("{t:?} is not a share like 10%"))?;
        if p > MAX_JITTER_PERCENT {
            return Err(format!(
                "{p}% is more than {MAX_JITTER_PERCENT}% of the interval"
            ));
        }
        return Ok(Jitter::Percent(p));
    }
    parse_duration(t).map(Jitter::Fixed)
}

fn parse_run_timeout(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(10) {
        return Err("a run timeout under 10s would cancel every run".into());
    }
    Ok(d)
}

/// Checks one value on its own (the tab validates as you type with this).
pub fn check(key: Key, text: &str) -> Result<(), String> {
    match key {
        Key::Enabled | Key::Adaptive => parse_bool(text).map(drop),
        Key::IntervalBusiness | Key::IntervalOffHours => parse_interval(text).map(drop),
        Key::CooldownAfterManual | Key::AdaptiveFloor => parse_duration(text).map(drop),
        Key::RunTimeout => parse_run_timeout(text).map(drop),
        Key::Days => Days::parse(text).map(drop),
        Key::Start | Key::End => parse_time(text).map(drop),
        Key::Timezone => parse_timezone(text).map(drop),
        Key::Jitter => parse_jitter(text).map(drop),
    }
}

/// The layers of the policy: the config file's values and the saved edits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub file: Layer,
    pub store: Layer,
}

/// The policy in force and where each of its values came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub policy: Policy,
    pub values: BTreeMap<Key, (String, Origin)>,
}

impl Settings {
    /// The text in force for a key and its origin.
    pub fn text(&self, key: Key) -> (String, Origin) {
        if let Some(v) = self.store.get(&key) {
            (v.clone(), Origin::Store)
        } else if let Some(v) = self.file.get(&key) {
            (v.clone(), Origin::Config)
        } else {
            (key.default_text().to_string(), Origin::Default)
        }
    }

    /// The value in force for `key`, parsed; a failure is noted in `errors`.
    fn parsed<T>(
        &self,
        key: Key,
        parse: impl Fn(&str) -> Result<T, String>,
        errors: &mut Vec<FieldError>,
    ) -> Option<T> {
        parse(&self.text(key).0)
            .map_err(|m| errors.push(FieldError::new(key, m)))
            .ok()
    }

    /// Every value checked, then the checks across fields. All errors are returned,
    /// so a form can mark each field.
    pub fn resolve(&self) -> Result<Resolved, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let values = (
            self.parsed(Key::Enabled, parse_bool, e),
            self.parsed(Key::IntervalBusiness, parse_interval, e),
            self.parsed(Key::IntervalOffHours, parse_interval, e),
            self.parsed(Key::Days, Days::parse, e),
            self.parsed(Key::Start, parse_time, e),
            self.parsed(Key::End, parse_time, e),
            self.parsed(Key::Timezone, parse_timezone, e),
            self.parsed(Key::CooldownAfterManual, parse_duration, e),
            self.parsed(Key::Jitter, parse_jitter, e),
            self.parsed(Key::RunTimeout, parse_run_timeout, e),
            self.parsed(Key::Adaptive, parse_bool, e),
            self.parsed(Key::AdaptiveFloor, parse_duration, e),
        );
        let (
            Some(enabled),
            Some(interval_business),
            Some(interval_off_hours),
            Some(days),
            Some(start),
            Some(end),
            Some((timezone, timezone_name)),
            Some(cooldown_after_manual),
            Some(jitter),
            Some(run_timeout),
            Some(adaptive),
            Some(adaptive_floor),
        ) = values
        else {
            return Err(errors);
        };
        let policy = Policy {
            enabled,
            interval_business,
            interval_off_hours,
            days,
            start,
            end,
            timezone,
            timezone_name,
            cooldown_after_manual,
            jitter,
            run_timeout,
            adaptive,
            adaptive_floor,
        };
        if policy.start == policy.end && !policy.days.is_empty() {
            errors.push(FieldError::new(
                Key::End,
                "the window ends when it starts: give two different times (an end before \
                 the start runs past midnight)",
            ));
        }
        if policy.adaptive && policy.adaptive_floor > policy.interval_business {
            errors.push(FieldError::new(
                Key::AdaptiveFloor,
                format!(
                    "{} is longer than interval_business ({}): the floor must be below it",
                    HumanDuration(policy.adaptive_floor),
                    HumanDuration(policy.interval_business)
                ),
            ));
        }
        if policy.adaptive && policy.adaptive_floor < MIN_INTERVAL {
            errors.push(FieldError::new(
                Key::AdaptiveFloor,
                format!(
                    "{} is shorter than the shortest interval, {}",
                    HumanDuration(policy.adaptive_floor),
                    HumanDuration(MIN_INTERVAL)
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let values = Key::ALL.into_iter().map(|k| (k, self.text(k))).collect();
        Ok(Resolved { policy, values })
    }

    /// The layer a `[schedule]` table of the config file gives. TOML booleans, strings
    /// and arrays of day names are accepted; anything else names its key.
    pub fn file_layer(table: &toml::Table) -> Result<Layer, FieldError> {
        let mut layer = Layer::new();
        for (name, value) in table {
            let Some(key) = Key::parse(name) else {
                return Err(FieldError {
                    field: name.clone(),
                    message: format!(
                        "unknown key (known: {})",
                        Key::ALL.map(Key::name).join(", ")
                    ),
                });
            };
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Boolean(b) if key.is_bool() => b.to_string(),
                toml::Value::Array(items) if key == Key::Days => {
                    let names: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
                    match names {
                        Some(n) if n.is_empty() => "none".to_string(),
                        Some(n) => n.join(","),
                        None => {
                            return Err(FieldError::new(key, "days must be names like \"mon\""));
                        }
                    }
                }
                _ => {
                    return Err(FieldError::new(key, format!("expected {}", key.expects())));
                }
            };
            layer.insert(key, text);
        }
        Ok(layer)
    }
}
