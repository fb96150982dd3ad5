//! The embedded store: the only module that touches sled.
//!
//! sled is beta software (its README says so) and its default page cache is 1 GiB, so it
//! is kept behind this small API with a small cache, a schema version key, and every
//! multi-key change (a finished run) applied in one transaction. Values are JSON so the
//! store can be inspected and migrated; keys are `\0`-joined parts or big-endian ids.

use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};
use sled::Transactional;

use crate::engine::model::{RunDetail, RunSummary, Snapshot};

/// Bumped when the layout of any tree changes incompatibly.
pub const SCHEMA_VERSION: u32 = 2;
/// Trees of schema 1 that schema 2 replaced by the HTTP cache's `cache` and `cache_index`.
const SCHEMA_1_TREES: [&str; 2] = ["http", "blobs"];
/// Default sled page cache.
pub const DEFAULT_CACHE_MIB: u64 = 32;
/// How many full snapshots are kept (run summaries are kept longer).
pub const KEEP_SNAPSHOTS: usize = 30;
pub const KEEP_RUNS: usize = 500;

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

/// The store. Cheap to clone (sled trees are reference-counted handles).
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
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

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

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

impl Store {
    /// Opens (or creates) the store at `path`. A second process gets [`StoreError::Locked`].
    pub fn open(path: &Path, cache_mib: u64) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(|e| classify_open_error(path, sled::Error::Io(e)))?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mib.max(1) * 1024 * 1024)
            .open()
            .map_err(|e| classify_open_error(path, e))?;
        Store::from_db(path.to_owned(), db)
    }

    /// A throw-away store (demo mode, tests): nothing survives the process.
    pub fn temporary() -> Result<Store> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(DEFAULT_CACHE_MIB * 1024 * 1024)
            .open()?;
        Store::from_db(PathBuf::from("<temporary>"), db)
    }

    fn from_db(path: PathBuf, db: sled::Db) -> Result<Store> {
        let store = Store {
            meta: db.open_tree("meta")?,
            cache: db.open_tree("cache")?,
            cache_index: db.open_tree("cache_index")?,
            commits: db.open_tree("commits")?,
            state: db.open_tree("state")?,
            snapshots: db.open_tree("snapshots")?,
            runs: db.open_tree("runs")?,
            run_details: db.open_tree("run_details")?,
            path,
            db,
        };
        match store.meta.get(SCHEMA_KEY)? {
            None => {
                store
                    .meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        path: store.path.clone(),
                        found,
                    });
                }
                if found < SCHEMA_VERSION {
                    // Schema 1 kept ETag answers and file texts in trees of their own; the
                    // cache refills itself (one conditional-less run), the runs stay.
                    for tree in SCHEMA_1_TREES {
                        store.db.drop_tree(tree)?;
                    }
                    store
                        .meta
                        .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                }
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    // --- HTTP cache: bytes in, bytes out; `crate::cache` owns the encoding ----------

    pub fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.cache.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Stores an entry and its index record together.
    pub fn cache_put(&self, key: &str, entry: &[u8], record: &[u8]) -> Result<()> {
        (&self.cache, &self.cache_index)
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
        let mut entries = sled::Batch::default();
        let mut records = sled::Batch::default();
        for key in keys {
            entries.remove(key.as_bytes());
            records.remove(key.as_bytes());
        }
        self.cache.apply_batch(entries)?;
        self.cache_index.apply_batch(records)?;
        Ok(())
    }

    /// Every index record (key, record), read when the cache opens.
    pub fn cache_index(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::with_capacity(self.cache_index.len());
        for kv in self.cache_index.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    /// Keys of entries that have no index record (a write cut short by an older snaptop),
    /// so the cache can drop them.
    pub fn cache_orphans(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for k in self.cache.iter().keys() {
            let k = k?;
            if !self.cache_index.contains_key(&k)? {
                out.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        Ok(out)
    }

    /// Rewrites index records (last use times), in one batch.
    pub fn cache_touch(&self, records: &[(String, Vec<u8>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in records {
            batch.insert(k.as_bytes(), v.as_slice());
        }
        self.cache_index.apply_batch(batch)?;
        Ok(())
    }

    /// The cache's persisted counters (lifetime and recent runs), as JSON.
    pub fn cache_stats<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        get_json(&self.meta, CACHE_STATS_KEY)
    }

    pub fn put_cache_stats<T: Serialize>(&self, stats: &T) -> Result<()> {
        put_json(&self.meta, CACHE_STATS_KEY, stats)
    }

    // --- commit graphs of source repositories -------------------------------------------

    pub fn commit(&self, repo: &str, sha: &str) -> Result<Option<CommitNode>> {
        get_json(&self.commits, &join_key(&[repo, sha]))
    }

    pub fn put_commits<'a>(
        &self,
        repo: &str,
        commits: impl IntoIterator<Item = (&'a str, &'a CommitNode)>,
    ) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (sha, node) in commits {
            batch.insert(join_key(&[repo, sha]), encode(node));
        }
        self.commits.apply_batch(batch)?;
        Ok(())
    }

    /// Every stored commit of `repo` (sha → node).
    pub fn commits_of(&self, repo: &str) -> Result<Vec<(String, CommitNode)>> {
        let prefix = join_key(&[repo, ""]);
        let mut out = Vec::new();
        for kv in self.commits.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let sha = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((sha.clone(), decode(&v, &sha)?));
        }
        Ok(out)
    }

    // --- incremental sync state (small JSON documents) ----------------------------------

    pub fn state<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        get_json(&self.state, key.as_bytes())
    }

    pub fn put_state<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        put_json(&self.state, key.as_bytes(), value)
    }

    // --- snapshots and run history -------------------------------------------------------

    /// The next run id: 1, 2, 3... from a counter in the `meta` tree, so ids survive
    /// restarts and read as run numbers. (sled's `generate_id` jumps by ~2,000,000 per
    /// process start.) The counter never goes below the largest id already stored, so a
    /// store written before it keeps its runs in order: their keys are big-endian ids.
    pub fn next_run_id(&self) -> Result<u64> {
        let mut floor = 0;
        for tree in [&self.runs, &self.snapshots] {
            if let Some((k, _)) = tree.last()? {
                floor = floor.max(id_of(&k).unwrap_or(0));
            }
        }
        let next = self
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
    pub fn commit_run(&self, summary: &RunSummary, snapshot: Option<&Snapshot>) -> Result<()> {
        let id = summary.id.to_be_bytes();
        let run = encode(summary);
        let snap = snapshot.map(encode);
        (&self.runs, &self.snapshots, &self.meta)
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
        self.trim(&self.snapshots, KEEP_SNAPSHOTS)?;
        self.trim(&self.runs, KEEP_RUNS)?;
        self.trim(&self.run_details, KEEP_RUNS)?;
        Ok(())
    }

    /// Keeps what a run did for the history's detail view (after [`Store::commit_run`]:
    /// not part of its transaction, and not needed for the snapshot to be whole).
    pub fn put_run_detail(&self, id: u64, detail: &RunDetail) -> Result<()> {
        put_json(&self.run_details, &id.to_be_bytes(), detail)
    }

    /// The details of these runs that are kept (a detail that does not decode is left
    /// out: it is for reading only).
    pub fn run_details(&self, ids: &[u64]) -> std::collections::HashMap<u64, RunDetail> {
        ids.iter()
            .filter_map(|id| {
                let v = self.run_details.get(id.to_be_bytes()).ok()??;
                Some((*id, serde_json::from_slice(&v).ok()?))
            })
            .collect()
    }

    /// Removes the oldest entries of `tree` beyond `keep`, but never the latest
    /// snapshot's, wherever its key sorts.
    fn trim(&self, tree: &sled::Tree, keep: usize) -> Result<()> {
        let excess = tree.len().saturating_sub(keep);
        if excess == 0 {
            return Ok(());
        }
        let latest = self.meta.get(LATEST_KEY)?;
        let mut doomed = Vec::with_capacity(excess);
        for k in tree.iter().keys() {
            let k = k?;
            if Some(&k) != latest.as_ref() {
                doomed.push(k);
                if doomed.len() == excess {
                    break;
                }
            }
        }
        for k in doomed {
            tree.remove(k)?;
        }
        Ok(())
    }

    /// The last committed snapshot, complete or partial. A pointer or a snapshot that
    /// does not decode is an error here; the TUI reads [`Store::latest_or_fallback`].
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>> {
        let Some(ptr) = self.meta.get(LATEST_KEY)? else {
            return Ok(None);
        };
        let Some(id) = id_of(&ptr) else {
            return Err(StoreError::Corrupt {
                key: "meta latest_snapshot".into(),
                reason: format!("not an 8-byte run id ({} bytes)", ptr.len()),
            });
        };
        match self.snapshots.get(ptr)? {
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
        let latest = self.meta.get(LATEST_KEY)?;
        let mut snapshot = None;
        for kv in self.snapshots.iter().rev() {
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
        let mut out = Vec::new();
        for kv in self.runs.iter().rev() {
            if out.len() == limit {
                break;
            }
            let (k, v) = kv?;
            match serde_json::from_slice(&v) {
                Ok(summary) => out.push(summary),
                Err(e) => tracing::warn!(
                    store = %self.path.display(),
                    run = ?id_of(&k),
                    "skipping a run summary that does not decode: {e}"
                ),
            }
        }
        Ok(out)
    }

    /// Sizes of the cached-data namespaces, for the Cache tab.
    pub fn sizes(&self) -> Vec<NamespaceSize> {
        let size = |name, tree: &sled::Tree| {
            let (entries, bytes) = tree.iter().flatten().fold((0u64, 0u64), |(n, b), (k, v)| {
                (n + 1, b + (k.len() + v.len()) as u64)
            });
            NamespaceSize {
                name,
                entries,
                bytes,
            }
        };
        vec![
            size("commits", &self.commits),
            size("snapshots", &self.snapshots),
        ]
    }

    /// (bytes of the store's files on disk, bytes of live data outside the cache trees,
    /// whose size the cache's index knows without reading the bodies).
    pub fn disk_usage(&self) -> (u64, u64) {
        let file = self.db.size_on_disk().unwrap_or(0);
        let live = self
            .sizes()
            .iter()
            .filter(|s| s.name != "cache")
            .map(|s| s.bytes)
            .sum::<u64>()
            + [&self.meta, &self.state, &self.runs, &self.run_details]
                .iter()
                .map(|t| {
                    t.iter()
                        .flatten()
                        .map(|(k, v)| (k.len() + v.len()) as u64)
                        .sum::<u64>()
                })
                .sum::<u64>();
        (file, live)
    }

    /// Blocking flush to disk. sled's `flush_async` has been seen to hang (sled#1241),
    /// so async callers use [`Store::flush`], which runs this on the blocking pool.
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
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
mod tests {
    use super::*;
    use crate::engine::model::{RunStats, Trigger};
    use time::OffsetDateTime;

    pub(crate) fn sample_snapshot(run_id: u64) -> Snapshot {
        Snapshot {
            run_id,
            started_at: OffsetDateTime::UNIX_EPOCH,
            finished_at: OffsetDateTime::UNIX_EPOCH,
            partial: false,
            cancelled: false,
            failures: vec![],
            environments: vec!["prod".into()],
            components: vec!["api".into()],
            cells: Default::default(),
            health_queries: vec![],
            stats: RunStats::default(),
        }
    }

    pub(crate) fn sample_summary(id: u64) -> RunSummary {
        RunSummary {
            id,
            started_at: OffsetDateTime::UNIX_EPOCH,
            duration_ms: 10,
            trigger: Trigger::Cli,
            requests: 1,
            not_modified: 0,
            cache_hits: 0,
            errors: 0,
            partial: false,
            cancelled: false,
            error: None,
            new_deployments: None,
        }
    }

    #[test]
    fn run_and_snapshot_commit_together() {
        let store = Store::temporary().unwrap();
        assert!(store.latest_snapshot().unwrap().is_none());
        let id = store.next_run_id().unwrap();
        store
            .commit_run(&sample_summary(id), Some(&sample_snapshot(id)))
            .unwrap();
        assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, id);
        // A failed run is recorded but does not replace the last good snapshot.
        let id2 = store.next_run_id().unwrap();
        assert!(id2 > id);
        store.commit_run(&sample_summary(id2), None).unwrap();
        assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, id);
        let history = store.run_history(10).unwrap();
        assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), [id2, id]);
    }

    fn commit(store: &Store, id: u64) {
        store
            .commit_run(&sample_summary(id), Some(&sample_snapshot(id)))
            .unwrap();
    }

    fn snapshot_ids(store: &Store) -> Vec<u64> {
        store
            .snapshots
            .iter()
            .keys()
            .map(|k| id_of(&k.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn old_snapshots_are_trimmed_but_latest_kept() {
        let store = Store::temporary().unwrap();
        for _ in 0..KEEP_SNAPSHOTS + 5 {
            commit(&store, store.next_run_id().unwrap());
        }
        let newest = KEEP_SNAPSHOTS as u64 + 5;
        assert_eq!(
            snapshot_ids(&store),
            (6..=newest).collect::<Vec<_>>(),
            "the oldest five went"
        );
        assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, newest);
    }

    #[test]
    fn trimming_keeps_the_latest_snapshot_even_when_it_is_the_oldest_key() {
        // Committed newest id first, every run makes the latest pointer name the smallest
        // key: the first one a trim that only counts from the oldest would take.
        let store = Store::temporary().unwrap();
        let ids: Vec<u64> = (100..100 + KEEP_SNAPSHOTS as u64 + 5).rev().collect();
        for &id in &ids {
            commit(&store, id);
        }
        let latest = *ids.last().unwrap();
        let kept = snapshot_ids(&store);
        assert_eq!(kept.len(), KEEP_SNAPSHOTS, "trimmed to size: {kept:?}");
        assert_eq!(kept[0], latest, "the latest snapshot's own key is kept");
        // What went instead: the oldest keys other than the latest.
        let mut expected = vec![latest];
        expected.extend(ids[..KEEP_SNAPSHOTS - 1].iter().rev());
        assert_eq!(kept, expected);
        let read = store.latest_or_fallback().unwrap();
        assert_eq!(read.unreadable, None);
        assert_eq!(read.snapshot.unwrap().run_id, latest);
        assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, latest);
        // The runs tree is trimmed the same way: the latest snapshot's run stays listed.
        assert!(store.runs.contains_key(latest.to_be_bytes()).unwrap());
    }

    #[test]
    fn run_ids_count_from_one_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 8).unwrap();
            assert_eq!(store.next_run_id().unwrap(), 1);
            commit(&store, 1);
            assert_eq!(store.next_run_id().unwrap(), 2);
            store.flush_blocking().unwrap();
        }
        let store = Store::open(dir.path(), 8).unwrap();
        // 2 was handed out (its run never committed) and is not handed out again.
        assert_eq!(store.next_run_id().unwrap(), 3);
    }

    #[test]
    fn run_ids_continue_after_the_largest_id_of_an_older_store() {
        // Stores written before the counter have ids from sled's generate_id.
        let store = Store::temporary().unwrap();
        for id in [1, 2_000_001, 4_000_003] {
            commit(&store, id);
        }
        store.meta.remove(RUN_COUNTER_KEY).unwrap();
        assert_eq!(store.next_run_id().unwrap(), 4_000_004);
        commit(&store, 4_000_004);
        assert_eq!(store.next_run_id().unwrap(), 4_000_005);
        let history = store.run_history(10).unwrap();
        assert_eq!(
            history.iter().map(|r| r.id).collect::<Vec<_>>(),
            [4_000_004, 4_000_003, 2_000_001, 1],
            "newest first"
        );
    }

    #[test]
    fn a_corrupt_latest_snapshot_falls_back_to_the_newest_that_reads() {
        let store = Store::temporary().unwrap();
        commit(&store, 1);
        commit(&store, 2);
        store
            .snapshots
            .insert(2u64.to_be_bytes(), &b"\xff garbage"[..])
            .unwrap();
        assert!(store.latest_snapshot().is_err(), "the strict read says so");
        let read = store.latest_or_fallback().unwrap();
        assert_eq!(read.snapshot.map(|s| s.run_id), Some(1));
        let why = read.unreadable.expect("says why");
        assert!(why.contains("snapshot #2"), "{why}");

        // JSON that no longer decodes as a snapshot (a field an older snaptop lacked).
        store
            .snapshots
            .insert(2u64.to_be_bytes(), &br#"{"run_id": 2}"#[..])
            .unwrap();
        assert_eq!(
            store.latest_or_fallback().unwrap().snapshot.unwrap().run_id,
            1
        );

        // Garbage under the pointer itself.
        store.meta.insert(LATEST_KEY, &b"bad"[..]).unwrap();
        let read = store.latest_or_fallback().unwrap();
        assert_eq!(read.snapshot.map(|s| s.run_id), Some(1));
        assert!(read.unreadable.unwrap().contains("latest_snapshot"));

        // Nothing readable at all: no snapshot, still a reason. The next run replaces it.
        store
            .snapshots
            .insert(1u64.to_be_bytes(), &b"{"[..])
            .unwrap();
        let read = store.latest_or_fallback().unwrap();
        assert!(read.snapshot.is_none() && read.unreadable.is_some());
        commit(&store, store.next_run_id().unwrap());
        let read = store.latest_or_fallback().unwrap();
        assert_eq!(read.unreadable, None);
        assert_eq!(read.snapshot.unwrap().run_id, 3);
    }

    #[test]
    fn a_run_summary_that_does_not_decode_is_skipped() {
        let store = Store::temporary().unwrap();
        commit(&store, 1);
        commit(&store, 2);
        store
            .runs
            .insert(2u64.to_be_bytes(), &b"garbage"[..])
            .unwrap();
        let history = store.run_history(10).unwrap();
        assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn permission_errors_say_not_writable_once() {
        let path = Path::new("/srv/snaptop/store");
        for (kind, reason) in [
            (std::io::ErrorKind::PermissionDenied, "permission denied"),
            (
                std::io::ErrorKind::ReadOnlyFilesystem,
                "read-only file system",
            ),
        ] {
            let err = classify_open_error(path, sled::Error::Io(kind.into()));
            let shown = format!("{:#}", anyhow::Error::from(err));
            assert!(
                shown.starts_with("store /srv/snaptop/store is not writable"),
                "{shown}"
            );
            assert_eq!(shown.matches(reason).count(), 1, "{shown}");
            assert!(!shown.contains('\n'), "one line: {shown}");
        }
        // Other I/O errors keep the OS message, once.
        let err = classify_open_error(path, sled::Error::Io(std::io::ErrorKind::Other.into()));
        let shown = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(shown.matches("other error").count(), 1, "{shown}");
    }

    #[test]
    fn second_process_gets_a_clear_error() {
        // sled's lock is per process (flock); within one process a second open of the
        // same path is refused the same way, which is what this exercises.
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), 8).unwrap();
        let err = Store::open(dir.path(), 8).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("in use by another snaptop process")
        );
    }

    #[test]
    fn commit_graph_round_trips() {
        let store = Store::temporary().unwrap();
        let a = CommitNode {
            parents: vec![],
            date: 1,
        };
        let b = CommitNode {
            parents: vec!["a".into()],
            date: 2,
        };
        store.put_commits("o/r", [("a", &a), ("b", &b)]).unwrap();
        store.put_commits("o/r2", [("z", &a)]).unwrap();
        let mut all = store.commits_of("o/r").unwrap();
        all.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(all, vec![("a".into(), a), ("b".into(), b)]);
    }

    #[test]
    fn cache_entries_and_records_go_together() {
        let store = Store::temporary().unwrap();
        store.cache_put("github k", b"entry", b"record").unwrap();
        assert_eq!(
            store.cache_get("github k").unwrap().as_deref(),
            Some(&b"entry"[..])
        );
        assert_eq!(
            store.cache_index().unwrap(),
            vec![("github k".to_string(), b"record".to_vec())]
        );
        store.cache.insert("github orphan", &b"x"[..]).unwrap();
        assert_eq!(
            store.cache_orphans().unwrap(),
            vec!["github orphan".to_string()]
        );
        store.cache_remove(["github k", "github orphan"]).unwrap();
        assert!(store.cache_get("github k").unwrap().is_none());
        assert!(store.cache_index().unwrap().is_empty());
    }

    #[test]
    fn schema_1_cache_trees_are_dropped_and_runs_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 8).unwrap();
            commit(&store, 1);
            store
                .db
                .open_tree("http")
                .unwrap()
                .insert("k", "v")
                .unwrap();
            store.meta.insert(SCHEMA_KEY, &1u32.to_be_bytes()).unwrap();
            store.flush_blocking().unwrap();
        }
        let store = Store::open(dir.path(), 8).unwrap();
        assert!(!store.db.tree_names().iter().any(|n| n.as_ref() == b"http"));
        assert_eq!(store.run_history(10).unwrap().len(), 1);
        let v = store.meta.get(SCHEMA_KEY).unwrap().unwrap();
        assert_eq!(
            u32::from_be_bytes(v.as_ref().try_into().unwrap()),
            SCHEMA_VERSION
        );
    }
}
