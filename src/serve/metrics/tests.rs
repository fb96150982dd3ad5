//! The exposition parsed back with a Prometheus text-format parser: the names and types
//! the issue asks for, values that add up to what the engine said, counters that only
//! move forward.

use super::*;
use crate::cache::Counts;
use crate::engine::model::SourceStats;
use crate::ui::sample;

fn scrape(m: &Metrics) -> prometheus_parse::Scrape {
    let text = m.encode();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: {other:?}"),
        })
}

fn finished(result: &str) -> EngineEvent {
    let mut summary = sample::history()[0].clone();
    summary.duration_ms = 1_500;
    match result {
        "partial" => summary.partial = true,
        "cancelled" => summary.cancelled = true,
        _ => {}
    }
    let mut snapshot = sample::snapshot();
    snapshot.stats.per_source = BTreeMap::from([
        (
            "GitHub".to_string(),
            SourceStats {
                requests: 47,
                not_modified: 46,
                answered: 47,
                ..SourceStats::default()
            },
        ),
        (
            "TeamCity".to_string(),
            SourceStats {
                requests: 15,
                answered: 12,
                rate_limited_waits: 2,
                ..SourceStats::default()
            },
        ),
    ]);
    EngineEvent::Finished {
        summary,
        snapshot: Box::new(snapshot),
    }
}

#[test]
fn every_metric_the_issue_names_is_exposed_with_its_type() {
    let m = Metrics::new();
    m.observe(&finished("complete"));
    m.observe(&EngineEvent::Progress(Box::new(sample::progress())));
    m.observe_cache(&CacheReport::default());
    let text = m.encode();
    for (name, kind) in [
        ("snaptop_snapshot_duration_seconds", "histogram"),
        ("snaptop_snapshots_total", "counter"),
        ("snaptop_upstream_requests_total", "counter"),
        ("snaptop_rate_limit_remaining", "gauge"),
        ("snaptop_rate_limit_waits_total", "counter"),
        ("snaptop_cache_lookups_total", "counter"),
        ("snaptop_attached_clients", "gauge"),
        ("snaptop_last_success_timestamp_seconds", "gauge"),
    ] {
        let family = name.trim_end_matches("_total");
        assert!(
            text.contains(&format!("# TYPE {family} {kind}")),
            "{name} as {kind}:\n{text}"
        );
        assert!(
            text.contains(&format!("\n{name}")),
            "{name} has samples:\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Parses as the text format.
    let s = scrape(&m);
    assert!(!s.samples.is_empty());
}

#[test]
fn runs_requests_and_budgets_are_counted_as_the_engine_said() {
    let m = Metrics::new();
    m.observe(&finished("complete"));
    m.observe(&finished("partial"));
    m.observe(&EngineEvent::Failed {
        summary: sample::history()[3].clone(),
        error: "github: 401".into(),
    });
    m.observe(&EngineEvent::Progress(Box::new(sample::progress())));
    let s = scrape(&m);
    let runs = |r| value(&s, "snaptop_snapshots_total", &[("result", r)]);
    assert_eq!(runs("complete"), Some(1.0));
    assert_eq!(runs("partial"), Some(1.0));
    assert_eq!(runs("failed"), Some(1.0));
    let req = |src, st| {
        value(
            &s,
            "snaptop_upstream_requests_total",
            &[("source", src), ("status", st)],
        )
    };
    // Two runs' worth: 46 answered 304 and 1 answered 2xx by GitHub each time.
    assert_eq!(req("github", "304"), Some(92.0));
    assert_eq!(req("github", "2xx"), Some(2.0));
    assert_eq!(req("github", "error"), Some(0.0));
    assert_eq!(req("teamcity", "2xx"), Some(24.0));
    assert_eq!(req("teamcity", "error"), Some(6.0));
    assert_eq!(
        value(
            &s,
            "snaptop_rate_limit_waits_total",
            &[("source", "teamcity")]
        ),
        Some(4.0)
    );
    let remaining = |src, res| {
        value(
            &s,
            "snaptop_rate_limit_remaining",
            &[("source", src), ("resource", res)],
        )
    };
    assert_eq!(remaining("github", "core"), Some(4_321.0));
    assert_eq!(remaining("github", "graphql"), Some(310.0));
    assert_eq!(remaining("datadog", "core"), Some(97.0));
    // The histogram has the three runs.
    let count = s
        .samples
        .iter()
        .find(|x| x.metric == "snaptop_snapshot_duration_seconds")
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            other => panic!("{other:?}"),
        });
    assert_eq!(count, Some(3.0));
    // Only a complete run sets the last success.
    assert!(value(&s, "snaptop_last_success_timestamp_seconds", &[]).unwrap() > 1.7e9);
}

#[test]
fn cache_lookups_move_by_what_the_lifetime_counters_gained() {
    let m = Metrics::new();
    let report = |hits: u64, misses: u64| {
        let mut r = CacheReport::default();
        r.lifetime.insert(
            Namespace::GitHub,
            Counts {
                hits_memory: hits,
                misses,
                ..Counts::default()
            },
        );
        r
    };
    m.observe_cache(&report(10, 4));
    m.observe_cache(&report(25, 5));
    let s = scrape(&m);
    let lookups = |ns, r| {
        value(
            &s,
            "snaptop_cache_lookups_total",
            &[("namespace", ns), ("result", r)],
        )
    };
    assert_eq!(lookups("github", "hit_memory"), Some(25.0));
    assert_eq!(lookups("github", "miss"), Some(5.0));
    assert_eq!(lookups("jira", "miss"), Some(0.0));
    // A report with lower counts (an older store) never moves a counter back.
    m.observe_cache(&report(3, 1));
    let s = scrape(&m);
    assert_eq!(
        value(
            &s,
            "snaptop_cache_lookups_total",
            &[("namespace", "github"), ("result", "hit_memory")]
        ),
        Some(25.0)
    );
    m.set_attached_clients(3);
    assert_eq!(
        value(&scrape(&m), "snaptop_attached_clients", &[]),
        Some(3.0)
    );
}

#[test]
fn no_label_or_value_carries_a_secret() {
    let m = Metrics::new();
    let mut event = finished("complete");
    if let EngineEvent::Finished { summary, .. } = &mut event {
        summary.error = None;
    }
    m.observe(&event);
    m.observe(&EngineEvent::Log(crate::engine::events::LogLine {
        at: time::OffsetDateTime::UNIX_EPOCH,
        level: crate::engine::events::Level::Warn,
        source: "github".into(),
        message: "Authorization: Bearer ghp_SECRET".into(),
    }));
    let text = m.encode();
    assert!(
        !text.contains("ghp_SECRET") && !text.contains("Bearer"),
        "{text}"
    );
}
