//! JMeter `.jtl` reports: the fixtures of tests/fixtures/jmeter (written from JMeter 5.x's
//! documented CSV format, see its README), checked against figures computed here by
//! sorting, and the whole report path (CLI, targets, compare with Locust, golden JSON).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use snaptop::report::model::{EndpointStats, FindingKind, RunData};
use snaptop::report::samples::{LatencyUnit, Sample, SampleAggregator, SampleOptions};
use snaptop::report::{ReportRequest, build_report, input, render};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from("tests/fixtures/jmeter").join(name)
}

fn read_with(path: &Path, options: &SampleOptions) -> RunData {
    input::read_run(&[path.to_owned()], options, None)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(name: &str) -> RunData {
    read_with(&fixture(name), &SampleOptions::default())
}

fn error_of(path: &Path, options: &SampleOptions) -> String {
    input::read_run(&[path.to_owned()], options, None)
        .err()
        .unwrap_or_else(|| panic!("{} read without an error", path.display()))
        .to_string()
}

fn endpoint<'a>(run: &'a RunData, name: &str) -> &'a EndpointStats {
    run.endpoints
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no endpoint {name}"))
}

/// An endpoint's name, requests, failures, p50, p99 and max.
type Figures = (String, u64, u64, Option<f64>, Option<f64>, Option<f64>);

/// The figures compared between two reads of the same samples.
fn figures(run: &RunData) -> Vec<Figures> {
    run.endpoints
        .iter()
        .chain(run.aggregate.iter())
        .map(|e| {
            (
                e.name.clone(),
                e.requests,
                e.failures,
                e.p50_ms,
                e.p99_ms,
                e.max_ms,
            )
        })
        .collect()
}

/// Rows of the default fixture, parsed with the csv crate: (label, elapsed, success).
fn default_rows() -> Vec<(String, f64, bool)> {
    let mut reader = csv::Reader::from_path(fixture("default-5.x.jtl")).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[2].to_owned(), r[1].parse().unwrap(), &r[7] == "true")
        })
        .collect()
}

