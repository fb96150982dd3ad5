//! One snapshot run: stages run concurrently where their inputs allow, results are
//! gathered as they arrive (so a cancelled or partly failed run still yields what it
//! has), joined locally, and committed to the store in one transaction.
//!
//! ```text
//!  GitHub budget ─┬─ deployments (per kustomization file: history → contents) ─┐
//!                 └─ repos (commits, tags, PRs) ─ tickets (Jira) ──────────────┼─ correlation ─ commit
//!  builds (TeamCity) ─────────────────────────────────────────────────────────┤
//!  health (Datadog) ──────────────────────────────────────────────────────────┘
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::correlate::{CommitGraph, resolve_version};
use super::events::{EngineEvent, PROGRESS_INTERVAL_MS, Progress, Stage};
use super::model::{
    Build, Cell, DeployEvent, Failure, Part, Resolved, RunStats, RunSummary, Snapshot, Ticket,
    Trigger,
};
use super::progress::{LearnedDurations, Tracker};
use crate::cache::HttpCache;
use crate::config::{Component, Config, Secrets};
use crate::sources::datadog::{Datadog, HealthQuery, render_query};
use crate::sources::github::{CommitItem, FileAt, GitHub, PullItem, format_rfc3339, parse_rfc3339};
use crate::sources::http::{ClientContext, FetchError, LogSink, SourceClient, Timeouts};
use crate::sources::jira::{Jira, KEYS_PER_QUERY, ticket_keys};
use crate::sources::kustomize;
use crate::sources::registry::Registries;
use crate::sources::teamcity::TeamCity;
use crate::store::{CommitNode, Store};

/// Pages of older history walked to find when a long-unchanged version was set.
const MAX_WALK_BACK_PAGES: usize = 5;

/// What a run needs. Cheap to clone.
#[derive(Clone)]
pub struct RunEnv {
    pub config: Arc<Config>,
    pub secrets: Secrets,
    pub store: Store,
    /// The process's HTTP cache over `store`, opened once at startup and shared with
    /// whoever shows its counters: its memory tier and counters outlive runs.
    pub cache: HttpCache,
    pub events: mpsc::Sender<EngineEvent>,
    /// First backoff of transient retries (tests shorten it).
    pub retry_min_delay: Duration,
    /// The run ends (partial, "timed out") after this long; no rate-limit wait is begun
    /// that would end later.
    pub timeout: Option<Duration>,
    /// Per-request timeouts (tests shorten them).
    pub timeouts: Timeouts,
}

impl RunEnv {
    pub fn new(
        config: Arc<Config>,
        secrets: Secrets,
        store: Store,
        cache: HttpCache,
        events: mpsc::Sender<EngineEvent>,
    ) -> RunEnv {
        RunEnv {
            cache,
            config,
            secrets,
            store,
            events,
            retry_min_delay: Duration::from_millis(super::RETRY_MIN_DELAY_MS),
            timeout: None,
            timeouts: Timeouts::default(),
        }
    }
}

/// Why a run produced no snapshot at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The version a kustomization file names for the component's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct VersionRef {
    /// `digest` if set, else `newTag`.
    version: String,
    /// `newTag`, used to resolve the version to a source commit.
    tag: Option<String>,
}

impl VersionRef {
    /// The digest the image is pinned by (`version` is the digest whenever one is set).
    fn digest(&self) -> Option<&str> {
        (self.tag.as_deref() != Some(self.version.as_str())).then_some(self.version.as_str())
    }
}

/// Where a deployed version comes from in its source repository.
enum Origin {
    Commit {
        sha: String,
        resolved: Option<Resolved>,
    },
    Unknown(Unknown),
}

enum Unknown {
    /// A digest nothing in the GitOps history ties to a tag: the registry may know.
    Digest(String),
    Other(String),
}

/// Which parts of a cell this run fetched (or had nothing to fetch).
#[derive(Debug, Clone, Copy)]
struct Known {
    deployment: bool,
    build: bool,
    health: bool,
}

/// Fills what this run could not fetch from the cell of the last snapshot, marking each
/// carried part with when it was fetched. Tickets belong to a version: they are carried
/// only while the deployed version is the one they were found for; a ticket's Jira status
/// is carried when Jira could not be asked this time.
fn carry_forward(
    cell: &mut Cell,
    before: &Cell,
    before_at: OffsetDateTime,
    known: Known,
    jira: bool,
) {
    let as_of = |part: Part| crate::engine::model::AsOf(before.as_of(part, before_at));
    if !known.deployment && before.tag.is_some() {
        cell.tag = before.tag.clone();
        cell.deployed_at = before.deployed_at;
        cell.deploy_commit = before.deploy_commit.clone();
        cell.resolved = before.resolved.clone();
        cell.source_commit = before.source_commit.clone();
        cell.events = before.events.clone();
        cell.unresolved = before.unresolved.clone();
        cell.stale.insert(Part::Deployment, as_of(Part::Deployment));
    }
    if !known.build && before.build.is_some() {
        cell.build = before.build.clone();
        cell.stale.insert(Part::Build, as_of(Part::Build));
    }
    if !known.health && before.health.values().any(Option::is_some) {
        cell.health = before.health.clone();
        cell.stale.insert(Part::Health, as_of(Part::Health));
    }
    let same_version = cell.tag.is_some() && cell.tag == before.tag;
    match (&mut cell.tickets, &before.tickets) {
        (None, Some(list)) if same_version => {
            cell.tickets = Some(list.clone());
            cell.unresolved = None;
            if cell.source_commit.is_none() {
                cell.source_commit = before.source_commit.clone();
                cell.resolved = before.resolved.clone();
            }
            cell.stale.insert(Part::Tickets, as_of(Part::Tickets));
        }
        (Some(now), Some(list)) if jira => {
            let mut carried = false;
            for t in now.iter_mut().filter(|t| t.in_jira.is_none()) {
                if let Some(old) = list.iter().find(|o| o.key == t.key && o.in_jira.is_some()) {
                    t.status = old.status.clone();
                    t.summary = old.summary.clone();
                    t.in_jira = old.in_jira;
                    carried = true;
                }
            }
            if carried {
                cell.stale.insert(Part::Tickets, as_of(Part::Tickets));
            }
        }
        _ => {}
    }
}

/// A tag on commit `sha` (the newest-looking by name when there are several).
fn tag_on(tags: &HashMap<String, String>, sha: &str) -> Option<String> {
    tags.iter()
        .filter(|(_, s)| s.as_str() == sha)
        .map(|(t, _)| t.clone())
        .max()
}

