//! The simulator of the GitHub, TeamCity, Datadog and Jira APIs, served on loopback.
//!
//! It follows the public APIs' paths, headers, pagination and JSON shapes for a generated,
//! deterministic organisation ([`org`]), with a fixed per-call latency, GitHub's primary and
//! secondary rate limits, ETags, and fault injection. Each source lives under the prefix a
//! real deployment may have, so clients must honour their base URLs:
//!
//! | source   | base URL                    | like                                  |
//! |----------|-----------------------------|---------------------------------------|
//! | GitHub   | `/api/v3`, `/api/graphql`   | GitHub Enterprise Server              |
//! | TeamCity | `/tc`                       | a server under a context path         |
//! | Datadog  | `/`                         | `https://api.datadoghq.com`           |
//! | Jira     | `/jira`                     | a site under a context path           |

pub mod cli;
mod datadog;
mod github;
mod jira;
pub mod org;
mod registry;
mod teamcity;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::oneshot;

use crate::config::{
    Component, Config, DatadogConfig, GitHubConfig, GitOps, JiraConfig, RegistryConfig, Secrets,
    StoreConfig, TeamCityConfig, UiConfig,
};
pub use org::{Org, Profile};

/// Credentials the simulator accepts (and prints for a demo config).
pub const GITHUB_TOKEN: &str = "sim-github-token";
pub const TEAMCITY_TOKEN: &str = "sim-teamcity-token";
pub const DATADOG_API_KEY: &str = "sim-dd-api-key";
pub const DATADOG_APP_KEY: &str = "sim-dd-app-key";
pub const JIRA_EMAIL: &str = "sim@acme.test";
pub const JIRA_TOKEN: &str = "sim-jira-token";

/// Environment variables named by the printed config.
pub const GITHUB_TOKEN_ENV: &str = "SNAPTOP_SIM_GITHUB_TOKEN";
pub const TEAMCITY_TOKEN_ENV: &str = "SNAPTOP_SIM_TEAMCITY_TOKEN";
pub const DATADOG_API_KEY_ENV: &str = "SNAPTOP_SIM_DD_API_KEY";
pub const DATADOG_APP_KEY_ENV: &str = "SNAPTOP_SIM_DD_APP_KEY";
pub const JIRA_EMAIL_ENV: &str = "SNAPTOP_SIM_JIRA_EMAIL";
pub const JIRA_TOKEN_ENV: &str = "SNAPTOP_SIM_JIRA_TOKEN";

/// GitHub's documented limits (authenticated user, REST and GraphQL).
pub const GITHUB_REST_BUDGET_PER_HOUR: u64 = 5000;
pub const GITHUB_GRAPHQL_BUDGET_PER_HOUR: u64 = 5000;
pub const GITHUB_ANONYMOUS_BUDGET_PER_HOUR: u64 = 60;
pub const GITHUB_MAX_CONCURRENT: usize = 100;
/// The demo's latency per answer: about the round trip of a far API, so that a demo
/// snapshot takes a few seconds.
pub const DEMO_LATENCY_MS: u64 = 300;
/// The registry host of the simulated images (`ghcr.io/acme/...`), served under `/registry`.
pub const REGISTRY_HOST: &str = "ghcr.io";
pub const GITHUB_REST_POINTS_PER_MINUTE: usize = 900;
pub const GITHUB_GRAPHQL_POINTS_PER_MINUTE: usize = 2000;
const SECONDARY_RETRY_AFTER_SECS: u64 = 60;

/// How a source misbehaves on purpose (tests, demos). The body faults keep the real
/// answer's status and headers (its ETag too, as a proxy that mangles bodies would), so a
/// client that caches before it parses replays the bad body on every later 304.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    None,
    /// Answers 500.
    ServerError,
    /// The real answer with a body that is not JSON (an HTML error page with escapes).
    Garbage,
    /// The real answer with the body `{}`.
    EmptyObject,
    /// The real answer with JSON of another shape (`{"items": []}` for a list, `[]` for an
    /// object).
    WrongShape,
    /// The real answer, cut off halfway (the connection closes early).
    CutBody,
    /// Takes the request and never answers.
    Hang,
    /// Sends the headers, then stalls the body.
    StallBody,
    /// 200 with a JSON body of this many bytes, without `Content-Length`.
    Huge(usize),
    /// Answers 401.
    Unauthorized,
    /// Answers 429 with `Retry-After` of this many seconds.
    RateLimited(u64),
    /// GitHub: a secondary-limit 403 as documented, with no `retry-after`.
    SecondaryLimit,
    /// 302 to this URL (another origin: a capture server); empty: to the request's own
    /// URL (a load balancer bouncing it once).
    RedirectTo(String),
    /// The real answer, with its next page (`Link: rel="next"`, TeamCity's `nextHref`)
    /// pointing at this URL.
    ForeignLink(String),
    /// 502 whose HTML body echoes every request header, as a debugging proxy's does.
    EchoHeaders,
}

