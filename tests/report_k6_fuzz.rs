//! Random bytes after a k6 header and random mutations of the real k6 files never panic
//! the reader, never take long, and a damaged CSV never reads as more requests than the
//! intact one had.
//!
//! A seeded loop (reproducible: the seed and case are in every failure message), as in
//! `tests/report_fuzz.rs`, so it runs in `cargo test` in seconds.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snaptop::report::model::Report;
use snaptop::report::{ReportError, ReportRequest, build_report, render};

const SEED: u64 = 0x6B36_2026;
const RANDOM_CASES: usize = 150;
const MUTATION_CASES: usize = 400;
const CASE_TIME_LIMIT: Duration = Duration::from_secs(2);

fn fixture_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/k6");
    let mut files = Vec::new();
    for dir in ["1.1", "0.57", "1.1-rfc3339"] {
        for name in ["run.csv", "summary.json", "summary-export.json"] {
            files.push(root.join(dir).join(name));
        }
    }
    files
}

/// Bytes that matter to CSV, to k6's cells and to JSON.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b",",
    b"\n",
    b"\r\n",
    b"http_req_duration,",
    b"checks,",
    b"false",
    b"-1",
    b"1e309",
    b"99999999999999999999",
    b"{",
    b"}",
    b"\xff\xfe",
    b"\0",
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
                let end = (at + rng.random_range(1..400)).min(bytes.len());
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

fn build(path: &Path, what: &str) -> Option<Result<Report, ReportError>> {
    let request = ReportRequest {
        inputs: vec![path.to_owned()],
        ..ReportRequest::default()
    };
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let result = build_report(&request, None);
        if let Ok(report) = &result {
            // Rendering must not panic either.
            let _ = render::render_text(report);
            let _ = render::render_markdown(report);
            let _ = render::render_json(report);
        }
        result
    }));
    assert!(
        started.elapsed() < CASE_TIME_LIMIT,
        "{what} took {:?} (seed {SEED:#x})",
        started.elapsed()
    );
    match outcome {
        Ok(result) => {
            if let Err(e) = &result {
                assert!(!e.to_string().is_empty(), "{what}");
            }
            Some(result)
        }
        Err(_) => panic!("the reader panicked on {what} (seed {SEED:#x})"),
    }
}

#[test]
fn random_bytes_after_a_k6_header_never_panic() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let dir = tempfile::tempdir().unwrap();
    let header = fs::read_to_string(&fixture_files()[0])
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
        + "\n";
    for case in 0..RANDOM_CASES {
        let len = rng.random_range(0..4096);
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                // Mostly CSV-ish bytes, so rows get past the first checks.
                match rng.random_range(0..4) {
                    0 => b",\n\"0123456789."[rng.random_range(0..14)],
                    _ => rng.random(),
                }
            })
            .collect();
        if case % 3 != 0 {
            bytes.splice(0..0, header.bytes());
        } else {
            bytes.insert(0, b'{');
        }
        let path = dir.path().join(format!("case{case}.csv"));
        fs::write(&path, &bytes).unwrap();
        build(&path, &format!("random case {case}"));
    }
}

#[test]
fn mutated_real_k6_files_never_panic_nor_gain_requests() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let files = fixture_files();
    let dir = tempfile::tempdir().unwrap();
    let intact: Vec<u64> = files
        .iter()
        .map(|f| {
            build(f, "intact")
                .unwrap()
                .unwrap()
                .run
                .aggregate
                .unwrap()
                .requests
        })
        .collect();
    for case in 0..MUTATION_CASES {
        let i = case % files.len();
        let source = &files[i];
        let mutated = mutate(&mut rng, fs::read(source).unwrap());
        let path = dir.path().join(format!("m{case}"));
        fs::write(&path, &mutated).unwrap();
        let what = format!("mutation {case} of {}", source.display());
        if let Some(Ok(report)) = build(&path, &what)
            && source.extension().is_some_and(|x| x == "csv")
        {
            // A duplicated slice can add whole rows; anything else can only lose some.
            let requests = report.run.aggregate.map_or(0, |a| a.requests);
            assert!(
                requests <= intact[i] * 2 + 8,
                "{what}: {requests} requests from {}",
                intact[i]
            );
        }
    }
}