/// The tag a digest pin replaced in the commit that set it: the file held `newTag: T`
/// and no digest just before (pinning a deployed tag to its digest).
fn replaced_tag(state: &FileState, current: &VersionRef) -> Option<String> {
    let same = |c: &FileCommit| c.version.as_ref().map(|v| &v.version) == Some(&current.version);
    let before = match state.commits.iter().position(|c| !same(c)) {
        Some(i) => state.commits[i].version.clone(),
        None => state.base.clone().flatten(),
    }?;
    match before.digest() {
        None => before.tag,
        Some(_) => None,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileCommit {
    sha: String,
    /// Committer date, unix seconds.
    date: i64,
    parent: Option<String>,
    /// None: the file or the image entry is absent at this commit.
    version: Option<VersionRef>,
}

/// Incremental state of one kustomization file's history (stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileState {
    image: String,
    /// `since` of the listing; kept fixed so the first page's URL (and ETag) is stable.
    anchor: String,
    /// Newest first.
    commits: Vec<FileCommit>,
    /// The version before the oldest commit: Some(None) = the file did not exist;
    /// None = not known yet.
    base: Option<Option<VersionRef>>,
}

/// The gitops branch's newest commit before any file was listed.
struct GitopsHead {
    sha: String,
    /// Every file was synced at this same commit by an earlier run.
    unchanged: bool,
}

/// Tickets looked up before the pull requests were known.
#[derive(Default)]
struct Prefetched {
    asked: BTreeSet<String>,
    found: BTreeMap<String, Ticket>,
}

/// The ticket keys the last complete run looked up.
const TICKET_KEYS_STATE: &str = "jira-keys";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RepoState {
    anchor: String,
}

#[derive(Default)]
struct Collected {
    files: HashMap<(String, String), FileState>,
    graphs: HashMap<String, CommitGraph>,
    tags: HashMap<String, HashMap<String, String>>,
    pulls: HashMap<String, Vec<PullItem>>,
    /// Source repositories whose commits, tags or pull requests could not be read.
    repos_failed: HashSet<String>,
    builds: HashMap<String, Build>,
    /// Components whose build TeamCity answered (with a build or with none).
    builds_known: HashSet<String>,
    health: HashMap<(String, String), Option<f64>>,
    /// Environments whose health Datadog answered.
    health_known: HashSet<String>,
    /// Tickets Jira returned.
    tickets: BTreeMap<String, Ticket>,
    /// Keys of the batches Jira answered: one of these it did not return is not in Jira.
    jira_answered: BTreeSet<String>,
    /// (image, digest) → the registry's `org.opencontainers.image.revision` label (None:
    /// the image has none), or why it could not be read.
    registry: HashMap<(String, String), Result<Option<String>, String>>,
    /// (repo, commit) whose history could not be fetched for correlation.
    history_failed: HashSet<(String, String)>,
    failures: Vec<Failure>,
}

struct Clients {
    github: GitHub,
    teamcity: Option<TeamCity>,
    datadog: Option<Datadog>,
    jira: Option<Jira>,
    registries: Registries,
}

impl Clients {
    fn all(&self) -> Vec<&SourceClient> {
        let mut v = vec![&self.github.rest];
        v.extend(self.teamcity.as_ref().map(|c| c.client()));
        v.extend(self.datadog.as_ref().map(|c| c.client()));
        v.extend(self.jira.as_ref().map(|c| c.client()));
        v.extend(self.registries.client());
        v
    }
}

struct Run {
    env: RunEnv,
    clients: Clients,
    tracker: Arc<Tracker>,
    collected: Mutex<Collected>,
    now: OffsetDateTime,
    window_start: OffsetDateTime,
    anchor: String,
    ticket_pattern: Option<regex::Regex>,
    ticket_ignore: Option<regex::Regex>,
    /// The last committed snapshot: what this run could not fetch is carried from it.
    previous: Option<Snapshot>,
    /// Registry lookups begun while the deployments were read, and their keys.
    registry_started: Mutex<HashSet<(String, String)>>,
    registry_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one snapshot to the end (or until `cancel`), stores it, and returns it.
pub async fn run_snapshot(
    env: RunEnv,
    trigger: Trigger,
    cancel: CancellationToken,
) -> Result<(RunSummary, Snapshot), (RunSummary, RunError)> {
    let started_at = OffsetDateTime::now_utc();
    let run_id = match env.store.next_run_id() {
        Ok(id) => id,
        Err(e) => {
            return Err((
                failed_summary(0, started_at, trigger, &e.to_string()),
                e.into(),
            ));
        }
    };
    let fail = |e: RunError| {
        (
            failed_summary(run_id, started_at, trigger, &e.to_string()),
            e,
        )
    };
    let events = env.events.clone();
    let redactor = env.secrets.redactor();
    // The run's log is also kept with it, for the history's detail view.
    let kept: Arc<Mutex<Vec<crate::engine::events::LogLine>>> = Arc::default();
    let keep = kept.clone();
    let log = LogSink::new(move |line| {
        {
            let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
            if k.len() < crate::engine::model::RUN_LOG_LINES {
                k.push(line.clone());
            }
        }
        let _ = events.try_send(EngineEvent::Log(line));
    })
    .redacting(redactor.clone());
    let deadline = env.timeout.map(|t| std::time::Instant::now() + t);
    let ctx = ClientContext {
        log,
        redactor,
        deadline,
        retry_min_delay: env.retry_min_delay,
        timeouts: env.timeouts,
        cache: Some(env.cache.clone()),
        // Someone asked for this run: answers are confirmed with the sources (a 304 costs
        // GitHub nothing) rather than trusted for their max-age. Scheduled runs may use
        // fresh answers as they are.
        reload_before: (trigger != Trigger::Scheduled)
            .then(|| (started_at.unix_timestamp_nanos() / 1_000_000) as i64),
    };
    env.cache.begin_run();
    let clients =
        build_clients(&env.config, &env.secrets, &ctx).map_err(|e| fail(RunError::Setup(e)))?;
    let learned: LearnedDurations = env
        .store
        .state(LearnedDurations::STORE_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    let history_days = i64::from(env.config.gitops.history_days.max(1));
    let window_start = started_at - time::Duration::days(history_days);
    let anchor = format_rfc3339(window_start.replace_time(time::Time::MIDNIGHT));
    let ticket_pattern = env
        .config
        .jira
        .as_ref()
        .map(|j| j.ticket_pattern.as_str())
        .or(Some(crate::config::JiraConfig::DEFAULT_TICKET_PATTERN))
        .and_then(|p| regex::Regex::new(p).ok());
    let ticket_ignore = env
        .config
        .jira
        .as_ref()
        .and_then(|j| j.ticket_ignore.as_deref())
        .and_then(|p| regex::Regex::new(p).ok());
    let run = Arc::new(Run {
        env: env.clone(),
        clients,
        tracker: Arc::new(Tracker::new()),
        collected: Mutex::new(Collected::default()),
        now: started_at,
        window_start,
        anchor,
        ticket_pattern,
        ticket_ignore,
        previous: env.store.latest_or_fallback().ok().and_then(|l| l.snapshot),
        registry_started: Mutex::default(),
        registry_tasks: Mutex::default(),
    });

    let _ = env
        .events
        .send(EngineEvent::Started(Box::new(
            run.progress(run_id, trigger, started_at, &learned),
        )))
        .await;
    let emitter_stop = CancellationToken::new();
    let emitter = tokio::spawn(emit_progress(
        run.clone(),
        run_id,
        trigger,
        started_at,
        learned.clone(),
        emitter_stop.clone(),
    ));

    let work = run.clone().all_stages();
    let timed_out = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        _ = work => Ended::Done,
        _ = cancel.cancelled() => Ended::Cancelled,
        _ = timed_out => Ended::TimedOut,
    };
    let cancelled = ended == Ended::Cancelled;
    if ended == Ended::TimedOut {
        let secs = env.timeout.unwrap_or_default().as_secs();
        run.collect(|c| {
            c.failures.push(Failure {
                source: "snaptop".into(),
                endpoint: "run".into(),
                status: None,
                message: format!(
                    "timed out after {secs}s: what was fetched is kept, the rest is unknown"
                ),
            })
        });
    }
    emitter_stop.cancel();
    let _ = emitter.await;
    // Lookups still running belong to this run only (they hold it): a cancelled or
    // timed-out run ends them.
    for task in std::mem::take(&mut *lock(&run.registry_tasks)) {
        task.abort();
    }

    run.clients.github.settle().await;
    let mut snapshot = run.assemble(run_id, started_at, cancelled);
    mark_served_stale(&mut snapshot, &run.clients);
    let summary = RunSummary {
        id: run_id,
        started_at,
        duration_ms: snapshot.stats.duration_ms,
        trigger,
        requests: snapshot.stats.requests,
        not_modified: snapshot.stats.not_modified,
        cache_hits: snapshot.stats.cache_hits,
        errors: snapshot.failures.len() as u64,
        partial: snapshot.partial,
        cancelled,
        error: None,
        new_deployments: moved_cells(run.previous.as_ref(), &snapshot),
    };
    env.store
        .commit_run(&summary, Some(&snapshot))
        .map_err(|e| fail(e.into()))?;
    let detail = crate::engine::model::RunDetail::of(
        Some(&snapshot),
        std::mem::take(&mut *kept.lock().unwrap_or_else(|p| p.into_inner())),
    );
    if let Err(e) = env.store.put_run_detail(run_id, &detail) {
        tracing::warn!("cannot keep the details of run {run_id}: {e}");
    }
    if !snapshot.partial {
        let mut learned = learned;
        learned.learn(&run.tracker.stage_ends(), run.tracker.elapsed());
        let _ = env.store.put_state(LearnedDurations::STORE_KEY, &learned);
    }
    let cache = env.cache.clone();
    let _ = tokio::task::spawn_blocking(move || cache.end_run(run_id)).await;
    env.store.flush().await.map_err(|e| fail(e.into()))?;
    Ok((summary, snapshot))
}

/// Marks the parts whose source answered from an expired cache entry (it was down): the
/// value shown is the source's last word, as of when it gave it, never a fresh one.
fn mark_served_stale(snapshot: &mut Snapshot, clients: &Clients) {
    let at = |since: Option<i64>| {
        since
            .and_then(|ms| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            })
            .map(crate::engine::model::AsOf)
    };
    let github = at(clients.github.rest.stale_since());
    let teamcity = at(clients
        .teamcity
        .as_ref()
        .and_then(|t| t.client().stale_since()));
    if github.is_none() && teamcity.is_none() {
        return;
    }
    snapshot
        .failures
        .extend(clients.github.rest.stale_failures());
    if let Some(t) = &clients.teamcity {
        snapshot.failures.extend(t.client().stale_failures());
    }
    for cell in snapshot.cells.values_mut().flat_map(|r| r.values_mut()) {
        let marks = [
            (Part::Deployment, github, cell.tag.is_some()),
            (Part::Tickets, github, cell.tickets.is_some()),
            (Part::Build, teamcity, cell.build.is_some()),
        ];
        for (part, as_of, has) in marks {
            if let Some(as_of) = as_of.filter(|_| has) {
                keep_older(&mut cell.stale, part, as_of);
            }
        }
    }
    snapshot.partial = true;
}

/// Keeps the older of a carried time and `as_of`.
fn keep_older(
    stale: &mut BTreeMap<Part, crate::engine::model::AsOf>,
    part: Part,
    as_of: crate::engine::model::AsOf,
) {
    let e = stale.entry(part).or_insert(as_of);
    if as_of < *e {
        *e = as_of;
    }
}

/// Cells whose deploying commit differs from the previous snapshot's. Unknown without a
/// previous snapshot, and for a partial run that saw no move (it may have missed one).
fn moved_cells(previous: Option<&Snapshot>, snapshot: &Snapshot) -> Option<u32> {
    let previous = previous?;
    let mut moved = 0u32;
    for (env, row) in &snapshot.cells {
        for (component, cell) in row {
            let before = previous
                .cell(env, component)
                .and_then(|c| c.deploy_commit.as_ref());
            if cell.deploy_commit.is_some() && cell.deploy_commit.as_ref() != before {
                moved += 1;
            }
        }
    }
    (moved > 0 || !snapshot.partial).then_some(moved)
}

fn failed_summary(
    id: u64,
    started_at: OffsetDateTime,
    trigger: Trigger,
    error: &str,
) -> RunSummary {
    RunSummary {
        id,
        started_at,
        duration_ms: (OffsetDateTime::now_utc() - started_at)
            .whole_milliseconds()
            .max(0) as u64,
        trigger,
        requests: 0,
        not_modified: 0,
        cache_hits: 0,
        errors: 1,
        partial: false,
        cancelled: false,
        error: Some(error.to_string()),
        new_deployments: None,
    }
}

/// How the stages ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Done,
    Cancelled,
    TimedOut,
}

