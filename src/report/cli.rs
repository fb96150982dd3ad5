//! `snaptop report`: the headless report and CI gate.

use std::io::Write;
use std::path::PathBuf;

use super::{Format, ReportRequest, SampleOptions, build_report, render};

/// Exit code: no CRITICAL finding and every target passed.
pub const EXIT_PASS: i32 = 0;
/// Exit code: the gate failed (a CRITICAL finding or a failed target).
pub const EXIT_GATE_FAILED: i32 = 1;
/// Exit code: the input could not be read (missing, malformed or empty run).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Arguments of `snaptop report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// One run: Locust CSVs (a prefix such as results/api for results/api_stats.csv, a
    /// directory, or single CSV files), or one JMeter .jtl (CSV) file.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Targets (SLA) TOML file: [targets] "GET /x" = ["p95 < 150", "error_rate < 0.5%"].
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// Compare with this earlier run (a prefix, directory or file).
    #[arg(long, value_name = "BASE_PREFIX")]
    pub compare: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Thresholds TOML file (p99_critical_ms, p99_warning_ms, error_rate_critical_pct, ...).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Fail the gate when a metric regressed against --compare.
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Fail the gate when a target names an endpoint that is not in the data.
    #[arg(long)]
    pub strict_targets: bool,
    /// Width of a time-series point for raw samples (JMeter): 5s, 30s, 1m...
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_bucket)]
    pub bucket: u64,
    /// Column names of a JMeter file saved without its header row
    /// (jmeter.save.saveservice.print_field_names=false), comma-separated in file order:
    /// timeStamp,elapsed,label,responseCode,...
    #[arg(long, value_name = "NAMES")]
    pub jtl_columns: Option<String>,
    /// Field delimiter of a JMeter file (jmeter.save.saveservice.default_delimiter):
    /// detected from the header unless given (`\t` for a tab).
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// JMeter's timestamp_format: `ms` (epoch milliseconds) or a date pattern such as
    /// `yyyy/MM/dd HH:mm:ss.SSS`; detected from the first row unless given.
    #[arg(long, value_name = "FORMAT")]
    pub timestamp_format: Option<String>,
}

/// `5s`, `1m`, `90` (seconds): a whole number of seconds, at least 1.
fn parse_bucket(text: &str) -> Result<u64, String> {
    let secs = match text.trim().parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => humantime::parse_duration(text.trim())
            .map_err(|e| format!("expected a duration such as 5s or 1m: {e}"))?
            .as_secs(),
    };
    if secs == 0 {
        return Err("expected at least 1 second".into());
    }
    Ok(secs)
}

/// One ASCII character, or `\t` / `tab` for a tab.
fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "\\t" | "tab" | "TAB" | "\t" => Ok(b'\t'),
        _ if text.len() == 1 && text.is_ascii() && text != "\"" && text != "\n" => {
            Ok(text.as_bytes()[0])
        }
        _ => Err("expected one character, such as , ; | or \\t for a tab".into()),
    }
}

/// Runs the report; returns the process exit code (0 pass, 1 gate failed, 2 bad input).
pub fn run(args: ReportArgs) -> i32 {
    let request = ReportRequest {
        inputs: args.inputs,
        targets: args.targets,
        thresholds: args.thresholds,
        compare_base: args.compare.map(|p| vec![p]),
        fail_on_regression: args.fail_on_regression,
        strict_targets: args.strict_targets,
        samples: SampleOptions {
            bucket_secs: args.bucket,
            jtl_columns: args.jtl_columns.map(|names| {
                names
                    .split(',')
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect()
            }),
            delimiter: args.delimiter,
            timestamp_format: args.timestamp_format,
        },
    };
    match build_report(&request, None) {
        Ok(report) => {
            let text = render::render(&report, args.format);
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not a failed gate.
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            let target_warnings = report.targets.iter().flat_map(|t| t.warnings.iter());
            for warning in report.warnings.iter().chain(target_warnings) {
                eprintln!(
                    "snaptop report: warning: {}",
                    crate::sanitize::for_terminal(warning)
                );
            }
            if report.verdict.passed {
                EXIT_PASS
            } else {
                EXIT_GATE_FAILED
            }
        }
        Err(error) => {
            eprintln!("snaptop report: {error}");
            EXIT_BAD_INPUT
        }
    }
}
