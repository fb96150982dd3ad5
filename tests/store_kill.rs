//! A snapshot process killed with SIGKILL at any moment (mid-fetch, mid-commit,
//! mid-flush) never damages the store: it reopens, and the last committed snapshot reads
//! back whole.

mod common;

use std::time::Duration;

use snaptop::sim::SimOptions;
use snaptop::store::Store;

/// Kill points spread over a whole run, as fractions of a measured run's duration (start-up
/// included), so the test keeps landing mid-run however fast the machine or the code is.
const KILL_AT: [f64; 14] = [
    0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.1,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_keeps_the_last_committed_snapshot() {
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(5),
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let store_path = dir.path().join("store");

    let first = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let committed = {
        let store = Store::open(&store_path, 8).unwrap();
        store
            .latest_snapshot()
            .unwrap()
            .expect("a committed snapshot")
    };

    // A warm run, as every killed one will be, timed from spawn to exit.
    let started = std::time::Instant::now();
    let warm = common::snaptop(&sim, dir.path())
        .args(["snapshot", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(warm.status.code(), Some(0));
    let run_ms = started.elapsed().as_millis() as f64;

    let mut killed_mid_run = 0;
    let mut last_run_id = committed.run_id;
    for fraction in KILL_AT {
        let delay = (run_ms * fraction) as u64;
        let mut child = common::snaptop(&sim, dir.path())
            .args(["snapshot", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let finished_before_kill = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        if !finished_before_kill {
            killed_mid_run += 1;
        }

        let store = Store::open(&store_path, 8)
            .unwrap_or_else(|e| panic!("store does not reopen after a kill at {delay} ms: {e}"));
        let latest = store
            .latest_snapshot()
            .unwrap_or_else(|e| {
                panic!("latest snapshot unreadable after a kill at {delay} ms: {e}")
            })
            .expect("the committed snapshot is still there");
        assert!(latest.run_id >= last_run_id, "went back in time");
        assert!(!latest.partial, "no faults were injected");
        assert_eq!(latest.cells, committed.cells, "kill at {delay} ms");
        let history = store.run_history(100).unwrap();
        assert!(
            history.iter().any(|r| r.id == latest.run_id),
            "the snapshot's run is in the history"
        );
        last_run_id = latest.run_id;
    }
    assert!(
        killed_mid_run >= 5,
        "most kills must land mid-run ({killed_mid_run})"
    );
}
