//! Judgement of a run: findings, recommendations, cache TTL advice and the gate verdict.

use std::path::Path;

use serde::Deserialize;

use super::error::ReportError;
use super::locust::{is_aggregate_row, read_small_file};
use super::model::{
    Comparison, Degradation, EndpointHistory, EndpointStats, Finding, FindingKind, HistoryPoint,
    Horizon, Recommendation, Report, RunData, Severity, TargetsResult, TrafficTier, TtlAdvice,
    Verdict, endpoint_label,
};

/// p99 above this is a CRITICAL latency finding.
pub const P99_CRITICAL_MS: f64 = 500.0;
/// p99 above this is a WARNING latency finding.
pub const P99_WARNING_MS: f64 = 300.0;
/// Failures above this share of requests are a CRITICAL error-rate finding.
pub const ERROR_RATE_CRITICAL_PCT: f64 = 1.0;
/// Failures above this share of requests are a WARNING error-rate finding.
pub const ERROR_RATE_WARNING_PCT: f64 = 0.1;
/// Max above this multiple of p99 is a WARNING variance finding...
pub const MAX_OVER_P99_WARNING_RATIO: f64 = 4.0;
/// ...when it is also at least this far above p99 (a 9 ms max over a 2 ms p99 is noise).
pub const VARIANCE_MIN_EXCESS_MS: f64 = 100.0;
/// p95 this many times its early-run baseline, sustained, is a degradation...
pub const DEGRADATION_FACTOR: f64 = 1.5;
/// ...when it also rose by at least this much.
pub const DEGRADATION_MIN_INCREASE_MS: f64 = 50.0;
/// Consecutive history points that must stay degraded (a single spike is variance).
pub const DEGRADATION_SUSTAINED_POINTS: usize = 3;
/// Share of the history taken as the baseline (at least [`DEGRADATION_SUSTAINED_POINTS`]).
pub const DEGRADATION_BASELINE_SHARE: f64 = 0.2;

/// Traffic tiers, in requests per second the endpoint carried during the test.
pub const HIGH_TRAFFIC_MIN_RPS: f64 = 20.0;
pub const MEDIUM_TRAFFIC_MIN_RPS: f64 = 5.0;
pub const LOW_TRAFFIC_MIN_RPS: f64 = 1.0;
/// Cache TTL by traffic tier: more traffic, more hits per miss, longer TTL pays.
pub const HIGH_TRAFFIC_TTL_SECS: u64 = 300;
pub const MEDIUM_TRAFFIC_TTL_SECS: u64 = 120;
pub const LOW_TRAFFIC_TTL_SECS: u64 = 60;
pub const VERY_LOW_TRAFFIC_TTL_SECS: u64 = 30;
/// An endpoint slower than this (p99) is cached at least [`SLOW_MIN_TTL_SECS`].
pub const SLOW_P99_MS: f64 = 200.0;
pub const SLOW_MIN_TTL_SECS: u64 = 300;
/// An endpoint faster than this (p99) is cached at most [`FAST_MAX_TTL_SECS`].
pub const FAST_P99_MS: f64 = 50.0;
pub const FAST_MAX_TTL_SECS: u64 = 60;

/// Thresholds of the findings; every field can be set in a TOML file (`--thresholds`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub p99_critical_ms: f64,
    pub p99_warning_ms: f64,
    pub error_rate_critical_pct: f64,
    pub error_rate_warning_pct: f64,
    pub max_over_p99_ratio: f64,
    pub variance_min_excess_ms: f64,
    pub degradation_factor: f64,
    pub degradation_min_increase_ms: f64,
    /// Endpoints with fewer requests get no latency or variance finding (too few samples).
    pub min_requests: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            p99_critical_ms: P99_CRITICAL_MS,
            p99_warning_ms: P99_WARNING_MS,
            error_rate_critical_pct: ERROR_RATE_CRITICAL_PCT,
            error_rate_warning_pct: ERROR_RATE_WARNING_PCT,
            max_over_p99_ratio: MAX_OVER_P99_WARNING_RATIO,
            variance_min_excess_ms: VARIANCE_MIN_EXCESS_MS,
            degradation_factor: DEGRADATION_FACTOR,
            degradation_min_increase_ms: DEGRADATION_MIN_INCREASE_MS,
            min_requests: 1,
        }
    }
}

