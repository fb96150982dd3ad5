//! The event loop: terminal input, engine events and signals in one `select!`, the
//! screen drawn only when something changed.
//!
//! Every catchable signal that ends a program (INT, QUIT, TERM, HUP) gives the terminal
//! back, flushes the store and exits with 128 + the signal's number, as a shell reports
//! a program a signal ended. SIGTSTP (and Ctrl-Z, which raw mode turns into a key)
//! suspends: the terminal is given back until the shell continues the process.
//!
//! Idle means idle: there is no tick. The loop sleeps until a key, an engine event, a
//! signal, or the moment a relative time on screen ("7m ago") changes its text. Bursts
//! are coalesced: every pending engine event is applied before drawing, and frames are
//! at least [`FRAME_MIN_MS`] apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use ratatui::crossterm::event::EventStream;
use time::{OffsetDateTime, UtcOffset};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::keymap::KeyMap;
use super::pacer::FramePacer;
use super::report_jobs::ReportJobs;
use super::terminal::TerminalGuard;
use super::{App, Startup};
use crate::cache::HttpCache;
use crate::config::{self, Config, Secrets};
use crate::engine::events::{EngineEvent, Level};
use crate::engine::model::Trigger;
use crate::engine::scheduler::ScheduleSetup;
use crate::engine::{self, EngineHandle};
use crate::headless;
use crate::report::ReportRequest;
use crate::serve::client::{
    AttachItem, Attachment, Autostart, Client, ConnectError, Link, LinkEvent,
};
use crate::serve::wire::{AttachState, Hello, TriggerOutcome};
use crate::store::Store;
use crate::ui::snapshot::HISTORY_ROWS;
use crate::ui::theme::Theme;
use crate::ui::{self, AppEvent, Effect};

/// At most one frame per this many milliseconds (≈20 frames/s while busy).
pub const FRAME_MIN_MS: u64 = 50;
/// How long quitting waits for a cancelled run to commit its partial result.
const CANCEL_WAIT_MS: u64 = 3_000;
/// How long quitting waits for the store to reach the disk.
const FLUSH_WAIT_MS: u64 = 10_000;

/// How the TUI ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The user quit, or the terminal's input ended.
    Quit,
    /// A signal ended it (its number).
    Signal(i32),
}

impl Exit {
    /// The process exit status: 0, or 128 + the signal's number.
    pub fn code(self) -> u8 {
        match self {
            Exit::Quit => 0,
            Exit::Signal(n) => (128 + n).clamp(0, 255) as u8,
        }
    }
}

/// Command-line choices for the TUI.
#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    /// `--config FILE`; None: the default config file, or demo mode when there is none.
    pub config: Option<PathBuf>,
    /// `--theme NAME|FILE`; overrides `[ui] theme`.
    pub theme: Option<String>,
    /// `--report PREFIX`: the Locust run the Reports tab opens at start.
    pub report: Option<PathBuf>,
    /// `--targets FILE`: targets checked against every report the tab opens.
    pub targets: Option<PathBuf>,
    /// `--compare BASE_PREFIX`: the earlier run the `--report` run is compared with.
    pub compare: Option<PathBuf>,
    /// `--embedded`: run the engine in this process, never attach to a daemon.
    pub embedded: bool,
}

/// Where the data comes from.
enum Source {
    Live {
        config: Box<Config>,
        secrets: Secrets,
        store: Store,
    },
    /// The built-in simulator, with the `[schedule]` of a UI-only config if any.
    Demo {
        schedule: crate::schedule::Layer,
        store: Store,
    },
    /// A daemon's engine, through its socket.
    Attached(Box<Attach>),
}

/// A pane attached to a daemon, before its first frame.
struct Attach {
    client: Client,
    hello: Hello,
    attachment: Attachment,
    state: AttachState,
    autostart: Option<Autostart>,
    /// A warning for the footer (none yet).
    warning: Option<String>,
}

impl Source {
    fn is_demo(&self) -> bool {
        matches!(self, Source::Demo { .. })
    }
}

/// How a pane finds its engine.
enum Plan {
    /// A daemon at this socket; started by this pane when `autostart` allows.
    Attach {
        socket: PathBuf,
        autostart: Option<Autostart>,
    },
    Embedded,
}

