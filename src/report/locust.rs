//! Locust CSV files of every generation, read by column name and streamed.
//!
//! Which file is which, and which Locust wrote it, is decided from the header row only:
//! file names are used to find a prefix's files, never to judge their content.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use super::columns::FileRole;
pub(crate) use super::columns::{Header, col, percentile_of_header};
use super::csv_file::{CsvReader, MAX_RECORD_BYTES, NUL_BYTES, Record, open_text};
use super::error::ReportError;
use super::history;
use super::model::{
    EndpointStats, ExceptionRow, FailureRow, LocustGeneration, PercentileValue, RunData, RunFiles,
};

pub use super::history::{MAX_SERIES_POINTS, ReadProgress};

/// Rows of the failures and exceptions files kept; the rest is counted in a note.
pub const MAX_FAILURE_ROWS: usize = 10_000;
/// Longest traceback kept per exception row; the rest is cut (a note says so).
pub const MAX_TRACEBACK_BYTES: usize = 64 * 1024;
/// Endpoint rows a stats file may have; more is an error, since the gate judges every
/// endpoint (Locust runs that name requests by full URL can have thousands).
pub const MAX_STATS_ENDPOINTS: usize = 100_000;
/// Bytes of endpoint names (and methods) a stats file may have in all: with the record cap
/// alone, 100,000 names of 1 MiB would be 100 GB.
pub const MAX_STATS_NAME_BYTES: usize = 16 * 1024 * 1024;
/// Text kept of a failures or exceptions file; rows past it are counted, not kept.
pub const MAX_KEPT_TEXT_BYTES: usize = 16 * 1024 * 1024;

/// Suffixes Locust gives its CSV files after the prefix: used only to *find* a prefix's
/// files; what each one holds is read from its header.
const LOCUST_SUFFIXES: &[&str] = &[
    "_stats.csv",
    "_stats_history.csv",
    "_failures.csv",
    "_exceptions.csv",
    "_requests.csv",
    "_distribution.csv",
];

/// True for Locust's total row: "Aggregated" (or "Total" before 1.0) with no real method.
pub fn is_aggregate_row(method: &str, name: &str) -> bool {
    (method.is_empty() || method == "None") && (name == "Aggregated" || name == "Total")
}

/// A cell that is no number yet: Locust writes `N/A` (and older versions `None`).
fn is_missing_number(text: &str) -> bool {
    text.is_empty()
        || text.eq_ignore_ascii_case("n/a")
        || text == "None"
        || text.eq_ignore_ascii_case("nan")
}