impl Thresholds {
    /// Reads a thresholds TOML file; unknown keys and bad values name their line.
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let text = read_small_file(path)?;
        let thresholds: Self = toml::from_str(&text).map_err(|e| ReportError::Config {
            path: path.to_owned(),
            line: e.span().map_or(0, |s| line_of(&text, s.start)),
            message: e.message().to_owned(),
        })?;
        thresholds
            .validate()
            .map_err(|message| ReportError::Config {
                path: path.to_owned(),
                line: 0,
                message,
            })?;
        Ok(thresholds)
    }

    fn validate(&self) -> Result<(), String> {
        if self.p99_warning_ms > self.p99_critical_ms {
            return Err(format!(
                "p99_warning_ms ({}) must not be above p99_critical_ms ({})",
                self.p99_warning_ms, self.p99_critical_ms
            ));
        }
        if self.error_rate_warning_pct > self.error_rate_critical_pct {
            return Err(format!(
                "error_rate_warning_pct ({}) must not be above error_rate_critical_pct ({})",
                self.error_rate_warning_pct, self.error_rate_critical_pct
            ));
        }
        if self.degradation_factor <= 1.0 || self.max_over_p99_ratio <= 1.0 {
            return Err("degradation_factor and max_over_p99_ratio must be above 1".into());
        }
        Ok(())
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> u64 {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
        + 1
}

/// How the run is judged besides the thresholds.
#[derive(Debug, Clone, Default)]
pub struct JudgeOptions {
    pub thresholds: Thresholds,
    /// Regressions against the base run fail the gate.
    pub fail_on_regression: bool,
    /// Targets naming endpoints absent from the data fail the gate.
    pub strict_targets: bool,
}

/// Judges a run. `targets` and `comparison` were computed by their modules.
pub fn judge(
    mut run: RunData,
    options: &JudgeOptions,
    targets: Option<TargetsResult>,
    comparison: Option<Comparison>,
) -> Report {
    let thresholds = &options.thresholds;
    if let Some(history) = &mut run.history {
        let timeline = history.timeline.clone();
        for endpoint in &mut history.endpoints {
            endpoint.degradation = detect_degradation(endpoint, &timeline, thresholds);
        }
    }
    let mut findings = Vec::new();
    for endpoint in &run.endpoints {
        endpoint_findings(endpoint, thresholds, &mut findings);
    }
    if let Some(history) = &run.history {
        for endpoint in &history.endpoints {
            if is_aggregate_row(&endpoint.method, &endpoint.name) {
                continue;
            }
            if let Some(d) = &endpoint.degradation {
                findings.push(degradation_finding(endpoint, d, thresholds));
            }
        }
    }
    if let Some(c) = &comparison {
        regression_findings(c, &mut findings);
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.endpoint.cmp(&b.endpoint))
            .then_with(|| a.kind.to_string().cmp(&b.kind.to_string()))
    });
    for (i, finding) in findings.iter_mut().enumerate() {
        finding.id = format!("F{}", i + 1);
    }
    let cache_ttls = run.endpoints.iter().map(ttl_advice).collect();
    let recommendations = recommend(&run, &findings, targets.is_some());
    let verdict = verdict(&run, &findings, targets.as_ref(), options);
    let warnings = std::mem::take(&mut run.warnings);
    Report {
        run,
        findings,
        recommendations,
        cache_ttls,
        targets,
        comparison,
        verdict,
        warnings,
    }
}

