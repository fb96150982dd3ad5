//! The snapshot engine: runs snapshots on tokio and reports progress as owned events.
//! It knows nothing of the UI; the TUI and the headless CLI both drive it.

pub mod correlate;
pub mod events;
pub mod model;
pub mod progress;
pub mod runner;

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

/// [`spawn`] with a custom first retry delay (tests).
pub fn spawn_with(
    config: Arc<Config>,
    secrets: Secrets,
    store: Store,
    cache: HttpCache,
    retry_min_delay: Duration,
) -> (EngineHandle, mpsc::Receiver<EngineEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_BUFFER);
    let env = RunEnv {
        retry_min_delay,
        timeout: Some(Duration::from_secs(DEFAULT_RUN_TIMEOUT_SECS)),
        ..RunEnv::new(config, secrets, store, cache, ev_tx)
    };
    tokio::spawn(engine_loop(env, cmd_rx));
    (EngineHandle { commands: cmd_tx }, ev_rx)
}

async fn engine_loop(env: RunEnv, mut commands: mpsc::UnboundedReceiver<Command>) {
    let _ = env.events.send(EngineEvent::NextRun(None)).await;
    let mut running: Option<(tokio::task::JoinHandle<()>, CancellationToken)> = None;
    loop {
        let finished = async {
            match &mut running {
                Some((task, _)) => {
                    let _ = task.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
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
                        continue;
                    }
                    let cancel = CancellationToken::new();
                    let task = tokio::spawn(run_and_report(env.clone(), trigger, cancel.clone()));
                    running = Some((task, cancel));
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
            },
            _ = finished => running = None,
        }
    }
}

async fn run_and_report(env: RunEnv, trigger: Trigger, cancel: CancellationToken) {
    let event = match run_snapshot(env.clone(), trigger, cancel).await {
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
    };
    let _ = env.events.send(event).await;
}
