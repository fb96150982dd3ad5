//! Bottleneck reports from load-test results: Locust CSVs, JMeter `.jtl` (and k6).
//!
//! The engine a Reports tab and `snaptop report` share. Build a [`ReportRequest`], call
//! [`build_report`] (blocking; stream-reads files of any size) or [`build_report_async`]
//! (runs it on tokio's blocking pool), and get an owned [`model::Report`] back. Nothing here
//! knows about the terminal.

pub mod analysis;
pub mod cli;
pub mod columns;
pub mod compare;
pub mod csv_file;
pub mod demo;
pub mod error;
pub mod history;
pub mod input;
pub mod jmeter;
pub mod k6;
pub mod locust;
pub mod model;
pub mod paths;
pub mod render;
pub mod samples;
pub mod targets;

use std::path::PathBuf;

pub use analysis::{JudgeOptions, Thresholds};
pub use error::ReportError;
pub use history::ReadProgress;
pub use model::Report;
pub use render::Format;
pub use samples::SampleOptions;

/// What to report on, as a user would say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportRequest {
    /// Prefixes, directories or single CSV files of one run.
    pub inputs: Vec<PathBuf>,
    /// A targets (SLA) TOML file.
    pub targets: Option<PathBuf>,
    /// A thresholds TOML file; defaults otherwise.
    pub thresholds: Option<PathBuf>,
    /// The run to compare with (before), as prefixes, directories or files.
    pub compare_base: Option<Vec<PathBuf>>,
    pub fail_on_regression: bool,
    pub strict_targets: bool,
    /// How raw-sample files (JMeter, k6) are read: bucket width, columns of a file
    /// without a header...
    pub samples: SampleOptions,
}

/// Reads, analyses and judges a run. Blocking: call it off the UI thread.
pub fn build_report(
    request: &ReportRequest,
    progress: Option<&ReadProgress>,
) -> Result<Report, ReportError> {
    let thresholds = match &request.thresholds {
        Some(path) => Thresholds::load(path)?,
        None => Thresholds::default(),
    };
    let targets = match &request.targets {
        Some(path) => Some(targets::Targets::load(path)?),
        None => None,
    };
    let mut run = input::read_run(&request.inputs, &request.samples, progress)?;
    let comparison = match &request.compare_base {
        Some(base_inputs) => {
            let base = input::read_run(base_inputs, &request.samples, None)?;
            run.warnings
                .extend(base.warnings.iter().map(|w| format!("base run: {w}")));
            let label = base_inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Some(compare::compare(&base, &run, &label))
        }
        None => None,
    };
    let targets_result = targets
        .as_ref()
        .map(|t| t.check(&run.endpoints, run.aggregate.as_ref()));
    let options = JudgeOptions {
        thresholds,
        fail_on_regression: request.fail_on_regression,
        strict_targets: request.strict_targets,
    };
    Ok(analysis::judge(run, &options, targets_result, comparison))
}

/// [`build_report`] on tokio's blocking pool, for the UI's event loop.
pub async fn build_report_async(
    request: ReportRequest,
    progress: Option<ReadProgress>,
) -> Result<Report, ReportError> {
    tokio::task::spawn_blocking(move || build_report(&request, progress.as_ref()))
        .await
        .map_err(|e| ReportError::Task(e.to_string()))?
}
