//! JMeter CSV results (`.jtl`): one row per sample, read by column name.

use std::path::Path;

use super::error::ReportError;
use super::history::ReadProgress;
use super::model::RunData;
use super::samples::SampleOptions;

/// Delimiters JMeter is configured with in practice (`jmeter.save.saveservice.default_delimiter`).
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// True for a JMeter CSV header (it has `timeStamp` and `elapsed` columns, whatever the
/// delimiter), or a row JMeter wrote without one (an epoch-ms timestamp, then a number).
pub fn looks_like_jtl(line: &[u8]) -> bool {
    DELIMITERS.iter().any(|&d| {
        let fields: Vec<&[u8]> = line.split(|b| *b == d).map(<[u8]>::trim_ascii).collect();
        let has = |name: &[u8]| fields.iter().any(|f| f.eq_ignore_ascii_case(name));
        (has(b"timeStamp") && has(b"elapsed"))
            || (fields.len() >= 3
                && fields[0].len() == 13
                && fields[0].iter().all(u8::is_ascii_digit)
                && !fields[1].is_empty()
                && fields[1].iter().all(u8::is_ascii_digit))
    })
}

/// Reads a JMeter CSV results file into a run.
pub fn read_jtl(
    path: &Path,
    _options: &SampleOptions,
    _progress: Option<&ReadProgress>,
) -> Result<RunData, ReportError> {
    Err(ReportError::Refused {
        path: path.to_owned(),
        message: "JMeter results: reader not written yet".into(),
    })
}