fn nearest_rank(sorted: &[f64], percent: f64) -> f64 {
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

#[test]
fn default_5x_columns_give_exact_counts_and_percentiles() {
    let run = read("default-5.x.jtl");
    let rows = default_rows();
    assert_eq!(run.aggregate.as_ref().unwrap().requests, rows.len() as u64);
    assert_eq!(run.endpoints.len(), 6);
    for e in &run.endpoints {
        assert_eq!(e.method, "", "JMeter has no method column");
        let mut values: Vec<f64> = rows.iter().filter(|r| r.0 == e.name).map(|r| r.1).collect();
        values.sort_by(f64::total_cmp);
        let failures = rows.iter().filter(|r| r.0 == e.name && !r.2).count() as u64;
        assert_eq!(e.requests, values.len() as u64, "{}", e.name);
        assert_eq!(e.failures, failures, "{}", e.name);
        // whole milliseconds under 2,048 are exact in the HDR histogram; above, within
        // its 3 significant digits
        for p in &e.percentiles {
            let want = nearest_rank(&values, p.percent);
            let got = p.millis.unwrap();
            assert!(
                (got - want).abs() <= want / 1000.0,
                "{} p{}: {got} vs {want}",
                e.name,
                p.percent
            );
        }
        assert_eq!(e.p99_ms, Some(nearest_rank(&values, 99.0)), "{}", e.name);
        assert_eq!(e.max_ms, values.last().copied());
    }
    let history = run.history.as_ref().unwrap();
    assert_eq!(history.peak_users, Some(10));
    assert!(history.timeline.iter().all(|p| p.width_secs == 5));
    assert!(history.endpoints.iter().any(|e| e.name == "Aggregated"));
    // the dashboard's error keys
    let errors: Vec<&str> = run.failures.iter().map(|f| f.error.as_str()).collect();
    assert!(errors.contains(&"500/Internal Server Error"), "{errors:?}");
    assert!(
        errors.contains(&"Test failed: text expected to contain /\"merged\": true/"),
        "{errors:?}"
    );
    assert!(
        run.failures
            .iter()
            .all(|f| f.first_seen.as_deref().is_some_and(|t| t.ends_with('Z')))
    );
}

#[test]
fn save_service_variants_read_the_same_samples() {
    let reference = read("crlf.jtl");
    assert_eq!(reference.aggregate.as_ref().unwrap().requests, 300);
    for name in [
        "semicolon.jtl",
        "tab.jtl",
        "date-pattern.jtl",
        "minimal-columns.jtl",
        "reordered-variables.jtl",
        "short-header.jtl",
    ] {
        let run = read(name);
        assert_eq!(figures(&run), figures(&reference), "{name}");
    }
    let columns = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,\
                   success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,\
                   IdleTime,Connect";
    let options = SampleOptions {
        jtl_columns: Some(columns.split(',').map(str::to_owned).collect()),
        ..SampleOptions::default()
    };
    let run = read_with(&fixture("no-header.jtl"), &options);
    assert_eq!(figures(&run), figures(&reference));
    // the date pattern given instead of detected
    let options = SampleOptions {
        timestamp_format: Some("yyyy/MM/dd HH:mm:ss.SSS".into()),
        ..SampleOptions::default()
    };
    let dated = read_with(&fixture("date-pattern.jtl"), &options);
    assert_eq!(dated.history, reference.history);
}

#[test]
fn a_file_without_its_header_needs_its_columns() {
    let error = error_of(&fixture("no-header.jtl"), &SampleOptions::default());
    assert!(
        error.contains("no-header.jtl:1:")
            && error.contains("--jtl-columns")
            && error.contains("print_field_names=false"),
        "{error}"
    );
}

#[test]
fn missing_success_column_counts_failures_by_response_code() {
    let run = read("no-success-column.jtl");
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("no \"success\" column")),
        "{:?}",
        run.warnings
    );
    // 500s are still failures; assertion failures (code 200) are not visible
    assert_eq!(endpoint(&run, "merge_branches").failures, 0);
}

#[test]
fn empty_truncated_and_non_utf8_files() {
    let error = error_of(&fixture("empty.jtl"), &SampleOptions::default());
    assert!(
        error.contains("empty.jtl:1: empty file") && error.contains("timeStamp,elapsed"),
        "{error}"
    );
    let run = read("truncated.jtl");
    assert_eq!(run.aggregate.as_ref().unwrap().requests, 299);
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("truncated.jtl:301: last line incomplete")),
        "{:?}",
        run.warnings
    );
    let run = read("latin1-labels.jtl");
    assert_eq!(run.endpoints.len(), 6);
    assert!(
        run.endpoints
            .iter()
            .all(|e| e.name.starts_with("caf\u{fffd}_"))
    );
}

#[test]
fn transaction_controller_samples_are_kept_out_of_the_total() {
    let run = read("transactions.jtl");
    let names: Vec<&str> = run.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["Checkout", "Home", "Home-0", "Home-1", "cart", "pay"]
    );
    let checkout = endpoint(&run, "Checkout");
    assert_eq!((checkout.requests, checkout.failures), (120, 4));
    // the total counts every sample but the transactions (as the dashboard's Total)
    let total = run.aggregate.as_ref().unwrap();
    assert_eq!((total.requests, total.failures), (600, 4));
    assert!(run.failures.iter().all(|f| f.name != "Checkout"));
    assert_eq!(run.failures.len(), 1);
    assert_eq!(run.failures[0].name, "pay");
}

#[test]
fn input_format_comes_from_the_content_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("api_stats.csv");
    fs::copy(fixture("default-5.x.jtl"), &renamed).unwrap();
    let run = read_with(&renamed, &SampleOptions::default());
    assert_eq!(run.generation, None);
    assert_eq!(run.endpoints.len(), 6);
    let locust = dir.path().join("results.jtl");
    fs::copy("tests/fixtures/locust/2.47/api_stats.csv", &locust).unwrap();
    let run = read_with(&locust, &SampleOptions::default());
    assert!(run.generation.is_some());
}

