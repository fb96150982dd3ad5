//! Issue 9, off the happy path: every answer snaptop is not sure of is unknown or a
//! failure naming source and endpoint; nothing bad is cached; credentials stay with the
//! configured origins and out of every message; runs are bounded in time.
//!
//! Each test drives the engine (or the real binary) against the simulator with one of its
//! fault modes, and would fail on the code before the fix it covers.

mod common;

use std::time::{Duration, Instant};

use snaptop::engine::events::EngineEvent;
use snaptop::engine::model::Snapshot;
use snaptop::sim::{Fault, Profile, SimOptions, Source};
use snaptop::store::Store;

fn failure_of<'a>(snap: &'a Snapshot, source: &str) -> &'a snaptop::engine::model::Failure {
    snap.failures
        .iter()
        .find(|f| f.source == source)
        .unwrap_or_else(|| panic!("no {source} failure in {:#?}", snap.failures))
}

// --- 1. digest pins -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_pins_resolve_through_the_history_or_read_unknown_and_dead_sources_cost_a_bounded_retry_budget()
 {
    let sim = common::sim(SimOptions {
        profile: Profile::Seed,
        ..SimOptions::default()
    })
    .await;
    let org = sim.org();
    // No registry configured: only what the GitOps history says can tie a digest to a tag.
    let mut config = sim.config();
    config.registries.clear();
    // And TeamCity is down: its retries come out of one budget for the run.
    sim.set_fault(Source::TeamCity, Fault::ServerError);
    let store = Store::temporary().unwrap();
    let (snap, _) = common::snapshot_env(&sim, config, &store, |_| {}).await;
    let json = snaptop::headless::snapshot_json(&snap);
    let style = |name: &str| org.component(name).unwrap().style;
    use snaptop::sim::org::TagStyle;
    for env in &org.environments {
        for comp in &org.components {
            let cell = snap.cell(env, &comp.name).unwrap();
            let at = format!("{env}/{}", comp.name);
            match style(&comp.name) {
                TagStyle::DigestOnly | TagStyle::DigestUnlabelled => {
                    assert!(cell.tag.as_deref().unwrap().starts_with("sha256:"), "{at}");
                    assert_eq!(cell.tickets, None, "{at}: unknown, never 0 tickets");
                    assert!(
                        cell.unresolved
                            .as_deref()
                            .unwrap_or_default()
                            .starts_with("digest not resolved"),
                        "{at}"
                    );
                    assert!(
                        json["environments"][env][&comp.name]["tickets"].is_null(),
                        "{at}"
                    );
                }
                TagStyle::Digest => {
                    assert_eq!(cell.resolved.as_ref().unwrap().via, "newTag", "{at}");
                    assert!(cell.tickets.is_some(), "{at}");
                }
                _ => {}
            }
            let want = org
                .expected(
                    env,
                    &comp.name,
                    (snap.started_at - time::Duration::days(org.window_days)).unix_timestamp(),
                )
                .unwrap();
            if style(&comp.name) == TagStyle::Pinned && want.resolved_tag.is_some() {
                // The pin replaced the deployed tag in the same commit.
                let resolved = cell.resolved.as_ref().unwrap_or_else(|| panic!("{at}"));
                assert_eq!(resolved.via, "replaced tag", "{at}");
                assert_eq!(Some(&resolved.tag), want.resolved_tag.as_ref(), "{at}");
                let keys: Vec<&str> = cell
                    .tickets
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|t| t.key.as_str())
                    .collect();
                assert_eq!(keys, want.tickets.unwrap(), "{at}");
            }
        }
    }
    // 15 build types failing with 500: without a budget each costs 4 attempts.
    let build_types = org.components.len() as u64;
    let tc = sim.counts(Source::TeamCity).requests;
    assert!(
        tc <= build_types + snaptop::sources::http::RETRY_BUDGET_BASE + build_types,
        "{tc} TeamCity requests for {build_types} build types"
    );
    assert!(tc < build_types * 4, "{tc}");
}

// --- 2. tickets Jira does not return ----------------------------------------------------

