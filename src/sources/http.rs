//! The HTTP client every source uses, in layers:
//! limits (concurrency, rate-limit budgets, pacing) → cache (ETag revalidation) →
//! retry (transient failures only) → reqwest.
//!
//! Budgets come from the servers' own headers: no request is sent to a source whose
//! budget is exhausted before its reset, and never more requests are in flight than the
//! budget has left. Identical in-flight GETs are coalesced into one request.
//!
//! Every byte from outside is hostile: bodies are capped per source and read as a stream,
//! credentials only go to the configured origins (redirects and pagination links
//! elsewhere are refused, or followed without credentials where a protocol needs it),
//! only bodies that parsed are cached, and every message is cleaned of configured
//! secrets and terminal escapes before anyone logs, stores or shows it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, WeakShared};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::{Notify, Semaphore};

use crate::cache::{CacheRequest, Found, HttpCache, Namespace};
use crate::engine::events::{Budget, Level, LogLine};
use crate::redact::Redactor;

/// Time to open a connection (TCP and TLS).
pub const CONNECT_TIMEOUT_SECS: u64 = 10;
/// Time from sending a request to its response's status and headers. GitHub itself
/// stops a query after 10 s; a hung connection costs this, not a whole body timeout.
pub const FIRST_BYTE_TIMEOUT_SECS: u64 = 20;
/// Longest silence between two pieces of a body.
pub const READ_TIMEOUT_SECS: u64 = 20;
/// Time to read a whole body once its headers arrived.
pub const BODY_TIMEOUT_SECS: u64 = 120;
/// Retries of one request after a transient failure (5xx, timeout, connection error).
pub const MAX_TRANSIENT_RETRIES: usize = 3;
/// Retries a source may spend in one run: this many, plus one per five requests sent,
/// so that a source that is down costs a few attempts, not four per endpoint.
pub const RETRY_BUDGET_BASE: u64 = 10;
/// Redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;
/// A body may grow past this only while it holds one of [`LARGE_BODY_SLOTS`]: memory stays
/// near `concurrency × 4 MiB + 4 × cap` however many huge bodies arrive at once (a real
/// page of GitHub pulls is ~3 MiB and never waits).
pub const LARGE_BODY_BYTES: usize = 4 << 20;
pub const LARGE_BODY_SLOTS: usize = 4;
/// Rate-limit waits one request may sit through before it gives up.
pub const MAX_RATE_LIMIT_WAITS: u32 = 5;
/// The longest a single rate-limit wait may be before the request fails instead.
pub const MAX_RATE_LIMIT_WAIT_SECS: u64 = 900;
/// Long enough for a hundred "unknown key" messages from Jira, short enough for a line.
const ERROR_SUMMARY_MAX_CHARS: usize = 8000;
/// Resets reported as "seconds from now" (Datadog) wobble by a second between answers.
const RESET_JITTER: Duration = Duration::from_millis(1500);
/// Failures served stale that one client keeps for the run's report.
const MAX_STALE_FAILURES_KEPT: usize = 50;

/// Whether a failure means the source is unavailable for now (down, overloaded, rate
/// limited), the case where an expired cached answer is better than none. A 4xx is an
/// answer of its own (gone, forbidden): never papered over.
fn source_unavailable(e: &FetchError) -> bool {
    e.transient || e.rate_limited || e.status.is_some_and(|s| s >= 500 || s == 429)
}

/// GitHub documents no wait for a secondary limit without `retry-after`: "at least one minute".
const SECONDARY_LIMIT_DEFAULT_WAIT_SECS: u64 = 60;

/// A failed request, naming the source and endpoint. Cloneable so coalesced callers
/// each get it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{source_name} {method} {endpoint}{}: {message}", status.map(|s| format!(" → {s}")).unwrap_or_default())]
pub struct FetchError {
    pub source_name: &'static str,
    pub method: &'static str,
    /// Path (and query) relative to the source's base URL.
    pub endpoint: String,
    pub status: Option<u16>,
    pub message: String,
    /// Worth retrying (5xx, timeout, connection error).
    pub transient: bool,
    /// A 401's `WWW-Authenticate` (a registry's token challenge).
    pub challenge: Option<String>,
    /// Gave up on a rate limit: the source is unavailable for now, like a 5xx.
    pub rate_limited: bool,
}

impl FetchError {
    pub fn to_failure(&self) -> crate::engine::model::Failure {
        crate::engine::model::Failure {
            source: self.source_name.to_string(),
            endpoint: format!("{} {}", self.method, self.endpoint),
            status: self.status,
            message: self.message.clone(),
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
    /// The `Link` header (pagination), replayed from the cache on a 304.
    pub link: Option<String>,
    /// Answered 304 and served from the cache.
    pub not_modified: bool,
    /// Validators of a fresh answer, kept once its body is known to parse.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The cache entry this answer came from or may be stored under.
    pub cache_key: Option<String>,
    /// The response headers the cache's policy needs (`Cache-Control`, validators...).
    pub headers: HeaderMap,
    /// Served by the cache without a request (fresh).
    pub from_cache: bool,
    /// Served from an expired cache entry because the source failed: when the source
    /// last confirmed it (unix ms).
    pub stale_since: Option<i64>,
}

impl HttpResponse {
    fn from_entry(entry: &crate::cache::Entry, key: &str) -> HttpResponse {
        HttpResponse {
            status: 200,
            body: entry.body.clone(),
            link: entry.link.clone(),
            not_modified: false,
            etag: None,
            last_modified: None,
            cache_key: Some(key.to_string()),
            headers: HeaderMap::new(),
            from_cache: true,
            stale_since: None,
        }
    }
}

impl HttpResponse {
    /// Decodes the JSON body, naming the endpoint and what was wrong when it does not
    /// have the documented shape (`missing field `count``, `expected a sequence`).
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        client: &SourceClient,
        method: &'static str,
        endpoint: &str,
    ) -> Result<T, FetchError> {
        serde_json::from_str(&self.body).map_err(|e| {
            client.error(
                method,
                endpoint,
                Some(self.status),
                format!("response does not have the documented shape: {e}"),
                false,
            )
        })
    }
}

/// How a source authenticates. Values never reach logs or `Debug` output.
#[derive(Clone)]
pub enum Auth {
    None,
    Bearer(String),
    Basic {
        user: String,
        password: String,
    },
    /// Fixed headers (Datadog's `DD-API-KEY` / `DD-APPLICATION-KEY`).
    Headers(Vec<(&'static str, String)>),
}

/// How a source reports its budget in response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateHeaders {
    /// `x-ratelimit-remaining/limit/reset` (reset in epoch seconds), `x-ratelimit-resource`.
    GitHub,
    /// `X-RateLimit-Remaining/Limit/Reset` (reset in seconds from now).
    Datadog,
    /// Only `Retry-After` on 429 (Jira, TeamCity).
    RetryAfterOnly,
}

/// A documented request-rate cap enforced on our side: at most `max` requests in any
/// `window` (GitHub's secondary limits: 900 REST points/min, 2,000 GraphQL points/min).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub max: usize,
    pub window: Duration,
}

/// Counters of one source, shared with the engine for progress and run stats.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub not_modified: AtomicU64,
    pub cache_hits: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited_waits: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
    /// Requests that got an answer to use (2xx, or 304 from the cache).
    pub answered: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> crate::engine::model::SourceStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::engine::model::SourceStats {
            requests: get(&self.requests),
            not_modified: get(&self.not_modified),
            cache_hits: get(&self.cache_hits),
            retries: get(&self.retries),
            rate_limited_waits: get(&self.rate_limited_waits),
            errors: get(&self.errors),
            answered: get(&self.answered),
        }
    }
}

/// Where warnings go (the run log and the log file). Cheap to clone. Every message is
/// cleaned of configured secrets first, whoever wrote it.
#[derive(Clone)]
pub struct LogSink {
    send: Arc<dyn Fn(LogLine) + Send + Sync>,
    redactor: Redactor,
}

