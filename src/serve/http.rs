//! The daemon's API, one router on two transports: the Unix socket panes attach to
//! (callers checked by their peer credentials) and, opt-in with `--http`, loopback TCP
//! for CI jobs and webhooks (callers checked by the bearer token of `--http-token-file`).
//!
//! Routes: the snapshot (trigger, one at a time; cancel; status; latest), the events
//! (light SSE for scripts, the full attach stream for panes), the schedule, the cache,
//! and `/metrics`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{Mutex, broadcast, mpsc, watch};

use super::metrics::{Metrics, result_word};
use super::socket::{Access, Peer};
use super::wire::{self, AttachState, Envelope, Hello, WireEvent};
use crate::cache::HttpCache;
use crate::engine::EngineHandle;
use crate::engine::events::{EngineEvent, LogLine, Progress};
use crate::engine::model::{RunDetail, RunSummary, Trigger};
use crate::store::Store;

/// Events a slow client may fall behind by before it misses some: a script's SSE is told
/// how many (`lagged`), a pane is sent the whole state again.
pub const FEED_BUFFER: usize = 256;
/// Log lines of the current run a pane gets on attach (the Snapshot tab's log).
const ATTACH_LOG_LINES: usize = 2_000;
/// Runs of the history a pane gets on attach (the Snapshot tab shows as many).
const ATTACH_HISTORY: usize = crate::ui::snapshot::HISTORY_ROWS;

/// One engine event, serialized once for every client: `light` for `/api/events`
/// (None: not sent there), `full` for the attach stream.
///
/// The broadcast channel keeps its last [`FEED_BUFFER`] items until they are
/// overwritten, long after every pane has read them; `full` is let go once the last
/// attach stream it was sent to has taken it. (Since matrices left the stream the texts
/// are small notices; this kept ~30 MiB of snapshots alive when they were in it.)
#[derive(Debug)]
pub struct FeedItem {
    pub name: &'static str,
    pub light: Option<String>,
    full: std::sync::Mutex<FullText>,
}

/// The attach streams that have yet to take the text, and the text.
#[derive(Debug)]
struct FullText {
    pending: usize,
    text: Option<Arc<str>>,
}

impl FeedItem {
    /// The item as sent to `attach_streams` attach streams (set under the live lock).
    fn for_attach_streams(item: FeedItem, attach_streams: usize) -> FeedItem {
        let mut full = item.full.into_inner().unwrap_or_else(|p| p.into_inner());
        full.pending = attach_streams;
        if attach_streams == 0 {
            full.text = None;
        }
        FeedItem {
            full: std::sync::Mutex::new(full),
            ..item
        }
    }

    /// The attach stream's text, taken by one of the streams it was sent to; the last one
    /// leaves none behind. None: already let go (not sent to this stream).
    fn take_full(&self) -> Option<Arc<str>> {
        let mut full = self.full.lock().unwrap_or_else(|p| p.into_inner());
        full.pending = full.pending.saturating_sub(1);
        if full.pending == 0 {
            full.text.take()
        } else {
            full.text.clone()
        }
    }
}

/// The engine's events for every subscriber.
pub type Feed = broadcast::Sender<Arc<FeedItem>>;

