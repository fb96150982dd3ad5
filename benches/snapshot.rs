//! Snapshot benchmark: the seed team's way (a plain sequential REST client) against
//! snaptop's cold and warm runs, all on the simulator's `seed` profile at one fixed
//! per-call latency, in one run.
//!
//! `cargo bench --bench snapshot` (env: `SNAPTOP_BENCH_LATENCY_MS`, default 50: the low end
//! of what a GitHub REST call takes from a build box, and high enough that the wall time
//! measures the engine's round trips rather than the simulator's CPU, which shares the
//! same two cores here;
//! `SNAPTOP_BENCH_SKIP_BASELINE=1` to measure snaptop alone; `SNAPTOP_BENCH_ROUNDS`, default
//! 3: cold + warm pairs on fresh stores, medians reported).
//!
//! snaptop runs against the documented GitHub limits (5,000/h budgets, 100 concurrent,
//! 900 REST points/min per endpoint, 2,000 GraphQL points/min). The baseline gets its own
//! simulator with those limits lifted: a sequential client at this latency would trip
//! them and sleep, so its time here is a lower bound of what the seed team waited.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use snaptop::engine::model::{Snapshot, Trigger};
use snaptop::engine::runner::{RunEnv, run_snapshot};
use snaptop::sim::{Profile, RunningSim, SimOptions, Source};
use snaptop::sources::http::Links;
use snaptop::sources::kustomize;
use snaptop::store::Store;
use tokio_util::sync::CancellationToken;