/// Where a fault applies: a source, optionally only paths containing `path`, optionally
/// only the next `times` requests.
#[derive(Debug, Clone)]
struct FaultRule {
    source: Source,
    path: Option<String>,
    fault: Fault,
    times: Option<u64>,
}

/// The four sources, as the simulator counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    GitHub,
    TeamCity,
    Datadog,
    Jira,
    /// The OCI registry holding the components' images.
    Registry,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::GitHub,
        Source::TeamCity,
        Source::Datadog,
        Source::Jira,
        Source::Registry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::GitHub => "github",
            Source::TeamCity => "teamcity",
            Source::Datadog => "datadog",
            Source::Jira => "jira",
            Source::Registry => "registry",
        }
    }

    fn of_path(path: &str) -> Option<Source> {
        if path.starts_with("/api/v3/") || path == "/api/graphql" {
            Some(Source::GitHub)
        } else if path.starts_with("/tc/") {
            Some(Source::TeamCity)
        } else if path.starts_with("/api/v1/") {
            Some(Source::Datadog)
        } else if path.starts_with("/jira/") {
            Some(Source::Jira)
        } else if path.starts_with("/registry/") {
            Some(Source::Registry)
        } else {
            None
        }
    }
}

/// Settings of one simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Added to every answer.
    pub latency: Duration,
    /// Share of requests (0.0–1.0) answered with a transient 502/503.
    pub fail_rate: f64,
    pub profile: Profile,
    pub seed: u64,
    /// GitHub primary budgets per token and reset window.
    pub github_rest_budget: u64,
    pub github_graphql_budget: u64,
    pub github_budget_window: Duration,
    /// GitHub secondary limits.
    pub github_max_concurrent: usize,
    pub github_rest_points_per_minute: usize,
    pub github_graphql_points_per_minute: usize,
    /// Datadog query budget per period (`X-RateLimit-*`).
    pub datadog_budget: u64,
    pub datadog_period: Duration,
    /// GraphQL queries reading more file objects than this time out with a 502, as
    /// GitHub's do when a query runs too long.
    pub github_graphql_max_objects: usize,
    /// TeamCity answers at most this many builds a page (a server's own cap), so clients
    /// must follow `nextHref`.
    pub teamcity_max_count: usize,
}

impl SimOptions {
    /// The demo: the small organisation, paced like a real network (a run takes a few
    /// seconds, so live progress, cancel and quit-while-running can be tried).
    /// `SNAPTOP_DEMO_LATENCY_MS` changes the pace (tests set it low).
    pub fn demo() -> SimOptions {
        let latency_ms = std::env::var("SNAPTOP_DEMO_LATENCY_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEMO_LATENCY_MS);
        SimOptions {
            latency: Duration::from_millis(latency_ms),
            ..SimOptions::default()
        }
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            latency: Duration::ZERO,
            fail_rate: 0.0,
            profile: Profile::Small,
            seed: 42,
            github_rest_budget: GITHUB_REST_BUDGET_PER_HOUR,
            github_graphql_budget: GITHUB_GRAPHQL_BUDGET_PER_HOUR,
            github_budget_window: Duration::from_secs(3600),
            github_max_concurrent: GITHUB_MAX_CONCURRENT,
            github_rest_points_per_minute: GITHUB_REST_POINTS_PER_MINUTE,
            github_graphql_points_per_minute: GITHUB_GRAPHQL_POINTS_PER_MINUTE,
            datadog_budget: 1000,
            datadog_period: Duration::from_secs(3600),
            github_graphql_max_objects: usize::MAX,
            teamcity_max_count: usize::MAX,
        }
    }
}

