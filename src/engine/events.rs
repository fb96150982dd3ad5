//! What the engine tells its observers (the TUI, the headless CLI) while it works.
//!
//! Owned data only: the receiver never reaches back into engine state. Progress is sent
//! as a whole [`Progress`] value, coalesced by the engine (at most every
//! [`PROGRESS_INTERVAL_MS`]), so a slow receiver only ever sees the latest picture.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::model::{RunSummary, Snapshot, Trigger};

/// Minimum spacing of [`EngineEvent::Progress`] while a run is busy (≈20 frames/s).
pub const PROGRESS_INTERVAL_MS: u64 = 50;

/// The stages of a snapshot, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    /// Source repositories: commit graph, tags, pull requests (unit: repos).
    Repos,
    /// Kustomization history per component and environment (unit: files).
    Deployments,
    /// TeamCity builds (unit: build types).
    Builds,
    /// Datadog health queries (unit: environments).
    Health,
    /// Jira tickets (unit: batches of keys).
    Tickets,
    /// Local join: versions → commits → tickets (unit: cells).
    Correlation,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Repos,
        Stage::Deployments,
        Stage::Builds,
        Stage::Health,
        Stage::Tickets,
        Stage::Correlation,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Repos => "repos",
            Stage::Deployments => "deployment history",
            Stage::Builds => "builds",
            Stage::Health => "metrics",
            Stage::Tickets => "tickets",
            Stage::Correlation => "correlation",
        }
    }

    /// What `done/total` counts.
    pub fn unit(self) -> &'static str {
        match self {
            Stage::Repos => "repos",
            Stage::Deployments => "files",
            Stage::Builds => "build types",
            Stage::Health => "environments",
            Stage::Tickets => "batches",
            Stage::Correlation => "cells",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StageState {
    Pending,
    Running,
    Done,
    /// Finished with at least one failure.
    Failed,
    /// The source is not configured.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageProgress {
    pub stage: Stage,
    pub state: StageState,
    pub done: u32,
    pub total: u32,
}

/// A source's rate-limit budget as its server last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// "GitHub", "GitHub GraphQL", "Datadog", ...
    pub source: String,
    pub remaining: u64,
    pub limit: u64,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub resets_at: Option<OffsetDateTime>,
}

/// The whole picture of a running snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub run_id: u64,
    pub trigger: Trigger,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub stages: Vec<StageProgress>,
    /// Overall fraction done, 0.0–1.0 (weighted by learned stage durations when known).
    pub fraction: f64,
    /// Estimated time left; None while the ETA is still being learned (first run).
    pub eta: Option<Duration>,
    pub in_flight: u32,
    pub requests: u64,
    pub not_modified: u64,
    pub cache_hits: u64,
    pub budgets: Vec<Budget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One line of the run log (rate limited, retried, source down...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub level: Level,
    pub source: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// A run began.
    Started(Box<Progress>),
    /// The latest progress of the running snapshot (coalesced).
    Progress(Box<Progress>),
    /// The matrix so far, sent when a stage ends: what this run has fetched, the rest
    /// carried (marked stale) from the last snapshot. Not stored.
    Provisional(Box<Snapshot>),
    Log(LogLine),
    /// The run ended with a snapshot (complete, partial or cancelled); already stored.
    Finished {
        summary: RunSummary,
        snapshot: Box<Snapshot>,
    },
    /// The run ended without any snapshot (bad config, store error...).
    Failed {
        summary: RunSummary,
        error: String,
    },
    /// A trigger arrived while a run was in progress and was coalesced into it.
    AlreadyRunning,
    /// The schedule changed: the next automatic run, pause, policy on/off. Sent at
    /// start, when a run starts or ends, and after an edit (None: no scheduler, manual
    /// only).
    Schedule(Option<Box<super::scheduler::ScheduleStatus>>),
}
