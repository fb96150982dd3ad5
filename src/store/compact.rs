//! Compaction: the store's live trees copied into a fresh sled database beside it, then
//! swapped in by directory renames.
//!
//! sled's files grow and do not shrink (sled#1430, #1484): space freed by overwrites and
//! removals is reused only in part. A copy holds only the live data.
//!
//! Beside the store directory `P`, a compaction uses `P.compact-new` (the copy),
//! `P.compact-old` (the old store, on its way out) and the marker file
//! `P.compact-swap`, written once the copy is complete and closed. The swap is
//! `rename(P, old)`, `rename(new, P)`, remove the marker, remove `old`; a process killed
//! at any point leaves one of these states, which [`recover`] (run by every open, under
//! the lock) finishes or rolls back:
//!
//! | marker | new | P | old | meaning                          | recovery                 |
//! |--------|-----|---|-----|----------------------------------|--------------------------|
//! | no     | yes | * | no  | copy unfinished                  | remove new               |
//! | yes    | yes | yes | no | copy complete, swap not started | finish: P→old, new→P     |
//! | yes    | yes | no | yes | between the two renames         | finish: new→P            |
//! | yes    | no  | yes | *  | renamed, clean-up unfinished    | remove marker, old       |
//! | no     | no  | yes | yes | marker gone, old not yet       | remove old               |
//!
//! The store is locked by `P.lock` beside it (sled's own lock is on a file inside `P`,
//! which moves with the renames), so no other process opens the store, or recovers it,
//! while a compaction runs.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::{CompactReport, Store, StoreError, Trees, classify_open_error};

type Result<T> = std::result::Result<T, StoreError>;

/// How long sled may take to close its files once a database is dropped (its I/O
/// threads let go of them a few milliseconds later; longer on a loaded machine).
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// Entries per batch when copying a tree.
const COPY_BATCH: usize = 1024;

/// The paths a compaction of the store at `P` uses.
pub(super) struct SwapPaths {
    pub new: PathBuf,
    pub old: PathBuf,
    pub marker: PathBuf,
}

impl SwapPaths {
    pub fn of(store: &Path) -> SwapPaths {
        SwapPaths {
            new: sibling(store, "compact-new"),
            old: sibling(store, "compact-old"),
            marker: sibling(store, "compact-swap"),
        }
    }
}

/// `P.suffix`, beside `P`.
fn sibling(store: &Path, suffix: &str) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_owned();
    name.push(".");
    name.push(suffix);
    store.with_file_name(name)
}

/// The process lock of a store: an exclusive `flock` on `P.lock`, held while the store
/// is open.
pub(super) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock, or says the store is in use. `None` when the directory the store
    /// is in cannot be written (a store prepared by someone else): then only sled's own
    /// lock guards it, and it cannot be compacted.
    pub fn take(store: &Path) -> Result<Option<StoreLock>> {
        let Some(parent) = store.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(None);
        };
        if let Err(e) = std::fs::create_dir_all(parent) {
            return Err(classify_open_error(store, sled::Error::Io(e)));
        }
        let path = sibling(store, "lock");
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify_open_error(store, sled::Error::Io(e))),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
                path: store.to_owned(),
            }),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(classify_open_error(store, sled::Error::Io(e)))
            }
        }
    }
}