impl LogSink {
    pub fn new(f: impl Fn(LogLine) + Send + Sync + 'static) -> Self {
        LogSink {
            send: Arc::new(f),
            redactor: Redactor::default(),
        }
    }
    pub fn discard() -> Self {
        LogSink::new(|_| {})
    }
    /// The same sink, redacting these secrets from every line.
    pub fn redacting(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }
    pub fn warn(&self, source: &str, message: String) {
        let message = self.redactor.redact(&message).into_owned();
        tracing::warn!(source, "{message}");
        (self.send)(LogLine {
            at: time::OffsetDateTime::now_utc(),
            level: Level::Warn,
            source: source.to_string(),
            message,
        });
    }
}

#[derive(Debug, Default)]
struct BudgetState {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_at: Option<SystemTime>,
    /// Requests sent against this budget and not answered yet.
    in_flight: u64,
    /// A server-requested pause (`retry-after`), for every request of this budget.
    blocked_until: Option<Instant>,
    /// Send times within the pacing window.
    sent: VecDeque<Instant>,
    pace: Option<Pace>,
    /// Display name ("GitHub", "GitHub GraphQL").
    label: String,
}

/// Budgets of one source, keyed by resource ("core", "graphql", ...).
#[derive(Default)]
struct Limiter {
    budgets: Mutex<HashMap<String, BudgetState>>,
    changed: Notify,
}

/// Held while a request is in flight against a budget.
struct BudgetPermit<'a> {
    limiter: &'a Limiter,
    resource: String,
}

impl Drop for BudgetPermit<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.limiter.budgets.lock()
            && let Some(state) = b.get_mut(&self.resource)
        {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        self.limiter.changed.notify_waiters();
    }
}

enum Gate {
    Go,
    /// Sleep this long (budget reset, retry-after, pacing window).
    Sleep(Duration, Option<String>),
    /// Wait for an in-flight request to report the new budget.
    WaitForAnswer,
}

impl Limiter {
    fn configure(&self, resource: &str, label: &str, pace: Option<Pace>) {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let state = b.entry(resource.to_string()).or_default();
        state.pace = pace;
        state.label = label.to_string();
    }

    fn gate(&self, resource: &str) -> Gate {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let state = b.entry(resource.to_string()).or_default();
        let now = Instant::now();
        if let Some(until) = state.blocked_until {
            if until > now {
                return Gate::Sleep(until - now, None);
            }
            state.blocked_until = None;
        }
        if let Some(remaining) = state.remaining
            && remaining <= state.in_flight
        {
            let now_sys = SystemTime::now();
            match state.reset_at {
                Some(reset) if reset > now_sys => {
                    if remaining > 0 {
                        return Gate::WaitForAnswer;
                    }
                    let wait = reset.duration_since(now_sys).unwrap_or_default();
                    let msg = format!(
                        "{} budget exhausted ({}/{}) → waiting {}s for the reset",
                        state.label,
                        remaining,
                        state.limit.unwrap_or(0),
                        wait.as_secs().max(1)
                    );
                    // Half a second of slack: the reset is given in whole seconds.
                    return Gate::Sleep(wait + Duration::from_millis(500), Some(msg));
                }
                Some(_) => {
                    // The window has reset: the documented limit is available again
                    // (until an answer says otherwise).
                    state.remaining = state.limit;
                    state.reset_at = None;
                    if state.limit.is_some_and(|l| l <= state.in_flight) {
                        return Gate::WaitForAnswer;
                    }
                }
                // No reset known: an answer in flight will tell; with none, probe once.
                None if state.in_flight > 0 => return Gate::WaitForAnswer,
                None => {}
            }
        }
        if let Some(pace) = state.pace {
            while state
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= pace.window)
            {
                state.sent.pop_front();
            }
            if state.sent.len() >= pace.max {
                let oldest = state.sent[0];
                return Gate::Sleep(pace.window - now.duration_since(oldest), None);
            }
            state.sent.push_back(now);
        }
        state.in_flight += 1;
        Gate::Go
    }

    fn update(
        &self,
        resource: &str,
        remaining: Option<u64>,
        limit: Option<u64>,
        reset: Option<SystemTime>,
    ) {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let state = b.entry(resource.to_string()).or_default();
        // Answers arrive out of order: within one window the budget only goes down, and
        // an answer from an older window says nothing about the current one.
        let same_window = match (state.reset_at, reset) {
            (Some(known), Some(new)) => {
                let apart = known
                    .duration_since(new)
                    .or_else(|_| new.duration_since(known))
                    .unwrap_or_default();
                if apart <= RESET_JITTER && new < known {
                    true
                } else if new < known {
                    return;
                } else {
                    apart <= RESET_JITTER
                }
            }
            (None, _) | (_, None) => false,
        };
        if let Some(r) = remaining {
            state.remaining = Some(match state.remaining {
                Some(old) if same_window => old.min(r),
                _ => r,
            });
        }
        if limit.is_some() {
            state.limit = limit;
        }
        if reset.is_some() && !same_window {
            state.reset_at = reset;
        }
        drop(b);
        self.changed.notify_waiters();
    }

    fn block_for(&self, resource: &str, wait: Duration) {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let state = b.entry(resource.to_string()).or_default();
        let until = Instant::now() + wait;
        if state.blocked_until.is_none_or(|u| u < until) {
            state.blocked_until = Some(until);
        }
    }

    fn budgets(&self) -> Vec<Budget> {
        let b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Budget> = b
            .values()
            .filter_map(|s| {
                Some(Budget {
                    source: s.label.clone(),
                    remaining: s.remaining?,
                    limit: s.limit.unwrap_or(0),
                    resets_at: s.reset_at.map(time::OffsetDateTime::from),
                })
            })
            .collect();
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }
}

type FetchFuture = BoxFuture<'static, Result<Arc<HttpResponse>, FetchError>>;
type SharedFetch = Shared<FetchFuture>;

/// One HTTP client for the whole process: building one loads the TLS roots (10–20 ms),
/// and sharing it keeps connections alive from one snapshot to the next.
fn shared_http_client() -> Result<reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let built = reqwest::Client::builder()
        .user_agent(concat!("snaptop/", env!("CARGO_PKG_VERSION")))
        // Redirects are followed by `attempt`, which decides where credentials may go.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS))
        // Per host; GitHub's documented concurrency is the largest any source gets.
        .pool_max_idle_per_host(100)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(CLIENT.get_or_init(|| built).clone())
}

/// A client for one source (GitHub, TeamCity, Datadog, Jira).
#[derive(Clone)]
pub struct SourceClient {
    inner: Arc<Inner>,
    /// Short lowercase name used in errors and stats ("github").
    pub name: &'static str,
}

/// What to do with a redirect to an origin that is not configured for the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossOrigin {
    /// Fail the request, naming the target (the APIs never need one).
    Refuse,
    /// Follow it without any credential (registries send blobs to a CDN).
    FollowWithoutCredentials,
}

/// `scheme://host:port`, what credentials are bound to.
fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    /// Origins that may receive the credentials: the base URL's, and any other configured
    /// endpoint's (a GraphQL URL on another host).
    origins: Vec<String>,
    cross_origin: CrossOrigin,
    max_body_bytes: usize,
    redactor: Redactor,
    /// No rate-limit wait may end after this (the run's deadline).
    deadline: Option<Instant>,
    timeouts: Timeouts,
    auth: Auth,
    headers: HeaderMap,
    concurrency: Semaphore,
    /// Held by bodies larger than [`LARGE_BODY_BYTES`] while they are read.
    large_bodies: Semaphore,
    limiter: Limiter,
    rate_headers: RateHeaders,
    /// The HTTP cache for GETs, under this source's namespace; None: not cached.
    cache: Option<ClientCache>,
    /// Fingerprint of the credentials, part of cache keys (never the credential).
    fingerprint: String,
    /// Failures answered from an expired cache entry (stale-if-error), with when the
    /// source gave that answer (unix ms); bounded.
    served_stale: Mutex<Vec<(FetchError, i64)>>,
    counters: Arc<Counters>,
    /// Weak, so a cancelled run's requests are dropped with it rather than kept alive by
    /// their own entry (which also kept the run's event channel open).
    in_flight: Mutex<HashMap<String, WeakShared<FetchFuture>>>,
    log: LogSink,
    retry_min_delay: Duration,
}