/// Powers of ten exactly representable as f64.
const EXACT_POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `123.4567` with at most 15 digits, as `mantissa / 10^decimals`: both exact in f64, so
/// the one division is correctly rounded, the same value `str::parse` gives, far faster.
#[inline]
fn parse_short_decimal(text: &[u8]) -> Option<f64> {
    let (negative, body) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0_usize;
    let mut point = None;
    for (i, &byte) in body.iter().enumerate() {
        let digit = byte.wrapping_sub(b'0');
        if digit <= 9 {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            digits += 1;
        } else if byte == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    let decimals = point.map_or(0, |p| body.len() - p - 1);
    let value = mantissa as f64 / EXACT_POWERS_OF_TEN[decimals];
    Some(if negative { -value } else { value })
}

/// A numeric cell: `Ok(None)` for N/A and empty cells, `Err(())` when not a number.
#[allow(clippy::result_unit_err)]
#[inline]
pub fn parse_number_bytes(raw: &[u8]) -> Result<Option<f64>, ()> {
    if let Some(value) = parse_short_decimal(raw) {
        return Ok(Some(value));
    }
    let text = raw.trim_ascii();
    if let Some(value) = parse_short_decimal(text) {
        return Ok(Some(value));
    }
    let text = std::str::from_utf8(text).map_err(|_| ())?;
    if is_missing_number(text) {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(()),
    }
}

/// Parses a numeric cell; `Ok(None)` for N/A and empty cells.
#[inline]
pub(crate) fn number_cell(raw: &[u8], column: &str) -> Result<Option<f64>, String> {
    parse_number_bytes(raw).map_err(|()| {
        format!(
            "expected a number in column \"{column}\", found \"{}\"",
            crate::sanitize::one_line(&String::from_utf8_lossy(raw.trim_ascii()), 40)
        )
    })
}

/// Parses a non-negative count; a missing cell is an error.
pub(crate) fn count_cell(raw: &[u8], column: &str) -> Result<u64, String> {
    match number_cell(raw, column)? {
        Some(v) if v >= 0.0 => Ok(v.round() as u64),
        Some(v) => Err(format!(
            "expected a count (0 or more) in column \"{column}\", found {v}"
        )),
        None => Err(format!(
            "expected a count in column \"{column}\", found nothing"
        )),
    }
}

pub(crate) fn text_cell(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// What a reader does with a last line that has no line end. Locust ends every row with
/// one, so such a line is one it is still writing (it rewrites stats, failures and
/// exceptions every interval), or a file cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastLine {
    /// The table is judged whole: a row that has all its fields and numbers is read, with
    /// a warning; one cut short is an error (a half row cannot be judged, and dropping it
    /// could drop the row that fails the gate).
    ReadIfWhole,
    /// Rows that only inform (failures, exceptions): the line is ignored, with a warning.
    Ignore,
}

/// Message of a half-written last line, the same for every file.
pub(crate) const LAST_LINE_INCOMPLETE: &str = "last line incomplete (no line end): still being \
                                               written?";

/// A streaming CSV reader of one file, with errors that name `file:line`.
struct CsvFile {
    path: PathBuf,
    reader: CsvReader,
    header: Header,
    raw_header: Vec<Vec<u8>>,
    last_line: LastLine,
    /// What the reader was unsure of (a last line without its line end).
    warnings: Vec<String>,
}

impl CsvFile {
    fn open(path: &Path) -> Result<Self, ReportError> {
        let mut reader = CsvReader::open(path)?;
        let mut first = Record::default();
        if !reader.read(&mut first)? {
            return Err(ReportError::malformed(
                path,
                1,
                "empty file: no endpoints (expected a header row such as \"Type,Name,Request Count,...\")",
            ));
        }
        if first.has_nul() {
            return Err(ReportError::malformed(path, first.line(), NUL_BYTES));
        }
        Ok(Self {
            path: path.to_owned(),
            header: Header::from_fields(first.iter()),
            raw_header: first.iter().map(<[u8]>::to_vec).collect(),
            reader,
            last_line: LastLine::ReadIfWhole,
            warnings: Vec::new(),
        })
    }

    /// Opens a file that must be of `role` (its header is checked).
    fn open_as(path: &Path, role: FileRole) -> Result<Self, ReportError> {
        let mut file = Self::open(path)?;
        file.header
            .check(role)
            .map_err(|message| ReportError::malformed(path, 1, message))?;
        file.last_line = match role {
            FileRole::Stats | FileRole::Distribution => LastLine::ReadIfWhole,
            FileRole::History | FileRole::Failures | FileRole::Exceptions => LastLine::Ignore,
        };
        Ok(file)
    }

    fn at(&self, record: &Record, message: impl Into<String>) -> ReportError {
        row_error(&self.path, record, message.into())
    }

    /// The next data row; skips blank lines and repeated header rows (Locust rewrites the
    /// header when a run restarts into the same file).
    fn next(&mut self, record: &mut Record) -> Result<bool, ReportError> {
        loop {
            if !self.reader.read(record)? {
                return Ok(false);
            }
            if record.is_blank() {
                continue;
            }
            if record.len() == self.raw_header.len()
                && record
                    .iter()
                    .zip(&self.raw_header)
                    .all(|(a, b)| a == b.as_slice())
            {
                continue;
            }
            if record.has_nul() {
                return Err(self.at(record, NUL_BYTES));
            }
            if !record.complete() && self.last_line == LastLine::Ignore {
                self.warnings.push(format!(
                    "{}:{}: {LAST_LINE_INCOMPLETE} It was ignored.",
                    self.path.display(),
                    record.line()
                ));
                return Ok(false);
            }
            if record.len() != self.header.names.len() {
                return Err(self.at(
                    record,
                    format!(
                        "expected {} fields as in the header, found {}",
                        self.header.names.len(),
                        record.len()
                    ),
                ));
            }
            if !record.complete() {
                // Whole as far as the fields go; its numbers are checked by the caller,
                // whose errors say the line is incomplete (see `row_error`).
                self.warnings.push(format!(
                    "{}:{}: last line has no line end (Locust ends every row with one): read \
                     as a whole row, but its last field may be cut",
                    self.path.display(),
                    record.line()
                ));
            }
            return Ok(true);
        }
    }

    fn required(&self, aliases: &[&str], what: &str) -> Result<usize, ReportError> {
        self.header.find(aliases).ok_or_else(|| {
            ReportError::malformed(
                &self.path,
                1,
                format!("expected a \"{}\" column in the {what} header", aliases[0]),
            )
        })
    }
}

/// An error about a row; a last line without its line end is said to be incomplete, since
/// that is the likelier cause of anything wrong with it.
fn row_error(path: &Path, record: &Record, message: String) -> ReportError {
    let message = if record.complete() {
        message
    } else {
        format!("{LAST_LINE_INCOMPLETE} {message}")
    };
    ReportError::malformed(path, record.line(), message)
}

/// Which kind of Locust file `path` is, from its header row; an error naming the file and
/// the header expected when it is none (the file's name picks the kind it is compared with).
pub fn identify_file(path: &Path) -> Result<FileRole, ReportError> {
    let file = CsvFile::open(path)?;
    let hint = path
        .file_name()
        .and_then(|n| FileRole::from_file_name(&n.to_string_lossy()));
    file.header
        .identify(hint)
        .map_err(|message| ReportError::malformed(path, 1, message))
}

/// The final per-endpoint table of a stats (or 0.13-and-older requests) file.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsTable {
    pub generation: LocustGeneration,
    pub endpoints: Vec<EndpointStats>,
    pub aggregate: Option<EndpointStats>,
    pub notes: Vec<String>,
    /// What the reader was unsure of (a last line without its line end).
    pub warnings: Vec<String>,
}

