//! The loopback HTTP API of `snaptop serve` (opt-in with `--http`), for CI jobs and
//! webhooks: trigger a snapshot (one at a time), its status, the latest snapshot, and
//! `/metrics`. Every route wants the bearer token of `--http-token-file`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{Mutex, broadcast, mpsc, watch};

use super::metrics::{Metrics, result_word};
use crate::cache::HttpCache;
use crate::engine::EngineHandle;
use crate::engine::events::{EngineEvent, Progress};
use crate::engine::model::Trigger;
use crate::store::Store;

/// Events a slow SSE client may fall behind by before it misses some (it is told).
pub const FEED_BUFFER: usize = 256;

/// The engine's events as Server-Sent Events: (event name, JSON data).
pub type Feed = broadcast::Sender<(&'static str, String)>;

/// The SSE form of an event; None for those not sent (the provisional matrices).
fn feed_item(ev: &EngineEvent) -> Option<(&'static str, String)> {
    let (name, data) = match ev {
        EngineEvent::Started(p) => ("started", serde_json::to_string(p)),
        EngineEvent::Progress(p) => ("progress", serde_json::to_string(p)),
        EngineEvent::Log(l) => ("log", serde_json::to_string(l)),
        EngineEvent::Finished { summary, .. } => (
            "finished",
            serde_json::to_string(&json!({"summary": summary})),
        ),
        EngineEvent::Failed { summary, error } => (
            "failed",
            serde_json::to_string(&json!({"summary": summary, "error": error})),
        ),
        EngineEvent::Schedule(s) => ("schedule", serde_json::to_string(s)),
        EngineEvent::AlreadyRunning | EngineEvent::Provisional(_) => return None,
    };
    data.ok().map(|d| (name, d))
}

/// How long a trigger waits for the engine to say the run began.
const TRIGGER_WAIT: Duration = Duration::from_secs(5);

/// What `GET /api/snapshot/status` answers.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Status {
    /// "idle" or "running".
    pub state: &'static str,
    pub run_id: Option<u64>,
    /// 0.0–1.0 while running.
    pub progress: Option<f64>,
    pub eta_seconds: Option<u64>,
    pub last_run: Option<LastRun>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_scheduled: Option<OffsetDateTime>,
    pub paused: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LastRun {
    pub id: u64,
    pub result: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
}

impl Status {
    fn running(&self) -> Option<u64> {
        (self.state == "running").then_some(self.run_id).flatten()
    }
}

struct Shared {
    engine: EngineHandle,
    store: Store,
    cache: HttpCache,
    metrics: Arc<Metrics>,
    status: watch::Receiver<Status>,
    feed: Feed,
    token: String,
    /// One trigger at a time decides between 202 and 409.
    trigger: Mutex<()>,
}

/// Reads the bearer token: one line, not empty, not readable or writable by others.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("--http-token-file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "--http-token-file {}: readable by others (mode {mode:04o}): `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("--http-token-file {}", path.display()))?
        .trim()
        .to_string();
    if token.len() < 16 || token.contains(char::is_whitespace) {
        anyhow::bail!(
            "--http-token-file {}: the token must be one word of at least 16 characters",
            path.display()
        );
    }
    Ok(token)
}

/// Keeps the status and the metrics up to date from the engine's events (the cache's
/// counters are read when `/metrics` is asked, not after every run).
pub async fn pump(
    mut events: mpsc::Receiver<EngineEvent>,
    status: watch::Sender<Status>,
    metrics: Arc<Metrics>,
    feed: Feed,
) {
    while let Some(ev) = events.recv().await {
        metrics.observe(&ev);
        if let Some(item) = feed_item(&ev) {
            // No subscriber is not an error.
            let _ = feed.send(item);
        }
        match &ev {
            EngineEvent::Started(p) | EngineEvent::Progress(p) => {
                status.send_modify(|s| running(s, p));
            }
            EngineEvent::Finished { summary, .. } | EngineEvent::Failed { summary, .. } => {
                status.send_modify(|s| {
                    s.state = "idle";
                    s.run_id = None;
                    s.progress = None;
                    s.eta_seconds = None;
                    s.last_run = Some(LastRun {
                        id: summary.id,
                        result: result_word(summary),
                        started_at: summary.started_at,
                        duration_ms: summary.duration_ms,
                    });
                });
            }
            EngineEvent::Schedule(sched) => status.send_modify(|s| {
                s.next_scheduled = sched.as_ref().and_then(|x| x.next_at);
                s.paused = sched.as_ref().is_some_and(|x| x.paused);
            }),
            _ => {}
        }
    }
}