/// Finishes or rolls back a compaction a killed process left half done (see the module
/// docs), and removes its leftovers. Called with the lock held, before sled opens `P`.
pub(super) fn recover(store: &Path) -> Result<()> {
    let paths = SwapPaths::of(store);
    let io = |what: &str, e: std::io::Error| StoreError::Compact {
        path: store.to_owned(),
        reason: format!("recovering an interrupted compaction: {what}: {e}"),
    };
    if paths.marker.exists() {
        if paths.new.exists() {
            // The copy is complete (the marker is written after it is closed).
            if store.exists() {
                if paths.old.exists() {
                    remove_dir(&paths.old).map_err(|e| io("removing the old copy", e))?;
                }
                std::fs::rename(store, &paths.old)
                    .map_err(|e| io("moving the old store aside", e))?;
            }
            std::fs::rename(&paths.new, store)
                .map_err(|e| io("moving the compacted store in", e))?;
            sync_dir(store);
        } else if !store.exists() && paths.old.exists() {
            // Cannot happen by the protocol; keep whatever store there is.
            std::fs::rename(&paths.old, store).map_err(|e| io("moving the store back", e))?;
        }
        std::fs::remove_file(&paths.marker).map_err(|e| io("removing the marker", e))?;
        sync_dir(store);
        tracing::info!(store = %store.display(), "finished a compaction that was interrupted");
    } else if paths.new.exists() {
        tracing::info!(store = %store.display(), "removing an unfinished compaction copy");
        remove_dir(&paths.new).map_err(|e| io("removing the unfinished copy", e))?;
    }
    if paths.old.exists() {
        if store.exists() {
            remove_dir(&paths.old).map_err(|e| io("removing the old store", e))?;
        } else {
            std::fs::rename(&paths.old, store).map_err(|e| io("moving the store back", e))?;
        }
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Makes the renames in the store's parent directory durable (best effort).
pub(super) fn sync_dir(store: &Path) {
    if let Some(parent) = store.parent()
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

/// Writes the marker that says the copy at `new` is complete.
pub(super) fn write_marker(paths: &SwapPaths) -> std::io::Result<()> {
    let file = File::create(&paths.marker)?;
    file.sync_all()
}

/// Copies every tree of `from` into `to` (the default tree too), in batches.
pub(super) fn copy_trees(from: &sled::Db, to: &sled::Db) -> sled::Result<()> {
    for name in from.tree_names() {
        let src = from.open_tree(&name)?;
        let dst = to.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in src.iter() {
            let (k, v) = kv?;
            batch.insert(k, v);
            n += 1;
            if n == COPY_BATCH {
                dst.apply_batch(std::mem::take(&mut batch))?;
                n = 0;
            }
        }
        dst.apply_batch(batch)?;
    }
    Ok(())
}

/// Waits until sled has closed the database at `dir` (nothing holds the lock on its
/// `db` file any more).
pub(super) fn wait_released(dir: &Path) -> std::io::Result<()> {
    let start = Instant::now();
    loop {
        let file = match File::open(dir.join("db")) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        drop(file);
        if start.elapsed() > RELEASE_WAIT {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                format!("{} still open after {RELEASE_WAIT:?}", dir.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Below this the store's files are never compacted: sled's segments and snapshot files
/// take some MiB whatever the data, and a copy would gain little.
pub const COMPACT_FLOOR_BYTES: u64 = 64 << 20;
/// Files more than this many times the live data are compacted.
pub const COMPACT_RATIO: u64 = 2;

/// Whether files of `file` bytes holding `live` bytes of keys and values, with this
/// budget, are worth compacting: far larger than the data, or over the budget with
/// something to gain.
pub(super) fn compaction_due(file: u64, live: u64, budget: u64, floor: u64) -> bool {
    file > floor
        && (file > live.saturating_mul(COMPACT_RATIO)
            || (file > budget && file > live.saturating_add(live / 2)))
}

impl Store {
    /// Whether the store's files are far larger than its live data (more than
    /// [`COMPACT_RATIO`] times, and over [`COMPACT_FLOOR_BYTES`] or the floor of its
    /// options), or over its budget
    /// with space to gain. Reads every tree's sizes when the files are past the floor.
    pub fn needs_compaction(&self) -> bool {
        let Ok(t) = self.trees() else {
            return false;
        };
        let file = t.db.size_on_disk().unwrap_or(0);
        let options = &self.shared.options;
        if file <= options.compact_floor_bytes
            || self.shared.lock.is_none() && !self.shared.temporary
        {
            return false;
        }
        drop(t);
        let (file, live) = self.disk_usage_total();
        compaction_due(
            file,
            live,
            options.budget_bytes,
            options.compact_floor_bytes,
        )
    }

    /// [`Store::compact`] when [`Store::needs_compaction`] says so: for a process that
    /// stays open for days, after a run. Blocking, like `compact`.
    pub fn compact_if_needed(&self) -> Result<Option<CompactReport>> {
        if !self.needs_compaction() {
            return Ok(None);
        }
        self.compact().map(Some)
    }

    /// Rewrites the store into a fresh database holding only its live data, and swaps
    /// it in: every clone of this `Store` goes on with the new one. Writes wait while
    /// the copy is made (reads go on); a process killed at any point leaves either the
    /// old or the new store, complete, which the next open finishes or rolls back.
    /// Blocking (seconds for hundreds of MiB): async callers use the blocking pool.
    pub fn compact(&self) -> Result<CompactReport> {
        let started = Instant::now();
        let _gate = self.shared.gate.write().unwrap_or_else(|p| p.into_inner());
        let path = self.shared.path.clone();
        let fail = |reason: String| StoreError::Compact {
            path: path.clone(),
            reason,
        };
        let old = self.trees()?;
        let before_bytes = old.db.size_on_disk().unwrap_or(0);
        if self.shared.temporary {
            let db = super::temporary_db()?;
            copy_trees(&old.db, &db)?;
            let after_bytes = db.size_on_disk().unwrap_or(0);
            let trees = Trees::of(db)?;
            *self.shared.trees.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(trees));
            return Ok(CompactReport {
                before_bytes,
                after_bytes,
                duration: started.elapsed(),
            });
        }
        if self.shared.lock.is_none() {
            return Err(fail(
                "the directory it is in is not writable (the copy is made beside it)".into(),
            ));
        }
        let paths = SwapPaths::of(&path);
        if paths.marker.exists() {
            return Err(fail(format!(
                "{} is left from a compaction that did not finish; restart snaptop to finish it",
                paths.marker.display()
            )));
        }
        for dir in [&paths.new, &paths.old] {
            remove_dir(dir).map_err(|e| fail(format!("removing {}: {e}", dir.display())))?;
        }

        // The copy, while readers go on with the old database.
        old.db.flush()?;
        let copied = (|| {
            let db = sled::Config::new()
                .path(&paths.new)
                .cache_capacity(self.shared.options.cache_mib.max(1) << 20)
                .open()?;
            copy_trees(&old.db, &db)?;
            db.flush()?;
            Ok::<_, sled::Error>(())
        })();
        if let Err(e) = copied
            .map_err(|e| e.to_string())
            .and_then(|()| wait_released(&paths.new).map_err(|e| e.to_string()))
        {
            let _ = remove_dir(&paths.new);
            return Err(fail(format!("copying into {}: {e}", paths.new.display())));
        }

        // The swap: nobody may hold the old database while its directory moves (sled
        // writes some files by path), so it is closed first.
        let mut slot = self.shared.trees.write().unwrap_or_else(|p| p.into_inner());
        drop(old);
        let Some(old) = slot.take() else {
            return Err(StoreError::Closed { path: path.clone() });
        };
        let waiting = Instant::now();
        while Arc::strong_count(&old) > 1 {
            if waiting.elapsed() > RELEASE_WAIT {
                *slot = Some(old);
                let _ = remove_dir(&paths.new);
                return Err(fail("the store stayed in use".into()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
        if let Err(e) = wait_released(&path) {
            // Not closed: renaming it now could mix the two. Left closed: the next open
            // (a restart) finds it whole.
            let _ = remove_dir(&paths.new);
            return Err(fail(format!("closing it: {e}")));
        }
        let swapped = (|| {
            write_marker(&paths)?;
            sync_dir(&path);
            std::fs::rename(&path, &paths.old)?;
            std::fs::rename(&paths.new, &path)?;
            sync_dir(&path);
            std::fs::remove_file(&paths.marker)?;
            sync_dir(&path);
            std::io::Result::Ok(())
        })();
        if swapped.is_ok()
            && let Err(e) = remove_dir(&paths.old)
        {
            tracing::warn!(store = %path.display(), "cannot remove the old store after compacting: {e}");
        }
        let reopened = if swapped.is_ok() {
            Ok(())
        } else {
            recover(&path)
        }
        .and_then(|()| reopen(&path, self.shared.options.cache_mib));
        match reopened {
            Ok(trees) => *slot = Some(Arc::new(trees)),
            Err(e) => return Err(fail(format!("reopening it: {e}"))),
        }
        swapped.map_err(|e| fail(format!("swapping in the copy: {e}")))?;
        let after_bytes = slot
            .as_ref()
            .and_then(|t| t.db.size_on_disk().ok())
            .unwrap_or(0);
        Ok(CompactReport {
            before_bytes,
            after_bytes,
            duration: started.elapsed(),
        })
    }
}

/// Opens the store's database again after a swap (sled may need a moment to let go of
/// the copy's files).
fn reopen(path: &Path, cache_mib: u64) -> Result<Trees> {
    let start = Instant::now();
    loop {
        match super::open_db(path, cache_mib) {
            Ok(db) => return Trees::of(db),
            Err(StoreError::Locked { .. }) if start.elapsed() < RELEASE_WAIT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}
