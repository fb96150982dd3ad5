//! `snaptop snapshot`: one run without the TUI. Progress goes to stderr as plain lines,
//! the result to stdout (`--json`) or as a short summary; the exit code says how it went.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::HttpCache;
use crate::config::{self, Config, Secrets};
use crate::engine::events::{EngineEvent, Level, Progress, StageState};
use crate::engine::model::{Snapshot, Trigger};
use crate::engine::runner::{RunEnv, run_snapshot};
use crate::engine::{DEFAULT_RUN_TIMEOUT_SECS, EVENT_BUFFER};
use crate::store::{Store, StoreOptions};

/// Exit codes of `snaptop snapshot`.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_PARTIAL: u8 = 2;

/// Longest quiet spell between two progress lines while something is still moving.
const PROGRESS_LINE_INTERVAL: Duration = Duration::from_secs(1);

/// Loads the config named on the command line, or the default one.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<(Config, PathBuf)> {
    let path = match path {
        Some(p) => p.to_owned(),
        None => {
            let p = config::default_config_path()
                .ok_or_else(|| anyhow::anyhow!("no config file: pass --config FILE"))?;
            if !p.exists() {
                anyhow::bail!(
                    "no config file at {} (pass --config FILE; `snaptop sim` prints one for the simulator)",
                    p.display()
                );
            }
            p
        }
    };
    Ok((Config::load(&path)?, path))
}

/// Opens the store the config names (default `$XDG_DATA_HOME/snaptop/store`).
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    let path = config
        .store
        .path
        .clone()
        .unwrap_or_else(|| config::default_data_dir().join("store"));
    Ok(Store::open_with(&path, StoreOptions::from_config(config))?)
}

/// Sends tracing output to a daily file under `dir` (never to the terminal).
pub fn init_file_logging(dir: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(dir).ok()?;
    // The builder reports a directory it cannot write to; `rolling::daily` panics.
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("snaptop.log")
        .build(dir)
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("SNAPTOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

/// How a headless run is bounded.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// The run ends, partial, after this long (`--timeout`).
    pub timeout: Option<Duration>,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            timeout: Some(Duration::from_secs(DEFAULT_RUN_TIMEOUT_SECS)),
        }
    }
}

/// How long a cancelled run may take to wrap up (store what it has, print it) before
/// the process leaves anyway: a bug must never turn Ctrl-C into a hang.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Runs one snapshot and returns the process exit code: 0 complete, 2 partial
/// (some source failed, or the run was cancelled or timed out), 1 when nothing could be
/// fetched at all or the run produced no snapshot.
///
/// SIGINT, SIGTERM and SIGHUP cancel the run: what was fetched is stored and printed,
/// and the exit code is 2. A second signal leaves at once (128 + signal).
pub async fn run(
    config: Config,
    secrets: Secrets,
    store: Store,
    json: bool,
    limits: RunLimits,
) -> u8 {
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let cache = HttpCache::open(store.clone(), config.cache.clone());
    let env = RunEnv {
        timeout: limits.timeout,
        ..RunEnv::new(Arc::new(config), secrets, store.clone(), cache, tx)
    };
    let cancel = CancellationToken::new();
    let printing_done = CancellationToken::new();
    let printer = tokio::spawn(print_progress(rx, printing_done.clone()));
    let signals = tokio::spawn(cancel_on_signals(cancel.clone()));
    let result = run_snapshot(env, Trigger::Cli, cancel).await;
    signals.abort();
    printing_done.cancel();
    let _ = printer.await;
    let code = match result {
        Ok((_, snapshot)) => report_snapshot(&snapshot, json),
        Err((_, error)) => {
            eprintln!("snaptop: snapshot failed: {error}");
            EXIT_FAILED
        }
    };
    if let Err(e) = store.flush().await {
        eprintln!("snaptop: {e}");
    }
    code
}

