//! The HTTP cache the fetchers share: a bounded memory tier (moka) over a bounded store
//! tier (sled, through [`crate::store`]), with HTTP caching semantics from
//! `http-cache-semantics` and varnishstat-style counters.
//!
//! Two kinds of entries:
//! - [`Kind::Http`]: an answer with its [`CachePolicy`]. Fresh ones are served without a
//!   request; stale ones are revalidated (`If-None-Match` / `If-Modified-Since`); answers
//!   without freshness of their own get the namespace's TTL; an expired one may be served,
//!   flagged stale, when its source fails (stale-if-error).
//! - [`Kind::Immutable`]: content addressed by a SHA (a file at a commit), kept until
//!   evicted for space or unused for `max_idle`.
//!
//! What is never stored: error answers, answers to requests with credentials in the URL,
//! answers that echo a configured secret, anything the policy says is not storable
//! (`no-store`). Request headers kept in a policy are the sanitized ones the client sends
//! besides its credentials (`Accept`, API version); the credential itself is represented
//! in the key only by a one-way fingerprint, so a token change never reuses another
//! token's answers (`Vary: Authorization`).

pub mod maintenance;
pub mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use serde::{Deserialize, Serialize};

use crate::config::CacheConfig;
use crate::store::Store;
pub use stats::{CacheReport, Counts, Gauge, Namespace, PersistedStats, RunCounts};

/// What a clear or a purge removed from the store tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub entries: u64,
    pub bytes: u64,
}

/// Entries larger than this share of the memory budget stay on disk only, so that one
/// huge listing never flushes the hot set.
const MEMORY_ENTRY_SHARE: u64 = 8;
/// The store tier is evicted down to this share of its budget once it goes over.
const DISK_LOW_WATER_PERCENT: u64 = 90;
/// Memory entries not used for this long leave the memory tier (they stay on disk).
const MEMORY_TIME_TO_IDLE: Duration = Duration::from_secs(3600);
/// Response headers a policy needs; the rest (rate-limit counters, request ids) are not
/// kept.
const POLICY_HEADERS: [&str; 9] = [
    "cache-control",
    "expires",
    "date",
    "age",
    "etag",
    "last-modified",
    "vary",
    "pragma",
    "content-type",
];
/// Query parameters that carry credentials: a request with one is never cached.
const CREDENTIAL_PARAMS: [&str; 10] = [
    "access_token",
    "token",
    "api_key",
    "apikey",
    "application_key",
    "app_key",
    "client_secret",
    "password",
    "sig",
    "signature",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Immutable,
}

/// Where a fresh answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Disk,
}

/// One cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    pub namespace: Namespace,
    /// When the body was fetched (unix milliseconds).
    pub fetched_at_ms: i64,
    /// When the body was last confirmed by the source: fetched, or answered 304.
    pub validated_at_ms: i64,
    policy: Option<CachePolicy>,
    /// The answer carried its own freshness (`Cache-Control` or `Expires`).
    explicit: bool,
    /// The answer carried an `ETag` or a `Last-Modified` to revalidate it with.
    validator: bool,
    /// The `Link` header (pagination), replayed with the body.
    pub link: Option<String>,
    pub body: String,
    /// The last request this entry was found fresh for, and until when.
    fresh: FreshMemo,
}

/// Re-evaluating a policy (Vary, request directives, age from `Date`/`Age`, a response
/// built to say so) costs microseconds; for the same request headers only the clock can
/// change the answer, so a fresh verdict is remembered with the moment it runs out. A
/// clone (a revalidated copy) starts empty.
#[derive(Debug, Default)]
struct FreshMemo {
    request: AtomicU64,
    until_ms: std::sync::atomic::AtomicI64,
}

impl Clone for FreshMemo {
    fn clone(&self) -> FreshMemo {
        FreshMemo::default()
    }
}

impl FreshMemo {
    fn holds(&self, request: u64, now_ms: i64) -> bool {
        request != 0
            && self.request.load(Relaxed) == request
            && now_ms < self.until_ms.load(Relaxed)
    }

    fn remember(&self, request: u64, until_ms: i64) {
        // A racing lookup may pair another request's hash with this time for a moment;
        // both were fresh, and the hash is stored last, so a stale pair never holds.
        self.request.store(0, Relaxed);
        self.until_ms.store(until_ms, Relaxed);
        self.request.store(request, Relaxed);
    }
}

