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

fn keep_snapshots() -> usize {
    RetentionConfig::default().keep_snapshots
}

pub(crate) fn sample_summary(id: u64) -> RunSummary {
    RunSummary {
        id,
        started_at: OffsetDateTime::now_utc(),
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
        .trees()
        .unwrap()
        .snapshots
        .iter()
        .keys()
        .map(|k| id_of(&k.unwrap()).unwrap())
        .collect()
}

#[test]
fn old_snapshots_are_trimmed_but_latest_kept() {
    let store = Store::temporary().unwrap();
    for _ in 0..keep_snapshots() + 5 {
        commit(&store, store.next_run_id().unwrap());
    }
    let newest = keep_snapshots() as u64 + 5;
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
    let ids: Vec<u64> = (100..100 + keep_snapshots() as u64 + 5).rev().collect();
    for &id in &ids {
        commit(&store, id);
    }
    let latest = *ids.last().unwrap();
    let kept = snapshot_ids(&store);
    assert_eq!(kept.len(), keep_snapshots(), "trimmed to size: {kept:?}");
    assert_eq!(kept[0], latest, "the latest snapshot's own key is kept");
    // What went instead: the oldest keys other than the latest.
    let mut expected = vec![latest];
    expected.extend(ids[..keep_snapshots() - 1].iter().rev());
    assert_eq!(kept, expected);
    let read = store.latest_or_fallback().unwrap();
    assert_eq!(read.unreadable, None);
    assert_eq!(read.snapshot.unwrap().run_id, latest);
    assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, latest);
    // The runs tree is trimmed the same way: the latest snapshot's run stays listed.
    assert!(
        store
            .trees()
            .unwrap()
            .runs
            .contains_key(latest.to_be_bytes())
            .unwrap()
    );
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
    store.trees().unwrap().meta.remove(RUN_COUNTER_KEY).unwrap();
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
        .trees()
        .unwrap()
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
        .trees()
        .unwrap()
        .snapshots
        .insert(2u64.to_be_bytes(), &br#"{"run_id": 2}"#[..])
        .unwrap();
    assert_eq!(
        store.latest_or_fallback().unwrap().snapshot.unwrap().run_id,
        1
    );

    // Garbage under the pointer itself.
    store
        .trees()
        .unwrap()
        .meta
        .insert(LATEST_KEY, &b"bad"[..])
        .unwrap();
    let read = store.latest_or_fallback().unwrap();
    assert_eq!(read.snapshot.map(|s| s.run_id), Some(1));
    assert!(read.unreadable.unwrap().contains("latest_snapshot"));

    // Nothing readable at all: no snapshot, still a reason. The next run replaces it.
    store
        .trees()
        .unwrap()
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
        .trees()
        .unwrap()
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
    store
        .trees()
        .unwrap()
        .cache
        .insert("github orphan", &b"x"[..])
        .unwrap();
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
            .trees()
            .unwrap()
            .db
            .open_tree("http")
            .unwrap()
            .insert("k", "v")
            .unwrap();
        store
            .trees()
            .unwrap()
            .meta
            .insert(SCHEMA_KEY, &1u32.to_be_bytes())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let store = Store::open(dir.path(), 8).unwrap();
    assert!(
        !store
            .trees()
            .unwrap()
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == b"http")
    );
    assert_eq!(store.run_history(10).unwrap().len(), 1);
    let v = store
        .trees()
        .unwrap()
        .meta
        .get(SCHEMA_KEY)
        .unwrap()
        .unwrap();
    assert_eq!(
        u32::from_be_bytes(v.as_ref().try_into().unwrap()),
        SCHEMA_VERSION
    );
}

// --- retention -------------------------------------------------------------------------

fn with_retention(retention: RetentionConfig) -> Store {
    Store::temporary_with(StoreOptions {
        retention,
        ..StoreOptions::new(8)
    })
    .unwrap()
}

fn ids(tree: &sled::Tree) -> Vec<u64> {
    tree.iter()
        .keys()
        .map(|k| id_of(&k.unwrap()).unwrap())
        .collect()
}