/// A latency or rate cell: a number of 0 or more, or N/A.
fn measure_cell(raw: &[u8], column: &str) -> Result<Option<f64>, String> {
    match number_cell(raw, column)? {
        Some(v) if v < 0.0 => Err(format!(
            "expected 0 or more in column \"{column}\", found {v}"
        )),
        value => Ok(value),
    }
}

/// Reads a stats file of any generation, and checks it is the whole table Locust wrote:
/// endpoint rows, then one total row (`Aggregated`, `Total` before 1.0) whose request and
/// failure counts are the endpoints' sums, as Locust computes them. A table cut short,
/// caught half rewritten or edited fails one of these, and is refused rather than judged.
pub fn read_stats(path: &Path) -> Result<StatsTable, ReportError> {
    let mut file = CsvFile::open_as(path, FileRole::Stats)?;
    let generation = file.header.stats_generation();
    let method_col = file.required(col::METHOD, "stats")?;
    let name_col = file.required(col::NAME, "stats")?;
    let requests_col = file.required(col::REQUESTS, "stats")?;
    let failures_col = file.required(col::FAILURES, "stats")?;
    let median_col = file.header.find(col::MEDIAN);
    let average_col = file.header.find(col::AVERAGE);
    let min_col = file.header.find(col::MIN);
    let max_col = file.header.find(col::MAX);
    let rps_col = file.header.find(col::RPS);
    let fps_col = file.header.find(col::FAILURES_PER_SEC);
    let percentile_cols = file.header.percentiles();

    let mut endpoints = Vec::new();
    let mut aggregate: Option<(EndpointStats, u64)> = None;
    let mut name_bytes = 0_usize;
    let mut last_line = 1;
    let mut record = Record::default();
    while file.next(&mut record)? {
        last_line = record.line();
        let names = &file.header.names;
        let at = |e: String| row_error(path, &record, e);
        let num = |idx: Option<usize>| -> Result<Option<f64>, ReportError> {
            match idx {
                Some(i) => measure_cell(&record[i], &names[i]).map_err(at),
                None => Ok(None),
            }
        };
        let method = text_cell(&record[method_col]);
        let name = text_cell(&record[name_col]);
        let requests = count_cell(&record[requests_col], &names[requests_col]).map_err(at)?;
        let failures = count_cell(&record[failures_col], &names[failures_col]).map_err(at)?;
        let mut percentiles = Vec::with_capacity(percentile_cols.len());
        for &(i, percent) in &percentile_cols {
            percentiles.push(PercentileValue {
                percent,
                millis: measure_cell(&record[i], &names[i]).map_err(at)?,
            });
        }
        // Locust writes N/A only in the percentiles of a row without requests; a row with
        // requests has every figure, so a missing one is damage, not "no data".
        if requests > 0 {
            let judged = [median_col, average_col, min_col, max_col, rps_col]
                .into_iter()
                .flatten()
                .chain(percentile_cols.iter().map(|(i, _)| *i));
            for i in judged {
                if parse_number_bytes(&record[i]) == Ok(None) {
                    return Err(at(format!(
                        "no value in column \"{}\" of a row with {requests} requests (Locust \
                         writes N/A only in rows without requests)",
                        names[i]
                    )));
                }
            }
        }
        let is_aggregate = is_aggregate_row(&method, &name);
        if let Some((total, _)) = &aggregate {
            return Err(at(format!(
                "{} after the total row (`{}`), which Locust writes last: the file holds more \
                 than one table (caught while Locust rewrote it?)",
                if is_aggregate {
                    "a second total row"
                } else {
                    "an endpoint row"
                },
                total.name
            )));
        }
        let stats = EndpointStats {
            method: if is_aggregate { String::new() } else { method },
            name,
            requests,
            failures,
            error_pct: error_pct(requests, failures),
            median_ms: num(median_col)?,
            average_ms: num(average_col)?,
            min_ms: num(min_col)?,
            max_ms: num(max_col)?,
            p50_ms: percentile_at(&percentiles, 50.0),
            p95_ms: percentile_at(&percentiles, 95.0),
            p99_ms: percentile_at(&percentiles, 99.0),
            rps: num(rps_col)?.unwrap_or(0.0),
            failures_per_sec: num(fps_col)?,
            percentiles,
        };
        if is_aggregate {
            aggregate = Some((stats, record.line()));
            continue;
        }
        // Every endpoint is judged, so none may be dropped: past the caps, the file is
        // refused rather than judged in part.
        name_bytes += stats.method.len() + stats.name.len();
        if endpoints.len() >= MAX_STATS_ENDPOINTS {
            return Err(at(format!(
                "more than {MAX_STATS_ENDPOINTS} endpoints, the most a report reads (does \
                 the locustfile name requests by their full URL? group them with name=)"
            )));
        }
        if name_bytes > MAX_STATS_NAME_BYTES {
            return Err(at(format!(
                "endpoint names longer than {} MiB in all, the most a report reads",
                MAX_STATS_NAME_BYTES / (1024 * 1024)
            )));
        }
        endpoints.push(stats);
    }
    let empty = |reason: &str| ReportError::EmptyRun {
        path: path.to_owned(),
        reason: reason.into(),
    };
    let total_name = if generation == LocustGeneration::Legacy {
        "Total"
    } else {
        "Aggregated"
    };
    match (&aggregate, endpoints.is_empty()) {
        (None, true) => return Err(empty("the table has its header and no row")),
        (Some((total, _)), true) if total.requests == 0 => {
            return Err(empty(
                "no request was recorded (did the load test reach the host?)",
            ));
        }
        (Some((total, _)), true) => {
            return Err(empty(&format!(
                "only the total row (`{}`), no endpoint row",
                total.name
            )));
        }
        (None, false) => {
            return Err(ReportError::malformed(
                path,
                last_line + 1,
                format!(
                    "no total row (`{total_name}`), which Locust writes last: the table is \
                     cut short (or still being written?)"
                ),
            ));
        }
        (Some(_), false) => {}
    }
    let (total, total_line) = aggregate.expect("checked above");
    let requests: u64 = endpoints.iter().map(|e| e.requests).sum();
    let failures: u64 = endpoints.iter().map(|e| e.failures).sum();
    if (requests, failures) != (total.requests, total.failures) {
        return Err(ReportError::malformed(
            path,
            total_line,
            format!(
                "the total row (`{}`) counts {} requests and {} failures, the endpoint rows \
                 add up to {requests} and {failures}: the table is damaged (or was caught \
                 while Locust rewrote it)",
                total.name, total.requests, total.failures
            ),
        ));
    }
    if requests == 0 {
        return Err(empty(
            "no request was recorded (did the load test reach the host?)",
        ));
    }
    Ok(StatsTable {
        generation,
        endpoints,
        aggregate: Some(total),
        notes: Vec::new(),
        warnings: file.warnings,
    })
}

