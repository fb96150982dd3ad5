//! k6 results: the `--out csv` sample file and the end-of-test summary JSON
//! (`--summary-export`, or what a script's `handleSummary` wrote with `JSON.stringify`).
//!
//! What a file is comes from its content: a JSON object is a summary, anything else must
//! be a CSV whose header names k6's columns (read by name, so a k6 that adds columns or
//! orders them differently still reads). In a CSV, requests are the `http_req_duration`
//! rows, grouped by `method` + `name` (k6 sets `name` to the URL unless the script tags
//! one); a request failed when its `expected_response` tag is `false`, which is how k6
//! computes `http_req_failed` (the `http_req_failed` rows are counted to check it). The
//! `checks` rows become the checks table, the `vus` gauge the users over time. Everything
//! else k6 writes (`http_req_waiting`, `data_sent`...) is skipped without being split.
//!
//! Names are shown as Locust names them, so a Locust run and a k6 run of the same service
//! compare endpoint by endpoint: a URL of the run's main origin (`http://host:port`)
//! becomes its path and query (`GET /api/users`), and a name tag that starts with the
//! request's method (`GET /api/items/:id`) loses that prefix, since the label adds it.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::csv_file::{MAX_RECORD_BYTES, NUL_BYTES, open_text, record_too_long};
use super::error::ReportError;
use super::history::ReadProgress;
use super::locust::{LAST_LINE_INCOMPLETE, parse_number_bytes};
use super::model::{CheckRow, EndpointStats, PercentileValue, RunData, RunFiles};
use super::samples::{
    ChunkError, LatencyUnit, Sample, SampleAggregator, SampleOptions, read_chunked,
};

/// Largest summary JSON read: k6 writes a few KiB (a summary with thousands of
/// submetrics is still well under this).
pub const MAX_SUMMARY_BYTES: u64 = 64 * 1024 * 1024;
/// The endpoint a summary's whole run is judged as.
pub const ALL_REQUESTS: &str = "all requests";
/// Distinct checks kept (group + name); more are counted in a note.
pub const MAX_CHECKS: usize = 10_000;
/// Fields a k6 CSV row may have: k6 writes 16 to 19.
const MAX_FIELDS: usize = 256;

/// The header k6 writes, for error messages.
const K6_HEADER_EXAMPLE: &str = "metric_name,timestamp,metric_value,check,error,error_code,\
                                 expected_response,group,method,name,proto,scenario,service,\
                                 status,subproto,tls_version,url,extra_tags,metadata";

/// True for the first line of a k6 file: a JSON object (a summary), or a CSV header with
/// k6's `metric_name` column, wherever it is (no Locust or JMeter header has it).
pub fn looks_like_k6(first_line: &[u8]) -> bool {
    let line = first_line.trim_ascii();
    line.starts_with(b"{")
        || line.split(|&b| b == b',').any(|field| {
            let field = field.trim_ascii();
            field == b"metric_name" || field == b"\"metric_name\""
        })
}

/// Reads a k6 CSV or summary JSON into a run.
pub fn read_k6(
    path: &Path,
    options: &SampleOptions,
    progress: Option<&ReadProgress>,
) -> Result<RunData, ReportError> {
    let (mut file, skipped) = open_text(path)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    if let Some(p) = progress {
        p.bytes_total.store(total, Ordering::Relaxed);
        p.bytes_read.store(skipped, Ordering::Relaxed);
    }
    // The header (or the start of a JSON document): the first line, up to a record's cap.
    let mut head = Vec::new();
    let header_end = loop {
        let before = head.len();
        let read = (&mut file)
            .take(64 * 1024)
            .read_to_end(&mut head)
            .map_err(|e| ReportError::io(path, e))?;
        if let Some(i) = memchr::memchr(b'\n', &head[before..]) {
            break before + i + 1;
        }
        if read == 0 {
            break head.len();
        }
        if starts_json(&head) {
            // A JSON summary: read whole (bounded) below.
            break head.len();
        }
        if head.len() > MAX_RECORD_BYTES {
            return Err(ReportError::malformed(path, 1, record_too_long()));
        }
    };
    if starts_json(&head) {
        (&mut file)
            .take(MAX_SUMMARY_BYTES)
            .read_to_end(&mut head)
            .map_err(|e| ReportError::io(path, e))?;
        if head.len() as u64 >= MAX_SUMMARY_BYTES {
            return Err(ReportError::Refused {
                path: path.to_owned(),
                message: format!(
                    "larger than {} MiB: not a k6 end-of-test summary",
                    MAX_SUMMARY_BYTES / (1024 * 1024)
                ),
            });
        }
        return read_summary(path, &head);
    }
    let header = &head[..header_end];
    if memchr::memchr(0, header).is_some() {
        return Err(ReportError::malformed(path, 1, NUL_BYTES));
    }
    if header.trim_ascii().is_empty() {
        return Err(ReportError::malformed(
            path,
            1,
            format!("empty file: expected a k6 CSV header such as \"{K6_HEADER_EXAMPLE}\""),
        ));
    }
    let columns = Columns::from_header(path, header)?;
    let carry = head[header_end..].to_vec();
    drop(head);

    let empty = SampleAggregator::new(options.bucket_secs, LatencyUnit::Micros);
    let shared = Shared::default();
    let read = read_chunked(path, file, carry, 1, progress, &empty, |chunk, agg| {
        parse_chunk(&columns, chunk, agg, &shared)
    })?;
    let mut run = read.aggregator.finish(path, "k6 CSV")?;
    let Shared {
        checks,
        checks_dropped,
        failed_rows,
        failed_true,
        status_fallback,
    } = shared;
    let checks = checks.into_inner().unwrap_or_default();
    run.checks = checks_table(checks);
    let checks_dropped = checks_dropped.into_inner();
    if checks_dropped > 0 {
        run.notes.push(format!(
            "{}: {checks_dropped} check results beyond the first {MAX_CHECKS} distinct checks \
             were not counted",
            path.display()
        ));
    }
    rename_endpoints(&mut run, path);
    if let Some(line) = read.cut_last_line {
        run.warnings.push(format!(
            "{}:{line}: {LAST_LINE_INCOMPLETE} It was ignored.",
            path.display()
        ));
    }
    let fallback = status_fallback.into_inner();
    if fallback > 0 {
        run.notes.push(format!(
            "{}: {fallback} requests had no expected_response tag: failed means status 0 \
             or 400 and above (k6's default expected statuses)",
            path.display()
        ));
    }
    let failed_rows = failed_rows.into_inner();
    let failed_true = failed_true.into_inner();
    let failures = run.aggregate.as_ref().map_or(0, |a| a.failures);
    if failed_rows > 0 && failed_true != failures {
        run.warnings.push(format!(
            "{}: the http_req_failed rows count {failed_true} failed requests, the \
             http_req_duration rows {failures} (expected_response false): the report uses \
             the latter",
            path.display()
        ));
    }
    Ok(run)
}

