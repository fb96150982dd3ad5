//! Fixed sample data for the render tests, the render benchmark and the docs: one
//! snapshot, a run history and a running snapshot's progress, all relative to
//! [`NOW`], so that every rendered frame is the same on every machine.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::engine::events::{Budget, Level, LogLine, Progress, Stage, StageProgress, StageState};
use crate::engine::model::{
    Build, Cell, DeployEvent, Failure, RunStats, RunSummary, Snapshot, SourceStats, Ticket, Trigger,
};

/// The instant every sample frame is drawn at.
pub const NOW: OffsetDateTime = datetime!(2026-11-23 14:12:30 UTC);

const ENVS: [&str; 3] = ["dev", "staging", "prod"];
const COMPONENTS: [&str; 5] = [
    "payments",
    "checkout",
    "ledger",
    "notifications",
    "search-indexer",
];

/// A commit-like hex id derived from a number.
fn sha(n: u64) -> String {
    let a = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let b = (n + 7).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    format!("{a:016x}{b:016x}{:08x}", (a ^ b) as u32)
}

fn ago(secs: i64) -> OffsetDateTime {
    NOW - time::Duration::seconds(secs)
}

/// A complete snapshot that ended 7 minutes before [`NOW`]. One ticket summary carries
/// an escape sequence, as a hostile PR title would.
pub fn snapshot() -> Snapshot {
    let mut cells = BTreeMap::new();
    for (e, env) in ENVS.iter().enumerate() {
        let mut row = BTreeMap::new();
        for (c, comp) in COMPONENTS.iter().enumerate() {
            let seed = (e * 7 + c * 3) as i64;
            let minor = 14 - e as u32 + (c as u32 % 2);
            let tickets = (0..(c + e) % 4)
                .map(|i| Ticket {
                    key: format!("PAY-{}", 100 + c * 10 + i),
                    status: Some(if i % 2 == 0 { "Done" } else { "In Review" }.into()),
                    summary: Some(if c == 1 && i == 0 {
                        "Fix refund rounding \u{1b}[31mURGENT\u{1b}[0m\u{7}".into()
                    } else {
                        format!("Improve {comp} handling of case {i}")
                    }),
                    in_jira: Some(true),
                })
                .collect();
            let build_ok = !(c == 3 && e == 0);
            let cell = Cell {
                stale: BTreeMap::new(),
                resolved: None,
                unresolved: None,
                tag: Some(if c == 2 {
                    format!("sha-{:07x}", 0x22c373a + seed)
                } else {
                    format!("v1.{minor}.{}", seed % 5)
                }),
                deployed_at: Some(ago(3_600 * (5 + seed * 11))),
                deploy_commit: Some(sha(1_000 + seed as u64)),
                source_commit: (c != 4).then(|| sha(2_000 + seed as u64)),
                build: (c != 4).then(|| Build {
                    number: Some(format!("{}", 1200 + seed)),
                    status: Some(if build_ok { "SUCCESS" } else { "FAILURE" }.into()),
                    state: Some("finished".into()),
                    finished_at: Some(ago(3_600 * (6 + seed * 11))),
                    web_url: None,
                }),
                health: BTreeMap::from([
                    (
                        "error_rate".into(),
                        (c != 3).then_some(0.004 * (seed + 1) as f64),
                    ),
                    ("p95_ms".into(), Some(120.0 + 17.0 * seed as f64)),
                ]),
                tickets: Some(tickets),
                events: (0..3)
                    .map(|i| DeployEvent {
                        at: ago(3_600 * (5 + seed * 11) + 86_400 * 4 * i),
                        from: Some(format!("v1.{}.0", minor - 1 - i as u32)),
                        to: Some(format!("v1.{}.0", minor - i as u32)),
                        commit: sha(3_000 + (seed + i) as u64),
                    })
                    .rev()
                    .collect(),
            };
            row.insert(comp.to_string(), cell);
        }
        cells.insert(env.to_string(), row);
    }
    Snapshot {
        run_id: 42,
        started_at: ago(7 * 60 + 4),
        finished_at: ago(7 * 60),
        partial: false,
        cancelled: false,
        failures: vec![],
        environments: ENVS.map(String::from).to_vec(),
        components: COMPONENTS.map(String::from).to_vec(),
        cells,
        health_queries: vec!["error_rate".into(), "p95_ms".into()],
        stats: stats(),
    }
}

