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
    complete(&ENVS, &COMPONENTS, cells)
}

/// A complete snapshot of run 42 that ended 7 minutes before [`NOW`].
fn complete(
    envs: &[&str],
    components: &[&str],
    cells: BTreeMap<String, BTreeMap<String, Cell>>,
) -> Snapshot {
    Snapshot {
        run_id: 42,
        started_at: ago(7 * 60 + 4),
        finished_at: ago(7 * 60),
        partial: false,
        cancelled: false,
        failures: vec![],
        environments: envs.iter().map(|s| s.to_string()).collect(),
        components: components.iter().map(|s| s.to_string()).collect(),
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
        new_deployments: None,
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

/// The seed team's size: 15 components × 4 environments, as real estates look —
/// semver tags with prod behind staging (drift), a digest pin tied to its tag, one that
/// nothing ties to a tag (tickets unknown), TeamCity and Jira links, ticket counts in the
/// tens, one component deployed nowhere yet in prod.
pub fn seed_snapshot() -> Snapshot {
    const SEED_ENVS: [&str; 4] = ["dev", "qa", "staging", "prod"];
    const SEED_COMPONENTS: [&str; 15] = [
        "payments",
        "checkout",
        "ledger",
        "notifications",
        "search",
        "catalog",
        "accounts",
        "gateway",
        "inventory",
        "pricing",
        "shipping",
        "reports",
        "auth",
        "media",
        "scheduler",
    ];
    let mut cells = BTreeMap::new();
    for (e, env) in SEED_ENVS.iter().enumerate() {
        let mut row = BTreeMap::new();
        for (c, comp) in SEED_COMPONENTS.iter().enumerate() {
            let seed = (e * 7 + c * 3) as i64;
            // Later environments lag: prod runs older minors for a third of components.
            let lag = if e == 3 && c % 3 == 0 {
                2
            } else if e >= 2 && c % 4 == 1 {
                1
            } else {
                0
            };
            let minor = 44 - lag as u32 - (c as u32 % 5);
            let version = format!("v1.{minor}.{}", (c + lag) % 3);
            let mut cell = Cell {
                tag: Some(version.clone()),
                deployed_at: Some(ago(3_600 * (3 + seed * 5))),
                deploy_commit: Some(sha(4_000 + seed as u64)),
                source_commit: Some(sha(5_000 + seed as u64)),
                build: Some(Build {
                    number: Some(format!("{}", 2100 + c * 10 + e)),
                    status: Some(
                        if (c + e) % 9 == 4 {
                            "FAILURE"
                        } else {
                            "SUCCESS"
                        }
                        .into(),
                    ),
                    state: Some("finished".into()),
                    finished_at: Some(ago(3_600 * (4 + seed * 5))),
                    web_url: Some(format!(
                        "https://teamcity.acme.test/buildConfiguration/Acme_{comp}/{}",
                        2100 + c * 10 + e
                    )),
                }),
                health: BTreeMap::from([
                    ("error_rate".into(), Some(0.001 * ((c * 7 + e) % 13) as f64)),
                    ("p95_ms".into(), Some(90.0 + 13.0 * seed as f64)),
                ]),
                tickets: Some(
                    (0..(c * 3 + e * 2) % 14)
                        .map(|i| Ticket {
                            key: format!("{}-{}", &comp[..3].to_uppercase(), 200 + i),
                            status: Some(["Done", "Released", "In Review"][i % 3].into()),
                            summary: Some(format!("Improve {comp} case {i}")),
                            in_jira: Some(i % 7 != 6),
                        })
                        .collect(),
                ),
                events: (0..4)
                    .map(|i| DeployEvent {
                        at: ago(3_600 * (3 + seed * 5) + 86_400 * 3 * i),
                        from: Some(format!("v1.{}.0", minor - 1 - i as u32)),
                        to: Some(if i == 0 {
                            version.clone()
                        } else {
                            format!("v1.{}.0", minor - i as u32)
                        }),
                        commit: sha(8_000 + (seed + i) as u64),
                    })
                    .rev()
                    .collect(),
                ..Cell::default()
            };
            match (*comp, e) {
                // Pinned by a bot: the digest stands for the tag it replaced.
                ("accounts", _) => {
                    cell.tag = Some(format!("sha256:{}", sha(6_000 + e as u64)));
                    cell.resolved = Some(crate::engine::model::Resolved {
                        tag: version.clone(),
                        via: "replaced tag".into(),
                    });
                }
                // A digest alone, an image without a revision label.
                ("gateway", 2 | 3) => {
                    cell.tag = Some(format!("sha256:0808065736{}", &sha(7_000 + e as u64)[10..]));
                    cell.source_commit = None;
                    cell.tickets = None;
                    cell.unresolved = Some(
                        "digest not resolved: the image has no org.opencontainers.image.revision label"
                            .into(),
                    );
                }
                ("scheduler", 3) => {
                    cell = Cell {
                        unresolved: Some("not deployed".into()),
                        ..Cell::default()
                    };
                }
                _ => {}
            }
            row.insert(comp.to_string(), cell);
        }
        cells.insert(env.to_string(), row);
    }
    complete(&SEED_ENVS, &SEED_COMPONENTS, cells)
}

/// The run after [`seed_snapshot`] when every source refused connections: nothing new,
/// every value the last good one, marked with when it was fetched.
pub fn seed_failed_run() -> (RunSummary, Snapshot) {
    use crate::engine::model::{AsOf, Part};
    let good = seed_snapshot();
    let mut s = good.clone();
    s.run_id = 43;
    s.started_at = NOW - time::Duration::seconds(40);
    s.finished_at = NOW - time::Duration::seconds(30);
    s.partial = true;
    s.failures = ["github", "teamcity", "datadog", "jira"]
        .iter()
        .map(|source| Failure {
            source: source.to_string(),
            endpoint: match *source {
                "github" => "GET /repos/acme/deploy/commits?path=overlays%2Fstaging%2Fpayments%2Fkustomization.yaml&since=2026-10-03T00%3A00%3A00Z&per_page=100".into(),
                "teamcity" => "GET /app/rest/builds?locator=buildType%3A%28id%3AAcme_Payments%29%2Ccount%3A5".into(),
                "datadog" => "GET /api/v1/query".into(),
                _ => "POST /rest/api/3/search/jql".into(),
            },
            status: None,
            message: "cannot connect: tcp connect error: Connection refused (os error 111)".into(),
        })
        .collect();
    for row in s.cells.values_mut() {
        for cell in row.values_mut() {
            for part in [Part::Deployment, Part::Build, Part::Health, Part::Tickets] {
                cell.stale.insert(part, AsOf(good.finished_at));
            }
        }
    }
    let summary = RunSummary {
        id: 43,
        started_at: s.started_at,
        duration_ms: 10_000,
        trigger: Trigger::Manual,
        requests: 31,
        not_modified: 0,
        cache_hits: 0,
        errors: 4,
        partial: true,
        cancelled: false,
        error: None,
        new_deployments: None,
    };
    (summary, s)
}

/// The cache after a month of runs: GitHub answered mostly by 304s, TeamCity from its
/// TTL, Datadog and Jira bypassed (live metrics, searches), the registry never asked;
/// run #39 saw no lookups at all (a gap in the sparkline, not a zero).
pub fn cache_report() -> crate::cache::CacheReport {
    use crate::cache::{CacheReport, Counts, Gauge, Namespace, RunCounts};
    let github = |n: u64| Counts {
        requests: 60 + n,
        hits_memory: 40 + n,
        hits_disk: 12,
        revalidated: 180 + 2 * n,
        misses: 9 + n % 4,
        coalesced: 3,
        bypassed: 7,
        budget_saved: 235 + 3 * n,
        ..Counts::default()
    };
    let teamcity = |n: u64| Counts {
        requests: 4 + n % 2,
        hits_memory: 2,
        misses: 4 + n % 2,
        budget_saved: 2,
        ..Counts::default()
    };
    let bypass = |n: u64| Counts {
        requests: n,
        bypassed: n,
        ..Counts::default()
    };
    let runs: Vec<RunCounts> = (20..=42u64)
        .map(|id| RunCounts {
            run_id: id,
            at: NOW - time::Duration::minutes(15 * (42 - id as i64)),
            per_namespace: if id == 39 {
                [(Namespace::Datadog, bypass(3))].into()
            } else if id == 25 {
                // GitHub down: every lookup missed, one stale answer served.
                [(
                    Namespace::GitHub,
                    Counts {
                        requests: 40,
                        misses: 20,
                        stale_served: 1,
                        ..Counts::default()
                    },
                )]
                .into()
            } else {
                [
                    (Namespace::GitHub, github(id % 7)),
                    (Namespace::TeamCity, teamcity(id)),
                    (Namespace::Datadog, bypass(3)),
                    (Namespace::Jira, bypass(4)),
                ]
                .into()
            },
        })
        .collect();
    let mut lifetime: BTreeMap<Namespace, Counts> = BTreeMap::new();
    for r in &runs {
        for (ns, c) in &r.per_namespace {
            lifetime.entry(*ns).or_default().add(c);
        }
    }
    // Counters from before the runs kept, and what purges and the budget did.
    let gh = lifetime.entry(Namespace::GitHub).or_default();
    gh.add(&Counts {
        requests: 1_180_402,
        misses: 4_012,
        revalidated: 1_120_877,
        hits_disk: 18_220,
        evicted: 41,
        evicted_memory: 1_318,
        expired: 77,
        not_stored: 2,
        budget_saved: 1_139_300,
        ..Counts::default()
    });
    let gauge = |entries, bytes| Gauge { entries, bytes };
    CacheReport {
        lifetime,
        runs,
        disk: [
            (Namespace::GitHub, gauge(5_204, 38_912_000)),
            (Namespace::TeamCity, gauge(18, 94_208)),
            (Namespace::Datadog, gauge(0, 0)),
            (Namespace::Jira, gauge(0, 0)),
            (Namespace::Registry, gauge(0, 0)),
        ]
        .into(),
        memory: gauge(1_402, 9_437_184),
        memory_budget_bytes: 64 << 20,
        disk_budget_bytes: 512 << 20,
        store_file_bytes: 61_865_984,
        store_live_bytes: 44_040_192,
    }
}