fn endpoint_findings(endpoint: &EndpointStats, t: &Thresholds, findings: &mut Vec<Finding>) {
    let label = endpoint.label();
    let mut push = |kind, severity, value: f64, threshold: f64, unit: &str, reason: String| {
        findings.push(Finding {
            id: String::new(),
            endpoint: label.clone(),
            kind,
            severity,
            value,
            threshold,
            unit: unit.to_owned(),
            reason,
        });
    };
    if endpoint.requests > 0 {
        let pct = endpoint.error_pct;
        let level = if pct > t.error_rate_critical_pct {
            Some((Severity::Critical, t.error_rate_critical_pct))
        } else if pct > t.error_rate_warning_pct {
            Some((Severity::Warning, t.error_rate_warning_pct))
        } else {
            None
        };
        if let Some((severity, threshold)) = level {
            push(
                FindingKind::ErrorRate,
                severity,
                pct,
                threshold,
                "%",
                format!(
                    "{} of {} requests failed ({pct:.2}%), above {threshold}%",
                    endpoint.failures, endpoint.requests
                ),
            );
        }
    }
    if endpoint.requests < t.min_requests.max(1) {
        return;
    }
    if let Some(p99) = endpoint.p99_ms {
        let level = if p99 > t.p99_critical_ms {
            Some((Severity::Critical, t.p99_critical_ms))
        } else if p99 > t.p99_warning_ms {
            Some((Severity::Warning, t.p99_warning_ms))
        } else {
            None
        };
        if let Some((severity, threshold)) = level {
            push(
                FindingKind::Latency,
                severity,
                p99,
                threshold,
                "ms",
                format!(
                    "p99 is {p99:.0} ms, above {threshold:.0} ms: 1 request in 100 waits that long"
                ),
            );
        }
        if let Some(max) = endpoint.max_ms
            && p99 > 0.0
            && max > p99 * t.max_over_p99_ratio
            && max - p99 >= t.variance_min_excess_ms
        {
            let ratio = max / p99;
            push(
                FindingKind::Variance,
                Severity::Warning,
                ratio,
                t.max_over_p99_ratio,
                "x",
                format!(
                    "max {max:.0} ms is {ratio:.1}x p99 ({p99:.0} ms): rare requests are far slower \
                     than the rest (timeouts, retries, pauses, cold caches)"
                ),
            );
        }
    }
}

/// Finds when an endpoint's p95 rose above its early-run baseline and stayed there.
pub fn detect_degradation(
    endpoint: &EndpointHistory,
    timeline: &[HistoryPoint],
    t: &Thresholds,
) -> Option<Degradation> {
    let points: Vec<(i64, f64)> = endpoint
        .series
        .iter()
        .filter_map(|p| p.p95_ms.map(|v| (p.t_start_unix, v)))
        .collect();
    let baseline_len = ((points.len() as f64 * DEGRADATION_BASELINE_SHARE).ceil() as usize)
        .max(DEGRADATION_SUSTAINED_POINTS);
    if points.len() < baseline_len + DEGRADATION_SUSTAINED_POINTS {
        return None;
    }
    let baseline = median(points[..baseline_len].iter().map(|p| p.1).collect())?;
    if baseline <= 0.0 {
        return None;
    }
    let limit = (baseline * t.degradation_factor).max(baseline + t.degradation_min_increase_ms);
    let start = (baseline_len..=points.len() - DEGRADATION_SUSTAINED_POINTS).find(|&i| {
        points[i..i + DEGRADATION_SUSTAINED_POINTS]
            .iter()
            .all(|p| p.1 >= limit)
    })?;
    // The episode ends where the p95 stays back under the limit as long as it took to
    // call it degraded.
    let end = (start + DEGRADATION_SUSTAINED_POINTS
        ..=points.len().saturating_sub(DEGRADATION_SUSTAINED_POINTS))
        .find(|&i| {
            points[i..i + DEGRADATION_SUSTAINED_POINTS]
                .iter()
                .all(|p| p.1 < limit)
        });
    let degraded = median(
        points[start..end.unwrap_or(points.len())]
            .iter()
            .map(|p| p.1)
            .collect(),
    )?;
    let started_at = points[start].0;
    let first = endpoint
        .series
        .first()
        .map_or(started_at, |p| p.t_start_unix);
    let users_at_start = timeline
        .iter()
        .rev()
        .find(|p| p.t_start_unix <= started_at)
        .and_then(|p| p.users);
    Some(Degradation {
        started_at_unix: started_at,
        recovered_at_unix: end.map(|i| points[i].0),
        offset_secs: started_at - first,
        baseline_p95_ms: baseline,
        degraded_p95_ms: degraded,
        factor: degraded / baseline,
        users_at_start,
    })
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[(values.len() - 1) / 2])
}