/// How long a request may take, by phase: a hung server costs `first_byte`, a stalled
/// body `read`, never a whole-body timeout per attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// From sending to the status and headers.
    pub first_byte: Duration,
    /// Longest silence inside a body.
    pub read: Duration,
    /// A whole body, once its headers arrived.
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            first_byte: Duration::from_secs(FIRST_BYTE_TIMEOUT_SECS),
            read: Duration::from_secs(READ_TIMEOUT_SECS),
            body: Duration::from_secs(BODY_TIMEOUT_SECS),
        }
    }
}

/// A client's use of the HTTP cache.
#[derive(Clone)]
pub struct ClientCache {
    pub cache: HttpCache,
    pub namespace: Namespace,
    /// Entries the source confirmed before this (unix ms) are revalidated even when
    /// fresh: a manual run asks the sources rather than trusting a minute-old answer.
    pub reload_before: Option<i64>,
}

/// What every client of one run shares: where warnings go, the secrets to keep out of
/// messages, the run's deadline, the first retry delay, the timeouts, the cache.
#[derive(Clone)]
pub struct ClientContext {
    pub log: LogSink,
    pub redactor: Redactor,
    pub deadline: Option<Instant>,
    /// First backoff delay of transient retries (tests shorten it).
    pub retry_min_delay: Duration,
    pub timeouts: Timeouts,
    pub cache: Option<HttpCache>,
    /// See [`ClientCache::reload_before`].
    pub reload_before: Option<i64>,
}

impl ClientContext {
    /// No log, no secrets, no deadline: for tests and tools.
    pub fn quiet(retry_min_delay: Duration) -> Self {
        ClientContext {
            log: LogSink::discard(),
            redactor: Redactor::default(),
            deadline: None,
            retry_min_delay,
            timeouts: Timeouts::default(),
            cache: None,
            reload_before: None,
        }
    }

    /// The cache for a client of namespace `ns`, when the run has one.
    pub fn cache_for(&self, ns: Namespace) -> Option<ClientCache> {
        self.cache.as_ref().map(|cache| ClientCache {
            cache: cache.clone(),
            namespace: ns,
            reload_before: self.reload_before,
        })
    }
}

/// Settings of one [`SourceClient`].
pub struct ClientOptions {
    pub name: &'static str,
    pub label: &'static str,
    pub base_url: String,
    pub auth: Auth,
    pub headers: Vec<(&'static str, String)>,
    pub max_concurrency: usize,
    pub rate_headers: RateHeaders,
    /// GETs through [`SourceClient::get`] use it; None: nothing cached.
    pub cache: Option<ClientCache>,
    pub log: LogSink,
    /// Resource name → (display label, pacing) known before any answer.
    pub budgets: Vec<(&'static str, &'static str, Option<Pace>)>,
    /// First backoff delay of transient retries (tests shorten it).
    pub retry_min_delay: Duration,
    /// Largest response body accepted, after decompression.
    pub max_body_bytes: usize,
    /// Every configured secret, kept out of messages and the cache.
    pub redactor: Redactor,
    /// Other configured URLs that may receive the credentials (GitHub's GraphQL URL).
    pub extra_origins: Vec<String>,
    pub cross_origin: CrossOrigin,
    /// No rate-limit wait may end after this.
    pub deadline: Option<Instant>,
    /// Counters shared with other clients of the same source (one registry client per
    /// image repository); None: its own.
    pub counters: Option<Arc<Counters>>,
    pub timeouts: Timeouts,
}

impl ClientOptions {
    /// Options with the run's shared settings and defaults for the rest.
    pub fn new(
        name: &'static str,
        label: &'static str,
        base_url: String,
        auth: Auth,
        ctx: &ClientContext,
    ) -> Self {
        ClientOptions {
            name,
            label,
            base_url,
            auth,
            headers: vec![],
            max_concurrency: 8,
            rate_headers: RateHeaders::RetryAfterOnly,
            cache: None,
            log: ctx.log.clone(),
            budgets: vec![],
            retry_min_delay: ctx.retry_min_delay,
            max_body_bytes: 16 << 20,
            redactor: ctx.redactor.clone(),
            extra_origins: vec![],
            cross_origin: CrossOrigin::Refuse,
            deadline: ctx.deadline,
            counters: None,
            timeouts: ctx.timeouts,
        }
    }
}

impl SourceClient {
    pub fn new(opts: ClientOptions) -> Result<SourceClient, String> {
        let mut base = Url::parse(&opts.base_url)
            .map_err(|e| format!("{}: bad base URL {}: {e}", opts.name, opts.base_url))?;
        // Url::join treats a base without a trailing slash as a file: keep the last segment.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &opts.headers {
            let name = HeaderName::from_static(k);
            let value =
                HeaderValue::from_str(v).map_err(|_| format!("{}: bad header {k}", opts.name))?;
            headers.insert(name, value);
        }
        let http = shared_http_client()
            .map_err(|e| format!("{}: cannot build HTTP client: {e}", opts.name))?;
        let limiter = Limiter::default();
        for (resource, label, pace) in &opts.budgets {
            limiter.configure(resource, label, *pace);
        }
        let mut origins = vec![origin_of(&base)];
        for extra in &opts.extra_origins {
            let url =
                Url::parse(extra).map_err(|e| format!("{}: bad URL {extra}: {e}", opts.name))?;
            origins.push(origin_of(&url));
        }
        let log = opts.log.redacting(opts.redactor.clone());
        let fingerprint = match &opts.auth {
            Auth::None => crate::cache::credential_fingerprint(&[]),
            Auth::Bearer(t) => crate::cache::credential_fingerprint(&["bearer", t]),
            Auth::Basic { user, password } => {
                crate::cache::credential_fingerprint(&["basic", user, password])
            }
            Auth::Headers(h) => {
                let parts: Vec<&str> = h.iter().flat_map(|(k, v)| [*k, v.as_str()]).collect();
                crate::cache::credential_fingerprint(&parts)
            }
        };
        Ok(SourceClient {
            name: opts.name,
            inner: Arc::new(Inner {
                http,
                base,
                origins,
                cross_origin: opts.cross_origin,
                max_body_bytes: opts.max_body_bytes.max(1024),
                redactor: opts.redactor,
                deadline: opts.deadline,
                timeouts: opts.timeouts,
                auth: opts.auth,
                headers,
                concurrency: Semaphore::new(opts.max_concurrency.max(1)),
                large_bodies: Semaphore::new(LARGE_BODY_SLOTS),
                limiter,
                rate_headers: opts.rate_headers,
                cache: opts.cache,
                fingerprint,
                served_stale: Mutex::new(Vec::new()),
                counters: opts.counters.unwrap_or_default(),
                in_flight: Mutex::new(HashMap::new()),
                log,
                retry_min_delay: opts.retry_min_delay,
            }),
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.inner.counters.clone()
    }

    pub fn budgets(&self) -> Vec<Budget> {
        self.inner.limiter.budgets()
    }

    pub fn log(&self) -> &LogSink {
        &self.inner.log
    }

    /// Resolves `endpoint` (a path relative to the base URL, with query) to a full URL.
    pub fn url(&self, endpoint: &str) -> Result<Url, FetchError> {
        self.inner
            .base
            .join(endpoint.trim_start_matches('/'))
            .map_err(|e| self.error("GET", endpoint, None, format!("bad URL: {e}"), false))
    }

    /// A link the server gave (`Link: rel="next"`, TeamCity's `nextHref`), resolved
    /// against the base URL. It must stay on the source's origin and under its base path:
    /// following it sends the credentials.
    pub fn follow_link(&self, link: &str, from: &str) -> Result<Url, FetchError> {
        let base = &self.inner.base;
        let url = base
            .join(link)
            .map_err(|e| self.error("GET", from, None, format!("bad link {link:?}: {e}"), false))?;
        let prefix = base.path().trim_end_matches('/');
        let under_base = url.path() == prefix || url.path().starts_with(&format!("{prefix}/"));
        if origin_of(&url) != origin_of(base) || !under_base {
            return Err(self.error(
                "GET",
                from,
                None,
                format!(
                    "pagination link {url} leaves the configured {}{prefix}/: not followed (it would carry the credentials)",
                    origin_of(base)
                ),
                false,
            ));
        }
        Ok(url)
    }

    /// The endpoint of an absolute URL, relative to the base (for messages and links).
    pub fn endpoint_of(&self, url: &Url) -> String {
        let base = self.inner.base.as_str();
        let full = url.as_str();
        match full.strip_prefix(base) {
            Some(rest) => format!("/{rest}"),
            None => full.to_string(),
        }
    }

    /// A failure of this source. Its message and endpoint may quote what a server sent
    /// (an error page echoing request headers): configured secrets and terminal escapes
    /// are removed here, before the error is logged, stored or shown.
    pub fn error(
        &self,
        method: &'static str,
        endpoint: &str,
        status: Option<u16>,
        message: String,
        transient: bool,
    ) -> FetchError {
        let redact = |s: &str| {
            crate::sanitize::one_line(&self.inner.redactor.redact(s), ERROR_SUMMARY_MAX_CHARS)
        };
        FetchError {
            source_name: self.name,
            method,
            endpoint: redact(endpoint),
            status,
            message: redact(&message),
            transient,
            challenge: None,
            rate_limited: false,
        }
    }

    /// Takes back the error count of a failed request its caller expected and handled
    /// (Jira's 400 naming unknown ticket keys), so stats count only real failures.
    pub fn error_handled(&self) {
        let _ =
            self.inner
                .counters
                .errors
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Records answers served from the store without any request.
    pub fn count_cache_hit(&self, n: u64) {
        self.inner
            .counters
            .cache_hits
            .fetch_add(n, Ordering::Relaxed);
    }

    /// GET `url` against budget `resource`, conditional when the client has a cache,
    /// coalesced with an identical GET already in flight. Nothing is cached by this
    /// call: [`SourceClient::get_json`] keeps an answer once it parsed.
    pub async fn get(
        &self,
        url: Url,
        resource: &'static str,
    ) -> Result<Arc<HttpResponse>, FetchError> {
        let key = match &self.inner.cache {
            Some(c) => format!("{} {} GET {}", c.namespace, self.inner.fingerprint, url),
            None => format!("{} GET {}", self.name, url),
        };
        let fut = {
            let mut map = self
                .inner
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match map.get(&key).and_then(WeakShared::upgrade) {
                Some(existing) => {
                    self.count_cache_hit(1);
                    if let Some(c) = &self.inner.cache {
                        c.cache.record_coalesced(c.namespace, 1);
                    }
                    existing
                }
                None => {
                    let this = self.clone();
                    let k = key.clone();
                    let fut: SharedFetch = async move {
                        let result = this.cached_get(url, resource, &k).await.map(Arc::new);
                        this.inner
                            .in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&k);
                        result
                    }
                    .boxed()
                    .shared();
                    if let Some(weak) = fut.downgrade() {
                        map.insert(key, weak);
                    }
                    fut
                }
            }
        };
        fut.await
    }

    /// GET and decode a JSON answer of the documented shape `T`. A fresh answer is cached
    /// (with its ETag) only once it decoded, so a bad body is never replayed by a 304; a
    /// cached body that no longer decodes is dropped and fetched again unconditionally.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        resource: &'static str,
    ) -> Result<(T, Arc<HttpResponse>), FetchError> {
        let endpoint = self.endpoint_of(&url);
        let resp = self.get(url.clone(), resource).await?;
        match resp.json::<T>(self, "GET", &endpoint) {
            Ok(value) => {
                self.keep(&url, &resp).await;
                Ok((value, resp))
            }
            Err(e) if resp.not_modified || resp.from_cache || resp.stale_since.is_some() => {
                self.forget(&resp).await;
                self.inner.log.warn(
                    self.name,
                    format!(
                        "cached answer of GET {endpoint} does not decode ({e}); fetching it again"
                    ),
                );
                let key = resp.cache_key.clone();
                let fresh = self
                    .send(
                        Method::GET,
                        url.clone(),
                        None,
                        resource,
                        key.as_deref(),
                        &HeaderMap::new(),
                    )
                    .await
                    .map(Arc::new)?;
                let value = fresh.json::<T>(self, "GET", &endpoint)?;
                self.keep(&url, &fresh).await;
                Ok((value, fresh))
            }
            Err(e) => Err(e),
        }
    }

