//! Random bytes and random mutations of real Locust files never panic the reader, and a
//! damaged stats table never gets a verdict it did not earn.
//!
//! A seeded loop (reproducible: the seed and case are in every failure message) instead
//! of a fuzzing crate, so it runs in `cargo test` in a few seconds.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snaptop::report::model::Report;
use snaptop::report::{ReportRequest, build_report, render};

const SEED: u64 = 0x5EED_2026;
const RANDOM_CASES: usize = 150;
const MUTATION_CASES: usize = 600;

fn fixture_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locust");
    let mut files = Vec::new();
    for generation in fs::read_dir(root).unwrap() {
        let dir = generation.unwrap().path();
        if dir.is_dir() {
            for file in fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|x| x == "csv") {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files
}

/// Bytes that matter to CSV and to Locust's cells.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b",",
    b"\n",
    b"\r\n",
    b"N/A",
    b"-",
    b".",
    b"\"\"",
    b"\xff\xfe",
    b"1e309",
    b"",
];

fn mutate(rng: &mut StdRng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..6) {
        if bytes.is_empty() {
            bytes.push(b'x');
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..6) {
            0 => bytes[at] = rng.random(),
            1 => {
                let piece = INTERESTING[rng.random_range(0..INTERESTING.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
            2 => {
                let end = (at + rng.random_range(1..40)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => bytes.truncate(at),
            4 => {
                // duplicate a slice (repeated rows, repeated headers)
                let end = (at + rng.random_range(1..200)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {
                let piece = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let end = (at + piece.len()).min(bytes.len());
                bytes.splice(at..end, piece.iter().copied());
            }
        }
    }
    bytes
}

fn must_not_panic(path: &Path, what: &str) {
    let request = ReportRequest {
        inputs: vec![path.to_owned()],
        ..ReportRequest::default()
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| build_report(&request, None)));
    assert!(
        outcome.is_ok(),
        "the reader panicked on {what} (seed {SEED:#x})"
    );
    if let Ok(Err(error)) = outcome {
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let dir = tempfile::tempdir().unwrap();
    for case in 0..RANDOM_CASES {
        let len = rng.random_range(0..2048);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // half the cases start with a real header, so the parser gets past it
        if case % 2 == 0 {
            let header: &[u8] = if case % 4 == 0 {
                b"Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%\n"
            } else {
                b"Type,Name,Request Count,Failure Count,Median Response Time,Max Response Time,Requests/s,50%,99%\n"
            };
            bytes.splice(0..0, header.iter().copied());
        }
        let path = dir.path().join(format!("case{case}.csv"));
        fs::write(&path, &bytes).unwrap();
        must_not_panic(&path, &format!("random case {case}"));
    }
}

#[test]
fn mutated_real_files_never_panic() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let files = fixture_files();
    assert!(files.len() >= 15, "{files:?}");
    let dir = tempfile::tempdir().unwrap();
    for case in 0..MUTATION_CASES {
        let source = &files[case % files.len()];
        let mutated = mutate(&mut rng, fs::read(source).unwrap());
        let path = dir.path().join(source.file_name().unwrap());
        fs::write(&path, &mutated).unwrap();
        must_not_panic(&path, &format!("mutation {case} of {}", source.display()));
    }
}

// ---------------------------------------------------------------------------------------
// Damaged stats tables: a header typo, a deleted column, UTF-16, a cut, hostile names.
// ---------------------------------------------------------------------------------------

const DAMAGE_CASES: usize = 480;
/// A whole damage case (copying a run, reading it, rendering it) is a few milliseconds;
/// far more means a reader went unbounded.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(2);

/// Runs of every generation, with the file the gate judges.
const RUNS: &[(&str, &str)] = &[
    ("2.47", "api"),
    ("2.8", "run"),
    ("2.8-custom-percentiles", "run"),
    ("1.6", "run"),
    ("0.14", "run"),
    ("0.13", "run"),
];

fn stats_name(dir: &str, prefix: &str) -> String {
    if dir == "0.13" {
        format!("{prefix}_requests.csv")
    } else {
        format!("{prefix}_stats.csv")
    }
}

/// What the gate's answer is made of: the verdict, and each endpoint's identity and
/// judged figures.
struct GateView {
    passed: bool,
    endpoints: Vec<(String, u64, u64, [Option<f64>; 5])>,
}

fn gate_view(report: &Report) -> GateView {
    GateView {
        passed: report.verdict.passed,
        endpoints: report
            .run
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.label(),
                    e.requests,
                    e.failures,
                    [
                        e.p50_ms.or(e.median_ms),
                        e.p95_ms,
                        e.p99_ms,
                        e.max_ms,
                        Some(e.rps),
                    ],
                )
            })
            .collect(),
    }
}

/// A damaged file read without an error must have been read right: no verdict better than
/// the intact file's, the same endpoints with the same counts, and every figure either the
/// intact one or unknown (a percentile column Locust need not write, deleted). A different
/// figure, a lost endpoint or a PASS the intact file did not earn is a table read wrong.
fn assert_read_right(what: &str, damaged: &GateView, intact: &GateView, names_changed: bool) {
    assert!(
        !damaged.passed || intact.passed,
        "{what}: PASS on a damaged file whose intact form fails"
    );
    assert_eq!(damaged.endpoints.len(), intact.endpoints.len(), "{what}");
    for (d, i) in damaged.endpoints.iter().zip(&intact.endpoints) {
        if !names_changed {
            assert_eq!(d.0, i.0, "{what}");
        }
        assert_eq!((d.1, d.2), (i.1, i.2), "{what}: {}: counts changed", i.0);
        for (k, (dv, iv)) in d.3.iter().zip(&i.3).enumerate() {
            assert!(
                dv.is_none() || dv == iv,
                "{what}: {}: figure {k} read as {dv:?}, intact {iv:?}",
                i.0
            );
        }
    }
}

fn records(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    reader
        .byte_records()
        .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
        .collect()
}

fn write_records(rows: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.into_inner().unwrap()
}

const HOSTILE: &[&str] = &[
    "\u{1b}]0;pwned\u{7}",
    "\u{1b}[2J",
    "\u{1b}[31m",
    "\u{9b}1m",
    "\u{202e}",
    "\u{2066}",
    "|",
    "\n",
    "`",
    "<!--",
    "[x](http://e)",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    HeaderTypo,
    DeletedColumn,
    Utf16,
    CutMidLine,
    HostileName,
}

fn damage(rng: &mut StdRng, kind: Damage, bytes: &[u8]) -> Vec<u8> {
    let header_end = bytes
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap();
    match kind {
        Damage::HeaderTypo => {
            let mut out = bytes.to_vec();
            let at = rng.random_range(0..header_end);
            let printable = rng.random_range(0x20_u8..0x7f);
            match rng.random_range(0..3) {
                0 => out[at] = printable,
                1 => {
                    out.remove(at);
                }
                _ => out.insert(at, printable),
            }
            out
        }
        Damage::DeletedColumn => {
            let mut rows = records(bytes);
            let column = rng.random_range(0..rows[0].len());
            for row in &mut rows {
                if column < row.len() {
                    row.remove(column);
                }
            }
            write_records(&rows)
        }
        Damage::Utf16 => {
            let text = String::from_utf8_lossy(bytes);
            let big_endian = rng.random_bool(0.5);
            let mut out = match (rng.random_bool(0.5), big_endian) {
                (true, false) => vec![0xff, 0xfe],
                (true, true) => vec![0xfe, 0xff],
                (false, _) => Vec::new(),
            };
            for unit in text.encode_utf16() {
                out.extend_from_slice(&if big_endian {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                });
            }
            out
        }
        Damage::CutMidLine => loop {
            let at = rng.random_range(header_end + 2..bytes.len());
            if bytes[at - 1] != b'\n' {
                return bytes[..at].to_vec();
            }
        },
        Damage::HostileName => {
            let mut rows = records(bytes);
            let name = rows[0]
                .iter()
                .position(|h| {
                    String::from_utf8_lossy(h)
                        .trim_matches('"')
                        .eq_ignore_ascii_case("name")
                })
                .unwrap();
            // an endpoint row, not the total row (the last one)
            let row = rng.random_range(1..rows.len() - 1);
            let piece = HOSTILE[rng.random_range(0..HOSTILE.len())];
            let at = rng.random_range(0..=rows[row][name].len());
            rows[row][name].splice(at..at, piece.bytes());
            write_records(&rows)
        }
    }
}

fn assert_terminal_safe(what: &str, out: &str) {
    for c in out.chars() {
        let acts = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!acts, "{what}: {c:?} in the output");
    }
}

#[test]
fn a_damaged_stats_table_never_gets_a_verdict_it_did_not_earn() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locust");
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    let kinds = [
        Damage::HeaderTypo,
        Damage::DeletedColumn,
        Damage::Utf16,
        Damage::CutMidLine,
        Damage::HostileName,
    ];
    // Under relaxed thresholds the intact runs pass: a damaged one must not pass for less.
    let thresholds_dir = tempfile::tempdir().unwrap();
    let relaxed = thresholds_dir.path().join("relaxed.toml");
    fs::write(
        &relaxed,
        "p99_critical_ms = 60000\np99_warning_ms = 60000\nerror_rate_critical_pct = 100\n\
         error_rate_warning_pct = 100\n",
    )
    .unwrap();
    let thresholds = [None, Some(relaxed)];
    let request = |inputs: PathBuf, relaxed: bool| ReportRequest {
        inputs: vec![inputs],
        thresholds: thresholds[usize::from(relaxed)].clone(),
        ..ReportRequest::default()
    };
    let originals: Vec<[GateView; 2]> = RUNS
        .iter()
        .map(|(dir, prefix)| {
            [false, true].map(|relaxed| {
                gate_view(
                    &build_report(&request(root.join(dir).join(prefix), relaxed), None).unwrap(),
                )
            })
        })
        .collect();
    assert!(originals.iter().any(|o| !o[0].passed) && originals.iter().all(|o| o[1].passed));
    let started = Instant::now();
    let mut refused = [0_usize; 5];
    for case in 0..DAMAGE_CASES {
        let run = case % RUNS.len();
        let (dir, prefix) = RUNS[run];
        let kind = kinds[(case / RUNS.len()) % kinds.len()];
        let work = tempfile::tempdir().unwrap();
        for entry in fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            fs::copy(&path, work.path().join(path.file_name().unwrap())).unwrap();
        }
        let stats = work.path().join(stats_name(dir, prefix));
        let damaged = damage(&mut rng, kind, &fs::read(&stats).unwrap());
        fs::write(&stats, &damaged).unwrap();
        let relaxed = case % 2 == 1;
        let what = format!("case {case} ({kind:?} of {dir}, relaxed {relaxed}, seed {SEED:#x})");
        let request = request(work.path().join(prefix), relaxed);
        let case_started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| build_report(&request, None)))
            .unwrap_or_else(|_| panic!("{what}: the reader panicked"));
        // The CLI is this engine plus an exit code: check that mapping on a sample.
        if case % 24 == 0 {
            let expected = match &outcome {
                Err(_) => 2,
                Ok(report) if report.verdict.passed => 0,
                Ok(_) => 1,
            };
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_snaptop"));
            command.arg("report").arg(&request.inputs[0]);
            if let Some(t) = &request.thresholds {
                command.arg("--thresholds").arg(t);
            }
            let code = command.output().unwrap().status.code();
            assert_eq!(code, Some(expected), "{what}: exit code");
        }
        match outcome {
            Err(error) => {
                assert_ne!(kind, Damage::HostileName, "{what}: {error}");
                assert_terminal_safe(&what, &error.to_string());
                refused[kinds.iter().position(|k| *k == kind).unwrap()] += 1;
            }
            Ok(report) => {
                // Read anyway: then it must be read right (a harmless typo such as a case
                // change, a column the gate does not need, a cut inside the total row's
                // last field), never a table read in part.
                let view = gate_view(&report);
                let intact = &originals[run][usize::from(relaxed)];
                let what = format!("{what}\n{}", String::from_utf8_lossy(&damaged));
                assert_read_right(&what, &view, intact, kind == Damage::HostileName);
                // (0.13's percentiles are joined by name: a renamed endpoint loses them.)
                if kind == Damage::HostileName && dir != "0.13" {
                    assert_eq!(view.passed, intact.passed, "{what}: the verdict changed");
                }
                for format in [render::Format::Text, render::Format::Markdown] {
                    assert_terminal_safe(&what, &render::render(&report, format));
                }
            }
        }
        assert!(
            case_started.elapsed() < CASE_TIME_LIMIT,
            "{what}: took {:?}",
            case_started.elapsed()
        );
    }
    // Every kind of damage but hostile names is refused often (deleting one of the
    // percentile columns, about half the columns, leaves a file Locust could write with
    // another percentile list: it is read, and checked above).
    for (kind, count) in kinds.iter().zip(refused) {
        let cases = DAMAGE_CASES / kinds.len();
        if *kind == Damage::HostileName {
            assert_eq!(count, 0);
        } else {
            assert!(
                count * 3 > cases,
                "{kind:?}: only {count} of {cases} refused"
            );
        }
    }
    eprintln!(
        "{DAMAGE_CASES} damage cases in {:?}, refused per kind {refused:?}",
        started.elapsed()
    );
}
