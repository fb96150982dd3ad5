//! Shared by the integration tests: a simulator on loopback and a snapshot run against it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use snaptop::cache::HttpCache;
use snaptop::config::Config;
use snaptop::engine::events::EngineEvent;
use snaptop::engine::model::{RunSummary, Snapshot, Trigger};
use snaptop::engine::runner::{RunEnv, RunError, run_snapshot};
use snaptop::sim::{RunningSim, SimOptions};
use snaptop::store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A complete run of a second that started at `started_at` and saw no deployment move:
/// what the schedule counts from.
pub fn run_summary(id: u64, started_at: time::OffsetDateTime, trigger: Trigger) -> RunSummary {
    RunSummary {
        id,
        started_at,
        duration_ms: 1000,
        trigger,
        requests: 0,
        not_modified: 0,
        cache_hits: 0,
        errors: 0,
        partial: false,
        cancelled: false,
        error: None,
        new_deployments: Some(0),
    }
}

pub async fn sim(opts: SimOptions) -> RunningSim {
    snaptop::sim::start(opts).await.expect("simulator starts")
}

/// One snapshot run in-process; the event stream is collected and returned.
pub async fn snapshot_with(
    sim: &RunningSim,
    config: Config,
    store: &Store,
) -> (
    Result<(RunSummary, Snapshot), (RunSummary, RunError)>,
    Vec<EngineEvent>,
) {
    run_collecting(sim, config, store, |_| {}).await
}

/// [`snapshot_with`], the run's environment shaped first (timeouts, run timeout).
async fn run_collecting(
    sim: &RunningSim,
    config: Config,
    store: &Store,
    shape: impl FnOnce(&mut RunEnv),
) -> (
    Result<(RunSummary, Snapshot), (RunSummary, RunError)>,
    Vec<EngineEvent>,
) {
    let (tx, mut rx) = mpsc::channel(1024);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    });
    let mut env = RunEnv {
        retry_min_delay: Duration::from_millis(1),
        timeout: Some(Duration::from_secs(120)),
        ..RunEnv::new(
            Arc::new(config.clone()),
            sim.secrets(),
            store.clone(),
            HttpCache::open(store.clone(), config.cache),
            tx,
        )
    };
    shape(&mut env);
    let result = run_snapshot(env, Trigger::Cli, CancellationToken::new()).await;
    let events = collector.await.unwrap();
    (result, events)
}

pub async fn snapshot(sim: &RunningSim, store: &Store) -> Snapshot {
    let (result, _) = snapshot_with(sim, sim.config(), store).await;
    match result {
        Ok((_, s)) => s,
        Err((_, e)) => panic!("snapshot failed: {e}"),
    }
}

/// Writes the simulator's config with a store under `dir`; returns its path.
pub fn write_config(sim: &RunningSim, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "{}\n[store]\npath = {:?}\n",
        sim.config_toml(),
        dir.join("store").display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The real binary, with the simulator's credentials and XDG dirs under `dir`.
pub fn snaptop(sim: &RunningSim, dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_snaptop"));
    cmd.envs(sim.secret_env());
    for var in [
        "XDG_STATE_HOME",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "XDG_RUNTIME_DIR",
    ] {
        cmd.env(var, dir.join(var.to_lowercase()));
    }
    cmd
}

/// A server on another origin that records every request reaching it (method, URL and
/// headers) and answers `[]`: where a leaked credential would land.
pub struct Capture {
    pub url: String,
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn capture_server() -> Capture {
    use axum::extract::Request;
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let record = record.clone();
        async move {
            let headers: Vec<String> = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            record.lock().unwrap().push(format!(
                "{} {} {}",
                req.method(),
                req.uri(),
                headers.join("; ")
            ));
            "[]"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Capture {
        url,
        seen,
        _stop: tx,
    }
}

/// One snapshot with a shaped environment (timeouts, run timeout) and its events.
pub async fn snapshot_env(
    sim: &RunningSim,
    config: Config,
    store: &Store,
    shape: impl FnOnce(&mut RunEnv),
) -> (Snapshot, Vec<EngineEvent>) {
    match run_collecting(sim, config, store, shape).await {
        (Ok((_, s)), events) => (s, events),
        (Err((_, e)), _) => panic!("snapshot failed: {e}"),
    }
}

/// The log lines of a run's events.
pub fn log_lines(events: &[EngineEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Log(l) => Some(format!("{}: {}", l.source, l.message)),
            _ => None,
        })
        .collect()
}
