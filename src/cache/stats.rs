//! The cache's counters, varnishstat-style: per namespace, lifetime and per run, with a
//! hit rate that names its window and says "no lookups" rather than 0% when idle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Runs whose per-run counters are kept (the tab's sparkline and the 1 / 10-run rates).
pub const KEEP_RUN_STATS: usize = 100;

/// Which source an entry belongs to (`snaptop cache clear NAMESPACE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    GitHub,
    TeamCity,
    Datadog,
    Jira,
    /// OCI registries: manifests and image configs by digest (content-addressed, so
    /// immutable; Docker Hub charges every manifest GET against its pull limit).
    Registry,
}

impl Namespace {
    pub const ALL: [Namespace; 5] = [
        Namespace::GitHub,
        Namespace::TeamCity,
        Namespace::Datadog,
        Namespace::Jira,
        Namespace::Registry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::GitHub => "github",
            Namespace::TeamCity => "teamcity",
            Namespace::Datadog => "datadog",
            Namespace::Jira => "jira",
            Namespace::Registry => "registry",
        }
    }

    pub fn parse(name: &str) -> Option<Namespace> {
        Namespace::ALL
            .into_iter()
            .find(|n| n.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether a 304 costs nothing of the source's rate-limit budget. GitHub documents it
    /// ("making a conditional request ... does not count against your primary rate
    /// limit" with a 304); the other sources count every request.
    pub fn free_304(self) -> bool {
        self == Namespace::GitHub
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Event counters of one namespace. Every cacheable lookup ends as exactly one of
/// `hits_memory`, `hits_disk`, `revalidated`, `misses` or `stale_served`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Requests sent to the source, retries included (varnish `backend_req`): what the
    /// source saw from this box.
    pub requests: u64,
    /// Fresh answers from the memory tier (no request).
    pub hits_memory: u64,
    /// Fresh answers read from the store (no request).
    pub hits_disk: u64,
    /// Conditional requests answered 304: the body came from the cache.
    pub revalidated: u64,
    /// Lookups that needed a full answer from the source (nothing usable cached).
    pub misses: u64,
    /// Expired answers served because the source failed (stale-if-error).
    pub stale_served: u64,
    /// Callers that waited for an identical request already in flight (varnish
    /// `busy_sleep`): no request of their own.
    pub coalesced: u64,
    /// Requests that skip the cache by design (live metrics, searches, budget probes).
    pub bypassed: u64,
    /// Answers the source marked `no-store` (or otherwise not storable), or that echo a
    /// credential: never stored.
    pub not_stored: u64,
    /// Entries dropped from the store to stay within its byte budget (`n_lru_nuked`).
    pub evicted: u64,
    /// Entries dropped from the memory tier for space (still in the store).
    pub evicted_memory: u64,
    /// Entries purged because nothing can use them any more (`n_expired`).
    pub expired: u64,
    /// Requests that did not count against the source's rate-limit budget thanks to a
    /// hit, a coalesced wait or (where the API does not charge it) a 304.
    pub budget_saved: u64,
}

impl Counts {
    /// Lookups that found a usable answer without transferring a body.
    pub fn hits(&self) -> u64 {
        self.hits_memory + self.hits_disk + self.revalidated
    }

    pub fn lookups(&self) -> u64 {
        self.hits() + self.misses + self.stale_served
    }

    /// hits / (hits + misses); None when there was no lookup ("no lookups", never 0%).
    pub fn hit_rate(&self) -> Option<f64> {
        let n = self.hits() + self.misses;
        (n > 0).then(|| self.hits() as f64 / n as f64)
    }

    pub fn add(&mut self, o: &Counts) {
        self.zip(o, |a, b| a + b);
    }

    /// `self - earlier`, field by field (never below zero).
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut out = *self;
        out.zip(earlier, |a, b| a.saturating_sub(b));
        out
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    fn zip(&mut self, o: &Counts, f: impl Fn(u64, u64) -> u64) {
        self.requests = f(self.requests, o.requests);
        self.hits_memory = f(self.hits_memory, o.hits_memory);
        self.hits_disk = f(self.hits_disk, o.hits_disk);
        self.revalidated = f(self.revalidated, o.revalidated);
        self.misses = f(self.misses, o.misses);
        self.stale_served = f(self.stale_served, o.stale_served);
        self.coalesced = f(self.coalesced, o.coalesced);
        self.bypassed = f(self.bypassed, o.bypassed);
        self.not_stored = f(self.not_stored, o.not_stored);
        self.evicted = f(self.evicted, o.evicted);
        self.evicted_memory = f(self.evicted_memory, o.evicted_memory);
        self.expired = f(self.expired, o.expired);
        self.budget_saved = f(self.budget_saved, o.budget_saved);
    }

    /// (name, value) of every counter, in display order.
    pub fn fields(&self) -> [(&'static str, u64); 13] {
        [
            ("requests sent", self.requests),
            ("hits (memory)", self.hits_memory),
            ("hits (store)", self.hits_disk),
            ("revalidated 304", self.revalidated),
            ("misses", self.misses),
            ("stale served", self.stale_served),
            ("coalesced", self.coalesced),
            ("bypassed", self.bypassed),
            ("not stored", self.not_stored),
            ("evicted (space)", self.evicted),
            ("evicted (memory)", self.evicted_memory),
            ("expired", self.expired),
            ("budget saved", self.budget_saved),
        ]
    }
}

/// What one namespace holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gauge {
    pub entries: u64,
    pub bytes: u64,
}

/// The counters one run added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCounts {
    pub run_id: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub per_namespace: BTreeMap<Namespace, Counts>,
}

impl RunCounts {
    pub fn total(&self) -> Counts {
        sum(self.per_namespace.values())
    }
}

/// What is persisted in the store: lifetime counters and the recent runs' counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistedStats {
    pub lifetime: BTreeMap<Namespace, Counts>,
    /// Oldest first, at most [`KEEP_RUN_STATS`].
    pub runs: Vec<RunCounts>,
}