/// Attaches to the daemon at `socket`, starting one when allowed and there is none.
/// None: no daemon and none may be started (the pane runs its own engine).
async fn attach(socket: &Path, autostart: Option<Autostart>) -> anyhow::Result<Option<Attach>> {
    let (client, hello) = match Client::connect(socket).await {
        Ok(found) => found,
        Err(ConnectError::Absent(_)) => match &autostart {
            Some(auto) => crate::serve::daemon::start_and_wait(&auto.config, socket).await?,
            None => return Ok(None),
        },
        Err(e) => return Err(e.into()),
    };
    let mut attachment = client.attach().await.map_err(anyhow::Error::msg)?;
    let state = match attachment.next().await {
        Some(Ok(AttachItem::State(state))) => *state,
        Some(Ok(AttachItem::Event { .. })) => anyhow::bail!(
            "daemon at {}: the attach stream did not start with the state",
            socket.display()
        ),
        Some(Err(e)) => anyhow::bail!("daemon at {}: {e}", socket.display()),
        None => anyhow::bail!("daemon at {}: closed the attach stream", socket.display()),
    };
    tracing::info!(pid = hello.pid, socket = %socket.display(), "attached");
    Ok(Some(Attach {
        client,
        hello,
        attachment,
        state,
        autostart,
        warning: None,
    }))
}