/// Failures per hundred requests (0 when there was no request).
pub fn error_pct(requests: u64, failures: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        failures as f64 * 100.0 / requests as f64
    }
}

pub(crate) fn percentile_at(percentiles: &[PercentileValue], percent: f64) -> Option<f64> {
    percentiles
        .iter()
        .find(|p| (p.percent - percent).abs() < 1e-9)
        .and_then(|p| p.millis)
}

/// Percentiles of each row of a 0.13-and-older `_distribution.csv`, by its Name cell
/// (`"GET /path"`, or `"Total"`).
pub fn read_distribution(path: &Path) -> Result<Rows<(String, Vec<PercentileValue>)>, ReportError> {
    let mut file = CsvFile::open_as(path, FileRole::Distribution)?;
    let name_col = file.required(col::NAME, "distribution")?;
    let percentile_cols = file.header.percentiles();
    if percentile_cols.is_empty() {
        return Err(ReportError::malformed(
            path,
            1,
            "expected percentile columns such as \"50%\" in the distribution header",
        ));
    }
    let mut rows = HashMap::new();
    let mut name_bytes = 0_usize;
    let mut record = Record::default();
    while file.next(&mut record)? {
        let at = |e: String| row_error(path, &record, e);
        let mut percentiles = Vec::with_capacity(percentile_cols.len());
        for &(i, percent) in &percentile_cols {
            percentiles.push(PercentileValue {
                percent,
                millis: number_cell(&record[i], &file.header.names[i]).map_err(at)?,
            });
        }
        let name = text_cell(&record[name_col]);
        name_bytes += name.len();
        if rows.len() > MAX_STATS_ENDPOINTS {
            return Err(at(format!(
                "more than {MAX_STATS_ENDPOINTS} endpoints, the most a report reads"
            )));
        }
        if name_bytes > MAX_STATS_NAME_BYTES {
            return Err(at(format!(
                "endpoint names longer than {} MiB in all, the most a report reads",
                MAX_STATS_NAME_BYTES / (1024 * 1024)
            )));
        }
        rows.insert(name, percentiles);
    }
    Ok(Rows {
        rows: rows.into_iter().collect(),
        notes: Vec::new(),
        warnings: file.warnings,
    })
}