fn degradation_finding(endpoint: &EndpointHistory, d: &Degradation, t: &Thresholds) -> Finding {
    let users = d
        .users_at_start
        .map(|u| format!(" with {u:.0} users"))
        .unwrap_or_default();
    // A lasting degradation is a warning; an episode that recovered is worth knowing.
    let (severity, outcome) = match d.recovered_at_unix {
        None => (Severity::Warning, "and stayed there".to_owned()),
        Some(end) => (
            Severity::Info,
            format!("for {} s, then recovered", end - d.started_at_unix),
        ),
    };
    Finding {
        id: String::new(),
        endpoint: endpoint.label(),
        kind: FindingKind::Degradation,
        severity,
        value: d.factor,
        threshold: t.degradation_factor,
        unit: "x".into(),
        reason: format!(
            "p95 rose from {:.0} ms to {:.0} ms ({:.1}x) {}s into the run{users} {outcome}",
            d.baseline_p95_ms, d.degraded_p95_ms, d.factor, d.offset_secs
        ),
    }
}

fn regression_findings(comparison: &Comparison, findings: &mut Vec<Finding>) {
    for endpoint in &comparison.endpoints {
        for delta in &endpoint.deltas {
            if delta.change != super::model::Change::Regression {
                continue;
            }
            let (Some(base), Some(current)) = (delta.base, delta.current) else {
                continue;
            };
            let unit = if delta.metric == "error_pct" {
                "%"
            } else if delta.metric == "rps" {
                "rps"
            } else {
                "ms"
            };
            findings.push(Finding {
                id: String::new(),
                endpoint: endpoint.endpoint.clone(),
                kind: FindingKind::Regression,
                severity: Severity::Warning,
                value: current,
                threshold: base,
                unit: unit.into(),
                reason: format!(
                    "{} went from {base:.2} to {current:.2} {unit} against {}",
                    delta.metric, comparison.base_label
                ),
            });
        }
    }
}

/// Traffic tier of an endpoint from its requests per second.
pub fn traffic_tier(rps: f64) -> TrafficTier {
    if rps >= HIGH_TRAFFIC_MIN_RPS {
        TrafficTier::High
    } else if rps >= MEDIUM_TRAFFIC_MIN_RPS {
        TrafficTier::Medium
    } else if rps >= LOW_TRAFFIC_MIN_RPS {
        TrafficTier::Low
    } else {
        TrafficTier::VeryLow
    }
}

/// Methods whose responses a cache may serve again.
fn is_cacheable_method(method: &str) -> bool {
    method.is_empty() || method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")
}

/// Cache TTL advice from traffic and latency.
pub fn ttl_advice(endpoint: &EndpointStats) -> TtlAdvice {
    let tier = traffic_tier(endpoint.rps);
    let label = endpoint.label();
    if !is_cacheable_method(&endpoint.method) {
        return TtlAdvice {
            endpoint: label,
            tier,
            rps: endpoint.rps,
            p99_ms: endpoint.p99_ms,
            ttl_secs: None,
            reason: format!(
                "{} changes state: do not cache its responses",
                endpoint.method
            ),
        };
    }
    let (base, range) = match tier {
        TrafficTier::High => (
            HIGH_TRAFFIC_TTL_SECS,
            format!("≥ {HIGH_TRAFFIC_MIN_RPS} rps"),
        ),
        TrafficTier::Medium => (
            MEDIUM_TRAFFIC_TTL_SECS,
            format!("{MEDIUM_TRAFFIC_MIN_RPS}–{HIGH_TRAFFIC_MIN_RPS} rps"),
        ),
        TrafficTier::Low => (
            LOW_TRAFFIC_TTL_SECS,
            format!("{LOW_TRAFFIC_MIN_RPS}–{MEDIUM_TRAFFIC_MIN_RPS} rps"),
        ),
        TrafficTier::VeryLow => (
            VERY_LOW_TRAFFIC_TTL_SECS,
            format!("< {LOW_TRAFFIC_MIN_RPS} rps"),
        ),
    };
    let mut reason = format!(
        "{tier} traffic ({:.1} rps, {range}): {}",
        endpoint.rps,
        human_secs(base)
    );
    let mut ttl = base;
    match endpoint.p99_ms {
        Some(p99) if p99 > SLOW_P99_MS && ttl < SLOW_MIN_TTL_SECS => {
            ttl = SLOW_MIN_TTL_SECS;
            reason.push_str(&format!(
                "; slow (p99 {p99:.0} ms > {SLOW_P99_MS:.0} ms): raised to {}",
                human_secs(ttl)
            ));
        }
        Some(p99) if p99 > SLOW_P99_MS => reason.push_str(&format!(
            "; slow (p99 {p99:.0} ms > {SLOW_P99_MS:.0} ms): keep at least {}",
            human_secs(SLOW_MIN_TTL_SECS)
        )),
        Some(p99) if p99 < FAST_P99_MS && ttl > FAST_MAX_TTL_SECS => {
            ttl = FAST_MAX_TTL_SECS;
            reason.push_str(&format!(
                "; fast (p99 {p99:.0} ms < {FAST_P99_MS:.0} ms): capped at {} to keep data fresh",
                human_secs(ttl)
            ));
        }
        _ => {}
    }
    TtlAdvice {
        endpoint: label,
        tier,
        rps: endpoint.rps,
        p99_ms: endpoint.p99_ms,
        ttl_secs: Some(ttl),
        reason,
    }
}

