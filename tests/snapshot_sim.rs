//! The snapshot engine against the simulator: the joined matrix equals the simulator's
//! ground truth; pagination, 304s, rate-limit waits, faults and a second instance behave.

mod common;

use std::time::Duration;

use snaptop::engine::model::Snapshot;
use snaptop::sim::org::Org;
use snaptop::sim::{Fault, Profile, RunningSim, SimOptions, Source};
use snaptop::sources::datadog::render_query;
use snaptop::store::Store;

fn assert_matches_ground_truth(org: &Org, snap: &Snapshot) {
    let window_start = (snap.started_at - time::Duration::days(org.window_days)).unix_timestamp();
    let mut tickets_seen = 0;
    let mut events_seen = 0;
    for env in &org.environments {
        for comp in &org.components {
            let at = format!("{env}/{}", comp.name);
            let want = org.expected(env, &comp.name, window_start).unwrap();
            let cell = snap
                .cell(env, &comp.name)
                .unwrap_or_else(|| panic!("{at}: no cell"));
            assert_eq!(cell.tag.as_deref(), Some(want.tag.as_str()), "{at}: tag");
            assert_eq!(
                cell.deployed_at.map(|t| t.unix_timestamp()),
                Some(want.deployed_at),
                "{at}: deployed_at"
            );
            let events: Vec<(i64, Option<String>, Option<String>)> = cell
                .events
                .iter()
                .map(|e| (e.at.unix_timestamp(), e.from.clone(), e.to.clone()))
                .collect();
            let want_events: Vec<(i64, Option<String>, Option<String>)> = want
                .events
                .iter()
                .map(|e| (e.at, e.from.clone(), Some(e.to.clone())))
                .collect();
            assert_eq!(events, want_events, "{at}: events");
            events_seen += events.len();
            let Some(want_keys) = &want.tickets else {
                // Nothing can tie this deployment to a source version.
                assert_eq!(
                    cell.tickets, None,
                    "{at}: tickets must be unknown, not empty"
                );
                let why = cell.unresolved.as_deref().unwrap_or_default();
                assert!(why.contains("digest not resolved"), "{at}: {why}");
                continue;
            };
            let got = cell
                .tickets
                .as_ref()
                .unwrap_or_else(|| panic!("{at}: tickets unknown ({:?})", cell.unresolved));
            let keys: Vec<&str> = got.iter().map(|t| t.key.as_str()).collect();
            assert_eq!(keys, *want_keys, "{at}: tickets");
            tickets_seen += keys.len();
            for t in got {
                match org.tickets.get(&t.key) {
                    Some(sim_ticket) => {
                        assert_eq!(
                            t.status.as_deref(),
                            Some(sim_ticket.status),
                            "{at}: {}",
                            t.key
                        );
                        assert_eq!(t.summary.as_deref(), Some(sim_ticket.summary.as_str()));
                        assert_eq!(t.in_jira, Some(true), "{at}: {}", t.key);
                    }
                    // Shipped work Jira does not return stays, marked.
                    None => {
                        assert_eq!(
                            (t.status.as_deref(), t.in_jira),
                            (None, Some(false)),
                            "{at}: {}",
                            t.key
                        );
                    }
                }
            }
            if let Some(tag) = &want.resolved_tag {
                let resolved = cell
                    .resolved
                    .as_ref()
                    .unwrap_or_else(|| panic!("{at}: digest not resolved"));
                assert_eq!(&resolved.tag, tag, "{at}: the tag the digest stands for");
            }
            let build = cell.build.as_ref().expect("a build");
            let want_build = want.build.as_ref().unwrap();
            assert_eq!(build.number, Some(want_build.number.to_string()), "{at}");
            assert_eq!(build.status.as_deref(), Some(want_build.status), "{at}");
            assert_eq!(
                build.finished_at.map(|t| t.unix_timestamp()),
                want_build.finish,
                "{at}"
            );
            for (name, template) in [
                (
                    "error_rate",
                    "sum:trace.http.request.errors{service:{service},env:{env}}.as_rate()",
                ),
                (
                    "p95_ms",
                    "p95:trace.http.request.duration{service:{service},env:{env}}",
                ),
            ] {
                let q = render_query(template, &comp.service, env);
                assert_eq!(
                    cell.health.get(name).copied().flatten(),
                    org.metric_value(&q),
                    "{at}: {name}"
                );
            }
        }
    }
    assert!(tickets_seen > 0, "some tickets shipped somewhere");
    assert!(events_seen > 0, "some deployments in the window");
}