fn detail() -> RunDetail {
    RunDetail {
        per_source: Default::default(),
        failures: vec![],
        log: vec![],
    }
}

#[test]
fn retention_keeps_the_last_runs_snapshots_and_details_by_count() {
    let store = with_retention(RetentionConfig {
        keep_runs: 5,
        keep_days: 0,
        keep_snapshots: 2,
        keep_run_details: 3,
    });
    for id in 1..=10 {
        commit(&store, id);
        store.put_run_detail(id, &detail()).unwrap();
    }
    let t = store.trees().unwrap();
    assert_eq!(ids(&t.runs), [6, 7, 8, 9, 10]);
    assert_eq!(ids(&t.snapshots), [9, 10]);
    assert_eq!(ids(&t.run_details), [8, 9, 10]);

    // Failed runs (no snapshot) push the history on; the latest snapshot and its run stay.
    for id in 11..=20 {
        store.commit_run(&sample_summary(id), None).unwrap();
    }
    let t = store.trees().unwrap();
    assert_eq!(
        ids(&t.runs),
        [10, 17, 18, 19, 20],
        "run 10 has the latest snapshot"
    );
    assert_eq!(ids(&t.snapshots), [9, 10]);
    assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, 10);
    assert_eq!(
        ids(&t.run_details),
        [10],
        "the details of trimmed runs go with them"
    );
}

#[test]
fn retention_drops_runs_older_than_keep_days_but_not_the_latest_snapshot() {
    let store = with_retention(RetentionConfig {
        keep_runs: 1000,
        keep_days: 30,
        keep_snapshots: 10,
        keep_run_details: 10,
    });
    let now = OffsetDateTime::now_utc();
    let at = |id: u64, days_ago: i64| RunSummary {
        started_at: now - time::Duration::days(days_ago),
        ..sample_summary(id)
    };
    // Run 1 (100 days ago) made the latest snapshot; later runs all failed.
    store
        .commit_run(&at(1, 100), Some(&sample_snapshot(1)))
        .unwrap();
    store.put_run_detail(1, &detail()).unwrap();
    for (id, days_ago) in [(2, 90), (3, 40), (4, 29), (5, 1)] {
        store.commit_run(&at(id, days_ago), None).unwrap();
        store.put_run_detail(id, &detail()).unwrap();
    }
    let t = store.trees().unwrap();
    assert_eq!(ids(&t.runs), [1, 4, 5]);
    assert_eq!(ids(&t.run_details), [1, 4, 5]);
    assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, 1);

    // A newer snapshot: run 1 is now just old.
    store
        .commit_run(&at(6, 0), Some(&sample_snapshot(6)))
        .unwrap();
    assert_eq!(ids(&t.runs), [4, 5, 6]);
    // Time passes with no run: applied on the next commit, or when asked.
    store
        .apply_retention(now + time::Duration::days(29) + time::Duration::hours(12))
        .unwrap();
    assert_eq!(ids(&t.runs), [6]);
    assert_eq!(ids(&t.snapshots), [1, 6], "snapshots go by count only");
}

#[test]
fn the_default_retention_keeps_a_year_of_runs() {
    let r = RetentionConfig::default();
    // The default schedule (a run every ~48 minutes, ~30 a day) for a year.
    assert!(r.keep_runs >= 365 * 30, "{}", r.keep_runs);
    assert!(r.keep_days >= 365, "{}", r.keep_days);
    assert!(r.keep_snapshots >= 1 && r.keep_run_details >= r.keep_snapshots);
}

// --- compaction --------------------------------------------------------------------------

/// Every tree's entries, by tree name.
type Contents = std::collections::BTreeMap<Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>>;

fn contents(store: &Store) -> Contents {
    let t = store.trees().unwrap();
    t.db.tree_names()
        .into_iter()
        .map(|name| {
            let tree = t.db.open_tree(&name).unwrap();
            let kvs = tree
                .iter()
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            (name.to_vec(), kvs)
        })
        .collect()
}