#[tokio::test]
async fn a_ticket_ignore_pattern_drops_false_positives() {
    let sim = common::sim(SimOptions::default()).await;
    let mut config = sim.config();
    config.jira.as_mut().unwrap().ticket_ignore = Some("OPS-[0-9]+".into());
    let store = Store::temporary().unwrap();
    let (snap, _) = common::snapshot_env(&sim, config, &store, |_| {}).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    let keys: Vec<&str> = snap
        .cells
        .values()
        .flat_map(|c| c.values())
        .flat_map(|c| c.tickets.iter().flatten())
        .map(|t| t.key.as_str())
        .collect();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.starts_with("OPS-")), "{keys:?}");
}

// --- 3. wrong shapes ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_without_the_documented_shape_is_a_failure_of_that_source() {
    let cases: [(Source, &str, Fault, &str); 6] = [
        (
            Source::TeamCity,
            "/app/rest/builds",
            Fault::EmptyObject,
            "count",
        ),
        (
            Source::Datadog,
            "/api/v1/query",
            Fault::EmptyObject,
            "status",
        ),
        (Source::Jira, "/search/jql", Fault::EmptyObject, "issues"),
        (Source::GitHub, "/tags", Fault::WrongShape, "sequence"),
        (Source::GitHub, "/pulls", Fault::EmptyObject, "sequence"),
        (
            Source::Datadog,
            "/api/v1/query",
            Fault::WrongShape,
            "expected",
        ),
    ];
    for (source, path, fault, what) in cases {
        let sim = common::sim(SimOptions::default()).await;
        sim.set_fault_on(source, path, fault.clone(), None);
        let store = Store::temporary().unwrap();
        let snap = common::snapshot(&sim, &store).await;
        let case = format!("{source:?} {path} {fault:?}");
        assert!(snap.partial, "{case}: a run missing data is not complete");
        let f = failure_of(&snap, source.name());
        assert!(f.endpoint.contains(path), "{case}: {f}");
        assert!(
            f.message.contains("documented shape") && f.message.contains(what),
            "{case}: {f}"
        );
        assert_eq!(snaptop::headless::exit_code(&snap), 2, "{case}");
    }
}

#[tokio::test]
async fn a_graphql_answer_without_data_is_read_over_rest_never_taken_as_absent_files() {
    let sim = common::sim(SimOptions::default()).await;
    sim.set_fault_on(Source::GitHub, "/api/graphql", Fault::EmptyObject, None);
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    let calls = sim.github_endpoint_counts();
    assert!(calls.get("contents").copied().unwrap_or(0) > 0, "{calls:?}");
    assert!(!snap.partial, "{:?}", snap.failures);
    let good = common::snapshot(
        &common::sim(SimOptions::default()).await,
        &Store::temporary().unwrap(),
    )
    .await;
    for (env, row) in &good.cells {
        for (comp, cell) in row {
            assert_eq!(snap.cell(env, comp).unwrap().tag, cell.tag, "{env}/{comp}");
        }
    }
}

// --- 4. config mistakes ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_placeholder_is_a_config_error_naming_its_line() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("overlays/{env}/", "overlays/{envv}/");
    std::fs::write(&config, &text).unwrap();
    let line = text.lines().position(|l| l.contains("{envv}")).unwrap() + 1;
    let out = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("config.toml:{line}:")), "{stderr}");
    assert!(stderr.contains("{envv}"), "{stderr}");
    assert_eq!(
        sim.counts(Source::GitHub).requests,
        0,
        "no request on a bad config"
    );
}

#[tokio::test]
async fn a_component_found_in_no_environment_is_a_failure_naming_the_path() {
    let sim = common::sim(SimOptions::default()).await;
    let mut config = sim.config();
    let mut ghost = config.components[0].clone();
    ghost.name = "ghost".into();
    config.components.push(ghost);
    // The files of component 1, but an image named in none of them.
    let mut renamed = config.components[1].clone();
    renamed.image = "ghcr.io/acme/no-such-image".into();
    config.components[1] = renamed;
    let store = Store::temporary().unwrap();
    let (snap, _) = common::snapshot_env(&sim, config, &store, |_| {}).await;
    assert!(snap.partial);
    let ghost = snap
        .failures
        .iter()
        .find(|f| {
            f.message
                .contains("overlays/{env}/ghost/kustomization.yaml")
        })
        .unwrap_or_else(|| panic!("{:#?}", snap.failures));
    assert!(
        ghost.message.contains("no such file in any environment"),
        "{ghost}"
    );
    assert!(snap.cell("prod", "ghost").unwrap().tickets.is_none());
    assert!(
        snap.failures
            .iter()
            .any(|f| f.message.contains("no-such-image")),
        "{:#?}",
        snap.failures
    );
}

