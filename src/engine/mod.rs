//! The snapshot engine: runs snapshots on tokio and reports progress as owned events.
//! It knows nothing of the UI; the TUI and the headless CLI both drive it.

pub mod correlate;
pub mod events;
pub mod model;
pub mod progress;
pub mod runner;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::HttpCache;
use crate::config::{Config, Secrets};
use crate::store::Store;
use events::EngineEvent;
use model::Trigger;
use runner::{RunEnv, run_snapshot};
use scheduler::{ScheduleSetup, Scheduler};

/// Events buffered for a slow observer; progress beyond this is dropped (the next one
/// carries newer numbers), results never are.
pub const EVENT_BUFFER: usize = 1024;
/// First backoff delay of transient retries.
pub const RETRY_MIN_DELAY_MS: u64 = 250;
/// A run ends, partial, after this long unless told otherwise: GitHub's secondary-limit
/// waits alone (60, 120, 240 s) could otherwise hold one for many minutes.
pub const DEFAULT_RUN_TIMEOUT_SECS: u64 = 600;

#[derive(Debug)]
enum Command {
    Trigger(Trigger),
    /// Who asked, for the run log ("you, from the keyboard").
    Cancel(String),
    /// New saved schedule edits (the whole layer).
    SetSchedule(crate::schedule::Layer),
    Pause(bool),
}

/// Drives the engine task. Cheap to clone; dropping every handle stops the engine.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl EngineHandle {
    /// Starts a snapshot now. While one runs, this is coalesced into it (the engine
    /// answers [`EngineEvent::AlreadyRunning`]).
    pub fn trigger(&self, trigger: Trigger) {
        let _ = self.commands.send(Command::Trigger(trigger));
    }

    /// Cancels the running snapshot from the keyboard; what it gathered is kept and
    /// marked partial (a cancel is not an error).
    pub fn cancel(&self) {
        self.cancel_by("you, from the keyboard");
    }

    /// [`EngineHandle::cancel`], naming who asked in the run log.
    pub fn cancel_by(&self, who: &str) {
        let _ = self.commands.send(Command::Cancel(who.to_string()));
    }

    /// Replaces the saved schedule edits; checked, persisted and applied at once (the
    /// engine answers with [`EngineEvent::Schedule`], or logs why it refused them).
    pub fn set_schedule(&self, edits: crate::schedule::Layer) {
        let _ = self.commands.send(Command::SetSchedule(edits));
    }

    /// Pauses or resumes automatic runs (persisted).
    pub fn pause(&self, paused: bool) {
        let _ = self.commands.send(Command::Pause(paused));
    }
}

/// Starts the engine task on the current tokio runtime. `cache` is the process's one
/// HTTP cache over `store` (the TUI reads its counters too).
pub fn spawn(
    config: Arc<Config>,
    secrets: Secrets,
    store: Store,
    cache: HttpCache,
) -> (EngineHandle, mpsc::Receiver<EngineEvent>) {
    spawn_with(
        config,
        secrets,
        store,
        cache,
        Duration::from_millis(RETRY_MIN_DELAY_MS),
    )
}

/// [`spawn`] with the schedule driving automatic runs.
pub fn spawn_scheduled(
    config: Arc<Config>,
    secrets: Secrets,
    store: Store,
    cache: HttpCache,
    schedule: ScheduleSetup,
) -> (EngineHandle, mpsc::Receiver<EngineEvent>) {
    let (events, env) = env_for(
        config,
        secrets,
        store,
        cache,
        Duration::from_millis(RETRY_MIN_DELAY_MS),
    );
    let (scheduler, warnings) = Scheduler::load(schedule, &env.store);
    for w in warnings {
        tracing::warn!("{w}");
        let _ = env.events.try_send(log_line(events::Level::Warn, w));
    }
    start(env, Some(scheduler), events)
}