/// A JSON document starts with `{` after any white space.
fn starts_json(head: &[u8]) -> bool {
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Where each field k6 writes is, by name.
#[derive(Debug, Clone)]
struct Columns {
    field_count: usize,
    metric: usize,
    timestamp: usize,
    value: usize,
    check: Option<usize>,
    error: Option<usize>,
    expected: Option<usize>,
    group: Option<usize>,
    method: Option<usize>,
    name: Option<usize>,
    url: Option<usize>,
    status: Option<usize>,
    /// The highest index a request row needs.
    last_needed: usize,
    /// The highest index a `checks` row needs.
    check_needed: usize,
}

impl Columns {
    fn from_header(path: &Path, line: &[u8]) -> Result<Self, ReportError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(line);
        let mut record = csv::ByteRecord::new();
        reader
            .read_byte_record(&mut record)
            .map_err(|e| ReportError::malformed(path, 1, format!("not valid CSV: {e}")))?;
        let names: Vec<String> = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_ascii_lowercase())
            .collect();
        if names.len() > MAX_FIELDS {
            return Err(ReportError::malformed(
                path,
                1,
                format!("{} columns: more than a k6 CSV has", names.len()),
            ));
        }
        let find = |name: &str| names.iter().position(|n| n == name);
        let need = |name: &str| {
            find(name).ok_or_else(|| {
                ReportError::malformed(
                    path,
                    1,
                    format!(
                        "expected a \"{name}\" column in the k6 CSV header (k6 --out csv \
                         writes \"{K6_HEADER_EXAMPLE}\")"
                    ),
                )
            })
        };
        let metric = need("metric_name")?;
        let timestamp = need("timestamp")?;
        let value = need("metric_value")?;
        let name = find("name");
        let url = find("url");
        if name.is_none() && url.is_none() {
            return Err(ReportError::malformed(
                path,
                1,
                "expected a \"name\" or \"url\" column in the k6 CSV header: requests are \
                 grouped by them (k6's system tags name and url)",
            ));
        }
        let mut columns = Self {
            field_count: names.len(),
            metric,
            timestamp,
            value,
            check: find("check"),
            error: find("error"),
            expected: find("expected_response"),
            group: find("group"),
            method: find("method"),
            name,
            url,
            status: find("status"),
            last_needed: 0,
            check_needed: 0,
        };
        columns.check_needed = [metric, value]
            .into_iter()
            .chain(columns.check)
            .chain(columns.group)
            .max()
            .unwrap_or(0);
        columns.last_needed = [metric, timestamp, value]
            .into_iter()
            .chain(columns.check)
            .chain(columns.error)
            .chain(columns.expected)
            .chain(columns.group)
            .chain(columns.method)
            .chain(columns.name)
            .chain(if name.is_none() { url } else { None })
            .chain(columns.status)
            .max()
            .unwrap_or(0);
        Ok(columns)
    }
}

/// Passes and fails per (group, check name), as the file wrote them.
type CheckCounts = HashMap<(Vec<u8>, Vec<u8>), (u64, u64)>;

/// A check's group, name and (passes, fails).
type LastCheck = (Vec<u8>, Vec<u8>, (u64, u64));

/// What the chunk parsers add up beside the samples.
#[derive(Default)]
struct Shared {
    checks: Mutex<CheckCounts>,
    checks_dropped: AtomicU64,
    /// `http_req_failed` rows, and those with value 1.
    failed_rows: AtomicU64,
    failed_true: AtomicU64,
    /// Requests judged by their status, for want of `expected_response`.
    status_fallback: AtomicU64,
}

/// The metrics a row can be, by its `metric_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Duration,
    Failed,
    Check,
    Vus,
    Other,
}