fn feed_item(ev: &EngineEvent) -> Option<FeedItem> {
    let wire = WireEvent::from_engine(ev)?;
    let name = match &wire {
        WireEvent::Started { .. } => "started",
        WireEvent::Progress { .. } => "progress",
        WireEvent::Provisional { .. } => "provisional",
        WireEvent::Log { .. } => "log",
        WireEvent::Finished { .. } => "finished",
        WireEvent::Failed { .. } => "failed",
        WireEvent::Schedule { .. } => "schedule",
    };
    let light = match ev {
        EngineEvent::Started(p) | EngineEvent::Progress(p) => serde_json::to_string(p).ok(),
        EngineEvent::Log(l) => serde_json::to_string(l).ok(),
        EngineEvent::Finished { summary, .. } => {
            serde_json::to_string(&json!({"summary": summary})).ok()
        }
        EngineEvent::Failed { summary, error } => {
            serde_json::to_string(&json!({"summary": summary, "error": error})).ok()
        }
        EngineEvent::Schedule(s) => serde_json::to_string(s).ok(),
        EngineEvent::AlreadyRunning | EngineEvent::Provisional(_) => None,
    };
    let full = serde_json::to_string(&Envelope {
        sent_us: wire::now_us(),
        event: wire,
    })
    .ok()?;
    Some(FeedItem {
        name,
        light,
        full: std::sync::Mutex::new(FullText {
            pending: 0,
            text: Some(full.into()),
        }),
    })
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

/// What the daemon keeps of the engine's events so a pane attaching now sees what a
/// pane attached since the start sees: the same mirror the Snapshot tab keeps.
#[derive(Debug, Default)]
pub struct Live {
    pub state: AttachState,
    log: VecDeque<LogLine>,
    /// The matrices as JSON, serialized once for every pane that fetches them.
    provisional_body: Option<axum::body::Bytes>,
    latest_body: Option<axum::body::Bytes>,
    /// Attach streams subscribed to the feed now (each takes every item's `full`).
    attach_streams: usize,
}

fn body_of(snapshot: &crate::engine::model::Snapshot) -> Option<axum::body::Bytes> {
    serde_json::to_vec(snapshot)
        .ok()
        .map(axum::body::Bytes::from)
}

impl Live {
    /// Starts from what the store holds (read once, at start).
    pub fn from_store(store: &Store) -> Live {
        match crate::app::run::read_startup(store) {
            Ok(startup) => Live {
                latest_body: startup.snapshot.as_ref().and_then(body_of),
                state: AttachState {
                    snapshot: startup.snapshot,
                    history: startup.history,
                    run_details: startup.run_details,
                    store_problem: startup.store_problem,
                    ..AttachState::default()
                },
                log: VecDeque::new(),
                provisional_body: None,
                attach_streams: 0,
            },
            Err(e) => Live {
                state: AttachState {
                    store_problem: Some(format!("store {}: {e:#}", store.path().display())),
                    ..AttachState::default()
                },
                ..Live::default()
            },
        }
    }

    /// `body`: the JSON of the event's matrix (provisional or finished), serialized by
    /// the caller before it takes the lock.
    fn apply(&mut self, ev: &EngineEvent, body: Option<axum::body::Bytes>) {
        let s = &mut self.state;
        match ev {
            EngineEvent::Started(p) => {
                self.log.clear();
                s.progress = Some((**p).clone());
                s.provisional = None;
                self.provisional_body = None;
            }
            EngineEvent::Progress(p) => s.progress = Some((**p).clone()),
            EngineEvent::Provisional(snapshot) => {
                s.provisional = Some((**snapshot).clone());
                self.provisional_body = body.or_else(|| body_of(snapshot));
            }
            EngineEvent::Log(line) => {
                self.log.push_back(line.clone());
                if self.log.len() > ATTACH_LOG_LINES {
                    self.log.pop_front();
                }
            }
            EngineEvent::Finished { summary, snapshot } => {
                s.progress = None;
                s.provisional = None;
                s.store_problem = None;
                s.snapshot = Some((**snapshot).clone());
                self.provisional_body = None;
                self.latest_body = body.or_else(|| body_of(snapshot));
                let detail = RunDetail::of(Some(snapshot), self.log.iter().cloned().collect());
                self.record(summary, detail);
            }
            EngineEvent::Failed { summary, .. } => {
                s.progress = None;
                s.provisional = None;
                self.provisional_body = None;
                let detail = RunDetail::of(None, self.log.iter().cloned().collect());
                self.record(summary, detail);
            }
            EngineEvent::Schedule(status) => s.schedule = status.as_deref().cloned(),
            EngineEvent::AlreadyRunning => {}
        }
    }

    fn record(&mut self, summary: &RunSummary, detail: RunDetail) {
        let s = &mut self.state;
        s.history.insert(0, summary.clone());
        s.history.truncate(ATTACH_HISTORY);
        s.run_details.insert(summary.id, detail);
        let kept: std::collections::HashSet<u64> = s.history.iter().map(|r| r.id).collect();
        s.run_details.retain(|id, _| kept.contains(id));
    }

    /// The state a pane attaching now is sent.
    pub fn attach_state(&self) -> AttachState {
        AttachState {
            log: self.log.iter().cloned().collect(),
            ..self.state.clone()
        }
    }
}

/// The live mirror and the feed, updated together: a pane that subscribes while holding
/// the lock misses no event and sees none twice.
pub type LiveState = Arc<std::sync::Mutex<Live>>;

/// Keeps the status, the metrics, the live mirror and the feed up to date from the
/// engine's events (the cache's counters are read when `/metrics` is asked).
pub async fn pump(
    mut events: mpsc::Receiver<EngineEvent>,
    status: watch::Sender<Status>,
    metrics: Arc<Metrics>,
    live: LiveState,
    feed: Feed,
) {
    while let Some(ev) = events.recv().await {
        metrics.observe(&ev);
        // The matrix is serialized before its notice is stamped and sent (the notice
        // must not reach a pane before the matrix can be fetched), outside the lock
        // attaching panes take.
        let body = match &ev {
            EngineEvent::Provisional(snapshot) | EngineEvent::Finished { snapshot, .. } => {
                body_of(snapshot)
            }
            _ => None,
        };
        let item = feed_item(&ev);
        publish(&live, &feed, &ev, item, body);
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

/// Applies `ev` to the live mirror and sends its item, under the live lock.
fn publish(
    live: &LiveState,
    feed: &Feed,
    ev: &EngineEvent,
    item: Option<FeedItem>,
    body: Option<axum::body::Bytes>,
) {
    let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
    live.apply(ev, body);
    if let Some(item) = item {
        let item = FeedItem::for_attach_streams(item, live.attach_streams);
        // No subscriber is not an error.
        let _ = feed.send(Arc::new(item));
    }
}

fn running(s: &mut Status, p: &Progress) {
    s.state = "running";
    s.run_id = Some(p.run_id);
    s.progress = Some(p.fraction);
    s.eta_seconds = p.eta.map(|d| d.as_secs());
}

/// What the API serves from; one per daemon, shared by both transports.
pub struct Api {
    pub hello: Hello,
    pub engine: EngineHandle,
    pub store: Store,
    pub cache: HttpCache,
    pub metrics: Arc<Metrics>,
    pub status: watch::Receiver<Status>,
    pub live: LiveState,
    pub feed: Feed,
}

pub struct Shared {
    hello: Hello,
    engine: EngineHandle,
    store: Store,
    cache: HttpCache,
    metrics: Arc<Metrics>,
    status: watch::Receiver<Status>,
    live: LiveState,
    feed: Feed,
    /// One trigger at a time decides between 202 and 409.
    trigger: Mutex<()>,
    attached: AtomicUsize,
    /// Told whenever a pane attaches or detaches (the auto daemon's linger).
    attached_changed: watch::Sender<usize>,
}

impl Shared {
    pub fn new(api: Api) -> Arc<Shared> {
        Arc::new(Shared {
            hello: api.hello,
            engine: api.engine,
            store: api.store,
            cache: api.cache,
            metrics: api.metrics,
            status: api.status,
            live: api.live,
            feed: api.feed,
            trigger: Mutex::new(()),
            attached: AtomicUsize::new(0),
            attached_changed: watch::channel(0).0,
        })
    }

    /// Panes attached now, and a way to hear when that changes.
    pub fn attached(&self) -> watch::Receiver<usize> {
        self.attached_changed.subscribe()
    }

    pub fn status_watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }
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

/// Binds `addr` (port 0: any free port; the bound address is in the listener).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--http {addr}: cannot listen"))
}

/// Who is calling, for the run log and the trigger's kind; set by the transport's check.
#[derive(Debug, Clone)]
struct Caller {
    who: String,
    trigger: Trigger,
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/hello", get(hello_route))
        .route("/api/attach", get(attach_route))
        .route("/api/attach/provisional", get(attach_provisional))
        .route("/api/attach/latest", get(attach_latest))
        .route("/api/snapshot/trigger", post(trigger))
        .route("/api/snapshot/cancel", post(cancel))
        .route("/api/snapshot/status", get(status_route))
        .route("/api/snapshot/latest", get(latest))
        .route("/api/events", get(events_route))
        .route("/api/schedule", get(schedule_get).put(schedule_put))
        .route("/api/schedule/pause", post(schedule_pause))
        .route("/api/cache", get(cache_get))
        .route("/api/cache/jobs", post(cache_job))
        .route("/metrics", get(metrics_route))
}

/// Serves the API over loopback TCP until `shutdown` resolves; every request wants the
/// bearer token.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    token: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    let token = Arc::new(token);
    let app = routes()
        .layer(middleware::from_fn(
            move |headers: HeaderMap, req: Request, next: Next| {
                let token = token.clone();
                async move { token_check(&token, &headers, req, next).await }
            },
        ))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP API")
}

/// Serves the API on the Unix socket until `shutdown` resolves; every connection is
/// checked by its peer's credentials.
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    access: Access,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let access = Arc::new(access);
    let app = routes()
        .layer(middleware::from_fn(
            move |ConnectInfo(peer): ConnectInfo<Peer>,
                  headers: HeaderMap,
                  mut req: Request,
                  next: Next| {
                let access = access.clone();
                async move {
                    if let Some(why) = access.check(&peer) {
                        tracing::warn!("refused a connection: {why}");
                        return error(StatusCode::FORBIDDEN, why);
                    }
                    if let Some(r) = protocol_check(&headers) {
                        return r;
                    }
                    req.extensions_mut().insert(Caller {
                        who: format!("{}, from a pane", peer.describe()),
                        trigger: Trigger::Manual,
                    });
                    next.run(req).await
                }
            },
        ))
        .with_state(shared);
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("socket API")
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// A client that says its protocol version must say ours.
fn protocol_check(headers: &HeaderMap) -> Option<Response> {
    let theirs = headers.get(wire::PROTOCOL_HEADER)?.to_str().ok()?;
    if theirs.trim() == wire::PROTOCOL.to_string() {
        return None;
    }
    Some(error(
        StatusCode::CONFLICT,
        format!(
            "protocol mismatch: this daemon is snaptop {} (protocol {}), the client speaks protocol {theirs}",
            env!("CARGO_PKG_VERSION"),
            wire::PROTOCOL
        ),
    ))
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn token_check(token: &str, headers: &HeaderMap, mut req: Request, next: Next) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(given.as_bytes(), token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(
                json!({"error": "a bearer token is required (the one in --http-token-file)"}),
            ),
        )
            .into_response();
    }
    if let Some(r) = protocol_check(headers) {
        return r;
    }
    req.extensions_mut().insert(Caller {
        who: "the HTTP API".into(),
        trigger: Trigger::Cli,
    });
    next.run(req).await
}