    /// Stores a fresh answer that its caller decoded, if its HTTP policy allows. An
    /// answer that echoes a configured secret is never stored.
    pub async fn keep(&self, url: &Url, resp: &HttpResponse) {
        let (Some(c), Some(key)) = (&self.inner.cache, &resp.cache_key) else {
            return;
        };
        if resp.not_modified || resp.from_cache || resp.stale_since.is_some() {
            return;
        }
        if self.inner.redactor.contains_secret(&resp.body)
            || resp
                .link
                .as_deref()
                .is_some_and(|l| self.inner.redactor.contains_secret(l))
        {
            c.cache.record_not_stored(c.namespace);
            self.inner.log.warn(
                self.name,
                format!(
                    "an answer of {} echoes a configured secret: not cached",
                    self.endpoint_of_key(key)
                ),
            );
            return;
        }
        let Some(req) = CacheRequest::get(url, &self.inner.headers) else {
            return;
        };
        let answer = crate::cache::Answer {
            status: resp.status,
            headers: &resp.headers,
            link: resp.link.clone(),
            body: &resp.body,
        };
        c.cache.store(c.namespace, key, &req, answer).await;
    }

    /// Drops the cache entry an answer came from (it did not decode).
    pub async fn forget(&self, resp: &HttpResponse) {
        if let (Some(c), Some(key)) = (&self.inner.cache, &resp.cache_key) {
            c.cache.remove(key).await;
        }
    }

    /// `namespace fingerprint`, the start of this client's cache keys.
    pub fn cache_prefix(&self) -> String {
        let ns = self
            .inner
            .cache
            .as_ref()
            .map_or(self.name, |c| c.namespace.as_str());
        format!("{ns} {}", self.inner.fingerprint)
    }

    /// The oldest confirmation time (unix ms) of an answer this client served stale
    /// because its source failed; None: every answer was fresh from the source.
    pub fn stale_since(&self) -> Option<i64> {
        let served = self
            .inner
            .served_stale
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        served.iter().map(|(_, at)| *at).min()
    }

    /// The failures an expired cache entry stood in for, as the run reports them.
    pub fn stale_failures(&self) -> Vec<crate::engine::model::Failure> {
        let served = self
            .inner
            .served_stale
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        served
            .iter()
            .map(|(e, at)| {
                let mut f = e.to_failure();
                let at = time::OffsetDateTime::from_unix_timestamp(at / 1000)
                    .map(crate::clock::hms)
                    .unwrap_or_default();
                f.message = format!("{} (shown: its answer of {at}, marked stale)", f.message);
                f
            })
            .collect()
    }