/// [`spawn`] with a custom first retry delay (tests).
pub fn spawn_with(
    config: Arc<Config>,
    secrets: Secrets,
    store: Store,
    cache: HttpCache,
    retry_min_delay: Duration,
) -> (EngineHandle, mpsc::Receiver<EngineEvent>) {
    let (events, env) = env_for(config, secrets, store, cache, retry_min_delay);
    start(env, None, events)
}

fn env_for(
    config: Arc<Config>,
    secrets: Secrets,
    store: Store,
    cache: HttpCache,
    retry_min_delay: Duration,
) -> (mpsc::Receiver<EngineEvent>, RunEnv) {
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_BUFFER);
    let env = RunEnv {
        retry_min_delay,
        timeout: Some(Duration::from_secs(DEFAULT_RUN_TIMEOUT_SECS)),
        ..RunEnv::new(config, secrets, store, cache, ev_tx)
    };
    (ev_rx, env)
}

fn start(
    env: RunEnv,
    scheduler: Option<Scheduler>,
    events: mpsc::Receiver<EngineEvent>,
) -> (EngineHandle, mpsc::Receiver<EngineEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let launch =
        move |env: RunEnv, trigger, cancel| tokio::spawn(run_and_report(env, trigger, cancel));
    tokio::spawn(engine_loop(env, scheduler, cmd_rx, launch));
    (EngineHandle { commands: cmd_tx }, events)
}

fn log_line(level: events::Level, message: String) -> EngineEvent {
    EngineEvent::Log(events::LogLine {
        at: time::OffsetDateTime::now_utc(),
        level,
        source: "scheduler".into(),
        message,
    })
}

/// How the loop starts a run; tests launch fake runs on a paused clock.
pub trait Launch:
    Fn(RunEnv, Trigger, CancellationToken) -> tokio::task::JoinHandle<EngineEvent> + Send + 'static
{
}

impl<F> Launch for F where
    F: Fn(RunEnv, Trigger, CancellationToken) -> tokio::task::JoinHandle<EngineEvent>
        + Send
        + 'static
{
}

/// The engine loop with a scheduler and a custom launcher, for tests of the schedule on
/// tokio's paused clock. Returns the handle; events go to `env.events`.
pub fn spawn_loop(env: RunEnv, scheduler: Option<Scheduler>, launch: impl Launch) -> EngineHandle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    tokio::spawn(engine_loop(env, scheduler, cmd_rx, launch));
    EngineHandle { commands: cmd_tx }
}