/// Prints a finished run (its last line, the JSON or the summary, its failures); the
/// exit code.
fn report_snapshot(snapshot: &Snapshot, json: bool) -> u8 {
    eprintln!("{}", final_line(snapshot));
    if json {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &SnapshotJson::from(snapshot));
        let _ = writeln!(out);
        let _ = out.flush();
    } else {
        print_summary(snapshot);
    }
    for f in &snapshot.failures {
        eprintln!("snaptop: failed: {f}");
    }
    exit_code(snapshot)
}

/// [`run`] through the daemon that serves the config: the run is the daemon's (one
/// engine, one budget per box), asked for and followed over its socket with the same
/// progress lines, output and exit codes. A run already going (started by a pane, the
/// schedule or HTTP) is followed rather than doubled. Ctrl-C cancels the run this
/// command started; one it only follows is left alone.
pub async fn run_attached(
    client: crate::serve::client::Client,
    json: bool,
    limits: RunLimits,
) -> u8 {
    use crate::serve::client::AttachItem;
    use crate::serve::wire::TriggerOutcome;
    let socket = client.socket().display().to_string();
    let mut stream = match client.attach().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("snaptop: {e}");
            return EXIT_FAILED;
        }
    };
    // The state comes first; the run is followed from its events.
    let _ = stream.next().await;
    let (ours, id) = match client.trigger(true).await {
        Ok(TriggerOutcome::Started(id)) => (true, id),
        Ok(TriggerOutcome::AlreadyRunning(id)) => {
            eprintln!(
                "snaptop: snapshot #{} is already running on the daemon ({socket}): following it",
                id.map_or_else(|| "?".into(), |i| i.to_string())
            );
            (false, id)
        }
        Err(e) => {
            eprintln!("snaptop: {e}");
            return EXIT_FAILED;
        }
    };
    eprintln!("snaptop: snapshot on the daemon at {socket}");
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let printing_done = CancellationToken::new();
    let printer = tokio::spawn(print_progress(rx, printing_done.clone()));
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signals(cancel.clone()));
    let deadline = limits.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut asked_to_cancel = false;
    let ends = |summary_id: u64| id.is_none_or(|i| i == summary_id);
    let outcome = loop {
        let next = tokio::select! {
            item = stream.next() => item,
            () = cancel.cancelled(), if !asked_to_cancel => {
                asked_to_cancel = true;
                if !ours {
                    break None;
                }
                if let Err(e) = client.cancel().await {
                    eprintln!("snaptop: {e}");
                }
                continue;
            }
            () = sleep_until(deadline), if !asked_to_cancel => {
                asked_to_cancel = true;
                eprintln!("snaptop: timed out: cancelling the run");
                if ours && let Err(e) = client.cancel().await {
                    eprintln!("snaptop: {e}");
                }
                continue;
            }
        };
        match next {
            Some(Ok(AttachItem::Event { event, .. })) => match event {
                EngineEvent::Finished { summary, snapshot } if ends(summary.id) => {
                    break Some(Ok(snapshot));
                }
                EngineEvent::Failed { summary, error } if ends(summary.id) => {
                    break Some(Err(error));
                }
                other => {
                    let _ = tx.send(other).await;
                }
            },
            Some(Ok(AttachItem::State(_))) => {}
            Some(Err(e)) => break Some(Err(e)),
            None => {
                break Some(Err(format!(
                    "the daemon at {socket} stopped during the run"
                )));
            }
        }
    };
    signals.abort();
    printing_done.cancel();
    drop(tx);
    let _ = printer.await;
    match outcome {
        Some(Ok(snapshot)) => report_snapshot(&snapshot, json),
        Some(Err(error)) => {
            eprintln!("snaptop: snapshot failed: {error}");
            EXIT_FAILED
        }
        None => {
            eprintln!("snaptop: left the daemon's run going");
            EXIT_PARTIAL
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The documented exit code of a finished run.
pub fn exit_code(snapshot: &Snapshot) -> u8 {
    let answered: u64 = snapshot.stats.per_source.values().map(|s| s.answered).sum();
    if snapshot.cancelled {
        EXIT_PARTIAL
    } else if !snapshot.partial {
        EXIT_OK
    } else if answered == 0 {
        eprintln!("snaptop: nothing could be fetched");
        EXIT_FAILED
    } else {
        EXIT_PARTIAL
    }
}

/// The first SIGINT/SIGTERM/SIGHUP cancels the run; a second one, or a run that does
/// not wrap up within [`CANCEL_GRACE`], leaves the process at once.
async fn cancel_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, i32)>();
    for (kind, name, number) in [
        (SignalKind::interrupt(), "SIGINT", 2),
        (SignalKind::terminate(), "SIGTERM", 15),
        (SignalKind::hangup(), "SIGHUP", 1),
    ] {
        match signal(kind) {
            Ok(mut stream) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        if tx.send((name, number)).is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("cannot watch {name}: {e}"),
        }
    }
    let Some((name, _)) = rx.recv().await else {
        return;
    };
    eprintln!("snaptop: {name}: cancelling; what was fetched is kept and printed");
    cancel.cancel();
    tokio::select! {
        Some((name, number)) = rx.recv() => {
            eprintln!("snaptop: {name} again: leaving now");
            std::process::exit(128 + number);
        }
        _ = tokio::time::sleep(CANCEL_GRACE) => {
            eprintln!(
                "snaptop: the run did not wrap up within {}s of the signal: leaving",
                CANCEL_GRACE.as_secs()
            );
            std::process::exit(i32::from(EXIT_PARTIAL));
        }
    }
}

