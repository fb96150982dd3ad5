//! Per-endpoint targets (SLA) in a TOML file, with k6-style rules.
//!
//! ```toml
//! [targets]
//! "GET /api/users" = ["p95 < 150", "p99 < 300", "error_rate < 0.5%"]
//! "/search"        = ["p(99) < 1s"]        # a bare name matches every method
//! "*"              = ["error_rate < 1%"]    # every endpoint (not the aggregate row)
//! "Aggregated"     = ["rps > 100"]          # the total row
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::analysis::line_of;
use super::error::ReportError;
use super::locust::read_small_file;
use super::model::{EndpointStats, TargetOutcome, TargetsResult};

/// The key of a targets entry that applies to every endpoint.
pub const ALL_ENDPOINTS: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A percentile in percent (95 for p95).
    Percentile(f64),
    Median,
    Average,
    Min,
    Max,
    Rps,
    /// In percent.
    ErrorRate,
    Failures,
    Requests,
    FailuresPerSec,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percentile(p) => write!(f, "p{p}"),
            Self::Median => f.write_str("median"),
            Self::Average => f.write_str("avg"),
            Self::Min => f.write_str("min"),
            Self::Max => f.write_str("max"),
            Self::Rps => f.write_str("rps"),
            Self::ErrorRate => f.write_str("error_rate"),
            Self::Failures => f.write_str("failures"),
            Self::Requests => f.write_str("requests"),
            Self::FailuresPerSec => f.write_str("failures_per_sec"),
        }
    }
}

impl Metric {
    fn is_latency(self) -> bool {
        matches!(
            self,
            Self::Percentile(_) | Self::Median | Self::Average | Self::Min | Self::Max
        )
    }

    fn unit(self) -> &'static str {
        match self {
            m if m.is_latency() => " ms",
            Self::ErrorRate => "%",
            Self::Rps | Self::FailuresPerSec => " /s",
            _ => "",
        }
    }

    fn value_of(self, e: &EndpointStats) -> Option<f64> {
        match self {
            Self::Percentile(p) => e
                .percentiles
                .iter()
                .find(|v| (v.percent - p).abs() < 1e-9)
                .and_then(|v| v.millis)
                .or(if (p - 50.0).abs() < 1e-9 {
                    e.median_ms
                } else {
                    None
                }),
            Self::Median => e.median_ms.or(e.p50_ms),
            Self::Average => e.average_ms,
            Self::Min => e.min_ms,
            Self::Max => e.max_ms,
            Self::Rps => Some(e.rps),
            Self::ErrorRate => Some(e.error_pct),
            Self::Failures => Some(e.failures as f64),
            Self::Requests => Some(e.requests as f64),
            Self::FailuresPerSec => e.failures_per_sec,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Self::Lt => actual < limit,
            Self::Le => actual <= limit,
            Self::Gt => actual > limit,
            Self::Ge => actual >= limit,
            Self::Eq => (actual - limit).abs() < 1e-9,
            Self::Ne => (actual - limit).abs() >= 1e-9,
        }
    }
}

/// One parsed rule, e.g. `p95 < 150`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's unit (ms for latencies, percent for error_rate).
    pub limit: f64,
}

/// The rules of one targets entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `"GET /x"`, a bare name, `"*"` or `"Aggregated"`.
    pub endpoint: String,
    pub line: u64,
    pub rules: Vec<Rule>,
}

/// A parsed targets file.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub path: PathBuf,
    pub targets: Vec<Target>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    targets: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

impl Targets {
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let text = read_small_file(path)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ReportError> {
        let config_error = |line, message: String| ReportError::Config {
            path: path.to_owned(),
            line,
            message,
        };
        let file: TargetsFile = toml::from_str(text).map_err(|e| {
            config_error(
                e.span().map_or(0, |s| line_of(text, s.start)),
                format!(
                    "{} (expected a [targets] table of \"endpoint\" = [\"p95 < 150\", ...])",
                    e.message().trim_end()
                ),
            )
        })?;
        let mut targets = Vec::new();
        for (endpoint, rules) in file.targets {
            let line = line_of(text, endpoint.span().start);
            let mut parsed = Vec::new();
            for rule in rules {
                let rule_line = line_of(text, rule.span().start);
                parsed.push(parse_rule(rule.get_ref()).map_err(|m| config_error(rule_line, m))?);
            }
            targets.push(Target {
                endpoint: endpoint.into_inner(),
                line,
                rules: parsed,
            });
        }
        targets.sort_by_key(|t| t.line);
        Ok(Self {
            path: path.to_owned(),
            targets,
        })
    }