fn metric_of(name: &[u8]) -> Metric {
    match name {
        b"http_req_duration" => Metric::Duration,
        b"http_req_failed" => Metric::Failed,
        b"checks" => Metric::Check,
        b"vus" => Metric::Vus,
        _ => Metric::Other,
    }
}

/// The metric of an unquoted line whose first field is the metric name, without
/// splitting it: most rows are metrics the report skips.
#[inline]
fn metric_of_line(line: &[u8]) -> Metric {
    const PREFIXES: [(&[u8], Metric); 4] = [
        (b"http_req_duration,", Metric::Duration),
        (b"http_req_failed,", Metric::Failed),
        (b"checks,", Metric::Check),
        (b"vus,", Metric::Vus),
    ];
    for (prefix, metric) in PREFIXES {
        if line.starts_with(prefix) {
            return metric;
        }
    }
    Metric::Other
}

/// The fields of one record: an unquoted line split at its commas (`sep` 1; only up to
/// the last column a request needs, the rest is split when asked for), or the unescaped
/// fields `csv_core` wrote one after the other (`sep` 0).
struct Fields<'a> {
    bytes: &'a [u8],
    ends: &'a [usize],
    sep: usize,
}

impl<'a> Fields<'a> {
    fn get(&self, index: usize) -> &'a [u8] {
        let start = |i: usize| {
            if i == 0 {
                0
            } else {
                self.ends[i - 1] + self.sep
            }
        };
        if index < self.ends.len() {
            return &self.bytes[start(index)..self.ends[index]];
        }
        let split_to = self.ends.len();
        if self.sep == 0 || split_to == 0 || self.ends[split_to - 1] >= self.bytes.len() {
            return b"";
        }
        // Past the split: walk on from the last comma found.
        let mut from = self.ends[split_to - 1] + 1;
        for _ in split_to..index {
            match memchr::memchr(b',', &self.bytes[from..]) {
                Some(i) => from += i + 1,
                None => return b"",
            }
        }
        let end = memchr::memchr(b',', &self.bytes[from..]).map_or(self.bytes.len(), |i| from + i);
        &self.bytes[from..end]
    }

    fn opt(&self, index: Option<usize>) -> &'a [u8] {
        index.map_or(b"", |i| self.get(i))
    }
}

/// Timestamps as k6's `timeFormat` writes them: `unix` (seconds, the default),
/// `unix_milli`, `unix_micro`, `unix_nano`, told apart by size, or RFC 3339.
fn timestamp_ms(raw: &[u8]) -> Result<i64, String> {
    let text = raw.trim_ascii();
    if !text.is_empty() && text.iter().all(u8::is_ascii_digit) && text.len() <= 19 {
        // At most 19 digits: fits an i64 (nanoseconds until 2262).
        let n = text.iter().fold(0_i64, |n, d| {
            n.wrapping_mul(10).wrapping_add(i64::from(d - b'0'))
        });
        if n < 0 {
            return Err(bad_timestamp(raw));
        }
        return Ok(match n {
            n if n < 100_000_000_000 => n * 1000,
            n if n < 100_000_000_000_000 => n,
            n if n < 100_000_000_000_000_000 => n / 1000,
            n => n / 1_000_000,
        });
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .ok_or_else(|| bad_timestamp(raw))
}

fn bad_timestamp(raw: &[u8]) -> String {
    format!(
        "expected a timestamp in column \"timestamp\" (Unix seconds, milli-, micro- or \
         nanoseconds, or RFC 3339), found \"{}\"",
        shown(raw)
    )
}

fn shown(raw: &[u8]) -> String {
    crate::sanitize::one_line(&String::from_utf8_lossy(raw.trim_ascii()), 40)
}

fn value_of(raw: &[u8]) -> Result<f64, String> {
    match parse_number_bytes(raw) {
        Ok(Some(v)) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "expected a number (0 or more) in column \"metric_value\", found \"{}\"",
            shown(raw)
        )),
    }
}

/// Per-chunk state of the parser.
struct ChunkState<'s> {
    columns: &'s Columns,
    shared: &'s Shared,
    checks: CheckCounts,
    /// The check of the last `checks` row, counted here until another one comes.
    last_check: Option<LastCheck>,
    failed_rows: u64,
    failed_true: u64,
    status_fallback: u64,
    users: Option<u32>,
    error_text: Vec<u8>,
}