/// `300` → `5 min`, `30` → `30 s`.
pub fn human_secs(secs: u64) -> String {
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

fn recommend(run: &RunData, findings: &[Finding], has_targets: bool) -> Vec<Recommendation> {
    let mut out = Vec::new();
    let mut rec = |horizon, endpoint: Option<&str>, action: String, because: &[&Finding]| {
        out.push(Recommendation {
            horizon,
            endpoint: endpoint.map(str::to_owned),
            action,
            because_of: because.iter().map(|f| f.id.clone()).collect(),
        });
    };
    for f in findings {
        let ep = f.endpoint.as_str();
        match (f.kind, f.severity) {
            (FindingKind::ErrorRate, severity) => {
                let top_error = top_error_of(run, ep)
                    .map(|e| format!("; most frequent error: {e}"))
                    .unwrap_or_default();
                let horizon = if severity == Severity::Critical {
                    Horizon::Immediate
                } else {
                    Horizon::ShortTerm
                };
                rec(
                    horizon,
                    Some(ep),
                    format!(
                        "Fix the failures of {ep}: {:.2}% of its requests failed{top_error}",
                        f.value
                    ),
                    &[f],
                );
            }
            (FindingKind::Latency, Severity::Critical) => rec(
                Horizon::Immediate,
                Some(ep),
                format!(
                    "Profile {ep} under load: p99 {:.0} ms is above {:.0} ms; trace its slowest \
                     dependency (queries, downstream calls, locks)",
                    f.value, f.threshold
                ),
                &[f],
            ),
            (FindingKind::Latency, _) => rec(
                Horizon::ShortTerm,
                Some(ep),
                format!(
                    "Speed up {ep} before it turns critical: p99 {:.0} ms; cache it (see the TTL \
                     advice) or tune its queries",
                    f.value
                ),
                &[f],
            ),
            (FindingKind::Variance, _) => rec(
                Horizon::ShortTerm,
                Some(ep),
                format!(
                    "Find the outliers of {ep}: max is {:.1}x p99; check timeouts and retries, \
                     GC or event-loop pauses, cold caches, connection pool waits",
                    f.value
                ),
                &[f],
            ),
            (FindingKind::Degradation, Severity::Info) => rec(
                Horizon::ShortTerm,
                Some(ep),
                format!(
                    "Find what slowed {ep} for a while ({}): a periodic job, GC or compaction, \
                     a noisy neighbour, lock contention",
                    f.reason
                ),
                &[f],
            ),
            (FindingKind::Degradation, _) => rec(
                Horizon::ShortTerm,
                Some(ep),
                format!(
                    "Find why {ep} slowed down during the run ({}): look for exhausted pools, \
                     growing queues, memory or connection leaks",
                    f.reason
                ),
                &[f],
            ),
            (FindingKind::Regression, _) => rec(
                Horizon::Immediate,
                Some(ep),
                format!(
                    "Review the changes since the base run for {ep}: {}",
                    f.reason
                ),
                &[f],
            ),
        }
    }
    let degraded: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::Degradation && f.severity >= Severity::Warning)
        .collect();
    if !degraded.is_empty() {
        rec(
            Horizon::LongTerm,
            None,
            "Run a step-load or soak test to find the capacity limit: latency degraded as load \
             grew; size the service (or autoscaling) from where it bends"
                .into(),
            &degraded,
        );
    }
    let slow_reads: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            f.kind == FindingKind::Latency
                && run
                    .endpoints
                    .iter()
                    .any(|e| e.label() == f.endpoint && is_cacheable_method(&e.method))
        })
        .collect();
    if !slow_reads.is_empty() {
        rec(
            Horizon::LongTerm,
            None,
            "Put a shared cache (or precomputed views) in front of the slow read endpoints, with \
             the TTLs advised below, and watch its hit rate"
                .into(),
            &slow_reads,
        );
    }
    if !has_targets {
        rec(
            Horizon::LongTerm,
            None,
            "Write a targets file (p95/p99/error_rate/rps per endpoint) and run `snaptop report \
             --targets` in CI so regressions fail the build"
                .into(),
            &[],
        );
    }
    out.sort_by_key(|r| r.horizon);
    out
}

