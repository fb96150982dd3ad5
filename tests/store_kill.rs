//! A snapshot process killed with SIGKILL at any moment (mid-fetch, mid-commit,
//! mid-flush) never damages the store: it reopens, and the last committed snapshot reads
//! back whole.

mod common;
mod store_lock;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use snaptop::sim::SimOptions;
use snaptop::store::Store;

/// Kill points spread over a whole run, as fractions of a measured warm run's time from
/// its first progress line to its exit, counted from each run's own first progress line:
/// a slower (loaded) machine only moves the kills earlier into the run.
const KILL_AT: [f64; 14] = [
    0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1,
];
/// However loaded the machine, a run shows progress within this.
const FIRST_PROGRESS_WAIT: Duration = Duration::from_secs(60);

/// A `snaptop snapshot` process and what it has said so far.
struct Run {
    child: std::process::Child,
    /// Set when stdout got the summary: the run has returned (committed), only the
    /// flush and the exit are left.
    returned: Arc<AtomicBool>,
    progress: mpsc::Receiver<()>,
}

impl Run {
    fn start(cmd: &mut std::process::Command) -> Run {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, progress) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            // `[ 42%] deployment history 7/60 files · ...`; read to the end so the
            // process never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with('[') {
                    let _ = tx.send(());
                }
            }
        });
        let returned = Arc::new(AtomicBool::new(false));
        let mut stdout = child.stdout.take().unwrap();
        let flag = returned.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                flag.store(true, Ordering::SeqCst);
            }
        });
        Run {
            child,
            returned,
            progress,
        }
    }

    /// Waits for the first progress line; panics (with the process killed) if there is
    /// none in [`FIRST_PROGRESS_WAIT`].
    fn wait_for_progress(&mut self) {
        if self.progress.recv_timeout(FIRST_PROGRESS_WAIT).is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("no progress line in {FIRST_PROGRESS_WAIT:?}");
        }
    }
}

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
    let snapshot = || {
        let mut cmd = common::snaptop(&sim, dir.path());
        cmd.args(["snapshot", "--config"]).arg(&config);
        cmd
    };

    let first = snapshot().output().unwrap();
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
    store_lock::wait_released(&store_path);

    // A warm run, as every killed one will be, timed from its first progress line to
    // its exit.
    let mut warm = Run::start(&mut snapshot());
    warm.wait_for_progress();
    let started = std::time::Instant::now();
    let status = warm.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let run_ms = started.elapsed().as_millis() as f64;

    let mut killed_mid_run = 0;
    let mut last_run_id = committed.run_id;
    for fraction in KILL_AT {
        let delay = (run_ms * fraction) as u64;
        let mut run = Run::start(&mut snapshot());
        run.wait_for_progress();
        std::thread::sleep(Duration::from_millis(delay));
        // Mid-run: it had shown progress, had not returned its result, had not exited.
        let mid_run =
            run.child.try_wait().unwrap().is_none() && !run.returned.load(Ordering::SeqCst);
        run.child.kill().unwrap(); // SIGKILL
        let _ = run.child.wait();
        if mid_run {
            killed_mid_run += 1;
        }

        // A killed process's lock goes with it; this process's own from the last check
        // is waited for at the end of each round.
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
        drop(store);
        store_lock::wait_released(&store_path);
    }
    assert!(
        killed_mid_run >= 5,
        "kills after the first progress line and before the run returned: {killed_mid_run} of {}",
        KILL_AT.len()
    );
}