/// Runs the TUI until the user quits or a signal ends it. Everything that can be wrong
/// with the config, the keys, the theme or the store is reported before the terminal is
/// touched.
pub fn main(opts: TuiOptions) -> anyhow::Result<Exit> {
    let started = Instant::now();
    // Asked while there is a single thread: `time` refuses later (and UTC is the fallback).
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let config_path = opts
        .config
        .clone()
        .or_else(|| config::default_config_path().filter(|p| p.is_file()));
    let file = config_path
        .as_deref()
        .map(config::ConfigFile::load)
        .transpose()?;
    // A mistake in [keys] or [ui] names its line like every other config error.
    let at_line = |section: &str, keys: &[&str], e: &dyn std::fmt::Display| -> anyhow::Error {
        let path = config_path
            .as_deref()
            .unwrap_or(std::path::Path::new("config"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let line = keys
            .iter()
            .find_map(|k| config::line_of_key(&text, section, k))
            .or_else(|| config::line_of_section(&text, section))
            .unwrap_or(1);
        anyhow::anyhow!("{}:{line}: {e}", path.display())
    };
    let (keys, ui_theme, mouse) = match &file {
        Some(f) => (
            KeyMap::with_overrides(f.keys()).map_err(|e| {
                let mut names = vec![e.entry().to_string()];
                if let crate::app::keymap::KeyMapError::Conflict { first, .. } = &e {
                    names.push(first.clone());
                }
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                at_line("keys", &names, &e)
            })?,
            f.ui().theme.clone(),
            f.ui().mouse,
        ),
        None => (KeyMap::defaults(), None, false),
    };
    let from_config = opts.theme.is_none() && ui_theme.is_some();
    let theme_name = opts.theme.or(ui_theme).unwrap_or_else(|| "default".into());
    let theme = Theme::load(&theme_name, user_theme_dir().as_deref(), no_color()).map_err(|e| {
        if from_config {
            at_line("ui", &["theme"], &e)
        } else {
            e.into()
        }
    })?;
    // Before the store opens: a compaction at open is logged.
    let _log = headless::init_file_logging(&config::default_state_dir());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    // A config with sources is served by one daemon that every pane attaches to (the
    // first pane starts it); `--embedded`, `[serve] autostart = false` with no daemon
    // running, and demo mode run the engine here.
    let absolute = config_path
        .as_deref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let plan = match (&file, &absolute) {
        _ if opts.embedded => Plan::Embedded,
        (Some(config::ConfigFile::Sources(c)), Some(path)) => Plan::Attach {
            socket: crate::serve::socket_of(path, &c.serve),
            autostart: (c.serve.autostart != Some(false)).then(|| Autostart {
                config: path.clone(),
            }),
        },
        (Some(f @ config::ConfigFile::UiOnly(_)), _) if f.serve().socket.is_some() => {
            Plan::Attach {
                socket: f.serve().socket.clone().unwrap_or_default(),
                autostart: None,
            }
        }
        _ => Plan::Embedded,
    };
    let mut attached = None;
    let mut fallback = None;
    if let Plan::Attach { socket, autostart } = plan {
        let team_only = !matches!(file, Some(config::ConfigFile::Sources(_)));
        // A missing secret stops here, before a daemon is started that would stop on it.
        if let Some(config::ConfigFile::Sources(c)) = &file
            && autostart.is_some()
            && !socket.exists()
        {
            c.resolve_secrets()?;
        }
        match runtime.block_on(attach(&socket, autostart)) {
            Ok(Some(a)) => attached = Some(a),
            Ok(None) if team_only => anyhow::bail!(
                "no daemon serves {} (`[serve] socket` of {}): start it with `snaptop serve`",
                socket.display(),
                config_path
                    .as_deref()
                    .unwrap_or(Path::new("config"))
                    .display()
            ),
            Ok(None) => {}
            Err(e) if team_only => return Err(e),
            Err(e) => {
                if e.downcast_ref::<ConnectError>().is_some_and(|c| {
                    matches!(c, ConnectError::Refused(_) | ConnectError::Mismatch(_))
                }) {
                    return Err(e);
                }
                tracing::warn!("no daemon: {e:#}; running the engine in this pane");
                fallback = Some(format!("{e:#}; running the engine in this pane"));
            }
        }
    }
    let source = match (attached, file) {
        (Some(a), _) => Source::Attached(Box::new(a)),
        (None, Some(config::ConfigFile::Sources(config))) => {
            let mut secrets = config.resolve_secrets()?;
            secrets.warnings.extend(fallback);
            let store = headless::open_store(&config)?;
            Source::Live {
                config,
                secrets,
                store,
            }
        }
        (None, Some(file @ config::ConfigFile::UiOnly(_))) => Source::Demo {
            schedule: file.schedule_layer(),
            store: Store::temporary().context("demo store")?,
        },
        (None, None) => Source::Demo {
            schedule: Default::default(),
            store: Store::temporary().context("demo store")?,
        },
    };
    tracing::info!(theme = %theme.name, demo = source.is_demo(), attached = matches!(source, Source::Attached(_)), "snaptop starting");
    // Demo mode shows a bundled run unless one was asked for; its files live as long
    // as the program.
    let mut demo_dir = None;
    let open_reports = opts.report.is_some();
    let report = match opts.report {
        Some(path) => Some(ReportRequest {
            inputs: vec![path],
            targets: opts.targets.clone(),
            compare_base: opts.compare.map(|p| vec![p]),
            ..ReportRequest::default()
        }),
        None if source.is_demo() => {
            let dir = tempfile::Builder::new()
                .prefix("snaptop-demo-report-")
                .tempdir()
                .context("demo report directory")?;
            let mut request = crate::report::demo::write_demo_run(dir.path())
                .context("writing the demo report")?;
            if opts.targets.is_some() {
                request.targets = opts.targets.clone();
            }
            demo_dir = Some(dir);
            Some(request)
        }
        None => None,
    };
    let setup = Setup {
        started,
        offset,
        keys,
        theme,
        mouse,
        source,
        report,
        open_reports,
        report_targets: opts.targets,
    };
    let result = runtime.block_on(run(setup));
    // Background tasks (a cancelled run, the simulator) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    drop(demo_dir);
    result
}

/// What the TUI shows first, read from the store before any network call. A latest
/// snapshot that does not read back (damaged bytes, a format this snaptop cannot
/// decode) does not stop the TUI: the newest snapshot that does is shown, or none, with
/// an error line naming the store; the next run replaces it.
pub fn read_startup(store: &Store) -> anyhow::Result<Startup> {
    let latest = store.latest_or_fallback()?;
    let store_problem = latest.unreadable.map(|why| {
        tracing::error!(store = %store.path().display(), "latest snapshot unreadable: {why}");
        let shown = match &latest.snapshot {
            Some(s) => format!("showing run #{}", s.run_id),
            None => "no snapshot to show".to_string(),
        };
        format!(
            "store {}: the latest snapshot could not be read ({shown}; the next run replaces it)",
            store.path().display()
        )
    });
    let history = store.run_history(HISTORY_ROWS)?;
    let ids: Vec<u64> = history.iter().map(|r| r.id).collect();
    Ok(Startup {
        snapshot: latest.snapshot,
        run_details: store.run_details(&ids),
        history,
        store_problem,
        ..Startup::default()
    })
}

/// `$XDG_CONFIG_HOME/snaptop/themes`.
pub fn user_theme_dir() -> Option<PathBuf> {
    config::default_config_path().and_then(|p| p.parent().map(|d| d.join("themes")))
}

/// `NO_COLOR` set to anything but the empty string (no-color.org).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

struct Setup {
    started: Instant,
    offset: UtcOffset,
    keys: KeyMap,
    theme: Theme,
    mouse: bool,
    source: Source,
    /// The report to open at start.
    report: Option<ReportRequest>,
    /// `--report` asked for it: start on the Reports tab.
    open_reports: bool,
    report_targets: Option<PathBuf>,
}

/// The running engine and what keeps it alive.
struct Engine {
    handle: EngineHandle,
    events: mpsc::Receiver<EngineEvent>,
    /// The demo's simulator; dropping it stops the server.
    _sim: Option<crate::sim::RunningSim>,
}

/// Where the pane's engine is: here, or a daemon's through its socket.
enum Backend {
    Embedded {
        engine: Option<Engine>,
        cache: HttpCache,
        store: Store,
    },
    Attached(Link),
}

/// What the backend says next.
enum BackendEvent {
    Engine(EngineEvent),
    Link(LinkEvent),
    /// The embedded engine's task ended.
    Stopped,
}

async fn run(setup: Setup) -> anyhow::Result<Exit> {
    let Setup {
        started,
        offset,
        keys,
        theme,
        mouse,
        mut source,
        report,
        open_reports,
        report_targets,
    } = setup;
    let demo = source.is_demo();
    // The last snapshot and the history come from the store (or the daemon) before any
    // network call.
    let mut attached_state = None;
    let startup = match &mut source {
        Source::Live { secrets, store, .. } => Startup {
            warnings: secrets.warnings.clone(),
            ..read_startup(store)?
        },
        Source::Demo { store, .. } => read_startup(store)?,
        Source::Attached(a) => {
            attached_state = Some(std::mem::take(&mut a.state));
            Startup {
                warnings: a.warning.iter().cloned().collect(),
                ..Startup::default()
            }
        }
    };
    let startup = Startup {
        demo,
        report_targets,
        ..startup
    };
    let mut app = App::new(startup, keys, theme, offset);
    if let (Some(state), Source::Attached(a)) = (attached_state, &source) {
        app.on_event(AppEvent::Link(attached_status(&a.hello, a.client.socket())));
        app.on_event(AppEvent::Attached(Box::new(state)));
    }
    let (app_tx, mut app_rx) = mpsc::unbounded_channel::<AppEvent>();
    let mut reports = ReportJobs::new(app_tx.clone());
    if open_reports {
        app.on_action(crate::app::action::Action::TabReports);
    }
    if let Some(request) = report {
        app.on_event(reports.load(request, false));
    }
    // Before the terminal is touched: from here on no signal ends the process with the
    // terminal left raw.
    let mut signals = Signals::new()?;

    let mut guard = TerminalGuard::enter(mouse).context("cannot set up the terminal")?;
    if let Ok(size) = guard.terminal.size() {
        app.set_size(size.width, size.height);
    }
    guard
        .terminal
        .draw(|f| ui::draw(f, &app, OffsetDateTime::now_utc()))?;
    let first_frame = started.elapsed();
    tracing::info!(ms = first_frame.as_millis() as u64, "first frame drawn");
    let mut pacer = FramePacer::new(Duration::from_millis(FRAME_MIN_MS));
    pacer.drawn(Instant::now(), app.next_change(OffsetDateTime::now_utc()));

    let mut backend = match source {
        Source::Attached(a) => {
            let Attach {
                client,
                hello,
                attachment,
                autostart,
                ..
            } = *a;
            let link = Link::start(client, hello, attachment, autostart);
            load_cache_report_from(&link.client, &app_tx);
            Backend::Attached(link)
        }
        source => {
            // One cache per process: the engine fills it, the Cache tab reads its
            // counters and runs its maintenance jobs on it. Opened after the first
            // frame (it reads the index).
            let (cache_config, store) = match &source {
                Source::Live { config, store, .. } => (config.cache.clone(), store.clone()),
                Source::Demo { store, .. } => {
                    (crate::config::CacheConfig::default(), store.clone())
                }
                Source::Attached(_) => unreachable!("matched above"),
            };
            let cache = HttpCache::open(store.clone(), cache_config);
            load_cache_report(&cache, &app_tx);
            let engine = match start_engine(source, &cache).await {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!("engine did not start: {e:#}");
                    app.say(Level::Error, format!("cannot start: {e:#}"));
                    None
                }
            };
            Backend::Embedded {
                engine,
                cache,
                store,
            }
        }
    };
    // The engine may have said something already (a start error); show it.
    pacer.mark_dirty();
    let mut input = EventStream::new();
    let mut exit = Exit::Quit;

    loop {
        let wake = pacer.wake_at();
        let reload_at = reports.reload_at();
        let mut dirty = false;
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(ev)) => dirty |= app.on_terminal(&ev),
                Some(Err(e)) => {
                    tracing::warn!("terminal input failed: {e}");
                    break;
                }
                None => break,
            },
            ev = next_backend_event(&mut backend) => {
                dirty |= apply_backend_event(&mut app, &mut backend, ev);
                // Apply everything already queued before drawing once.
                while let Some(ev) = try_backend_event(&mut backend) {
                    dirty |= apply_backend_event(&mut app, &mut backend, ev);
                }
            }
            Some(ev) = app_rx.recv() => {
                reports.observe(&ev);
                dirty |= app.on_event(ev);
            }
            () = reports.changed() => {}
            _ = sleep_until(reload_at) => {
                if let Some(ev) = reports.reload() {
                    dirty |= app.on_event(ev);
                }
            }
            signal = signals.recv() => match signal {
                Signal::End(n) => {
                    tracing::info!("signal {n} ({}): quitting", signal_name(n));
                    exit = Exit::Signal(n);
                    break;
                }
                Signal::Stop => {
                    tracing::info!("SIGTSTP: suspending");
                    if !suspend(&mut guard) {
                        break;
                    }
                    pacer.mark_dirty();
                }
                Signal::Continued => {
                    // Continued after a stop: ours (the terminal is already taken again;
                    // redrawing it whole once more is harmless) or a SIGSTOP from outside.
                    if let Err(e) = guard.resume() {
                        tracing::warn!("cannot take the terminal back after SIGCONT: {e}");
                        break;
                    }
                    pacer.mark_dirty();
                }
            },
            _ = sleep_until(wake) => {}
        }
        let mut terminal_lost = false;
        for effect in app.take_effects() {
            if effect == Effect::Suspend {
                terminal_lost |= !suspend(&mut guard);
                dirty = true;
                continue;
            }
            dirty |= run_effect(effect, &mut app, &backend, &app_tx, &mut reports);
        }
        if app.should_quit() || terminal_lost {
            break;
        }
        if dirty {
            pacer.mark_dirty();
        }
        if pacer.should_draw(Instant::now()) {
            if let Err(e) = guard
                .terminal
                .draw(|f| ui::draw(f, &app, OffsetDateTime::now_utc()))
            {
                tracing::warn!("drawing failed (terminal gone?): {e}");
                break;
            }
            pacer.drawn(Instant::now(), app.next_change(OffsetDateTime::now_utc()));
        }
    }

    let was_running = app.running_fraction().is_some();
    drop(guard);
    // Winding down can take seconds (a cancelled run committing, sled flushing); a
    // second signal stops waiting. The store stays whole either way: every commit is
    // one transaction.
    tokio::select! {
        () = wind_down(backend, was_running) => {}
        signal = signals.next_end() => {
            tracing::warn!("signal {signal} while winding down: not waiting for the store");
            exit = Exit::Signal(signal);
        }
    }
    tracing::info!("snaptop quit");
    Ok(exit)
}