/// Rows of a file that informs the report, with what was left out (notes) and what the
/// reader was unsure of (warnings).
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Gives the endpoints of a 0.13-and-older requests file their percentiles.
fn join_distribution(table: &mut StatsTable, distribution: &HashMap<String, Vec<PercentileValue>>) {
    let fill = |stats: &mut EndpointStats, percentiles: &Vec<PercentileValue>| {
        stats.p50_ms = percentile_at(percentiles, 50.0);
        stats.p95_ms = percentile_at(percentiles, 95.0);
        stats.p99_ms = percentile_at(percentiles, 99.0);
        stats.percentiles = percentiles.clone();
    };
    for stats in &mut table.endpoints {
        let joined = format!("{} {}", stats.method, stats.name);
        if let Some(p) = distribution
            .get(&joined)
            .or_else(|| distribution.get(&stats.name))
        {
            fill(stats, p);
        }
    }
    if let Some(total) = &mut table.aggregate
        && let Some(p) = distribution
            .get("Total")
            .or_else(|| distribution.get("None Total"))
            .or_else(|| distribution.get("Aggregated"))
    {
        fill(total, p);
    }
}

/// Reads a failures file (with or without `First Seen,Last Seen`).
pub fn read_failures(path: &Path) -> Result<Rows<FailureRow>, ReportError> {
    let mut file = CsvFile::open_as(path, FileRole::Failures)?;
    let method_col = file.header.find(col::METHOD);
    let name_col = file.required(col::NAME, "failures")?;
    let error_col = file.required(col::ERROR, "failures")?;
    let occurrences_col = file.required(col::OCCURRENCES, "failures")?;
    let first_col = file.header.find(col::FIRST_SEEN);
    let last_col = file.header.find(col::LAST_SEEN);
    let mut rows = Vec::new();
    let mut dropped = 0_u64;
    let mut kept_bytes = 0_usize;
    let mut record = Record::default();
    while file.next(&mut record)? {
        let occurrences = count_cell(
            &record[occurrences_col],
            &file.header.names[occurrences_col],
        )
        .map_err(|e| ReportError::malformed(path, record.line(), e))?;
        kept_bytes += record.iter().map(<[u8]>::len).sum::<usize>();
        if rows.len() >= MAX_FAILURE_ROWS || kept_bytes > MAX_KEPT_TEXT_BYTES {
            dropped += 1;
            continue;
        }
        let optional = |i: Option<usize>| {
            i.map(|i| text_cell(&record[i]))
                .filter(|text| !text.is_empty())
        };
        let method = method_col
            .map(|i| text_cell(&record[i]))
            .unwrap_or_default();
        rows.push(FailureRow {
            method: if method == "None" {
                String::new()
            } else {
                method
            },
            name: text_cell(&record[name_col]),
            error: text_cell(&record[error_col]),
            occurrences,
            first_seen: optional(first_col),
            last_seen: optional(last_col),
        });
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.occurrences));
    let notes = if dropped > 0 {
        vec![format!(
            "{}: {dropped} failure rows beyond the first {} were ignored (at most \
             {MAX_FAILURE_ROWS} rows and {} MiB of text are kept)",
            path.display(),
            rows.len(),
            MAX_KEPT_TEXT_BYTES / (1024 * 1024)
        )]
    } else {
        Vec::new()
    };
    Ok(Rows {
        rows,
        notes,
        warnings: file.warnings,
    })
}

