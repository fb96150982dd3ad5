//! Before/after comparison of two runs, endpoint by endpoint.

use std::collections::BTreeMap;

use super::model::{Change, Comparison, EndpointComparison, EndpointStats, MetricDelta, RunData};

/// A latency or RPS change smaller than this share is noise between two load tests.
pub const MIN_CHANGE_PCT: f64 = 10.0;
/// A latency change smaller than this is noise whatever its share (2 → 3 ms is +50%).
pub const MIN_LATENCY_DELTA_MS: f64 = 5.0;
/// An error-rate change smaller than this many percentage points is noise.
pub const MIN_ERROR_DELTA_PCT_POINTS: f64 = 0.1;

#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

/// Compares `current` with `base` (both with their aggregate rows, shown as "Aggregated").
///
/// Endpoints match by label (`GET /users`). A run whose format has no method (JMeter's
/// samples are only labelled) matches the other run's endpoints by name: `/users` is
/// `GET /users` when exactly one unmatched endpoint of the other run has that name; it is
/// shown as `/users (base: GET /users)` when the labels differ.
pub fn compare(base: &RunData, current: &RunData, base_label: &str) -> Comparison {
    let index = |run: &RunData| -> BTreeMap<String, EndpointStats> {
        run.endpoints
            .iter()
            .chain(run.aggregate.iter())
            .map(|e| (e.label(), e.clone()))
            .collect()
    };
    let mut before = index(base);
    let mut after = index(current);
    match_by_name(&mut before, &mut after);
    let mut endpoints = Vec::new();
    let (mut regressions, mut improvements) = (0, 0);
    for (label, now) in &after {
        let Some(then) = before.get(label) else {
            continue;
        };
        let deltas = vec![
            latency_delta(
                "p50",
                then.p50_ms.or(then.median_ms),
                now.p50_ms.or(now.median_ms),
            ),
            latency_delta("p95", then.p95_ms, now.p95_ms),
            latency_delta("p99", then.p99_ms, now.p99_ms),
            delta(
                "error_pct",
                Some(then.error_pct),
                Some(now.error_pct),
                Better::Lower,
                |base, current| (current - base).abs() >= MIN_ERROR_DELTA_PCT_POINTS,
            ),
            delta(
                "rps",
                Some(then.rps),
                Some(now.rps),
                Better::Higher,
                |base, current| relative_change_pct(base, current).abs() >= MIN_CHANGE_PCT,
            ),
        ];
        for d in &deltas {
            match d.change {
                Change::Regression => regressions += 1,
                Change::Improvement => improvements += 1,
                Change::Unchanged => {}
            }
        }
        endpoints.push(EndpointComparison {
            endpoint: label.clone(),
            deltas,
        });
    }
    Comparison {
        base_label: base_label.to_owned(),
        endpoints,
        added: after
            .keys()
            .filter(|k| !before.contains_key(*k))
            .cloned()
            .collect(),
        removed: before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect(),
        regressions,
        improvements,
    }
}

/// Re-keys endpoints that match only by name (one side without a method) under one label,
/// so the comparison pairs them.
fn match_by_name(
    before: &mut BTreeMap<String, EndpointStats>,
    after: &mut BTreeMap<String, EndpointStats>,
) {
    let unmatched = |from: &BTreeMap<String, EndpointStats>,
                     other: &BTreeMap<String, EndpointStats>| {
        from.iter()
            .filter(|(label, _)| !other.contains_key(*label))
            .map(|(label, e)| (label.clone(), e.name.clone(), e.method.is_empty()))
            .collect::<Vec<_>>()
    };
    let lonely_after = unmatched(after, before);
    let lonely_before = unmatched(before, after);
    for (label, name, no_method) in &lonely_after {
        let candidates: Vec<&(String, String, bool)> = lonely_before
            .iter()
            .filter(|(_, n, other_no_method)| n == name && (*no_method || *other_no_method))
            .collect();
        let [(base_label, _, _)] = candidates.as_slice() else {
            continue;
        };
        // One of each: two current endpoints of that name leave both unmatched.
        if lonely_after.iter().filter(|(_, n, _)| n == name).count() != 1 {
            continue;
        }
        let (Some(then), Some(now)) = (before.remove(base_label), after.remove(label)) else {
            continue;
        };
        let shown = format!("{label} (base: {base_label})");
        before.insert(shown.clone(), then);
        after.insert(shown, now);
    }
}

