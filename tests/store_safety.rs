//! The store refuses what it must not touch and survives what it can: a newer schema, a
//! directory it cannot write, a damaged latest snapshot; and its run numbers read 1, 2,
//! 3 across process starts. Each case in-process (`Store`) and through the real binary
//! against the simulator on loopback.

mod common;
mod store_lock;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use snaptop::sim::{RunningSim, SimOptions};
use snaptop::store::{SCHEMA_VERSION, Store, StoreError};
use store_lock::wait_released;

/// `snaptop ARGS --config CONFIG` with the simulator's credentials.
fn run(sim: &RunningSim, dir: &Path, config: &Path, args: &[&str]) -> Output {
    common::snaptop(sim, dir)
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn snapshot_ok(sim: &RunningSim, dir: &Path, config: &Path) {
    let out = run(sim, dir, config, &["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_newer_schema_is_refused_and_left_alone() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let store_path = dir.path().join("store");
    let newer = SCHEMA_VERSION + 1;
    {
        let db = sled::open(&store_path).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &newer.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    wait_released(&store_path);
    let expected = format!(
        "store {} has schema version {newer}, newer than this snaptop understands ({SCHEMA_VERSION})",
        store_path.display()
    );

    let err = Store::open(&store_path, 8).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == newer));
    assert_eq!(err.to_string(), expected);
    wait_released(&store_path);

    // The headless run and the TUI both stop before any request, with that one line.
    for args in [&["snapshot"][..], &[][..]] {
        let out = run(&sim, dir.path(), &config, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "snaptop {args:?}: {err}");
        assert_eq!(err, format!("snaptop: {expected}\n"), "snaptop {args:?}");
    }
    wait_released(&store_path);
    let db = sled::open(&store_path).unwrap();
    let version = db.open_tree("meta").unwrap().get("schema_version").unwrap();
    assert_eq!(
        version.as_deref(),
        Some(&newer.to_be_bytes()[..]),
        "not downgraded"
    );
}

/// Whether this process can write into a directory its mode forbids (root, or
/// CAP_DAC_OVERRIDE): then chmod alone proves nothing.
fn writes_past_permissions(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let wrote = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    wrote
}

/// Drops the capabilities that let root ignore file permissions from the child's
/// bounding set, so the binary it runs is held to the directory's mode like anyone.
/// Where that is not allowed (no CAP_SETPCAP) spawning the command fails.
fn hold_to_permissions(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER (linux/capability.h).
    const CAPS: [libc::c_ulong; 3] = [1, 2, 3];
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            for cap in CAPS {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_not_writable_is_one_line_naming_it() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let store_path = dir.path().join("store");
    snapshot_ok(&sim, dir.path(), &config);
    let fresh_parent = dir.path().join("locked");
    std::fs::create_dir(&fresh_parent).unwrap();
    let fresh_store = fresh_parent.join("store");
    let fresh_config = dir.path().join("fresh.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("{:?}", store_path.display().to_string()),
        &format!("{:?}", fresh_store.display().to_string()),
    );
    std::fs::write(&fresh_config, text).unwrap();
    let _locked = [&store_path, &fresh_parent].map(|d| ReadOnly::set(d));
    let privileged = writes_past_permissions(&store_path);

    // An existing store in a directory it cannot write, and a new one it cannot create.
    for (path, config) in [(&store_path, &config), (&fresh_store, &fresh_config)] {
        if privileged {
            eprintln!(
                "notice: running as root: Store::open can write anyway; checked in the binary below"
            );
        } else {
            let err = Store::open(path, 8).unwrap_err();
            assert!(matches!(err, StoreError::NotWritable { .. }), "{err}");
            wait_released(path);
        }
        let mut cmd = common::snaptop(&sim, dir.path());
        cmd.args(["snapshot", "--config"]).arg(config);
        if privileged {
            hold_to_permissions(&mut cmd);
        }
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) => {
                eprintln!("notice: cannot drop root's capabilities here ({e}); skipping");
                continue;
            }
        };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with(&format!(
                "snaptop: store {} is not writable (permission denied)",
                path.display()
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert_eq!(
            err.to_lowercase().matches("permission denied").count(),
            1,
            "the OS error once: {err}"
        );
        assert!(err.contains("[store] path"), "a hint: {err}");
    }
}

/// A directory made read-only (0500) until dropped, so the temporary directory can
/// still be removed when an assertion fails.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn set(dir: &Path) -> ReadOnly {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        ReadOnly(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_numbered_one_two_three_across_process_starts() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    for _ in 0..3 {
        snapshot_ok(&sim, dir.path(), &config);
    }
    let store = Store::open(&dir.path().join("store"), 8).unwrap();
    let ids: Vec<u64> = store
        .run_history(10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [3, 2, 1]);
    assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_latest_snapshot_is_replaced_by_the_next_run() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let store_path = dir.path().join("store");
    snapshot_ok(&sim, dir.path(), &config);
    {
        let db = sled::open(&store_path).unwrap();
        db.open_tree("snapshots")
            .unwrap()
            .insert(1u64.to_be_bytes(), &b"\xff\xfe garbage"[..])
            .unwrap();
        db.flush().unwrap();
    }
    wait_released(&store_path);
    {
        let store = Store::open(&store_path, 8).unwrap();
        let err = store.latest_snapshot().unwrap_err();
        assert!(err.to_string().contains("snapshot #1"), "{err}");
        let read = store.latest_or_fallback().unwrap();
        assert!(read.snapshot.is_none() && read.unreadable.is_some());
    }
    wait_released(&store_path);
    snapshot_ok(&sim, dir.path(), &config);
    let store = Store::open(&store_path, 8).unwrap();
    assert_eq!(store.latest_snapshot().unwrap().unwrap().run_id, 2);
}