fn main() {
    let latency_ms: u64 = std::env::var("SNAPTOP_BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let skip_baseline = std::env::var_os("SNAPTOP_BENCH_SKIP_BASELINE").is_some();
    let rounds: usize = std::env::var("SNAPTOP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(latency_ms, skip_baseline, rounds));
}

fn median(mut walls: Vec<Duration>) -> Duration {
    walls.sort();
    walls[walls.len() / 2]
}

struct Row {
    name: &'static str,
    wall: Duration,
    counts: BTreeMap<Source, snaptop::sim::SourceCounts>,
}

fn counts(sim: &RunningSim) -> BTreeMap<Source, snaptop::sim::SourceCounts> {
    Source::ALL.iter().map(|s| (*s, sim.counts(*s))).collect()
}

async fn bench(latency_ms: u64, skip_baseline: bool, rounds: usize) {
    let latency = Duration::from_millis(latency_ms);
    let opts = SimOptions {
        profile: Profile::Seed,
        latency,
        ..SimOptions::default()
    };
    let sim = snaptop::sim::start(opts.clone()).await.expect("simulator");
    println!(
        "snapshot benchmark: seed profile ({} components × {} environments, {} days, {} kustomization commits), {latency_ms} ms per call, {rounds} rounds",
        sim.org().components.len(),
        sim.org().environments.len(),
        sim.org().window_days,
        sim.org().gitops.commits.len()
    );

    // Each round: a fresh store, a cold run, then a warm one. Walls are the median of the
    // rounds (the machine is shared); counts are the same every round.
    let mut cold_walls = Vec::new();
    let mut warm_walls = Vec::new();
    let mut last = None;
    for _ in 0..rounds {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("store"), 32).expect("store");
        sim.reset_counts();
        let (wall, cold) = snaptop_run(&sim, &store).await;
        cold_walls.push(wall);
        let cold_counts = counts(&sim);
        let cold_calls = sim.github_endpoint_counts();
        sim.reset_counts();
        let (wall, warm) = snaptop_run(&sim, &store).await;
        warm_walls.push(wall);
        last = Some((cold, cold_counts, cold_calls, warm));
    }
    let (cold, cold_counts, cold_calls, warm) = last.expect("at least one round");
    let warm_counts = counts(&sim);
    let warm_calls = sim.github_endpoint_counts();
    let spread = |w: &[Duration]| {
        let mut ms: Vec<f64> = w.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        ms
    };
    println!("cold walls (ms): {:.0?}", spread(&cold_walls));
    println!("warm walls (ms): {:.0?}", spread(&warm_walls));
    let mut rows = vec![
        Row {
            name: "snaptop cold (median)",
            wall: median(cold_walls),
            counts: cold_counts.clone(),
        },
        Row {
            name: "snaptop warm (median)",
            wall: median(warm_walls),
            counts: warm_counts.clone(),
        },
    ];
    assert!(!cold.partial && !warm.partial, "{:?}", cold.failures);
    assert_eq!(cold.cells, warm.cells, "warm run changed the result");

    let baseline = if skip_baseline {
        None
    } else {
        let lifted = SimOptions {
            github_rest_budget: u64::MAX / 2,
            github_graphql_budget: u64::MAX / 2,
            github_rest_points_per_minute: usize::MAX,
            github_graphql_points_per_minute: usize::MAX,
            datadog_budget: u64::MAX / 2,
            ..opts
        };
        let bsim = snaptop::sim::start(lifted).await.expect("simulator");
        let started = Instant::now();
        let shipped = SeedTeamClient::new(&bsim).run().await;
        let wall = started.elapsed();
        assert!(shipped > 0, "the baseline found shipped tickets");
        rows.push(Row {
            name: "baseline (sequential REST)",
            wall,
            counts: counts(&bsim),
        });
        Some(wall)
    };

    println!(
        "\n{:28} {:>10} {:>8} {:>8} {:>6} {:>9} {:>8} {:>6} {:>13}",
        "run", "wall", "units", "GitHub", "304", "TeamCity", "Datadog", "Jira", "secondary 403"
    );
    for r in &rows {
        let c = |s: Source| r.counts[&s].requests;
        println!(
            "{:28} {:>9.2}s {:>8.1} {:>8} {:>6} {:>9} {:>8} {:>6} {:>13}",
            r.name,
            r.wall.as_secs_f64(),
            r.wall.as_secs_f64() / latency.as_secs_f64(),
            c(Source::GitHub),
            r.counts[&Source::GitHub].not_modified,
            c(Source::TeamCity),
            c(Source::Datadog),
            c(Source::Jira),
            r.counts[&Source::GitHub].secondary_limited,
        );
    }
    println!("\nGitHub calls by endpoint, cold: {cold_calls:?}");
    println!("GitHub calls by endpoint, warm: {warm_calls:?}");
    let gh_cold = cold_counts[&Source::GitHub].requests;
    let gh_warm = &warm_counts[&Source::GitHub];
    let spent_warm = gh_warm.requests - gh_warm.not_modified;
    println!(
        "warm: {:.1}% of the cold run's GitHub requests answered 304 or not sent ({} of {} sent with a cost)",
        100.0 * (1.0 - spent_warm as f64 / gh_cold as f64),
        spent_warm,
        gh_cold
    );
    if let Some(b) = baseline {
        println!(
            "cold vs baseline: {:.0}× faster; warm vs baseline: {:.0}× faster",
            b.as_secs_f64() / rows[0].wall.as_secs_f64(),
            b.as_secs_f64() / rows[1].wall.as_secs_f64()
        );
    }
}

async fn snaptop_run(sim: &RunningSim, store: &Store) -> (Duration, Snapshot) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let t0 = Instant::now();
    let drain = tokio::spawn(async move {
        // When each stage finished, for reading the critical path.
        let mut ends: BTreeMap<String, f64> = BTreeMap::new();
        while let Some(ev) = rx.recv().await {
            if let snaptop::engine::events::EngineEvent::Progress(p) = ev {
                for s in &p.stages {
                    use snaptop::engine::events::StageState::{Done, Failed};
                    if matches!(s.state, Done | Failed) {
                        ends.entry(s.stage.label().to_string())
                            .or_insert_with(|| t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
        }
        if std::env::var_os("SNAPTOP_BENCH_STAGES").is_some() {
            println!("stage ends (ms): {ends:?}");
        }
    });
    let config = Arc::new(sim.config());
    let cache = snaptop::cache::HttpCache::open(store.clone(), config.cache.clone());
    let env = RunEnv::new(config, sim.secrets(), store.clone(), cache, tx);
    let started = Instant::now();
    let result = run_snapshot(env, Trigger::Cli, CancellationToken::new()).await;
    let wall = started.elapsed();
    let _ = drain.await;
    match result {
        Ok((_, s)) => (wall, s),
        Err((_, e)) => panic!("snapshot failed: {e}"),
    }
}

/// The seed team's client: one request at a time, default page sizes, the file at every
/// commit through `contents`, a `compare` per merged PR per deployment, one Datadog query
/// per metric and one Jira search per ticket.
struct SeedTeamClient {
    http: reqwest::Client,
    base: String,
    config: snaptop::config::Config,
    secrets: snaptop::config::Secrets,
}

impl SeedTeamClient {
    fn new(sim: &RunningSim) -> Self {
        SeedTeamClient {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            config: sim.config(),
            secrets: sim.secrets(),
        }
    }

    async fn github(&self, url: &str) -> (Value, Option<String>) {
        let resp = self
            .http
            .get(url)
            .bearer_auth(self.secrets.github_token.as_deref().unwrap_or_default())
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "seed-team-script")
            .send()
            .await
            .expect("request");
        let link = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{url}: {status} {body}");
        (body, link)
    }

    async fn all_pages(&self, first: String, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next {
            let (page, link) = self.github(&url).await;
            let items = page.as_array().cloned().unwrap_or_default();
            let done = items.iter().any(&stop);
            out.extend(items);
            next = if done {
                None
            } else {
                Links::parse(link.as_deref()).next
            };
        }
        out
    }

    /// Returns how many (cell, ticket) pairs it found shipped.
    async fn run(&self) -> usize {
        let gh = format!("{}/api/v3", self.base);
        let since = snaptop::sources::github::format_rfc3339(
            time::OffsetDateTime::now_utc()
                - time::Duration::days(i64::from(self.config.gitops.history_days)),
        );
        let since_t = snaptop::sources::github::parse_rfc3339(&since).expect("date");
        let repo = &self.config.gitops.repo;
        // Deployment history: every commit of every file, and the file at each commit.
        let mut deployed: HashMap<(String, String), String> = HashMap::new();
        for comp in &self.config.components {
            for env in &self.config.environments {
                let path = self.config.kustomization_path(env, &comp.name);
                let commits = self
                    .all_pages(
                        format!("{gh}/repos/{repo}/commits?path={path}&since={since}"),
                        |_| false,
                    )
                    .await;
                let mut newest: Option<String> = None;
                for c in &commits {
                    let sha = c["sha"].as_str().unwrap_or_default();
                    let (file, _) = self
                        .github(&format!("{gh}/repos/{repo}/contents/{path}?ref={sha}"))
                        .await;
                    let text = file["content"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('\n', "");
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .unwrap_or_default();
                    let yaml = String::from_utf8_lossy(&bytes);
                    let version = kustomize::images(&yaml)
                        .ok()
                        .and_then(|i| kustomize::find_image(&i, &comp.image))
                        .and_then(|i| i.new_tag);
                    if newest.is_none() {
                        newest = version;
                    }
                }
                if let Some(v) = newest {
                    deployed.insert((env.clone(), comp.name.clone()), v);
                }
            }
        }
        // Source history, tags and PRs of each repo.
        let mut shipped = 0;
        for comp in &self.config.components {
            let r = &comp.repo;
            let tags = self
                .all_pages(format!("{gh}/repos/{r}/tags"), |_| false)
                .await;
            let history = self
                .all_pages(format!("{gh}/repos/{r}/commits?since={since}"), |_| false)
                .await;
            let pulls = self
                .all_pages(
                    format!("{gh}/repos/{r}/pulls?state=closed&sort=updated&direction=desc"),
                    |p| {
                        p["updated_at"]
                            .as_str()
                            .and_then(snaptop::sources::github::parse_rfc3339)
                            .is_some_and(|t| t < since_t)
                    },
                )
                .await;
            let tag_sha: HashMap<&str, &str> = tags
                .iter()
                .filter_map(|t| Some((t["name"].as_str()?, t["commit"]["sha"].as_str()?)))
                .collect();
            for env in &self.config.environments {
                let Some(version) = deployed.get(&(env.clone(), comp.name.clone())) else {
                    continue;
                };
                let target = tag_sha
                    .get(version.as_str())
                    .or_else(|| tag_sha.get(format!("v{version}").as_str()))
                    .map(|s| s.to_string())
                    .or_else(|| {
                        let short = version.strip_prefix("sha-")?;
                        history
                            .iter()
                            .filter_map(|c| c["sha"].as_str())
                            .find(|s| s.starts_with(short))
                            .map(str::to_string)
                    });
                let Some(target) = target else { continue };
                // Is each merged PR in the deployed version? One compare per PR.
                for p in &pulls {
                    let (Some(merge), Some(merged_at)) =
                        (p["merge_commit_sha"].as_str(), p["merged_at"].as_str())
                    else {
                        continue;
                    };
                    if snaptop::sources::github::parse_rfc3339(merged_at)
                        .is_none_or(|t| t < since_t)
                    {
                        continue;
                    }
                    let (cmp, _) = self
                        .github(&format!("{gh}/repos/{r}/compare/{merge}...{target}"))
                        .await;
                    if matches!(cmp["status"].as_str(), Some("ahead" | "identical")) {
                        let title = p["title"].as_str().unwrap_or_default();
                        if let Some(key) = title.split(':').next().filter(|k| k.contains('-')) {
                            self.jira(key).await;
                            shipped += 1;
                        }
                    }
                }
            }
            self.teamcity(comp.teamcity_build_type.as_deref().unwrap_or_default())
                .await;
            if let (Some(dd), Some(service)) = (&self.config.datadog, &comp.datadog_service) {
                for env in &self.config.environments {
                    for q in dd.queries.values() {
                        self.datadog(&snaptop::sources::datadog::render_query(q, service, env))
                            .await;
                    }
                }
            }
        }
        shipped
    }

    async fn teamcity(&self, build_type: &str) {
        let url = format!(
            "{}/tc/app/rest/builds?locator=buildType:(id:{build_type}),count:1",
            self.base
        );
        let _ = self
            .http
            .get(url)
            .bearer_auth(self.secrets.teamcity_token.as_deref().unwrap_or_default())
            .header("accept", "application/json")
            .send()
            .await
            .and_then(|r| r.error_for_status());
    }

    async fn datadog(&self, query: &str) {
        let to = time::OffsetDateTime::now_utc().unix_timestamp();
        let params = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("from", &(to - 900).to_string())
            .append_pair("to", &to.to_string())
            .append_pair("query", query)
            .finish();
        let _ = self
            .http
            .get(format!("{}/api/v1/query?{params}", self.base))
            .header(
                "DD-API-KEY",
                self.secrets.datadog_api_key.as_deref().unwrap_or_default(),
            )
            .header(
                "DD-APPLICATION-KEY",
                self.secrets.datadog_app_key.as_deref().unwrap_or_default(),
            )
            .send()
            .await;
    }

    async fn jira(&self, key: &str) {
        let params = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("jql", &format!("key = {key}"))
            .append_pair("fields", "summary,status")
            .finish();
        let _ = self
            .http
            .get(format!("{}/jira/rest/api/3/search/jql?{params}", self.base))
            .basic_auth(
                self.secrets.jira_email.as_deref().unwrap_or_default(),
                self.secrets.jira_token.as_deref(),
            )
            .send()
            .await;
    }
}
