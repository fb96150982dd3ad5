//! `snaptop report`: the headless report and CI gate.

use std::path::PathBuf;

/// Arguments of `snaptop report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A Locust CSV prefix, a directory, or a single CSV file.
    pub input: PathBuf,
}

/// Runs the report; returns the process exit code (0 pass, 1 gate failed, 2 bad input).
pub fn run(args: ReportArgs) -> i32 {
    eprintln!(
        "snaptop report: {}: reports are not built yet",
        args.input.display()
    );
    2
}
