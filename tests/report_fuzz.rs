//! Random bytes and random mutations of real Locust files never panic the reader.
//!
//! A seeded loop (reproducible: the seed and case are in every failure message) instead
//! of a fuzzing crate, so it runs in `cargo test` in about a second.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snaptop::report::{ReportRequest, build_report};

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