impl ChunkState<'_> {
    fn row(
        &mut self,
        fields: &Fields<'_>,
        metric: Metric,
        agg: &mut SampleAggregator,
    ) -> Result<(), String> {
        let c = self.columns;
        match metric {
            Metric::Other => {}
            Metric::Vus => {
                let v = value_of(fields.get(c.value))?;
                self.users = Some(v.round().min(f64::from(u32::MAX)) as u32);
            }
            Metric::Failed => {
                let v = value_of(fields.get(c.value))?;
                self.failed_rows += 1;
                self.failed_true += u64::from(v != 0.0);
            }
            Metric::Check => {
                let v = value_of(fields.get(c.value))?;
                let (group, check) = (fields.opt(c.group), fields.opt(c.check));
                // The same check as the row before (k6 writes them in bursts) costs no
                // hash; a new one is copied once.
                let at = match self.last_check.as_mut() {
                    Some((g, n, counts)) if g == group && n == check => counts,
                    _ => {
                        self.flush_last_check();
                        &mut self
                            .last_check
                            .insert((group.to_vec(), check.to_vec(), (0, 0)))
                            .2
                    }
                };
                if v != 0.0 {
                    at.0 += 1;
                } else {
                    at.1 += 1;
                }
            }
            Metric::Duration => {
                let elapsed_ms = value_of(fields.get(c.value))?;
                let timestamp_ms = timestamp_ms(fields.get(c.timestamp))?;
                let mut name = fields.opt(c.name);
                if name.is_empty() {
                    name = fields.opt(c.url);
                }
                let status = fields.opt(c.status);
                let ok = match fields.opt(c.expected) {
                    b"true" => true,
                    b"false" => false,
                    _ => {
                        self.status_fallback += 1;
                        match std::str::from_utf8(status)
                            .ok()
                            .and_then(|s| s.parse::<u32>().ok())
                        {
                            Some(code) => (1..400).contains(&code),
                            None => fields.opt(c.error).is_empty(),
                        }
                    }
                };
                self.error_text.clear();
                if !ok {
                    let error = fields.opt(c.error);
                    if !error.is_empty() {
                        self.error_text.extend_from_slice(error);
                    } else if !status.is_empty() && status != b"0" {
                        self.error_text.extend_from_slice(b"HTTP ");
                        self.error_text.extend_from_slice(status);
                    } else {
                        self.error_text
                            .extend_from_slice(b"failed (k6 wrote no error)");
                    }
                }
                agg.record(&Sample {
                    method: fields.opt(c.method),
                    name,
                    timestamp_ms,
                    elapsed_ms,
                    ok,
                    error: &self.error_text,
                    users: self.users,
                });
            }
        }
        Ok(())
    }

    fn flush_last_check(&mut self) {
        if let Some((group, name, (passes, fails))) = self.last_check.take() {
            let at = self.checks.entry((group, name)).or_default();
            at.0 += passes;
            at.1 += fails;
        }
    }

    fn finish(mut self) {
        self.flush_last_check();
        let shared = self.shared;
        shared
            .failed_rows
            .fetch_add(self.failed_rows, Ordering::Relaxed);
        shared
            .failed_true
            .fetch_add(self.failed_true, Ordering::Relaxed);
        shared
            .status_fallback
            .fetch_add(self.status_fallback, Ordering::Relaxed);
        if self.checks.is_empty() {
            return;
        }
        let Ok(mut all) = shared.checks.lock() else {
            return;
        };
        for (key, (passes, fails)) in self.checks {
            if let Some(at) = all.get_mut(&key) {
                at.0 += passes;
                at.1 += fails;
            } else if all.len() < MAX_CHECKS {
                all.insert(key, (passes, fails));
            } else {
                shared
                    .checks_dropped
                    .fetch_add(passes + fails, Ordering::Relaxed);
            }
        }
    }
}

fn parse_chunk(
    columns: &Columns,
    chunk: &[u8],
    agg: &mut SampleAggregator,
    shared: &Shared,
) -> Result<(), ChunkError> {
    let mut state = ChunkState {
        columns,
        shared,
        checks: HashMap::new(),
        last_check: None,
        failed_rows: 0,
        failed_true: 0,
        status_fallback: 0,
        users: None,
        error_text: Vec::new(),
    };
    // One pass finds the first quote or NUL; only a chunk with a quote is searched for a
    // NUL after it.
    let first = memchr::memchr2(b'"', 0, chunk);
    let quoted = first.is_some_and(|i| chunk[i] == b'"');
    let nul = match first {
        Some(i) if chunk[i] == 0 => Some(i),
        Some(i) => memchr::memchr(0, &chunk[i..]).map(|j| i + j),
        None => None,
    };
    if let Some(at) = nul {
        return Err(ChunkError {
            relative_line: memchr::memchr_iter(b'\n', &chunk[..at]).count() as u64 + 1,
            message: NUL_BYTES.into(),
        });
    }
    let commas_per_row = columns.field_count - 1;
    let mut ends = [0_usize; MAX_FIELDS];
    let mut unquoted = Vec::new();
    let mut quoted_ends = Vec::new();
    let mut pos = 0;
    let mut line_no = 1_u64;
    let metric_first = columns.metric == 0;
    while pos < chunk.len() {
        let end = memchr::memchr(b'\n', &chunk[pos..]).map_or(chunk.len(), |i| pos + i);
        let mut line = &chunk[pos..end];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if quoted && memchr::memchr(b'"', line).is_some() {
            // A record with quotes (a check name with a comma...), possibly over lines.
            let (used, lines) = split_quoted(&chunk[pos..], &mut unquoted, &mut quoted_ends)
                .map_err(|message| ChunkError {
                    relative_line: line_no,
                    message,
                })?;
            if quoted_ends.len() != columns.field_count {
                return Err(ChunkError {
                    relative_line: line_no,
                    message: shape_message(columns, quoted_ends.len()),
                });
            }
            let fields = Fields {
                bytes: &unquoted,
                ends: &quoted_ends,
                sep: 0,
            };
            let metric = metric_of(fields.get(columns.metric));
            state
                .row(&fields, metric, agg)
                .map_err(|message| ChunkError {
                    relative_line: line_no,
                    message,
                })?;
            pos += used;
            line_no += lines;
            continue;
        }
        pos = end + 1;
        line_no += 1;
        if line.is_empty() {
            continue;
        }
        let metric = if metric_first {
            metric_of_line(line)
        } else {
            Metric::Duration
        };
        if metric == Metric::Other {
            continue;
        }
        // Every row the report uses is checked for its shape (a plain count the compiler
        // vectorises), then split only as far as its metric needs; a field past the split
        // is found when asked for.
        let commas = line.iter().filter(|&&b| b == b',').count();
        if commas != commas_per_row {
            return Err(ChunkError {
                relative_line: line_no - 1,
                message: shape_message(columns, commas + 1),
            });
        }
        let needed = match metric {
            Metric::Failed | Metric::Vus if metric_first => columns.value,
            Metric::Check if metric_first => columns.check_needed,
            _ => columns.last_needed,
        };
        let mut n = 0;
        for i in memchr::memchr_iter(b',', line) {
            ends[n] = i;
            n += 1;
            if n > needed {
                break;
            }
        }
        if n <= needed {
            ends[n] = line.len();
            n += 1;
        }
        let fields = Fields {
            bytes: line,
            ends: &ends[..n],
            sep: 1,
        };
        let metric = if metric_first {
            metric
        } else {
            metric_of(fields.get(columns.metric))
        };
        state
            .row(&fields, metric, agg)
            .map_err(|message| ChunkError {
                relative_line: line_no - 1,
                message,
            })?;
    }
    state.finish();
    Ok(())
}