/// Reads an exceptions file; tracebacks span several lines inside quotes.
pub fn read_exceptions(path: &Path) -> Result<Rows<ExceptionRow>, ReportError> {
    let mut file = CsvFile::open_as(path, FileRole::Exceptions)?;
    let count_col = file.required(col::COUNT, "exceptions")?;
    let message_col = file.required(col::MESSAGE, "exceptions")?;
    let traceback_col = file.required(col::TRACEBACK, "exceptions")?;
    let nodes_col = file.header.find(col::NODES);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut dropped = 0_u64;
    let mut cut = 0_u64;
    let mut kept_bytes = 0_usize;
    let mut record = Record::default();
    while file.next(&mut record)? {
        let count = count_cell(&record[count_col], &file.header.names[count_col])
            .map_err(|e| ReportError::malformed(path, record.line(), e))?;
        kept_bytes += record[message_col].len()
            + record[traceback_col].len().min(MAX_TRACEBACK_BYTES)
            + nodes_col.map_or(0, |i| record[i].len());
        if rows.len() >= MAX_FAILURE_ROWS || kept_bytes > MAX_KEPT_TEXT_BYTES {
            dropped += 1;
            continue;
        }
        let raw_traceback = &record[traceback_col];
        let traceback = if raw_traceback.len() > MAX_TRACEBACK_BYTES {
            cut += 1;
            let mut text =
                String::from_utf8_lossy(&raw_traceback[..MAX_TRACEBACK_BYTES]).into_owned();
            text.push_str("\n[…cut]");
            text
        } else {
            text_cell(raw_traceback)
        };
        rows.push(ExceptionRow {
            count,
            message: text_cell(&record[message_col]),
            traceback,
            nodes: nodes_col.map(|i| text_cell(&record[i])).unwrap_or_default(),
        });
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.count));
    if dropped > 0 {
        notes.push(format!(
            "{}: {dropped} exception rows beyond the first {} were ignored (at most \
             {MAX_FAILURE_ROWS} rows and {} MiB of text are kept)",
            path.display(),
            rows.len(),
            MAX_KEPT_TEXT_BYTES / (1024 * 1024)
        ));
    }
    if cut > 0 {
        notes.push(format!(
            "{}: {cut} tracebacks longer than {MAX_TRACEBACK_BYTES} bytes were cut",
            path.display()
        ));
    }
    Ok(Rows {
        rows,
        notes,
        warnings: file.warnings,
    })
}

/// Identifies a file of the run and adds it to `found`. An empty history, failures or
/// exceptions file is one Locust has not written yet (it flushes every few seconds): it
/// is left out with a warning. An empty stats file is an error like any other.
fn add_found(
    path: &Path,
    found: &mut Vec<(FileRole, PathBuf)>,
    warnings: &mut Vec<String>,
) -> Result<(), ReportError> {
    let named = path
        .file_name()
        .and_then(|n| FileRole::from_file_name(&n.to_string_lossy()));
    let empty = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0);
    if empty
        && matches!(
            named,
            Some(FileRole::History | FileRole::Failures | FileRole::Exceptions)
        )
    {
        warnings.push(format!(
            "{}: empty (not written by Locust yet?): ignored",
            path.display()
        ));
        return Ok(());
    }
    found.push((identify_file(path)?, path.to_owned()));
    Ok(())
}

