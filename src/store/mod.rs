//! The embedded store: the only module that touches sled.
//!
//! sled is beta software (its README says so) and its default page cache is 1 GiB, so it
//! is kept behind this small API with a small cache, a schema version key, and every
//! multi-key change (a finished run) applied in one transaction. Values are JSON so the
//! store can be inspected and migrated; keys are `\0`-joined parts or big-endian ids.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use sled::Transactional;
use time::OffsetDateTime;

use crate::config::{CacheConfig, RetentionConfig};
use crate::engine::model::{RunDetail, RunSummary, Snapshot};

mod compact;

pub use compact::{COMPACT_FLOOR_BYTES, COMPACT_RATIO};

/// Bumped when the layout of any tree changes incompatibly.
pub const SCHEMA_VERSION: u32 = 2;
/// Trees of schema 1 that schema 2 replaced by the HTTP cache's `cache` and `cache_index`.
const SCHEMA_1_TREES: [&str; 2] = ["http", "blobs"];
/// Default sled page cache.
pub const DEFAULT_CACHE_MIB: u64 = 32;

// The underlying error is part of each message and never a `source`: `{:#}` at the edges
// prints the chain, and a source would print the OS error a second time.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store {path} is in use by another snaptop process (close it, or pass another store path)"
    )]
    Locked { path: PathBuf },
    #[error(
        "store {path} is not writable ({reason}): fix its permissions, or set `[store] path` to a directory snaptop can write"
    )]
    NotWritable { path: PathBuf, reason: &'static str },
    #[error("store {path}: {error}")]
    Open { path: PathBuf, error: sled::Error },
    #[error(
        "store {path} has schema version {found}, newer than this snaptop understands ({SCHEMA_VERSION})"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("store: {0}")]
    Db(sled::Error),
    #[error("store {path} is not open: a compaction could not reopen it (restart snaptop)")]
    Closed { path: PathBuf },
    #[error("store {path}: cannot compact: {reason}")]
    Compact { path: PathBuf, reason: String },
    #[error("store: corrupt value under {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        StoreError::Db(e)
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// One commit of a source repository's graph.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CommitNode {
    pub parents: Vec<String>,
    /// Committer date, unix seconds.
    pub date: i64,
}

/// Size of one namespace of cached data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceSize {
    pub name: &'static str,
    pub entries: u64,
    pub bytes: u64,
}

/// The store. Cheap to clone, and every clone sees the same database, also after
/// [`Store::compact`] swapped a fresh one in.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    /// The open database; `None` only while a compaction swaps it, or after a swap that
    /// could not reopen it.
    trees: RwLock<Option<Arc<Trees>>>,
    /// Writers share it; a compaction holds it alone, so nothing is written to the old
    /// database while it is copied (readers go on reading it).
    gate: RwLock<()>,
    path: PathBuf,
    options: StoreOptions,
    temporary: bool,
    /// The process lock beside the store; `None` for a temporary store, or one in a
    /// directory this process cannot write (then it cannot be compacted). Dropped after
    /// the database.
    lock: Option<compact::StoreLock>,
}

/// The database and its trees.
struct Trees {
    db: sled::Db,
    meta: sled::Tree,
    /// HTTP cache entries, encoded by [`crate::cache`] (key → head and body).
    cache: sled::Tree,
    /// Small per-entry records (size, last use) for the cache's LRU and its stats, so
    /// opening the cache never reads the bodies.
    cache_index: sled::Tree,
    commits: sled::Tree,
    state: sled::Tree,
    snapshots: sled::Tree,
    runs: sled::Tree,
    /// Run id → [`RunDetail`] (per-source requests, failures, log).
    run_details: sled::Tree,
}

impl Trees {
    fn of(db: sled::Db) -> Result<Trees> {
        Ok(Trees {
            meta: db.open_tree("meta")?,
            cache: db.open_tree("cache")?,
            cache_index: db.open_tree("cache_index")?,
            commits: db.open_tree("commits")?,
            state: db.open_tree("state")?,
            snapshots: db.open_tree("snapshots")?,
            runs: db.open_tree("runs")?,
            run_details: db.open_tree("run_details")?,
            db,
        })
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish()
    }
}