fn relative_change_pct(base: f64, current: f64) -> f64 {
    if base == 0.0 {
        if current == 0.0 { 0.0 } else { 100.0 }
    } else {
        (current - base) * 100.0 / base
    }
}

fn latency_delta(metric: &str, base: Option<f64>, current: Option<f64>) -> MetricDelta {
    delta(metric, base, current, Better::Lower, |base, current| {
        (current - base).abs() >= MIN_LATENCY_DELTA_MS
            && relative_change_pct(base, current).abs() >= MIN_CHANGE_PCT
    })
}

fn delta(
    metric: &str,
    base: Option<f64>,
    current: Option<f64>,
    better: Better,
    significant: impl Fn(f64, f64) -> bool,
) -> MetricDelta {
    let (delta, delta_pct, change) = match (base, current) {
        (Some(b), Some(c)) => {
            let change = if !significant(b, c) || b == c {
                Change::Unchanged
            } else {
                match (better, c > b) {
                    (Better::Lower, true) | (Better::Higher, false) => Change::Regression,
                    _ => Change::Improvement,
                }
            };
            let pct = (b != 0.0).then(|| relative_change_pct(b, c));
            (Some(c - b), pct, change)
        }
        _ => (None, None, Change::Unchanged),
    };
    MetricDelta {
        metric: metric.to_owned(),
        base,
        current,
        delta,
        delta_pct,
        change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::RunFiles;

    fn run(endpoints: Vec<(&str, f64, f64)>) -> RunData {
        RunData {
            files: RunFiles::default(),
            generation: None,
            endpoints: endpoints
                .into_iter()
                .map(|(name, p95, error_pct)| EndpointStats {
                    method: "GET".into(),
                    name: name.into(),
                    requests: 100,
                    failures: 0,
                    error_pct,
                    median_ms: None,
                    average_ms: None,
                    min_ms: None,
                    max_ms: None,
                    p50_ms: Some(10.0),
                    p95_ms: Some(p95),
                    p99_ms: None,
                    rps: 10.0,
                    failures_per_sec: None,
                    percentiles: Vec::new(),
                })
                .collect(),
            aggregate: None,
            history: None,
            failures: Vec::new(),
            exceptions: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn flags_regressions_improvements_and_membership() {
        let base = run(vec![
            ("/a", 100.0, 0.0),
            ("/b", 100.0, 2.0),
            ("/gone", 1.0, 0.0),
        ]);
        let current = run(vec![
            ("/a", 150.0, 0.0),
            ("/b", 102.0, 0.5),
            ("/new", 1.0, 0.0),
        ]);
        let c = compare(&base, &current, "base");
        let change = |ep: &str, metric: &str| {
            c.endpoints
                .iter()
                .find(|e| e.endpoint == ep)
                .and_then(|e| e.deltas.iter().find(|d| d.metric == metric))
                .map(|d| d.change)
        };
        assert_eq!(change("GET /a", "p95"), Some(Change::Regression));
        assert_eq!(change("GET /b", "p95"), Some(Change::Unchanged));
        assert_eq!(change("GET /b", "error_pct"), Some(Change::Improvement));
        assert_eq!(c.added, vec!["GET /new".to_owned()]);
        assert_eq!(c.removed, vec!["GET /gone".to_owned()]);
        assert_eq!((c.regressions, c.improvements), (1, 1));
    }

    #[test]
    fn labels_without_a_method_match_by_name() {
        let base = run(vec![("/a", 100.0, 0.0), ("/b", 100.0, 0.0)]);
        let mut current = run(vec![("/a", 300.0, 0.0), ("/c", 1.0, 0.0)]);
        for e in &mut current.endpoints {
            e.method.clear();
        }
        let c = compare(&base, &current, "base");
        assert_eq!(c.endpoints.len(), 1);
        assert_eq!(c.endpoints[0].endpoint, "/a (base: GET /a)");
        assert_eq!(c.regressions, 1);
        assert_eq!(c.added, vec!["/c".to_owned()]);
        assert_eq!(c.removed, vec!["GET /b".to_owned()]);
    }
}