/// Lets a cancelled run commit its partial result, persists the cache's use times and
/// counters, then flushes the store. An attached pane just lets go: the daemon's run
/// goes on.
async fn wind_down(backend: Backend, was_running: bool) {
    let Backend::Embedded {
        engine,
        cache,
        store,
    } = backend
    else {
        return;
    };
    let (cache, store) = (&cache, &store);
    if let Some(mut e) = engine
        && was_running
    {
        e.handle.cancel();
        let _ = tokio::time::timeout(Duration::from_millis(CANCEL_WAIT_MS), async {
            while let Some(ev) = e.events.recv().await {
                if matches!(
                    ev,
                    EngineEvent::Finished { .. } | EngineEvent::Failed { .. }
                ) {
                    break;
                }
            }
        })
        .await;
    }
    let cache = cache.clone();
    let _ = tokio::task::spawn_blocking(move || cache.checkpoint()).await;
    match tokio::time::timeout(Duration::from_millis(FLUSH_WAIT_MS), store.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("store flush failed: {e}"),
        Err(_) => tracing::error!("store flush did not finish in {FLUSH_WAIT_MS} ms"),
    }
}

/// Suspends the app (Ctrl-Z, SIGTSTP) until the shell continues it; false when the
/// terminal could not be taken back (the loop then ends).
fn suspend(guard: &mut TerminalGuard) -> bool {
    match guard.suspend() {
        Ok(()) => {
            tracing::info!("continued: terminal taken back");
            true
        }
        Err(e) => {
            tracing::warn!("cannot take the terminal back after a suspend: {e}");
            false
        }
    }
}