fn shape_message(columns: &Columns, found: usize) -> String {
    format!(
        "expected {} fields as in the header, found {found}",
        columns.field_count
    )
}

/// Splits one quoted record at the start of `input` with `csv_core`; returns the bytes
/// it used (its line end included) and the lines it spans.
fn split_quoted(
    input: &[u8],
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(usize, u64), String> {
    let mut reader = csv_core::Reader::new();
    if out.len() < 4096 {
        out.resize(4096, 0);
    }
    ends.clear();
    let mut ends_buf = [0_usize; MAX_FIELDS];
    let mut used = 0;
    let mut written = 0;
    let mut fields = 0;
    loop {
        let rest = if used < input.len() {
            &input[used..]
        } else {
            &[][..]
        };
        let (result, nin, nout, nend) =
            reader.read_record(rest, &mut out[written..], &mut ends_buf[fields..]);
        used += nin;
        written += nout;
        fields += nend;
        match result {
            csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
            // At the chunk's end the next call (empty input) ends the record; a quote
            // still open there never closes (chunks end at record ends).
            csv_core::ReadRecordResult::InputEmpty if rest.is_empty() => {
                return Err("unbalanced quote: the record never ends".into());
            }
            csv_core::ReadRecordResult::InputEmpty => {}
            csv_core::ReadRecordResult::OutputFull if out.len() >= MAX_RECORD_BYTES => {
                return Err(record_too_long());
            }
            csv_core::ReadRecordResult::OutputFull => {
                let grown = (out.len() * 2).min(MAX_RECORD_BYTES);
                out.resize(grown, 0);
            }
            csv_core::ReadRecordResult::OutputEndsFull => {
                return Err(format!("more than {MAX_FIELDS} fields"));
            }
        }
    }
    // csv_core ends a record at `\r` and would skip the `\n` on its next call.
    if used > 0 && input[used - 1] == b'\r' && input.get(used) == Some(&b'\n') {
        used += 1;
    }
    ends.extend_from_slice(&ends_buf[..fields]);
    let lines = memchr::memchr_iter(b'\n', &input[..used]).count() as u64;
    Ok((used, lines.max(1)))
}

fn checks_table(checks: CheckCounts) -> Vec<CheckRow> {
    let mut rows: Vec<CheckRow> = checks
        .into_iter()
        .map(|((group, name), (passes, fails))| CheckRow {
            group: String::from_utf8_lossy(&group).into_owned(),
            name: String::from_utf8_lossy(&name).into_owned(),
            passes,
            fails,
        })
        .collect();
    rows.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    rows
}

/// `http://host:port` of a URL, and the rest (`/path?query`, `/` when empty).
fn split_origin(url: &str) -> Option<(&str, &str)> {
    let scheme_end = ["http://", "https://", "ws://", "wss://"]
        .iter()
        .find(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s))?
        .len();
    let rest = &url[scheme_end..];
    let path_at = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (origin, path) = url.split_at(scheme_end + path_at);
    Some((origin, if path.is_empty() { "/" } else { path }))
}

/// The name an endpoint is shown by (see the module's documentation), or `None` to keep it.
fn display_name(method: &str, name: &str, main_origin: Option<&str>) -> Option<String> {
    if let Some((origin, path)) = split_origin(name) {
        return (Some(origin) == main_origin).then(|| path.to_owned());
    }
    let rest = name.strip_prefix(method)?.strip_prefix(' ')?;
    (!method.is_empty() && !rest.is_empty()).then(|| rest.to_owned())
}

