//! k6 results (`--out csv`, `--summary-export` JSON): not read yet.

use std::path::Path;

use super::error::ReportError;
use super::history::ReadProgress;
use super::model::RunData;
use super::samples::SampleOptions;

/// Reads a k6 CSV or summary JSON into a run (see [`super::samples`]).
pub fn read_k6(
    path: &Path,
    _options: &SampleOptions,
    _progress: Option<&ReadProgress>,
) -> Result<RunData, ReportError> {
    Err(ReportError::Refused {
        path: path.to_owned(),
        message: "k6 results are not supported yet (expected Locust CSVs or a JMeter .jtl)".into(),
    })
}
