//! `snaptop cache stats|clear|purge`, the real binary against a store a snapshot of the
//! simulator filled.

mod common;

use std::path::Path;

use snaptop::sim::{RunningSim, SimOptions};
use snaptop::store::Store;

fn run(sim: &RunningSim, dir: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    common::snaptop(sim, dir)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A store after two snapshots: the second one answered from the cache.
async fn filled() -> (RunningSim, tempfile::TempDir, std::path::PathBuf) {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    for _ in 0..2 {
        let out = run(&sim, dir.path(), &config, &["snapshot"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (sim, dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_text_and_json_after_snapshots() {
    let (sim, dir, config) = filled().await;
    let out = run(&sim, dir.path(), &config, &["cache", "stats"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    // Every rate names its window; the second run was answered from the cache.
    for window in ["last run (#2)", "last 2 runs", "lifetime"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(window))
            .unwrap_or_else(|| panic!("no {window} line:\n{text}"));
        assert!(line.contains('%'), "{line}");
    }
    // The registry saw no lookups: said so, never 0%.
    assert!(text.contains("no lookups"), "{text}");
    assert!(text.contains("revalidated 304") && text.contains("budget saved"));
    assert!(text.contains("store tier:") && text.contains("memory tier:"));

    let out = run(&sim, dir.path(), &config, &["cache", "stats", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["runs_recorded"], 2);
    assert_eq!(v["last_run_id"], 2);
    assert_eq!(v["windows"]["last_run"], "last run (#2)");
    let rate = v["all"]["hit_rate"]["last_run"].as_f64().unwrap();
    assert!(rate > 0.5, "warm run hit rate {rate}");
    let names: Vec<&str> = v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["github", "teamcity", "datadog", "jira", "registry"]);
    let github = &v["namespaces"][0];
    assert!(github["store"]["entries"].as_u64().unwrap() > 0);
    assert!(github["lifetime"]["revalidated"].as_u64().unwrap() > 0);
    // A namespace without lookups has null rates, not 0.
    let registry = &v["namespaces"][4];
    assert!(registry["hit_rate"]["lifetime"].is_null(), "{registry}");
    for key in [
        "entries",
        "bytes",
        "budget_bytes",
        "file_bytes",
        "live_bytes",
    ] {
        assert!(v["store"][key].is_u64(), "store.{key}");
    }
    assert!(v["memory"]["budget_bytes"].is_u64());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_and_purge_say_what_they_removed() {
    let (sim, dir, config) = filled().await;
    let entries = |ns: usize| {
        let out = run(&sim, dir.path(), &config, &["cache", "stats", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["namespaces"][ns]["store"]["entries"].as_u64().unwrap()
    };
    let github = entries(0);
    let teamcity = entries(1);
    assert!(github > 0 && teamcity > 0);

    let out = run(&sim, dir.path(), &config, &["cache", "clear", "GitHub"]);
    assert_eq!(out.status.code(), Some(0));
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!("cleared github: {github} entries, ")),
        "{line}"
    );
    assert_eq!(entries(0), 0);
    assert_eq!(entries(1), teamcity, "other namespaces are kept");

    // Nothing in the store is expired right after a run.
    let out = run(&sim, dir.path(), &config, &["cache", "purge"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim(),
        "purged expired entries: 0 entries, 0 B"
    );

    let out = run(&sim, dir.path(), &config, &["cache", "clear", "all"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("cleared every namespace: "));
    assert_eq!(entries(1), 0);

    // Compaction gives back what the cleared entries held on disk; the runs stay.
    let out = run(&sim, dir.path(), &config, &["cache", "compact"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout(&out);
    assert!(line.starts_with("compacted the store: files "), "{line}");
    assert!(line.contains(" given back)"), "{line}");
    let store = snaptop::store::Store::open(&dir.path().join("store"), 8).unwrap();
    assert!(!store.run_history(10).unwrap().is_empty());
    drop(store);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_namespace_or_a_held_store_is_one_clear_line() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let out = run(&sim, dir.path(), &config, &["cache", "clear", "gh"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("\"gh\"")
            && stderr.contains("github, teamcity, datadog, jira, registry, or all"),
        "{stderr}"
    );

    let held = Store::open(&dir.path().join("store"), 8).unwrap();
    for args in [
        &["cache", "stats"][..],
        &["cache", "clear", "jira"],
        &["cache", "purge"],
    ] {
        let out = run(&sim, dir.path(), &config, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("in use by another snaptop process"),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    drop(held);
}