    /// A GET through the cache: a fresh entry answers without a request, a stale one is
    /// revalidated, and when the source fails an expired one may stand in, flagged.
    async fn cached_get(
        &self,
        url: Url,
        resource: &'static str,
        key: &str,
    ) -> Result<HttpResponse, FetchError> {
        let none = HeaderMap::new();
        let Some(c) = &self.inner.cache else {
            return self
                .send(Method::GET, url, None, resource, None, &none)
                .await;
        };
        let ns = c.namespace;
        let request = (!crate::cache::url_carries_credentials(&url)
            && !self.inner.redactor.contains_secret(url.as_str()))
        .then(|| CacheRequest::get(&url, &self.inner.headers))
        .flatten();
        let Some(req) = request else {
            // Credentials in the URL: neither looked up nor stored.
            c.cache.record_bypass(ns);
            return self
                .send(Method::GET, url, None, resource, None, &none)
                .await;
        };
        let found = c.cache.lookup(ns, key, &req, c.reload_before).await;
        let (entry, conditional) = match found {
            Some(Found::Fresh(entry, _)) => {
                self.count_cache_hit(1);
                return Ok(HttpResponse::from_entry(&entry, key));
            }
            Some(Found::Stale(entry, conditional)) => (Some(entry), conditional),
            None => (None, none.clone()),
        };
        let sent = self
            .send(
                Method::GET,
                url.clone(),
                None,
                resource,
                Some(key),
                &conditional,
            )
            .await;
        match (sent, entry) {
            (Ok(resp), Some(entry)) if resp.status == 304 => {
                if let Some(updated) = c
                    .cache
                    .revalidated(ns, key, &entry, &req, &resp.headers)
                    .await
                {
                    self.inner
                        .counters
                        .not_modified
                        .fetch_add(1, Ordering::Relaxed);
                    let mut out = HttpResponse::from_entry(&updated, key);
                    out.from_cache = false;
                    out.not_modified = true;
                    return Ok(out);
                }
                // A 304 for another validator than the one stored: ask for the answer.
                c.cache.record_miss(ns);
                self.send(Method::GET, url, None, resource, Some(key), &none)
                    .await
            }
            (Ok(resp), _) if resp.status == 304 => {
                c.cache.record_miss(ns);
                Err(self.error(
                    "GET",
                    &self.endpoint_of(&url),
                    Some(304),
                    "304 Not Modified to a request that was not conditional".into(),
                    false,
                ))
            }
            (Ok(resp), _) => {
                c.cache.record_miss(ns);
                Ok(resp)
            }
            (Err(e), Some(entry)) if source_unavailable(&e) && c.cache.serve_stale(ns, &entry) => {
                let at = time::OffsetDateTime::from_unix_timestamp(entry.validated_at_ms / 1000)
                    .map(crate::clock::hms)
                    .unwrap_or_default();
                self.inner.log.warn(
                    self.name,
                    format!("{e} → serving the answer the source gave at {at} (stale)"),
                );
                {
                    let mut served = self
                        .inner
                        .served_stale
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if served.len() < MAX_STALE_FAILURES_KEPT {
                        served.push((e.clone(), entry.validated_at_ms));
                    }
                }
                let mut out = HttpResponse::from_entry(&entry, key);
                out.from_cache = false;
                out.stale_since = Some(entry.validated_at_ms);
                Ok(out)
            }
            (Err(e), _) => {
                c.cache.record_miss(ns);
                Err(e)
            }
        }
    }

    fn endpoint_of_key(&self, key: &str) -> String {
        key.split_once(" GET ")
            .and_then(|(_, url)| Url::parse(url).ok())
            .map(|u| self.endpoint_of(&u))
            .unwrap_or_else(|| key.to_string())
    }

    /// GET without the cache or coalescing (answers that change every time).
    pub async fn get_uncached(
        &self,
        url: Url,
        resource: &'static str,
    ) -> Result<HttpResponse, FetchError> {
        self.count_bypass();
        self.send(Method::GET, url, None, resource, None, &HeaderMap::new())
            .await
    }

    fn count_bypass(&self) {
        if let Some(c) = &self.inner.cache {
            c.cache.record_bypass(c.namespace);
        }
    }

    /// POST a JSON body (never cached, never coalesced).
    pub async fn post_json(
        &self,
        url: Url,
        body: &serde_json::Value,
        resource: &'static str,
    ) -> Result<HttpResponse, FetchError> {
        self.count_bypass();
        self.send(
            Method::POST,
            url,
            Some(body.to_string()),
            resource,
            None,
            &HeaderMap::new(),
        )
        .await
    }

    /// Whether the retry budget of this run allows one more retry.
    fn retry_allowed(&self) -> bool {
        let c = &self.inner.counters;
        let sent = c.requests.load(Ordering::Relaxed);
        c.retries.load(Ordering::Relaxed) < RETRY_BUDGET_BASE + sent / 5
    }