/// How a store is opened: its page cache, what it keeps, and its size on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// sled's page cache, MiB.
    pub cache_mib: u64,
    pub retention: RetentionConfig,
    /// What the store's files may take on disk: the HTTP cache's budget plus the
    /// history's (see [`store_budget_bytes`]). Past it (and past twice the live data)
    /// the store is compacted.
    pub budget_bytes: u64,
    /// Compact at open when [`Store::needs_compaction`].
    pub auto_compact: bool,
    /// Files up to this size are never compacted ([`COMPACT_FLOOR_BYTES`]).
    pub compact_floor_bytes: u64,
}

impl StoreOptions {
    /// Default retention and budget, with this page cache.
    pub fn new(cache_mib: u64) -> StoreOptions {
        StoreOptions {
            cache_mib,
            retention: RetentionConfig::default(),
            budget_bytes: store_budget_bytes(&CacheConfig::default(), &RetentionConfig::default()),
            auto_compact: true,
            compact_floor_bytes: COMPACT_FLOOR_BYTES,
        }
    }

    /// What the config says (`[store]`, `[retention]`, `[cache] disk_mib`).
    pub fn from_config(config: &crate::config::Config) -> StoreOptions {
        StoreOptions {
            cache_mib: config.store.cache_mib.unwrap_or(DEFAULT_CACHE_MIB),
            retention: config.retention.clone(),
            budget_bytes: store_budget_bytes(&config.cache, &config.retention),
            auto_compact: true,
            compact_floor_bytes: COMPACT_FLOOR_BYTES,
        }
    }
}

/// Bytes of one kept run on disk, generously: its summary line (~300 B) and, for the
/// runs whose detail is kept, the detail (per-source counts, failures, up to the kept
/// log lines).
const RUN_BYTES: u64 = 512;
const RUN_DETAIL_BYTES: u64 = 64 * 1024;
/// A full snapshot (the simulator's `seed` profile writes ~0.3 MiB; a large team more).
const SNAPSHOT_BYTES: u64 = 2 << 20;
/// Commit graphs, sync state, the cache's counters, and sled's own overhead.
const OTHER_BYTES: u64 = 64 << 20;

/// The store's budget on disk: the HTTP cache's `disk_mib`, plus what the retention
/// settings keep, plus room for the commit graphs and sled's overhead.
pub fn store_budget_bytes(cache: &CacheConfig, retention: &RetentionConfig) -> u64 {
    (cache.disk_mib << 20)
        .saturating_add(retention.keep_runs as u64 * RUN_BYTES)
        .saturating_add(retention.keep_run_details as u64 * RUN_DETAIL_BYTES)
        .saturating_add(retention.keep_snapshots as u64 * SNAPSHOT_BYTES)
        .saturating_add(OTHER_BYTES)
}

/// The path a temporary store reports.
const TEMPORARY: &str = "<temporary>";

const LATEST_KEY: &[u8] = b"latest_snapshot";
const SCHEMA_KEY: &[u8] = b"schema_version";
/// The last run id handed out (big-endian u64).
const RUN_COUNTER_KEY: &[u8] = b"last_run_id";
const CACHE_STATS_KEY: &[u8] = b"cache_stats";

/// What [`Store::latest_or_fallback`] found.
#[derive(Debug, Clone, Default)]
pub struct LatestSnapshot {
    /// The latest snapshot, or the newest one that reads back when it does not.
    pub snapshot: Option<Snapshot>,
    /// Why the latest snapshot could not be read, when it could not.
    pub unreadable: Option<String>,
}

/// What [`Store::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactReport {
    /// The store's files on disk before and after.
    pub before_bytes: u64,
    pub after_bytes: u64,
    pub duration: Duration,
}

impl Store {
    /// Opens (or creates) the store at `path` with the default retention and budget. A
    /// second process gets [`StoreError::Locked`].
    pub fn open(path: &Path, cache_mib: u64) -> Result<Store> {
        Store::open_with(path, StoreOptions::new(cache_mib))
    }