/// What a signal asks of the event loop.
enum Signal {
    /// INT, QUIT, TERM or HUP: quit, and exit with 128 + this number.
    End(i32),
    /// SIGTSTP: suspend.
    Stop,
    /// SIGCONT: the process was stopped and is running again.
    Continued,
}

/// The signals the TUI handles. Registering them replaces their default actions, so
/// they are registered before the terminal is touched and held until the process ends.
struct Signals {
    ends: Vec<(i32, tokio::signal::unix::Signal)>,
    stop: tokio::signal::unix::Signal,
    cont: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        let mut ends = Vec::new();
        for n in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
            ends.push((n, signal(SignalKind::from_raw(n))?));
        }
        Ok(Signals {
            ends,
            stop: signal(SignalKind::from_raw(libc::SIGTSTP))?,
            cont: signal(SignalKind::from_raw(libc::SIGCONT))?,
        })
    }

    async fn recv(&mut self) -> Signal {
        tokio::select! {
            n = Self::any_end(&mut self.ends) => Signal::End(n),
            Some(()) = self.stop.recv() => Signal::Stop,
            Some(()) = self.cont.recv() => Signal::Continued,
        }
    }

    /// The next signal that ends the program (its number).
    async fn next_end(&mut self) -> i32 {
        Self::any_end(&mut self.ends).await
    }

    async fn any_end(ends: &mut [(i32, tokio::signal::unix::Signal)]) -> i32 {
        let waits = ends.iter_mut().map(|(n, s)| {
            let n = *n;
            Box::pin(async move {
                // None: the signal driver is gone (never while the runtime runs).
                if s.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
                n
            })
        });
        futures::future::select_all(waits).await.0
    }
}