fn top_error_of(run: &RunData, endpoint: &str) -> Option<String> {
    run.failures
        .iter()
        .filter(|f| endpoint_label(&f.method, &f.name) == endpoint)
        .max_by_key(|f| f.occurrences)
        .map(|f| format!("{} ({}x)", f.error, f.occurrences))
}

fn verdict(
    run: &RunData,
    findings: &[Finding],
    targets: Option<&TargetsResult>,
    options: &JudgeOptions,
) -> Verdict {
    let mut reasons = Vec::new();
    // A latency nobody could read is not a latency under the threshold: an unknown p99
    // fails the gate, as a target whose metric is missing does.
    let unjudged = run
        .endpoints
        .iter()
        .filter(|e| e.requests >= options.thresholds.min_requests.max(1) && e.p99_ms.is_none())
        .count();
    if unjudged > 0 {
        reasons.push(format!(
            "latency not judged: p99 unknown for {unjudged} endpoint(s) with requests (the \
             stats file has no 99% column?)"
        ));
    }
    let critical = findings
        .iter()
        .filter(|f| f.severity == Severity::Critical)
        .count();
    if critical > 0 {
        reasons.push(format!("{critical} CRITICAL finding(s)"));
    }
    if let Some(t) = targets {
        let failed = t.outcomes.iter().filter(|o| !o.passed).count();
        if failed > 0 {
            reasons.push(format!("{failed} target(s) failed"));
        }
        if options.strict_targets && !t.warnings.is_empty() {
            reasons.push(format!(
                "{} target(s) name endpoints not in the data (--strict-targets)",
                t.warnings.len()
            ));
        }
    }
    if options.fail_on_regression {
        let regressions = findings
            .iter()
            .filter(|f| f.kind == FindingKind::Regression)
            .count();
        if regressions > 0 {
            reasons.push(format!("{regressions} regression(s) against the base run"));
        }
    }
    Verdict {
        passed: reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(method: &str, rps: f64, p99: Option<f64>, max: Option<f64>) -> EndpointStats {
        EndpointStats {
            method: method.into(),
            name: "/x".into(),
            requests: 1000,
            failures: 0,
            error_pct: 0.0,
            median_ms: None,
            average_ms: None,
            min_ms: None,
            max_ms: max,
            p50_ms: None,
            p95_ms: None,
            p99_ms: p99,
            rps,
            failures_per_sec: None,
            percentiles: Vec::new(),
        }
    }

    #[test]
    fn ttl_follows_traffic_then_latency() {
        assert_eq!(
            ttl_advice(&endpoint("GET", 50.0, Some(100.0), None)).ttl_secs,
            Some(300)
        );
        assert_eq!(
            ttl_advice(&endpoint("GET", 8.0, Some(100.0), None)).ttl_secs,
            Some(120)
        );
        assert_eq!(
            ttl_advice(&endpoint("GET", 2.0, Some(100.0), None)).ttl_secs,
            Some(60)
        );
        assert_eq!(
            ttl_advice(&endpoint("GET", 0.2, Some(100.0), None)).ttl_secs,
            Some(30)
        );
        // slow raises, fast caps
        assert_eq!(
            ttl_advice(&endpoint("GET", 0.2, Some(250.0), None)).ttl_secs,
            Some(300)
        );
        assert_eq!(
            ttl_advice(&endpoint("GET", 50.0, Some(10.0), None)).ttl_secs,
            Some(60)
        );
        let post = ttl_advice(&endpoint("POST", 50.0, Some(10.0), None));
        assert_eq!(post.ttl_secs, None);
        assert!(post.reason.contains("POST"));
    }

    #[test]
    fn latency_and_variance_thresholds() {
        let t = Thresholds::default();
        let mut findings = Vec::new();
        endpoint_findings(
            &endpoint("GET", 1.0, Some(600.0), Some(700.0)),
            &t,
            &mut findings,
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Critical);
        findings.clear();
        endpoint_findings(
            &endpoint("GET", 1.0, Some(301.0), Some(1300.0)),
            &t,
            &mut findings,
        );
        let kinds: Vec<_> = findings.iter().map(|f| (f.kind, f.severity)).collect();
        assert_eq!(
            kinds,
            vec![
                (FindingKind::Latency, Severity::Warning),
                (FindingKind::Variance, Severity::Warning)
            ]
        );
        findings.clear();
        endpoint_findings(
            &endpoint("GET", 1.0, Some(2.0), Some(9.0)),
            &t,
            &mut findings,
        );
        assert!(
            findings.is_empty(),
            "a 9 ms max is no outlier: {findings:?}"
        );
    }

    fn series(values: &[f64]) -> EndpointHistory {
        EndpointHistory {
            method: "GET".into(),
            name: "/x".into(),
            rows: values.len() as u64,
            peak_p95_ms: None,
            peak_p95_at_unix: None,
            peak_p99_ms: None,
            peak_p99_at_unix: None,
            median_p95_ms: None,
            median_p99_ms: None,
            peak_rps: 0.0,
            series: values
                .iter()
                .enumerate()
                .map(|(i, v)| HistoryPoint {
                    t_start_unix: 100 + i as i64,
                    width_secs: 1,
                    users: None,
                    rps: 1.0,
                    failures_per_sec: 0.0,
                    p50_ms: None,
                    p95_ms: Some(*v),
                    p99_ms: None,
                })
                .collect(),
            degradation: None,
        }
    }

    #[test]
    fn degradation_needs_a_sustained_rise() {
        let t = Thresholds::default();
        let mut rising = vec![100.0; 10];
        rising.extend(vec![400.0; 10]);
        let d = detect_degradation(&series(&rising), &[], &t).expect("degraded");
        assert_eq!(d.started_at_unix, 110);
        assert_eq!(d.offset_secs, 10);
        assert_eq!(d.baseline_p95_ms, 100.0);
        assert_eq!(d.recovered_at_unix, None);
        let mut episode = vec![100.0; 18];
        episode[12] = 900.0;
        episode[13] = 900.0;
        episode[14] = 900.0;
        let d = detect_degradation(&series(&episode), &[], &t).expect("an episode");
        assert_eq!((d.started_at_unix, d.recovered_at_unix), (112, Some(115)));
        assert_eq!(d.degraded_p95_ms, 900.0);
        let mut blip = vec![100.0; 18];
        blip[12] = 900.0;
        blip[13] = 900.0;
        assert_eq!(detect_degradation(&series(&blip), &[], &t), None);
        assert_eq!(detect_degradation(&series(&[100.0, 900.0]), &[], &t), None);
    }

    #[test]
    fn thresholds_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "p99_critical_ms = 800\n\np99_warnin_ms = 1\n").unwrap();
        let error = Thresholds::load(&path).unwrap_err().to_string();
        assert!(error.contains("t.toml:3"), "{error}");
        std::fs::write(&path, "p99_critical_ms = 800\np99_warning_ms = 400\n").unwrap();
        let t = Thresholds::load(&path).unwrap();
        assert_eq!((t.p99_critical_ms, t.p99_warning_ms), (800.0, 400.0));
    }
}