/// Prints progress and log lines until the run is over (`done`), then what is still
/// buffered. Ending on `done`, not on the channel closing, means nothing that still holds
/// a sender can keep the process waiting.
async fn print_progress(mut rx: mpsc::Receiver<EngineEvent>, done: CancellationToken) {
    let mut last_line = String::new();
    let mut last_at = Instant::now();
    let mut last_states: Vec<StageState> = vec![];
    loop {
        let ev = tokio::select! {
            biased;
            ev = rx.recv() => ev,
            _ = done.cancelled() => rx.try_recv().ok(),
        };
        let Some(ev) = ev else { break };
        match ev {
            EngineEvent::Started(p) | EngineEvent::Progress(p) => {
                let states: Vec<StageState> = p.stages.iter().map(|s| s.state).collect();
                let line = progress_line(&p);
                let due = last_at.elapsed() >= PROGRESS_LINE_INTERVAL;
                if line != last_line && (states != last_states || due) {
                    eprintln!("{line}");
                    last_line = line;
                    last_at = Instant::now();
                    last_states = states;
                }
            }
            EngineEvent::Log(l) => {
                let level = match l.level {
                    Level::Info => "info",
                    Level::Warn => "warning",
                    Level::Error => "error",
                };
                eprintln!("{level}: {}: {}", l.source, sanitize(&l.message));
            }
            _ => {}
        }
    }
}

/// Progress lines are cut to this many columns (a CI log, a split pane).
pub const PROGRESS_LINE_COLUMNS: usize = 120;