fn stats() -> RunStats {
    let per = |requests, not_modified, cache_hits, errors| SourceStats {
        requests,
        not_modified,
        cache_hits,
        retries: errors,
        rate_limited_waits: 0,
        errors,
        answered: requests,
    };
    RunStats {
        requests: 348,
        not_modified: 211,
        cache_hits: 96,
        retries: 2,
        rate_limited_waits: 1,
        duration_ms: 4_200,
        per_source: BTreeMap::from([
            ("GitHub".into(), per(301, 205, 96, 1)),
            ("TeamCity".into(), per(5, 0, 0, 0)),
            ("Datadog".into(), per(3, 0, 0, 1)),
            ("Jira".into(), per(39, 6, 0, 0)),
        ]),
    }
}

/// Six runs, newest first: complete, partial, failed, cancelled.
pub fn history() -> Vec<RunSummary> {
    let run = |id: u64, mins_ago: i64, ms: u64, requests: u64, nm: u64, errors: u64| RunSummary {
        id,
        started_at: ago(mins_ago * 60),
        duration_ms: ms,
        trigger: Trigger::Manual,
        requests,
        not_modified: nm,
        cache_hits: nm / 2,
        errors,
        partial: errors > 0,
        cancelled: false,
        error: None,
    };
    let mut failed = run(39, 300, 120, 1, 0, 1);
    failed.error = Some("github: 401 Unauthorized: Bad credentials".into());
    let mut cancelled = run(38, 420, 2_300, 120, 40, 0);
    cancelled.cancelled = true;
    cancelled.partial = true;
    let mut cli = run(37, 1_500, 61_000, 2_400, 0, 0);
    cli.trigger = Trigger::Cli;
    let mut latest = run(42, 7, 4_000, 348, 211, 0);
    // Ends exactly when the sample snapshot does.
    latest.started_at = ago(7 * 60 + 4);
    vec![
        latest,
        run(41, 65, 3_900, 340, 198, 3),
        run(40, 130, 5_100, 410, 120, 0),
        failed,
        cancelled,
        cli,
    ]
}

/// A run 12 s in: two stages done, two running, one pending, one not configured.
pub fn progress() -> Progress {
    let sp = |stage, state, done, total| StageProgress {
        stage,
        state,
        done,
        total,
    };
    Progress {
        run_id: 43,
        trigger: Trigger::Manual,
        started_at: NOW - time::Duration::seconds(12),
        stages: vec![
            sp(Stage::Repos, StageState::Done, 5, 5),
            sp(Stage::Deployments, StageState::Running, 7, 15),
            sp(Stage::Builds, StageState::Done, 5, 5),
            sp(Stage::Health, StageState::Running, 1, 3),
            sp(Stage::Tickets, StageState::Pending, 0, 0),
            sp(Stage::Correlation, StageState::Skipped, 0, 0),
        ],
        fraction: 0.42,
        eta: Some(Duration::from_secs(35)),
        in_flight: 12,
        requests: 340,
        not_modified: 120,
        cache_hits: 80,
        budgets: vec![
            Budget {
                source: "GitHub".into(),
                remaining: 4_321,
                limit: 5_000,
                resets_at: Some(NOW + time::Duration::minutes(23)),
            },
            Budget {
                source: "GitHub GraphQL".into(),
                remaining: 310,
                limit: 5_000,
                resets_at: Some(NOW + time::Duration::minutes(41)),
            },
            Budget {
                source: "Datadog".into(),
                remaining: 97,
                limit: 100,
                resets_at: None,
            },
        ],
    }
}

/// Warnings of a busy run, one with a hostile escape sequence.
pub fn log() -> Vec<LogLine> {
    let line = |secs: i64, level, source: &str, message: &str| LogLine {
        at: NOW - time::Duration::seconds(secs),
        level,
        source: source.into(),
        message: message.into(),
    };
    vec![
        line(11, Level::Info, "GitHub", "15 kustomization files to read"),
        line(
            8,
            Level::Warn,
            "GitHub",
            "rate limited → waiting 42s (secondary limit)",
        ),
        line(6, Level::Warn, "Datadog", "502 Bad Gateway, retried (1/3)"),
        line(
            3,
            Level::Error,
            "Jira",
            "source failed: \u{1b}]0;owned\u{7}503 Service Unavailable",
        ),
    ]
}

/// A failure to show on a partial snapshot.
pub fn failure() -> Failure {
    Failure {
        source: "Jira".into(),
        endpoint: "/rest/api/3/search/jql".into(),
        status: Some(503),
        message: "Service Unavailable".into(),
    }
}
