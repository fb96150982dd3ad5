//! `snaptop report`: the headless report and CI gate.

use std::io::Write;
use std::path::PathBuf;

use super::{Format, ReportRequest, build_report, render};

/// Exit code: no CRITICAL finding and every target passed.
pub const EXIT_PASS: i32 = 0;
/// Exit code: the gate failed (a CRITICAL finding or a failed target).
pub const EXIT_GATE_FAILED: i32 = 1;
/// Exit code: the input could not be read (missing, malformed or empty run).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Arguments of `snaptop report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Locust CSVs of one run: a prefix (results/api for results/api_stats.csv ...), a
    /// directory, or single CSV files.
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
