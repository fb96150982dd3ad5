//! Waiting for a dropped store to let go of its lock, before the next open of it.
//!
//! sled closes its files a few milliseconds after a `Db` is dropped (its I/O threads
//! still hold them), longer on a loaded machine; a store opened meanwhile, in this
//! process or in a child, is refused as in use by another snaptop process.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// Returns once no open file holds the lock of the store at `store` (or it has no
/// `db` file yet); panics after [`RELEASE_WAIT`].
pub fn wait_released(store: &Path) {
    let start = Instant::now();
    loop {
        let Ok(db) = std::fs::File::open(store.join("db")) else {
            return;
        };
        // sled takes its lock with flock(2) on `db`. SAFETY: a valid open descriptor;
        // the probe's own lock goes when `db` is closed.
        let free = unsafe { libc::flock(db.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        drop(db);
        if free {
            return;
        }
        assert!(
            start.elapsed() < RELEASE_WAIT,
            "store {} still locked after {RELEASE_WAIT:?}",
            store.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