/// Writes `rows` copies of the default fixture's rows, with quoted line breaks in some
/// failure messages, so chunk boundaries fall inside and beside quoted records.
fn big_file(dir: &Path, copies: usize, bad_at: Option<usize>) -> (PathBuf, Vec<String>) {
    let text = fs::read_to_string(fixture("default-5.x.jtl")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_owned();
    let body: Vec<&str> = lines.collect();
    let mut out = String::with_capacity(text.len() * copies);
    out.push_str(&header);
    out.push('\n');
    let mut rows = Vec::new();
    let mut line_no = 1;
    for copy in 0..copies {
        for (i, row) in body.iter().enumerate() {
            let mut fields: Vec<String> = row.split(',').map(str::to_owned).collect();
            if fields.len() != 17 {
                // a row with a quoted comma: kept as written
                out.push_str(row);
                out.push('\n');
                line_no += 1;
                rows.push(row.to_string());
                continue;
            }
            let t: i64 = fields[0].parse().unwrap();
            fields[0] = (t + copy as i64 * 70_000).to_string();
            if (i + copy) % 97 == 0 {
                fields[7] = "false".into();
                fields[8] = format!("\"Expected: merged\nActual: \"\"open\"\", copy {copy}\"");
            }
            line_no += 1;
            if bad_at == Some(line_no) {
                fields[1] = "fast".into();
            }
            let row = fields.join(",");
            line_no += row.matches('\n').count();
            out.push_str(&row);
            out.push('\n');
            rows.push(row);
        }
    }
    let path = dir.join("big.jtl");
    fs::write(&path, out).unwrap();
    (path, rows)
}

#[test]
fn parallel_chunks_with_quoted_line_breaks_equal_one_sequential_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = big_file(dir.path(), 40, None);
    assert!(fs::metadata(&path).unwrap().len() > 6 * 1024 * 1024);
    let parallel = read_with(&path, &SampleOptions::default());
    // the same samples, parsed by the csv crate and fed to one aggregator in order
    let mut one = SampleAggregator::new(5, LatencyUnit::Millis);
    let mut reader = csv::Reader::from_path(&path).unwrap();
    for record in reader.records() {
        let r = record.unwrap();
        let ok = &r[7] == "true";
        let error = if ok {
            String::new()
        } else if r[3] == *"200" {
            r[8].to_owned()
        } else {
            format!("{}/{}", &r[3], &r[4])
        };
        one.record(&Sample {
            method: b"",
            name: r[2].as_bytes(),
            timestamp_ms: r[0].parse().unwrap(),
            elapsed_ms: r[1].parse().unwrap(),
            ok,
            error: error.as_bytes(),
            users: r[12].parse().ok(),
        });
    }
    let mut sequential = one.finish(&path, "x").unwrap();
    let mut parallel = parallel;
    sequential.notes.clear();
    parallel.notes.clear();
    assert_eq!(parallel, sequential);
    assert!(
        parallel
            .failures
            .iter()
            .any(|f| f.error.contains("Expected: merged\nActual: \"open\""))
    );
}

#[test]
fn a_bad_row_deep_in_the_file_is_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_line = 40_000;
    let (path, _) = big_file(dir.path(), 40, Some(bad_line));
    let error = error_of(&path, &SampleOptions::default());
    assert!(
        error.contains(&format!("big.jtl:{bad_line}: expected milliseconds"))
            && error.contains("\"fast\""),
        "{error}"
    );
}