/// `[ 42%] repos 15/15 repos done · deployment history 7/60 files · … · ETA 4s`, the
/// fullest form that fits [`PROGRESS_LINE_COLUMNS`]: stages in full, else compact
/// (`deployment history 7/60`, `repos ✓`), then without the request counts, and cut with
/// `…` as a last resort.
fn progress_line(p: &Progress) -> String {
    let shown = || p.stages.iter().filter(|s| s.state != StageState::Skipped);
    let full: Vec<String> = shown()
        .map(|s| {
            let mark = match s.state {
                StageState::Done => " done",
                StageState::Failed => " FAILED",
                _ => "",
            };
            format!(
                "{} {}/{} {}{mark}",
                s.stage.label(),
                s.done,
                s.total,
                s.stage.unit()
            )
        })
        .collect();
    let compact: Vec<String> = shown()
        .map(|s| match s.state {
            StageState::Done => format!("{} ✓", s.stage.label()),
            StageState::Failed => format!("{} ✗", s.stage.label()),
            StageState::Pending => format!("{} …", s.stage.label()),
            _ => format!("{} {}/{}", s.stage.label(), s.done, s.total),
        })
        .collect();
    let eta = match p.eta {
        Some(d) => format!("ETA {}s", d.as_secs()),
        None => "ETA learning".to_string(),
    };
    let head = format!("[{:3.0}%]", p.fraction * 100.0);
    let numbers = format!("{} requests, {} not modified", p.requests, p.not_modified);
    let candidates = [
        format!("{head} {} · {numbers} · {eta}", full.join(" · ")),
        format!("{head} {} · {numbers} · {eta}", compact.join(" · ")),
        format!("{head} {} · {eta}", compact.join(" · ")),
    ];
    let width = |s: &str| unicode_width::UnicodeWidthStr::width(s);
    match candidates
        .iter()
        .find(|c| width(c) <= PROGRESS_LINE_COLUMNS)
    {
        Some(line) => line.clone(),
        None => cut(&candidates[2], PROGRESS_LINE_COLUMNS),
    }
}

/// `s` cut to `columns`, ending in `…` when cut (the screen's rule, for a CI log).
fn cut(s: &str, columns: usize) -> String {
    crate::ui::text::fit(s, columns).into_owned()
}

/// The last progress line: `[100%] complete in 0.6s · 251 requests, 250 not modified`.
fn final_line(s: &Snapshot) -> String {
    let how = if s.cancelled {
        "cancelled".to_string()
    } else if s.partial {
        format!("partial ({} failed)", s.failures.len())
    } else {
        "complete".to_string()
    };
    let secs = s.stats.duration_ms as f64 / 1000.0;
    cut(
        &format!(
            "[100%] {how} in {secs:.1}s · {} requests, {} not modified",
            s.stats.requests, s.stats.not_modified
        ),
        PROGRESS_LINE_COLUMNS,
    )
}

fn print_summary(s: &Snapshot) {
    let mut out = std::io::stdout().lock();
    let width = s
        .components
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let _ = write!(out, "{:width$}", "component");
    for env in &s.environments {
        let _ = write!(out, "  {env:24}");
    }
    let _ = writeln!(out);
    for comp in &s.components {
        let _ = write!(out, "{comp:width$}");
        for env in &s.environments {
            let text = s
                .cell(env, comp)
                .and_then(|c| c.tag.clone())
                .map(|t| sanitize(&t))
                .unwrap_or_else(|| "-".into());
            let short: String = text.chars().take(24).collect();
            let _ = write!(out, "  {short:24}");
        }
        let _ = writeln!(out);
    }
    let st = &s.stats;
    let _ = writeln!(
        out,
        "{} requests ({} not modified, {} from cache), {} retries, {} rate-limit waits, {} ms{}",
        st.requests,
        st.not_modified,
        st.cache_hits,
        st.retries,
        st.rate_limited_waits,
        st.duration_ms,
        if s.partial { " — PARTIAL" } else { "" }
    );
}

/// Outside text on a terminal: no control characters or escape sequences.
fn sanitize(s: &str) -> String {
    crate::sanitize::for_terminal(s).into_owned()
}

// --- the documented JSON shape ------------------------------------------------------------

#[derive(Serialize)]
struct SnapshotJson {
    run_id: u64,
    #[serde(with = "time::serde::rfc3339")]
    started_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    finished_at: time::OffsetDateTime,
    partial: bool,
    cancelled: bool,
    failures: Vec<crate::engine::model::Failure>,
    environments: BTreeMap<String, BTreeMap<String, CellJson>>,
    stats: StatsJson,
}

