//! `snaptop schedule` as a user runs it: the real binary against a config and its store.

mod common;

use std::path::Path;
use std::process::Output;

use snaptop::sim::{RunningSim, SimOptions};
use snaptop::store::Store;

fn run(sim: &RunningSim, dir: &Path, config: &Path, args: &[&str]) -> Output {
    common::snaptop(sim, dir)
        .arg("--config")
        .arg(config)
        .arg("schedule")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)))
}

/// A config with the business window in a fixed zone, so the times do not depend on the
/// machine's.
fn config_with(sim: &RunningSim, dir: &Path, schedule: &str) -> std::path::PathBuf {
    let path = common::write_config(sim, dir);
    let mut t = std::fs::read_to_string(&path).unwrap();
    t.push_str(&format!(
        "\n[schedule]\ntimezone = \"Europe/Berlin\"\n{schedule}\n"
    ));
    std::fs::write(&path, t).unwrap();
    path
}

#[tokio::test]
async fn next_lists_the_runs_with_their_rule_across_the_window_edges() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(&sim, dir.path(), "");
    // Friday 4 December 2026, 17:10 in Berlin; no run in the store yet.
    let out = run(
        &sim,
        dir.path(),
        &config,
        &[
            "next",
            "--from",
            "2026-12-04T17:10:00+01:00",
            "-n",
            "4",
            "--no-jitter",
            "--json",
        ],
    );
    let doc = json(&out);
    let runs: Vec<(String, String)> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["at"].as_str().unwrap().to_string(),
                r["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("2026-12-04T17:10:00+01:00".to_string(), "first".to_string()),
            ("2026-12-04T17:40:00+01:00".into(), "business".into()),
            ("2026-12-04T19:40:00+01:00".into(), "off-hours".into()),
            ("2026-12-04T21:40:00+01:00".into(), "off-hours".into()),
        ]
    );
    assert_eq!(doc["timezone"], "Europe/Berlin");
    // Text: the same times, relative, and the rule's words.
    let out = run(
        &sim,
        dir.path(),
        &config,
        &[
            "next",
            "--from",
            "2026-12-04T17:10:00+01:00",
            "-n",
            "2",
            "--no-jitter",
        ],
    );
    let t = text(&out.stdout);
    assert!(
        t.contains("2026-12-04T17:40:00+01:00     in 30m  business"),
        "{t}"
    );
}

#[tokio::test]
async fn an_edit_is_checked_saved_and_shown_with_where_it_came_from() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(&sim, dir.path(), "interval_business = \"20m\"");

    let doc = json(&run(&sim, dir.path(), &config, &["show", "--json"]));
    assert_eq!(doc["values"]["interval_business"]["value"], "20m");
    assert_eq!(doc["values"]["interval_business"]["from"], "config file");
    assert_eq!(doc["values"]["start"]["from"], "default");

    let out = run(
        &sim,
        dir.path(),
        &config,
        &["set", "interval_business", "45m"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = json(&run(&sim, dir.path(), &config, &["show", "--json"]));
    assert_eq!(doc["values"]["interval_business"]["value"], "45m");
    assert_eq!(doc["values"]["interval_business"]["from"], "saved edit");

    // A bad value names the field and the reason; the saved value stays.
    let out = run(
        &sim,
        dir.path(),
        &config,
        &["set", "interval_business", "5s"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("interval_business: 5s is shorter than the shortest interval"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = run(&sim, dir.path(), &config, &["set", "intervall", "5m"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown schedule key \"intervall\" (known: enabled,"));
    // A check across fields: a floor above the interval.
    let out = run(&sim, dir.path(), &config, &["set", "adaptive", "true"]);
    assert!(out.status.success());
    let out = run(&sim, dir.path(), &config, &["set", "adaptive_floor", "1h"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("adaptive_floor: 1h is longer than interval_business (45m)")
    );

    // Reset drops the edit: the file's value applies again.
    let out = run(&sim, dir.path(), &config, &["reset", "interval_business"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = json(&run(&sim, dir.path(), &config, &["show", "--json"]));
    assert_eq!(doc["values"]["interval_business"]["from"], "config file");
    assert_eq!(doc["values"]["adaptive"]["from"], "saved edit");
}

#[tokio::test]
async fn pause_and_resume_are_kept_in_the_store() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(&sim, dir.path(), "");
    assert!(run(&sim, dir.path(), &config, &["pause"]).status.success());
    let out = run(&sim, dir.path(), &config, &["next"]);
    assert!(
        text(&out.stdout).contains("paused"),
        "{}",
        text(&out.stdout)
    );
    let doc = json(&run(&sim, dir.path(), &config, &["next", "--json"]));
    assert_eq!(doc["paused"], true);
    assert_eq!(doc["runs"].as_array().unwrap().len(), 0);
    assert!(run(&sim, dir.path(), &config, &["resume"]).status.success());
    let doc = json(&run(
        &sim,
        dir.path(),
        &config,
        &["next", "--json", "-n", "3"],
    ));
    assert_eq!(doc["runs"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn while_another_snaptop_holds_the_store_reads_say_so_and_edits_are_refused() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(&sim, dir.path(), "");
    let held = Store::open(&dir.path().join("store"), 8).unwrap();
    let out = run(&sim, dir.path(), &config, &["next", "-n", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is in use by the running snaptop"));
    let out = run(&sim, dir.path(), &config, &["set", "jitter", "5%"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("snaptop: cannot save: store "), "{err}");
    assert!(err.contains("in use by the running snaptop"), "{err}");
    drop(held);
}

#[tokio::test]
async fn a_bad_schedule_in_the_config_names_its_line() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(&sim, dir.path(), "days = \"mon-frx\"");
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("days"))
        .unwrap()
        + 1;
    let out = run(&sim, dir.path(), &config, &["show"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "config.toml:{line}: [schedule] days: \"frx\" is not a day"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_run_missed_while_closed_is_due_now_once_then_the_cadence_from_it() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(&sim, dir.path(), "");
    {
        // The last run: Friday 4 December 2026, 17:30 in Berlin.
        let store = Store::open(&dir.path().join("store"), 8).unwrap();
        let id = store.next_run_id().unwrap();
        let summary = common::run_summary(
            id,
            time::macros::datetime!(2026-12-04 16:30 UTC),
            snaptop::engine::model::Trigger::Scheduled,
        );
        store.commit_run(&summary, None).unwrap();
        store.flush_blocking().unwrap();
    }
    let doc = json(&run(
        &sim,
        dir.path(),
        &config,
        &[
            "next",
            "--from",
            "2026-12-07T09:12:00+01:00",
            "-n",
            "2",
            "--no-jitter",
            "--json",
        ],
    ));
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs[0]["at"], "2026-12-07T09:12:00+01:00");
    assert_eq!(runs[0]["rule"], "missed-run");
    assert_eq!(runs[0]["business_hours"], true);
    assert_eq!(runs[1]["at"], "2026-12-07T09:42:00+01:00");
    assert_eq!(runs[1]["rule"], "business");
}
