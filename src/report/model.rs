//! Owned data of a report: what the CLI renders and what the Reports tab shows.
//!
//! Nothing here borrows, does I/O or knows about the terminal, so a finished [`Report`]
//! can cross a channel from the blocking pool to the UI and be drawn many times.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The Locust CSV layout a file was written in, detected from its header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocustGeneration {
    /// 0.13 and older: `_requests.csv` (`"# requests"`, no percentiles) + `_distribution.csv`.
    Legacy,
    /// 0.13.3 – 0.14: `_stats.csv` with `"# requests"`, `"Requests Failed/s"` and percentiles.
    Transitional,
    /// 1.x and 2.x: `Request Count`, `Failure Count`, `Failures/s`.
    Modern,
}

impl fmt::Display for LocustGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Legacy => "Locust 0.13 or older",
            Self::Transitional => "Locust 0.13.3-0.14",
            Self::Modern => "Locust 1.x/2.x",
        })
    }
}

/// The files a report was built from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunFiles {
    pub stats: Option<PathBuf>,
    /// Only for [`LocustGeneration::Legacy`]: the percentiles live in their own file.
    pub distribution: Option<PathBuf>,
    pub history: Option<PathBuf>,
    pub failures: Option<PathBuf>,
    pub exceptions: Option<PathBuf>,
}

/// One requested percentile of an endpoint (`percent` is 0–100, e.g. 99.9).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PercentileValue {
    pub percent: f64,
    /// `None` where Locust wrote `N/A` (no request yet).
    pub millis: Option<f64>,
}

/// Final statistics of one endpoint (a row of the stats file).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStats {
    /// HTTP method or Locust request type; empty for the aggregate row.
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    /// Failures per hundred requests.
    pub error_pct: f64,
    pub median_ms: Option<f64>,
    pub average_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub rps: f64,
    pub failures_per_sec: Option<f64>,
    /// Every percentile column the file had, in file order (custom lists included).
    pub percentiles: Vec<PercentileValue>,
}

impl EndpointStats {
    /// `"GET /users"`, or the bare name when the method is empty.
    pub fn label(&self) -> String {
        endpoint_label(&self.method, &self.name)
    }
}

/// `"METHOD name"` as shown everywhere and matched by targets.
pub fn endpoint_label(method: &str, name: &str) -> String {
    if method.is_empty() {
        name.to_owned()
    } else {
        format!("{method} {name}")
    }
}

/// One point of a time series, averaged over `[t_start_unix, t_start_unix + width)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub t_start_unix: i64,
    pub width_secs: i64,
    pub users: Option<f64>,
    pub rps: f64,
    pub failures_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// When an endpoint's latency rose above its early-run baseline (first episode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Degradation {
    pub started_at_unix: i64,
    /// When it came back under the limit; `None` when it stayed degraded to the end.
    pub recovered_at_unix: Option<i64>,
    /// Seconds between the first history row and the start of the degradation.
    pub offset_secs: i64,
    pub baseline_p95_ms: f64,
    pub degraded_p95_ms: f64,
    /// `degraded_p95_ms / baseline_p95_ms`.
    pub factor: f64,
    /// Users running when it started, when the history has them.
    pub users_at_start: Option<f64>,
}

/// An endpoint over time, from the history file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointHistory {
    pub method: String,
    pub name: String,
    pub rows: u64,
    pub peak_p95_ms: Option<f64>,
    pub peak_p95_at_unix: Option<i64>,
    pub peak_p99_ms: Option<f64>,
    pub peak_p99_at_unix: Option<i64>,
    pub median_p95_ms: Option<f64>,
    pub median_p99_ms: Option<f64>,
    pub peak_rps: f64,
    /// At most [`crate::report::locust::MAX_SERIES_POINTS`] points, evenly bucketed.
    pub series: Vec<HistoryPoint>,
    pub degradation: Option<Degradation>,
}

impl EndpointHistory {
    pub fn label(&self) -> String {
        endpoint_label(&self.method, &self.name)
    }
}