    /// Opens (or creates) the store at `path`: takes its lock, finishes or rolls back a
    /// compaction a killed process left half done, opens the database, and compacts it
    /// when its files are far larger than its data ([`Store::needs_compaction`]).
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store> {
        let lock = compact::StoreLock::take(path)?;
        if lock.is_some() {
            compact::recover(path)?;
        }
        std::fs::create_dir_all(path).map_err(|e| classify_open_error(path, sled::Error::Io(e)))?;
        let db = open_db(path, options.cache_mib)?;
        let store = Store::from_db(path.to_owned(), db, options, lock)?;
        if store.shared.options.auto_compact && store.needs_compaction() {
            let (file, live) = store.disk_usage_total();
            tracing::info!(
                store = %path.display(),
                file_bytes = file,
                live_bytes = live,
                "compacting the store at open"
            );
            match store.compact() {
                Ok(r) => tracing::info!(
                    store = %path.display(),
                    before_bytes = r.before_bytes,
                    after_bytes = r.after_bytes,
                    ms = r.duration.as_millis() as u64,
                    "compacted the store"
                ),
                Err(e) => {
                    tracing::warn!(store = %path.display(), "compaction at open failed: {e}");
                    // A failed compaction leaves the old store in place; it must open.
                    store.trees()?;
                }
            }
        }
        Ok(store)
    }

    /// A throw-away store (demo mode, tests): nothing survives the process.
    pub fn temporary() -> Result<Store> {
        Store::temporary_with(StoreOptions::new(DEFAULT_CACHE_MIB))
    }

    /// A throw-away store with these retention settings (its page cache and budget are
    /// the defaults).
    pub fn temporary_with(options: StoreOptions) -> Result<Store> {
        Store::from_db(PathBuf::from(TEMPORARY), temporary_db()?, options, None)
    }

    fn from_db(
        path: PathBuf,
        db: sled::Db,
        options: StoreOptions,
        lock: Option<compact::StoreLock>,
    ) -> Result<Store> {
        let trees = Trees::of(db)?;
        check_schema(&path, &trees)?;
        Ok(Store {
            shared: Arc::new(Shared {
                temporary: lock.is_none() && path == Path::new(TEMPORARY),
                path,
                options,
                lock,
                trees: RwLock::new(Some(Arc::new(trees))),
                gate: RwLock::new(()),
            }),
        })
    }

    /// The open database, for a read.
    fn trees(&self) -> Result<Arc<Trees>> {
        let slot = self.shared.trees.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or_else(|| StoreError::Closed {
            path: self.shared.path.clone(),
        })
    }

    /// The open database, for a write: waits while a compaction copies it.
    fn writing(&self) -> Result<(RwLockReadGuard<'_, ()>, Arc<Trees>)> {
        let gate = self.shared.gate.read().unwrap_or_else(|p| p.into_inner());
        Ok((gate, self.trees()?))
    }

    /// What this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.options
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    // --- HTTP cache: bytes in, bytes out; `crate::cache` owns the encoding ----------

    pub fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self.trees()?;
        Ok(t.cache.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Stores an entry and its index record together.
    pub fn cache_put(&self, key: &str, entry: &[u8], record: &[u8]) -> Result<()> {
        let (_writing, t) = self.writing()?;
        (&t.cache, &t.cache_index)
            .transaction(|(cache, index)| {
                cache.insert(key.as_bytes(), entry)?;
                index.insert(key.as_bytes(), record)?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Db(e),
                sled::transaction::TransactionError::Abort(()) => {
                    StoreError::Db(sled::Error::Unsupported("cache write aborted".into()))
                }
            })
    }

    /// Removes entries and their index records.
    pub fn cache_remove<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let (_writing, t) = self.writing()?;
        let mut entries = sled::Batch::default();
        let mut records = sled::Batch::default();
        for key in keys {
            entries.remove(key.as_bytes());
            records.remove(key.as_bytes());
        }
        t.cache.apply_batch(entries)?;
        t.cache_index.apply_batch(records)?;
        Ok(())
    }

