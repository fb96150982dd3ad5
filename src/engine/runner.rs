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
    Build, Cell, DeployEvent, Failure, RunStats, RunSummary, Snapshot, Ticket, Trigger,
};
use super::progress::{LearnedDurations, Tracker};
use crate::config::{Component, Config, Secrets};
use crate::sources::datadog::{Datadog, HealthQuery, render_query};
use crate::sources::github::{CommitItem, FileAt, GitHub, PullItem, format_rfc3339, parse_rfc3339};
use crate::sources::http::{FetchError, LogSink, SourceClient};
use crate::sources::jira::{Jira, KEYS_PER_QUERY, ticket_keys};
use crate::sources::kustomize;
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
    pub events: mpsc::Sender<EngineEvent>,
    /// First backoff of transient retries (tests shorten it).
    pub retry_min_delay: Duration,
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
    builds: HashMap<String, Build>,
    health: HashMap<(String, String), Option<f64>>,
    tickets: BTreeMap<String, Ticket>,
    jira_complete: bool,
    failures: Vec<Failure>,
}

struct Clients {
    github: GitHub,
    teamcity: Option<TeamCity>,
    datadog: Option<Datadog>,
    jira: Option<Jira>,
}

impl Clients {
    fn all(&self) -> Vec<&SourceClient> {
        let mut v = vec![&self.github.rest];
        v.extend(self.teamcity.as_ref().map(|c| c.client()));
        v.extend(self.datadog.as_ref().map(|c| c.client()));
        v.extend(self.jira.as_ref().map(|c| c.client()));
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
    let log = LogSink::new(move |line| {
        let _ = events.try_send(EngineEvent::Log(line));
    });
    let clients = build_clients(
        &env.config,
        &env.secrets,
        &env.store,
        log,
        env.retry_min_delay,
    )
    .map_err(|e| fail(RunError::Setup(e)))?;
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
    let run = Arc::new(Run {
        env: env.clone(),
        clients,
        tracker: Arc::new(Tracker::new()),
        collected: Mutex::new(Collected::default()),
        now: started_at,
        window_start,
        anchor,
        ticket_pattern,
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
    let cancelled = tokio::select! {
        _ = work => false,
        _ = cancel.cancelled() => true,
    };
    emitter_stop.cancel();
    let _ = emitter.await;

    run.clients.github.settle().await;
    let snapshot = run.assemble(run_id, started_at, cancelled);
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
    };
    env.store
        .commit_run(&summary, Some(&snapshot))
        .map_err(|e| fail(e.into()))?;
    if !snapshot.partial {
        let mut learned = learned;
        learned.learn(&run.tracker.stage_ends(), run.tracker.elapsed());
        let _ = env.store.put_state(LearnedDurations::STORE_KEY, &learned);
    }
    env.store.flush().await.map_err(|e| fail(e.into()))?;
    Ok((summary, snapshot))
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
    }
}

fn build_clients(
    config: &Config,
    secrets: &Secrets,
    store: &Store,
    log: LogSink,
    retry: Duration,
) -> Result<Clients, String> {
    Ok(Clients {
        github: GitHub::new(config, secrets, store.clone(), log.clone(), retry)?,
        teamcity: config
            .teamcity
            .as_ref()
            .map(|c| TeamCity::new(c, secrets, log.clone(), retry))
            .transpose()?,
        datadog: config
            .datadog
            .as_ref()
            .map(|c| Datadog::new(c, secrets, log.clone(), retry))
            .transpose()?,
        jira: config
            .jira
            .as_ref()
            .map(|c| Jira::new(c, secrets, log.clone(), retry))
            .transpose()?,
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
                    match result {
                        Ok(state) => this
                            .collect(|c| c.files.insert((env.clone(), comp.name.clone()), state))
                            .map(|_| ())
                            .unwrap_or(()),
                        Err(errors) => errors.iter().for_each(|e| this.fail(e)),
                    }
                    this.tracker.advance(Stage::Deployments);
                });
            }
        }
        join_all(jobs).await;
        let failed = self.collect(|c| {
            c.failures
                .iter()
                .any(|f| f.source == "github" && f.endpoint.contains("/commits?path="))
        });
        // Every file is now synced at least up to the head seen before listing them.
        if let Some(head) = head.filter(|h| !failed && !h.unchanged)
            && let Err(e) = self.env.store.put_state(&self.gitops_head_key(), &head.sha)
        {
            tracing::warn!("cannot store the gitops head: {e}");
        }
        self.tracker.finish(Stage::Deployments, failed);
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
                .filter_map(|c| Some((c.date()?.unix_timestamp(), c)))
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
                date: c.date().map(|d| d.unix_timestamp()).unwrap_or(0),
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
        let failed = self.collect(|c| {
            c.failures
                .iter()
                .any(|f| f.source == "github" && !f.endpoint.contains("/commits?path="))
        });
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
        match commits {
            Ok(items) => {
                let nodes = self.add_commits(repo, &items);
                graph = CommitGraph::new(graph_nodes(graph).into_iter().chain(nodes));
                let _ = self.env.store.put_state(&key, &RepoState { anchor });
            }
            Err(e) => self.fail(&e),
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
            Err(e) => self.fail(&e),
        }
        match pulls {
            Ok(p) => self
                .collect(|c| c.pulls.insert(repo.to_string(), p))
                .map(|_| ())
                .unwrap_or(()),
            Err(e) => self.fail(&e),
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
                        date: c.date().map(|d| d.unix_timestamp()).unwrap_or(0),
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
                let keys = ticket_keys(re, &[&p.title, &p.head.branch]);
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
        let Prefetched { asked, mut found } = prefetched;
        // Tickets no pull request of this window names any more are not shown.
        found.retain(|k, _| keys.contains(k));
        let new: Vec<String> = keys.difference(&asked).cloned().collect();
        let batches: Vec<Vec<String>> = new.chunks(KEYS_PER_QUERY).map(|c| c.to_vec()).collect();
        self.tracker.extend(Stage::Tickets, batches.len() as u32);
        let results = join_all(batches.iter().map(|b| async {
            let r = jira.tickets(b).await;
            self.tracker.advance(Stage::Tickets);
            r
        }))
        .await;
        let mut failed = false;
        for r in results {
            match r {
                Ok(more) => found.extend(more),
                Err(e) => {
                    failed = true;
                    self.fail(&e);
                }
            }
        }
        self.collect(|c| {
            c.tickets.extend(found);
            c.jira_complete = !failed;
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
                Ok(Some(b)) => this
                    .collect(|c| c.builds.insert(name, b))
                    .map(|_| ())
                    .unwrap_or(()),
                Ok(None) => {}
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

    /// Deployed versions whose commit is not in the stored graph (a release branch, or
    /// older than the window) get that commit's history fetched, once per commit.
    async fn correlation_stage(&self) {
        let cells = (self.env.config.environments.len() * self.components().len()) as u32;
        self.tracker.start(Stage::Correlation, cells);
        let mut missing: Vec<(String, String)> = Vec::new();
        self.collect(|c| {
            for ((_, comp_name), state) in &c.files {
                let Some(comp) = self.components().iter().find(|x| &x.name == comp_name) else {
                    continue;
                };
                let Some(v) = state.commits.first().and_then(|x| x.version.clone()) else {
                    continue;
                };
                let (Some(tags), Some(graph)) = (c.tags.get(&comp.repo), c.graphs.get(&comp.repo))
                else {
                    continue;
                };
                let Some(sha) =
                    resolve_version(v.tag.as_deref().unwrap_or(&v.version), tags, graph)
                else {
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
            (repo, r)
        }))
        .await;
        for (repo, r) in fetched {
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
                Err(e) => self.fail(&e),
            }
        }
        self.tracker.finish(Stage::Correlation, false);
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
                if let Some(state) = c.files.get(&(env.clone(), comp.name.clone())) {
                    self.fill_deployment(&mut cell, state);
                }
                let current = c
                    .files
                    .get(&(env.clone(), comp.name.clone()))
                    .and_then(|s| s.commits.first())
                    .and_then(|x| x.version.clone());
                if let (Some(v), Some(tags), Some(graph)) =
                    (current, c.tags.get(&comp.repo), c.graphs.get(&comp.repo))
                {
                    cell.source_commit =
                        resolve_version(v.tag.as_deref().unwrap_or(&v.version), tags, graph);
                    if let Some(sha) = &cell.source_commit {
                        let ancestors = graph.ancestors(sha);
                        let mut keys: Vec<String> = merged
                            .iter()
                            .filter(|(repo, merge, _)| {
                                repo == &comp.repo && ancestors.contains(merge)
                            })
                            .flat_map(|(_, _, k)| k.clone())
                            .collect();
                        keys.sort();
                        keys.dedup();
                        cell.tickets = keys
                            .into_iter()
                            .filter_map(|k| match c.tickets.get(&k) {
                                Some(t) => Some(t.clone()),
                                // Jira answered and does not know it: not a ticket.
                                None if c.jira_complete => None,
                                None => Some(Ticket {
                                    key: k,
                                    status: None,
                                    summary: None,
                                }),
                            })
                            .collect();
                    }
                }
                cell.build = c.builds.get(&comp.name).cloned();
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
        let mut failures = c.failures.clone();
        if cancelled {
            failures.push(Failure {
                source: "snaptop".into(),
                endpoint: "run".into(),
                status: None,
                message: "cancelled".into(),
            });
        }
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
        for commit in state.commits.iter().rev() {
            if commit.version != prev {
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