/// Everything the history file says.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct HistorySummary {
    pub rows: u64,
    pub first_unix: Option<i64>,
    pub last_unix: Option<i64>,
    pub peak_users: Option<u64>,
    /// Users and total RPS over time (from the aggregate rows).
    pub timeline: Vec<HistoryPoint>,
    /// Per endpoint, the aggregate row included (its name is "Aggregated" or "Total").
    pub endpoints: Vec<EndpointHistory>,
    /// What was left out to keep memory bounded.
    pub notes: Vec<String>,
    /// What the reader is not sure of (a last line still being written...); the report
    /// carries them in [`Report::warnings`].
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A row of the failures file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRow {
    pub method: String,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

/// A row of the exceptions file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionRow {
    pub count: u64,
    pub message: String,
    pub traceback: String,
    pub nodes: String,
}

/// A k6 check (`check(res, {name: fn})`): how often it held, per group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// k6's group path (`::browse`); empty outside any group.
    pub group: String,
    pub name: String,
    pub passes: u64,
    pub fails: u64,
}

impl CheckRow {
    /// `::browse::item status is 200`, as k6 names a check's path.
    pub fn path(&self) -> String {
        format!("{}::{}", self.group, self.name)
    }

    /// Fails per hundred results.
    pub fn fail_pct(&self) -> f64 {
        let total = self.passes + self.fails;
        if total == 0 {
            0.0
        } else {
            self.fails as f64 * 100.0 / total as f64
        }
    }
}

/// What was read from one run's files, before any judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunData {
    pub files: RunFiles,
    pub generation: Option<LocustGeneration>,
    pub endpoints: Vec<EndpointStats>,
    pub aggregate: Option<EndpointStats>,
    pub history: Option<HistorySummary>,
    pub failures: Vec<FailureRow>,
    pub exceptions: Vec<ExceptionRow>,
    /// k6 checks (other formats have none, and the JSON leaves the key out then).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRow>,
    /// Things worth knowing that did not stop the read (truncated lists).
    pub notes: Vec<String>,
    /// What the reader is not sure of or left out (a skipped file, unknown percentiles...);
    /// the report carries them in [`Report::warnings`].
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
        })
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// p99 above a latency threshold.
    Latency,
    /// Failures above an error-rate threshold.
    ErrorRate,
    /// Max far above p99: rare, very slow outliers.
    Variance,
    /// Latency rose during the run and stayed up.
    Degradation,
    /// Worse than the base run of a comparison.
    Regression,
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Latency => "latency",
            Self::ErrorRate => "error_rate",
            Self::Variance => "variance",
            Self::Degradation => "degradation",
            Self::Regression => "regression",
        })
    }
}

/// A judged problem of one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable within a report (`F1`, `F2`, ...); recommendations cite it.
    pub id: String,
    pub endpoint: String,
    pub kind: FindingKind,
    pub severity: Severity,
    /// The measured value, in `unit`.
    pub value: f64,
    /// The threshold it crossed, in `unit`.
    pub threshold: f64,
    pub unit: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Horizon {
    Immediate,
    ShortTerm,
    LongTerm,
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Immediate => "Immediate",
            Self::ShortTerm => "Short-term",
            Self::LongTerm => "Long-term",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub horizon: Horizon,
    pub endpoint: Option<String>,
    pub action: String,
    /// Ids of the findings that caused it (empty for general advice).
    pub because_of: Vec<String>,
}

/// How much traffic an endpoint carried, by requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficTier {
    High,
    Medium,
    Low,
    VeryLow,
}

impl fmt::Display for TrafficTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::VeryLow => "very low",
        })
    }
}

/// Cache TTL advice for one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtlAdvice {
    pub endpoint: String,
    pub tier: TrafficTier,
    pub rps: f64,
    pub p99_ms: Option<f64>,
    /// `None` when the endpoint should not be cached (it changes state).
    pub ttl_secs: Option<u64>,
    pub reason: String,
}

/// One `metric op value` rule of a targets file, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetOutcome {
    pub endpoint: String,
    /// The rule as written, e.g. `p95 < 150`.
    pub rule: String,
    pub passed: bool,
    /// `None` when the metric is missing in the data (counts as failed).
    pub actual: Option<f64>,
    pub detail: String,
}

/// The targets file, checked against a run.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TargetsResult {
    pub outcomes: Vec<TargetOutcome>,
    /// Targets naming an endpoint that is not in the data: they check nothing.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Regression,
    Improvement,
    Unchanged,
}

/// One metric of one endpoint, base run vs current run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDelta {
    pub metric: String,
    pub base: Option<f64>,
    pub current: Option<f64>,
    pub delta: Option<f64>,
    pub delta_pct: Option<f64>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointComparison {
    pub endpoint: String,
    pub deltas: Vec<MetricDelta>,
}