#[tokio::test]
async fn small_profile_matrix_equals_ground_truth() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    assert_matches_ground_truth(&sim.org(), &snap);
    // The result is committed: it reads back from the store.
    assert_eq!(store.latest_snapshot().unwrap().as_ref(), Some(&snap));
    assert_eq!(sim.counts(Source::GitHub).secondary_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_profile_pages_through_history_and_matches() {
    let sim = common::sim(SimOptions {
        profile: Profile::Seed,
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    assert_matches_ground_truth(&sim.org(), &snap);
    let calls = sim.github_endpoint_counts();
    let files = sim.org().gitops.files.len() as u64;
    // ~112 commits per file in the window: more than one page of 100 each.
    assert!(calls["commits"] > files, "{calls:?}");
    // File contents come through GraphQL aliases, not one call per commit.
    assert!(
        calls.get("contents").copied().unwrap_or(0) == 0,
        "{calls:?}"
    );
    // Reads of all files share requests. Batching each file's reads on its own (its
    // versions and its base, 100 per request) would take `per_file` requests; sharing
    // takes fewer. How many fewer depends on how the listings' answers spread in time
    // (a loaded machine spreads them), so only "never more, and some sharing" is
    // checked here; the benchmark reports the number.
    let org = sim.org();
    let per_file: u64 = org
        .gitops
        .commits_by_file
        .iter()
        .map(|c| (c.len() as u64 + 1).div_ceil(100))
        .sum();
    assert!(
        calls["graphql"] < per_file,
        "{} GraphQL requests; {per_file} with one batch per file",
        calls["graphql"]
    );
    let gh = sim.counts(Source::GitHub);
    assert_eq!((gh.secondary_limited, gh.primary_limited), (0, 0));
}

#[tokio::test]
async fn warm_run_is_answered_by_304s_and_changes_nothing() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let cold = common::snapshot(&sim, &store).await;
    sim.reset_counts();
    let warm = common::snapshot(&sim, &store).await;
    assert!(!warm.partial, "{:?}", warm.failures);
    assert_eq!(warm.cells, cold.cells);
    let gh = sim.counts(Source::GitHub);
    let calls = sim.github_endpoint_counts();
    let free = calls.get("rate_limit").copied().unwrap_or(0);
    assert!(
        gh.not_modified * 10 >= (gh.requests - free) * 9,
        "{gh:?} {calls:?}"
    );
    assert_eq!(calls.get("graphql"), None, "file contents are immutable");
    assert!(warm.stats.not_modified > 0, "{:?}", warm.stats);
    // The gitops branch did not move: one request for its head, none per file.
    let repos = sim.org().repos.len() as u64;
    assert_eq!(calls.get("commits").copied(), Some(repos + 1), "{calls:?}");
}

#[tokio::test]
async fn a_moved_gitops_head_lists_every_file_again() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let cold = common::snapshot(&sim, &store).await;
    // As if a commit had landed on the gitops branch since (the key is the runner's).
    store
        .put_state("gitops-head\0acme/deploy\0HEAD", &"0".repeat(40))
        .unwrap();
    sim.reset_counts();
    let warm = common::snapshot(&sim, &store).await;
    assert_eq!(warm.cells, cold.cells);
    let org = sim.org();
    let files = (org.environments.len() * org.components.len()) as u64;
    let calls = sim.github_endpoint_counts();
    assert!(
        calls.get("commits").copied().unwrap_or(0) >= files,
        "every file's history is asked for again: {calls:?}"
    );
    assert_eq!(calls.get("graphql"), None, "file contents are immutable");
    assert_matches_ground_truth(&org, &warm);
}

#[tokio::test]
async fn tickets_remembered_from_an_earlier_run_are_joined_with_new_ones() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    // The last run asked for some keys that still matter, one no pull request names any
    // more, and one Jira never knew: only the tickets of this window may come out.
    let org = sim.org();
    let first_env = &org.environments[0];
    let window_start =
        (time::OffsetDateTime::now_utc() - time::Duration::days(org.window_days)).unix_timestamp();
    let some: Vec<String> = org
        .components
        .iter()
        .flat_map(|c| {
            org.expected(first_env, &c.name, window_start)
                .expect("a cell")
                .tickets
                .unwrap_or_default()
        })
        .take(3)
        .collect();
    assert!(!some.is_empty(), "the org ships tickets");
    let mut remembered = some.clone();
    remembered.extend(["PAY-999999".to_string(), "ZZZ-1".to_string()]);
    store.put_state("jira-keys", &remembered).unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    assert_matches_ground_truth(&org, &snap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_budget_waits_for_the_reset_without_overdrawing() {
    let sim = common::sim(SimOptions {
        github_rest_budget: 10,
        github_budget_window: Duration::from_secs(2),
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let (result, events) = common::snapshot_with(&sim, sim.config(), &store).await;
    let (_, snap) = result.unwrap_or_else(|(_, e)| panic!("{e}"));
    assert!(!snap.partial, "{:?}", snap.failures);
    assert!(snap.stats.rate_limited_waits > 0);
    let gh = sim.counts(Source::GitHub);
    assert_eq!(
        gh.primary_limited, 0,
        "a request was sent with no budget left"
    );
    assert_eq!(gh.secondary_limited, 0);
    let warned = events.iter().any(|e| {
        matches!(e, snaptop::engine::events::EngineEvent::Log(l) if l.message.contains("budget exhausted"))
    });
    assert!(warned, "the wait is in the run log");
    assert_matches_ground_truth(&sim.org(), &snap);
}

#[tokio::test]
async fn failing_sources_give_a_partial_snapshot_naming_them() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let good = common::snapshot(&sim, &store).await;
    sim.set_fault(Source::TeamCity, Fault::ServerError);
    sim.set_fault(Source::Datadog, Fault::Garbage);
    sim.set_fault(Source::Jira, Fault::Unauthorized);
    let snap = common::snapshot(&sim, &store).await;
    assert!(snap.partial);
    let named = |source: &str, status: Option<u16>| {
        snap.failures
            .iter()
            .any(|f| f.source == source && f.status == status)
    };
    assert!(named("teamcity", Some(500)), "{:?}", snap.failures);
    assert!(named("datadog", Some(200)), "{:?}", snap.failures);
    assert!(named("jira", Some(401)), "{:?}", snap.failures);
    let tc = snap
        .failures
        .iter()
        .find(|f| f.source == "teamcity")
        .unwrap();
    assert!(tc.endpoint.contains("/app/rest/builds"), "{tc:?}");
    // 5xx are retried a bounded number of times; 401 is not retried.
    assert!(snap.stats.per_source["teamcity"].retries >= 1);
    assert_eq!(snap.stats.per_source["jira"].retries, 0);
    // GitHub data is fresh; what the failed sources could not bring is the last good
    // answer, marked stale with when it was fetched: never invented, never hidden.
    use snaptop::engine::model::Part;
    for env in &snap.environments {
        for comp in &snap.components {
            let (cell, before) = (snap.cell(env, comp).unwrap(), good.cell(env, comp).unwrap());
            assert_eq!(cell.tag, before.tag);
            assert!(!cell.is_stale(Part::Deployment));
            assert_eq!(cell.build, before.build);
            // As of the good run: TeamCity's cached answer of then, served stale.
            let as_of = cell.as_of(Part::Build, snap.finished_at);
            assert!(cell.is_stale(Part::Build), "{env}/{comp}");
            assert!(
                as_of >= good.started_at && as_of <= good.finished_at,
                "{as_of}"
            );
            assert_eq!(cell.health, before.health);
            if before.health.values().any(Option::is_some) {
                assert!(cell.is_stale(Part::Health), "{env}/{comp}");
            }
            let statuses = |c: &snaptop::engine::model::Cell| {
                c.tickets
                    .iter()
                    .flatten()
                    .map(|t| (t.key.clone(), t.status.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                statuses(cell),
                statuses(before),
                "{env}/{comp}: Jira statuses carried"
            );
        }
    }
    // The run is recorded and the earlier complete snapshot stays readable.
    let history = store.run_history(10).unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].partial && !history[1].partial);
}

/// A wait longer than snaptop ever waits fails at once (the path that waits and then
/// gives up is `tests/trust.rs`' `rate_limit_waits_are_logged_with_when_they_end_then_give_up`).
#[tokio::test]
async fn a_wait_longer_than_snaptop_waits_fails_at_once_with_a_clear_failure() {
    let sim = common::sim(SimOptions::default()).await;
    sim.set_fault(Source::Jira, Fault::RateLimited(3600));
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(snap.partial);
    let jira = snap.failures.iter().find(|f| f.source == "jira").unwrap();
    assert!(jira.message.contains("rate limited"), "{jira:?}");
    assert!(jira.message.contains("asked to wait 3600s"), "{jira:?}");
    assert_eq!(
        snap.stats.per_source["jira"].rate_limited_waits, 0,
        "not waited for"
    );
    // Other sources are untouched by Jira's limit.
    assert!(snap.failures.iter().all(|f| f.source == "jira"));
}

async fn sim_and_dir() -> (RunningSim, tempfile::TempDir, std::path::PathBuf) {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    (sim, dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_json_has_the_documented_shape() {
    let (sim, dir, config) = sim_and_dir().await;
    let out = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("deployment history"),
        "progress on stderr: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["partial"], false);
    assert!(v["failures"].as_array().unwrap().is_empty());
    let cell = &v["environments"]["prod"]["payments"];
    assert!(cell["tag"].as_str().unwrap().starts_with("v1."));
    let deployed = cell["deployed_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(deployed, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    for key in ["number", "status", "finished_at"] {
        assert!(cell["build"][key].is_string(), "build.{key}: {cell}");
    }
    assert!(cell["health"]["p95_ms"].is_number());
    assert!(cell["health"].get("error_rate").is_some());
    let dev = &v["environments"]["dev"]["payments"];
    let tickets = dev["tickets"].as_array().expect("tickets known");
    let ticket = tickets
        .iter()
        .find(|t| t["in_jira"] == true)
        .expect("a Jira ticket");
    for key in ["key", "status", "summary"] {
        assert!(ticket[key].is_string(), "ticket.{key}: {dev}");
    }
    // Shipped work Jira did not return: kept, with a null status and the flag.
    let stray = tickets
        .iter()
        .find(|t| t["in_jira"] == false)
        .expect("a key Jira lacks");
    assert!(
        stray["status"].is_null() && stray["key"].is_string(),
        "{stray}"
    );
    let event = &dev["events"][0];
    assert!(event["at"].is_string() && event["to"].is_string(), "{dev}");
    assert!(event.get("from").is_some());
    for key in [
        "requests",
        "not_modified",
        "cache_hits",
        "retries",
        "rate_limited_waits",
        "duration_ms",
    ] {
        assert!(v["stats"][key].is_u64(), "stats.{key}");
    }
    // Logs went to the state dir, not the terminal.
    assert!(dir.path().join("xdg_state_home/snaptop").exists());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exit_codes_partial_and_missing_secret() {
    let (sim, dir, config) = sim_and_dir().await;
    sim.set_fault(Source::TeamCity, Fault::Unauthorized);
    let out = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "partial run exits 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("teamcity GET /app/rest/builds"), "{stderr}");

    sim.reset_counts();
    let out = common::snaptop(&sim, dir.path())
        .env_remove(snaptop::sim::JIRA_TOKEN_ENV)
        .args(["snapshot", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(snaptop::sim::JIRA_TOKEN_ENV), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    for s in Source::ALL {
        assert_eq!(
            sim.counts(s).requests,
            0,
            "no request before secrets are known"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_gets_a_clear_message() {
    let (sim, dir, config) = sim_and_dir().await;
    let held = Store::open(&dir.path().join("store"), 8).unwrap();
    let out = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another snaptop process"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_names_file_and_line() {
    let (sim, dir, config) = sim_and_dir().await;
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("history_days", "histroy_days")).unwrap();
    let out = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .position(|l| l.starts_with("history_days"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("config.toml:{line}:")) && stderr.contains("histroy_days"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_budget_from_rate_limit_body_is_respected() {
    let sim = common::sim(SimOptions {
        // Fewer than the run's GraphQL requests, so it has to wait for the reset.
        github_graphql_budget: 1,
        github_budget_window: Duration::from_secs(2),
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    assert_matches_ground_truth(&sim.org(), &snap);
    let calls = sim.github_endpoint_counts();
    assert_eq!(
        calls.get("contents"),
        None,
        "waited for GraphQL, no REST fallback: {calls:?}"
    );
    assert_eq!(sim.counts(Source::GitHub).primary_limited, 0);
    assert!(snap.stats.rate_limited_waits > 0);
}

#[tokio::test]
async fn ticket_keys_jira_does_not_return_are_kept_and_marked() {
    let sim = common::sim(SimOptions::default()).await;
    let org = sim.org();
    let strays = org
        .repos
        .values()
        .flat_map(|r| &r.pulls)
        .filter(|p| p.merged_at.is_some() && p.keys.iter().any(|k| k.starts_with("OPS-")))
        .count();
    assert!(strays > 0, "the organisation has PRs naming unknown keys");
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    let strays: Vec<&snaptop::engine::model::Ticket> = snap
        .cells
        .values()
        .flat_map(|c| c.values())
        .flat_map(|c| c.tickets.iter().flatten())
        .filter(|t| t.key.starts_with("OPS-"))
        .collect();
    assert!(!strays.is_empty(), "shipped work Jira cannot show is kept");
    for t in strays {
        assert_eq!((t.status.as_ref(), t.in_jira), (None, Some(false)), "{t:?}");
    }
    assert_matches_ground_truth(&org, &snap);
    // Jira's 400 naming the unknown keys was expected and handled: not an error.
    assert_eq!(snap.stats.per_source["jira"].errors, 0);
}

#[tokio::test]
async fn graphql_timeouts_halve_the_batch_instead_of_falling_back_to_rest() {
    let sim = common::sim(SimOptions {
        github_graphql_max_objects: 5,
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    assert_matches_ground_truth(&sim.org(), &snap);
    let calls = sim.github_endpoint_counts();
    assert_eq!(
        calls.get("contents"),
        None,
        "smaller GraphQL batches, not REST: {calls:?}"
    );
    assert!(snap.stats.retries > 0, "the 502s were retried first");
}