    /// Checks every rule against the run's endpoints and aggregate row.
    pub fn check(
        &self,
        endpoints: &[EndpointStats],
        aggregate: Option<&EndpointStats>,
    ) -> TargetsResult {
        let mut result = TargetsResult::default();
        for target in &self.targets {
            let matched: Vec<&EndpointStats> = match target.endpoint.as_str() {
                ALL_ENDPOINTS => endpoints.iter().collect(),
                "Aggregated" | "Total" => aggregate.into_iter().collect(),
                key => endpoints
                    .iter()
                    .filter(|e| e.label() == key || e.name == key)
                    .collect(),
            };
            if matched.is_empty() {
                result.warnings.push(format!(
                    "{}:{}: target \"{}\" names no endpoint in the data: its {} rule(s) check nothing",
                    self.path.display(),
                    target.line,
                    target.endpoint,
                    target.rules.len()
                ));
                continue;
            }
            for endpoint in matched {
                for rule in &target.rules {
                    result.outcomes.push(check_rule(rule, endpoint));
                }
            }
        }
        result
    }
}

fn check_rule(rule: &Rule, endpoint: &EndpointStats) -> TargetOutcome {
    let actual = rule.metric.value_of(endpoint);
    let (passed, detail) = match actual {
        Some(value) => {
            let passed = rule.op.holds(value, rule.limit);
            (
                passed,
                format!(
                    "{} is {}{}",
                    rule.metric,
                    format_number(value),
                    rule.metric.unit()
                ),
            )
        }
        None => (false, format!("{} is not in the data", rule.metric)),
    };
    TargetOutcome {
        endpoint: endpoint.label(),
        rule: rule.text.clone(),
        passed,
        actual,
        detail,
    }
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Parses `metric op value[unit]`: `p95 < 150`, `p(99)<=1s`, `error_rate < 0.5%`, `rps > 100`.
pub fn parse_rule(text: &str) -> Result<Rule, String> {
    let trimmed = text.trim();
    let op_at = trimmed.find(['<', '>', '=', '!']).ok_or_else(|| {
        format!("rule \"{trimmed}\": expected `metric < value` (ops: < <= > >= == !=)")
    })?;
    let (metric_text, rest) = trimmed.split_at(op_at);
    let (op, value_text) = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ]
    .iter()
    .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|v| (*op, v)))
    .ok_or_else(|| format!("rule \"{trimmed}\": unknown operator (use < <= > >= == !=)"))?;
    let metric = parse_metric(metric_text.trim())
        .ok_or_else(|| format!(
            "rule \"{trimmed}\": unknown metric \"{}\" (use p50..p99.9, p(95), median, avg, min, max, rps, error_rate, failures, requests)",
            metric_text.trim()
        ))?;
    let value_text = value_text.trim();
    let (number_text, unit) = split_unit(value_text);
    let number: f64 = number_text
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| {
            format!(
                "rule \"{trimmed}\": expected a number after the operator, found \"{value_text}\""
            )
        })?;
    let limit = match (metric, unit) {
        (m, "" | "ms") if m.is_latency() => number,
        (m, "s") if m.is_latency() => number * 1000.0,
        (Metric::ErrorRate, "%") => number,
        // k6 writes rates as fractions: `rate < 0.01` is 1%.
        (Metric::ErrorRate, "") => number * 100.0,
        (Metric::Rps | Metric::FailuresPerSec | Metric::Failures | Metric::Requests, "") => number,
        (m, u) => return Err(format!("rule \"{trimmed}\": unit \"{u}\" does not fit {m}")),
    };
    Ok(Rule {
        text: trimmed.to_owned(),
        metric,
        op,
        limit,
    })
}

