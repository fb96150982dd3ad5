//! Random bytes and random mutations of the JMeter fixtures never panic the `.jtl` reader,
//! never take long, and every error names the file; a file whose rows stay whole is read
//! the same by the parallel reader and by the csv crate.
//!
//! A seeded loop (reproducible: the seed and case are in every failure message), as
//! tests/report_fuzz.rs does for the Locust readers.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snaptop::report::samples::SampleOptions;
use snaptop::report::{ReportRequest, build_report, render};

const SEED: u64 = 0x5EED_0014;
const RANDOM_CASES: usize = 150;
const MUTATION_CASES: usize = 500;
/// A case is a few milliseconds; far more means the reader went unbounded.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(3);

const HEADER: &[u8] = b"timeStamp,elapsed,label,responseCode,responseMessage,threadName,\
dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect\n";

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jmeter");
    let mut files: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jtl"))
        .collect();
    files.sort();
    files
}

/// Bytes that matter to JMeter's CSV and its cells.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b",",
    b";",
    b"\t",
    b"\n",
    b"\r\n",
    b"\"\"",
    b"true",
    b"false",
    b"-1",
    b"1e309",
    b"99999999999999999999",
    b"Number of samples in transaction : 2",
    b"2026/11/22 11:22:35.123",
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

fn options(case: usize) -> SampleOptions {
    match case % 5 {
        1 => SampleOptions {
            jtl_columns: Some(
                String::from_utf8_lossy(HEADER.trim_ascii_end())
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
            ),
            ..SampleOptions::default()
        },
        2 => SampleOptions {
            timestamp_format: Some("yyyy/MM/dd HH:mm:ss.SSS".into()),
            bucket_secs: 1,
            ..SampleOptions::default()
        },
        3 => SampleOptions {
            delimiter: Some(b';'),
            ..SampleOptions::default()
        },
        _ => SampleOptions::default(),
    }
}

fn must_not_panic(path: &Path, samples: SampleOptions, what: &str) {
    let request = ReportRequest {
        inputs: vec![path.to_owned()],
        samples,
        ..ReportRequest::default()
    };
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        build_report(&request, None).map(|report| {
            // every renderer on whatever was read
            for format in [
                render::Format::Text,
                render::Format::Markdown,
                render::Format::Json,
            ] {
                let _ = render::render(&report, format);
            }
        })
    }));
    assert!(
        outcome.is_ok(),
        "the reader panicked on {what} (seed {SEED:#x})"
    );
    assert!(
        started.elapsed() < CASE_TIME_LIMIT,
        "{what} took {:?} (seed {SEED:#x})",
        started.elapsed()
    );
    if let Ok(Err(error)) = outcome {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            error.to_string().contains(&name),
            "{what}: the error does not name the file: {error}"
        );
    }
}

#[test]
fn random_bytes_after_a_jmeter_header_never_panic() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let dir = tempfile::tempdir().unwrap();
    for case in 0..RANDOM_CASES {
        let len = rng.random_range(0..4096);
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_range(0..4) == 0 {
                    INTERESTING[rng.random_range(0..INTERESTING.len())]
                        .first()
                        .copied()
                        .unwrap_or(b',')
                } else {
                    rng.random()
                }
            })
            .collect();
        if case % 2 == 0 {
            bytes.splice(0..0, HEADER.iter().copied());
        }
        let path = dir.path().join(format!("case{case}.jtl"));
        fs::write(&path, &bytes).unwrap();
        must_not_panic(&path, options(case), &format!("random case {case}"));
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let files = fixtures();
    assert!(files.len() >= 15, "{files:?}");
    let dir = tempfile::tempdir().unwrap();
    for case in 0..MUTATION_CASES {
        let source = &files[case % files.len()];
        let mutated = mutate(&mut rng, fs::read(source).unwrap());
        let path = dir.path().join(source.file_name().unwrap());
        fs::write(&path, &mutated).unwrap();
        must_not_panic(
            &path,
            options(case),
            &format!("mutation {case} of {}", source.display()),
        );
    }
}

/// Cell-level damage that keeps every row whole: either the file is refused naming the
/// damaged line, or the report counts exactly the rows the csv crate sees.
#[test]
fn damaged_cells_are_refused_at_their_line_or_read_whole() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    let source = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jmeter/crlf.jtl"),
    )
    .unwrap();
    let lines: Vec<&str> = source.split("\r\n").collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.jtl");
    for case in 0..200 {
        let mut damaged: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let row = rng.random_range(1..lines.len() - 1);
        let mut fields: Vec<String> = damaged[row].split(',').map(str::to_owned).collect();
        let column = [0, 1, 7][rng.random_range(0..3)];
        fields[column] = ["", "x", "-5", "tru", "1.5e3", " 12"][rng.random_range(0..6)].into();
        damaged[row] = fields.join(",");
        fs::write(&path, damaged.join("\r\n")).unwrap();
        let request = ReportRequest {
            inputs: vec![path.clone()],
            ..ReportRequest::default()
        };
        match build_report(&request, None) {
            Err(error) => {
                let text = error.to_string();
                assert!(
                    text.contains(&format!("damaged.jtl:{}:", row + 1)),
                    "case {case}: {text}"
                );
            }
            Ok(report) => {
                let total = report.run.aggregate.as_ref().unwrap().requests;
                assert_eq!(total, (lines.len() - 2) as u64, "case {case}");
            }
        }
    }
}