fn build_clients(
    config: &Config,
    secrets: &Secrets,
    ctx: &ClientContext,
) -> Result<Clients, String> {
    Ok(Clients {
        github: GitHub::new(config, secrets, ctx)?,
        teamcity: config
            .teamcity
            .as_ref()
            .map(|c| TeamCity::new(c, secrets, ctx))
            .transpose()?,
        datadog: config
            .datadog
            .as_ref()
            .map(|c| Datadog::new(c, secrets, ctx))
            .transpose()?,
        jira: config
            .jira
            .as_ref()
            .map(|c| Jira::new(c, secrets, ctx))
            .transpose()?,
        registries: Registries::new(&config.registries, secrets, ctx)?,
    })
}

/// Sends the latest [`Progress`] at most every [`PROGRESS_INTERVAL_MS`], only when it changed.
async fn emit_progress(
    run: Arc<Run>,
    run_id: u64,
    trigger: Trigger,
    started_at: OffsetDateTime,
    learned: LearnedDurations,
    stop: CancellationToken,
) {
    let mut last: Option<Progress> = None;
    let mut last_states: Vec<super::events::StageState> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        run.tracker.take_dirty();
        let p = run.progress(run_id, trigger, started_at, &learned);
        let changed = last.as_ref().is_none_or(|l| !same_progress(l, &p));
        // Cells change when a stage ends: the matrix follows.
        let states: Vec<_> = p.stages.iter().map(|s| s.state).collect();
        if states != last_states {
            let done = |s: &Vec<super::events::StageState>| {
                s.iter()
                    .filter(|s| {
                        !matches!(
                            s,
                            super::events::StageState::Pending | super::events::StageState::Running
                        )
                    })
                    .count()
            };
            if done(&states) > done(&last_states) {
                let so_far = run.assemble(run_id, started_at, false);
                let _ = run
                    .env
                    .events
                    .try_send(EngineEvent::Provisional(Box::new(so_far)));
            }
            last_states = states;
        }
        if changed {
            // A full channel drops this one: the next tick carries newer numbers.
            let _ = run
                .env
                .events
                .try_send(EngineEvent::Progress(Box::new(p.clone())));
            last = Some(p);
        }
    }
}

/// Equal apart from the ETA, which moves every tick.
fn same_progress(a: &Progress, b: &Progress) -> bool {
    a.stages == b.stages
        && a.in_flight == b.in_flight
        && a.requests == b.requests
        && a.not_modified == b.not_modified
        && a.cache_hits == b.cache_hits
        && a.budgets == b.budgets
        && a.eta.map(|d| d.as_secs()) == b.eta.map(|d| d.as_secs())
}

impl Run {
    fn progress(
        &self,
        run_id: u64,
        trigger: Trigger,
        started_at: OffsetDateTime,
        learned: &LearnedDurations,
    ) -> Progress {
        let (fraction, eta) = self.tracker.estimate(learned);
        let clients = self.clients.all();
        let sum = |f: fn(&crate::sources::http::Counters) -> u64| {
            clients.iter().map(|c| f(&c.counters())).sum::<u64>()
        };
        use std::sync::atomic::Ordering::Relaxed;
        Progress {
            run_id,
            trigger,
            started_at,
            stages: self.tracker.stages(),
            fraction,
            eta,
            in_flight: sum(|c| c.in_flight.load(Relaxed)) as u32,
            requests: sum(|c| c.requests.load(Relaxed)),
            not_modified: sum(|c| c.not_modified.load(Relaxed)),
            cache_hits: sum(|c| c.cache_hits.load(Relaxed)),
            budgets: clients.iter().flat_map(|c| c.budgets()).collect(),
        }
    }