async fn hello_route(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(s.hello.clone()).into_response()
}

#[derive(Debug, Deserialize)]
struct TriggerQuery {
    /// "cli": `snaptop snapshot` asked through the socket (a pane otherwise).
    by: Option<String>,
}

async fn trigger(
    State(s): State<Arc<Shared>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(q): Query<TriggerQuery>,
) -> Response {
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
    let kind = match q.by.as_deref() {
        Some("cli") => Trigger::Cli,
        _ => caller.trigger,
    };
    tracing::info!("snapshot asked for by {}", caller.who);
    s.engine.trigger(kind);
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
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not start the run within 5s",
        ),
    }
}

async fn cancel(
    State(s): State<Arc<Shared>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    match s.status.borrow().running() {
        Some(id) => {
            s.engine.cancel_by(&caller.who);
            (StatusCode::ACCEPTED, axum::Json(json!({"run_id": id}))).into_response()
        }
        None => error(StatusCode::CONFLICT, "no snapshot is running"),
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
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no snapshot yet"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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

/// `GET /api/schedule`: the schedule as the engine last said (null: no scheduler) and
/// the run history it counts from, newest first.
async fn schedule_get(State(s): State<Arc<Shared>>) -> Response {
    let answer = {
        let live = s.live.lock().unwrap_or_else(|p| p.into_inner());
        wire::ScheduleAnswer {
            status: live.state.schedule.clone(),
            history: live.state.history.clone(),
        }
    };
    axum::Json(answer).into_response()
}

/// `PUT /api/schedule`: the whole set of saved edits (`{"business-interval": "15m", …}`,
/// the keys of `[schedule]`). Checked by the engine: applied edits come back as a
/// `schedule` event, refused ones as a log line saying why.
async fn schedule_put(
    State(s): State<Arc<Shared>>,
    axum::Json(edits): axum::Json<HashMap<String, String>>,
) -> Response {
    let mut layer = crate::schedule::Layer::new();
    for (key, value) in edits {
        let Some(k) = crate::schedule::Key::parse(&key) else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("schedule: unknown key {key:?}"),
            );
        };
        if let Err(why) = crate::schedule::policy::check(k, &value) {
            return error(StatusCode::BAD_REQUEST, format!("schedule {key}: {why}"));
        }
        layer.insert(k, value);
    }
    s.engine.set_schedule(layer);
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}

