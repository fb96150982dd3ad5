//! Which reader a run goes to, decided from the first line of its file (never its name):
//! a k6 CSV header (`metric_name,timestamp,metric_value,...`) or JSON goes to [`super::k6`],
//! a JMeter header (`timeStamp`, `elapsed`, ...) or header-less JMeter rows go to
//! [`super::jmeter`], anything else (prefixes, directories, Locust CSVs) to
//! [`super::locust`].

use std::io::Read;
use std::path::{Path, PathBuf};

use super::csv_file::open_text;
use super::error::ReportError;
use super::history::ReadProgress;
use super::model::RunData;
use super::samples::SampleOptions;
use super::{jmeter, k6, locust};

/// Bytes read to decide what a file is.
const SNIFF_BYTES: u64 = 64 * 1024;

/// The format of a run's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Locust,
    JMeter,
    K6,
}

/// The first line of a file (without its line end), at most [`SNIFF_BYTES`].
pub(crate) fn first_line(path: &Path) -> Result<Vec<u8>, ReportError> {
    let (file, _) = open_text(path)?;
    let mut head = Vec::new();
    file.take(SNIFF_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| ReportError::io(path, e))?;
    let end = memchr::memchr(b'\n', &head).unwrap_or(head.len());
    head.truncate(end);
    if head.last() == Some(&b'\r') {
        head.pop();
    }
    Ok(head)
}

/// What `path` holds, from its first line; directories, prefixes and anything that is not
/// a regular file are Locust's (its reader names what is wrong with them).
pub fn detect(path: &Path, options: &SampleOptions) -> Result<InputFormat, ReportError> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(InputFormat::Locust);
    }
    let line = first_line(path)?;
    // An empty file says nothing of its format; a `.jtl` name is only a hint for the error.
    if line.trim_ascii().is_empty()
        && path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("jtl"))
    {
        return Ok(InputFormat::JMeter);
    }
    let trimmed = line.trim_ascii_start();
    if k6::looks_like_k6(trimmed) {
        return Ok(InputFormat::K6);
    }
    if options.jtl_columns.is_some() || jmeter::looks_like_jtl(&line) {
        return Ok(InputFormat::JMeter);
    }
    Ok(InputFormat::Locust)
}

/// Reads one run, whatever its format. A JMeter or k6 file is a whole run: it is passed
/// alone.
pub fn read_run(
    inputs: &[PathBuf],
    options: &SampleOptions,
    progress: Option<&ReadProgress>,
) -> Result<RunData, ReportError> {
    let mut formats = Vec::with_capacity(inputs.len());
    for input in inputs {
        formats.push(detect(input, options)?);
    }
    match (inputs, formats.as_slice()) {
        ([path], [InputFormat::JMeter]) => jmeter::read_jtl(path, options, progress),
        ([path], [InputFormat::K6]) => k6::read_k6(path, options, progress),
        _ => {
            if let Some(i) = formats.iter().position(|f| *f != InputFormat::Locust) {
                return Err(ReportError::Ambiguous {
                    path: inputs[i].clone(),
                    message: format!(
                        "a {} file is a whole run: pass it alone, not with other files",
                        if formats[i] == InputFormat::K6 {
                            "k6"
                        } else {
                            "JMeter"
                        }
                    ),
                });
            }
            locust::read_run(inputs, progress)
        }
    }
}