// --- 5. exit codes --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_fetched_at_all_exits_1() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    // A port nobody listens on: every source refuses connections.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&sim.addr().port().to_string(), &closed.to_string());
    std::fs::write(&config, text).unwrap();
    let started = Instant::now();
    let out = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing could be fetched"), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["partial"], true);
    // The retry budget keeps a dead box from costing minutes.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

// --- 6. the cache cannot be poisoned --------------------------------------------------------

#[tokio::test]
async fn a_body_that_did_not_parse_is_never_replayed_by_a_304() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    // A proxy mangles the listings' bodies but keeps their ETags.
    sim.set_fault_on(Source::GitHub, "/commits", Fault::Garbage, None);
    let poisoned = common::snapshot(&sim, &store).await;
    assert!(poisoned.partial);
    sim.set_fault(Source::GitHub, Fault::None);
    sim.reset_counts();
    let healed = common::snapshot(&sim, &store).await;
    assert!(!healed.partial, "{:?}", healed.failures);
    let org = sim.org();
    for env in &org.environments {
        for comp in &org.components {
            assert!(
                healed.cell(env, &comp.name).unwrap().tag.is_some(),
                "{env}/{}",
                comp.name
            );
        }
    }
}

#[tokio::test]
async fn a_cached_body_that_no_longer_parses_is_dropped_and_fetched_again() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let good = common::snapshot(&sim, &store).await;
    // The gitops head's cached answer is corrupted (an older snaptop, a bad disk): the
    // entry keeps its head, its body is no longer JSON.
    let suffix = format!(
        " GET {}/api/v3/repos/acme/deploy/commits?per_page=1",
        sim.base_url()
    );
    let (key, record) = store
        .cache_index()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.starts_with("github ") && k.ends_with(&suffix))
        .expect("the head's answer is cached");
    let bytes = store.cache_get(&key).unwrap().unwrap();
    let head_end = bytes.iter().position(|b| *b == b'\n').unwrap();
    let mut corrupt = bytes[..=head_end].to_vec();
    corrupt.extend_from_slice(b"<html>not json");
    store.cache_put(&key, &corrupt, &record).unwrap();
    let again = common::snapshot(&sim, &store).await;
    assert!(!again.partial, "{:?}", again.failures);
    assert_eq!(again.cells, good.cells);
    let repaired = store.cache_get(&key).unwrap().unwrap();
    let body = &repaired[repaired.iter().position(|b| *b == b'\n').unwrap() + 1..];
    assert!(
        body.starts_with(b"["),
        "the entry was fetched again and stored"
    );
}

// --- 7. body caps ---------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_the_cap_fails_without_reaching_the_store() {
    let sim = common::sim(SimOptions::default()).await;
    let mut config = sim.config();
    config.github.max_body_mib = 1;
    sim.set_fault_on(Source::GitHub, "/tags", Fault::Huge(3 << 20), None);
    let store = Store::temporary().unwrap();
    let (snap, _) = common::snapshot_env(&sim, config, &store, |_| {}).await;
    assert!(snap.partial);
    let f = snap
        .failures
        .iter()
        .find(|f| f.endpoint.contains("/tags"))
        .unwrap_or_else(|| panic!("{:#?}", snap.failures));
    assert!(f.message.contains("over the 1 MiB limit"), "{f}");
    assert!(f.message.contains("github.max_body_mib"), "{f}");
    let cached: u64 = store
        .cache_index()
        .unwrap()
        .iter()
        .map(|(k, _)| store.cache_get(k).unwrap().map_or(0, |v| v.len() as u64))
        .sum();
    assert!(cached < 1 << 20, "{cached} bytes cached");
}

// --- 8. credentials only go to the configured origin -----------------------------------------