/// A store with something in every tree, and garbage left by overwrites.
fn fill(store: &Store, runs: u64) {
    let node = CommitNode {
        parents: vec!["p".into()],
        date: 7,
    };
    store
        .put_commits("o/r", [("a", &node), ("b", &node)])
        .unwrap();
    store.put_state("sync", &vec![1, 2, 3]).unwrap();
    store.put_cache_stats(&"counters").unwrap();
    for round in 0..4u8 {
        for i in 0..50 {
            let body = vec![round; 4096];
            store
                .cache_put(&format!("github {i}"), &body, &[round])
                .unwrap();
        }
    }
    for _ in 0..runs {
        let id = store.next_run_id().unwrap();
        commit(store, id);
        store.put_run_detail(id, &detail()).unwrap();
    }
    store
        .trees()
        .unwrap()
        .db
        .open_tree("a tree of the future")
        .unwrap()
        .insert("k", "v")
        .unwrap();
}

fn reopen(path: &Path) -> Store {
    compact::wait_released(path).unwrap();
    Store::open(path, 8).unwrap()
}

#[test]
fn compaction_keeps_every_tree_and_shrinks_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, 8).unwrap();
    fill(&store, 40);
    // Churn: the same 200 entries rewritten 20 times (16 MiB written over 800 KiB
    // live), as a cache does over weeks. A store this small is not otherwise larger
    // than a fresh one (sled preallocates its segments).
    for round in 0..20u8 {
        for i in 0..200 {
            store
                .cache_put(&format!("churn {i}"), &vec![round; 4096], &[round])
                .unwrap();
        }
    }
    store.flush_blocking().unwrap();
    let before = contents(&store);
    assert!(before.len() >= 9, "{:?}", before.keys().collect::<Vec<_>>());
    let report = store.compact().unwrap();
    assert!(
        report.before_bytes > 0 && report.after_bytes > 0,
        "{report:?}"
    );
    assert!(
        report.after_bytes < report.before_bytes,
        "smaller: {report:?}"
    );
    assert_eq!(contents(&store), before, "same data after compacting");
    assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, 40);
    // Nothing left beside the store but its lock.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["store", "store.lock"]);
    drop(store);
    let store = reopen(&path);
    assert_eq!(contents(&store), before, "and after reopening");
    assert_eq!(store.next_run_id().unwrap(), 41);
}

#[test]
fn a_temporary_store_compacts_in_memory() {
    let store = Store::temporary().unwrap();
    fill(&store, 5);
    let before = contents(&store);
    store.compact().unwrap();
    assert_eq!(contents(&store), before);
}

#[test]
fn writes_before_and_during_compaction_survive_in_every_clone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, 8).unwrap();
    fill(&store, 60);
    store.put_state("just before", &1).unwrap();
    let writer = store.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let reader = store.clone();
    let writes = std::thread::spawn(move || {
        let mut written = 0u64;
        while !stopping.load(std::sync::atomic::Ordering::SeqCst) || written < 20 {
            writer
                .put_state(&format!("during {written}"), &written)
                .unwrap();
            // Reads go on whatever the compaction is doing.
            assert!(reader.latest_snapshot().unwrap().is_some());
            written += 1;
        }
        written
    });
    std::thread::sleep(Duration::from_millis(5));
    store.compact().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writes.join().unwrap();
    let check = |store: &Store| {
        assert_eq!(store.state::<i32>("just before").unwrap(), Some(1));
        for i in 0..written {
            assert_eq!(
                store.state::<u64>(&format!("during {i}")).unwrap(),
                Some(i),
                "write {i} of {written}"
            );
        }
    };
    check(&store);
    store.flush_blocking().unwrap();
    drop(store);
    check(&reopen(&path));
}

#[test]
fn a_store_being_compacted_or_compacted_stays_locked_to_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, 8).unwrap();
    fill(&store, 3);
    assert!(!store.needs_compaction(), "a few MiB: under the floor");
    assert_eq!(store.compact_if_needed().unwrap(), None);
    store.compact().unwrap();
    let err = Store::open(&path, 8).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "store {} is in use by another snaptop process (close it, or pass another store path)",
            path.display()
        )
    );
}