    /// Every index record (key, record), read when the cache opens.
    pub fn cache_index(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let t = self.trees()?;
        let mut out = Vec::with_capacity(t.cache_index.len());
        for kv in t.cache_index.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    /// Keys of entries that have no index record (a write cut short by an older snaptop),
    /// so the cache can drop them.
    pub fn cache_orphans(&self) -> Result<Vec<String>> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for k in t.cache.iter().keys() {
            let k = k?;
            if !t.cache_index.contains_key(&k)? {
                out.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        Ok(out)
    }

    /// Rewrites index records (last use times), in one batch.
    pub fn cache_touch(&self, records: &[(String, Vec<u8>)]) -> Result<()> {
        let (_writing, t) = self.writing()?;
        let mut batch = sled::Batch::default();
        for (k, v) in records {
            batch.insert(k.as_bytes(), v.as_slice());
        }
        t.cache_index.apply_batch(batch)?;
        Ok(())
    }

    /// The cache's persisted counters (lifetime and recent runs), as JSON.
    pub fn cache_stats<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let t = self.trees()?;
        get_json(&t.meta, CACHE_STATS_KEY)
    }

    pub fn put_cache_stats<T: Serialize>(&self, stats: &T) -> Result<()> {
        let (_writing, t) = self.writing()?;
        put_json(&t.meta, CACHE_STATS_KEY, stats)
    }

    // --- commit graphs of source repositories -------------------------------------------

    pub fn commit(&self, repo: &str, sha: &str) -> Result<Option<CommitNode>> {
        let t = self.trees()?;
        get_json(&t.commits, &join_key(&[repo, sha]))
    }

    pub fn put_commits<'a>(
        &self,
        repo: &str,
        commits: impl IntoIterator<Item = (&'a str, &'a CommitNode)>,
    ) -> Result<()> {
        let (_writing, t) = self.writing()?;
        let mut batch = sled::Batch::default();
        for (sha, node) in commits {
            batch.insert(join_key(&[repo, sha]), encode(node));
        }
        t.commits.apply_batch(batch)?;
        Ok(())
    }

