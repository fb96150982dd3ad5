//! The report engine on real (and hand-written) Locust CSVs of every generation.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use snaptop::report::locust::read_run;
use snaptop::report::model::{Change, FindingKind, LocustGeneration, RunData, Severity};
use snaptop::report::{ReportError, ReportRequest, build_report, render};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/locust")
        .join(rel)
}

fn read(rel: &str) -> RunData {
    read_run(&[fixture(rel)], None).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn endpoint<'a>(run: &'a RunData, label: &str) -> &'a snaptop::report::model::EndpointStats {
    run.endpoints
        .iter()
        .find(|e| e.label() == label)
        .unwrap_or_else(|| {
            panic!(
                "no {label} in {:?}",
                run.endpoints.iter().map(|e| e.label()).collect::<Vec<_>>()
            )
        })
}

#[test]
fn locust_0_13_requests_and_distribution_are_joined() {
    let run = read("0.13/run");
    assert_eq!(run.generation, Some(LocustGeneration::Legacy));
    assert_eq!(run.endpoints.len(), 3);
    let login = endpoint(&run, "POST /login, \"admin\"");
    assert_eq!((login.requests, login.failures), (400, 12));
    assert_eq!((login.p95_ms, login.p99_ms), (Some(260.0), Some(700.0)));
    let total = run.aggregate.as_ref().expect("the \"None\",\"Total\" row");
    assert_eq!(total.requests, 1690);
    assert_eq!(total.p99_ms, Some(1100.0));
    // "Occurences" (sic) as Locust spelled it before 1.0
    assert_eq!(run.failures[0].occurrences, 12);
    assert!(run.history.is_none());
}

#[test]
fn locust_0_14_percentile_without_percent_sign_and_history() {
    let run = read("0.14/run");
    assert_eq!(run.generation, Some(LocustGeneration::Transitional));
    let search = endpoint(&run, "GET /search?q=\"a,b\"");
    assert_eq!(search.failures_per_sec, Some(1.0));
    let p99_999 = search
        .percentiles
        .iter()
        .find(|p| (p.percent - 99.999).abs() < 1e-9);
    assert_eq!(p99_999.and_then(|p| p.millis), Some(2400.0));
    let history = run.history.as_ref().unwrap();
    assert_eq!(history.rows, 120);
    assert_eq!(history.peak_users, Some(100));
}

#[test]
fn locust_1_x_and_2_x_real_runs() {
    for rel in ["1.6/run", "2.8/run"] {
        let run = read(rel);
        assert_eq!(run.generation, Some(LocustGeneration::Modern), "{rel}");
        assert_eq!(run.endpoints.len(), 3, "{rel}");
        let search = endpoint(&run, "GET /search?q=\"a,b\"");
        assert!(search.requests > 0 && search.p99_ms.is_some(), "{rel}");
        assert_eq!(run.aggregate.as_ref().unwrap().name, "Aggregated");
        let missing = endpoint(&run, "GET /missing");
        assert_eq!(missing.failures, missing.requests, "{rel}");
        // the traceback spans lines inside quotes, the message has a comma and a newline
        let exception = &run.exceptions[0];
        assert!(
            exception
                .message
                .contains("synthetic failure,\nwith a second line"),
            "{rel}"
        );
        assert!(exception.traceback.lines().count() > 3, "{rel}");
        let history = run.history.as_ref().unwrap();
        assert!(
            history
                .endpoints
                .iter()
                .any(|e| e.name == "/search?q=\"a,b\"")
        );
        assert!(
            history
                .endpoints
                .iter()
                .all(|e| e.series.len() <= snaptop::report::locust::MAX_SERIES_POINTS)
        );
    }
}

#[test]
fn locust_2_x_custom_percentiles() {
    let run = read("2.8-custom-percentiles/run");
    let index = endpoint(&run, "GET /index");
    let listed: Vec<f64> = index.percentiles.iter().map(|p| p.percent).collect();
    assert_eq!(
        listed,
        vec![50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 100.0]
    );
    assert_eq!(index.p95_ms, Some(5.0));
    let history = run.history.as_ref().unwrap();
    assert!(history.endpoints.iter().any(|e| e.peak_p95_ms.is_some()));
}

#[test]
fn locust_2_47_failures_with_first_and_last_seen() {
    let run = read("2.47/api");
    assert_eq!(run.endpoints.len(), 6);
    let failure = &run.failures[0];
    assert_eq!(failure.occurrences, 27);
    assert_eq!(failure.first_seen.as_deref(), Some("2026-11-22T11:22:35Z"));
    assert!(run.exceptions.is_empty());
    let history = run.history.as_ref().unwrap();
    assert_eq!(history.rows, 309);
    let dashboard = history
        .endpoints
        .iter()
        .find(|e| e.name == "dashboard_overview")
        .unwrap();
    assert!(dashboard.peak_p95_ms >= dashboard.median_p95_ms);
}