    fn fail(&self, e: &FetchError) {
        self.collected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failures
            .push(e.to_failure());
    }

    fn collect<R>(&self, f: impl FnOnce(&mut Collected) -> R) -> R {
        f(&mut self.collected.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn components(&self) -> &[Component] {
        &self.env.config.components
    }

    async fn all_stages(self: Arc<Self>) {
        let config = self.env.config.clone();
        let n_files = (config.environments.len() * config.components.len()) as u32;
        self.tracker.start(Stage::Deployments, n_files);
        self.tracker
            .start(Stage::Repos, self.unique_repos().len() as u32);
        let builds = self.clone().builds_stage();
        let health = self.clone().health_stage();
        // Tickets the last run looked up are asked for again while GitHub is listed; only
        // keys new since then wait for the pull requests.
        let prefetch = self.clone().prefetch_tickets();
        let github = async {
            // Learn the budget before fanning out (the call itself costs none), and with it
            // the gitops branch's head: one request, whose headers teach a budget too.
            let (learned, head) =
                tokio::join!(self.clients.github.learn_budgets(), self.gitops_head());
            if let Err(e) = learned {
                self.clients
                    .github
                    .rest
                    .log()
                    .warn("github", format!("cannot read the rate limit: {e}"));
            }
            let deployments = self.clone().deployments_stage(head);
            let repos_then_tickets = async {
                let ((), prefetched) = tokio::join!(self.clone().repos_stage(), prefetch);
                self.clone().tickets_stage(prefetched).await;
            };
            // Repositories first: their chain is longer (listing, then Jira), and the
            // semaphore serves requests in the order they ask.
            tokio::join!(repos_then_tickets, deployments);
        };
        tokio::join!(github, builds, health);
        self.correlation_stage().await;
    }

    fn unique_repos(&self) -> Vec<(String, Option<String>)> {
        let mut seen = HashSet::new();
        self.components()
            .iter()
            .filter(|c| seen.insert(c.repo.clone()))
            .map(|c| (c.repo.clone(), c.branch.clone()))
            .collect()
    }

    // --- deployments --------------------------------------------------------------------

    /// The gitops branch's newest commit, and whether every file was synced at it before.
    async fn gitops_head(&self) -> Option<GitopsHead> {
        let gitops = &self.env.config.gitops;
        let mut q = vec![];
        if let Some(b) = &gitops.branch {
            q.push(("sha", b.clone()));
        }
        let sha = match self.clients.github.commits_page(&gitops.repo, &q, 1).await {
            Ok(items) => items.into_iter().next()?.sha,
            Err(e) => {
                // Not fatal: every file is listed instead.
                tracing::info!("gitops head unknown ({e}); listing every file");
                return None;
            }
        };
        let stored: Option<String> = self.env.store.state(&self.gitops_head_key()).ok().flatten();
        Some(GitopsHead {
            unchanged: stored.as_deref() == Some(sha.as_str()),
            sha,
        })
    }

    fn gitops_head_key(&self) -> String {
        let gitops = &self.env.config.gitops;
        let branch = gitops.branch.as_deref().unwrap_or("HEAD");
        format!("gitops-head\0{}\0{branch}", gitops.repo)
    }

    async fn deployments_stage(self: Arc<Self>, head: Option<GitopsHead>) {
        let config = self.env.config.clone();
        let unchanged = head.as_ref().is_some_and(|h| h.unchanged);
        let mut jobs = Vec::new();
        for env in &config.environments {
            for comp in &config.components {
                let this = self.clone();
                jobs.push(async move {
                    let result = this.sync_file(env, comp, unchanged).await;
                    let ok = match result {
                        Ok(state) => {
                            this.start_registry_lookup(comp, &state);
                            this.collect(|c| {
                                c.files.insert((env.clone(), comp.name.clone()), state)
                            });
                            true
                        }
                        Err(errors) => {
                            errors.iter().for_each(|e| this.fail(e));
                            false
                        }
                    };
                    this.tracker.advance(Stage::Deployments);
                    ok
                });
            }
        }
        let all_read = join_all(jobs).await.into_iter().all(|ok| ok);
        let misconfigured = self.check_components_found();
        // Every file is now synced at least up to the head seen before listing them, but
        // only if every listing *and* every content read succeeded: otherwise the next
        // run, seeing an unmoved head, would reuse a file's old state without a request.
        if let Some(head) = head.filter(|h| all_read && !h.unchanged)
            && let Err(e) = self.env.store.put_state(&self.gitops_head_key(), &head.sha)
        {
            tracing::warn!("cannot store the gitops head: {e}");
        }
        self.tracker
            .finish(Stage::Deployments, !all_read || misconfigured);
    }

    /// A component whose kustomization file exists in no environment, or names its image
    /// nowhere, is a configuration mistake (`gitops.path`, the component's `name` or
    /// `image`), not a component that is deployed nowhere: it is a failure naming the
    /// path. Returns whether there was one.
    fn check_components_found(&self) -> bool {
        let config = &self.env.config;
        let mut found_problem = false;
        for comp in &self.env.config.components {
            let states: Vec<Option<FileState>> = config
                .environments
                .iter()
                .map(|env| {
                    self.collect(|c| c.files.get(&(env.clone(), comp.name.clone())).cloned())
                })
                .collect();
            // Only when every environment was read: a failed one is already a failure.
            let Some(states) = states.into_iter().collect::<Option<Vec<FileState>>>() else {
                continue;
            };
            let pattern = config.gitops.path.replace("{component}", &comp.name);
            let message = if states.iter().all(|s| s.commits.is_empty()) {
                format!(
                    "{pattern}: no such file in any environment ({}) of {}; check `gitops.path` and the component's name",
                    config.environments.join(", "),
                    config.gitops.repo
                )
            } else if states
                .iter()
                .all(|s| s.commits.iter().all(|c| c.version.is_none()))
            {
                format!(
                    "{pattern}: no `images:` entry named {} (or with that newName) in any environment; check the component's `image`",
                    comp.image
                )
            } else {
                continue;
            };
            found_problem = true;
            let endpoint = format!(
                "GET /repos/{}/commits?path={}",
                config.gitops.repo,
                config.kustomization_path(&config.environments[0], &comp.name)
            );
            self.collect(|c| {
                c.failures.push(Failure {
                    source: "github".into(),
                    endpoint,
                    status: None,
                    message,
                })
            });
        }
        found_problem
    }

    /// Brings one kustomization file's history up to date and returns it.
    /// With `unchanged` (the gitops branch has not moved since every file was synced), a
    /// usable stored history is returned as it is, without a request.
    async fn sync_file(
        &self,
        env: &str,
        comp: &Component,
        unchanged: bool,
    ) -> Result<FileState, Vec<FetchError>> {
        let config = &self.env.config;
        let gh = &self.clients.github;
        let repo = &config.gitops.repo;
        let path = config.kustomization_path(env, &comp.name);
        let key = format!("file\0{repo}\0{path}");
        let fresh = || FileState {
            image: comp.image.clone(),
            anchor: self.anchor.clone(),
            commits: vec![],
            base: None,
        };
        let mut state: FileState = match self.env.store.state::<FileState>(&key) {
            Ok(Some(s)) if s.image == comp.image && self.anchor_usable(&s.anchor) => {
                if unchanged && s.base.is_some() {
                    return Ok(s);
                }
                s
            }
            _ => fresh(),
        };
        let known: HashSet<String> = state.commits.iter().map(|c| c.sha.clone()).collect();
        let mut query = vec![("path", path.clone()), ("since", state.anchor.clone())];
        if let Some(b) = &config.gitops.branch {
            query.push(("sha", b.clone()));
        }
        let listed = gh
            .commits(repo, &query, &known)
            .await
            .map_err(|e| vec![e])?;
        let mut new: Vec<CommitItem> = listed
            .into_iter()
            .filter(|c| !known.contains(&c.sha))
            .collect();
        if state.commits.is_empty() && new.is_empty() {
            // Nothing changed the file in the window: its newest commit, however old.
            let mut q = vec![("path", path.clone())];
            if let Some(b) = &config.gitops.branch {
                q.push(("sha", b.clone()));
            }
            new = gh.commits_page(repo, &q, 1).await.map_err(|e| vec![e])?;
        }
        // The version before the window is the file at the oldest commit's parent: read it
        // in the same request as the rest instead of one more round trip afterwards.
        let base_parent = if state.base.is_none() {
            let oldest_known = state.commits.last().map(|c| c.date);
            new.iter()
                .map(|c| (c.date().unix_timestamp(), c))
                .min_by_key(|(d, _)| *d)
                .filter(|(d, _)| oldest_known.is_none_or(|k| *d < k))
                .and_then(|(_, c)| c.parents.first().map(|p| p.sha.clone()))
        } else {
            None
        };
        let (mut added, base) = self
            .read_versions(repo, &path, &comp.image, &new, base_parent.as_deref())
            .await?;
        added.extend(std::mem::take(&mut state.commits));
        added.sort_by_key(|c| std::cmp::Reverse(c.date));
        state.commits = added;
        if let (Some(parent), Some(base)) = (&base_parent, base)
            && state.commits.last().and_then(|c| c.parent.as_ref()) == Some(parent)
        {
            state.base = Some(base);
        }
        self.fill_base(repo, &path, &comp.image, &mut state).await?;
        self.walk_back(repo, &path, &comp.image, &mut state).await?;
        if let Err(e) = self.env.store.put_state(&key, &state) {
            tracing::warn!("cannot store file state {path}: {e}");
        }
        Ok(state)
    }

    /// A stored anchor is reused while it still covers the window and is not far older.
    fn anchor_usable(&self, anchor: &str) -> bool {
        let Some(a) = parse_rfc3339(anchor) else {
            return false;
        };
        let days = i64::from(self.env.config.gitops.history_days.max(1));
        a <= self.window_start && a >= self.window_start - time::Duration::days(days)
    }

    /// The version at each of `commits`, and at `extra` (a parent) when given.
    async fn read_versions(
        &self,
        repo: &str,
        path: &str,
        image: &str,
        commits: &[CommitItem],
        extra: Option<&str>,
    ) -> Result<(Vec<FileCommit>, Option<Option<VersionRef>>), Vec<FetchError>> {
        let file_at = |sha: &str| FileAt {
            sha: sha.to_string(),
            path: path.to_string(),
        };
        let mut wanted: Vec<FileAt> = commits.iter().map(|c| file_at(&c.sha)).collect();
        wanted.extend(extra.map(file_at));
        let (texts, errors) = self.clients.github.files(repo, &wanted).await;
        if !errors.is_empty() {
            return Err(errors);
        }
        let extra = extra.map(|sha| {
            texts
                .get(&file_at(sha))
                .and_then(|t| self.version_in(t.as_deref(), image, repo, sha, path))
        });
        let versions = commits
            .iter()
            .zip(&wanted)
            .map(|(c, f)| FileCommit {
                sha: c.sha.clone(),
                date: c.date().unix_timestamp(),
                parent: c.parents.first().map(|p| p.sha.clone()),
                version: texts
                    .get(f)
                    .and_then(|t| self.version_in(t.as_deref(), image, repo, &c.sha, path)),
            })
            .collect();
        Ok((versions, extra))
    }

    fn version_in(
        &self,
        text: Option<&str>,
        image: &str,
        repo: &str,
        sha: &str,
        path: &str,
    ) -> Option<VersionRef> {
        let entries = match kustomize::images(text?) {
            Ok(e) => e,
            Err(e) => {
                self.clients.github.rest.log().warn(
                    "github",
                    format!("{repo}@{}:{path}: {e}", &sha[..sha.len().min(7)]),
                );
                return None;
            }
        };
        let entry = kustomize::find_image(&entries, image)?;
        Some(VersionRef {
            version: entry.version()?,
            tag: entry.new_tag.clone(),
        })
    }

    /// The version before the oldest known commit: the file at that commit's parent.
    async fn fill_base(
        &self,
        repo: &str,
        path: &str,
        image: &str,
        state: &mut FileState,
    ) -> Result<(), Vec<FetchError>> {
        if state.base.is_some() {
            return Ok(());
        }
        let Some(oldest) = state.commits.last() else {
            return Ok(());
        };
        let Some(parent) = oldest.parent.clone() else {
            state.base = Some(None);
            return Ok(());
        };
        let f = FileAt {
            sha: parent.clone(),
            path: path.to_string(),
        };
        let (texts, errors) = self
            .clients
            .github
            .files(repo, std::slice::from_ref(&f))
            .await;
        if !errors.is_empty() {
            return Err(errors);
        }
        state.base = Some(
            texts
                .get(&f)
                .and_then(|t| self.version_in(t.as_deref(), image, repo, &parent, path)),
        );
        Ok(())
    }

    /// When the deployed version did not change anywhere in the known history, the commit
    /// that set it is older: walk back (bounded) until the version differs.
    async fn walk_back(
        &self,
        repo: &str,
        path: &str,
        image: &str,
        state: &mut FileState,
    ) -> Result<(), Vec<FetchError>> {
        for _ in 0..MAX_WALK_BACK_PAGES {
            let current = state.commits.first().and_then(|c| c.version.clone());
            let changed_within = state.commits.iter().any(|c| c.version != current);
            let base_same = matches!(&state.base, Some(Some(b)) if Some(b) == current.as_ref());
            if current.is_none() || changed_within || !base_same {
                return Ok(());
            }
            let Some(oldest) = state.commits.last() else {
                return Ok(());
            };
            let until = format_rfc3339(
                OffsetDateTime::from_unix_timestamp(oldest.date)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            );
            let mut q = vec![("path", path.to_string()), ("until", until)];
            if let Some(b) = &self.env.config.gitops.branch {
                q.push(("sha", b.clone()));
            }
            let known: HashSet<String> = state.commits.iter().map(|c| c.sha.clone()).collect();
            let older: Vec<CommitItem> = self
                .clients
                .github
                .commits_page(repo, &q, 100)
                .await
                .map_err(|e| vec![e])?
                .into_iter()
                .filter(|c| !known.contains(&c.sha))
                .collect();
            if older.is_empty() {
                state.base = Some(None);
                return Ok(());
            }
            let (older, _) = self.read_versions(repo, path, image, &older, None).await?;
            state.commits.extend(older);
            state.commits.sort_by_key(|c| std::cmp::Reverse(c.date));
            state.base = None;
            self.fill_base(repo, path, image, state).await?;
        }
        Ok(())
    }

    // --- repos --------------------------------------------------------------------------

    async fn repos_stage(self: Arc<Self>) {
        let repos = self.unique_repos();
        let jobs = repos.into_iter().map(|(repo, branch)| {
            let this = self.clone();
            async move {
                this.sync_repo(&repo, branch.as_deref()).await;
                this.tracker.advance(Stage::Repos);
            }
        });
        join_all(jobs).await;
        let failed = self.collect(|c| !c.repos_failed.is_empty());
        self.tracker.finish(Stage::Repos, failed);
    }

    async fn sync_repo(&self, repo: &str, branch: Option<&str>) {
        let gh = &self.clients.github;
        let key = format!("repo\0{repo}");
        let anchor = match self.env.store.state::<RepoState>(&key) {
            Ok(Some(s)) if self.anchor_usable(&s.anchor) => s.anchor,
            _ => self.anchor.clone(),
        };
        let stored = self.env.store.commits_of(repo).unwrap_or_default();
        let known: HashSet<String> = stored.iter().map(|(s, _)| s.clone()).collect();
        let mut query = vec![("since", anchor.clone())];
        if let Some(b) = branch {
            query.push(("sha", b.to_string()));
        }
        let (commits, tags, pulls) = tokio::join!(
            gh.commits(repo, &query, &known),
            gh.tags(repo),
            gh.closed_pulls(repo, self.window_start)
        );
        let mut graph = CommitGraph::new(stored);
        let repo_failed = |e: &FetchError| {
            self.fail(e);
            self.collect(|c| c.repos_failed.insert(repo.to_string()));
        };
        match commits {
            Ok(items) => {
                let nodes = self.add_commits(repo, &items);
                graph = CommitGraph::new(graph_nodes(graph).into_iter().chain(nodes));
                let _ = self.env.store.put_state(&key, &RepoState { anchor });
            }
            Err(e) => repo_failed(&e),
        }
        match tags {
            Ok(tags) => self
                .collect(|c| {
                    c.tags.insert(
                        repo.to_string(),
                        tags.into_iter().map(|t| (t.name, t.commit.sha)).collect(),
                    )
                })
                .map(|_| ())
                .unwrap_or(()),
            Err(e) => repo_failed(&e),
        }
        match pulls {
            Ok(p) => self
                .collect(|c| c.pulls.insert(repo.to_string(), p))
                .map(|_| ())
                .unwrap_or(()),
            Err(e) => repo_failed(&e),
        }
        self.collect(|c| c.graphs.insert(repo.to_string(), graph));
    }

    /// Stores new commits in the repo's graph; returns them as nodes.
    fn add_commits(&self, repo: &str, items: &[CommitItem]) -> Vec<(String, CommitNode)> {
        let nodes: Vec<(String, CommitNode)> = items
            .iter()
            .map(|c| {
                (
                    c.sha.clone(),
                    CommitNode {
                        parents: c.parents.iter().map(|p| p.sha.clone()).collect(),
                        date: c.date().unix_timestamp(),
                    },
                )
            })
            .collect();
        if let Err(e) = self
            .env
            .store
            .put_commits(repo, nodes.iter().map(|(s, n)| (s.as_str(), n)))
        {
            tracing::warn!("cannot store commits of {repo}: {e}");
        }
        nodes
    }

    // --- tickets ------------------------------------------------------------------------

    /// Merged PRs of the window: (repo, merge commit, keys).
    fn merged_pulls(&self, c: &Collected) -> Vec<(String, String, Vec<String>)> {
        let Some(re) = &self.ticket_pattern else {
            return vec![];
        };
        let mut out = Vec::new();
        for (repo, pulls) in &c.pulls {
            for p in pulls {
                let merged = p.merged_at.as_deref().and_then(parse_rfc3339);
                let (Some(merged), Some(sha)) = (merged, p.merge_commit_sha.as_ref()) else {
                    continue;
                };
                if merged < self.window_start {
                    continue;
                }
                let keys =
                    ticket_keys(re, self.ticket_ignore.as_ref(), &[&p.title, &p.head.branch]);
                if !keys.is_empty() {
                    out.push((repo.clone(), sha.clone(), keys));
                }
            }
        }
        out
    }

    /// Looks up the keys the last run looked up (stored), while GitHub is being listed.
    /// Returns the keys asked for and the tickets found; keys of failed batches are left
    /// out so that the tickets stage asks for them again.
    async fn prefetch_tickets(self: Arc<Self>) -> Prefetched {
        let Some(jira) = &self.clients.jira else {
            return Prefetched::default();
        };
        let keys: Vec<String> = self
            .env
            .store
            .state(TICKET_KEYS_STATE)
            .ok()
            .flatten()
            .unwrap_or_default();
        if keys.is_empty() {
            return Prefetched::default();
        }
        let batches: Vec<&[String]> = keys.chunks(KEYS_PER_QUERY).collect();
        self.tracker.start(Stage::Tickets, batches.len() as u32);
        let tracker = &self.tracker;
        let results = join_all(batches.iter().map(|b| async move {
            let r = jira.tickets(b).await;
            tracker.advance(Stage::Tickets);
            (*b, r)
        }))
        .await;
        let mut out = Prefetched::default();
        for (batch, r) in results {
            if let Ok(found) = r {
                out.asked.extend(batch.iter().cloned());
                out.found.extend(found);
            }
        }
        out
    }

    async fn tickets_stage(self: Arc<Self>, prefetched: Prefetched) {
        let Some(jira) = &self.clients.jira else {
            self.tracker.skip(Stage::Tickets);
            return;
        };
        let keys: BTreeSet<String> = self
            .collect(|c| self.merged_pulls(c))
            .into_iter()
            .flat_map(|(_, _, k)| k)
            .collect();
        let Prefetched {
            mut asked,
            mut found,
        } = prefetched;
        // Tickets no pull request of this window names any more are not shown.
        found.retain(|k, _| keys.contains(k));
        let new: Vec<String> = keys.difference(&asked).cloned().collect();
        let batches: Vec<Vec<String>> = new.chunks(KEYS_PER_QUERY).map(|c| c.to_vec()).collect();
        self.tracker.extend(Stage::Tickets, batches.len() as u32);
        let tracker = &self.tracker;
        let results = join_all(batches.iter().map(|b| async move {
            let r = jira.tickets(b).await;
            tracker.advance(Stage::Tickets);
            (b, r)
        }))
        .await;
        let mut failed = false;
        for (batch, r) in results {
            match r {
                Ok(more) => {
                    asked.extend(batch.iter().cloned());
                    found.extend(more);
                }
                Err(e) => {
                    failed = true;
                    self.fail(&e);
                }
            }
        }
        self.collect(|c| {
            c.tickets.extend(found);
            c.jira_answered.extend(asked);
        });
        if !failed {
            let keys: Vec<&String> = keys.iter().collect();
            if let Err(e) = self.env.store.put_state(TICKET_KEYS_STATE, &keys) {
                tracing::warn!("cannot store the ticket keys: {e}");
            }
        }
        self.tracker.finish(Stage::Tickets, failed);
    }

    // --- builds and health --------------------------------------------------------------

    async fn builds_stage(self: Arc<Self>) {
        let this: &Run = &self;
        let Some(tc) = &this.clients.teamcity else {
            this.tracker.skip(Stage::Builds);
            return;
        };
        let wanted: Vec<(&Component, &String)> = this
            .components()
            .iter()
            .filter_map(|c| c.teamcity_build_type.as_ref().map(|b| (c, b)))
            .collect();
        this.tracker.start(Stage::Builds, wanted.len() as u32);
        let results = join_all(wanted.iter().map(|(comp, bt)| async move {
            let r = tc.latest_build(bt).await;
            this.tracker.advance(Stage::Builds);
            (comp.name.clone(), r)
        }))
        .await;
        let mut failed = false;
        for (name, r) in results {
            match r {
                Ok(found) => this.collect(|c| {
                    c.builds_known.insert(name.clone());
                    if let Some(b) = found {
                        c.builds.insert(name, b);
                    }
                }),
                Err(e) => {
                    failed = true;
                    this.fail(&e);
                }
            }
        }
        this.tracker.finish(Stage::Builds, failed);
    }

    async fn health_stage(self: Arc<Self>) {
        let this: &Run = &self;
        let (Some(dd), Some(cfg)) = (&this.clients.datadog, &this.env.config.datadog) else {
            this.tracker.skip(Stage::Health);
            return;
        };
        let envs = &this.env.config.environments;
        this.tracker.start(Stage::Health, envs.len() as u32);
        let results = join_all(envs.iter().map(|env| async move {
            let queries: Vec<HealthQuery> = this
                .components()
                .iter()
                .filter_map(|c| c.datadog_service.as_ref().map(|s| (c, s)))
                .flat_map(|(c, service)| {
                    cfg.queries.iter().map(move |(name, q)| HealthQuery {
                        component: c.name.clone(),
                        name: name.clone(),
                        query: render_query(q, service, env),
                    })
                })
                .collect();
            let r = if queries.is_empty() {
                Ok(BTreeMap::new())
            } else {
                dd.query(&queries, this.now).await
            };
            this.tracker.advance(Stage::Health);
            (env.clone(), r)
        }))
        .await;
        let mut failed = false;
        for (env, r) in results {
            match r {
                Ok(values) => this.collect(|c| {
                    c.health_known.insert(env.clone());
                    for ((comp, name), v) in values {
                        c.health.insert((env.clone(), format!("{comp}\0{name}")), v);
                    }
                }),
                Err(e) => {
                    failed = true;
                    this.fail(&e);
                }
            }
        }
        this.tracker.finish(Stage::Health, failed);
    }

    // --- correlation --------------------------------------------------------------------

    /// Digest pins that the GitOps history cannot tie to a tag are looked up in the image
    /// registry when one is configured (once per digest: content-addressed, stored
    /// forever). Then deployed versions whose commit is not in the stored graph (a release
    /// branch, or older than the window) get that commit's history fetched, once each.
    async fn correlation_stage(&self) {
        let cells = (self.env.config.environments.len() * self.components().len()) as u32;
        self.tracker.start(Stage::Correlation, cells);
        self.registry_lookups().await;
        let mut missing: Vec<(String, String)> = Vec::new();
        self.collect(|c| {
            for ((_, comp_name), state) in &c.files {
                let Some(comp) = self.components().iter().find(|x| &x.name == comp_name) else {
                    continue;
                };
                let Origin::Commit { sha, .. } = self.origin(c, comp, Some(state)) else {
                    continue;
                };
                let Some(graph) = c.graphs.get(&comp.repo) else {
                    continue;
                };
                if !graph.contains(&sha) && !missing.contains(&(comp.repo.clone(), sha.clone())) {
                    missing.push((comp.repo.clone(), sha));
                }
            }
        });
        let fetched = join_all(missing.iter().map(|(repo, sha)| async move {
            let known: HashSet<String> =
                self.collect(|c| c.graphs.get(repo).map(graph_keys).unwrap_or_default());
            let r = self
                .clients
                .github
                .commits(
                    repo,
                    &[("sha", sha.clone()), ("since", self.anchor.clone())],
                    &known,
                )
                .await;
            (repo, sha, r)
        }))
        .await;
        let mut failed = false;
        for (repo, sha, r) in fetched {
            match r {
                Ok(items) => {
                    let nodes = self.add_commits(repo, &items);
                    self.collect(|c| {
                        let old = c.graphs.remove(repo).unwrap_or_default();
                        c.graphs.insert(
                            repo.clone(),
                            CommitGraph::new(graph_nodes(old).into_iter().chain(nodes)),
                        );
                    });
                }
                Err(e) => {
                    failed = true;
                    self.fail(&e);
                    self.collect(|c| c.history_failed.insert((repo.clone(), sha.clone())));
                }
            }
        }
        self.tracker.finish(Stage::Correlation, failed);
    }

    /// Asks the registry for the revision label of every digest pin nothing else
    /// resolved; answers are stored (a digest names the same image forever).
    async fn registry_lookups(&self) {
        let mut wanted: Vec<(String, String)> = Vec::new();
        self.collect(|c| {
            for ((_, comp_name), state) in &c.files {
                let Some(comp) = self.components().iter().find(|x| &x.name == comp_name) else {
                    continue;
                };
                if let Origin::Unknown(Unknown::Digest(digest)) = self.origin(c, comp, Some(state))
                    && !wanted.contains(&(comp.image.clone(), digest.clone()))
                {
                    wanted.push((comp.image.clone(), digest));
                }
            }
        });
        // Lookups begun as their files were read; the rest now.
        let started = std::mem::take(&mut *lock(&self.registry_tasks));
        let begun = lock(&self.registry_started).clone();
        wanted.retain(|k| !begun.contains(k));
        let rest = join_all(
            wanted
                .into_iter()
                .map(|(image, digest)| self.lookup_revision(image, digest)),
        );
        let (_, _) = tokio::join!(join_all(started), rest);
    }

    /// Begins the registry lookup of a file's digest pin as soon as the file is read (the
    /// chain of token, index, manifest and config takes several round trips), when
    /// nothing in its history ties the digest to a tag.
    fn start_registry_lookup(self: &Arc<Self>, comp: &Component, state: &FileState) {
        let Some(current) = state.commits.first().and_then(|c| c.version.clone()) else {
            return;
        };
        let Some(digest) = current.digest() else {
            return;
        };
        if current.tag.is_some()
            || replaced_tag(state, &current).is_some()
            || self.clients.registries.for_image(&comp.image).is_none()
        {
            return;
        }
        let key = (comp.image.clone(), digest.to_string());
        if !lock(&self.registry_started).insert(key.clone()) {
            return;
        }
        let this = self.clone();
        let task = tokio::spawn(async move { this.lookup_revision(key.0, key.1).await });
        lock(&self.registry_tasks).push(task);
    }

    /// The revision label of `image@digest`, from the store or the registry, recorded
    /// for the join (and stored: a digest names the same image forever).
    async fn lookup_revision(&self, image: String, digest: String) {
        let key = format!("oci-revision\0{image}\0{digest}");
        let answer = match self.env.store.state::<Option<String>>(&key) {
            Ok(Some(stored)) => Ok(stored),
            _ => match self.clients.registries.for_image(&image) {
                None => Err("no registry configured for this image".to_string()),
                Some(registry) => {
                    let answer = registry.revision(&image, &digest).await;
                    match &answer {
                        Err(e) => self.fail(e),
                        Ok(revision) => {
                            if let Err(e) = self.env.store.put_state(&key, revision) {
                                tracing::warn!(
                                    "cannot store the revision of {image}@{digest}: {e}"
                                );
                            }
                        }
                    }
                    answer.map_err(|e| e.to_string())
                }
            },
        };
        self.collect(|c| c.registry.insert((image, digest), answer));
    }

    /// What the deployed version of one kustomization file stands for in the
    /// component's source repository.
    fn origin(&self, c: &Collected, comp: &Component, state: Option<&FileState>) -> Origin {
        let Some(state) = state else {
            return Origin::Unknown(Unknown::Other(
                "the kustomization file's history could not be read".into(),
            ));
        };
        let Some(current) = state.commits.first().and_then(|x| x.version.clone()) else {
            return Origin::Unknown(Unknown::Other("not deployed".into()));
        };
        let repo = &comp.repo;
        let (Some(tags), Some(graph)) = (c.tags.get(repo), c.graphs.get(repo)) else {
            return Origin::Unknown(Unknown::Other(format!(
                "the history of {repo} could not be read"
            )));
        };
        let (candidate, resolved) = match current.digest() {
            None => (current.version.clone(), None),
            Some(digest) => {
                let via = |tag: &str, via: &str| {
                    Some(Resolved {
                        tag: tag.to_string(),
                        via: via.to_string(),
                    })
                };
                if let Some(tag) = &current.tag {
                    (tag.clone(), via(tag, "newTag"))
                } else if let Some(tag) = replaced_tag(state, &current) {
                    let r = via(&tag, "replaced tag");
                    (tag, r)
                } else {
                    match c.registry.get(&(comp.image.clone(), digest.to_string())) {
                        Some(Ok(Some(revision))) => (revision.clone(), via(revision, "registry")),
                        Some(Ok(None)) => {
                            return Origin::Unknown(Unknown::Other(
                                "digest not resolved: the image has no org.opencontainers.image.revision label"
                                    .into(),
                            ));
                        }
                        Some(Err(e)) => {
                            return Origin::Unknown(Unknown::Other(format!(
                                "digest not resolved: {e}"
                            )));
                        }
                        None => return Origin::Unknown(Unknown::Digest(digest.to_string())),
                    }
                }
            }
        };
        match resolve_version(&candidate, tags, graph) {
            Some(sha) => {
                // A revision label names a commit: show the tag on it when there is one.
                let resolved = resolved.map(|mut r| {
                    if r.via == "registry"
                        && let Some(tag) = tag_on(tags, &sha)
                    {
                        r.tag = tag;
                    }
                    r
                });
                Origin::Commit { sha, resolved }
            }
            None => Origin::Unknown(Unknown::Other(format!(
                "{candidate} is neither a tag nor a commit of {repo}"
            ))),
        }
    }

    /// The ticket keys shipped with source commit `sha` of `comp`'s repository, or why
    /// they are unknown.
    fn shipped(
        &self,
        c: &Collected,
        merged: &[(String, String, Vec<String>)],
        comp: &Component,
        sha: &str,
    ) -> Result<Vec<Ticket>, String> {
        let repo = &comp.repo;
        if c.repos_failed.contains(repo) {
            return Err(format!("the history of {repo} could not be read"));
        }
        if c.history_failed.contains(&(repo.clone(), sha.to_string())) {
            return Err(format!(
                "the history of {repo} at {} could not be read",
                &sha[..sha.len().min(7)]
            ));
        }
        // A commit the graph does not hold after its history was fetched is older than
        // the window: nothing merged in the window can be in it.
        let ancestors = c
            .graphs
            .get(repo)
            .map(|g| g.ancestors(sha))
            .unwrap_or_default();
        let mut keys: Vec<String> = merged
            .iter()
            .filter(|(r, merge, _)| r == repo && ancestors.contains(merge))
            .flat_map(|(_, _, k)| k.clone())
            .collect();
        keys.sort();
        keys.dedup();
        let jira = self.clients.jira.is_some();
        Ok(keys
            .into_iter()
            .map(|k| match c.tickets.get(&k) {
                Some(t) => t.clone(),
                None => Ticket {
                    // Jira answered this key's batch without it: shipped work the token
                    // cannot see (or a key that is not one), kept and marked.
                    in_jira: (jira && c.jira_answered.contains(&k)).then_some(false),
                    key: k,
                    status: None,
                    summary: None,
                },
            })
            .collect())
    }

    /// Joins everything collected into the snapshot (also for a cancelled run).
    fn assemble(&self, run_id: u64, started_at: OffsetDateTime, cancelled: bool) -> Snapshot {
        let config = &self.env.config;
        let c = self.collected.lock().unwrap_or_else(|p| p.into_inner());
        let merged = self.merged_pulls(&c);
        let health_queries: Vec<String> = config
            .datadog
            .as_ref()
            .map(|d| d.queries.keys().cloned().collect())
            .unwrap_or_default();
        let mut cells: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
        for env in &config.environments {
            for comp in &config.components {
                let mut cell = Cell::default();
                let state = c.files.get(&(env.clone(), comp.name.clone()));
                if let Some(state) = state {
                    self.fill_deployment(&mut cell, state);
                }
                match self.origin(&c, comp, state) {
                    Origin::Commit { sha, resolved } => {
                        cell.resolved = resolved;
                        match self.shipped(&c, &merged, comp, &sha) {
                            Ok(tickets) => cell.tickets = Some(tickets),
                            Err(why) => cell.unresolved = Some(why),
                        }
                        cell.source_commit = Some(sha);
                    }
                    Origin::Unknown(Unknown::Digest(_)) => {
                        cell.unresolved = Some("digest not resolved".into());
                    }
                    Origin::Unknown(Unknown::Other(why)) => cell.unresolved = Some(why),
                }
                cell.build = c.builds.get(&comp.name).cloned();
                let known = Known {
                    deployment: state.is_some(),
                    build: comp.teamcity_build_type.is_none()
                        || config.teamcity.is_none()
                        || c.builds_known.contains(&comp.name),
                    health: comp.datadog_service.is_none()
                        || config.datadog.is_none()
                        || c.health_known.contains(env),
                };
                if comp.datadog_service.is_some() {
                    for q in &health_queries {
                        cell.health.insert(
                            q.clone(),
                            c.health
                                .get(&(env.clone(), format!("{}\0{q}", comp.name)))
                                .copied()
                                .flatten(),
                        );
                    }
                }
                if let Some(prev) = self.previous.as_ref()
                    && let Some(before) = prev.cell(env, &comp.name)
                {
                    carry_forward(
                        &mut cell,
                        before,
                        prev.finished_at,
                        known,
                        self.clients.jira.is_some(),
                    );
                }
                cells
                    .entry(env.clone())
                    .or_default()
                    .insert(comp.name.clone(), cell);
            }
        }
        let finished_at = OffsetDateTime::now_utc();
        let mut stats = RunStats {
            duration_ms: (finished_at - started_at).whole_milliseconds().max(0) as u64,
            ..RunStats::default()
        };
        for client in self.clients.all() {
            let s = client.counters().snapshot();
            stats.requests += s.requests;
            stats.not_modified += s.not_modified;
            stats.cache_hits += s.cache_hits;
            stats.retries += s.retries;
            stats.rate_limited_waits += s.rate_limited_waits;
            stats.per_source.insert(client.name.to_string(), s);
        }
        // A cancel is not an error: the snapshot says `cancelled`, the failures are only
        // what failed.
        let failures = c.failures.clone();
        Snapshot {
            run_id,
            started_at,
            finished_at,
            partial: cancelled || !failures.is_empty(),
            cancelled,
            failures,
            environments: config.environments.clone(),
            components: config.components.iter().map(|c| c.name.clone()).collect(),
            cells,
            health_queries,
            stats,
        }
    }

    fn fill_deployment(&self, cell: &mut Cell, state: &FileState) {
        let Some(newest) = state.commits.first() else {
            return;
        };
        cell.tag = newest.version.as_ref().map(|v| v.version.clone());
        // Oldest first: each change of version is a deployment event.
        let mut prev: Option<VersionRef> = state.base.clone().flatten();
        let mut set_by: Option<&FileCommit> = None;
        let text = |v: &Option<VersionRef>| v.as_ref().map(|v| v.version.clone());
        for commit in state.commits.iter().rev() {
            if text(&commit.version) != text(&prev) {
                set_by = Some(commit);
                let at = OffsetDateTime::from_unix_timestamp(commit.date)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                if at >= self.window_start {
                    cell.events.push(DeployEvent {
                        at,
                        from: prev.as_ref().map(|v| v.version.clone()),
                        to: commit.version.as_ref().map(|v| v.version.clone()),
                        commit: commit.sha.clone(),
                    });
                }
                prev = commit.version.clone();
            }
        }
        // Unchanged since before the known history: the oldest known commit is the best bound.
        let setter = set_by.or(state.commits.last());
        if cell.tag.is_some()
            && let Some(s) = setter
        {
            cell.deployed_at = OffsetDateTime::from_unix_timestamp(s.date).ok();
            cell.deploy_commit = Some(s.sha.clone());
        }
    }
}

fn graph_nodes(g: CommitGraph) -> Vec<(String, CommitNode)> {
    g.into_nodes()
}

fn graph_keys(g: &CommitGraph) -> HashSet<String> {
    g.shas().cloned().collect()
}