#[derive(Serialize)]
struct CellJson {
    tag: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    deployed_at: Option<time::OffsetDateTime>,
    deploy_commit: Option<String>,
    /// How a digest pin was tied to a source version (`via`: newTag, replaced tag, registry).
    resolved: Option<crate::engine::model::Resolved>,
    source_commit: Option<String>,
    /// Why the tickets are unknown ("digest not resolved", "not deployed").
    unresolved: Option<String>,
    build: Option<BuildJson>,
    health: BTreeMap<String, Option<f64>>,
    /// null: unknown (see `unresolved`); `[]`: nothing shipped.
    tickets: Option<Vec<crate::engine::model::Ticket>>,
    /// Parts this run could not fetch, carried from an earlier one: part → when fetched.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    stale: BTreeMap<crate::engine::model::Part, crate::engine::model::AsOf>,
    events: Vec<EventJson>,
}

#[derive(Serialize)]
struct BuildJson {
    number: Option<String>,
    status: Option<String>,
    state: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<time::OffsetDateTime>,
    web_url: Option<String>,
}

#[derive(Serialize)]
struct EventJson {
    #[serde(with = "time::serde::rfc3339")]
    at: time::OffsetDateTime,
    from: Option<String>,
    to: Option<String>,
    commit: String,
}

#[derive(Serialize)]
struct StatsJson {
    requests: u64,
    not_modified: u64,
    cache_hits: u64,
    retries: u64,
    rate_limited_waits: u64,
    duration_ms: u64,
    per_source: BTreeMap<String, crate::engine::model::SourceStats>,
}

impl From<&Snapshot> for SnapshotJson {
    fn from(s: &Snapshot) -> Self {
        let environments = s
            .cells
            .iter()
            .map(|(env, comps)| {
                let comps = comps
                    .iter()
                    .map(|(name, c)| {
                        (
                            name.clone(),
                            CellJson {
                                tag: c.tag.clone(),
                                deployed_at: c.deployed_at,
                                deploy_commit: c.deploy_commit.clone(),
                                resolved: c.resolved.clone(),
                                source_commit: c.source_commit.clone(),
                                unresolved: c.unresolved.clone(),
                                build: c.build.as_ref().map(|b| BuildJson {
                                    number: b.number.clone(),
                                    status: b.status.clone(),
                                    state: b.state.clone(),
                                    finished_at: b.finished_at,
                                    web_url: b.web_url.clone(),
                                }),
                                health: c.health.clone(),
                                tickets: c.tickets.clone(),
                                stale: c.stale.clone(),
                                events: c
                                    .events
                                    .iter()
                                    .map(|e| EventJson {
                                        at: e.at,
                                        from: e.from.clone(),
                                        to: e.to.clone(),
                                        commit: e.commit.clone(),
                                    })
                                    .collect(),
                            },
                        )
                    })
                    .collect();
                (env.clone(), comps)
            })
            .collect();
        let st = &s.stats;
        SnapshotJson {
            run_id: s.run_id,
            started_at: s.started_at,
            finished_at: s.finished_at,
            partial: s.partial,
            cancelled: s.cancelled,
            failures: s.failures.clone(),
            environments,
            stats: StatsJson {
                requests: st.requests,
                not_modified: st.not_modified,
                cache_hits: st.cache_hits,
                retries: st.retries,
                rate_limited_waits: st.rate_limited_waits,
                duration_ms: st.duration_ms,
                per_source: st.per_source.clone(),
            },
        }
    }
}

/// The documented JSON of a snapshot (also used by tests and the bench).
pub fn snapshot_json(s: &Snapshot) -> serde_json::Value {
    serde_json::to_value(SnapshotJson::from(s)).unwrap_or_default()
}

/// This machine's host name (for the schedule's per-box jitter), "localhost" when it
/// cannot be read.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

// --- `snaptop cache` ----------------------------------------------------------------------

