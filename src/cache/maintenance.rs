//! Maintenance of the cache that a user asks for (the Cache tab's `d` and `p`,
//! `snaptop cache clear|purge`): each is a [`Job`] run on the blocking pool, never on
//! the render path, that says what it removed.

use serde::{Deserialize, Serialize};

use super::{HttpCache, Namespace, Removed};

/// One maintenance job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", content = "namespace", rename_all = "snake_case")]
pub enum Job {
    /// Every entry of one namespace.
    ClearNamespace(Namespace),
    /// Every entry of every namespace.
    ClearAll,
    /// Entries nothing can use any more (see [`HttpCache::purge`]).
    PurgeExpired,
    /// Rewrites the whole store into fresh files (see [`crate::store::Store::compact`]):
    /// what sled's files hold beyond the live data is given back to the disk.
    CompactStore,
}

/// What a job removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub job: Job,
    pub entries: u64,
    pub bytes: u64,
    /// A compaction's store files before and after, in bytes.
    pub files: Option<(u64, u64)>,
}

impl Job {
    /// Runs the job and persists the counters it moved. Blocking (sled writes): call it
    /// from `spawn_blocking` or a CLI. Only a compaction can fail (one line naming the
    /// store); the store stays readable whatever happens.
    pub fn run(self, cache: &HttpCache) -> Result<Done, String> {
        if self == Job::CompactStore {
            cache.checkpoint();
            let report = cache.backing_store().compact().map_err(|e| e.to_string())?;
            return Ok(Done {
                job: self,
                entries: 0,
                bytes: report.before_bytes.saturating_sub(report.after_bytes),
                files: Some((report.before_bytes, report.after_bytes)),
            });
        }
        let removed = match self {
            Job::ClearNamespace(ns) => cache.clear_namespace(ns),
            Job::ClearAll => Namespace::ALL
                .into_iter()
                .map(|ns| cache.clear_namespace(ns))
                .fold(Removed::default(), |a, r| Removed {
                    entries: a.entries + r.entries,
                    bytes: a.bytes + r.bytes,
                }),
            Job::PurgeExpired => cache.purge(),
            Job::CompactStore => Removed::default(),
        };
        cache.checkpoint();
        Ok(Done {
            job: self,
            entries: removed.entries,
            bytes: removed.bytes,
            files: None,
        })
    }

    /// What the job does, for a question or a log line: `clear the github namespace`.
    pub fn describe(self) -> String {
        match self {
            Job::ClearNamespace(ns) => format!("clear the {ns} namespace"),
            Job::ClearAll => "clear every namespace".into(),
            Job::PurgeExpired => "purge expired entries".into(),
            Job::CompactStore => "compact the store".into(),
        }
    }

    /// The past tense, for the result: `cleared github`.
    pub fn done_verb(self) -> String {
        match self {
            Job::ClearNamespace(ns) => format!("cleared {ns}"),
            Job::ClearAll => "cleared every namespace".into(),
            Job::PurgeExpired => "purged expired entries".into(),
            Job::CompactStore => "compacted the store".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CacheConfig;
    use crate::store::Store;

    fn filled() -> HttpCache {
        let cache = HttpCache::open(Store::temporary().unwrap(), CacheConfig::default());
        for ns in [Namespace::GitHub, Namespace::Jira] {
            let items: Vec<(String, String)> = (0..3)
                .map(|i| (format!("{ns}:blob:{i}"), "x".repeat(100)))
                .collect();
            cache.put_immutable_blocking(ns, &items);
        }
        cache
    }

    #[test]
    fn clearing_a_namespace_leaves_the_others_and_says_what_went() {
        let cache = filled();
        let done = Job::ClearNamespace(Namespace::GitHub).run(&cache).unwrap();
        assert_eq!(done.entries, 3);
        assert!(done.bytes >= 300, "{done:?}");
        let report = cache.report();
        assert_eq!(report.disk[&Namespace::GitHub].entries, 0);
        assert_eq!(report.disk[&Namespace::Jira].entries, 3);
        let done = Job::ClearAll.run(&cache).unwrap();
        assert_eq!(done.entries, 3);
        assert_eq!(cache.report().disk_total().entries, 0);
        // Nothing is left to clear: nothing removed, no error.
        assert_eq!(Job::ClearAll.run(&cache).unwrap().entries, 0);
    }

    #[test]
    fn compacting_keeps_every_entry_and_says_what_the_files_gave_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), 8).unwrap();
        let cache = HttpCache::open(store, CacheConfig::default());
        let items: Vec<(String, String)> = (0..50)
            .map(|i| (format!("github:blob:{i}"), "y".repeat(4096)))
            .collect();
        cache.put_immutable_blocking(Namespace::GitHub, &items);
        let done = Job::CompactStore.run(&cache).unwrap();
        let (before, after) = done.files.expect("file sizes");
        assert!(before > 0 && after > 0, "{done:?}");
        assert_eq!(done.bytes, before.saturating_sub(after));
        assert_eq!(cache.report().disk[&Namespace::GitHub].entries, 50);
        assert_eq!(Job::CompactStore.describe(), "compact the store");
    }

    #[test]
    fn purging_keeps_what_is_still_of_use() {
        let cache = filled();
        let done = Job::PurgeExpired.run(&cache).unwrap();
        assert_eq!((done.entries, done.bytes), (0, 0));
        assert_eq!(cache.report().disk_total().entries, 6);
        assert_eq!(Job::PurgeExpired.describe(), "purge expired entries");
        assert_eq!(
            Job::ClearNamespace(Namespace::Jira).describe(),
            "clear the jira namespace"
        );
    }
}