#[test]
fn inputs_as_prefix_directory_or_files() {
    let by_prefix = read("2.8/run");
    let by_dir = read_run(&[fixture("2.8")], None).unwrap();
    assert_eq!(by_prefix.endpoints, by_dir.endpoints);
    let stats_only = read_run(&[fixture("2.8/run_stats.csv")], None).unwrap();
    assert_eq!(stats_only.endpoints, by_prefix.endpoints);
    assert!(stats_only.history.is_none());
    let two = read_run(
        &[
            fixture("2.8/run_stats.csv"),
            fixture("2.8/run_stats_history.csv"),
        ],
        None,
    )
    .unwrap();
    assert!(two.history.is_some());
    // the generation comes from the header, whatever the file is called
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("whatever.csv");
    fs::copy(fixture("0.14/run_stats.csv"), &renamed).unwrap();
    assert_eq!(
        read_run(&[renamed], None).unwrap().generation,
        Some(LocustGeneration::Transitional)
    );
}

#[test]
fn two_runs_in_one_directory_are_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(fixture("2.8/run_stats.csv"), dir.path().join("a_stats.csv")).unwrap();
    fs::copy(fixture("1.6/run_stats.csv"), dir.path().join("b_stats.csv")).unwrap();
    let error = read_run(&[dir.path().to_owned()], None).unwrap_err();
    assert!(matches!(error, ReportError::Ambiguous { .. }), "{error}");
    assert!(error.to_string().contains("prefix"), "{error}");
    let one = read_run(&[dir.path().join("a")], None).unwrap();
    assert_eq!(one.endpoints.len(), 3);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn malformed_files_name_file_line_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let header = fs::read_to_string(fixture("2.47/api_stats.csv")).unwrap();
    let mut lines: Vec<&str> = header.lines().collect();
    lines[3] = "GET,health_check,364,0,2";
    let path = write(dir.path(), "short_stats.csv", &(lines.join("\n") + "\n"));
    let error = read_run(&[path], None).unwrap_err().to_string();
    assert!(
        error.contains("short_stats.csv:4:") && error.contains("expected 22 fields"),
        "{error}"
    );

    let text = header.replacen("GET,health_check,364,", "GET,health_check,lots,", 1);
    let path = write(dir.path(), "word_stats.csv", &text);
    let error = read_run(&[path], None).unwrap_err().to_string();
    assert!(
        error.contains("word_stats.csv:4:")
            && error.contains("\"request count\"")
            && error.contains("lots"),
        "{error}"
    );

    let path = write(dir.path(), "nothing_stats.csv", "");
    let error = read_run(&[path], None).unwrap_err().to_string();
    assert!(
        error.contains("nothing_stats.csv:1:") && error.contains("empty file"),
        "{error}"
    );

    let path = write(dir.path(), "other.csv", "a,b,c\n1,2,3\n");
    let error = read_run(&[path], None).unwrap_err().to_string();
    assert!(error.contains("other.csv:1: not a Locust CSV"), "{error}");
}

#[test]
fn an_empty_run_is_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let header = fs::read_to_string(fixture("2.47/api_stats.csv")).unwrap();
    let first = header.lines().next().unwrap();
    let path = write(
        dir.path(),
        "run_stats.csv",
        &format!(
            "{first}\n,Aggregated,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n"
        ),
    );
    let error = read_run(&[path], None).unwrap_err();
    assert!(matches!(error, ReportError::EmptyRun { .. }));
    assert!(
        error.to_string().contains("no request was recorded"),
        "{error}"
    );
}

/// A history file of several chunks, with quoted names, built from a real one.
fn big_history(dir: &Path, copies: usize, bad_line_at: Option<usize>) -> (PathBuf, usize) {
    let text = fs::read_to_string(fixture("2.8/run_stats_history.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    // Keep one header: a real file repeats it when a run restarts, tested elsewhere.
    let rows: Vec<&str> = lines.filter(|l| *l != header).collect();
    let mut out = String::with_capacity(text.len() * copies);
    out.push_str(header);
    out.push('\n');
    let mut line = 1;
    let mut data_rows = 0;
    for copy in 0..copies {
        for row in &rows {
            line += 1;
            let (t, rest) = row.split_once(',').unwrap();
            let t: i64 = t.parse().unwrap();
            if Some(line) == bad_line_at {
                out.push_str("1,2,3\n");
            } else {
                out.push_str(&format!("{},{rest}\n", t + copy as i64 * 100));
                data_rows += 1;
            }
        }
    }
    let path = dir.join("big_stats_history.csv");
    fs::write(&path, out).unwrap();
    (path, data_rows)
}

#[test]
fn history_across_many_chunks_counts_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, rows) = big_history(dir.path(), 2500, None);
    assert!(fs::metadata(&path).unwrap().len() > 3 * snaptop::report::history::CHUNK_BYTES as u64);
    let history = snaptop::report::history::read_history(&path, None).unwrap();
    assert_eq!(history.rows as usize, rows);
    let per_endpoint: u64 = history.endpoints.iter().map(|e| e.rows).sum();
    assert_eq!(per_endpoint as usize, rows);
    for e in &history.endpoints {
        assert_eq!(e.rows % 2500, 0, "{}: {} rows", e.name, e.rows);
        assert!(e.series.len() <= snaptop::report::history::MAX_SERIES_POINTS);
    }
}

