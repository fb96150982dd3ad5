//! What a snapshot is: plain owned data, shared by the engine, the store, the CLI and the UI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The joined state of every environment × component at the end of one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// The run that produced it (see [`RunSummary::id`]).
    pub run_id: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Some source or request failed (or the run was cancelled); what failed is in `failures`.
    pub partial: bool,
    pub cancelled: bool,
    pub failures: Vec<Failure>,
    /// Configured order, for display.
    pub environments: Vec<String>,
    pub components: Vec<String>,
    /// environment → component → cell.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
    /// Datadog query names, in config order.
    pub health_queries: Vec<String>,
    pub stats: RunStats,
}

impl Snapshot {
    pub fn cell(&self, env: &str, component: &str) -> Option<&Cell> {
        self.cells.get(env)?.get(component)
    }

    /// When the newest data shown was fetched: the run's end when it brought anything,
    /// else the newest carried part (a run that fetched nothing is not "just now").
    pub fn data_as_of(&self) -> OffsetDateTime {
        let cells = || self.cells.values().flat_map(|r| r.values());
        let fetched = |c: &Cell| {
            (c.tag.is_some() && !c.is_stale(Part::Deployment))
                || (c.build.is_some() && !c.is_stale(Part::Build))
                || (c.tickets.is_some() && !c.is_stale(Part::Tickets))
        };
        let fresh = cells().any(fetched);
        if fresh || cells().all(|c| c.stale.is_empty()) {
            return self.finished_at;
        }
        cells()
            .flat_map(|c| c.stale.values().map(|a| a.0))
            .max()
            .unwrap_or(self.finished_at)
    }

    /// The oldest carried part, when any part is stale.
    pub fn oldest_stale(&self) -> Option<OffsetDateTime> {
        self.cells
            .values()
            .flat_map(|r| r.values())
            .flat_map(|c| c.stale.values().map(|a| a.0))
            .min()
    }
}

/// One environment × component.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// Deployed version: the image's `digest` if set, else its `newTag`.
    pub tag: Option<String>,
    /// When the deployed version was set (the date of the GitOps commit that set it).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub deployed_at: Option<OffsetDateTime>,
    /// The GitOps commit that set the deployed version.
    pub deploy_commit: Option<String>,
    /// How a digest pin was tied to a source version (None for a plain tag).
    #[serde(default)]
    pub resolved: Option<Resolved>,
    /// The source commit the deployed version resolves to, when it could be resolved.
    pub source_commit: Option<String>,
    /// Why nothing is known of what this version contains ("digest not resolved",
    /// "not deployed", "tag v9 is not a tag of acme/api"): the tickets are unknown.
    #[serde(default)]
    pub unresolved: Option<String>,
    pub build: Option<Build>,
    /// Query name → latest value (None: no data).
    pub health: BTreeMap<String, Option<f64>>,
    /// Tickets shipped with the deployed version; None: unknown (see `unresolved`),
    /// never an empty list that would read as "nothing shipped".
    #[serde(default)]
    pub tickets: Option<Vec<Ticket>>,
    /// Deployment events in the window, oldest first.
    pub events: Vec<DeployEvent>,
    /// Parts this run could not fetch, carried from an earlier run with when they were
    /// fetched: the last good answer stays, marked, until a run brings a newer one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stale: BTreeMap<Part, AsOf>,
}

impl Cell {
    /// When the value of `part` shown was fetched: its carried time, else the run's.
    pub fn as_of(&self, part: Part, run_finished_at: OffsetDateTime) -> OffsetDateTime {
        self.stale.get(&part).map_or(run_finished_at, |a| a.0)
    }

    pub fn is_stale(&self, part: Part) -> bool {
        self.stale.contains_key(&part)
    }
}

/// The parts of a cell that come from different sources and can go stale apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Tag, deployed at, events (GitHub: the kustomization history).
    Deployment,
    /// TeamCity.
    Build,
    /// Datadog.
    Health,
    /// The shipped tickets (GitHub pull requests, Jira).
    Tickets,
}