fn signal_name(n: i32) -> &'static str {
    match n {
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP (terminal gone)",
        _ => "signal",
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn next_backend_event(backend: &mut Backend) -> BackendEvent {
    match backend {
        Backend::Embedded {
            engine: Some(e), ..
        } => match e.events.recv().await {
            Some(ev) => BackendEvent::Engine(ev),
            None => BackendEvent::Stopped,
        },
        Backend::Embedded { engine: None, .. } => std::future::pending().await,
        Backend::Attached(link) => match link.events.recv().await {
            Some(ev) => BackendEvent::Link(ev),
            // The link gave up and said why already.
            None => std::future::pending().await,
        },
    }
}

fn try_backend_event(backend: &mut Backend) -> Option<BackendEvent> {
    match backend {
        Backend::Embedded {
            engine: Some(e), ..
        } => e.events.try_recv().ok().map(BackendEvent::Engine),
        Backend::Embedded { engine: None, .. } => None,
        Backend::Attached(link) => link.events.try_recv().ok().map(BackendEvent::Link),
    }
}

fn attached_status(hello: &Hello, socket: &Path) -> crate::app::LinkStatus {
    crate::app::LinkStatus::Attached {
        socket: socket.file_name().map_or_else(
            || socket.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        pid: hello.pid,
    }
}

/// Applies what the backend said; whether the screen changed.
fn apply_backend_event(app: &mut App, backend: &mut Backend, ev: BackendEvent) -> bool {
    match ev {
        BackendEvent::Engine(ev) => app.on_event(AppEvent::Engine(ev)),
        BackendEvent::Stopped => {
            tracing::warn!("the engine stopped");
            if let Backend::Embedded { engine, .. } = backend {
                *engine = None;
            }
            false
        }
        BackendEvent::Link(LinkEvent::Engine(ev)) => app.on_event(AppEvent::Engine(ev)),
        BackendEvent::Link(LinkEvent::Attached { hello, state }) => {
            let socket = match backend {
                Backend::Attached(link) => link.client.socket().to_path_buf(),
                Backend::Embedded { .. } => PathBuf::new(),
            };
            app.on_event(AppEvent::Link(attached_status(&hello, &socket)));
            app.on_event(AppEvent::Attached(state))
        }
        BackendEvent::Link(LinkEvent::Lost(why)) => {
            app.on_event(AppEvent::Link(crate::app::LinkStatus::Lost(why)))
        }
        BackendEvent::Link(LinkEvent::GaveUp(why)) => {
            app.on_event(AppEvent::Link(crate::app::LinkStatus::GaveUp(why)))
        }
    }
}

async fn start_engine(source: Source, cache: &HttpCache) -> anyhow::Result<Engine> {
    match source {
        Source::Attached(_) => anyhow::bail!("an attached pane runs no engine"),
        Source::Live {
            config,
            secrets,
            store,
        } => {
            let schedule = ScheduleSetup::new(
                config.schedule_layer(),
                &crate::headless::host_name(),
                &config.identity(),
            );
            let (handle, events) = engine::spawn_scheduled(
                Arc::new(*config),
                secrets,
                store.clone(),
                cache.clone(),
                schedule,
            );
            Ok(Engine {
                handle,
                events,
                _sim: None,
            })
        }
        Source::Demo {
            mut schedule,
            store,
        } => {
            let sim = crate::sim::start(crate::sim::SimOptions::demo())
                .await
                .context("demo simulator")?;
            tracing::info!(addr = %sim.addr(), "demo simulator listening");
            // A newcomer sees a run at once, live, rather than an empty screen.
            // `SNAPTOP_DEMO_AUTORUN=0` starts idle, with the schedule off for the
            // session too (tests that look at the empty store).
            let autorun = std::env::var("SNAPTOP_DEMO_AUTORUN").map_or(true, |v| v.trim() != "0");
            if !autorun {
                schedule.insert(crate::schedule::Key::Enabled, "false".into());
            }
            let setup = ScheduleSetup::new(schedule, &crate::headless::host_name(), "demo");
            let (handle, events) = engine::spawn_scheduled(
                Arc::new(sim.config()),
                sim.secrets(),
                store.clone(),
                cache.clone(),
                setup,
            );
            if autorun {
                handle.trigger(crate::engine::model::Trigger::Manual);
            }
            Ok(Engine {
                handle,
                events,
                _sim: Some(sim),
            })
        }
    }
}

/// Carries out a tab's request; returns whether the screen changed.
fn run_effect(
    effect: Effect,
    app: &mut App,
    backend: &Backend,
    tx: &mpsc::UnboundedSender<AppEvent>,
    reports: &mut ReportJobs,
) -> bool {
    match effect {
        Effect::Trigger | Effect::Cancel | Effect::SaveSchedule(_) | Effect::PauseSchedule(_) => {
            match backend {
                Backend::Embedded {
                    engine: Some(e), ..
                } => engine_effect(effect, app, &e.handle),
                Backend::Embedded { engine: None, .. } => {
                    app.say(Level::Error, "the engine is not running (see the log)");
                }
                Backend::Attached(link) => daemon_effect(effect, app, &link.client, tx),
            }
        }
        Effect::RefreshCache => match backend {
            Backend::Embedded { cache, .. } => load_cache_report(cache, tx),
            Backend::Attached(link) => load_cache_report_from(&link.client, tx),
        },
        Effect::CacheJob(job) => match backend {
            Backend::Embedded { cache, .. } => run_cache_job(job, cache, tx),
            Backend::Attached(link) => run_cache_job_on(job, &link.client, tx),
        },
        Effect::LoadReport(request) => return app.on_event(reports.load(request, false)),
        Effect::ReloadReport => match reports.reload() {
            Some(ev) => return app.on_event(ev),
            None => app.say(Level::Info, "no report has loaded yet: nothing to reload"),
        },
        Effect::CompletePath(input) => reports.complete(input),
        // The loop suspends: it owns the terminal.
        Effect::Suspend => {}
        Effect::OpenUrl(url) => match open_url(&url) {
            Ok(how) => app.say(Level::Info, format!("{how}: {url}")),
            Err(e) => app.say(Level::Warn, format!("cannot open {url}: {e}")),
        },
    }
    false
}

fn pause_text(app: &App, paused: bool) -> String {
    if paused {
        format!(
            "automatic snapshots paused ({} resumes)",
            app.keys.first(crate::app::action::Action::Pause)
        )
    } else {
        "automatic snapshots resumed".to_string()
    }
}

/// An engine command, to the engine in this process.
fn engine_effect(effect: Effect, app: &mut App, handle: &EngineHandle) {
    match effect {
        Effect::Trigger => {
            handle.trigger(Trigger::Manual);
            app.say(Level::Info, "snapshot requested");
        }
        Effect::Cancel => {
            handle.cancel();
            app.say(
                Level::Warn,
                "cancelling; what was fetched is kept as a partial snapshot",
            );
        }
        Effect::SaveSchedule(edits) => handle.set_schedule(edits),
        Effect::PauseSchedule(paused) => {
            handle.pause(paused);
            let text = pause_text(app, paused);
            app.say(Level::Info, text);
        }
        _ => {}
    }
}

/// An engine command, to the daemon: its answer comes back as an event (a coalesced
/// trigger as "already running", a failure as an error line).
fn daemon_effect(
    effect: Effect,
    app: &mut App,
    client: &Client,
    tx: &mpsc::UnboundedSender<AppEvent>,
) {
    let (client, tx) = (client.clone(), tx.clone());
    let fail = |tx: &mpsc::UnboundedSender<AppEvent>, e: String| {
        let _ = tx.send(AppEvent::Notice(Level::Error, e));
    };
    match effect {
        Effect::Trigger => {
            app.say(Level::Info, "snapshot requested");
            tokio::spawn(async move {
                match client.trigger(false).await {
                    Ok(TriggerOutcome::AlreadyRunning(_)) => {
                        let _ = tx.send(AppEvent::Engine(EngineEvent::AlreadyRunning));
                    }
                    Ok(TriggerOutcome::Started(_)) => {}
                    Err(e) => fail(&tx, e),
                }
            });
        }
        Effect::Cancel => {
            app.say(
                Level::Warn,
                "cancelling; what was fetched is kept as a partial snapshot",
            );
            tokio::spawn(async move {
                if let Err(e) = client.cancel().await {
                    fail(&tx, e);
                }
            });
        }
        Effect::SaveSchedule(edits) => {
            tokio::spawn(async move {
                if let Err(e) = client.set_schedule(&edits).await {
                    fail(&tx, format!("schedule edit not saved: {e}"));
                }
            });
        }
        Effect::PauseSchedule(paused) => {
            let text = pause_text(app, paused);
            app.say(Level::Info, text);
            tokio::spawn(async move {
                if let Err(e) = client.pause(paused).await {
                    fail(&tx, e);
                }
            });
        }
        _ => {}
    }
}

/// Opens `url` with `$BROWSER` (its first entry; `%s` is the URL, else the URL is the
/// last argument), else copies it with OSC 52, which terminals and tmux pass to the
/// clipboard of the machine in front of the user: the pane is usually over SSH.
fn open_url(url: &str) -> std::io::Result<&'static str> {
    use std::io::Write;
    if let Some(browser) = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
    {
        let first = browser.split(':').next().unwrap_or_default();
        let mut words = first.split_whitespace().map(|w| w.replace("%s", url));
        if let Some(program) = words.next() {
            let mut args: Vec<String> = words.collect();
            if !first.contains("%s") {
                args.push(url.to_string());
            }
            let mut child = std::process::Command::new(program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            // Reaped off the loop, so no zombie is left.
            tokio::task::spawn_blocking(move || child.wait());
            return Ok("opened with $BROWSER");
        }
    }
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(url);
    let mut out = std::io::stdout();
    write!(out, "\x1b]52;c;{encoded}\x07")?;
    out.flush()?;
    Ok("copied to the clipboard (OSC 52)")
}

/// Reads the cache's figures on the blocking pool (the index lock, the store's sizes);
/// the Cache tab gets them as an event.
fn load_cache_report(cache: &HttpCache, tx: &mpsc::UnboundedSender<AppEvent>) {
    let cache = cache.clone();
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let _ = tx.send(AppEvent::CacheReport(Box::new(cache.report())));
    });
}