fn running(s: &mut Status, p: &Progress) {
    s.state = "running";
    s.run_id = Some(p.run_id);
    s.progress = Some(p.fraction);
    s.eta_seconds = p.eta.map(|d| d.as_secs());
}

/// What the API serves from.
pub struct Api {
    pub token: String,
    pub engine: EngineHandle,
    pub store: Store,
    pub cache: HttpCache,
    pub metrics: Arc<Metrics>,
    pub status: watch::Receiver<Status>,
    pub feed: Feed,
}

/// Binds `addr` (port 0: any free port; the bound address is in the listener).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--http {addr}: cannot listen"))
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    let shared = Arc::new(Shared {
        engine: api.engine,
        store: api.store,
        cache: api.cache,
        metrics: api.metrics,
        status: api.status,
        feed: api.feed,
        token: api.token,
        trigger: Mutex::new(()),
    });
    let app = Router::new()
        .route("/api/snapshot/trigger", post(trigger))
        .route("/api/snapshot/status", get(status_route))
        .route("/api/snapshot/latest", get(latest))
        .route("/api/events", get(events_route))
        .route("/metrics", get(metrics_route))
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP API")
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(given.as_bytes(), s.token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(
                json!({"error": "a bearer token is required (the one in --http-token-file)"}),
            ),
        )
            .into_response();
    }
    next.run(req).await
}

async fn trigger(State(s): State<Arc<Shared>>) -> Response {
    let _one = s.trigger.lock().await;
    let now = s.status.borrow().clone();
    if let Some(id) = now.running() {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": format!("snapshot #{id} is running"), "run_id": id})),
        )
            .into_response();
    }
    let before = now.last_run.as_ref().map(|r| r.id);
    let mut rx = s.status.clone();
    s.engine.trigger(Trigger::Cli);
    // The run's id once the engine says it began (or ended, for a very quick one).
    let seen = tokio::time::timeout(
        TRIGGER_WAIT,
        rx.wait_for(|st| st.running().is_some() || st.last_run.as_ref().map(|r| r.id) != before),
    )
    .await;
    match seen {
        Ok(Ok(st)) => {
            let id = st.running().or(st.last_run.as_ref().map(|r| r.id));
            (StatusCode::ACCEPTED, axum::Json(json!({"run_id": id}))).into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "the engine did not start the run within 5s"})),
        )
            .into_response(),
    }
}

async fn status_route(State(s): State<Arc<Shared>>) -> Response {
    let st = s.status.borrow().clone();
    axum::Json(st).into_response()
}

async fn latest(State(s): State<Arc<Shared>>) -> Response {
    let store = s.store.clone();
    let read = tokio::task::spawn_blocking(move || store.latest_snapshot()).await;
    match read {
        Ok(Ok(Some(snapshot))) => {
            axum::Json(crate::headless::snapshot_json(&snapshot)).into_response()
        }
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no snapshot yet"})),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics_route(State(s): State<Arc<Shared>>) -> Response {
    let (cache, metrics) = (s.cache.clone(), s.metrics.clone());
    let _ = tokio::task::spawn_blocking(move || metrics.observe_cache(&cache.report())).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// `GET /api/events`: progress, log lines and results as they happen. A client too slow
/// to keep up gets a `lagged` event saying how many it missed, then goes on.
async fn events_route(State(s): State<Arc<Shared>>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let rx = s.feed.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok((name, data)) => Event::default().event(name).data(data),
            Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(json!({"missed": n}).to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(ev), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