#[tokio::test]
async fn redirects_and_links_to_another_origin_never_carry_credentials() {
    let capture = common::capture_server().await;
    let sim = common::sim(SimOptions::default()).await;
    sim.set_fault(
        Source::Datadog,
        Fault::RedirectTo(format!("{}/steal", capture.url)),
    );
    sim.set_fault_on(
        Source::GitHub,
        "/tags",
        Fault::ForeignLink(format!("{}/repos/acme/x/tags?page=2", capture.url)),
        None,
    );
    sim.set_fault(
        Source::TeamCity,
        Fault::ForeignLink(format!("{}/app/rest/builds?locator=x", capture.url)),
    );
    let mut config = sim.config();
    // Ask for more builds than a page holds, so `nextHref` is followed.
    config.teamcity.as_mut().unwrap().builds_per_type = 500;
    let store = Store::temporary().unwrap();
    let (snap, _) = common::snapshot_env(&sim, config, &store, |_| {}).await;
    assert!(
        capture.seen.lock().unwrap().is_empty(),
        "a request reached another origin: {:?}",
        capture.seen.lock().unwrap()
    );
    let dd = failure_of(&snap, "datadog");
    assert!(dd.message.contains("redirected to another origin"), "{dd}");
    let gh = snap
        .failures
        .iter()
        .find(|f| f.source == "github" && f.endpoint.contains("/tags"))
        .unwrap_or_else(|| panic!("{:#?}", snap.failures));
    assert!(
        gh.message.contains("not followed") && gh.message.contains(&capture.url),
        "{gh}"
    );
    let tc = failure_of(&snap, "teamcity");
    assert!(tc.message.contains("not followed"), "{tc}");
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed() {
    let sim = common::sim(SimOptions::default()).await;
    // One Datadog answer bounces to the same URL (a load balancer's 302).
    sim.set_fault_on(
        Source::Datadog,
        "/api/v1/query",
        Fault::RedirectTo(String::new()),
        Some(1),
    );
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(
        snap.failures.iter().all(|f| f.source != "datadog"),
        "{:#?}",
        snap.failures
    );
}

// --- 9. echoed secrets ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_are_redacted_from_json_stderr_log_and_store() {
    use base64::Engine;
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    for s in Source::ALL {
        sim.set_fault(s, Fault::EchoHeaders);
    }
    let out = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let secrets = sim.secrets();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        secrets.jira_email.as_deref().unwrap(),
        secrets.jira_token.as_deref().unwrap()
    ));
    let needles: Vec<String> = [
        secrets.github_token.clone().unwrap(),
        secrets.teamcity_token.clone().unwrap(),
        secrets.datadog_api_key.clone().unwrap(),
        secrets.datadog_app_key.clone().unwrap(),
        secrets.jira_token.clone().unwrap(),
        basic,
    ]
    .into();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stdout.contains("[REDACTED]"),
        "the echo was seen and cleaned: {stdout}"
    );
    let mut places = vec![
        ("stdout".to_string(), stdout.into_bytes()),
        ("stderr".into(), stderr.into_bytes()),
    ];
    for entry in walk(dir.path()) {
        if entry.ends_with("config.toml") {
            continue;
        }
        places.push((
            entry.display().to_string(),
            std::fs::read(&entry).unwrap_or_default(),
        ));
    }
    for (place, bytes) in &places {
        for n in &needles {
            assert!(
                memmem(bytes, n.as_bytes()).is_none(),
                "a secret ({}…) is in {place}",
                &n[..6]
            );
        }
    }
    assert!(
        places.iter().any(|(p, _)| p.contains("snaptop.log")),
        "the log file was checked"
    );
    assert!(
        places.iter().any(|(p, _)| p.contains("store")),
        "the store was checked"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn memmem(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// --- 10. permissions ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_others_can_write_are_refused_and_readable_token_files_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let token = dir.path().join("gh-token");
    std::fs::write(&token, sim.secrets().github_token.unwrap()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("token_env = \"{}\"", snaptop::sim::GITHUB_TOKEN_ENV),
        &format!("token_file = {:?}", token.display().to_string()),
    );
    std::fs::write(&config, text).unwrap();
    let run = || {
        common::snaptop(&sim, dir.path())
            .args(["snapshot", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(&config, 0o666);
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("writable by others") && stderr.contains("chmod go-w"),
        "{stderr}"
    );
    chmod(&config, 0o644);
    chmod(&token, 0o666);
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gh-token") && stderr.contains("writable by others"),
        "{stderr}"
    );
    chmod(&token, 0o644);
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not a refusal: {stderr}"
    );
    assert!(
        stderr.contains("readable by others")
            && stderr.contains(&format!("chmod 600 {}", token.display())),
        "{stderr}"
    );
    chmod(&token, 0o600);
    let out = run();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("readable by others"));
}