/// Renames the run's endpoints everywhere they appear (table, series, failures).
fn rename_endpoints(run: &mut RunData, path: &Path) {
    let mut by_origin: HashMap<&str, u64> = HashMap::new();
    for e in &run.endpoints {
        if let Some((origin, _)) = split_origin(&e.name) {
            *by_origin.entry(origin).or_default() += e.requests;
        }
    }
    let main = by_origin
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(o, _)| (*o).to_owned());
    let mut renames: HashMap<(String, String), String> = HashMap::new();
    for e in &run.endpoints {
        if let Some(new) = display_name(&e.method, &e.name, main.as_deref()) {
            renames.insert((e.method.clone(), e.name.clone()), new);
        }
    }
    // A rename that would make two endpoints one is not made.
    let mut taken: HashMap<(String, String), usize> = HashMap::new();
    for e in &run.endpoints {
        let key = (e.method.clone(), e.name.clone());
        let shown = renames.get(&key).cloned().unwrap_or_else(|| e.name.clone());
        *taken.entry((e.method.clone(), shown)).or_default() += 1;
    }
    renames.retain(|(method, _), new| taken.get(&(method.clone(), new.clone())) == Some(&1));
    if renames.is_empty() {
        return;
    }
    let apply = |method: &str, name: &mut String| {
        if let Some(new) = renames.get(&(method.to_owned(), name.clone())) {
            *name = new.clone();
        }
    };
    for e in &mut run.endpoints {
        apply(&e.method, &mut e.name);
    }
    if let Some(h) = &mut run.history {
        for e in &mut h.endpoints {
            apply(&e.method, &mut e.name);
        }
    }
    for f in &mut run.failures {
        apply(&f.method, &mut f.name);
    }
    run.endpoints
        .sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
    if let Some(h) = &mut run.history {
        // The total stays last, as the reader put it.
        h.endpoints.sort_by(|a, b| {
            let total =
                |e: &super::model::EndpointHistory| e.method.is_empty() && e.name == "Aggregated";
            (total(a), &a.name, &a.method).cmp(&(total(b), &b.name, &b.method))
        });
    }
    if let Some(origin) = main {
        run.notes.push(format!(
            "{}: k6 names that are URLs of {origin} are shown as their path",
            path.display()
        ));
    }
}

// ---------------------------------------------------------------------------------------
// The end-of-test summary.

fn json_error(path: &Path, e: &serde_json::Error) -> ReportError {
    ReportError::malformed(path, e.line() as u64, format!("not a k6 summary JSON: {e}"))
}

/// A metric of either summary shape: `handleSummary`'s `{type, values: {...}}` or
/// `--summary-export`'s flat `{avg, min, ...}`.
fn metric_values(metric: &Value) -> Option<&serde_json::Map<String, Value>> {
    match metric.get("values") {
        Some(Value::Object(values)) => Some(values),
        _ => metric.as_object(),
    }
}

fn number(values: &serde_json::Map<String, Value>, key: &str) -> Option<f64> {
    values
        .get(key)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
}

/// `name:GET /x,method:GET` of `http_req_duration{name:GET /x,method:GET}`.
fn submetric_tags(key: &str, metric: &str) -> Option<String> {
    key.strip_prefix(metric)?
        .strip_prefix('{')?
        .strip_suffix('}')
        .map(str::to_owned)
}

/// Failed and total requests from a `http_req_failed` rate: its `passes` are the
/// requests that failed (the rate counts `true` values), `fails` those that did not.
fn failed_counts(metric: &Value) -> Option<(u64, u64)> {
    let values = metric_values(metric)?;
    let failed = number(values, "passes")?;
    let ok = number(values, "fails")?;
    Some((failed as u64, (failed + ok) as u64))
}