/// Exit code of `snaptop cache` when the command line names no namespace.
pub const EXIT_USAGE: u8 = 2;

/// What `snaptop cache` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheCommand {
    /// Rewrite the store's files around their live data.
    Compact,
    Stats {
        json: bool,
    },
    /// A namespace name or `all`, checked when run.
    Clear {
        namespace: String,
    },
    Purge,
}

/// The store and cache settings `snaptop cache` works on: the configured store, or
/// with no config (or one with only `[ui]`/`[keys]`) the demo mode's store, which is
/// temporary and so empty.
pub fn cache_target(config: Option<&Path>) -> anyhow::Result<(Store, crate::config::CacheConfig)> {
    let path = config
        .map(Path::to_owned)
        .or_else(|| config::default_config_path().filter(|p| p.is_file()));
    match path.as_deref().map(config::ConfigFile::load).transpose()? {
        Some(config::ConfigFile::Sources(config)) => {
            Ok((open_store(&config)?, config.cache.clone()))
        }
        Some(config::ConfigFile::UiOnly(_)) | None => {
            eprintln!("snaptop: no sources configured: demo mode, whose store is temporary");
            Ok((Store::temporary()?, crate::config::CacheConfig::default()))
        }
    }
}

/// `all` or a namespace; the error is the one line to print.
pub fn parse_clear_target(name: &str) -> Result<crate::cache::maintenance::Job, String> {
    use crate::cache::{Namespace, maintenance::Job};
    if name.trim().eq_ignore_ascii_case("all") {
        return Ok(Job::ClearAll);
    }
    Namespace::parse(name)
        .map(Job::ClearNamespace)
        .ok_or_else(|| {
            let valid: Vec<&str> = Namespace::ALL.iter().map(|n| n.as_str()).collect();
            format!(
                "no cache namespace {:?}: use one of {}, or all",
                sanitize(name),
                valid.join(", ")
            )
        })
}

/// What a `snaptop cache …` command asks for.
enum CacheAsk {
    Stats { json: bool },
    Job(crate::cache::maintenance::Job),
}

/// The command's ask; a bad namespace is said here and is the exit code.
fn cache_ask(command: &CacheCommand) -> Result<CacheAsk, u8> {
    use crate::cache::maintenance::Job;
    Ok(match command {
        CacheCommand::Stats { json } => CacheAsk::Stats { json: *json },
        CacheCommand::Clear { namespace } => match parse_clear_target(namespace) {
            Ok(job) => CacheAsk::Job(job),
            Err(e) => {
                eprintln!("snaptop: {e}");
                return Err(EXIT_USAGE);
            }
        },
        CacheCommand::Purge => CacheAsk::Job(Job::PurgeExpired),
        CacheCommand::Compact => CacheAsk::Job(Job::CompactStore),
    })
}

fn print_cache_stats(report: &crate::cache::CacheReport, json: bool) -> u8 {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = serde_json::to_writer_pretty(&mut out, &cache_stats_json(report));
        let _ = writeln!(out);
    } else {
        let _ = write!(out, "{}", cache_stats_text(report));
    }
    let _ = out.flush();
    EXIT_OK
}

/// A job's outcome, printed; `by` follows the line (who ran it).
fn print_cache_job(result: Result<crate::cache::maintenance::Done, String>, by: &str) -> u8 {
    match result {
        Ok(done) => {
            println!("{}{by}", crate::ui::cache::done_text(&done));
            EXIT_OK
        }
        Err(e) => {
            eprintln!("snaptop: {e}");
            EXIT_FAILED
        }
    }
}

/// Runs `snaptop cache ...` on an opened cache and returns the exit code.
pub fn cache_command(cache: &crate::cache::HttpCache, command: &CacheCommand) -> u8 {
    match cache_ask(command) {
        Ok(CacheAsk::Stats { json }) => print_cache_stats(&cache.report(), json),
        Ok(CacheAsk::Job(job)) => print_cache_job(job.run(cache), ""),
        Err(code) => code,
    }
}