#[derive(Serialize, Deserialize)]
struct EntryHead {
    kind: Kind,
    namespace: Namespace,
    fetched_at_ms: i64,
    validated_at_ms: i64,
    policy: Option<CachePolicy>,
    explicit: bool,
    #[serde(default)]
    validator: bool,
    link: Option<String>,
}

impl Entry {
    fn weight(&self, key: &str) -> u64 {
        (key.len() + self.body.len() + self.link.as_ref().map_or(0, String::len) + 512) as u64
    }

    fn has_validator(&self) -> bool {
        self.validator
    }

    /// The head as JSON, a newline, then the body as it came (listings are mostly quotes:
    /// escaping them into a JSON string costs more than the request did).
    fn encode(&self) -> Vec<u8> {
        let head = EntryHead {
            kind: self.kind,
            namespace: self.namespace,
            fetched_at_ms: self.fetched_at_ms,
            validated_at_ms: self.validated_at_ms,
            policy: self.policy.clone(),
            explicit: self.explicit,
            validator: self.validator,
            link: self.link.clone(),
        };
        let mut out = serde_json::to_vec(&head).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Entry, String> {
        // serde_json writes no raw newline inside JSON.
        let i = memchr::memchr(b'\n', bytes).ok_or("no head")?;
        let head: EntryHead = serde_json::from_slice(&bytes[..i]).map_err(|e| e.to_string())?;
        let body = std::str::from_utf8(&bytes[i + 1..]).map_err(|e| e.to_string())?;
        if head.kind == Kind::Http && head.policy.is_none() {
            return Err("an HTTP entry without its policy".into());
        }
        Ok(Entry {
            kind: head.kind,
            namespace: head.namespace,
            fetched_at_ms: head.fetched_at_ms,
            validated_at_ms: head.validated_at_ms,
            policy: head.policy,
            explicit: head.explicit,
            validator: head.validator,
            link: head.link,
            body: body.to_string(),
            fresh: FreshMemo::default(),
        })
    }
}

/// The small per-entry record the LRU, the purge and the gauges use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Record {
    namespace: Namespace,
    kind: Kind,
    bytes: u64,
    last_used_ms: i64,
    validated_at_ms: i64,
    /// Nothing to revalidate with (no ETag / Last-Modified): useless once past freshness
    /// and the stale-if-error window.
    revalidatable: bool,
}

/// A GET as the cache sees it: its URL and the headers that are not credentials.
#[derive(Debug, Clone)]
pub struct CacheRequest {
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    /// A hash of the URL and headers, for [`FreshMemo`]; 0 when the request carries
    /// its own cache directives (those are evaluated every time).
    memo_key: u64,
}

impl CacheRequest {
    /// `headers` must hold no credential: the policy keeps them.
    pub fn get(url: &url::Url, headers: &HeaderMap) -> Option<CacheRequest> {
        let uri: Uri = url.as_str().parse().ok()?;
        let mut kept = HeaderMap::new();
        for (k, v) in headers {
            let name = k.as_str();
            if name == "authorization"
                || name == "cookie"
                || name.contains("key")
                || name.contains("token")
            {
                continue;
            }
            kept.append(k.clone(), v.clone());
        }
        let memo_key = if kept.contains_key(http::header::CACHE_CONTROL)
            || kept.contains_key(http::header::PRAGMA)
        {
            0
        } else {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            url.as_str().hash(&mut h);
            for (k, v) in &kept {
                k.as_str().hash(&mut h);
                v.as_bytes().hash(&mut h);
            }
            h.finish().max(1)
        };
        Some(CacheRequest {
            uri,
            method: Method::GET,
            headers: kept,
            memo_key,
        })
    }

    fn reload(&self) -> CacheRequest {
        let mut r = self.clone();
        r.headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        r.memo_key = 0;
        r
    }
}