fn read_summary(path: &Path, bytes: &[u8]) -> Result<RunData, ReportError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| json_error(path, &e))?;
    let Some(metrics) = doc.get("metrics").and_then(Value::as_object) else {
        return Err(ReportError::malformed(
            path,
            1,
            "expected a k6 end-of-test summary: a JSON object with \"metrics\" (from \
             --summary-export or handleSummary)",
        ));
    };
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    let reqs = metrics.get("http_reqs").and_then(metric_values);
    let count = reqs.and_then(|v| number(v, "count"));
    let rate = reqs.and_then(|v| number(v, "rate"));
    let duration_secs = doc
        .pointer("/state/testRunDurationMs")
        .and_then(Value::as_f64)
        .map(|ms| ms / 1000.0)
        .or_else(|| match (count, rate) {
            (Some(c), Some(r)) if r > 0.0 => Some(c / r),
            _ => None,
        })
        .filter(|d| *d > 0.0);
    let Some(duration) = metrics.get("http_req_duration") else {
        return Err(ReportError::EmptyRun {
            path: path.to_owned(),
            reason: "the k6 summary has no http_req_duration metric: no HTTP requests".into(),
        });
    };
    let Some((failed, total)) = metrics.get("http_req_failed").and_then(failed_counts) else {
        return Err(ReportError::EmptyRun {
            path: path.to_owned(),
            reason: "the k6 summary has no http_req_failed metric (k6 0.31 and later write \
                     it): the failed requests are unknown"
                .into(),
        });
    };
    let mut aggregate = summary_stats(
        path,
        "",
        "Aggregated",
        duration,
        failed,
        total,
        duration_secs,
        &mut warnings,
    );
    if let Some(r) = rate {
        aggregate.rps = r;
    }
    // Endpoints: only submetrics whose thresholds made k6 keep them, and only those with a
    // request count (a http_req_failed submetric with the same tags).
    let mut endpoints = Vec::new();
    let mut keys: Vec<&String> = metrics.keys().collect();
    keys.sort();
    for key in keys {
        let Some(tags) = submetric_tags(key, "http_req_duration") else {
            continue;
        };
        if tags == "expected_response:true" {
            continue;
        }
        let (method, name) = endpoint_of_tags(&tags);
        match metrics
            .get(&format!("http_req_failed{{{tags}}}"))
            .and_then(failed_counts)
        {
            Some((failed, total)) => endpoints.push(summary_stats(
                path,
                &method,
                &name,
                &metrics[key],
                failed,
                total,
                duration_secs,
                &mut warnings,
            )),
            None => {
                let values = metric_values(&metrics[key]);
                let p95 = values.and_then(|v| number(v, "p(95)"));
                notes.push(format!(
                    "{}: {key} has latencies (p95 {}) but no request count (no \
                     http_req_failed{{{tags}}} threshold): not in the endpoint table",
                    path.display(),
                    p95.map_or_else(|| "unknown".into(), |v| format!("{v:.1} ms"))
                ));
            }
        }
    }
    let covered: u64 = endpoints.iter().map(|e| e.requests).sum();
    if covered < total {
        // The whole run as an endpoint too, so findings and targets judge every request,
        // not only those of the submetrics thresholds named.
        let mut all = aggregate.clone();
        all.name = ALL_REQUESTS.into();
        endpoints.push(all);
        notes.push(format!(
            "{}: k6 summary: {} of {total} requests belong to no endpoint it names (a summary \
             keeps per-endpoint values only for submetrics thresholds name, e.g. \
             'http_req_duration{{name:...}}' with 'http_req_failed{{name:...}}'): the run is \
             also judged as one endpoint, \"{ALL_REQUESTS}\"",
            path.display(),
            total - covered
        ));
    }
    for key in metrics.keys().filter(|k| k.starts_with("http_req_failed{")) {
        let tags = submetric_tags(key, "http_req_failed").unwrap_or_default();
        if !metrics.contains_key(&format!("http_req_duration{{{tags}}}")) {
            notes.push(format!(
                "{}: {key}: failures only (no http_req_duration{{{tags}}} in the summary)",
                path.display()
            ));
        }
    }
    notes.insert(
        0,
        format!(
            "{}: k6 end-of-test summary ({}): {total} requests, {failed} failed{}; no time \
             series (a summary has none: run k6 with --out csv for one)",
            path.display(),
            if metrics
                .get("http_req_duration")
                .and_then(|m| m.get("values"))
                .is_some()
            {
                "handleSummary data"
            } else {
                "--summary-export"
            },
            duration_secs.map_or_else(String::new, |d| format!(" over {d:.0} s"))
        ),
    );
    if let Some(note) = thresholds_note(metrics) {
        notes.push(format!("{}: {note}", path.display()));
    }
    let mut checks = Vec::new();
    if let Some(root) = doc.get("root_group") {
        collect_checks(root, &mut checks);
    }
    checks.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    Ok(RunData {
        files: RunFiles {
            stats: Some(path.to_owned()),
            ..RunFiles::default()
        },
        generation: None,
        endpoints,
        aggregate: Some(aggregate),
        history: None,
        failures: Vec::new(),
        exceptions: Vec::new(),
        checks,
        notes,
        warnings,
    })
}

/// k6's own threshold verdicts, as the summary has them: `{rule: {ok}}` from
/// handleSummary, `{rule: failed}` from --summary-export (`true` there means it failed).
fn thresholds_note(metrics: &serde_json::Map<String, Value>) -> Option<String> {
    let mut keys: Vec<&String> = metrics.keys().collect();
    keys.sort();
    let mut total = 0;
    let mut failed = Vec::new();
    for key in keys {
        let Some(rules) = metrics[key].get("thresholds").and_then(Value::as_object) else {
            continue;
        };
        for (rule, verdict) in rules {
            let ok = match verdict {
                Value::Bool(failed) => Some(!failed),
                other => other.get("ok").and_then(Value::as_bool),
            };
            total += 1;
            match ok {
                Some(true) => {}
                Some(false) => failed.push(format!("{key} {rule}")),
                None => failed.push(format!("{key} {rule} (verdict unknown)")),
            }
        }
    }
    (total > 0).then(|| {
        let mut note = format!("k6 thresholds: {} of {total} passed", total - failed.len());
        if !failed.is_empty() {
            note.push_str("; not passed: ");
            note.push_str(&failed.join(", "));
        }
        note
    })
}

/// `name:GET /x` → (`GET`, `/x`); `method:POST,url:http://h/login` → (`POST`, the URL).
fn endpoint_of_tags(tags: &str) -> (String, String) {
    let mut method = String::new();
    let mut name = None;
    let mut url = None;
    for pair in tags.split(',') {
        match pair.split_once(':') {
            Some(("method", v)) => method = v.to_owned(),
            Some(("name", v)) => name = Some(v.to_owned()),
            Some(("url", v)) => url = Some(v.to_owned()),
            _ => {}
        }
    }
    let name = name.or(url).unwrap_or_else(|| tags.to_owned());
    if method.is_empty()
        && let Some((m, rest)) = name.split_once(' ')
        && !m.is_empty()
        && m.bytes().all(|b| b.is_ascii_uppercase())
    {
        return (m.to_owned(), rest.to_owned());
    }
    if let Some((_, path)) = split_origin(&name) {
        return (method, path.to_owned());
    }
    (method, name)
}