// --- 15. time ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_hung_server_costs_its_first_byte_timeout_and_a_stalled_body_its_read_timeout() {
    let sim = common::sim(SimOptions::default()).await;
    sim.set_fault(Source::Datadog, Fault::Hang);
    sim.set_fault(Source::Jira, Fault::StallBody);
    let store = Store::temporary().unwrap();
    let started = Instant::now();
    let (snap, _) = common::snapshot_env(&sim, sim.config(), &store, |env| {
        env.timeouts.first_byte = Duration::from_millis(300);
        env.timeouts.read = Duration::from_millis(300);
    })
    .await;
    let dd = failure_of(&snap, "datadog");
    assert!(dd.message.contains("no response within 0.3s"), "{dd}");
    let jira = failure_of(&snap, "jira");
    assert!(jira.message.contains("body stalled for 0.3s"), "{jira}");
    // Four attempts of 0.3 s and their backoff, not 30 s each.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_run_deadline_bounds_a_secondary_limit_without_retry_after() {
    let sim = common::sim(SimOptions::default()).await;
    sim.set_fault_on(Source::GitHub, "/tags", Fault::SecondaryLimit, None);
    let store = Store::temporary().unwrap();
    let started = Instant::now();
    let (snap, _) = common::snapshot_env(&sim, sim.config(), &store, |env| {
        env.timeout = Some(Duration::from_secs(5));
    })
    .await;
    // GitHub documents "at least a minute": past the deadline, so not waited for.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let f = snap
        .failures
        .iter()
        .find(|f| f.endpoint.contains("/tags"))
        .unwrap_or_else(|| panic!("{:#?}", snap.failures));
    assert!(
        f.message.contains("secondary rate limit") && f.message.contains("deadline"),
        "{f}"
    );
    assert_eq!(f.status, Some(403));
}