/// The daemon's cache figures, asked over the socket.
fn load_cache_report_from(client: &Client, tx: &mpsc::UnboundedSender<AppEvent>) {
    let (client, tx) = (client.clone(), tx.clone());
    tokio::spawn(async move {
        match client.cache_report().await {
            Ok(report) => {
                let _ = tx.send(AppEvent::CacheReport(Box::new(report)));
            }
            Err(e) => tracing::warn!("cache figures: {e}"),
        }
    });
}

/// A cache job, run by the daemon on its cache.
fn run_cache_job_on(
    job: crate::cache::maintenance::Job,
    client: &Client,
    tx: &mpsc::UnboundedSender<AppEvent>,
) {
    let (client, tx) = (client.clone(), tx.clone());
    tokio::spawn(async move {
        let _ = tx.send(AppEvent::CacheJobDone(client.cache_job(job).await));
    });
}

/// Runs a cache job on the blocking pool (sled writes); its end is an event.
fn run_cache_job(
    job: crate::cache::maintenance::Job,
    cache: &HttpCache,
    tx: &mpsc::UnboundedSender<AppEvent>,
) {
    let cache = cache.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        tracing::info!("cache job: {}", job.describe());
        let result = tokio::task::spawn_blocking(move || job.run(&cache))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        if let Err(e) = &result {
            tracing::warn!("cache job {} failed: {e}", job.describe());
        }
        let _ = tx.send(AppEvent::CacheJobDone(result));
    });
}