fn split_unit(value: &str) -> (&str, &str) {
    for unit in ["ms", "s", "%"] {
        if let Some(number) = value.strip_suffix(unit) {
            return (number, unit);
        }
    }
    (value, "")
}

fn parse_metric(text: &str) -> Option<Metric> {
    let lower = text.to_ascii_lowercase();
    let named = match lower.as_str() {
        "med" | "median" => Some(Metric::Median),
        "avg" | "average" | "mean" => Some(Metric::Average),
        "min" => Some(Metric::Min),
        "max" => Some(Metric::Max),
        "rps" | "requests_per_sec" => Some(Metric::Rps),
        "error_rate" | "errors" | "rate" => Some(Metric::ErrorRate),
        "failures" => Some(Metric::Failures),
        "requests" => Some(Metric::Requests),
        "failures_per_sec" => Some(Metric::FailuresPerSec),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let digits = lower.strip_prefix('p')?;
    let digits = digits
        .strip_prefix('(')
        .and_then(|d| d.strip_suffix(')'))
        .unwrap_or(digits);
    let percent: f64 = digits.parse().ok()?;
    (percent > 0.0 && percent <= 100.0).then_some(Metric::Percentile(percent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::PercentileValue;

    fn endpoint(method: &str, name: &str) -> EndpointStats {
        EndpointStats {
            method: method.into(),
            name: name.into(),
            requests: 1000,
            failures: 3,
            error_pct: 0.3,
            median_ms: Some(40.0),
            average_ms: Some(50.0),
            min_ms: Some(1.0),
            max_ms: Some(900.0),
            p50_ms: Some(40.0),
            p95_ms: Some(120.0),
            p99_ms: Some(310.0),
            rps: 150.0,
            failures_per_sec: Some(0.1),
            percentiles: vec![
                PercentileValue {
                    percent: 50.0,
                    millis: Some(40.0),
                },
                PercentileValue {
                    percent: 95.0,
                    millis: Some(120.0),
                },
                PercentileValue {
                    percent: 99.0,
                    millis: Some(310.0),
                },
            ],
        }
    }

    #[test]
    fn rules_in_k6_style() {
        let rule = parse_rule("p(95)<=1s").unwrap();
        assert_eq!(
            (rule.metric, rule.op, rule.limit),
            (Metric::Percentile(95.0), Op::Le, 1000.0)
        );
        assert_eq!(parse_rule("error_rate < 0.5%").unwrap().limit, 0.5);
        assert_eq!(parse_rule("rate < 0.01").unwrap().limit, 1.0);
        assert!(
            parse_rule("p95 150")
                .unwrap_err()
                .contains("expected `metric < value`")
        );
        assert!(
            parse_rule("latency < 150")
                .unwrap_err()
                .contains("unknown metric")
        );
        assert!(parse_rule("rps > 10%").unwrap_err().contains("unit"));
    }

    #[test]
    fn checks_pass_fail_and_warn_on_unknown_endpoints() {
        let text = "[targets]\n\"GET /users\" = [\"p95 < 150\", \"p99 < 300\"]\n\"/nope\" = [\"rps > 1\"]\n\"*\" = [\"error_rate < 0.5%\"]\n";
        let targets = Targets::parse(Path::new("sla.toml"), text).unwrap();
        let result = targets.check(&[endpoint("GET", "/users")], None);
        let verdicts: Vec<(&str, bool)> = result
            .outcomes
            .iter()
            .map(|o| (o.rule.as_str(), o.passed))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                ("p95 < 150", true),
                ("p99 < 300", false),
                ("error_rate < 0.5%", true)
            ]
        );
        assert_eq!(result.warnings.len(), 1);
        assert!(result.warnings[0].contains("sla.toml:3") && result.warnings[0].contains("/nope"));
    }

    #[test]
    fn bad_rules_name_their_line() {
        let text = "[targets]\n\"/a\" = [\n  \"p95 < 150\",\n  \"p95 <\",\n]\n";
        let error = Targets::parse(Path::new("sla.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("sla.toml:4:"), "{error}");
        let error = Targets::parse(Path::new("sla.toml"), "[target]\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("sla.toml:1:"), "{error}");
    }
}