/// Finds the Locust files of one run from what the user typed: one or more paths, each a
/// file, a directory or a prefix (`results/api` for `results/api_stats.csv`, ...).
///
/// Every file found by a Locust name (`*_stats.csv`, ...) or given by the user must be
/// identified from its header, or it is an error naming it; other `.csv` files of a
/// directory are skipped with a warning. A run without a stats table is an error naming
/// the stats file that should be there.
pub fn locate_run(inputs: &[PathBuf], warnings: &mut Vec<String>) -> Result<RunFiles, ReportError> {
    let shown = inputs.first().cloned().unwrap_or_default();
    let mut found: Vec<(FileRole, PathBuf)> = Vec::new();
    let mut skipped: Vec<PathBuf> = Vec::new();
    // Where the stats file of the run should be, for the error when it is not.
    let mut stats_expected: Option<PathBuf> = None;
    for input in inputs {
        let named_as_file = input
            .file_name()
            .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(".csv"));
        match std::fs::metadata(input) {
            // A directory named like a CSV file is a mistake, not a run's directory.
            Ok(meta) if meta.is_dir() && !named_as_file => {
                let mut entries = Vec::new();
                for entry in std::fs::read_dir(input).map_err(|e| ReportError::io(input, e))? {
                    let entry = entry.map_err(|e| ReportError::io(input, e))?;
                    entries.push(entry.path());
                }
                entries.sort();
                for path in entries {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if FileRole::from_file_name(&name).is_some() {
                        // Named as Locust names its files: it must be one.
                        add_found(&path, &mut found, warnings)?;
                    } else if name.to_ascii_lowercase().ends_with(".csv") {
                        match std::fs::metadata(&path) {
                            Ok(m) if m.is_file() => match identify_file(&path) {
                                Ok(role) => found.push((role, path)),
                                Err(error) => {
                                    warnings.push(format!("skipped: {error}"));
                                    skipped.push(path);
                                }
                            },
                            _ => {
                                warnings.push(format!(
                                    "skipped: {}: not a regular file",
                                    path.display()
                                ));
                                skipped.push(path);
                            }
                        }
                    }
                }
                stats_expected.get_or_insert_with(|| input.join("PREFIX_stats.csv"));
            }
            // A file, or a FIFO, socket...: identify_file refuses what is not a file.
            Ok(_) => add_found(input, &mut found, warnings)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let prefix = input.to_string_lossy();
                let mut any = false;
                for suffix in LOCUST_SUFFIXES {
                    let path = PathBuf::from(format!("{prefix}{suffix}"));
                    match std::fs::metadata(&path) {
                        Ok(_) => {
                            any = true;
                            add_found(&path, &mut found, warnings)?;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(ReportError::io(&path, e)),
                    }
                }
                if !any {
                    return Err(ReportError::NoInput {
                        path: input.clone(),
                    });
                }
                stats_expected.get_or_insert_with(|| PathBuf::from(format!("{prefix}_stats.csv")));
            }
            Err(e) => return Err(ReportError::io(input, e)),
        }
    }
    let mut files = RunFiles::default();
    for (role, path) in &found {
        let slot = match role {
            FileRole::Stats => &mut files.stats,
            FileRole::Distribution => &mut files.distribution,
            FileRole::History => &mut files.history,
            FileRole::Failures => &mut files.failures,
            FileRole::Exceptions => &mut files.exceptions,
        };
        if let Some(previous) = slot {
            return Err(ReportError::Ambiguous {
                path: shown,
                message: format!(
                    "two files of the same kind ({} and {}): several runs in one place; \
                     pass the prefix of one run",
                    previous.display(),
                    path.display()
                ),
            });
        }
        *slot = Some(path.clone());
    }
    if files.stats.is_none() {
        if found.is_empty() {
            return Err(ReportError::NoInput { path: shown });
        }
        // Name the stats file beside a file Locust named, else where the user pointed.
        let beside = found.iter().find_map(|(_, path)| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            let prefix = LOCUST_SUFFIXES
                .iter()
                .find_map(|s| name.strip_suffix(s))?
                .to_owned();
            let suffix = if files.distribution.is_some() {
                "_requests.csv"
            } else {
                "_stats.csv"
            };
            Some(path.with_file_name(format!("{prefix}{suffix}")))
        });
        let mut what: Vec<String> = found
            .iter()
            .map(|(role, path)| format!("{} ({})", path.display(), role.kind()))
            .collect();
        what.extend(
            skipped
                .iter()
                .map(|p| format!("{} (not a Locust CSV)", p.display())),
        );
        return Err(ReportError::NoStats {
            path: beside.or(stats_expected).unwrap_or(shown),
            found: what.join(", "),
        });
    }
    Ok(files)
}