#[test]
fn a_bad_history_line_deep_in_the_file_is_named_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [3, 40_007, 61_234] {
        let (path, _) = big_history(dir.path(), 2500, Some(bad));
        let error = snaptop::report::history::read_history(&path, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("big_stats_history.csv:{bad}:"))
                && error.contains("expected 24 fields"),
            "line {bad}: {error}"
        );
    }
}

#[test]
fn repeated_headers_and_crlf_are_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(fixture("2.47/api_stats_history.csv"))
        .unwrap()
        .replace("\r\n", "\n");
    let header = text.lines().next().unwrap();
    // Ends with a line end as Locust writes it (a last line without one is left out).
    let doubled = format!(
        "{text}{header}\n{}\n",
        text.lines().skip(1).collect::<Vec<_>>().join("\n")
    );
    let crlf = doubled.replace('\n', "\r\n");
    let path = write(dir.path(), "x_stats_history.csv", &crlf);
    let history = snaptop::report::history::read_history(&path, None).unwrap();
    assert_eq!(history.rows, 2 * 309);
    assert!(history.warnings.is_empty(), "{:?}", history.warnings);
}

#[test]
fn report_findings_targets_and_gate_on_the_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let targets = write(
        dir.path(),
        "sla.toml",
        "[targets]\n\"GET webhooks_list\" = [\"p95 < 150\", \"rps > 100\"]\n\"health_check\" = [\"p99 < 50\"]\n\"GET no_such_endpoint\" = [\"p95 < 10\"]\n",
    );
    let request = ReportRequest {
        inputs: vec![fixture("2.47/api")],
        targets: Some(targets),
        ..ReportRequest::default()
    };
    let report = build_report(&request, None).unwrap();
    let has = |endpoint: &str, kind: FindingKind, severity: Severity| {
        report
            .findings
            .iter()
            .any(|f| f.endpoint == endpoint && f.kind == kind && f.severity == severity)
    };
    assert!(has(
        "GET dashboard_overview",
        FindingKind::Latency,
        Severity::Critical
    ));
    assert!(has(
        "GET alerts_list",
        FindingKind::ErrorRate,
        Severity::Critical
    ));
    assert!(has(
        "POST merge_branches",
        FindingKind::Variance,
        Severity::Warning
    ));
    let targets = report.targets.as_ref().unwrap();
    let outcome = |rule: &str| {
        targets
            .outcomes
            .iter()
            .find(|o| o.rule == rule)
            .unwrap()
            .passed
    };
    assert!(outcome("p95 < 150"));
    assert!(!outcome("rps > 100"));
    assert!(outcome("p99 < 50"));
    assert_eq!(targets.warnings.len(), 1);
    assert!(targets.warnings[0].contains("no_such_endpoint"));
    assert!(!report.verdict.passed);
    // every recommendation that names findings names existing ones
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
    for r in &report.recommendations {
        for id in &r.because_of {
            assert!(ids.contains(&id.as_str()), "{id}");
        }
    }
    let merge = report
        .cache_ttls
        .iter()
        .find(|t| t.endpoint == "POST merge_branches")
        .unwrap();
    assert_eq!(merge.ttl_secs, None);
    let dashboard = report
        .cache_ttls
        .iter()
        .find(|t| t.endpoint == "GET dashboard_overview")
        .unwrap();
    assert_eq!(dashboard.ttl_secs, Some(300));
}

#[test]
fn degradation_is_found_in_history() {
    let report = build_report(
        &ReportRequest {
            inputs: vec![fixture("0.14/run")],
            ..ReportRequest::default()
        },
        None,
    )
    .unwrap();
    let degraded = report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Degradation)
        .expect("a degradation finding");
    assert_eq!(degraded.endpoint, "GET /search?q=\"a,b\"");
    let history = report.run.history.as_ref().unwrap();
    let search = history
        .endpoints
        .iter()
        .find(|e| e.name.starts_with("/search"))
        .unwrap();
    let d = search.degradation.as_ref().unwrap();
    assert_eq!(d.offset_secs, 15);
    assert_eq!(d.users_at_start, Some(100.0));
}

#[test]
fn comparing_two_runs() {
    let report = build_report(
        &ReportRequest {
            inputs: vec![fixture("2.8/run")],
            compare_base: Some(vec![fixture("1.6/run")]),
            fail_on_regression: true,
            ..ReportRequest::default()
        },
        None,
    )
    .unwrap();
    let comparison = report.comparison.as_ref().unwrap();
    assert_eq!(comparison.endpoints.len(), 4);
    assert!(comparison.added.is_empty() && comparison.removed.is_empty());
    let index = comparison
        .endpoints
        .iter()
        .find(|e| e.endpoint == "GET /index")
        .unwrap();
    let p99 = index.deltas.iter().find(|d| d.metric == "p99").unwrap();
    // 7 ms → 20 ms: +13 ms, +186%
    assert_eq!(p99.change, Change::Regression);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::Regression)
    );
    assert!(
        report
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("regression"))
    );
}