    /// Every stored commit of `repo` (sha → node).
    pub fn commits_of(&self, repo: &str) -> Result<Vec<(String, CommitNode)>> {
        let t = self.trees()?;
        let prefix = join_key(&[repo, ""]);
        let mut out = Vec::new();
        for kv in t.commits.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let sha = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((sha.clone(), decode(&v, &sha)?));
        }
        Ok(out)
    }

    // --- incremental sync state (small JSON documents) ----------------------------------

    pub fn state<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let t = self.trees()?;
        get_json(&t.state, key.as_bytes())
    }

    pub fn put_state<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let (_writing, t) = self.writing()?;
        put_json(&t.state, key.as_bytes(), value)
    }

    // --- snapshots and run history -------------------------------------------------------

    /// The next run id: 1, 2, 3... from a counter in the `meta` tree, so ids survive
    /// restarts and read as run numbers. (sled's `generate_id` jumps by ~2,000,000 per
    /// process start.) The counter never goes below the largest id already stored, so a
    /// store written before it keeps its runs in order: their keys are big-endian ids.
    pub fn next_run_id(&self) -> Result<u64> {
        let (_writing, t) = self.writing()?;
        let mut floor = 0;
        for tree in [&t.runs, &t.snapshots] {
            if let Some((k, _)) = tree.last()? {
                floor = floor.max(id_of(&k).unwrap_or(0));
            }
        }
        let next = t
            .meta
            .update_and_fetch(RUN_COUNTER_KEY, |old| {
                let last = old.and_then(id_of).unwrap_or(0).max(floor);
                Some(last.saturating_add(1).to_be_bytes().to_vec())
            })?
            .as_deref()
            .and_then(id_of);
        next.ok_or_else(|| StoreError::Corrupt {
            key: "meta last_run_id".into(),
            reason: "not an 8-byte id".into(),
        })
    }

    /// Records a finished run, and its snapshot if it produced one, in one transaction:
    /// either both the run and the new "latest" pointer are visible, or neither is.
    /// Then applies the retention ([`Store::apply_retention`]).
    pub fn commit_run(&self, summary: &RunSummary, snapshot: Option<&Snapshot>) -> Result<()> {
        let (_writing, t) = self.writing()?;
        let id = summary.id.to_be_bytes();
        let run = encode(summary);
        let snap = snapshot.map(encode);
        (&t.runs, &t.snapshots, &t.meta)
            .transaction(|(runs, snapshots, meta)| {
                runs.insert(&id, run.as_slice())?;
                if let Some(snap) = &snap {
                    snapshots.insert(&id, snap.as_slice())?;
                    meta.insert(LATEST_KEY, &id)?;
                }
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Db(e),
                sled::transaction::TransactionError::Abort(()) => {
                    StoreError::Db(sled::Error::Unsupported("transaction aborted".into()))
                }
            })?;
        retain(
            &t,
            &self.shared.options.retention,
            OffsetDateTime::now_utc(),
        )
    }

    /// Applies the `[retention]` settings as of `now` (what [`Store::commit_run`] does
    /// after every run): run summaries past `keep_runs` or older than `keep_days` go,
    /// with their details; details past `keep_run_details` and snapshots past
    /// `keep_snapshots` go, oldest first. The latest snapshot and its run always stay.
    pub fn apply_retention(&self, now: OffsetDateTime) -> Result<()> {
        let (_writing, t) = self.writing()?;
        retain(&t, &self.shared.options.retention, now)
    }

    /// Keeps what a run did for the history's detail view (after [`Store::commit_run`]:
    /// not part of its transaction, and not needed for the snapshot to be whole). The
    /// detail of a run the history no longer keeps is not stored.
    pub fn put_run_detail(&self, id: u64, detail: &RunDetail) -> Result<()> {
        let (_writing, t) = self.writing()?;
        if !t.runs.contains_key(id.to_be_bytes())? {
            return Ok(());
        }
        put_json(&t.run_details, &id.to_be_bytes(), detail)?;
        trim(
            &t,
            &t.run_details,
            self.shared.options.retention.keep_run_details,
        )
    }

    /// The details of these runs that are kept (a detail that does not decode is left
    /// out: it is for reading only).
    pub fn run_details(&self, ids: &[u64]) -> std::collections::HashMap<u64, RunDetail> {
        let Ok(t) = self.trees() else {
            return Default::default();
        };
        ids.iter()
            .filter_map(|id| {
                let v = t.run_details.get(id.to_be_bytes()).ok()??;
                Some((*id, serde_json::from_slice(&v).ok()?))
            })
            .collect()
    }

    /// The last committed snapshot, complete or partial. A pointer or a snapshot that
    /// does not decode is an error here; the TUI reads [`Store::latest_or_fallback`].
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>> {
        let t = self.trees()?;
        let Some(ptr) = t.meta.get(LATEST_KEY)? else {
            return Ok(None);
        };
        let Some(id) = id_of(&ptr) else {
            return Err(StoreError::Corrupt {
                key: "meta latest_snapshot".into(),
                reason: format!("not an 8-byte run id ({} bytes)", ptr.len()),
            });
        };
        match t.snapshots.get(ptr)? {
            Some(v) => decode(&v, &format!("snapshot #{id}")).map(Some),
            None => Err(StoreError::Corrupt {
                key: "meta latest_snapshot".into(),
                reason: format!("names snapshot #{id}, which is not in the store"),
            }),
        }
    }

    /// The latest snapshot if it reads back; if it does not (a damaged value, a snapshot
    /// an older snaptop wrote), the newest one that does, and why the latest did not.
    /// A store that cannot be read at all is still an error.
    pub fn latest_or_fallback(&self) -> Result<LatestSnapshot> {
        let problem = match self.latest_snapshot() {
            Ok(snapshot) => {
                return Ok(LatestSnapshot {
                    snapshot,
                    unreadable: None,
                });
            }
            Err(e @ StoreError::Corrupt { .. }) => e.to_string(),
            Err(e) => return Err(e),
        };
        let t = self.trees()?;
        let latest = t.meta.get(LATEST_KEY)?;
        let mut snapshot = None;
        for kv in t.snapshots.iter().rev() {
            let (k, v) = kv?;
            if Some(&k) == latest.as_ref() {
                continue;
            }
            if let Ok(s) = serde_json::from_slice::<Snapshot>(&v) {
                snapshot = Some(s);
                break;
            }
        }
        Ok(LatestSnapshot {
            snapshot,
            unreadable: Some(problem),
        })
    }

    /// Run summaries, newest first. A summary that does not decode is skipped (and
    /// logged): the history is for reading, and one bad row must not hide the rest.
    pub fn run_history(&self, limit: usize) -> Result<Vec<RunSummary>> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for kv in t.runs.iter().rev() {
            if out.len() == limit {
                break;
            }
            let (k, v) = kv?;
            match serde_json::from_slice(&v) {
                Ok(summary) => out.push(summary),
                Err(e) => tracing::warn!(
                    store = %self.shared.path.display(),
                    run = ?id_of(&k),
                    "skipping a run summary that does not decode: {e}"
                ),
            }
        }
        Ok(out)
    }

    /// Sizes of the cached-data namespaces, for the Cache tab.
    pub fn sizes(&self) -> Vec<NamespaceSize> {
        let Ok(t) = self.trees() else {
            return Vec::new();
        };
        vec![
            tree_size("commits", &t.commits),
            tree_size("snapshots", &t.snapshots),
        ]
    }

    /// (bytes of the store's files on disk, bytes of live data outside the cache trees,
    /// whose size the cache's index knows without reading the bodies).
    pub fn disk_usage(&self) -> (u64, u64) {
        let Ok(t) = self.trees() else {
            return (0, 0);
        };
        let file = t.db.size_on_disk().unwrap_or(0);
        let live = [
            &t.commits,
            &t.snapshots,
            &t.meta,
            &t.state,
            &t.runs,
            &t.run_details,
        ]
        .iter()
        .map(|tree| tree_size("", tree).bytes)
        .sum();
        (file, live)
    }

    /// (bytes of the store's files on disk, bytes of live keys and values in every
    /// tree, the HTTP cache's included). Reads every value: for reports, not per request.
    pub fn disk_usage_total(&self) -> (u64, u64) {
        let Ok(t) = self.trees() else {
            return (0, 0);
        };
        let file = t.db.size_on_disk().unwrap_or(0);
        let live =
            t.db.tree_names()
                .iter()
                .filter_map(|name| t.db.open_tree(name).ok())
                .map(|tree| tree_size("", &tree).bytes)
                .sum();
        (file, live)
    }

    /// Blocking flush to disk. sled's `flush_async` has been seen to hang (sled#1241),
    /// so async callers use [`Store::flush`], which runs this on the blocking pool.
    pub fn flush_blocking(&self) -> Result<()> {
        self.trees()?.db.flush()?;
        Ok(())
    }

    pub async fn flush(&self) -> Result<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.flush_blocking())
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Db(sled::Error::Unsupported(format!(
                    "flush task failed: {e}"
                ))))
            })
    }
}