#[test]
fn compaction_is_due_when_the_files_are_far_larger_than_the_data_or_over_budget() {
    const MIB: u64 = 1 << 20;
    let budget = 600 * MIB;
    let due = |file, live, budget| compact::compaction_due(file, live, budget, COMPACT_FLOOR_BYTES);
    assert!(!due(10 * MIB, MIB, budget), "under the floor");
    assert!(due(300 * MIB, 100 * MIB, budget), "3× the data");
    assert!(!due(150 * MIB, 100 * MIB, budget), "1.5×, in budget");
    assert!(due(800 * MIB, 500 * MIB, budget), "over budget, 1.6×");
    assert!(
        !due(800 * MIB, 700 * MIB, budget),
        "over budget with the data: a copy would not help"
    );
}

/// A closed store at `path` whose `state` key "which" says `which`.
fn closed_store(path: &Path, which: &str) {
    let store = Store::open(path, 8).unwrap();
    commit(&store, 1);
    store.put_state("which", &which).unwrap();
    store.flush_blocking().unwrap();
    drop(store);
    compact::wait_released(path).unwrap();
    // Its lock file is for the store at `path` only.
    let _ = std::fs::remove_file(format!("{}.lock", path.display()));
}

#[test]
fn open_finishes_or_rolls_back_each_half_done_swap() {
    // (marker, the directories present and which store each holds, expected result)
    type Layout = (bool, &'static [(&'static str, &'static str)], &'static str);
    let cases: [Layout; 5] = [
        // Killed while copying: the copy goes, the old store stays.
        (false, &[("store", "old"), ("new", "partial")], "old"),
        // Copy complete, swap not started: finished.
        (true, &[("store", "old"), ("new", "new")], "new"),
        // Between the two renames.
        (true, &[("old", "old"), ("new", "new")], "new"),
        // Renamed, marker still there.
        (true, &[("store", "new"), ("old", "old")], "new"),
        // Marker removed, old store not yet.
        (false, &[("store", "new"), ("old", "old")], "new"),
    ];
    for (i, (marker, dirs, expected)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let paths = compact::SwapPaths::of(&path);
        for (place, which) in dirs {
            let at = match *place {
                "store" => path.clone(),
                "new" => paths.new.clone(),
                _ => paths.old.clone(),
            };
            closed_store(&at, which);
        }
        if marker {
            std::fs::write(&paths.marker, b"").unwrap();
        }
        let store = Store::open(&path, 8).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(
            store.state::<String>("which").unwrap().as_deref(),
            Some(expected),
            "case {i}"
        );
        assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, 1);
        for leftover in [&paths.new, &paths.old, &paths.marker] {
            assert!(!leftover.exists(), "case {i}: {} left", leftover.display());
        }
        // And it compacts again from there.
        store.compact().unwrap();
        assert_eq!(
            store.state::<String>("which").unwrap().as_deref(),
            Some(expected)
        );
    }
}

#[test]
fn open_compacts_a_store_whose_files_are_far_larger_than_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let no_floor = StoreOptions {
        compact_floor_bytes: 0,
        ..StoreOptions::new(8)
    };
    let before = {
        let store = Store::open_with(&path, no_floor.clone()).unwrap();
        fill(&store, 5);
        // Overwritten many times: garbage in the files, little live data.
        for round in 0..30u8 {
            for i in 0..50 {
                store
                    .cache_put(&format!("github {i}"), &vec![round; 16 * 1024], &[round])
                    .unwrap();
            }
            store.flush_blocking().unwrap();
        }
        assert!(store.needs_compaction(), "{:?}", store.disk_usage_total());
        (contents(&store), store.disk_usage_total().0)
    };
    compact::wait_released(&path).unwrap();
    let store = Store::open_with(&path, no_floor).unwrap();
    let (file, live) = store.disk_usage_total();
    assert!(file < before.1, "compacted at open: {file} < {}", before.1);
    // (Without the floor a store this small would compact at every open: a fresh sled
    // holding 0.8 MiB takes ~2 MiB. The 64 MiB floor is what prevents that.)
    assert!(live > 0 && file > 0);
    assert_eq!(contents(&store), before.0);
}