/// A hit rate over a named window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRate {
    pub label: String,
    /// None: no lookups in the window.
    pub rate: Option<f64>,
}

impl WindowRate {
    pub fn text(&self) -> String {
        match self.rate {
            Some(r) => format!("{:.1}%", r * 100.0),
            None => "no lookups".into(),
        }
    }
}

/// Everything the Cache tab and `snaptop cache stats` show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheReport {
    pub lifetime: BTreeMap<Namespace, Counts>,
    pub runs: Vec<RunCounts>,
    /// The store tier now, per namespace.
    pub disk: BTreeMap<Namespace, Gauge>,
    /// The memory tier now (all namespaces).
    pub memory: Gauge,
    /// 0: the memory tier is off (`memory_mib = 0`).
    pub memory_budget_bytes: u64,
    pub disk_budget_bytes: u64,
    /// The store's files on disk, and what its live data takes.
    pub store_file_bytes: u64,
    pub store_live_bytes: u64,
}

impl CacheReport {
    pub fn lifetime_total(&self) -> Counts {
        sum(self.lifetime.values())
    }

    pub fn disk_total(&self) -> Gauge {
        self.disk.values().fold(Gauge::default(), |a, g| Gauge {
            entries: a.entries + g.entries,
            bytes: a.bytes + g.bytes,
        })
    }

    /// The lifetime counters of `ns` (None: every namespace).
    pub fn lifetime_of(&self, ns: Option<Namespace>) -> Counts {
        match ns {
            Some(ns) => self.lifetime.get(&ns).copied().unwrap_or_default(),
            None => self.lifetime_total(),
        }
    }

    /// What the store tier holds of `ns` (None: every namespace).
    pub fn disk_of(&self, ns: Option<Namespace>) -> Gauge {
        match ns {
            Some(ns) => self.disk.get(&ns).copied().unwrap_or_default(),
            None => self.disk_total(),
        }
    }

    /// How many of the recorded runs a window of the last `n` runs spans.
    pub fn runs_in_window(&self, n: usize) -> usize {
        self.runs.len().min(n)
    }