impl Part {
    pub fn label(self) -> &'static str {
        match self {
            Part::Deployment => "deployment",
            Part::Build => "build",
            Part::Health => "health",
            Part::Tickets => "tickets",
        }
    }
}

/// A time, as RFC 3339 in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AsOf(#[serde(with = "time::serde::rfc3339")] pub OffsetDateTime);

/// The source version a digest-pinned deployment was tied to, and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resolved {
    /// The tag (or revision) the digest stands for.
    pub tag: String,
    /// `newTag` (written beside the digest), `replaced tag` (the digest replaced this tag
    /// in the same GitOps commit) or `registry` (the image's
    /// `org.opencontainers.image.revision` label).
    pub via: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Build {
    pub number: Option<String>,
    /// TeamCity `status`: SUCCESS, FAILURE, UNKNOWN.
    pub status: Option<String>,
    /// TeamCity `state`: queued, running, finished.
    pub state: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub finished_at: Option<OffsetDateTime>,
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket {
    pub key: String,
    pub status: Option<String>,
    pub summary: Option<String>,
    /// true: Jira returned it; false: Jira answered without it (no such issue, or the
    /// token may not see it: Jira does not say which); None: Jira was not asked or failed.
    #[serde(default)]
    pub in_jira: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeployEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The GitOps commit that made the change.
    pub commit: String,
}

/// Something that failed during a run; the run goes on and is marked partial.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    pub source: String,
    pub endpoint: String,
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(
                f,
                "{} {} → {}: {}",
                self.source, self.endpoint, s, self.message
            ),
            None => write!(f, "{} {}: {}", self.source, self.endpoint, self.message),
        }
    }
}

/// Request accounting for one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStats {
    /// Requests sent over the network (304s included).
    pub requests: u64,
    /// Conditional requests answered 304 Not Modified.
    pub not_modified: u64,
    /// Answers served from the store without a request (immutable objects, coalesced calls).
    pub cache_hits: u64,
    pub retries: u64,
    /// Times a request waited for a rate-limit budget to reset.
    pub rate_limited_waits: u64,
    pub duration_ms: u64,
    /// Source name → its share of the above.
    pub per_source: BTreeMap<String, SourceStats>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceStats {
    pub requests: u64,
    pub not_modified: u64,
    pub cache_hits: u64,
    pub retries: u64,
    pub rate_limited_waits: u64,
    pub errors: u64,
    /// Requests answered with something usable (2xx, or 304 from the cache).
    #[serde(default)]
    pub answered: u64,
}

/// What one run did, kept beside its summary for the run history's detail view: the
/// requests per source, what failed, and its log (bounded).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunDetail {
    pub per_source: BTreeMap<String, SourceStats>,
    pub failures: Vec<Failure>,
    pub log: Vec<super::events::LogLine>,
}

impl RunDetail {
    /// The detail of a run that ended with `snapshot` (none: it failed) and `log`.
    pub fn of(snapshot: Option<&Snapshot>, log: Vec<super::events::LogLine>) -> RunDetail {
        match snapshot {
            Some(s) => RunDetail {
                per_source: s.stats.per_source.clone(),
                failures: s.failures.clone(),
                log,
            },
            None => RunDetail {
                log,
                ..RunDetail::default()
            },
        }
    }
}

/// Log lines kept with a run in the store.
pub const RUN_LOG_LINES: usize = 400;

/// One line of the run history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub id: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    pub trigger: Trigger,
    pub requests: u64,
    pub not_modified: u64,
    pub cache_hits: u64,
    pub errors: u64,
    pub partial: bool,
    pub cancelled: bool,
    /// Set when the run produced no snapshot at all.
    pub error: Option<String>,
    /// Cells whose deployment moved since the previous snapshot (None: not known,
    /// e.g. the first run, or a partial run that saw no move). Adaptive schedules
    /// run more often while this is above 0.
    #[serde(default)]
    pub new_deployments: Option<u32>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Scheduled,
    Cli,
}
