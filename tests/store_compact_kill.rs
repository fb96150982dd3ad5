//! A process compacting the store in a loop, SIGKILLed at random moments (mid-copy,
//! mid-swap, between compactions), never loses or damages it: after each kill the store
//! opens, and every tree's data reads back as it was.
//!
//! The child is this test binary run again with [`CHILD_ENV`] naming the store: the
//! `child_compacts_in_a_loop` test then compacts until it is killed (and does nothing
//! in a normal run).

mod store_lock;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use snaptop::engine::model::{RunStats, RunSummary, Snapshot, Trigger};
use snaptop::store::{CommitNode, Store};
use time::OffsetDateTime;

const CHILD_ENV: &str = "SNAPTOP_TEST_COMPACT_CHILD";
const KILLS: usize = 10;
const RUNS: u64 = 40;
const CACHE_ENTRIES: usize = 300;
const BODY_BYTES: usize = 8 * 1024;

fn snapshot(run_id: u64) -> Snapshot {
    Snapshot {
        run_id,
        started_at: OffsetDateTime::UNIX_EPOCH,
        finished_at: OffsetDateTime::UNIX_EPOCH,
        partial: false,
        cancelled: false,
        failures: vec![],
        environments: vec!["prod".into(), format!("env {run_id}")],
        components: vec!["api".into()],
        cells: Default::default(),
        health_queries: vec![],
        stats: RunStats::default(),
    }
}

fn summary(id: u64) -> RunSummary {
    RunSummary {
        id,
        started_at: OffsetDateTime::now_utc(),
        duration_ms: id,
        trigger: Trigger::Cli,
        requests: id,
        not_modified: 0,
        cache_hits: 0,
        errors: 0,
        partial: false,
        cancelled: false,
        error: None,
        new_deployments: None,
    }
}

fn body(i: usize) -> Vec<u8> {
    format!("{i:08}").repeat(BODY_BYTES / 8).into_bytes()
}

fn node(i: usize) -> CommitNode {
    CommitNode {
        parents: vec![format!("{:040x}", i + 1)],
        date: i as i64,
    }
}

/// A store with runs, snapshots, cache entries (overwritten, so there is garbage to
/// compact away), commits and state.
fn fill(path: &Path) {
    let store = Store::open(path, 8).unwrap();
    for round in 0..2 {
        for i in 0..CACHE_ENTRIES {
            let mut b = body(i);
            if round == 0 {
                b.reverse();
            }
            store
                .cache_put(&format!("github {i}"), &b, &[round as u8])
                .unwrap();
        }
    }
    for id in 1..=RUNS {
        assert_eq!(store.next_run_id().unwrap(), id);
        store.commit_run(&summary(id), Some(&snapshot(id))).unwrap();
    }
    let nodes: Vec<_> = (0..200).map(node).collect();
    let shas: Vec<_> = (0..200).map(|i| format!("{i:040x}")).collect();
    store
        .put_commits("acme/api", shas.iter().map(String::as_str).zip(&nodes))
        .unwrap();
    store.put_state("sync", &"cursor 42").unwrap();
    store.flush_blocking().unwrap();
}