/// The JSON report of the real Locust 2.47 run, compared with the committed golden file.
/// Set SNAPTOP_UPDATE_GOLDEN=1 to rewrite it after an intended change.
#[test]
fn golden_json_of_the_locust_2_47_run() {
    // `cargo test` runs integration tests from the package root, so this relative path
    // (which appears in the JSON) is the same on every machine.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let request = ReportRequest {
        inputs: vec![PathBuf::from("tests/fixtures/locust/2.47/api")],
        ..ReportRequest::default()
    };
    let json = render::render_json(&build_report(&request, None).unwrap());
    let golden_path = manifest.join("tests/golden/locust-2.47.json");
    if std::env::var_os("SNAPTOP_UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        fs::write(&golden_path, &json).unwrap();
    }
    let golden = fs::read_to_string(&golden_path)
        .expect("tests/golden/locust-2.47.json (SNAPTOP_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        json, golden,
        "the JSON report changed; review and rerun with SNAPTOP_UPDATE_GOLDEN=1"
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    for finding in value["findings"].as_array().unwrap() {
        for key in ["endpoint", "kind", "severity", "value", "threshold"] {
            assert!(
                finding.get(key).is_some(),
                "finding without {key}: {finding}"
            );
        }
    }
}

fn snaptop(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_snaptop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_exit_codes_pass_fail_and_bad_input() {
    let (code, stdout, _) = snaptop(&["report", "tests/fixtures/locust/2.47/api"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with("snaptop report: FAIL"));

    let dir = tempfile::tempdir().unwrap();
    let relaxed = write(
        dir.path(),
        "thresholds.toml",
        "p99_critical_ms = 5000\np99_warning_ms = 1000\nerror_rate_critical_pct = 5\nerror_rate_warning_pct = 3\n",
    );
    let (code, stdout, _) = snaptop(&[
        "report",
        "tests/fixtures/locust/2.47/api",
        "--thresholds",
        relaxed.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with("# Load test report: ✅ PASS"),
        "{stdout}"
    );

    let (code, _, stderr) = snaptop(&["report", "tests/fixtures/locust/nope/run"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no Locust CSV found"), "{stderr}");

    let sla = write(
        dir.path(),
        "sla.toml",
        "[targets]\n\"GET ghost\" = [\"p95 < 1\"]\n",
    );
    let (code, _, stderr) = snaptop(&[
        "report",
        "tests/fixtures/locust/2.47/api",
        "--thresholds",
        relaxed.to_str().unwrap(),
        "--targets",
        sla.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        stderr.contains("warning") && stderr.contains("ghost"),
        "{stderr}"
    );
    let (code, _, _) = snaptop(&[
        "report",
        "tests/fixtures/locust/2.47/api",
        "--thresholds",
        relaxed.to_str().unwrap(),
        "--targets",
        sla.to_str().unwrap(),
        "--strict-targets",
    ]);
    assert_eq!(code, 1);

    let (code, stdout, _) = snaptop(&[
        "report",
        "tests/fixtures/locust/2.47/api",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["verdict"]["passed"], false);
}

/// What the Reports tab does: build on the blocking pool, poll progress, get an owned Report.
#[tokio::test]
async fn async_build_reports_progress_of_the_history_read() {
    let progress = snaptop::report::ReadProgress::default();
    let request = ReportRequest {
        inputs: vec![fixture("2.47/api")],
        ..ReportRequest::default()
    };
    let report = snaptop::report::build_report_async(request, Some(progress.clone()))
        .await
        .unwrap();
    assert_eq!(report.run.endpoints.len(), 6);
    let total = progress
        .bytes_total
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        total,
        fs::metadata(fixture("2.47/api_stats_history.csv"))
            .unwrap()
            .len()
    );
    assert!((progress.fraction() - 1.0).abs() < 1e-9);
}

// ---------------------------------------------------------------------------------------
// A gate never passes on input it could not read (issue 9, items 11–14).
// ---------------------------------------------------------------------------------------

/// The real 2.47 run copied into a temp dir as `api_*`, so a test can damage one file.
fn run_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["stats", "stats_history", "failures", "exceptions"] {
        let name = format!("api_{kind}.csv");
        fs::copy(fixture(&format!("2.47/{name}")), dir.path().join(&name)).unwrap();
    }
    dir
}

/// The binary, killed after 20 s: a FIFO must never block it.
fn snaptop_bounded(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    use std::io::Read as _;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_snaptop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Drained while it runs, so a long report cannot fill the pipe and stall it.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("snaptop {args:?} did not finish in 20 s (blocked on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().unwrap_or(-1),
        stdout.join().unwrap(),
        stderr.join().unwrap(),
    )
}

fn report_cli(inputs: &[PathBuf], extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<std::ffi::OsString> = vec!["report".into()];
    args.extend(inputs.iter().map(|p| p.clone().into_os_string()));
    args.extend(extra.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    snaptop_bounded(&refs)
}

fn stats_text() -> String {
    fs::read_to_string(fixture("2.47/api_stats.csv")).unwrap()
}

/// Thresholds under which the intact 2.47 run passes: a run that silently loses its stats
/// table would pass too, so every "must not pass" case below can fail.
fn relaxed_thresholds(dir: &Path) -> PathBuf {
    write(
        dir,
        "relaxed.toml",
        "p99_critical_ms = 5000\np99_warning_ms = 1000\nerror_rate_critical_pct = 5\nerror_rate_warning_pct = 3\n",
    )
}

/// The three ways to name a run: prefix, directory, and every file listed.
fn input_forms(dir: &Path) -> Vec<(&'static str, Vec<PathBuf>)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("api_"))
        .collect();
    files.sort();
    vec![
        ("prefix", vec![dir.join("api")]),
        ("directory", vec![dir.to_owned()]),
        ("files", files),
    ]
}

/// Removes the column named `name` from every line of a plain (unquoted) CSV text.
fn without_column(text: &str, name: &str) -> String {
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == name).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut cells: Vec<&str> = line.split(',').collect();
        cells.remove(at);
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut bytes = if bom { vec![0xff, 0xfe] } else { Vec::new() };
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

enum Damage {
    Bytes(Vec<u8>),
    Missing,
    Directory,
    Fifo,
}

fn damaged_stats_cases() -> Vec<(&'static str, Damage, &'static str)> {
    let text = stats_text();
    let header_only = format!("{}\r\n", text.lines().next().unwrap());
    let aggregated_only = format!("{header_only}{}\r\n", text.lines().last().unwrap());
    let lines: Vec<&str> = text.lines().collect();
    let row_deleted = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| format!("{l}\r\n"))
        .collect::<String>();
    let b = |s: String| Damage::Bytes(s.into_bytes());
    vec![
        ("missing", Damage::Missing, "api_stats.csv"),
        (
            "typo in Name",
            b(text.replacen(",Name,", ",Nmae,", 1)),
            "`Name`",
        ),
        (
            "typo in Failure Count",
            b(text.replacen("Failure Count", "Failure Cuont", 1)),
            "`Failure Count`",
        ),
        (
            "Request Count deleted",
            b(without_column(&text, "Request Count")),
            "`Request Count`",
        ),
        ("Name deleted", b(without_column(&text, "Name")), "`Name`"),
        (
            "typo in a column the gate does not read",
            b(text.replacen("Average Content Size", "Average Content Sise", 1)),
            "Average Content Sise",
        ),
        ("typo in 99%", b(text.replacen(",99%,", ",9%,", 1)), "9%"),
        (
            "UTF-16 with BOM",
            Damage::Bytes(utf16le(&text, true)),
            "UTF-16",
        ),
        (
            "UTF-16 without BOM",
            Damage::Bytes(utf16le(&text, false)),
            "NUL",
        ),
        ("a directory", Damage::Directory, "directory"),
        ("a FIFO", Damage::Fifo, "FIFO"),
        ("empty", b(String::new()), "no endpoints"),
        ("header only", b(header_only), "no endpoints"),
        ("Aggregated row only", b(aggregated_only), "no endpoints"),
        (
            "a word in a number column",
            b(text.replacen(
                "GET,dashboard_overview,689,0,520,",
                "GET,dashboard_overview,689,0,fast,",
                1,
            )),
            "api_stats.csv:3:",
        ),
        ("an endpoint row deleted", b(row_deleted), "Aggregated"),
    ]
}

fn apply(dir: &Path, damage: &Damage) -> bool {
    let stats = dir.join("api_stats.csv");
    fs::remove_file(&stats).unwrap();
    match damage {
        Damage::Bytes(bytes) => fs::write(&stats, bytes).unwrap(),
        Damage::Missing => {}
        Damage::Directory => fs::create_dir(&stats).unwrap(),
        Damage::Fifo => {
            let made = Command::new("mkfifo").arg(&stats).status();
            if !made.is_ok_and(|s| s.success()) {
                eprintln!("mkfifo unavailable: FIFO case skipped");
                return false;
            }
        }
    }
    true
}

#[test]
fn cli_never_passes_when_the_stats_table_cannot_be_read() {
    let thresholds_dir = tempfile::tempdir().unwrap();
    let relaxed = relaxed_thresholds(thresholds_dir.path());
    let relaxed = relaxed.to_str().unwrap();
    // The intact run passes under these thresholds, in every input form.
    let intact = run_copy();
    for (form, inputs) in input_forms(intact.path()) {
        let (code, stdout, stderr) = report_cli(&inputs, &["--thresholds", relaxed]);
        assert_eq!(code, 0, "intact run, {form}: {stdout}{stderr}");
    }
    for (case, damage, named) in damaged_stats_cases() {
        let dir = run_copy();
        if !apply(dir.path(), &damage) {
            continue;
        }
        for (form, inputs) in input_forms(dir.path()) {
            let (code, stdout, stderr) = report_cli(&inputs, &["--thresholds", relaxed]);
            assert_eq!(code, 2, "{case}, {form}: exit {code}\n{stdout}\n{stderr}");
            assert!(!stdout.contains("PASS"), "{case}, {form}: {stdout}");
            assert!(
                stderr.contains(named),
                "{case}, {form}: stderr should name {named:?}: {stderr}"
            );
        }
    }
}

#[test]
fn an_unidentified_file_names_the_file_and_the_headers_expected() {
    let dir = run_copy();
    let stats = dir.path().join("api_stats.csv");
    fs::write(&stats, stats_text().replacen(",Name,", ",Nmae,", 1)).unwrap();
    let (code, _, stderr) = report_cli(std::slice::from_ref(&stats), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("api_stats.csv:1: not a Locust stats file: no `Name` column")
            && stderr.contains("expected Type,Name,Request Count,"),
        "{stderr}"
    );
    // A file whose name says nothing is compared with the closest kind.
    let other = write(dir.path(), "other.csv", "a,b,c\n1,2,3\n");
    let (code, _, stderr) = report_cli(&[other], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("other.csv:1: not a Locust CSV") && stderr.contains("expected"),
        "{stderr}"
    );
    // With only the failures and history of a run, the missing stats file is named.
    let (code, _, stderr) = report_cli(
        &[
            dir.path().join("api_failures.csv"),
            dir.path().join("api_stats_history.csv"),
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("stats"), "{stderr}");
}

#[test]
fn a_utf8_byte_order_mark_still_reads() {
    let dir = run_copy();
    for kind in ["stats", "stats_history", "failures"] {
        let path = dir.path().join(format!("api_{kind}.csv"));
        let mut bytes = vec![0xef, 0xbb, 0xbf];
        bytes.extend(fs::read(&path).unwrap());
        fs::write(&path, bytes).unwrap();
    }
    let with_bom = read_run(&[dir.path().join("api")], None).unwrap();
    let plain = read("2.47/api");
    assert_eq!(with_bom.endpoints, plain.endpoints);
    assert_eq!(with_bom.failures, plain.failures);
    assert_eq!(
        with_bom.history.as_ref().map(|h| h.rows),
        plain.history.as_ref().map(|h| h.rows)
    );
}

/// The Reports tab builds its report with the same engine: it gets the error too.
#[tokio::test]
async fn the_reports_tab_engine_refuses_what_the_cli_refuses() {
    let dir = run_copy();
    fs::remove_file(dir.path().join("api_stats.csv")).unwrap();
    let request = ReportRequest {
        inputs: vec![dir.path().join("api")],
        ..ReportRequest::default()
    };
    let error = snaptop::report::build_report_async(request, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("api_stats.csv"), "{error}");
}

// --- item 12: bounded records and tables -------------------------------------------------

const OVER_THE_CAP: usize = 3 * 1024 * 1024;

#[test]
fn records_over_the_cap_are_refused_naming_file_line_and_cap() {
    let long = "x".repeat(OVER_THE_CAP);
    let stats = stats_text();
    let mut stats_lines: Vec<String> = stats.lines().map(str::to_owned).collect();
    stats_lines[2] = stats_lines[2].replacen("dashboard_overview", &long, 1);
    let failures = fs::read_to_string(fixture("2.47/api_failures.csv")).unwrap();
    let history = fs::read_to_string(fixture("2.47/api_stats_history.csv")).unwrap();
    let mut history_lines: Vec<String> = history.lines().map(str::to_owned).collect();
    let mut cells: Vec<&str> = history_lines[4].split(',').collect();
    cells[3] = &long;
    history_lines[4] = cells.join(",");
    let cases: Vec<(&str, String, u64)> = vec![
        ("api_stats.csv", stats_lines.join("\r\n") + "\r\n", 3),
        (
            "api_failures.csv",
            failures.replacen("HTTPError(", &format!("HTTPError({long}"), 1),
            2,
        ),
        (
            "api_exceptions.csv",
            format!("Count,Message,Traceback,Nodes\r\n3,boom,\"{long}\",local\r\n"),
            2,
        ),
        (
            "api_stats_history.csv",
            history_lines.join("\r\n") + "\r\n",
            5,
        ),
        // no line break at all
        ("api_stats.csv", long.clone(), 1),
        ("api_failures.csv", long.clone(), 1),
        ("api_stats_history.csv", long.clone(), 1),
    ];
    for (name, text, line) in cases {
        let dir = run_copy();
        fs::write(dir.path().join(name), &text).unwrap();
        let (code, _, stderr) = report_cli(&[dir.path().join("api")], &[]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}:{line}: record longer than 1 MiB")),
            "{name}: {stderr}"
        );
    }
    // 0.13's requests and distribution files
    for name in ["run_requests.csv", "run_distribution.csv"] {
        let dir = tempfile::tempdir().unwrap();
        for f in ["run_requests.csv", "run_distribution.csv"] {
            fs::copy(fixture(&format!("0.13/{f}")), dir.path().join(f)).unwrap();
        }
        let text = fs::read_to_string(dir.path().join(name)).unwrap();
        fs::write(
            dir.path().join(name),
            text.replacen("/reports/slow", &long, 1),
        )
        .unwrap();
        let (code, _, stderr) = report_cli(&[dir.path().join("run")], &[]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}:4: record longer than 1 MiB")),
            "{name}: {stderr}"
        );
    }
    // targets and thresholds files
    let dir = run_copy();
    let toml = write(dir.path(), "big.toml", &format!("# {long}\n"));
    for flag in ["--targets", "--thresholds"] {
        let (code, _, stderr) =
            report_cli(&[dir.path().join("api")], &[flag, toml.to_str().unwrap()]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(
            stderr.contains("big.toml") && stderr.contains("longer than 1 MiB"),
            "{flag}: {stderr}"
        );
    }
}

#[test]
fn too_many_endpoints_is_an_error_not_a_silent_cut() {
    let cap = snaptop::report::locust::MAX_STATS_ENDPOINTS;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
         Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,95%,99%\n",
    );
    for i in 0..=cap {
        text.push_str(&format!("GET,/e{i},1,0,1,1,1,1,0,0.1,0,1,1,1\n"));
    }
    text.push_str(&format!(",Aggregated,{},0,1,1,1,1,0,1,0,1,1,1\n", cap + 1));
    let path = write(dir.path(), "many_stats.csv", &text);
    let (code, _, stderr) = report_cli(&[path], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("many_stats.csv") && stderr.contains(&format!("{cap}")),
        "{stderr}"
    );
}

// --- item 13: nothing from the files reaches the terminal raw ----------------------------

const HOSTILE_NAMES: &[&str] = &[
    "\u{1b}]0;pwned\u{7}title",
    "\u{1b}[2J\u{1b}[31mred\u{1b}[0m",
    "\u{9b}31mc1",
    "\u{202e}desrever",
    "a|b|c",
    "[click](http://evil.example)",
    "<!-- hide the rest",
    "x\nsnaptop report: PASS",
];

fn hostile_run(dir: &Path) -> PathBuf {
    let header = stats_text().lines().next().unwrap().to_owned();
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut text = format!("{header}\r\n");
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        text.push_str(&format!(
            "GET,{},100,{},10,10,1,900,11,5.0,0.0,10,10,10,10,10,10,10,800,900,900,900\r\n",
            quote(name),
            i % 2
        ));
    }
    let n = HOSTILE_NAMES.len();
    text.push_str(&format!(
        ",Aggregated,{},{},10,10,1,900,11,40.0,0.0,10,10,10,10,10,10,10,800,900,900,900\r\n",
        100 * n,
        n / 2
    ));
    write(dir, "evil_stats.csv", &text);
    let mut failures = String::from("Method,Name,Error,Occurrences\r\n");
    for name in HOSTILE_NAMES {
        failures.push_str(&format!("GET,{},{},1\r\n", quote(name), quote(name)));
    }
    write(dir, "evil_failures.csv", &failures);
    dir.join("evil")
}

fn assert_terminal_safe(what: &str, out: &str) {
    for c in out.chars() {
        let acts_on_a_terminal = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(
            !acts_on_a_terminal,
            "{what}: {c:?} reached the output:\n{out}"
        );
    }
    for leftover in ["]0;", "pwned\u{7}", "[2J", "[31m"] {
        assert!(!out.contains(leftover), "{what}: {leftover:?} in\n{out}");
    }
    // A name cannot forge a line of the report.
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with("snaptop report: PASS"))
            .count(),
        0,
        "{what}: a forged verdict line\n{out}"
    );
}

#[test]
fn text_and_markdown_never_emit_escape_sequences_from_names() {
    let dir = tempfile::tempdir().unwrap();
    let run = hostile_run(dir.path());
    let targets = write(
        dir.path(),
        "sla.toml",
        "[targets]\n\"GET \\u001b]0;t\\u0007x|y\" = [\"p95 < 150\"]\n\"*\" = [\"p99 < 5000\"]\n",
    );
    let targets = targets.to_str().unwrap();
    for format in ["text", "markdown"] {
        let (code, stdout, stderr) = report_cli(
            std::slice::from_ref(&run),
            &["--format", format, "--targets", targets],
        );
        assert_eq!(code, 1, "{format}: {stdout}{stderr}");
        assert_terminal_safe(format, &stdout);
        assert_terminal_safe(&format!("{format} stderr"), &stderr);
        assert!(
            stdout.contains("title") && stdout.contains("desrever"),
            "{stdout}"
        );
    }
    // Markdown: a name cannot add cells to a table row.
    let (_, md, _) = report_cli(std::slice::from_ref(&run), &["--format", "markdown"]);
    let unescaped_pipes = |line: &str| {
        let bytes = line.as_bytes();
        (0..bytes.len())
            .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
            .count()
    };
    let mut table_width = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let n = unescaped_pipes(line);
            let width = *table_width.get_or_insert(n);
            assert_eq!(n, width, "a row with another cell count: {line}");
        } else {
            table_width = None;
        }
    }
    // escaped brackets and angle brackets are literal text
    assert!(
        !md.replace("\\]", "").contains("](http"),
        "a live link: {md}"
    );
    assert!(
        !md.replace("\\<", "").contains("<!--"),
        "an HTML comment: {md}"
    );
    // JSON keeps the names exactly, escaped.
    let (_, json, _) = report_cli(&[run], &["--format", "json"]);
    for c in json.chars() {
        assert!(!c.is_control() || c == '\n', "{c:?} raw in the JSON");
    }
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = value["run"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, HOSTILE_NAMES);
}