#[derive(Debug, Deserialize)]
struct PauseBody {
    paused: bool,
}

async fn schedule_pause(
    State(s): State<Arc<Shared>>,
    axum::Json(body): axum::Json<PauseBody>,
) -> Response {
    s.engine.pause(body.paused);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"paused": body.paused})),
    )
        .into_response()
}

async fn cache_get(State(s): State<Arc<Shared>>) -> Response {
    let cache = s.cache.clone();
    match tokio::task::spawn_blocking(move || cache.report()).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /api/cache/jobs`: `{"job": "clear_namespace", "namespace": "github"}`,
/// `{"job": "clear_all"}`, `{"job": "purge_expired"}`, `{"job": "compact_store"}`.
async fn cache_job(
    State(s): State<Arc<Shared>>,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::Json(job): axum::Json<crate::cache::maintenance::Job>,
) -> Response {
    let cache = s.cache.clone();
    tracing::info!("cache job {} asked for by {}", job.describe(), caller.who);
    match tokio::task::spawn_blocking(move || job.run(&cache)).await {
        Ok(Ok(done)) => axum::Json(done).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/events`: progress, log lines and results as they happen. A client too slow
/// to keep up gets a `lagged` event saying how many it missed, then goes on.
async fn events_route(State(s): State<Arc<Shared>>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let rx = s.feed.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            let ev = match rx.recv().await {
                Ok(item) => match &item.light {
                    Some(data) => Event::default().event(item.name).data(data.as_str()),
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                    .event("lagged")
                    .data(json!({"missed": n}).to_string()),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok::<_, std::convert::Infallible>(ev), rx));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn json_body(body: Option<axum::body::Bytes>, missing: &str) -> Response {
    match body {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        None => error(StatusCode::NOT_FOUND, missing),
    }
}

/// `GET /api/attach/provisional`: the running snapshot's matrix so far (the engine's
/// own model, as the `provisional` notice announced it); 404 when no run has one.
async fn attach_provisional(State(s): State<Arc<Shared>>) -> Response {
    let body = s
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .provisional_body
        .clone();
    json_body(body, "no provisional matrix: no run is going")
}

/// `GET /api/attach/latest`: the latest snapshot (the engine's own model; the one a
/// `finished` notice announced, or a newer one).
async fn attach_latest(State(s): State<Arc<Shared>>) -> Response {
    let body = s
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .latest_body
        .clone();
    json_body(body, "no snapshot yet")
}

/// Counts an attached pane for as long as its stream lives.
struct AttachedGuard(Arc<Shared>);

impl AttachedGuard {
    fn new(shared: Arc<Shared>) -> AttachedGuard {
        let n = shared.attached.fetch_add(1, Ordering::SeqCst) + 1;
        shared.metrics.set_attached_clients(n);
        shared.attached_changed.send_replace(n);
        tracing::info!(attached = n, "a pane attached");
        AttachedGuard(shared)
    }
}

impl Drop for AttachedGuard {
    fn drop(&mut self) {
        let n = self.0.attached.fetch_sub(1, Ordering::SeqCst) - 1;
        self.0.metrics.set_attached_clients(n);
        self.0.attached_changed.send_replace(n);
        tracing::info!(attached = n, "a pane detached");
    }
}

/// An attach stream's receiver of the feed, counted in [`Live`] while it lives.
struct AttachReceiver {
    rx: broadcast::Receiver<Arc<FeedItem>>,
    live: LiveState,
}

impl Drop for AttachReceiver {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.attach_streams = live.attach_streams.saturating_sub(1);
    }
}

/// The state and the receiver, taken together under the live lock.
fn subscribe(live: &LiveState, feed: &Feed) -> (AttachState, AttachReceiver) {
    let mut guard = live.lock().unwrap_or_else(|p| p.into_inner());
    guard.attach_streams += 1;
    let rx = AttachReceiver {
        rx: feed.subscribe(),
        live: live.clone(),
    };
    (guard.attach_state(), rx)
}

fn state_event(state: &AttachState) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event("state")
        .data(serde_json::to_string(state).unwrap_or_else(|_| "{}".into()))
}