#[tokio::test]
async fn rate_limit_waits_are_logged_with_when_they_end_then_give_up() {
    let sim = common::sim(SimOptions::default()).await;
    // Jira's 429 asks for a second, every time: waited for, then given up on.
    sim.set_fault(Source::Jira, Fault::RateLimited(1));
    let store = Store::temporary().unwrap();
    let (snap, events) = common::snapshot_env(&sim, sim.config(), &store, |_| {}).await;
    let jira = failure_of(&snap, "jira");
    assert!(
        jira.message.contains("rate limited") && jira.message.contains("giving up"),
        "{jira}"
    );
    let waits = snap.stats.per_source["jira"].rate_limited_waits;
    assert!(
        waits >= snaptop::sources::http::MAX_RATE_LIMIT_WAITS as u64,
        "{waits}"
    );
    let logged = common::log_lines(&events);
    assert!(
        logged.iter().any(|l| l.contains("waiting 1s, until ")),
        "{logged:#?}"
    );
    assert!(
        snap.failures.iter().all(|f| f.source == "jira"),
        "{:#?}",
        snap.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_429_waits_for_its_reset() {
    let sim = common::sim(SimOptions {
        datadog_budget: 1,
        datadog_period: Duration::from_secs(2),
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let (snap, _) = common::snapshot_env(&sim, sim.config(), &store, |_| {}).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    assert!(snap.stats.per_source["datadog"].rate_limited_waits >= 1);
}

#[tokio::test]
async fn teamcity_next_href_pages_are_followed() {
    let sim = common::sim(SimOptions {
        teamcity_max_count: 2,
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let snap = common::snapshot(&sim, &store).await;
    assert!(!snap.partial, "{:?}", snap.failures);
    let org = sim.org();
    let window_start = (snap.started_at - time::Duration::days(org.window_days)).unix_timestamp();
    for comp in &org.components {
        let want = org.expected("prod", &comp.name, window_start).unwrap();
        let cell = snap.cell("prod", &comp.name).unwrap();
        assert_eq!(
            cell.build.as_ref().and_then(|b| b.number.clone()),
            want.build.map(|b| b.number.to_string()),
            "{}",
            comp.name
        );
    }
    let build_types = org.components.len() as u64;
    assert!(sim.counts(Source::TeamCity).requests > build_types, "paged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_cancels_a_headless_run_which_prints_its_partial_json_and_exits_2() {
    use std::io::{BufRead, BufReader};
    let sim = common::sim(SimOptions::default()).await;
    // Jira never answers: the run would sit there until its timeouts.
    sim.set_fault(Source::Jira, Fault::Hang);
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let mut child = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--json", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait (generously) until the run is under way: GitHub's part is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let ready = line.contains(" files done") || line.contains("deployment history ✓");
            seen.push(line);
            if ready {
                break;
            }
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("files done") || l.contains("deployment history ✓")),
        "{seen:#?}"
    );
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after SIGINT"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("partial JSON");
    assert_eq!(v["cancelled"], true);
    assert_eq!(v["partial"], true);
    assert!(
        v["environments"]["prod"]["payments"]["tag"].is_string(),
        "what was fetched is kept: {v:#}"
    );
}

#[tokio::test]
async fn a_cancelled_run_returns_at_once_with_what_it_has() {
    let sim = common::sim(SimOptions::default()).await;
    // A coalesced GitHub GET that never answers: cancelling must drop it, and with it
    // everything of the run it held (the event channel closes).
    sim.set_fault_on(Source::GitHub, "/pulls", Fault::Hang, None);
    let store = Store::temporary().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let cancel = tokio_util::sync::CancellationToken::new();
    let env = snaptop::engine::runner::RunEnv {
        retry_min_delay: Duration::from_millis(1),
        ..snaptop::engine::runner::RunEnv::new(
            std::sync::Arc::new(sim.config()),
            sim.secrets(),
            store.clone(),
            snaptop::cache::HttpCache::open(store.clone(), sim.config().cache),
            tx,
        )
    };
    let run = tokio::spawn(snaptop::engine::runner::run_snapshot(
        env,
        snaptop::engine::model::Trigger::Manual,
        cancel.clone(),
    ));
    // Cancel once the deployments are in.
    while let Some(ev) = rx.recv().await {
        if let EngineEvent::Progress(p) = &ev
            && p.stages.iter().any(|s| {
                s.stage == snaptop::engine::events::Stage::Deployments
                    && s.state == snaptop::engine::events::StageState::Done
            })
        {
            break;
        }
    }
    let asked = Instant::now();
    cancel.cancel();
    // The event channel closes: nothing of the run is kept alive by its own requests.
    tokio::time::timeout(Duration::from_secs(10), async {
        while rx.recv().await.is_some() {}
    })
    .await
    .expect("the run's event channel closes once it is cancelled");
    let (_, snap) = run.await.unwrap().unwrap_or_else(|(_, e)| panic!("{e}"));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert!(snap.cancelled && snap.partial);
    assert!(snap.cell("prod", "payments").unwrap().tag.is_some());
    assert_eq!(
        store.latest_snapshot().unwrap().unwrap().run_id,
        snap.run_id
    );
}

// --- 18. the gitops head -------------------------------------------------------------------------

#[tokio::test]
async fn the_gitops_head_is_stored_only_when_every_file_under_it_was_read() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let good = common::snapshot(&sim, &store).await;
    assert!(!good.partial);
    let key = "gitops-head\0acme/deploy\0HEAD";
    let head: String = store.state(key).unwrap().unwrap();
    // As if a commit had landed since: every file is listed again, and now the file
    // contents cannot be read (listings still work).
    for path in ["/api/graphql", "/contents/"] {
        sim.set_fault_on(Source::GitHub, path, Fault::ServerError, None);
    }
    // A store without the file texts, so they must be read.
    let fresh = Store::temporary().unwrap();
    fresh.put_state(key, &"0".repeat(40)).unwrap();
    let broken = common::snapshot(&sim, &fresh).await;
    assert!(broken.partial);
    let stored: String = fresh.state(key).unwrap().unwrap();
    assert_eq!(
        stored,
        "0".repeat(40),
        "a head whose files were not all read is not stored"
    );
    sim.set_fault(Source::GitHub, Fault::None);
    let healed = common::snapshot(&sim, &fresh).await;
    assert!(!healed.partial, "{:?}", healed.failures);
    assert_eq!(fresh.state::<String>(key).unwrap().unwrap(), head);
    assert_eq!(healed.cells, good.cells);
}