#[test]
fn a_record_over_the_cap_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.jtl");
    let text = fs::read_to_string(fixture("crlf.jtl")).unwrap();
    let mut bytes: Vec<u8> = text
        .lines()
        .take(3)
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    bytes.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
    bytes.extend_from_slice(b"\n");
    fs::write(&path, &bytes).unwrap();
    let error = error_of(&path, &SampleOptions::default());
    assert!(
        error.contains("long.jtl:4: record longer than 1 MiB"),
        "{error}"
    );
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
fn cli_formats_targets_bucket_and_exit_codes() {
    let jtl = "tests/fixtures/jmeter/default-5.x.jtl";
    let (code, stdout, _) = snaptop(&["report", jtl]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("degradation webhooks_list"), "{stdout}");
    let (code, stdout, _) = snaptop(&["report", jtl, "--format", "markdown"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("alerts\\_list"), "{stdout}");
    let (code, stdout, _) = snaptop(&["report", jtl, "--format", "json", "--bucket", "10s"]);
    assert_eq!(code, 1);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["run"]["history"]["timeline"][0]["width_secs"], 10);

    let dir = tempfile::tempdir().unwrap();
    let relaxed = dir.path().join("thresholds.toml");
    fs::write(
        &relaxed,
        "p99_critical_ms = 100000.0\np99_warning_ms = 100000.0\nerror_rate_critical_pct = 50.0\n\
         error_rate_warning_pct = 50.0\n",
    )
    .unwrap();
    let pass = dir.path().join("pass.toml");
    fs::write(&pass, "[targets]\n\"health_check\" = [\"p95 < 50\"]\n").unwrap();
    let fail = dir.path().join("fail.toml");
    fs::write(
        &fail,
        "[targets]\n\"dashboard_overview\" = [\"p95 < 50\"]\n",
    )
    .unwrap();
    let relaxed = relaxed.to_str().unwrap();
    let (code, stdout, stderr) = snaptop(&[
        "report",
        jtl,
        "--thresholds",
        relaxed,
        "--targets",
        pass.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) = snaptop(&[
        "report",
        jtl,
        "--thresholds",
        relaxed,
        "--targets",
        fail.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    let (code, _, stderr) = snaptop(&["report", "tests/fixtures/jmeter/no-header.jtl"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no-header.jtl:1:"), "{stderr}");
    let (code, _, stderr) = snaptop(&["report", jtl, "--bucket", "0s"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn a_locust_run_compared_with_a_jmeter_run_pairs_endpoints_by_name() {
    let request = ReportRequest {
        inputs: vec![fixture("default-5.x.jtl")],
        compare_base: Some(vec![PathBuf::from("tests/fixtures/locust/2.47/api")]),
        ..ReportRequest::default()
    };
    let report = build_report(&request, None).unwrap();
    let comparison = report.comparison.as_ref().unwrap();
    let paired: Vec<&str> = comparison
        .endpoints
        .iter()
        .map(|e| e.endpoint.as_str())
        .collect();
    assert!(paired.contains(&"Aggregated"), "{paired:?}");
    assert!(
        paired.contains(&"alerts_list (base: GET alerts_list)"),
        "{paired:?}"
    );
    assert!(
        paired.contains(&"merge_branches (base: POST merge_branches)"),
        "{paired:?}"
    );
    assert_eq!(comparison.endpoints.len(), 7, "{paired:?}");
    assert!(comparison.added.is_empty() && comparison.removed.is_empty());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::Regression),
        "webhooks_list is slower in the JMeter run"
    );
}

/// The JSON report of the default JMeter fixture, compared with the committed golden file.
/// Set SNAPTOP_UPDATE_GOLDEN=1 to rewrite it after an intended change.
#[test]
fn golden_json_of_the_jmeter_5x_fixture() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let request = ReportRequest {
        inputs: vec![fixture("default-5.x.jtl")],
        ..ReportRequest::default()
    };
    let json = render::render_json(&build_report(&request, None).unwrap());
    let golden_path = manifest.join("tests/golden/jmeter-5.x.json");
    if std::env::var_os("SNAPTOP_UPDATE_GOLDEN").is_some() {
        fs::write(&golden_path, &json).unwrap();
    }
    let golden = fs::read_to_string(&golden_path)
        .expect("tests/golden/jmeter-5.x.json (SNAPTOP_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        json, golden,
        "the JSON report changed; review and rerun with SNAPTOP_UPDATE_GOLDEN=1"
    );
}
