//! Prometheus metrics of the engine, in the text exposition format (`GET /metrics` of
//! `snaptop serve`), with the official `prometheus-client` crate and its naming rules:
//! a `snaptop_` prefix, `_total` on counters, base units (`_seconds`).
//!
//! Fed from what the engine already says ([`EngineEvent`]s and the cache's
//! [`CacheReport`]); nothing here reads a secret, and no label carries one (sources,
//! namespaces and result words only).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::cache::{CacheReport, Namespace};
use crate::engine::events::{Budget, EngineEvent};
use crate::engine::model::{RunStats, RunSummary};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceStatus {
    source: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceResource {
    source: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabel {
    namespace: &'static str,
    result: &'static str,
}

/// The metrics registry and the values it exposes.
pub struct Metrics {
    registry: Registry,
    duration: Histogram,
    snapshots: Family<ResultLabel, Counter>,
    upstream: Family<SourceStatus, Counter>,
    remaining: Family<SourceResource, Gauge>,
    waits: Family<SourceLabel, Counter>,
    lookups: Family<LookupLabel, Counter>,
    attached: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    /// The cache's lifetime counters last seen, so counters move by the difference.
    lookups_seen: Mutex<BTreeMap<(Namespace, &'static str), u64>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// The word of a run's outcome.
pub fn result_word(summary: &RunSummary) -> &'static str {
    if summary.error.is_some() {
        "failed"
    } else if summary.cancelled {
        "cancelled"
    } else if summary.partial {
        "partial"
    } else {
        "complete"
    }
}

/// "GitHub GraphQL" → ("github", "graphql"); "Datadog" → ("datadog", "core").
fn budget_labels(b: &Budget) -> SourceResource {
    let mut words = b.source.split_whitespace();
    let source = words.next().unwrap_or("unknown").to_ascii_lowercase();
    let rest: Vec<String> = words.map(str::to_ascii_lowercase).collect();
    SourceResource {
        source,
        resource: if rest.is_empty() {
            "core".into()
        } else {
            rest.join("_")
        },
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("snaptop");
        // 0.25 s … ~17 min: a warm run is a fraction of a second, a cold one over a
        // far network minutes, a timed-out one the run timeout.
        let duration = Histogram::new(exponential_buckets(0.25, 2.0, 13));
        registry.register_with_unit(
            "snapshot_duration",
            "Wall time of a snapshot run",
            Unit::Seconds,
            duration.clone(),
        );
        let snapshots = Family::<ResultLabel, Counter>::default();
        registry.register(
            "snapshots",
            "Snapshot runs by result (complete, partial, cancelled, failed)",
            snapshots.clone(),
        );
        let upstream = Family::<SourceStatus, Counter>::default();
        registry.register(
            "upstream_requests",
            "Requests sent to a source, by the class of their answer (2xx, 304, error: no usable answer)",
            upstream.clone(),
        );
        let remaining = Family::<SourceResource, Gauge>::default();
        registry.register(
            "rate_limit_remaining",
            "A source's rate-limit budget left, as its server last reported it",
            remaining.clone(),
        );
        let waits = Family::<SourceLabel, Counter>::default();
        registry.register(
            "rate_limit_waits",
            "Times a request waited for a source's rate-limit budget to reset",
            waits.clone(),
        );
        let lookups = Family::<LookupLabel, Counter>::default();
        registry.register(
            "cache_lookups",
            "HTTP cache lookups by namespace and result (hit_memory, hit_disk, revalidated, miss, stale)",
            lookups.clone(),
        );
        let attached = Gauge::default();
        registry.register(
            "attached_clients",
            "Panes and clients attached to this engine",
            attached.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "last_success_timestamp",
            "Unix time at which the last complete snapshot ended",
            Unit::Seconds,
            last_success.clone(),
        );
        Metrics {
            registry,
            duration,
            snapshots,
            upstream,
            remaining,
            waits,
            lookups,
            attached,
            last_success,
            lookups_seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes in what the engine said.
    pub fn observe(&self, event: &EngineEvent) {
        match event {
            EngineEvent::Finished { summary, snapshot } => {
                self.run_ended(summary);
                self.requests(&snapshot.stats);
                if result_word(summary) == "complete" {
                    let end =
                        summary.started_at + std::time::Duration::from_millis(summary.duration_ms);
                    self.last_success
                        .set(end.unix_timestamp_nanos() as f64 / 1e9);
                }
            }
            EngineEvent::Failed { summary, .. } => self.run_ended(summary),
            EngineEvent::Progress(p) | EngineEvent::Started(p) => {
                for b in &p.budgets {
                    self.remaining
                        .get_or_create(&budget_labels(b))
                        .set(i64::try_from(b.remaining).unwrap_or(i64::MAX));
                }
            }
            _ => {}
        }
    }

    fn run_ended(&self, summary: &RunSummary) {
        self.duration.observe(summary.duration_ms as f64 / 1000.0);
        self.snapshots
            .get_or_create(&ResultLabel {
                result: result_word(summary),
            })
            .inc();
    }

    fn requests(&self, stats: &RunStats) {
        for (source, s) in &stats.per_source {
            let source = source.to_ascii_lowercase();
            let ok = s.answered.saturating_sub(s.not_modified);
            let failed = s.requests.saturating_sub(s.answered);
            for (status, n) in [("2xx", ok), ("304", s.not_modified), ("error", failed)] {
                self.upstream
                    .get_or_create(&SourceStatus {
                        source: source.clone(),
                        status,
                    })
                    .inc_by(n);
            }
            self.waits
                .get_or_create(&SourceLabel {
                    source: source.clone(),
                })
                .inc_by(s.rate_limited_waits);
        }
    }

    /// Takes in the cache's lifetime counters: each lookup counter moves by what it
    /// gained since the last report (a store swapped for an older one moves nothing).
    pub fn observe_cache(&self, report: &CacheReport) {
        let mut seen = self.lookups_seen.lock().unwrap_or_else(|p| p.into_inner());
        for ns in Namespace::ALL {
            let c = report.lifetime.get(&ns).copied().unwrap_or_default();
            for (result, now) in [
                ("hit_memory", c.hits_memory),
                ("hit_disk", c.hits_disk),
                ("revalidated", c.revalidated),
                ("miss", c.misses),
                ("stale", c.stale_served),
            ] {
                let before = seen.insert((ns, result), now).unwrap_or(0);
                let counter = self.lookups.get_or_create(&LookupLabel {
                    namespace: ns.as_str(),
                    result,
                });
                counter.inc_by(now.saturating_sub(before));
            }
        }
    }

    pub fn set_attached_clients(&self, n: usize) {
        self.attached.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition format, `# EOF` included (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests;