    /// Sends with retries of transient failures. `cache_key` names the cache entry the
    /// answer may be stored under; `conditional` holds the revalidation headers
    /// (`If-None-Match`...), and a 304 comes back as it is, for the cache to answer.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
        resource: &'static str,
        cache_key: Option<&str>,
        conditional: &HeaderMap,
    ) -> Result<HttpResponse, FetchError> {
        let method_name: &'static str = if method == Method::POST {
            "POST"
        } else {
            "GET"
        };
        let endpoint = self.endpoint_of(&url);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.inner.retry_min_delay)
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(MAX_TRANSIENT_RETRIES)
            .with_jitter();
        let attempt = || {
            self.attempt(
                method.clone(),
                &url,
                body.as_deref(),
                resource,
                conditional,
                method_name,
                &endpoint,
            )
        };
        let result = attempt
            .retry(backoff)
            .when(|e: &FetchError| {
                if !e.transient {
                    return false;
                }
                if self.retry_allowed() {
                    return true;
                }
                self.inner.log.warn(
                    self.name,
                    format!(
                        "{e} → not retried: this run's retry budget for {} is spent",
                        self.name
                    ),
                );
                false
            })
            .notify(|e: &FetchError, wait: Duration| {
                self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                self.inner.log.warn(
                    self.name,
                    format!("{e} → retrying in {}ms", wait.as_millis()),
                );
            })
            .await;
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                self.inner.counters.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        response.cache_key = cache_key.map(str::to_string);
        self.inner.counters.answered.fetch_add(1, Ordering::Relaxed);
        Ok(response)
    }

    /// Whether `url` may receive the credentials.
    fn trusted(&self, url: &Url) -> bool {
        let origin = origin_of(url);
        self.inner.origins.contains(&origin)
    }

    /// One attempt: wait for budget and a concurrency slot, send (following redirects
    /// that stay on a configured origin), read the capped body, classify the answer.
    /// Rate-limit answers wait and try again here (they are not failures); transient
    /// failures are returned for the retry layer.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        method: Method,
        url: &Url,
        body: Option<&str>,
        resource: &'static str,
        conditional: &HeaderMap,
        method_name: &'static str,
        endpoint: &str,
    ) -> Result<HttpResponse, FetchError> {
        if !self.trusted(url) {
            return Err(self.error(
                method_name,
                endpoint,
                None,
                format!(
                    "{} is not a configured origin of {}: not sent (it would carry the credentials)",
                    origin_of(url),
                    self.name
                ),
                false,
            ));
        }
        let mut waits = 0u32;
        loop {
            let _slot = self.inner.concurrency.acquire().await.map_err(|_| {
                self.error(method_name, endpoint, None, "client closed".into(), false)
            })?;
            let _permit = self
                .acquire_budget(resource, &mut waits, method_name, endpoint)
                .await?;
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = &self.inner.cache {
                c.cache.record_request(c.namespace);
            }
            self.inner
                .counters
                .in_flight
                .fetch_add(1, Ordering::Relaxed);
            let sent = self
                .send_following_redirects(&method, url, body, conditional, method_name, endpoint)
                .await;
            self.inner
                .counters
                .in_flight
                .fetch_sub(1, Ordering::Relaxed);
            let resp = sent?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let budget_resource = self.read_budget(&headers, resource);
            let link = header_str(&headers, "link");
            let etag = header_str(&headers, "etag");
            let last_modified = header_str(&headers, "last-modified");
            let text = self.read_body(resp, method_name, endpoint, status).await?;
            if let Some((wait, why)) = self.rate_limited(status, &headers, &text, waits) {
                drop(_permit);
                waits += 1;
                let give_up = if waits > MAX_RATE_LIMIT_WAITS {
                    Some(format!("still limited after {MAX_RATE_LIMIT_WAITS} waits"))
                } else if wait > Duration::from_secs(MAX_RATE_LIMIT_WAIT_SECS) {
                    Some(format!(
                        "asked to wait {}s (until {}), more than the {MAX_RATE_LIMIT_WAIT_SECS}s snaptop waits",
                        wait.as_secs(),
                        crate::clock::hms_after(wait)
                    ))
                } else {
                    self.past_deadline(wait).map(|until| {
                        format!("the wait until {until} ends after the run's deadline")
                    })
                };
                if let Some(detail) = give_up {
                    let mut e = self.error(
                        method_name,
                        endpoint,
                        Some(status.as_u16()),
                        format!("{why}: {detail}; giving up"),
                        false,
                    );
                    e.rate_limited = true;
                    return Err(e);
                }
                self.pause(
                    &budget_resource,
                    wait,
                    &format!("{why} on {method_name} {endpoint} ({})", status.as_u16()),
                );
                continue;
            }
            if status == StatusCode::NOT_MODIFIED {
                if conditional.is_empty() {
                    return Err(self.error(
                        method_name,
                        endpoint,
                        Some(304),
                        "304 Not Modified to a request that was not conditional".into(),
                        false,
                    ));
                }
                return Ok(HttpResponse {
                    status: 304,
                    body: String::new(),
                    link: None,
                    not_modified: true,
                    etag,
                    last_modified,
                    cache_key: None,
                    headers: crate::cache::policy_headers(&headers),
                    from_cache: false,
                    stale_since: None,
                });
            }
            if !status.is_success() {
                let mut e = self.error(
                    method_name,
                    endpoint,
                    Some(status.as_u16()),
                    error_summary(status, &text),
                    status.is_server_error(),
                );
                if status == StatusCode::UNAUTHORIZED {
                    e.challenge = header_str(&headers, "www-authenticate");
                }
                return Err(e);
            }
            return Ok(HttpResponse {
                status: status.as_u16(),
                body: text,
                link,
                not_modified: false,
                etag,
                last_modified,
                cache_key: None,
                headers: crate::cache::policy_headers(&headers),
                from_cache: false,
                stale_since: None,
            });
        }
    }

    /// Sends one request, following up to [`MAX_REDIRECTS`] redirects. Credentials go
    /// only to configured origins: a redirect elsewhere is refused (APIs) or followed
    /// without any credential (registries' blob storage), per the client's policy.
    async fn send_following_redirects(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&str>,
        conditional: &HeaderMap,
        method_name: &'static str,
        endpoint: &str,
    ) -> Result<reqwest::Response, FetchError> {
        let mut url = url.clone();
        let mut method = method.clone();
        let mut body = body;
        let mut with_credentials = true;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .headers(self.inner.headers.clone());
            if with_credentials {
                req = match &self.inner.auth {
                    Auth::None => req,
                    Auth::Bearer(t) => req.bearer_auth(t),
                    Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
                    Auth::Headers(h) => h.iter().fold(req, |r, (k, v)| r.header(*k, v)),
                };
            }
            for (k, v) in conditional {
                req = req.header(k, v);
            }
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let first_byte = self.inner.timeouts.first_byte;
            let resp = match tokio::time::timeout(first_byte, req.send()).await {
                Err(_) => {
                    return Err(self.error(
                        method_name,
                        endpoint,
                        None,
                        format!("no response within {}", seconds(first_byte)),
                        true,
                    ));
                }
                Ok(Err(e)) => {
                    let what = if e.is_timeout() {
                        "timed out".to_string()
                    } else if e.is_connect() {
                        format!("cannot connect: {}", root_cause(&e))
                    } else {
                        format!("request failed: {}", root_cause(&e))
                    };
                    return Err(self.error(method_name, endpoint, None, what, true));
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                return Ok(resp);
            }
            let location = header_str(resp.headers(), "location").ok_or_else(|| {
                self.error(
                    method_name,
                    endpoint,
                    Some(status.as_u16()),
                    "redirect without a Location".into(),
                    false,
                )
            })?;
            let next = url.join(&location).map_err(|e| {
                self.error(
                    method_name,
                    endpoint,
                    Some(status.as_u16()),
                    format!("redirect to a bad Location {location:?}: {e}"),
                    false,
                )
            })?;
            let keeps_method = matches!(status.as_u16(), 307 | 308);
            if method == Method::POST && !keeps_method {
                return Err(self.error(
                    method_name,
                    endpoint,
                    Some(status.as_u16()),
                    format!("POST redirected to {next}: not followed"),
                    false,
                ));
            }
            if !keeps_method {
                method = Method::GET;
                body = None;
            }
            if !self.trusted(&next) {
                match self.inner.cross_origin {
                    CrossOrigin::Refuse => {
                        return Err(self.error(
                            method_name,
                            endpoint,
                            Some(status.as_u16()),
                            format!(
                                "redirected to another origin ({next}): not followed, the credentials stay with {}",
                                self.inner.origins.join(", ")
                            ),
                            false,
                        ));
                    }
                    CrossOrigin::FollowWithoutCredentials => with_credentials = false,
                }
            }
            url = next;
        }
        Err(self.error(
            method_name,
            endpoint,
            None,
            format!("more than {MAX_REDIRECTS} redirects"),
            false,
        ))
    }

    /// Reads a body as a stream, never more than the source's cap, within the body
    /// timeout and with no silence longer than the read timeout. A body that is too large,
    /// or not UTF-8, is a failure of its own (not worth a retry); one cut short or stalled
    /// is transient.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        method_name: &'static str,
        endpoint: &str,
        status: StatusCode,
    ) -> Result<String, FetchError> {
        let cap = self.inner.max_body_bytes;
        let too_large = |n: String| {
            self.error(
                method_name,
                endpoint,
                Some(status.as_u16()),
                format!(
                    "response body of {n} bytes is over the {} MiB limit ({}.max_body_mib)",
                    cap >> 20,
                    self.name
                ),
                false,
            )
        };
        if let Some(len) = resp.content_length()
            && len > cap as u64
        {
            return Err(too_large(len.to_string()));
        }
        let mut buf: Vec<u8> =
            Vec::with_capacity(resp.content_length().unwrap_or(0).min(1 << 20) as usize);
        let timeouts = self.inner.timeouts;
        let deadline = tokio::time::Instant::now() + timeouts.body;
        let mut large = None;
        loop {
            let silence = tokio::time::Instant::now() + timeouts.read;
            let chunk = tokio::time::timeout_at(silence.min(deadline), resp.chunk())
                .await
                .map_err(|_| {
                    let what = if tokio::time::Instant::now() >= deadline {
                        format!("body not complete after {}", seconds(timeouts.body))
                    } else {
                        format!("body stalled for {}", seconds(timeouts.read))
                    };
                    self.error(method_name, endpoint, Some(status.as_u16()), what, true)
                })?
                .map_err(|e| {
                    self.error(
                        method_name,
                        endpoint,
                        Some(status.as_u16()),
                        format!("reading body: {}", root_cause(&e)),
                        true,
                    )
                })?;
            match chunk {
                Some(c) if buf.len() + c.len() > cap => {
                    return Err(too_large(format!("more than {}", buf.len() + c.len())));
                }
                Some(c) => {
                    if large.is_none() && buf.len() + c.len() > LARGE_BODY_BYTES {
                        let slot =
                            tokio::time::timeout_at(deadline, self.inner.large_bodies.acquire());
                        large = Some(slot.await.ok().and_then(Result::ok).ok_or_else(|| {
                            self.error(
                                method_name,
                                endpoint,
                                Some(status.as_u16()),
                                format!("body not complete after {}", seconds(timeouts.body)),
                                true,
                            )
                        })?);
                    }
                    buf.extend_from_slice(&c)
                }
                None => break,
            }
        }
        String::from_utf8(buf).map_err(|e| {
            self.error(
                method_name,
                endpoint,
                Some(status.as_u16()),
                format!("body is not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                false,
            )
        })
    }

    /// The instant past the run's deadline a wait of `wait` would reach, as a clock time.
    fn past_deadline(&self, wait: Duration) -> Option<String> {
        let deadline = self.inner.deadline?;
        (Instant::now() + wait > deadline).then(|| crate::clock::hms_after(wait))
    }

    async fn acquire_budget(
        &self,
        resource: &'static str,
        waits: &mut u32,
        method: &'static str,
        endpoint: &str,
    ) -> Result<BudgetPermit<'_>, FetchError> {
        let limiter = &self.inner.limiter;
        loop {
            let notified = limiter.changed.notified();
            match limiter.gate(resource) {
                Gate::Go => {
                    return Ok(BudgetPermit {
                        limiter,
                        resource: resource.to_string(),
                    });
                }
                Gate::Sleep(d, msg) => {
                    if msg.is_some() && d > Duration::from_secs(MAX_RATE_LIMIT_WAIT_SECS) {
                        return Err(self.error(
                            method,
                            endpoint,
                            None,
                            format!(
                                "rate limit budget exhausted; resets in {}s (at {})",
                                d.as_secs(),
                                crate::clock::hms_after(d)
                            ),
                            false,
                        ));
                    }
                    if let Some(until) = self.past_deadline(d) {
                        return Err(self.error(
                            method,
                            endpoint,
                            None,
                            format!(
                                "not sent: {} is held until {until}, after the run's deadline",
                                self.name
                            ),
                            false,
                        ));
                    }
                    if let Some(msg) = msg {
                        *waits += 1;
                        self.inner
                            .counters
                            .rate_limited_waits
                            .fetch_add(1, Ordering::Relaxed);
                        self.inner.log.warn(self.name, msg);
                    }
                    tokio::time::sleep(d).await;
                }
                Gate::WaitForAnswer => {
                    // Bounded: an answer (or a dropped permit) always notifies; the
                    // timeout guards against a lost wake-up.
                    let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
                }
            }
        }
    }

    /// Reads the budget headers; returns the resource they describe.
    fn read_budget(&self, headers: &HeaderMap, resource: &'static str) -> String {
        let num = |name: &str| header_str(headers, name).and_then(|v| v.trim().parse::<u64>().ok());
        match self.inner.rate_headers {
            RateHeaders::GitHub => {
                let res = header_str(headers, "x-ratelimit-resource")
                    .unwrap_or_else(|| resource.to_string());
                let reset = num("x-ratelimit-reset").map(|s| UNIX_EPOCH + Duration::from_secs(s));
                self.inner.limiter.update(
                    &res,
                    num("x-ratelimit-remaining"),
                    num("x-ratelimit-limit"),
                    reset,
                );
                res
            }
            RateHeaders::Datadog => {
                let reset =
                    num("x-ratelimit-reset").map(|s| SystemTime::now() + Duration::from_secs(s));
                self.inner.limiter.update(
                    resource,
                    num("x-ratelimit-remaining"),
                    num("x-ratelimit-limit"),
                    reset,
                );
                resource.to_string()
            }
            RateHeaders::RetryAfterOnly => resource.to_string(),
        }
    }

    /// How long to wait when the answer says "rate limited"; None when it does not.
    /// `earlier_waits` escalates GitHub's secondary-limit wait (60 s, 120 s, ...).
    fn rate_limited(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
        earlier_waits: u32,
    ) -> Option<(Duration, &'static str)> {
        rate_limit_wait(
            self.inner.rate_headers,
            status,
            headers,
            body,
            earlier_waits,
        )
    }

    /// Holds every request of `resource` for `wait` (a server said so), counting it as
    /// a rate-limit wait in the run log.
    pub fn pause(&self, resource: &str, wait: Duration, what: &str) {
        self.inner
            .counters
            .rate_limited_waits
            .fetch_add(1, Ordering::Relaxed);
        self.inner.log.warn(
            self.name,
            format!(
                "{what}: waiting {}s, until {}",
                wait.as_secs_f64().ceil(),
                crate::clock::hms_after(wait)
            ),
        );
        self.inner.limiter.block_for(resource, wait);
    }

    /// Records a budget learned from a response body (GitHub's `/rate_limit`).
    pub fn learn_budget(
        &self,
        resource: &str,
        remaining: u64,
        limit: u64,
        reset_unix: Option<u64>,
    ) {
        self.inner.limiter.update(
            resource,
            Some(remaining),
            Some(limit),
            reset_unix.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        );
    }
}