#[test]
fn error_messages_quoting_file_contents_are_sanitised() {
    let dir = tempfile::tempdir().unwrap();
    let text = stats_text().replacen(
        "GET,health_check,364,",
        "GET,health_check,\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}364,",
        1,
    );
    let path = write(dir.path(), "bad\u{1b}[31m_stats.csv", &text);
    let (code, _, stderr) = report_cli(&[path], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(":4:"), "{stderr}");
    assert_terminal_safe("stderr", &stderr);
}

// --- item 14: files Locust is still writing ----------------------------------------------

/// `text` with its last line cut in the middle (no line end).
fn cut_last_line(text: &str) -> String {
    let body = text.trim_end_matches(['\r', '\n']);
    let last_start = body.rfind('\n').map_or(0, |i| i + 1);
    let keep = last_start + (body.len() - last_start) / 2;
    body[..keep].to_owned()
}

#[test]
fn a_history_still_being_written_is_read_with_a_warning() {
    let dir = run_copy();
    let path = dir.path().join("api_stats_history.csv");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, cut_last_line(&text)).unwrap();
    let lines = text.trim_end().lines().count();

    let history = snaptop::report::history::read_history(&path, None).unwrap();
    assert_eq!(history.rows, 309 - 1);
    assert_eq!(history.warnings.len(), 1, "{:?}", history.warnings);
    assert!(
        history.warnings[0].contains(&format!("api_stats_history.csv:{lines}:"))
            && history.warnings[0].contains("last line incomplete"),
        "{:?}",
        history.warnings
    );

    // The CLI judges the run as if the file were whole, and says what it ignored.
    let (code, stdout, stderr) = report_cli(&[dir.path().join("api")], &["--format", "json"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("last line incomplete"),
        "{stderr}"
    );
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let warnings = value["warnings"].as_array().expect("a warnings array");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("last line incomplete")),
        "{warnings:?}"
    );

    // A malformed line anywhere else is still an error.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[100] = "1795346560,10,GET,alerts_list,1.0";
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (code, _, stderr) = report_cli(&[dir.path().join("api")], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("api_stats_history.csv:101:"), "{stderr}");
}