/// Reads every file of a run. `progress` (if given) counts bytes of the history file,
/// the only one that can be huge.
pub fn read_run(
    inputs: &[PathBuf],
    progress: Option<&ReadProgress>,
) -> Result<RunData, ReportError> {
    let mut warnings = Vec::new();
    let files = locate_run(inputs, &mut warnings)?;
    let mut notes = Vec::new();
    let stats_path = files.stats.as_ref().expect("locate_run finds a stats file");
    let mut table = read_stats(stats_path)?;
    warnings.append(&mut table.warnings);
    if table.generation == LocustGeneration::Legacy {
        match &files.distribution {
            Some(dist) => {
                let mut distribution = read_distribution(dist)?;
                warnings.append(&mut distribution.warnings);
                join_distribution(&mut table, &distribution.rows.into_iter().collect());
            }
            None => warnings.push(format!(
                "{}: no _distribution.csv beside this Locust 0.13-or-older file: \
                 percentiles are unknown",
                stats_path.display()
            )),
        }
    }
    if table.endpoints.iter().all(|e| e.p99_ms.is_none()) {
        warnings.push(format!(
            "{}: no endpoint has a 99% percentile: latency (p99) is not judged",
            stats_path.display()
        ));
    }
    notes.append(&mut table.notes);
    let mut history = match &files.history {
        Some(path) => Some(history::read_history(path, progress)?),
        None => None,
    };
    if let Some(h) = &mut history {
        warnings.append(&mut h.warnings);
    }
    let mut failures = match &files.failures {
        Some(path) => read_failures(path)?,
        None => Rows::default(),
    };
    notes.append(&mut failures.notes);
    warnings.append(&mut failures.warnings);
    let mut exceptions = match &files.exceptions {
        Some(path) => read_exceptions(path)?,
        None => Rows::default(),
    };
    notes.append(&mut exceptions.notes);
    warnings.append(&mut exceptions.warnings);
    Ok(RunData {
        files,
        generation: Some(table.generation),
        endpoints: table.endpoints,
        aggregate: table.aggregate,
        history,
        failures: failures.rows,
        exceptions: exceptions.rows,
        checks: Vec::new(),
        notes,
        warnings,
    })
}

/// A targets or thresholds file is parsed whole: this is its record cap.
pub const MAX_CONFIG_BYTES: usize = MAX_RECORD_BYTES;

/// Reads a small config file (TOML) whole, refusing anything longer than
/// [`MAX_CONFIG_BYTES`] and anything that is not a regular UTF-8 file.
pub(crate) fn read_small_file(path: &Path) -> Result<String, ReportError> {
    let (file, _) = open_text(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReportError::io(path, e))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ReportError::Refused {
            path: path.to_owned(),
            message: format!(
                "longer than {} MiB, the most a targets or thresholds file may be",
                MAX_CONFIG_BYTES / (1024 * 1024)
            ),
        });
    }
    if memchr::memchr(0, &bytes).is_some() {
        return Err(ReportError::malformed(path, 1, NUL_BYTES));
    }
    String::from_utf8(bytes).map_err(|e| {
        ReportError::malformed(
            path,
            super::analysis::line_of(
                &String::from_utf8_lossy(e.as_bytes()),
                e.utf8_error().valid_up_to(),
            ),
            "not UTF-8 text",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_headers_of_every_generation() {
        assert_eq!(percentile_of_header("50%"), Some(50.0));
        assert_eq!(percentile_of_header("99.999"), Some(99.999));
        assert_eq!(percentile_of_header("100%"), Some(100.0));
        assert_eq!(percentile_of_header("requests/s"), None);
        assert_eq!(percentile_of_header("%"), None);
        assert_eq!(percentile_of_header("0%"), None);
    }

    #[test]
    fn numbers_accept_na_and_reject_text_with_the_column_name() {
        assert_eq!(number_cell(b"N/A", "50%"), Ok(None));
        assert_eq!(number_cell(b" 12.5 ", "50%"), Ok(Some(12.5)));
        let error = number_cell(b"fast", "95%").unwrap_err();
        assert!(
            error.contains("\"95%\"") && error.contains("fast"),
            "{error}"
        );
        assert!(count_cell(b"-3", "Request Count").is_err());
    }

    #[test]
    fn short_decimals_parse_exactly_like_std() {
        for text in [
            "0",
            "25.05069170166447",
            "0.000000",
            "12.5",
            "-3.25",
            "1100",
            "99.999",
            "1e3",
            "7.",
        ] {
            let expected: f64 = text.parse().unwrap();
            assert_eq!(
                parse_number_bytes(text.as_bytes()),
                Ok(Some(expected)),
                "{text}"
            );
        }
        assert_eq!(parse_number_bytes(b"."), Err(()));
        assert_eq!(parse_number_bytes(b"1.2.3"), Err(()));
        assert_eq!(parse_number_bytes(b"inf"), Err(()));
    }

    #[test]
    fn aggregate_rows_of_each_generation() {
        assert!(is_aggregate_row("", "Aggregated"));
        assert!(is_aggregate_row("None", "Total"));
        assert!(!is_aggregate_row("GET", "Total"));
    }
}