/// The wait a 403/429 asks for, per the sources' documentation: `Retry-After` when
/// given; else the reset when the budget is spent (`X-RateLimit-Reset` as epoch seconds
/// for GitHub, seconds from now for Datadog, an ISO date for Jira); else, for a 429 or a
/// GitHub secondary limit (a 403 whose message says so), at least a minute, doubling
/// on repeats. A 403 about permissions is not a rate limit.
fn rate_limit_wait(
    kind: RateHeaders,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    earlier_waits: u32,
) -> Option<(Duration, &'static str)> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::FORBIDDEN {
        return None;
    }
    let secondary =
        kind == RateHeaders::GitHub && body.to_ascii_lowercase().contains("secondary rate limit");
    let why = if secondary {
        "secondary rate limit"
    } else {
        "rate limited"
    };
    if let Some(wait) = header_str(headers, "retry-after").and_then(|v| parse_retry_after(&v)) {
        return Some((wait, why));
    }
    let remaining =
        header_str(headers, "x-ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok());
    let reset = header_str(headers, "x-ratelimit-reset");
    if remaining == Some(0)
        && let Some(reset) = reset.as_deref().map(str::trim)
    {
        let wait = match (kind, reset.parse::<u64>()) {
            (RateHeaders::GitHub, Ok(epoch)) => Some(
                (UNIX_EPOCH + Duration::from_secs(epoch))
                    .duration_since(SystemTime::now())
                    .unwrap_or_default(),
            ),
            (_, Ok(secs)) => Some(Duration::from_secs(secs)),
            (_, Err(_)) => parse_iso_reset(reset),
        };
        if let Some(wait) = wait {
            let why = if secondary {
                why
            } else {
                "rate limit budget spent"
            };
            return Some((wait + Duration::from_millis(500), why));
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS || secondary {
        let factor = 1u64 << earlier_waits.min(4);
        return Some((
            Duration::from_secs(SECONDARY_LIMIT_DEFAULT_WAIT_SECS * factor),
            why,
        ));
    }
    // A 403 that is not about rate limits (permissions) is a real error.
    None
}

/// Jira's `X-RateLimit-Reset`: `2026-11-23T14:05Z` (ISO 8601, minutes or seconds).
fn parse_iso_reset(v: &str) -> Option<Duration> {
    use time::macros::format_description;
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .ok()
        .or_else(|| {
            time::PrimitiveDateTime::parse(
                v.trim_end_matches('Z'),
                format_description!("[year]-[month]-[day]T[hour]:[minute]"),
            )
            .ok()
            .map(|t| t.assume_utc())
        })?;
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or_default())
}

/// `Retry-After` is seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `20s`, `1.5s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// One line from an error body: the API's own message when it has one.
fn error_summary(status: StatusCode, body: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("error");
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str().map(str::to_string))
                .or_else(|| {
                    // Jira lists one message per problem (one per unknown key): keep all.
                    let all: Vec<&str> = v
                        .get("errorMessages")?
                        .as_array()?
                        .iter()
                        .filter_map(|m| m.as_str())
                        .collect();
                    (!all.is_empty()).then(|| all.join(" "))
                })
                .or_else(|| {
                    v.get("errors")
                        .and_then(|m| m.get(0))
                        .and_then(|m| m.as_str().map(str::to_string))
                })
        });
    let text = match message {
        Some(m) => format!("{reason}: {m}"),
        None if body.trim().is_empty() => reason.to_string(),
        None => format!("{reason}: {}", body.trim()),
    };
    crate::sanitize::one_line(&text, ERROR_SUMMARY_MAX_CHARS)
}