/// [`cache_command`] on the cache of the daemon that holds the store.
pub async fn cache_command_on(client: &crate::serve::client::Client, command: &CacheCommand) -> u8 {
    match cache_ask(command) {
        Ok(CacheAsk::Stats { json }) => match client.cache_report().await {
            Ok(report) => print_cache_stats(&report, json),
            Err(e) => {
                eprintln!("snaptop: {e}");
                EXIT_FAILED
            }
        },
        Ok(CacheAsk::Job(job)) => print_cache_job(client.cache_job(job).await, " (by the daemon)"),
        Err(code) => code,
    }
}

/// The rows of `snaptop cache stats`, one column per namespace and `all`.
pub fn cache_stats_text(report: &crate::cache::CacheReport) -> String {
    use crate::cache::Namespace;
    use crate::ui::text;
    let columns: Vec<(String, Option<Namespace>)> = std::iter::once(("all".to_string(), None))
        .chain(Namespace::ALL.iter().map(|n| (n.to_string(), Some(*n))))
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let header = |title: &str| {
        std::iter::once(title.to_string())
            .chain(columns.iter().map(|(name, _)| name.clone()))
            .collect::<Vec<_>>()
    };
    rows.push(header("hit rate"));
    let windows = report.hit_rates(None);
    for (i, w) in windows.iter().enumerate() {
        let mut row = vec![w.label.clone()];
        for (_, ns) in &columns {
            row.push(report.hit_rates(*ns)[i].text());
        }
        rows.push(row);
    }
    rows.push(vec![]);
    rows.push(header("lifetime counters"));
    let per_ns: Vec<[(&'static str, u64); 13]> = columns
        .iter()
        .map(|(_, ns)| report.lifetime_of(*ns).fields())
        .collect();
    for i in 0..per_ns[0].len() {
        let mut row = vec![per_ns[0][i].0.to_string()];
        row.extend(per_ns.iter().map(|f| text::count(f[i].1)));
        rows.push(row);
    }
    rows.push(vec![]);
    rows.push(header("store tier"));
    let mut entries = vec!["entries".to_string()];
    let mut bytes = vec!["bytes".to_string()];
    for (_, ns) in &columns {
        let g = report.disk_of(*ns);
        entries.push(text::count(g.entries));
        bytes.push(text::bytes(g.bytes));
    }
    rows.push(entries);
    rows.push(bytes);
    let widths: Vec<usize> = (0..=columns.len())
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|t| unicode_width::UnicodeWidthStr::width(t.as_str()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                line.push_str(&format!("{cell:<w$}", w = widths[0]));
            } else {
                line.push_str(&format!("  {cell:>w$}", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let disk = report.disk_total();
    out.push('\n');
    out.push_str(&format!(
        "store tier: {} entries, {} of {}\n",
        text::count(disk.entries),
        text::bytes(disk.bytes),
        text::bytes(report.disk_budget_bytes)
    ));
    if report.memory_budget_bytes == 0 {
        out.push_str("memory tier: off (memory_mib = 0)\n");
    } else {
        out.push_str(&format!(
            "memory tier: {} entries, {} of {}\n",
            text::count(report.memory.entries),
            text::bytes(report.memory.bytes),
            text::bytes(report.memory_budget_bytes)
        ));
    }
    out.push_str(&format!(
        "store files: {} on disk, {} live data\n",
        text::bytes(report.store_file_bytes),
        text::bytes(report.store_live_bytes)
    ));
    out.push_str(&format!(
        "runs recorded: {} (hit rate = (hits + 304s) / (hits + 304s + misses))\n",
        report.runs.len()
    ));
    out
}

/// The documented JSON of `snaptop cache stats --json`: hit rates are null for a
/// window without lookups, and `windows` names what each rate covers.
pub fn cache_stats_json(report: &crate::cache::CacheReport) -> serde_json::Value {
    use crate::cache::Namespace;
    use serde_json::json;
    let recent = report.runs_in_window(10);
    let one = |ns: Option<Namespace>, name: &str| {
        let rates = report.hit_rates(ns);
        let disk = report.disk_of(ns);
        json!({
            "name": name,
            "hit_rate": {
                "last_run": rates[0].rate,
                "last_10_runs": rates[1].rate,
                "lifetime": rates[2].rate,
            },
            "lifetime": report.lifetime_of(ns),
            "last_run": report.last_runs(ns, 1),
            "last_10_runs": report.last_runs(ns, 10),
            "store": { "entries": disk.entries, "bytes": disk.bytes },
        })
    };
    let windows = report.hit_rates(None);
    json!({
        "schema": 1,
        "windows": {
            "last_run": windows[0].label,
            "last_10_runs": windows[1].label,
            "lifetime": windows[2].label,
        },
        "runs_recorded": report.runs.len(),
        "runs_in_last_10": recent,
        "last_run_id": report.runs.last().map(|r| r.run_id),
        "all": one(None, "all"),
        "namespaces": Namespace::ALL.iter().map(|n| one(Some(*n), n.as_str())).collect::<Vec<_>>(),
        "memory": {
            "entries": report.memory.entries,
            "bytes": report.memory.bytes,
            "budget_bytes": report.memory_budget_bytes,
        },
        "store": {
            "entries": report.disk_total().entries,
            "bytes": report.disk_total().bytes,
            "budget_bytes": report.disk_budget_bytes,
            "file_bytes": report.store_file_bytes,
            "live_bytes": report.store_live_bytes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_fit_120_columns_and_say_where_they_are_cut() {
        let mut p = crate::ui::sample::progress();
        let line = progress_line(&p);
        assert!(
            unicode_width::UnicodeWidthStr::width(line.as_str()) <= PROGRESS_LINE_COLUMNS,
            "{line}"
        );
        assert!(
            line.starts_with("[ 42%]") && line.contains("ETA 35s"),
            "{line}"
        );
        // Absurdly many stages are cut, and say so.
        for _ in 0..4 {
            p.stages.extend(p.stages.clone());
        }
        let line = progress_line(&p);
        assert!(line.ends_with('…'), "{line}");
        assert!(unicode_width::UnicodeWidthStr::width(line.as_str()) <= PROGRESS_LINE_COLUMNS);
        let done = final_line(&crate::ui::sample::snapshot());
        assert!(
            done.starts_with("[100%] complete in 4.2s · 348 requests"),
            "{done}"
        );
    }

    #[test]
    fn a_bad_namespace_is_one_line_naming_the_valid_ones() {
        use crate::cache::{Namespace, maintenance::Job};
        assert_eq!(parse_clear_target("ALL"), Ok(Job::ClearAll));
        assert_eq!(
            parse_clear_target("jira"),
            Ok(Job::ClearNamespace(Namespace::Jira))
        );
        let e = parse_clear_target("gh\x1b[2J").unwrap_err();
        assert!(!e.contains('\n') && !e.contains('\x1b'), "{e}");
        assert!(
            e.contains("github, teamcity, datadog, jira, registry, or all"),
            "{e}"
        );
    }

    #[test]
    fn stats_text_names_each_window_and_says_no_lookups() {
        let report = crate::cache::CacheReport::default();
        let text = cache_stats_text(&report);
        let line = text.lines().find(|l| l.starts_with("lifetime ")).unwrap();
        assert!(line.contains("no lookups"), "{text}");
        assert!(!text.contains("0.0%"), "{text}");
        assert!(text.contains("last run "), "{text}");
        let json = cache_stats_json(&report);
        assert!(json["all"]["hit_rate"]["lifetime"].is_null());
        assert_eq!(json["windows"]["last_10_runs"], "last 10 runs");
    }
}