    /// The counters of `ns` (None: every namespace) over the last `n` runs.
    pub fn last_runs(&self, ns: Option<Namespace>, n: usize) -> Counts {
        let start = self.runs.len().saturating_sub(n);
        sum(self.runs[start..]
            .iter()
            .map(|r| match ns {
                Some(ns) => r.per_namespace.get(&ns).copied().unwrap_or_default(),
                None => r.total(),
            })
            .collect::<Vec<_>>()
            .iter())
    }

    /// Lifetime, last run and last 10 runs, each labelled with its window.
    pub fn hit_rates(&self, ns: Option<Namespace>) -> Vec<WindowRate> {
        let lifetime = self.lifetime_of(ns);
        let n = self.runs.len();
        let mut out = vec![];
        if let Some(last) = self.runs.last() {
            out.push(WindowRate {
                label: format!("last run (#{})", last.run_id),
                rate: self.last_runs(ns, 1).hit_rate(),
            });
        } else {
            out.push(WindowRate {
                label: "last run".into(),
                rate: None,
            });
        }
        // Before any run, the window a user will see filling up.
        let window = if n == 0 { 10 } else { n.min(10) };
        out.push(WindowRate {
            label: match window {
                1 => "last 1 run".to_string(),
                w => format!("last {w} runs"),
            },
            rate: self.last_runs(ns, 10).hit_rate(),
        });
        out.push(WindowRate {
            label: "lifetime".into(),
            rate: lifetime.hit_rate(),
        });
        out
    }

    /// Per-run hit rate of recent runs, oldest first (None: a run with no lookups).
    pub fn hit_rate_series(&self, ns: Option<Namespace>) -> Vec<Option<f64>> {
        self.runs
            .iter()
            .map(|r| match ns {
                Some(ns) => r.per_namespace.get(&ns).copied().unwrap_or_default(),
                None => r.total(),
            })
            .map(|c| c.hit_rate())
            .collect()
    }
}

pub fn sum<'a>(counts: impl Iterator<Item = &'a Counts>) -> Counts {
    let mut out = Counts::default();
    for c in counts {
        out.add(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_window_has_no_rate_not_zero() {
        let report = CacheReport::default();
        let rates = report.hit_rates(None);
        assert!(rates.iter().all(|r| r.rate.is_none()));
        assert!(rates.iter().all(|r| r.text() == "no lookups"));
        assert_eq!(rates[0].label, "last run");
    }

    #[test]
    fn rates_name_their_window_and_count_304s_as_hits() {
        let run = |id, hits, misses| RunCounts {
            run_id: id,
            at: OffsetDateTime::UNIX_EPOCH,
            per_namespace: [(
                Namespace::GitHub,
                Counts {
                    revalidated: hits,
                    misses,
                    ..Counts::default()
                },
            )]
            .into(),
        };
        let report = CacheReport {
            runs: vec![run(1, 0, 10), run(2, 9, 1)],
            lifetime: [(
                Namespace::GitHub,
                Counts {
                    revalidated: 9,
                    misses: 11,
                    ..Counts::default()
                },
            )]
            .into(),
            ..CacheReport::default()
        };
        let rates = report.hit_rates(Some(Namespace::GitHub));
        assert_eq!(rates[0].label, "last run (#2)");
        assert_eq!(rates[0].text(), "90.0%");
        assert_eq!(rates[1].label, "last 2 runs");
        assert_eq!(rates[1].text(), "45.0%");
        assert_eq!(rates[2].text(), "45.0%");
        // A namespace without lookups says so rather than 0%.
        assert_eq!(
            report.hit_rates(Some(Namespace::Jira))[0].text(),
            "no lookups"
        );
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Counts {
            misses: 3,
            ..Counts::default()
        };
        let b = Counts {
            misses: 5,
            hits_disk: 1,
            ..Counts::default()
        };
        assert_eq!(a.since(&b), Counts::default());
        assert_eq!(b.since(&a).misses, 2);
        assert_eq!(Namespace::parse(" GitHub"), Some(Namespace::GitHub));
        assert_eq!(Namespace::parse("gh"), None);
    }
}