/// Pagination links of a `Link` header: `<url>; rel="next", <url>; rel="last"`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Links {
    pub next: Option<String>,
    pub last: Option<String>,
}

impl Links {
    pub fn parse(header: Option<&str>) -> Links {
        let mut links = Links::default();
        let Some(header) = header else { return links };
        for part in split_links(header) {
            let Some((url, params)) = part.split_once(';') else {
                continue;
            };
            let url = url
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string();
            for param in params.split(';') {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                if !k.trim().eq_ignore_ascii_case("rel") {
                    continue;
                }
                for rel in v.trim().trim_matches('"').split_whitespace() {
                    match rel {
                        "next" => links.next = Some(url.clone()),
                        "last" => links.last = Some(url.clone()),
                        _ => {}
                    }
                }
            }
        }
        links
    }
}

/// Splits a Link header at the commas between entries (URLs may contain commas).
fn split_links(header: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = false;
    let mut start = 0;
    for (i, c) in header.char_indices() {
        match c {
            '<' => depth = true,
            '>' => depth = false,
            ',' if !depth => {
                parts.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&header[start..]);
    parts
}

/// The value of query parameter `name` in `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_github_link_header() {
        let h = r#"<https://api.github.com/repositories/1/commits?path=a%2Cb&page=2>; rel="next", <https://api.github.com/repositories/1/commits?path=a%2Cb&page=5>; rel="last""#;
        let l = Links::parse(Some(h));
        assert_eq!(
            query_param(l.next.as_deref().unwrap(), "page").as_deref(),
            Some("2")
        );
        assert_eq!(
            query_param(l.last.as_deref().unwrap(), "page").as_deref(),
            Some("5")
        );
        assert_eq!(
            query_param(l.last.as_deref().unwrap(), "path").as_deref(),
            Some("a,b")
        );
    }

    #[test]
    fn link_header_with_commas_in_url_and_other_rels() {
        let h = r#"<https://x/y?q=a,b&page=1>; rel="prev first", <https://x/y?q=a,b&page=3>; rel="next""#;
        let l = Links::parse(Some(h));
        assert_eq!(l.next.as_deref(), Some("https://x/y?q=a,b&page=3"));
        assert_eq!(l.last, None);
        assert_eq!(Links::parse(None), Links::default());
        assert_eq!(Links::parse(Some("garbage")), Links::default());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn secondary_limit_without_retry_after_waits_a_minute_and_doubles() {
        let body = r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#;
        let h = headers(&[("x-ratelimit-remaining", "4000")]);
        let wait = |n| rate_limit_wait(RateHeaders::GitHub, StatusCode::FORBIDDEN, &h, body, n);
        assert_eq!(
            wait(0),
            Some((Duration::from_secs(60), "secondary rate limit"))
        );
        assert_eq!(wait(1).unwrap().0, Duration::from_secs(120));
        assert_eq!(wait(2).unwrap().0, Duration::from_secs(240));
        // A permissions 403 is an error, not a wait.
        let denied = r#"{"message":"Resource not accessible by personal access token"}"#;
        assert_eq!(
            rate_limit_wait(RateHeaders::GitHub, StatusCode::FORBIDDEN, &h, denied, 0),
            None
        );
    }

    #[test]
    fn jira_429_with_iso_reset_or_nothing_still_waits() {
        let soon = (time::OffsetDateTime::now_utc() + time::Duration::minutes(3))
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]Z"
            ))
            .unwrap();
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &soon)]);
        let wait = rate_limit_wait(
            RateHeaders::RetryAfterOnly,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            "",
            0,
        )
        .unwrap()
        .0;
        assert!(
            wait > Duration::from_secs(100) && wait < Duration::from_secs(200),
            "{wait:?}"
        );
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "soon"),
        ]);
        assert_eq!(
            rate_limit_wait(
                RateHeaders::RetryAfterOnly,
                StatusCode::TOO_MANY_REQUESTS,
                &h,
                "",
                0
            ),
            Some((Duration::from_secs(60), "rate limited"))
        );
    }

    #[test]
    fn jira_error_summary_keeps_every_message() {
        let s = error_summary(
            StatusCode::BAD_REQUEST,
            r#"{"errorMessages":["An issue with key 'A-1' does not exist for field 'key'.","An issue with key 'B-2' does not exist for field 'key'."],"errors":{}}"#,
        );
        assert!(s.contains("'A-1'") && s.contains("'B-2'"), "{s}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("42"), Some(Duration::from_secs(42)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn error_summary_prefers_api_message() {
        let s = error_summary(
            StatusCode::NOT_FOUND,
            r#"{"message":"Not Found","documentation_url":"x"}"#,
        );
        assert_eq!(s, "Not Found: Not Found");
        let s = error_summary(
            StatusCode::BAD_REQUEST,
            r#"{"errorMessages":["bad jql"],"errors":{}}"#,
        );
        assert_eq!(s, "Bad Request: bad jql");
        let s = error_summary(
            StatusCode::BAD_GATEWAY,
            "<html>\n\x1b[31mboom\x1b]0;pwned\x07 \x1b[2J</html>",
        );
        assert!(!s.contains('\n') && !s.contains('\x1b'), "{s}");
        assert!(
            !s.contains("pwned") && !s.contains("[2J") && !s.contains("[31m"),
            "{s}"
        );
    }

    #[test]
    fn pacing_caps_requests_per_window() {
        let l = Limiter::default();
        l.configure(
            "core",
            "GitHub",
            Some(Pace {
                max: 2,
                window: Duration::from_secs(60),
            }),
        );
        assert!(matches!(l.gate("core"), Gate::Go));
        assert!(matches!(l.gate("core"), Gate::Go));
        assert!(matches!(l.gate("core"), Gate::Sleep(d, None) if d > Duration::from_secs(50)));
    }

    #[test]
    fn never_more_in_flight_than_the_budget_has_left() {
        let l = Limiter::default();
        l.update(
            "core",
            Some(2),
            Some(5000),
            Some(SystemTime::now() + Duration::from_secs(600)),
        );
        assert!(matches!(l.gate("core"), Gate::Go));
        assert!(matches!(l.gate("core"), Gate::Go));
        assert!(matches!(l.gate("core"), Gate::WaitForAnswer));
        l.update("core", Some(0), None, None);
        assert!(matches!(l.gate("core"), Gate::Sleep(d, Some(_)) if d > Duration::from_secs(500)));
    }

    #[test]
    fn late_answers_never_raise_the_budget_within_a_window() {
        let l = Limiter::default();
        let reset = Some(SystemTime::now() + Duration::from_secs(600));
        l.update("core", Some(3), Some(10), reset);
        l.update("core", Some(5), Some(10), reset);
        let remaining = l.budgets.lock().unwrap()["core"].remaining;
        assert_eq!(remaining, Some(3));
        // An answer from the previous window is ignored; a new window replaces the budget.
        l.update(
            "core",
            Some(9),
            Some(10),
            Some(SystemTime::now() - Duration::from_secs(5)),
        );
        assert_eq!(l.budgets.lock().unwrap()["core"].remaining, Some(3));
        l.update(
            "core",
            Some(9),
            Some(10),
            Some(SystemTime::now() + Duration::from_secs(4000)),
        );
        assert_eq!(l.budgets.lock().unwrap()["core"].remaining, Some(9));
    }

    #[test]
    fn after_the_reset_only_the_documented_limit_is_sent() {
        let l = Limiter::default();
        l.update(
            "core",
            Some(0),
            Some(2),
            Some(SystemTime::now() - Duration::from_secs(1)),
        );
        assert!(matches!(l.gate("core"), Gate::Go));
        assert!(matches!(l.gate("core"), Gate::Go));
        assert!(matches!(l.gate("core"), Gate::WaitForAnswer));
    }

    #[test]
    fn budget_unknown_after_reset_passes() {
        let l = Limiter::default();
        l.update(
            "core",
            Some(0),
            Some(60),
            Some(SystemTime::now() - Duration::from_secs(1)),
        );
        assert!(matches!(l.gate("core"), Gate::Go));
    }
}