#[test]
fn a_stats_file_caught_mid_rewrite_is_an_error_a_whole_one_without_line_end_is_read() {
    let dir = run_copy();
    let path = dir.path().join("api_stats.csv");
    let text = stats_text();
    fs::write(&path, cut_last_line(&text)).unwrap();
    let (code, _, stderr) = report_cli(&[dir.path().join("api")], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("api_stats.csv:8:") && stderr.contains("last line incomplete"),
        "{stderr}"
    );
    // Whole rows, only the last line end missing: read, with a warning.
    fs::write(&path, text.trim_end()).unwrap();
    let (code, _, stderr) = report_cli(&[dir.path().join("api")], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("api_stats.csv:8:") && stderr.contains("no line end"),
        "{stderr}"
    );
}

#[test]
fn a_failures_file_still_being_written_is_read_with_a_warning() {
    let dir = run_copy();
    let path = dir.path().join("api_failures.csv");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, cut_last_line(&text)).unwrap();
    let run = read_run(&[dir.path().join("api")], None).unwrap();
    assert!(run.failures.is_empty());
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("api_failures.csv:2:") && w.contains("last line incomplete")),
        "{:?}",
        run.warnings
    );
}

// --- found by the fuzz: figures the gate needs but cannot read --------------------------

#[test]
fn a_missing_figure_in_a_row_with_requests_is_an_error() {
    let dir = run_copy();
    // alerts_list's 99% (420) as N/A: Locust writes N/A only in rows without requests
    let text = stats_text().replacen(",390,420,440,", ",390,N/A,440,", 1);
    fs::write(dir.path().join("api_stats.csv"), text).unwrap();
    let thresholds = relaxed_thresholds(dir.path());
    let (code, _, stderr) = report_cli(
        &[dir.path().join("api")],
        &["--thresholds", thresholds.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("api_stats.csv:2:") && stderr.contains("\"99%\""),
        "{stderr}"
    );
}

#[test]
fn an_unknown_p99_fails_the_gate_instead_of_passing_it() {
    let dir = run_copy();
    fs::write(
        dir.path().join("api_stats.csv"),
        without_column(&stats_text(), "99%"),
    )
    .unwrap();
    let thresholds = relaxed_thresholds(dir.path());
    let (code, stdout, stderr) = report_cli(
        &[dir.path().join("api")],
        &["--thresholds", thresholds.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("latency not judged"), "{stdout}");
    assert!(
        stderr.contains("no endpoint has a 99% percentile"),
        "{stderr}"
    );
}

#[test]
fn files_locust_has_not_flushed_yet_are_left_out_with_a_warning() {
    // Locust flushes its CSVs every few seconds: early in a run they can be empty.
    let dir = run_copy();
    for kind in ["stats_history", "failures", "exceptions"] {
        fs::write(dir.path().join(format!("api_{kind}.csv")), "").unwrap();
    }
    for (form, inputs) in input_forms(dir.path()) {
        let (code, stdout, stderr) = report_cli(&inputs, &[]);
        assert_eq!(code, 1, "{form}: {stdout}{stderr}");
        for kind in ["stats_history", "failures", "exceptions"] {
            assert!(
                stderr.contains(&format!("api_{kind}.csv: empty")),
                "{form}: {stderr}"
            );
        }
    }
}