fn classify_open_error(path: &Path, e: sled::Error) -> StoreError {
    use std::io::ErrorKind;
    if let sled::Error::Io(io) = &e {
        // sled reports the lock held by another process as an Io error ("could not
        // acquire lock", WouldBlock); nothing else in open() produces that kind.
        if io.kind() == ErrorKind::WouldBlock || io.to_string().contains("lock") {
            return StoreError::Locked {
                path: path.to_owned(),
            };
        }
        let reason = match io.kind() {
            ErrorKind::PermissionDenied => Some("permission denied"),
            ErrorKind::ReadOnlyFilesystem => Some("read-only file system"),
            _ => None,
        };
        if let Some(reason) = reason {
            return StoreError::NotWritable {
                path: path.to_owned(),
                reason,
            };
        }
    }
    StoreError::Open {
        path: path.to_owned(),
        error: e,
    }
}

fn tree_size(name: &'static str, tree: &sled::Tree) -> NamespaceSize {
    let (entries, bytes) = tree.iter().flatten().fold((0u64, 0u64), |(n, b), (k, v)| {
        (n + 1, b + (k.len() + v.len()) as u64)
    });
    NamespaceSize {
        name,
        entries,
        bytes,
    }
}

/// [`Store::apply_retention`].
fn retain(t: &Trees, retention: &RetentionConfig, now: OffsetDateTime) -> Result<()> {
    let latest = t.meta.get(LATEST_KEY)?;
    // Runs by age, oldest first (ids grow with time), then by count; their details go
    // with them.
    if retention.keep_days > 0 {
        let cutoff = now - time::Duration::days(i64::from(retention.keep_days));
        let mut doomed = Vec::new();
        for kv in t.runs.iter() {
            let (k, v) = kv?;
            if Some(&k) == latest.as_ref() {
                continue;
            }
            match serde_json::from_slice::<RunSummary>(&v) {
                Ok(run) if run.started_at < cutoff => doomed.push(k),
                Ok(_) => break,
                // One that does not decode is left to the count (it is not shown).
                Err(_) => continue,
            }
        }
        for k in doomed {
            t.runs.remove(&k)?;
            t.run_details.remove(&k)?;
        }
    }
    for k in trim_keys(
        t.runs.iter().keys(),
        t.runs.len(),
        retention.keep_runs,
        &latest,
    )? {
        t.runs.remove(&k)?;
        t.run_details.remove(&k)?;
    }
    trim(t, &t.snapshots, retention.keep_snapshots)?;
    trim(t, &t.run_details, retention.keep_run_details)
}