/// Everything [`fill`] wrote reads back; `counter` is at least `min_counter`.
fn check(path: &Path, min_counter: u64, when: &str) {
    let store = Store::open(path, 8).unwrap_or_else(|e| panic!("store does not open {when}: {e}"));
    let latest = store
        .latest_snapshot()
        .unwrap_or_else(|e| panic!("latest snapshot unreadable {when}: {e}"))
        .unwrap_or_else(|| panic!("no snapshot {when}"));
    assert_eq!(latest, snapshot(RUNS), "{when}");
    let history = store.run_history(1000).unwrap();
    assert_eq!(
        history.iter().map(|r| r.id).collect::<Vec<_>>(),
        (1..=RUNS).rev().collect::<Vec<_>>(),
        "{when}"
    );
    for i in 0..CACHE_ENTRIES {
        let got = store.cache_get(&format!("github {i}")).unwrap();
        assert_eq!(got, Some(body(i)), "cache entry {i} {when}");
    }
    assert_eq!(store.cache_index().unwrap().len(), CACHE_ENTRIES, "{when}");
    let mut commits = store.commits_of("acme/api").unwrap();
    commits.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(commits.len(), 200, "{when}");
    for (i, (sha, n)) in commits.iter().enumerate() {
        assert_eq!((sha, n), (&format!("{i:040x}"), &node(i)), "{when}");
    }
    assert_eq!(
        store.state::<String>("sync").unwrap().as_deref(),
        Some("cursor 42")
    );
    let counter = store.state::<u64>("counter").unwrap().unwrap_or(0);
    assert!(
        counter >= min_counter,
        "counter {counter} < {min_counter} {when}"
    );
    // Each check takes an id; the counter never goes back to a used one.
    assert!(store.next_run_id().unwrap() > RUNS, "{when}");
    drop(store);
    store_lock::wait_released(path);
}

#[test]
fn child_compacts_in_a_loop() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&path), 8).unwrap();
    let mut n = store.state::<u64>("counter").unwrap().unwrap_or(0);
    loop {
        println!("compact: start");
        store.compact().unwrap();
        println!("compact: done");
        n += 1;
        store.put_state("counter", &n).unwrap();
        store.flush_blocking().unwrap();
        println!("compact: wrote {n}");
    }
}

/// A small xorshift, seeded from the clock (the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn sigkill_during_compaction_leaves_a_readable_store() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let test_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path);
    store_lock::wait_released(&path);
    check(&path, 0, "after filling");

    let seed = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut counter = 0;
    let mut mid_compaction = 0;
    let mut cycle_ms = 0u64;
    for kill in 0..KILLS {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "child_compacts_in_a_loop", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // libtest's own lines ("running 1 test") are not the child's, and its
            // "test child_compacts_in_a_loop ... " has no newline before the first.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Some((_, said)) = line.split_once("compact: ") else {
                    continue;
                };
                let _ = tx.send((Instant::now(), said.to_owned()));
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the child starts compacting");
        assert_eq!(first.1, "start", "{first:?}");
        // The first round measures a compaction cycle; later ones kill anywhere in one
        // and a half.
        if kill == 0 {
            let mut done = None;
            while done.is_none() {
                let (at, line) = lines.recv_timeout(Duration::from_secs(30)).unwrap();
                if line.starts_with("wrote") {
                    done = Some(at);
                }
            }
            cycle_ms = (done.unwrap() - first.0).as_millis() as u64;
            println!("one compaction cycle: {cycle_ms} ms");
        }
        let delay = rng.below(cycle_ms * 3 / 2 + 1);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let said: Vec<String> = lines.try_iter().map(|(_, l)| l).collect();
        let last = said.last().cloned().unwrap_or_else(|| "start".into());
        if last == "start" {
            mid_compaction += 1;
        }
        if let Some(n) = said.iter().rev().find_map(|l| l.strip_prefix("wrote ")) {
            counter = n.parse().unwrap();
        }
        // What the kill left beside the store, for the log (the recovery table in
        // src/store/compact.rs).
        let left: Vec<&str> = ["compact-new", "compact-old", "compact-swap"]
            .into_iter()
            .filter(|s| dir.path().join(format!("store.{s}")).exists())
            .collect();
        println!("kill {kill} after {delay} ms, last said {last:?}, left {left:?}");
        check(&path, counter, &format!("after kill {kill} at {delay} ms"));
    }
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["store", "store.lock"], "no leftovers");
    assert!(
        mid_compaction >= KILLS / 2,
        "kills while a compaction ran: {mid_compaction} of {KILLS}"
    );
    println!(
        "{KILLS} kills, {mid_compaction} mid-compaction, in {:?}",
        test_started.elapsed()
    );
}