/// What the simulator saw, per source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceCounts {
    /// Every request that reached the simulator.
    pub requests: u64,
    /// Answered 304 Not Modified.
    pub not_modified: u64,
    /// Refused by a primary budget (403/429 with `x-ratelimit-remaining: 0`).
    pub primary_limited: u64,
    /// Refused by a secondary limit (concurrency or points per minute).
    pub secondary_limited: u64,
    /// Faults injected (fail rate or a [`Fault`] mode).
    pub injected_faults: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    not_modified: AtomicU64,
    primary_limited: AtomicU64,
    secondary_limited: AtomicU64,
    injected_faults: AtomicU64,
}

/// One request as the simulator answered it, for tests that count upstream calls
/// per URL (coalescing, cache accounting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub source: Source,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub status: u16,
}

/// The log keeps the first this many requests; a bench of thousands of runs should
/// not grow the simulator without bound.
const REQUEST_LOG_CAP: usize = 200_000;

/// A GitHub primary budget of one token and resource.
#[derive(Debug, Clone)]
struct Budget {
    limit: u64,
    used: u64,
    reset_unix: u64,
}

#[derive(Default)]
struct GitHubLimits {
    budgets: HashMap<(String, &'static str), Budget>,
    in_flight: HashMap<String, usize>,
    /// (token, endpoint) → request times in the last minute.
    points: HashMap<(String, String), VecDeque<Instant>>,
}

struct Shared {
    org: RwLock<Arc<Org>>,
    opts: SimOptions,
    counters: BTreeMap<Source, Counters>,
    /// GitHub endpoint family ("commits", "graphql", ...) → requests.
    github_endpoints: Mutex<BTreeMap<String, u64>>,
    request_log: Mutex<Vec<LoggedRequest>>,
    limits: Mutex<GitHubLimits>,
    datadog_used: Mutex<(u64, Instant)>,
    faults: Mutex<Vec<FaultRule>>,
    /// Cancelled on shutdown, so hanging answers end.
    stopping: tokio_util::sync::CancellationToken,
    rng: Mutex<StdRng>,
    rendered: github::RenderedCommits,
}

type AppState = Arc<Shared>;

impl Shared {
    fn org(&self) -> Arc<Org> {
        self.org.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count(&self, source: Source) -> &Counters {
        &self.counters[&source]
    }

    /// The fault for this request, if a rule matches (counting down its `times`).
    fn fault(&self, source: Source, path: &str) -> Fault {
        let mut rules = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        for rule in rules.iter_mut() {
            if rule.source != source
                || rule.path.as_deref().is_some_and(|p| !path.contains(p))
                || rule.times == Some(0)
            {
                continue;
            }
            if let Some(n) = &mut rule.times {
                *n -= 1;
            }
            return rule.fault.clone();
        }
        Fault::None
    }
}

/// A running simulator. Dropping it stops the server.
pub struct RunningSim {
    addr: SocketAddr,
    shared: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the simulator on 127.0.0.1.
pub async fn start(opts: SimOptions) -> anyhow::Result<RunningSim> {
    let now = unix_now() as i64;
    let org = Org::generate(opts.profile, opts.seed, now);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|e| anyhow::anyhow!("simulator: cannot listen on 127.0.0.1:{}: {e}", opts.port))?;
    let addr = listener.local_addr()?;
    let rendered = github::RenderedCommits::new(&org, format!("http://{addr}/api/v3"));
    let shared = Arc::new(Shared {
        org: RwLock::new(Arc::new(org)),
        counters: Source::ALL
            .iter()
            .map(|s| (*s, Counters::default()))
            .collect(),
        github_endpoints: Mutex::new(BTreeMap::new()),
        request_log: Mutex::new(Vec::new()),
        limits: Mutex::new(GitHubLimits::default()),
        datadog_used: Mutex::new((0, Instant::now())),
        faults: Mutex::new(Vec::new()),
        stopping: tokio_util::sync::CancellationToken::new(),
        rng: Mutex::new(StdRng::seed_from_u64(opts.seed ^ 0x5eed)),
        rendered,
        opts,
    });
    let app = Router::new()
        .merge(github::routes())
        .merge(teamcity::routes())
        .merge(datadog::routes())
        .merge(jira::routes())
        .merge(registry::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            admission,
        ))
        .with_state(shared.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stop_rx.await;
        });
        if let Err(e) = server.await {
            tracing::error!("simulator stopped: {e}");
        }
    });
    Ok(RunningSim {
        addr,
        shared,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

impl RunningSim {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The generated organisation (ground truth for tests).
    pub fn org(&self) -> Arc<Org> {
        self.shared.org()
    }

    /// A config that points every source at this simulator.
    pub fn config(&self) -> Config {
        let org = self.org();
        let base = self.base_url();
        Config {
            environments: org.environments.clone(),
            gitops: GitOps {
                repo: org::GITOPS_REPO.into(),
                path: org::GITOPS_PATH.into(),
                history_days: org.window_days as u32,
                branch: None,
            },
            components: org
                .components
                .iter()
                .map(|c| Component {
                    name: c.name.clone(),
                    repo: c.repo.clone(),
                    image: c.image.clone(),
                    teamcity_build_type: Some(c.build_type.clone()),
                    datadog_service: Some(c.service.clone()),
                    branch: None,
                })
                .collect(),
            github: GitHubConfig {
                base_url: format!("{base}/api/v3"),
                graphql_url: Some(format!("{base}/api/graphql")),
                graphql: true,
                token_env: Some(GITHUB_TOKEN_ENV.into()),
                token_file: None,
                max_concurrency: 80,
                max_body_mib: 32,
            },
            teamcity: Some(TeamCityConfig {
                base_url: format!("{base}/tc"),
                token_env: Some(TEAMCITY_TOKEN_ENV.into()),
                token_file: None,
                builds_per_type: 5,
                max_concurrency: 8,
                max_body_mib: 16,
            }),
            datadog: Some(DatadogConfig {
                base_url: base.clone(),
                api_key_env: Some(DATADOG_API_KEY_ENV.into()),
                api_key_file: None,
                app_key_env: Some(DATADOG_APP_KEY_ENV.into()),
                app_key_file: None,
                queries: BTreeMap::from([
                    (
                        "error_rate".to_string(),
                        "sum:trace.http.request.errors{service:{service},env:{env}}.as_rate()"
                            .to_string(),
                    ),
                    (
                        "p95_ms".to_string(),
                        "p95:trace.http.request.duration{service:{service},env:{env}}".to_string(),
                    ),
                ]),
                window_minutes: 15,
                max_concurrency: 8,
                max_body_mib: 16,
            }),
            jira: Some(JiraConfig {
                base_url: format!("{base}/jira"),
                email_env: Some(JIRA_EMAIL_ENV.into()),
                email_file: None,
                token_env: Some(JIRA_TOKEN_ENV.into()),
                token_file: None,
                ticket_pattern: JiraConfig::DEFAULT_TICKET_PATTERN.into(),
                ticket_ignore: None,
                max_concurrency: 8,
                max_body_mib: 16,
            }),
            // Images pinned by digest alone are resolved through the registry.
            registries: org
                .components
                .iter()
                .any(|c| {
                    matches!(
                        c.style,
                        org::TagStyle::DigestOnly
                            | org::TagStyle::DigestUnlabelled
                            | org::TagStyle::Pinned
                    )
                })
                .then(|| RegistryConfig {
                    host: REGISTRY_HOST.into(),
                    base_url: Some(format!("{base}/registry")),
                    username_env: None,
                    username_file: None,
                    token_env: None,
                    token_file: None,
                    max_concurrency: 4,
                    max_body_mib: 4,
                })
                .into_iter()
                .collect(),
            store: StoreConfig::default(),
            cache: Default::default(),
            retention: Default::default(),
            schedule: Default::default(),
            ui: UiConfig::default(),
            keys: BTreeMap::new(),
            serve: Default::default(),
        }
    }

    /// The credentials the simulator accepts.
    pub fn secrets(&self) -> Secrets {
        Secrets {
            github_token: Some(GITHUB_TOKEN.into()),
            teamcity_token: Some(TEAMCITY_TOKEN.into()),
            datadog_api_key: Some(DATADOG_API_KEY.into()),
            datadog_app_key: Some(DATADOG_APP_KEY.into()),
            jira_email: Some(JIRA_EMAIL.into()),
            jira_token: Some(JIRA_TOKEN.into()),
            registries: Default::default(),
            warnings: vec![],
        }
    }

    /// The config as TOML (what `snaptop sim` prints), naming the secret variables.
    pub fn config_toml(&self) -> String {
        config_to_toml(&self.config())
    }

    /// The config as TOML with every secret in a file of `dir` (written, mode 0600), so
    /// that it works as it is, with nothing to export.
    pub fn config_toml_with_token_files(&self, dir: &std::path::Path) -> std::io::Result<String> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        let write = |name: &str, value: &str| -> std::io::Result<Option<std::path::PathBuf>> {
            let path = dir.join(name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            std::io::Write::write_all(&mut f, value.as_bytes())?;
            // An existing file keeps its mode: make it the one asked for.
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            Ok(Some(path))
        };
        let mut c = self.config();
        c.github.token_env = None;
        c.github.token_file = write("github-token", GITHUB_TOKEN)?;
        if let Some(tc) = &mut c.teamcity {
            tc.token_env = None;
            tc.token_file = write("teamcity-token", TEAMCITY_TOKEN)?;
        }
        if let Some(dd) = &mut c.datadog {
            dd.api_key_env = None;
            dd.api_key_file = write("datadog-api-key", DATADOG_API_KEY)?;
            dd.app_key_env = None;
            dd.app_key_file = write("datadog-app-key", DATADOG_APP_KEY)?;
        }
        if let Some(j) = &mut c.jira {
            j.email_env = None;
            j.email_file = write("jira-email", JIRA_EMAIL)?;
            j.token_env = None;
            j.token_file = write("jira-token", JIRA_TOKEN)?;
        }
        Ok(config_to_toml(&c))
    }

    /// The environment variables the printed config names, with the credentials the
    /// simulator accepts.
    pub fn secret_env(&self) -> [(&'static str, &'static str); 6] {
        [
            (GITHUB_TOKEN_ENV, GITHUB_TOKEN),
            (TEAMCITY_TOKEN_ENV, TEAMCITY_TOKEN),
            (DATADOG_API_KEY_ENV, DATADOG_API_KEY),
            (DATADOG_APP_KEY_ENV, DATADOG_APP_KEY),
            (JIRA_EMAIL_ENV, JIRA_EMAIL),
            (JIRA_TOKEN_ENV, JIRA_TOKEN),
        ]
    }

    /// `export VAR=value` lines for the simulator's credentials.
    pub fn env_exports(&self) -> String {
        self.secret_env()
            .iter()
            .map(|(k, v)| format!("export {k}={v}\n"))
            .collect()
    }

    /// Makes `source` misbehave until set back to [`Fault::None`] (which also clears
    /// its narrower rules).
    pub fn set_fault(&self, source: Source, fault: Fault) {
        let mut rules = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        rules.retain(|r| r.source != source);
        if fault != Fault::None {
            rules.push(FaultRule {
                source,
                path: None,
                fault,
                times: None,
            });
        }
    }

    /// Makes requests of `source` whose path contains `path` misbehave, the next `times`
    /// of them (None: until cleared). Narrow rules are checked before broad ones.
    pub fn set_fault_on(&self, source: Source, path: &str, fault: Fault, times: Option<u64>) {
        let mut rules = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        rules.insert(
            0,
            FaultRule {
                source,
                path: Some(path.to_string()),
                fault,
                times,
            },
        );
    }

    /// What the simulator saw for `source`.
    pub fn counts(&self, source: Source) -> SourceCounts {
        let c = self.shared.count(source);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SourceCounts {
            requests: get(&c.requests),
            not_modified: get(&c.not_modified),
            primary_limited: get(&c.primary_limited),
            secondary_limited: get(&c.secondary_limited),
            injected_faults: get(&c.injected_faults),
        }
    }

    /// GitHub requests per endpoint family ("commits", "contents", "graphql", ...).
    pub fn github_endpoint_counts(&self) -> BTreeMap<String, u64> {
        self.shared
            .github_endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every request that reached a source since the start or the last
    /// [`reset_counts`](Self::reset_counts), in the order answered.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared
            .request_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets all counts (between benchmark phases).
    pub fn reset_counts(&self) {
        self.shared
            .request_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for c in self.shared.counters.values() {
            for a in [
                &c.requests,
                &c.not_modified,
                &c.primary_limited,
                &c.secondary_limited,
                &c.injected_faults,
            ] {
                a.store(0, Ordering::Relaxed);
            }
        }
        self.shared
            .github_endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        self.shared.stopping.cancel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.shared.stopping.cancel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Renders a config as TOML with the keys of the documented contract.
pub fn config_to_toml(c: &Config) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = String::new();
    out.push_str(&format!(
        "environments = [{}]\n\n[gitops]\nrepo = {}\npath = {}\nhistory_days = {}\n",
        c.environments
            .iter()
            .map(|e| q(e))
            .collect::<Vec<_>>()
            .join(", "),
        q(&c.gitops.repo),
        q(&c.gitops.path),
        c.gitops.history_days
    ));
    for comp in &c.components {
        out.push_str(&format!(
            "\n[[components]]\nname = {}\nrepo = {}\nimage = {}\n",
            q(&comp.name),
            q(&comp.repo),
            q(&comp.image)
        ));
        if let Some(bt) = &comp.teamcity_build_type {
            out.push_str(&format!("teamcity_build_type = {}\n", q(bt)));
        }
        if let Some(s) = &comp.datadog_service {
            out.push_str(&format!("datadog_service = {}\n", q(s)));
        }
    }
    let opt = |k: &str, v: &Option<String>| {
        v.as_ref()
            .map(|v| format!("{k} = {}\n", q(v)))
            .unwrap_or_default()
    };
    let file = |k: &str, v: &Option<std::path::PathBuf>| {
        v.as_ref()
            .map(|v| format!("{k} = {}\n", q(&v.display().to_string())))
            .unwrap_or_default()
    };
    out.push_str(&format!(
        "\n[github]\nbase_url = {}\n{}{}",
        q(&c.github.base_url),
        opt("graphql_url", &c.github.graphql_url),
        opt("token_env", &c.github.token_env) + &file("token_file", &c.github.token_file)
    ));
    if let Some(tc) = &c.teamcity {
        out.push_str(&format!(
            "\n[teamcity]\nbase_url = {}\n{}",
            q(&tc.base_url),
            opt("token_env", &tc.token_env) + &file("token_file", &tc.token_file)
        ));
    }
    if let Some(dd) = &c.datadog {
        out.push_str(&format!(
            "\n[datadog]\nbase_url = {}\n{}{}\n[datadog.queries]\n",
            q(&dd.base_url),
            opt("api_key_env", &dd.api_key_env) + &file("api_key_file", &dd.api_key_file),
            opt("app_key_env", &dd.app_key_env) + &file("app_key_file", &dd.app_key_file)
        ));
        for (k, v) in &dd.queries {
            out.push_str(&format!("{k} = {}\n", q(v)));
        }
    }
    if let Some(j) = &c.jira {
        out.push_str(&format!(
            "\n[jira]\nbase_url = {}\n{}{}ticket_pattern = {}\n",
            q(&j.base_url),
            opt("email_env", &j.email_env) + &file("email_file", &j.email_file),
            opt("token_env", &j.token_env) + &file("token_file", &j.token_file),
            q(&j.ticket_pattern)
        ));
    }
    for r in &c.registries {
        out.push_str(&format!(
            "\n[[registries]]\nhost = {}\n{}max_concurrency = {}\nmax_body_mib = {}\n",
            q(&r.host),
            opt("base_url", &r.base_url),
            r.max_concurrency,
            r.max_body_mib
        ));
    }
    out
}

// --- the request path -----------------------------------------------------------------

/// Every request: count it, inject faults, apply GitHub's limits, add latency.
async fn admission(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some(source) = Source::of_path(&path) else {
        return next.run(req).await;
    };
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.to_string());
    let resp = answer(&state, source, &path, req, next).await;
    let mut log = state.request_log.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() < REQUEST_LOG_CAP {
        log.push(LoggedRequest {
            source,
            method,
            target,
            status: resp.status().as_u16(),
        });
    }
    resp
}

async fn answer(
    state: &AppState,
    source: Source,
    path: &str,
    req: Request,
    next: Next,
) -> Response {
    let path = path.to_string();
    let state = state.clone();
    state.count(source).requests.fetch_add(1, Ordering::Relaxed);
    let fault = state.fault(source, &path);
    if let Some(resp) = injected_fault(&state, &fault, req.uri(), req.headers()).await {
        state
            .count(source)
            .injected_faults
            .fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(state.opts.latency).await;
        return resp;
    }
    let resp = if source == Source::GitHub {
        github::admit(state.clone(), req, next).await
    } else {
        if source == Source::Datadog
            && let Some(resp) = datadog_budget(&state)
        {
            return resp;
        }
        tokio::time::sleep(state.opts.latency).await;
        let mut resp = next.run(req).await;
        if source == Source::Datadog {
            datadog_headers(&state, resp.headers_mut());
        }
        resp
    };
    if fault == Fault::None || resp.status() != StatusCode::OK {
        return resp;
    }
    state
        .count(source)
        .injected_faults
        .fetch_add(1, Ordering::Relaxed);
    mangle(&state, source, fault, resp).await
}

/// A body fault applied to a real 200 answer, its status and headers kept.
async fn mangle(state: &Shared, source: Source, fault: Fault, resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts.headers.remove("content-length");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let new_body: Body = match fault {
        Fault::Garbage => Body::from("<html><body>\u{1b}[31mupstream proxy error</body></html>"),
        Fault::EmptyObject => Body::from("{}"),
        Fault::WrongShape => Body::from(if text.trim_start().starts_with('[') {
            r#"{"items":[],"total_count":0}"#
        } else {
            "[]"
        }),
        Fault::CutBody => {
            let half = bytes.slice(..bytes.len() / 2);
            // Promise the whole length, send half, then break the connection.
            parts.headers.insert(
                "content-length",
                HeaderValue::from(bytes.len().max(2) as u64),
            );
            let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
                vec![Ok(half), Err(std::io::Error::other("connection reset"))];
            Body::from_stream(futures::stream::iter(chunks))
        }
        Fault::ForeignLink(url) => match source {
            Source::TeamCity => {
                let mut v: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("nextHref".into(), serde_json::Value::String(url));
                    // A next page exists: the client has more to fetch.
                    obj.insert(
                        "count".into(),
                        serde_json::json!(
                            obj.get("build")
                                .and_then(|b| b.as_array())
                                .map_or(0, |b| b.len())
                        ),
                    );
                }
                Body::from(v.to_string())
            }
            _ => {
                if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
                    parts.headers.insert("link", v);
                }
                Body::from(bytes)
            }
        },
        _ => Body::from(bytes),
    };
    let _ = state;
    Response::from_parts(parts, new_body)
}

async fn injected_fault(
    state: &Shared,
    fault: &Fault,
    uri: &axum::http::Uri,
    request_headers: &HeaderMap,
) -> Option<Response> {
    match fault {
        Fault::None
        | Fault::Garbage
        | Fault::EmptyObject
        | Fault::WrongShape
        | Fault::CutBody
        | Fault::ForeignLink(_) => {}
        Fault::Hang => {
            // Until the simulator stops (a test's client gives up long before).
            state.stopping.cancelled().await;
            return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
        Fault::StallBody => {
            let stopping = state.stopping.clone();
            use futures::StreamExt;
            let stream = futures::stream::once(async {
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"["))
            })
            .chain(futures::stream::once(async move {
                stopping.cancelled().await;
                Err(std::io::Error::other("stopped"))
            }));
            return Some(streamed_json(Body::from_stream(stream)));
        }
        Fault::Huge(bytes) => {
            let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
            let n = bytes / chunk.len() + 1;
            let stream = futures::stream::iter(
                std::iter::once(Ok::<_, std::io::Error>(axum::body::Bytes::from_static(
                    b"[",
                )))
                .chain((0..n).map(move |_| Ok(chunk.clone())))
                .chain(std::iter::once(Ok(axum::body::Bytes::from_static(b"]")))),
            );
            return Some(streamed_json(Body::from_stream(stream)));
        }
        Fault::SecondaryLimit => {
            return Some(
                (
                    StatusCode::FORBIDDEN,
                    [
                        ("content-type", "application/json"),
                        ("x-ratelimit-remaining", "4000"),
                    ],
                    r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:SIM.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits","status":"403"}"#,
                )
                    .into_response(),
            );
        }
        Fault::RedirectTo(url) => {
            let location = if url.is_empty() {
                uri.to_string()
            } else {
                url.clone()
            };
            return Some(
                Response::builder()
                    .status(StatusCode::FOUND)
                    .header("location", location)
                    .body(Body::empty())
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            );
        }
        Fault::EchoHeaders => {
            let echoed: String = request_headers
                .iter()
                .map(|(k, v)| format!("{k}: {}<br>\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            return Some(
                (
                    StatusCode::BAD_GATEWAY,
                    [("content-type", "text/html")],
                    format!("<html><body><h1>502 Bad Gateway</h1><p>Your request:</p>{echoed}</body></html>"),
                )
                    .into_response(),
            );
        }
        Fault::ServerError => {
            return Some(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [("content-type", "application/json")],
                    r#"{"message":"Internal Server Error"}"#,
                )
                    .into_response(),
            );
        }
        Fault::Unauthorized => {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [("content-type", "application/json")],
                    r#"{"message":"Bad credentials"}"#,
                )
                    .into_response(),
            );
        }
        &Fault::RateLimited(secs) => {
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        ("content-type", "application/json".to_string()),
                        ("retry-after", secs.to_string()),
                    ],
                    r#"{"message":"Too Many Requests"}"#,
                )
                    .into_response(),
            );
        }
    }
    let rate = state.opts.fail_rate;
    if rate > 0.0 {
        let mut rng = state.rng.lock().unwrap_or_else(|e| e.into_inner());
        if rng.random_bool(rate.clamp(0.0, 1.0)) {
            let status = if rng.random_bool(0.5) {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Some((status, "upstream temporarily unavailable").into_response());
        }
    }
    None
}