/// Removes the oldest entries of `tree` beyond `keep` (at least one is kept), but never
/// the latest snapshot's, wherever its key sorts.
fn trim(t: &Trees, tree: &sled::Tree, keep: usize) -> Result<()> {
    let latest = t.meta.get(LATEST_KEY)?;
    for k in trim_keys(tree.iter().keys(), tree.len(), keep, &latest)? {
        tree.remove(k)?;
    }
    Ok(())
}

/// The oldest keys beyond `keep` of `len` keys, skipping `latest`.
fn trim_keys(
    keys: impl Iterator<Item = sled::Result<sled::IVec>>,
    len: usize,
    keep: usize,
    latest: &Option<sled::IVec>,
) -> Result<Vec<sled::IVec>> {
    let excess = len.saturating_sub(keep.max(1));
    let mut doomed = Vec::with_capacity(excess);
    if excess == 0 {
        return Ok(doomed);
    }
    for k in keys {
        let k = k?;
        if Some(&k) != latest.as_ref() {
            doomed.push(k);
            if doomed.len() == excess {
                break;
            }
        }
    }
    Ok(doomed)
}

/// Checks the schema version of a store just opened, and migrates an older one.
fn check_schema(path: &Path, t: &Trees) -> Result<()> {
    match t.meta.get(SCHEMA_KEY)? {
        None => {
            t.meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
        }
        Some(v) => {
            let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: path.to_owned(),
                    found,
                });
            }
            if found < SCHEMA_VERSION {
                // Schema 1 kept ETag answers and file texts in trees of their own; the
                // cache refills itself (one conditional-less run), the runs stay.
                for tree in SCHEMA_1_TREES {
                    t.db.drop_tree(tree)?;
                }
                t.meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
    }
    Ok(())
}

/// How often sled's own thread writes buffered changes out. Every commit (a snapshot,
/// a schedule edit) is flushed by the store itself; this covers only HTTP cache entries
/// and counters, whose loss to a kill costs a refetch. sled's default (500 ms) woke an
/// idle daemon 120 times a minute: most of its idle CPU in the attach bench.
const BACKGROUND_FLUSH_MS: u64 = 5_000;

/// Opens sled at `path` (the directory exists).
fn open_db(path: &Path, cache_mib: u64) -> Result<sled::Db> {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_mib.max(1) * 1024 * 1024)
        .flush_every_ms(Some(BACKGROUND_FLUSH_MS))
        .open()
        .map_err(|e| classify_open_error(path, e))
}

fn temporary_db() -> Result<sled::Db> {
    Ok(sled::Config::new()
        .temporary(true)
        .cache_capacity(DEFAULT_CACHE_MIB * 1024 * 1024)
        .open()?)
}

/// A big-endian run id key (the keys of `runs` and `snapshots`, the latest pointer).
fn id_of(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

fn join_key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain owned data to JSON cannot fail (no non-string map keys).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>> {
    match tree.get(key)? {
        Some(v) => decode(&v, &String::from_utf8_lossy(key)).map(Some),
        None => Ok(None),
    }
}

fn put_json<T: Serialize>(tree: &sled::Tree, key: &[u8], value: &T) -> Result<()> {
    tree.insert(key, encode(value))?;
    Ok(())
}

#[cfg(test)]
mod tests;