/// A fresh receiver for `rx` and the whole state to send instead of what it missed.
fn resync(rx: &mut AttachReceiver, s: &Shared) -> axum::response::sse::Event {
    let (state, fresh) = subscribe(&s.live, &s.feed);
    // The old receiver is let go (and uncounted) before the state is serialized.
    *rx = fresh;
    state_event(&state)
}

/// `GET /api/attach`: what a pane lives on. First a `state` event (everything it shows),
/// then every engine event, each with the moment it was sent; a matrix event is a small
/// notice whose matrix the pane fetches from `/api/attach/provisional` or `/latest`. A
/// pane too slow to follow is sent the whole state again rather than a gap.
async fn attach_route(State(s): State<Arc<Shared>>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (state, rx) = subscribe(&s.live, &s.feed);
    let first = state_event(&state);
    drop(state);
    let guard = AttachedGuard::new(s.clone());
    let head = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(first) });
    let rest = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let ev = match rx.rx.recv().await {
            Ok(item) => match item.take_full() {
                Some(full) => Event::default().event(item.name).data(&*full),
                None => {
                    tracing::warn!("an event's text was let go before this pane took it");
                    resync(&mut rx, &guard.0)
                }
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("a pane fell {n} events behind: sending it the whole state");
                resync(&mut rx, &guard.0)
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), (rx, guard)))
    });
    use futures::StreamExt;
    Sse::new(head.chain(rest))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(30)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left_behind(item: &FeedItem) -> bool {
        item.full
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .text
            .is_some()
    }

    #[tokio::test]
    async fn the_feed_lets_an_events_text_go_once_every_attach_stream_took_it() {
        let live: LiveState = Arc::default();
        let (feed, mut light) = broadcast::channel(FEED_BUFFER);
        let ev = EngineEvent::Schedule(None);
        let (_, mut a) = subscribe(&live, &feed);
        let (_, mut b) = subscribe(&live, &feed);
        publish(&live, &feed, &ev, feed_item(&ev), None);

        let item = a.rx.recv().await.unwrap();
        let text = item.take_full().unwrap();
        assert!(text.contains("\"type\":\"schedule\""), "{text}");
        assert!(left_behind(&item), "b has yet to take it");
        let item = b.rx.recv().await.unwrap();
        assert_eq!(item.take_full().as_deref(), Some(&*text));
        assert!(
            !left_behind(&item),
            "the slot keeps no text once both took it"
        );
        // A light subscriber (`/api/events`) still has its own text.
        assert!(light.recv().await.unwrap().light.is_some());

        // A stream gone before reading is not waited for by later events.
        drop(b);
        publish(&live, &feed, &ev, feed_item(&ev), None);
        let item = a.rx.recv().await.unwrap();
        assert!(item.take_full().is_some());
        assert!(!left_behind(&item));
        assert!(light.recv().await.is_ok());

        // With no attach stream the text is not kept at all.
        drop(a);
        publish(&live, &feed, &ev, feed_item(&ev), None);
        let item = light.recv().await.unwrap();
        assert!(!left_behind(&item));
        assert_eq!(live.lock().unwrap().attach_streams, 0);
    }
}