#[allow(clippy::too_many_arguments)]
fn summary_stats(
    path: &Path,
    method: &str,
    name: &str,
    metric: &Value,
    failed: u64,
    total: u64,
    duration_secs: Option<f64>,
    warnings: &mut Vec<String>,
) -> EndpointStats {
    let values = metric_values(metric).cloned().unwrap_or_default();
    let mut percentiles: Vec<PercentileValue> = values
        .iter()
        .filter_map(|(k, v)| {
            let percent: f64 = k.strip_prefix("p(")?.strip_suffix(')')?.parse().ok()?;
            Some(PercentileValue {
                percent,
                millis: v.as_f64(),
            })
        })
        .collect();
    let med = number(&values, "med");
    if let Some(m) = med
        && !percentiles.iter().any(|p| p.percent == 50.0)
    {
        percentiles.push(PercentileValue {
            percent: 50.0,
            millis: Some(m),
        });
    }
    percentiles.sort_by(|a, b| a.percent.total_cmp(&b.percent));
    let at = |p: f64| {
        percentiles
            .iter()
            .find(|x| (x.percent - p).abs() < 1e-9)
            .and_then(|x| x.millis)
    };
    let label = super::model::endpoint_label(method, name);
    if at(99.0).is_none() {
        warnings.push(format!(
            "{}: {}: the k6 summary has no p(99) (k6's summaryTrendStats default is avg, \
             min, med, max, p(90), p(95)): p99 is unknown",
            path.display(),
            if label.is_empty() {
                "all requests".into()
            } else {
                label
            }
        ));
    }
    EndpointStats {
        method: method.to_owned(),
        name: name.to_owned(),
        requests: total,
        failures: failed,
        error_pct: if total > 0 {
            failed as f64 * 100.0 / total as f64
        } else {
            0.0
        },
        median_ms: med,
        average_ms: number(&values, "avg"),
        min_ms: number(&values, "min"),
        max_ms: number(&values, "max"),
        p50_ms: at(50.0),
        p95_ms: at(95.0),
        p99_ms: at(99.0),
        rps: duration_secs.map_or(0.0, |d| total as f64 / d),
        failures_per_sec: duration_secs.map(|d| failed as f64 / d),
        percentiles,
    }
}

/// Checks of a group and its subgroups; both shapes (arrays in handleSummary data, maps
/// keyed by name in --summary-export).
fn collect_checks(group: &Value, out: &mut Vec<CheckRow>) {
    let path = group
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let items = |v: Option<&Value>| -> Vec<Value> {
        match v {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Object(m)) => m.values().cloned().collect(),
            _ => Vec::new(),
        }
    };
    for check in items(group.get("checks")) {
        if out.len() >= MAX_CHECKS {
            return;
        }
        out.push(CheckRow {
            group: path.clone(),
            name: check
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            passes: check.get("passes").and_then(Value::as_u64).unwrap_or(0),
            fails: check.get("fails").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    for sub in items(group.get("groups")) {
        collect_checks(&sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_every_time_format() {
        assert_eq!(timestamp_ms(b"1796410565").unwrap(), 1_796_410_565_000);
        assert_eq!(timestamp_ms(b"1796410565123").unwrap(), 1_796_410_565_123);
        assert_eq!(
            timestamp_ms(b"1796410565123456").unwrap(),
            1_796_410_565_123
        );
        assert_eq!(
            timestamp_ms(b"1796410565123456789").unwrap(),
            1_796_410_565_123
        );
        assert_eq!(
            timestamp_ms(b"2026-12-04T18:56:31.826788214Z").unwrap(),
            1_796_410_591_826
        );
        assert!(timestamp_ms(b"soon").is_err());
    }

    #[test]
    fn names_line_up_with_locust() {
        let main = Some("http://127.0.0.1:8000");
        assert_eq!(
            display_name("GET", "http://127.0.0.1:8000/api/users", main).as_deref(),
            Some("/api/users")
        );
        assert_eq!(
            display_name("GET", "http://127.0.0.1:8000/search?q=1", main).as_deref(),
            Some("/search?q=1")
        );
        assert_eq!(
            display_name("GET", "http://127.0.0.1:8000", main).as_deref(),
            Some("/")
        );
        assert_eq!(display_name("GET", "http://other:1/x", main), None);
        assert_eq!(
            display_name("GET", "GET /api/items/:id", main).as_deref(),
            Some("/api/items/:id")
        );
        assert_eq!(display_name("POST", "GET /x", main), None);
        assert_eq!(display_name("GET", "ItemsURL", main), None);
    }

    #[test]
    fn submetric_tags_name_an_endpoint() {
        assert_eq!(
            endpoint_of_tags("name:GET /api/items/:id"),
            ("GET".into(), "/api/items/:id".into())
        );
        assert_eq!(
            endpoint_of_tags("method:POST,url:http://h:1/login"),
            ("POST".into(), "/login".into())
        );
        assert_eq!(
            endpoint_of_tags("group:::browse"),
            (String::new(), "group:::browse".into())
        );
    }
}