impl http_cache_semantics::RequestLike for CacheRequest {
    fn uri(&self) -> Uri {
        self.uri.clone()
    }
    fn is_same_uri(&self, other: &Uri) -> bool {
        &self.uri == other
    }
    fn method(&self) -> &Method {
        &self.method
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

struct CacheResponse {
    status: StatusCode,
    headers: HeaderMap,
}

impl http_cache_semantics::ResponseLike for CacheResponse {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// The response headers a policy needs, from an answer's headers.
pub fn policy_headers(all: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in POLICY_HEADERS {
        for v in all.get_all(name) {
            out.append(HeaderName::from_static(name), v.clone());
        }
    }
    out
}

/// Whether a URL carries a credential (user info, a token parameter): its answer is never
/// cached.
pub fn url_carries_credentials(url: &url::Url) -> bool {
    !url.username().is_empty()
        || url.password().is_some()
        || url.query_pairs().any(|(k, _)| {
            let k = k.to_ascii_lowercase();
            CREDENTIAL_PARAMS.contains(&k.as_str())
        })
}

/// A one-way fingerprint of a credential, part of cache keys: answers fetched with one
/// token are never served to another (`Vary: Authorization`), and no credential is stored.
pub fn credential_fingerprint(parts: &[&str]) -> String {
    use sha2::Digest;
    if parts.iter().all(|p| p.is_empty()) {
        return "anon".into();
    }
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    d[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A 2xx answer to store.
pub struct Answer<'a> {
    pub status: u16,
    /// Its response headers (only those a policy needs are kept).
    pub headers: &'a HeaderMap,
    pub link: Option<String>,
    pub body: &'a str,
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Found {
    /// Usable as it is, without a request.
    Fresh(Arc<Entry>, Tier),
    /// Must be revalidated: send these conditional headers. The entry is also the
    /// stale-if-error fallback.
    Stale(Arc<Entry>, HeaderMap),
}

/// Lifetime counters of one namespace, as atomics.
#[derive(Default)]
struct AtomicCounts {
    requests: AtomicU64,
    hits_memory: AtomicU64,
    hits_disk: AtomicU64,
    revalidated: AtomicU64,
    misses: AtomicU64,
    stale_served: AtomicU64,
    coalesced: AtomicU64,
    bypassed: AtomicU64,
    not_stored: AtomicU64,
    evicted: AtomicU64,
    evicted_memory: AtomicU64,
    expired: AtomicU64,
    budget_saved: AtomicU64,
}

impl AtomicCounts {
    fn from(c: &Counts) -> AtomicCounts {
        let a = AtomicCounts::default();
        a.add(c);
        a
    }

    fn add(&self, c: &Counts) {
        self.requests.fetch_add(c.requests, Relaxed);
        self.hits_memory.fetch_add(c.hits_memory, Relaxed);
        self.hits_disk.fetch_add(c.hits_disk, Relaxed);
        self.revalidated.fetch_add(c.revalidated, Relaxed);
        self.misses.fetch_add(c.misses, Relaxed);
        self.stale_served.fetch_add(c.stale_served, Relaxed);
        self.coalesced.fetch_add(c.coalesced, Relaxed);
        self.bypassed.fetch_add(c.bypassed, Relaxed);
        self.not_stored.fetch_add(c.not_stored, Relaxed);
        self.evicted.fetch_add(c.evicted, Relaxed);
        self.evicted_memory.fetch_add(c.evicted_memory, Relaxed);
        self.expired.fetch_add(c.expired, Relaxed);
        self.budget_saved.fetch_add(c.budget_saved, Relaxed);
    }

    fn load(&self) -> Counts {
        Counts {
            requests: self.requests.load(Relaxed),
            hits_memory: self.hits_memory.load(Relaxed),
            hits_disk: self.hits_disk.load(Relaxed),
            revalidated: self.revalidated.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            bypassed: self.bypassed.load(Relaxed),
            not_stored: self.not_stored.load(Relaxed),
            evicted: self.evicted.load(Relaxed),
            evicted_memory: self.evicted_memory.load(Relaxed),
            expired: self.expired.load(Relaxed),
            budget_saved: self.budget_saved.load(Relaxed),
        }
    }
}

#[derive(Default)]
struct Index {
    records: HashMap<String, Record>,
    bytes: u64,
    /// Keys whose `last_used_ms` changed since the last checkpoint.
    touched: HashSet<String>,
}

impl Index {
    fn insert(&mut self, key: &str, rec: Record) {
        if let Some(old) = self.records.insert(key.to_string(), rec) {
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
        self.bytes += rec.bytes;
    }

    fn remove(&mut self, key: &str) -> Option<Record> {
        let rec = self.records.remove(key)?;
        self.bytes = self.bytes.saturating_sub(rec.bytes);
        self.touched.remove(key);
        Some(rec)
    }
}

type Memory = moka::future::Cache<Arc<str>, Arc<Entry>>;

struct Inner {
    store: Store,
    config: CacheConfig,
    memory: Memory,
    index: Mutex<Index>,
    counts: Arc<[AtomicCounts; Namespace::ALL.len()]>,
    /// Lifetime counters when the current run started.
    run_start: Mutex<Option<[Counts; Namespace::ALL.len()]>>,
    persisted_runs: Mutex<Vec<RunCounts>>,
}

/// The process's HTTP cache. Cheap to clone; one per store.
#[derive(Clone)]
pub struct HttpCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCache").finish_non_exhaustive()
    }
}

fn slot(ns: Namespace) -> usize {
    ns as usize
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl HttpCache {
    /// Opens the cache over `store`: reads the index records (never the bodies) and the
    /// persisted counters, and drops entries a cut-short write left without a record.
    pub fn open(store: Store, config: CacheConfig) -> HttpCache {
        let mut index = Index::default();
        match store.cache_index() {
            Ok(records) => {
                let mut bad = vec![];
                for (k, v) in records {
                    match serde_json::from_slice::<Record>(&v) {
                        Ok(rec) => index.insert(&k, rec),
                        Err(_) => bad.push(k),
                    }
                }
                if let Ok(orphans) = store.cache_orphans() {
                    bad.extend(orphans);
                }
                if !bad.is_empty() {
                    tracing::warn!("dropping {} unreadable cache entries", bad.len());
                    let _ = store.cache_remove(bad.iter().map(String::as_str));
                }
            }
            Err(e) => tracing::warn!("cannot read the cache index: {e}"),
        }
        let persisted: PersistedStats = store.cache_stats().ok().flatten().unwrap_or_default();
        let counts: Arc<[AtomicCounts; Namespace::ALL.len()]> =
            Arc::new(std::array::from_fn(|i| {
                AtomicCounts::from(
                    &persisted
                        .lifetime
                        .get(&Namespace::ALL[i])
                        .copied()
                        .unwrap_or_default(),
                )
            }));
        let on_evict = counts.clone();
        let memory_budget = config.memory_mib.max(1) << 20;
        let memory = moka::future::Cache::builder()
            .max_capacity(memory_budget)
            .weigher(|k: &Arc<str>, v: &Arc<Entry>| v.weight(k).min(u32::MAX as u64) as u32)
            .time_to_idle(MEMORY_TIME_TO_IDLE)
            // `clear_namespace` drops one namespace's copies.
            .support_invalidation_closures()
            .eviction_listener(move |_k, v: Arc<Entry>, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    on_evict[slot(v.namespace)]
                        .evicted_memory
                        .fetch_add(1, Relaxed);
                }
            })
            .build();
        HttpCache {
            inner: Arc::new(Inner {
                store,
                config,
                memory,
                index: Mutex::new(index),
                counts,
                run_start: Mutex::new(None),
                persisted_runs: Mutex::new(persisted.runs),
            }),
        }
    }

    /// The store this cache keeps its entries in (compaction goes through it).
    pub fn backing_store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self, ns: Namespace) -> &AtomicCounts {
        &self.inner.counts[slot(ns)]
    }

    fn ttl(&self, ns: Namespace) -> Duration {
        let t = &self.inner.config.ttl;
        match ns {
            Namespace::GitHub => t.github.0,
            Namespace::TeamCity => t.teamcity.0,
            Namespace::Datadog => t.datadog.0,
            Namespace::Jira => t.jira.0,
            // Only immutable objects (by digest) are kept.
            Namespace::Registry => Duration::ZERO,
        }
    }

    /// The entry under `key`, from memory, else from the store (concurrent loads of one
    /// key read it once). An entry the store cannot decode is dropped.
    /// The largest entry the memory tier takes (an eighth of it, so one answer cannot
    /// push out the rest); 0 with `memory_mib = 0`: the memory tier is off.
    fn memory_entry_budget(&self) -> u64 {
        (self.inner.config.memory_mib << 20) / MEMORY_ENTRY_SHARE
    }

    async fn entry(&self, key: &str) -> Option<(Arc<Entry>, Tier)> {
        // The index is the truth: an entry evicted or cleared from a blocking context may
        // linger in memory until noticed here.
        if !self.index().records.contains_key(key) {
            return None;
        }
        if let Some(e) = self.inner.memory.get(key).await {
            return Some((e, Tier::Memory));
        }
        let loaded = std::sync::atomic::AtomicBool::new(false);
        let store = self.inner.store.clone();
        let budget = self.memory_entry_budget();
        let k: Arc<str> = Arc::from(key);
        let load = async {
            loaded.store(true, Relaxed);
            match store.cache_get(key) {
                Ok(Some(bytes)) => match Entry::decode(&bytes) {
                    Ok(e) => Some(Arc::new(e)),
                    Err(why) => {
                        tracing::warn!("dropping unreadable cache entry {key}: {why}");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!("cannot read cache entry {key}: {e}");
                    None
                }
            }
        };
        let big = self
            .index()
            .records
            .get(key)
            .is_some_and(|r| r.bytes > budget);
        let found = if big {
            load.await
        } else {
            self.inner.memory.optionally_get_with(k, load).await
        };
        match found {
            Some(e) => Some((
                e,
                if loaded.load(Relaxed) {
                    Tier::Disk
                } else {
                    Tier::Memory
                },
            )),
            None => {
                if loaded.load(Relaxed) {
                    self.drop_keys(&[key.to_string()]);
                }
                None
            }
        }
    }

    fn touch(&self, key: &str) {
        let now = unix_now_ms();
        let mut index = self.index();
        if let Some(rec) = index.records.get_mut(key) {
            rec.last_used_ms = now;
            if !index.touched.contains(key) {
                index.touched.insert(key.to_string());
            }
        }
    }

    /// Looks `key` up for a GET. Entries validated before `reload_before` (unix ms) are
    /// revalidated even when fresh: the caller wants the source's word (a manual run).
    /// Counts fresh hits; every other outcome is counted by the caller's next call.
    pub async fn lookup(
        &self,
        ns: Namespace,
        key: &str,
        req: &CacheRequest,
        reload_before: Option<i64>,
    ) -> Option<Found> {
        let (entry, tier) = self.entry(key).await?;
        self.touch(key);
        let fresh = match (&entry.policy, entry.kind) {
            (_, Kind::Immutable) => true,
            (None, Kind::Http) => false,
            (Some(policy), Kind::Http) => {
                let reload = reload_before.is_some_and(|t| entry.validated_at_ms < t);
                let now = SystemTime::now();
                let verdict = if reload {
                    policy.before_request(&req.reload(), now)
                } else if entry.fresh.holds(req.memo_key, unix_ms(now)) {
                    return self.hit(ns, entry, tier);
                } else {
                    policy.before_request(req, now)
                };
                match verdict {
                    BeforeRequest::Fresh(_) => {
                        if !reload {
                            let ttl = policy.time_to_live(now).as_millis() as i64;
                            entry.fresh.remember(req.memo_key, unix_ms(now) + ttl);
                        }
                        true
                    }
                    BeforeRequest::Stale { request, matches } => {
                        if !matches {
                            // Another variant (`Vary`): not this request's answer.
                            return None;
                        }
                        let within_ttl = !entry.explicit
                            && !reload
                            && unix_now_ms() - entry.validated_at_ms
                                < self.ttl(ns).as_millis() as i64;
                        if !within_ttl {
                            let mut conditional = HeaderMap::new();
                            for h in [http::header::IF_NONE_MATCH, http::header::IF_MODIFIED_SINCE]
                            {
                                if let Some(v) = request.headers.get(&h) {
                                    conditional.insert(h, v.clone());
                                }
                            }
                            return Some(Found::Stale(entry, conditional));
                        }
                        true
                    }
                }
            }
        };
        debug_assert!(fresh);
        self.hit(ns, entry, tier)
    }

    fn hit(&self, ns: Namespace, entry: Arc<Entry>, tier: Tier) -> Option<Found> {
        let c = self.counts(ns);
        match tier {
            Tier::Memory => c.hits_memory.fetch_add(1, Relaxed),
            Tier::Disk => c.hits_disk.fetch_add(1, Relaxed),
        };
        c.budget_saved.fetch_add(1, Relaxed);
        Some(Found::Fresh(entry, tier))
    }

    /// A 304 confirmed `entry`: its policy is refreshed from the 304's headers. None: the
    /// 304 does not match the stored answer (another validator), which must be refetched.
    pub async fn revalidated(
        &self,
        ns: Namespace,
        key: &str,
        entry: &Entry,
        req: &CacheRequest,
        headers_304: &HeaderMap,
    ) -> Option<Arc<Entry>> {
        let policy = entry.policy.as_ref()?;
        let now = SystemTime::now();
        let res = CacheResponse {
            status: StatusCode::NOT_MODIFIED,
            headers: policy_headers(headers_304),
        };
        let AfterResponse::NotModified(policy, _) = policy.after_response(req, &res, now) else {
            return None;
        };
        let c = self.counts(ns);
        c.revalidated.fetch_add(1, Relaxed);
        if ns.free_304() {
            c.budget_saved.fetch_add(1, Relaxed);
        }
        let updated = Arc::new(Entry {
            policy: Some(policy),
            validated_at_ms: unix_now_ms(),
            ..entry.clone()
        });
        self.write(key, updated.clone()).await;
        Some(updated)
    }

    /// A request sent to the source (each attempt of a retried one).
    pub fn record_request(&self, ns: Namespace) {
        self.counts(ns).requests.fetch_add(1, Relaxed);
    }

    pub fn record_miss(&self, ns: Namespace) {
        self.counts(ns).misses.fetch_add(1, Relaxed);
    }

    pub fn record_coalesced(&self, ns: Namespace, n: u64) {
        let c = self.counts(ns);
        c.coalesced.fetch_add(n, Relaxed);
        c.budget_saved.fetch_add(n, Relaxed);
    }

    pub fn record_bypass(&self, ns: Namespace) {
        self.counts(ns).bypassed.fetch_add(1, Relaxed);
    }

    pub fn record_not_stored(&self, ns: Namespace) {
        self.counts(ns).not_stored.fetch_add(1, Relaxed);
    }

    /// Whether `entry` may stand in for an answer its source failed to give, and if so
    /// counts it as served stale.
    pub fn serve_stale(&self, ns: Namespace, entry: &Entry) -> bool {
        let window = self.inner.config.stale_if_error.0.as_millis() as i64;
        let ok = entry.kind == Kind::Immutable || unix_now_ms() - entry.validated_at_ms <= window;
        if ok {
            self.counts(ns).stale_served.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Stores a 2xx answer the caller decoded, if its policy allows. Returns whether it
    /// was stored.
    pub async fn store(
        &self,
        ns: Namespace,
        key: &str,
        req: &CacheRequest,
        answer: Answer<'_>,
    ) -> bool {
        let Ok(status) = StatusCode::from_u16(answer.status) else {
            return false;
        };
        if !status.is_success() {
            return false;
        }
        let headers = policy_headers(answer.headers);
        let explicit = headers.contains_key("expires")
            || headers
                .get_all("cache-control")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("max-age"));
        let validator = headers.contains_key("etag") || headers.contains_key("last-modified");
        let res = CacheResponse { status, headers };
        let opts = CacheOptions {
            // One user's cache: `private` answers are ours to keep.
            shared: false,
            ..CacheOptions::default()
        };
        let policy = CachePolicy::new_options(req, &res, SystemTime::now(), opts);
        if !policy.is_storable() {
            self.record_not_stored(ns);
            return false;
        }
        let now = unix_now_ms();
        let entry = Arc::new(Entry {
            kind: Kind::Http,
            namespace: ns,
            fetched_at_ms: now,
            validated_at_ms: now,
            policy: Some(policy),
            explicit,
            validator,
            link: answer.link,
            body: answer.body.to_string(),
            fresh: FreshMemo::default(),
        });
        self.write(key, entry).await
    }

    /// An immutable object (a file at a SHA), counting a hit or a miss.
    pub async fn immutable(&self, ns: Namespace, key: &str) -> Option<String> {
        match self.entry(key).await {
            Some((e, tier)) if e.kind == Kind::Immutable => {
                self.touch(key);
                let c = self.counts(ns);
                match tier {
                    Tier::Memory => c.hits_memory.fetch_add(1, Relaxed),
                    Tier::Disk => c.hits_disk.fetch_add(1, Relaxed),
                };
                c.budget_saved.fetch_add(1, Relaxed);
                Some(e.body.clone())
            }
            _ => {
                self.record_miss(ns);
                None
            }
        }
    }

    /// Stores immutable objects; blocking (thousands of small writes in a cold run go to
    /// the blocking pool). They reach the memory tier on their first lookup.
    pub fn put_immutable_blocking(&self, ns: Namespace, items: &[(String, String)]) {
        let now = unix_now_ms();
        for (key, body) in items {
            let entry = Entry {
                kind: Kind::Immutable,
                namespace: ns,
                fetched_at_ms: now,
                validated_at_ms: now,
                policy: None,
                explicit: true,
                validator: false,
                link: None,
                body: body.clone(),
                fresh: FreshMemo::default(),
            };
            self.write_disk(key, &entry);
        }
        self.enforce_disk_budget();
    }

    /// Writes an entry to both tiers (the memory tier only when it fits its share).
    async fn write(&self, key: &str, entry: Arc<Entry>) -> bool {
        if !self.write_disk(key, &entry) {
            return false;
        }
        let budget = self.memory_entry_budget();
        if entry.weight(key) <= budget {
            self.inner.memory.insert(Arc::from(key), entry).await;
        } else {
            self.inner.memory.invalidate(key).await;
        }
        self.enforce_disk_budget();
        true
    }

    fn write_disk(&self, key: &str, entry: &Entry) -> bool {
        let bytes = entry.encode();
        let rec = Record {
            namespace: entry.namespace,
            kind: entry.kind,
            bytes: (key.len() + bytes.len()) as u64,
            last_used_ms: unix_now_ms(),
            validated_at_ms: entry.validated_at_ms,
            revalidatable: entry.kind == Kind::Immutable || entry.has_validator(),
        };
        if rec.bytes > self.disk_budget() {
            self.record_not_stored(entry.namespace);
            return false;
        }
        let record = serde_json::to_vec(&rec).unwrap_or_default();
        match self.inner.store.cache_put(key, &bytes, &record) {
            Ok(()) => {
                let mut index = self.index();
                index.insert(key, rec);
                index.touched.remove(key);
                true
            }
            Err(e) => {
                tracing::warn!("cannot cache {key}: {e}");
                false
            }
        }
    }

    fn disk_budget(&self) -> u64 {
        self.inner.config.disk_mib.max(1) << 20
    }

    /// Past the store budget, drops least recently used entries down to the low-water
    /// mark.
    fn enforce_disk_budget(&self) {
        let budget = self.disk_budget();
        let victims: Vec<(String, Namespace)> = {
            let index = self.index();
            if index.bytes <= budget {
                return;
            }
            let target = budget * DISK_LOW_WATER_PERCENT / 100;
            let mut by_age: Vec<(&String, &Record)> = index.records.iter().collect();
            by_age.sort_by_key(|(k, r)| (r.last_used_ms, *k));
            let mut bytes = index.bytes;
            let mut out = vec![];
            for (k, r) in by_age {
                if bytes <= target {
                    break;
                }
                bytes -= r.bytes;
                out.push((k.clone(), r.namespace));
            }
            out
        };
        for (_, ns) in &victims {
            self.counts(*ns).evicted.fetch_add(1, Relaxed);
        }
        let keys: Vec<String> = victims.into_iter().map(|(k, _)| k).collect();
        self.drop_keys(&keys);
    }

    /// Removes keys from the store and the index (memory copies die on their next lookup).
    fn drop_keys(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        {
            let mut index = self.index();
            for k in keys {
                index.remove(k);
            }
        }
        if let Err(e) = self
            .inner
            .store
            .cache_remove(keys.iter().map(String::as_str))
        {
            tracing::warn!("cannot drop {} cache entries: {e}", keys.len());
        }
    }

    /// Drops the entry under `key` (its body no longer decodes).
    pub async fn remove(&self, key: &str) {
        self.drop_keys(&[key.to_string()]);
        self.inner.memory.invalidate(key).await;
    }

    /// Removes every entry of a namespace; returns how many.
    pub fn clear(&self, ns: Namespace) -> u64 {
        self.clear_namespace(ns).entries
    }

    /// Removes every entry of a namespace from both tiers; returns what went. Blocking
    /// (sled writes).
    pub fn clear_namespace(&self, ns: Namespace) -> Removed {
        let (keys, bytes): (Vec<String>, u64) = {
            let index = self.index();
            let mut bytes = 0;
            let keys = index
                .records
                .iter()
                .filter(|(_, r)| r.namespace == ns)
                .map(|(k, r)| {
                    bytes += r.bytes;
                    k.clone()
                })
                .collect();
            (keys, bytes)
        };
        self.drop_keys(&keys);
        // The index already hides them; this frees their memory and keeps the memory
        // gauge honest.
        if let Err(e) = self
            .inner
            .memory
            .invalidate_entries_if(move |_, v| v.namespace == ns)
        {
            tracing::warn!("cannot drop {ns} entries from the memory tier: {e}");
        }
        Removed {
            entries: keys.len() as u64,
            bytes,
        }
    }

    /// Purges entries nothing can use any more: unused for `max_idle`, or past freshness
    /// and the stale-if-error window with nothing to revalidate them by. Returns how many.
    pub fn purge_expired(&self) -> u64 {
        self.purge().entries
    }

    /// [`HttpCache::purge_expired`], returning what went. Blocking (sled writes).
    pub fn purge(&self) -> Removed {
        let now = unix_now_ms();
        let max_idle = self.inner.config.max_idle.0.as_millis() as i64;
        let stale_window = self.inner.config.stale_if_error.0.as_millis() as i64;
        let expired: Vec<(String, Namespace, u64)> = self
            .index()
            .records
            .iter()
            .filter(|(_, r)| {
                let idle = now - r.last_used_ms > max_idle;
                let useless = r.kind == Kind::Http
                    && !r.revalidatable
                    && now - r.validated_at_ms
                        > stale_window + self.ttl(r.namespace).as_millis() as i64;
                idle || useless
            })
            .map(|(k, r)| (k.clone(), r.namespace, r.bytes))
            .collect();
        let mut bytes = 0;
        for (_, ns, b) in &expired {
            self.counts(*ns).expired.fetch_add(1, Relaxed);
            bytes += b;
        }
        let keys: Vec<String> = expired.into_iter().map(|(k, _, _)| k).collect();
        self.drop_keys(&keys);
        Removed {
            entries: keys.len() as u64,
            bytes,
        }
    }

    /// Marks the start of a run: its counters are the difference at [`HttpCache::end_run`].
    pub fn begin_run(&self) {
        *self
            .inner
            .run_start
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(self.lifetime());
    }

    fn lifetime(&self) -> [Counts; Namespace::ALL.len()] {
        std::array::from_fn(|i| self.inner.counts[i].load())
    }

    /// Ends a run: purges what expired, persists the last-use times, the lifetime counters
    /// and this run's counters. Blocking (sled writes).
    pub fn end_run(&self, run_id: u64) -> RunCounts {
        self.purge_expired();
        let now = self.lifetime();
        let start = self
            .inner
            .run_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        let run = RunCounts {
            run_id,
            at: time::OffsetDateTime::now_utc(),
            per_namespace: Namespace::ALL
                .into_iter()
                .map(|ns| (ns, now[slot(ns)].since(&start[slot(ns)])))
                .filter(|(_, c)| !c.is_zero())
                .collect(),
        };
        {
            let mut runs = self
                .inner
                .persisted_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            runs.push(run.clone());
            let excess = runs.len().saturating_sub(stats::KEEP_RUN_STATS);
            runs.drain(..excess);
        }
        self.checkpoint();
        run
    }

    /// Persists last-use times and counters (also at exit).
    pub fn checkpoint(&self) {
        let touched: Vec<(String, Vec<u8>)> = {
            let mut index = self.index();
            let keys: Vec<String> = index.touched.drain().collect();
            keys.into_iter()
                .filter_map(|k| {
                    let rec = index.records.get(&k)?;
                    Some((k, serde_json::to_vec(rec).unwrap_or_default()))
                })
                .collect()
        };
        if let Err(e) = self.inner.store.cache_touch(&touched) {
            tracing::warn!("cannot persist cache use times: {e}");
        }
        let persisted = PersistedStats {
            lifetime: Namespace::ALL
                .into_iter()
                .map(|ns| (ns, self.counts(ns).load()))
                .collect(),
            runs: self
                .inner
                .persisted_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        if let Err(e) = self.inner.store.put_cache_stats(&persisted) {
            tracing::warn!("cannot persist cache stats: {e}");
        }
    }

    /// Counters, gauges and budgets, for the Cache tab and `snaptop cache stats`.
    pub fn report(&self) -> CacheReport {
        let mut disk: BTreeMap<Namespace, Gauge> = Namespace::ALL
            .into_iter()
            .map(|n| (n, Gauge::default()))
            .collect();
        for r in self.index().records.values() {
            let g = disk.entry(r.namespace).or_default();
            g.entries += 1;
            g.bytes += r.bytes;
        }
        let (file, other) = self.inner.store.disk_usage();
        let live = other + self.index().bytes;
        CacheReport {
            lifetime: Namespace::ALL
                .into_iter()
                .map(|ns| (ns, self.counts(ns).load()))
                .collect(),
            runs: self
                .inner
                .persisted_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            disk,
            memory: Gauge {
                entries: self.inner.memory.entry_count(),
                bytes: self.inner.memory.weighted_size(),
            },
            // 0: the memory tier is off.
            memory_budget_bytes: self.inner.config.memory_mib << 20,
            disk_budget_bytes: self.disk_budget(),
            store_file_bytes: file,
            store_live_bytes: live,
        }
    }

    /// Lets moka finish its bookkeeping (eviction counts, sizes); for tests and reports.
    pub async fn settle(&self) {
        self.inner.memory.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests;