async fn engine_loop(
    mut env: RunEnv,
    mut scheduler: Option<Scheduler>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    launch: impl Launch,
) {
    let status =
        |s: &Option<Scheduler>| EngineEvent::Schedule(s.as_ref().map(|s| Box::new(s.status())));
    let _ = env.events.send(status(&scheduler)).await;
    let mut running: Option<(tokio::task::JoinHandle<EngineEvent>, CancellationToken)> = None;
    let mut runs_since_compaction_check = 0u32;
    loop {
        let finished = async {
            match &mut running {
                Some((task, _)) => task.await.ok(),
                None => std::future::pending().await,
            }
        };
        // One timer, armed for the next due time only: no tick while idle.
        let wake = scheduler.as_ref().and_then(Scheduler::wake_at);
        let due = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let mut start: Option<Trigger> = None;
        tokio::select! {
            // A finished run is noticed before a new command, so a trigger sent right
            // after the result is not answered "already running".
            biased;
            ended = finished => {
                running = None;
                let event = ended.unwrap_or_else(|| log_line(
                    events::Level::Error,
                    "the run stopped unexpectedly; see the log file".into(),
                ));
                if let (Some(s), EngineEvent::Finished { summary, .. } | EngineEvent::Failed { summary, .. }) =
                    (scheduler.as_mut(), &event)
                {
                    s.run_finished(summary);
                }
                let _ = env.events.send(event).await;
                let _ = env.events.send(status(&scheduler)).await;
                runs_since_compaction_check += 1;
                if runs_since_compaction_check >= COMPACTION_CHECK_RUNS {
                    runs_since_compaction_check = 0;
                    compact_if_needed(&env.store);
                }
            }
            cmd = commands.recv() => match cmd {
                None => {
                    if let Some((_, cancel)) = &running {
                        cancel.cancel();
                    }
                    return;
                }
                Some(Command::Trigger(trigger)) => {
                    if running.is_some() {
                        let _ = env.events.send(EngineEvent::AlreadyRunning).await;
                    } else {
                        start = Some(trigger);
                    }
                }
                Some(Command::Cancel(who)) => {
                    if let Some((_, cancel)) = &running {
                        let _ = env.events.try_send(EngineEvent::Log(events::LogLine {
                            at: time::OffsetDateTime::now_utc(),
                            level: events::Level::Info,
                            source: "snaptop".into(),
                            message: format!("run cancelled by {who}; what was fetched is kept"),
                        }));
                        cancel.cancel();
                    }
                }
                Some(Command::SetSchedule(edits)) => {
                    if let Some(s) = scheduler.as_mut() {
                        match s.set_edits(&env.store, edits) {
                            Ok(()) => {
                                tracing::info!("schedule edits saved and applied");
                            }
                            Err(errors) => {
                                let why = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                                let _ = env.events.send(log_line(
                                    events::Level::Warn,
                                    format!("schedule edit refused, the policy in force stays: {why}"),
                                )).await;
                            }
                        }
                        let _ = env.events.send(status(&scheduler)).await;
                    }
                }
                Some(Command::Pause(paused)) => {
                    if let Some(s) = scheduler.as_mut() {
                        if let Err(e) = s.set_paused(&env.store, paused) {
                            let _ = env.events.send(log_line(events::Level::Error, e)).await;
                        }
                        let _ = env.events.send(status(&scheduler)).await;
                    }
                }
            },
            () = due => {
                if let Some(s) = scheduler.as_mut() {
                    if !s.is_due() {
                        // The clock was set back since the timer was armed.
                        s.recompute();
                    } else if running.is_some() {
                        if let Some(d) = s.skip() {
                            let message = format!(
                                "scheduled run skipped: the one before is still going (due {})",
                                d.at
                            );
                            tracing::info!("{message}");
                            let _ = env.events.send(log_line(events::Level::Info, message)).await;
                        }
                        let _ = env.events.send(status(&scheduler)).await;
                    } else {
                        start = Some(Trigger::Scheduled);
                    }
                }
            }
        }
        if let Some(trigger) = start {
            if let Some(s) = scheduler.as_mut() {
                env.timeout = Some(s.policy().run_timeout);
                s.run_started(trigger);
            }
            let cancel = CancellationToken::new();
            let task = launch(env.clone(), trigger, cancel.clone());
            running = Some((task, cancel));
            let _ = env.events.send(status(&scheduler)).await;
        }
    }
}

/// A process left open for weeks must not leave sled's files to grow: every this many
/// runs, the store is compacted on the blocking pool when its files are far larger
/// than its data (checking reads the store once, so not after every run).
const COMPACTION_CHECK_RUNS: u32 = 50;

fn compact_if_needed(store: &Store) {
    let store = store.clone();
    tokio::task::spawn_blocking(move || match store.compact_if_needed() {
        Ok(Some(r)) => tracing::info!(
            before = r.before_bytes,
            after = r.after_bytes,
            ms = r.duration.as_millis() as u64,
            "store compacted"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!("store compaction failed: {e}"),
    });
}

async fn run_and_report(env: RunEnv, trigger: Trigger, cancel: CancellationToken) -> EngineEvent {
    match run_snapshot(env.clone(), trigger, cancel).await {
        Ok((summary, snapshot)) => EngineEvent::Finished {
            summary,
            snapshot: Box::new(snapshot),
        },
        Err((summary, error)) => {
            let _ = env.store.commit_run(&summary, None);
            EngineEvent::Failed {
                summary,
                error: error.to_string(),
            }
        }
    }
}