/// A 200 JSON answer whose body is streamed (no `Content-Length`).
fn streamed_json(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn datadog_budget(state: &Shared) -> Option<Response> {
    let mut used = state.datadog_used.lock().unwrap_or_else(|e| e.into_inner());
    if used.1.elapsed() >= state.opts.datadog_period {
        *used = (0, Instant::now());
    }
    used.0 += 1;
    if used.0 <= state.opts.datadog_budget {
        return None;
    }
    drop(used);
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        [("content-type", "application/json")],
        r#"{"errors":["Rate limit of 1000 requests in 3600 seconds reached. Please try again later."]}"#,
    )
        .into_response();
    datadog_headers(state, resp.headers_mut());
    Some(resp)
}

/// Datadog's `X-RateLimit-*` headers (`Reset` is seconds until the period ends).
fn datadog_headers(state: &Shared, headers: &mut HeaderMap) {
    let used = state.datadog_used.lock().unwrap_or_else(|e| e.into_inner());
    let left = state.opts.datadog_budget.saturating_sub(used.0);
    let reset = state
        .opts
        .datadog_period
        .saturating_sub(used.1.elapsed())
        .as_secs();
    for (k, v) in [
        ("x-ratelimit-limit", state.opts.datadog_budget.to_string()),
        (
            "x-ratelimit-period",
            state.opts.datadog_period.as_secs().to_string(),
        ),
        ("x-ratelimit-remaining", left.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-name", "query".to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [("content-type", "application/json")],
        r#"{"message":"Not Found"}"#,
    )
        .into_response()
}

// --- helpers shared by the sources ----------------------------------------------------

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2024-01-02T03:04:05Z`.
fn iso(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The query string decoded into pairs (repeated keys: last wins).
fn query_map(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// A fast hash of a response body (SipHash reads 8 bytes a step; FNV-1a one).
fn body_hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// A JSON answer with a body-derived ETag; `If-None-Match` that matches gets a 304.
fn json_with_etag(
    state: &Shared,
    source: Source,
    headers: &HeaderMap,
    body: String,
    extra: Vec<(&'static str, String)>,
) -> Response {
    let etag = format!("W/\"{:016x}\"", body_hash(body.as_bytes()));
    let matches = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag.trim_start_matches("W/")
            })
        });
    let mut builder = Response::builder()
        .header("etag", &etag)
        .header("cache-control", "private, max-age=60, s-maxage=60")
        .header("vary", "Accept, Authorization, Cookie, X-GitHub-OTP");
    for (k, v) in extra {
        builder = builder.header(k, v);
    }
    if matches {
        state
            .count(source)
            .not_modified
            .fetch_add(1, Ordering::Relaxed);
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    builder
        .status(StatusCode::OK)
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn json_status(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response()
}

/// Splits at commas outside `()`, `{}` and `[]` (Datadog queries, TeamCity locators).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_commas_only() {
        assert_eq!(
            split_top_level("sum:a{service:x,env:y}.as_rate(),p95:b{service:x,env:y}"),
            ["sum:a{service:x,env:y}.as_rate()", "p95:b{service:x,env:y}"]
        );
        assert_eq!(
            split_top_level("buildType:(id:X),count:5"),
            ["buildType:(id:X)", "count:5"]
        );
    }

    #[test]
    fn printed_config_parses_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sim = start(SimOptions::default()).await.unwrap();
            let text = sim.config_toml();
            let parsed = Config::parse(&text, std::path::Path::new("sim.toml")).unwrap();
            assert_eq!(parsed, sim.config());
            sim.shutdown().await;
        });
    }
}