/// Before/after comparison of two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub base_label: String,
    pub endpoints: Vec<EndpointComparison>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub regressions: usize,
    pub improvements: usize,
}

/// The gate verdict of a report (the CLI's exit code).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// A finished report: the run's data and every judgement made of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub run: RunData,
    pub findings: Vec<Finding>,
    pub recommendations: Vec<Recommendation>,
    pub cache_ttls: Vec<TtlAdvice>,
    pub targets: Option<TargetsResult>,
    pub comparison: Option<Comparison>,
    pub verdict: Verdict,
    /// What the readers were not sure of or left out, each naming its file (a skipped
    /// file, a last line still being written...): shown on stderr and in the JSON.
    pub warnings: Vec<String>,
}

/// A column of the endpoint table, for sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointColumn {
    Endpoint,
    Requests,
    Failures,
    ErrorPct,
    P50,
    P95,
    P99,
    Max,
    Rps,
}

impl EndpointColumn {
    pub const ALL: [Self; 9] = [
        Self::Endpoint,
        Self::Requests,
        Self::Failures,
        Self::ErrorPct,
        Self::P50,
        Self::P95,
        Self::P99,
        Self::Max,
        Self::Rps,
    ];

    fn number(self, e: &EndpointStats) -> Option<f64> {
        match self {
            Self::Endpoint => None,
            Self::Requests => Some(e.requests as f64),
            Self::Failures => Some(e.failures as f64),
            Self::ErrorPct => Some(e.error_pct),
            Self::P50 => e.p50_ms.or(e.median_ms),
            Self::P95 => e.p95_ms,
            Self::P99 => e.p99_ms,
            Self::Max => e.max_ms,
            Self::Rps => Some(e.rps),
        }
    }
}

/// Sorts an endpoint table by a column; missing values (`N/A`) always sort last.
pub fn sort_endpoints(endpoints: &mut [EndpointStats], by: EndpointColumn, descending: bool) {
    endpoints.sort_by(|a, b| {
        let order = match by {
            EndpointColumn::Endpoint => a.label().cmp(&b.label()),
            _ => match (by.number(a), by.number(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
        };
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| a.label().cmp(&b.label()))
    });
}

/// Size and modification time of each file of a run: poll it and rebuild the report when
/// it changes (Locust rewrites its CSVs every few seconds while a test runs).
pub type FilesFingerprint = Vec<(PathBuf, Option<(u64, std::time::SystemTime)>)>;

impl RunFiles {
    pub fn paths(&self) -> Vec<&PathBuf> {
        [
            &self.stats,
            &self.distribution,
            &self.history,
            &self.failures,
            &self.exceptions,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    pub fn fingerprint(&self) -> FilesFingerprint {
        self.paths()
            .into_iter()
            .map(|path| {
                let stamp = std::fs::metadata(path)
                    .ok()
                    .and_then(|m| Some((m.len(), m.modified().ok()?)));
                (path.clone(), stamp)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, p99: Option<f64>) -> EndpointStats {
        EndpointStats {
            method: "GET".into(),
            name: name.into(),
            requests: 1,
            failures: 0,
            error_pct: 0.0,
            median_ms: None,
            average_ms: None,
            min_ms: None,
            max_ms: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: p99,
            rps: 0.0,
            failures_per_sec: None,
            percentiles: Vec::new(),
        }
    }

    #[test]
    fn sorting_keeps_missing_values_last() {
        let mut rows = vec![
            endpoint("/a", None),
            endpoint("/b", Some(5.0)),
            endpoint("/c", Some(9.0)),
        ];
        sort_endpoints(&mut rows, EndpointColumn::P99, true);
        let names: Vec<&str> = rows.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["/c", "/b", "/a"]);
        sort_endpoints(&mut rows, EndpointColumn::P99, false);
        let names: Vec<&str> = rows.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["/b", "/c", "/a"]);
    }

    #[test]
    fn fingerprint_changes_when_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("run_stats.csv");
        std::fs::write(&stats, "a").unwrap();
        let files = RunFiles {
            stats: Some(stats.clone()),
            ..RunFiles::default()
        };
        let before = files.fingerprint();
        std::fs::write(&stats, "ab").unwrap();
        assert_ne!(before, files.fingerprint());
    }
}
