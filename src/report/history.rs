//! The `_stats_history.csv` reader: streams files of any size in bounded memory.
//!
//! One thread reads fixed-size chunks cut at record boundaries, worker threads parse
//! chunks in parallel into compact rows and mergeable partial summaries, and the calling
//! thread folds the results in file order into bounded time series. At most
//! [`MAX_CHUNKS_IN_FLIGHT`] chunks exist at once, so memory does not grow with the file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use csv::ByteRecord;

use super::csv_file::{NUL_BYTES, open_text, record_too_long};
use super::error::ReportError;
use super::locust::{
    Header, LAST_LINE_INCOMPLETE, col, count_cell, is_aggregate_row, number_cell,
    parse_number_bytes, percentile_of_header,
};
use super::model::{EndpointHistory, HistoryPoint, HistorySummary};

/// Bytes handed to a parser thread at a time.
pub const CHUNK_BYTES: usize = 2 * 1024 * 1024;
pub use super::csv_file::MAX_RECORD_BYTES;
/// Chunks read but not yet folded; bounds memory to about this many × (chunk + its rows).
pub const MAX_CHUNKS_IN_FLIGHT: usize = 8;
/// Points per time series: a chart is never wider than a terminal.
pub const MAX_SERIES_POINTS: usize = 240;
/// Endpoints of a chunk found by a linear scan before falling back to a hash map.
const LINEAR_LOOKUP_ENDPOINTS: usize = 32;
/// Endpoints followed over time; rows of further endpoints are counted, not charted.
pub const MAX_HISTORY_ENDPOINTS: usize = 2_000;
/// Bytes of endpoint names followed over time, in all (names can be up to a record long).
pub const MAX_HISTORY_NAME_BYTES: usize = 16 * 1024 * 1024;

/// Bytes of the history file read so far, for a progress gauge polled from the UI.
#[derive(Debug, Default, Clone)]
pub struct ReadProgress {
    pub bytes_read: Arc<AtomicU64>,
    pub bytes_total: Arc<AtomicU64>,
}

impl ReadProgress {
    pub fn fraction(&self) -> f64 {
        let total = self.bytes_total.load(Ordering::Relaxed);
        if total == 0 {
            0.0
        } else {
            self.bytes_read.load(Ordering::Relaxed) as f64 / total as f64
        }
    }
}

/// Where each field of a history row is.
#[derive(Debug, Clone)]
struct HistoryColumns {
    field_count: usize,
    timestamp: usize,
    users: Option<usize>,
    method: Option<usize>,
    name: usize,
    rps: Option<usize>,
    failures_per_sec: Option<usize>,
    p50: Option<usize>,
    p95: Option<usize>,
    p99: Option<usize>,
    names: Vec<String>,
    raw_header: ByteRecord,
    /// The header line as written, to skip repeated headers without splitting them.
    header_line: Vec<u8>,
    /// The highest column index read: unquoted lines are split only that far.
    last_needed: usize,
}

impl HistoryColumns {
    fn new(path: &Path, raw_header: ByteRecord, header_line: &[u8]) -> Result<Self, ReportError> {
        let header = Header::from_fields(raw_header.iter());
        let need = |aliases: &[&str]| {
            header.find(aliases).ok_or_else(|| {
                ReportError::malformed(
                    path,
                    1,
                    format!("expected a \"{}\" column in the history header", aliases[0]),
                )
            })
        };
        let percentile = |wanted: f64| {
            header
                .names
                .iter()
                .position(|n| percentile_of_header(n).is_some_and(|p| (p - wanted).abs() < 1e-9))
        };
        let mut columns = Self {
            field_count: header.names.len(),
            timestamp: need(col::TIMESTAMP)?,
            users: header.find(col::USERS),
            method: header.find(col::METHOD),
            name: need(col::NAME)?,
            rps: header.find(col::RPS),
            failures_per_sec: header.find(col::FAILURES_PER_SEC),
            p50: percentile(50.0),
            p95: percentile(95.0),
            p99: percentile(99.0),
            names: header.names.clone(),
            raw_header,
            header_line: header_line
                .strip_suffix(b"\n")
                .unwrap_or(header_line)
                .strip_suffix(b"\r")
                .unwrap_or(header_line.strip_suffix(b"\n").unwrap_or(header_line))
                .to_vec(),
            last_needed: 0,
        };
        columns.last_needed = [columns.timestamp, columns.name]
            .into_iter()
            .chain(columns.users)
            .chain(columns.method)
            .chain(columns.rps)
            .chain(columns.failures_per_sec)
            .chain(columns.p50)
            .chain(columns.p95)
            .chain(columns.p99)
            .max()
            .unwrap_or(0);
        Ok(columns)
    }
}

/// A relative-precision histogram: medians of millions of values in a few KiB.
///
/// Values fall in buckets by the top bits of their f64 representation (7 mantissa bits:
/// buckets are under 0.8% wide); each bucket keeps the smallest value seen so a median is
/// always a value that occurred, exact when values repeat (Locust rounds them).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogHistogram {
    /// (bucket key, count, smallest value), sorted by key: few buckets in practice, and a
    /// binary search over a Vec is much cheaper per row than a tree.
    buckets: Vec<(u64, u64, f64)>,
    count: u64,
    /// The bucket hit last: an endpoint's latency often repeats from one second to the next.
    last_hit: usize,
}

impl LogHistogram {
    const KEPT_MANTISSA_BITS: u32 = 7;

    fn add_counted(&mut self, key: u64, count: u64, value: f64) {
        let found = match self.buckets.get(self.last_hit) {
            Some(bucket) if bucket.0 == key => Ok(self.last_hit),
            _ => self.buckets.binary_search_by_key(&key, |b| b.0),
        };
        self.last_hit = *found.as_ref().unwrap_or_else(|i| i);
        match found {
            Ok(i) => {
                let bucket = &mut self.buckets[i];
                bucket.1 += count;
                bucket.2 = bucket.2.min(value);
            }
            Err(i) => self.buckets.insert(i, (key, count, value)),
        }
        self.count += count;
    }

    pub(crate) fn add(&mut self, value: f64) {
        if !(value.is_finite() && value >= 0.0) {
            return;
        }
        let key = value.to_bits() >> (52 - Self::KEPT_MANTISSA_BITS);
        self.add_counted(key, 1, value);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for &(key, count, min) in &other.buckets {
            self.add_counted(key, count, min);
        }
    }

    pub(crate) fn median(&self) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = self.count.div_ceil(2);
        let mut seen = 0;
        for &(_, count, min) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Some(min);
            }
        }
        None
    }
}

/// What one chunk says about one endpoint; partials merge in any order.
#[derive(Debug, Clone, Default)]
struct EndpointPartial {
    rows: u64,
    p95: LogHistogram,
    p99: LogHistogram,
    peak_p95: Option<(f64, i64)>,
    peak_p99: Option<(f64, i64)>,
    peak_rps: f64,
}

fn keep_peak(peak: &mut Option<(f64, i64)>, candidate: Option<(f64, i64)>) {
    if let Some((value, t)) = candidate
        && peak.is_none_or(|(best, _)| value > best)
    {
        *peak = Some((value, t));
    }
}

impl EndpointPartial {
    fn add(&mut self, t: i64, rps: f64, p95: Option<f64>, p99: Option<f64>) {
        self.rows += 1;
        self.peak_rps = self.peak_rps.max(rps);
        if let Some(p95) = p95.filter(|v| *v > 0.0) {
            self.p95.add(p95);
            keep_peak(&mut self.peak_p95, Some((p95, t)));
        }
        if let Some(p99) = p99.filter(|v| *v > 0.0) {
            self.p99.add(p99);
            keep_peak(&mut self.peak_p99, Some((p99, t)));
        }
    }

    fn merge(&mut self, other: &Self) {
        self.rows += other.rows;
        self.p95.merge(&other.p95);
        self.p99.merge(&other.p99);
        keep_peak(&mut self.peak_p95, other.peak_p95);
        keep_peak(&mut self.peak_p99, other.peak_p99);
        self.peak_rps = self.peak_rps.max(other.peak_rps);
    }
}

/// One history row, reduced to what the series need.
#[derive(Debug, Clone, Copy)]
struct RowPoint {
    t: i64,
    endpoint: u32,
    // f32 with NaN for "no value": 40 bytes a row instead of 96, and millions of rows
    // cross from the parser threads to the fold. Peaks and medians are taken from the
    // full-precision values before the narrowing; only chart means use these.
    users: f32,
    rps: f32,
    failures_per_sec: f32,
    p50: f32,
    p95: f32,
    p99: f32,
}

fn narrow(value: Option<f64>) -> f32 {
    value.map_or(f32::NAN, |v| v as f32)
}

fn widen(value: f32) -> Option<f64> {
    (!value.is_nan()).then_some(f64::from(value))
}

impl RowPoint {
    #[allow(clippy::too_many_arguments)]
    fn new(
        endpoint: u32,
        t: i64,
        users: Option<f64>,
        rps: f64,
        failures_per_sec: f64,
        p50: Option<f64>,
        p95: Option<f64>,
        p99: Option<f64>,
    ) -> Self {
        Self {
            t,
            endpoint,
            users: narrow(users),
            rps: rps as f32,
            failures_per_sec: failures_per_sec as f32,
            p50: narrow(p50),
            p95: narrow(p95),
            p99: narrow(p99),
        }
    }
}

/// A parsed chunk. Endpoint ids are local to the chunk (`endpoints[id]`).
#[derive(Debug, Default)]
struct ChunkOutput {
    lines: u64,
    endpoints: Vec<(String, String)>,
    partials: Vec<EndpointPartial>,
    points: Vec<RowPoint>,
}

/// Chunk buffers handed back after parsing: a fresh multi-MiB allocation per chunk costs
/// page faults and kernel zeroing on every chunk, a large share of the run time. Shared
/// by every chunked reader (Locust history, raw samples).
pub(crate) struct BytePool {
    buffers: Mutex<Vec<Vec<u8>>>,
    /// Buffers kept at most (the readers' chunks in flight).
    keep: usize,
}

impl BytePool {
    pub(crate) fn new(keep: usize) -> BytePool {
        BytePool {
            buffers: Mutex::new(Vec::new()),
            keep,
        }
    }

    fn take(&self) -> Vec<u8> {
        self.buffers
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        if let Ok(mut pool) = self.buffers.lock()
            && pool.len() < self.keep
        {
            pool.push(buffer);
        }
    }
}

/// The chunk bytes and the parsed points of the history reader, reused.
struct BufferPools {
    bytes: BytePool,
    points: Mutex<Vec<Vec<RowPoint>>>,
}

impl Default for BufferPools {
    fn default() -> BufferPools {
        BufferPools {
            bytes: BytePool::new(MAX_CHUNKS_IN_FLIGHT),
            points: Mutex::default(),
        }
    }
}

impl BufferPools {
    fn take_points(&self) -> Vec<RowPoint> {
        self.points
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    fn give_points(&self, mut points: Vec<RowPoint>) {
        points.clear();
        if let Ok(mut pool) = self.points.lock()
            && pool.len() < MAX_CHUNKS_IN_FLIGHT
        {
            pool.push(points);
        }
    }
}

/// Equality of short byte strings (timestamps, endpoint keys) with word loads inline:
/// a `memcmp` call per row for 10–30 bytes cost more than the comparison itself.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let len = a.len();
    if len < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut at = 0;
    while at + 8 <= len {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word may overlap the previous one; that is harmless for equality.
    word(a, len - 8) == word(b, len - 8)
}

/// Digits only (up to 18), as Locust and JMeter write timestamps, counts and times.
#[inline]
pub(crate) fn parse_plain_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 18 {
        return None;
    }
    let mut value = 0_u64;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

/// A parse error inside a chunk, with the line relative to the chunk's first line.
struct ChunkError {
    relative_line: u64,
    message: String,
}

/// Splits records of a chunk: unquoted lines by `memchr` on commas (only as far as the
/// last column read), quoted records through `csv_core` with reused buffers.
struct RecordSplitter {
    core: csv_core::Reader,
    unescaped: Vec<u8>,
    ends: Vec<usize>,
    /// Field ranges of the current record, into the line or into `unescaped`.
    ranges: Vec<(usize, usize)>,
}

/// Where the current record's fields are.
enum RecordBytes<'a> {
    Line(&'a [u8]),
    Unescaped,
}

impl RecordSplitter {
    fn new(field_count: usize) -> Self {
        Self {
            core: csv_core::Reader::new(),
            unescaped: vec![0; 4096],
            ends: vec![0; field_count + 1],
            ranges: Vec::with_capacity(field_count + 1),
        }
    }

    /// Splits the first `wanted` fields of the line at the start of `rest`, in a chunk
    /// known to have no quote. Returns the line's length (without its newline) and, when
    /// the line ended before `wanted` fields, its exact field count; longer lines are
    /// validated for the whole chunk at once (see [`parse_chunk`]).
    fn split_plain(&mut self, rest: &[u8], wanted: usize) -> (usize, Option<usize>) {
        self.ranges.clear();
        let mut start = 0;
        // Fields are short (numbers, a method, a name): a plain byte loop beats a SIMD
        // search restarted at every comma.
        for (i, &byte) in rest.iter().enumerate() {
            if byte == b',' {
                self.ranges.push((start, i));
                start = i + 1;
                if self.ranges.len() == wanted {
                    let tail = &rest[start..];
                    return (
                        start + memchr::memchr(b'\n', tail).unwrap_or(tail.len()),
                        None,
                    );
                }
            } else if byte == b'\n' {
                let end = if i > start && rest[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                self.ranges.push((start, end));
                return (i, Some(self.ranges.len()));
            }
        }
        let end = if rest.len() > start && rest[rest.len() - 1] == b'\r' {
            rest.len() - 1
        } else {
            rest.len()
        };
        self.ranges.push((start, end));
        (rest.len(), Some(self.ranges.len()))
    }

    /// Splits the unquoted line at the start of `rest` in one pass, keeping the ranges of
    /// the first `wanted` fields. Returns the line's length (without its newline) and its
    /// field count, or None when the line has a quote (the caller then reads it as CSV).
    fn split_unquoted(&mut self, rest: &[u8], wanted: usize) -> Option<(usize, usize)> {
        self.ranges.clear();
        let mut start = 0;
        let mut count = 0;
        let mut line_end = rest.len();
        for i in memchr::memchr3_iter(b',', b'\n', b'"', rest) {
            match rest[i] {
                b',' => {
                    self.ranges.push((start, i));
                    count += 1;
                    start = i + 1;
                    if count == wanted {
                        // The rest of the line is not read, only checked for quotes and
                        // counted to validate the row's shape, with whole-line SIMD scans.
                        let tail = &rest[start..];
                        let tail_len = memchr::memchr(b'\n', tail).unwrap_or(tail.len());
                        let tail_line = &tail[..tail_len];
                        if memchr::memchr(b'"', tail_line).is_some() {
                            return None;
                        }
                        let commas = memchr::memchr_iter(b',', tail_line).count();
                        return Some((start + tail_len, wanted + commas + 1));
                    }
                }
                b'\n' => {
                    line_end = i;
                    break;
                }
                _ => return None,
            }
        }
        let mut last_end = line_end;
        if last_end > start && rest[last_end - 1] == b'\r' {
            last_end -= 1;
        }
        self.ranges.push((start, last_end));
        Some((line_end, count + 1))
    }

    /// Reads one quoted record from `input`; returns the bytes consumed, or None at the end.
    fn read_quoted(&mut self, input: &[u8]) -> Result<Option<usize>, String> {
        use csv_core::ReadRecordResult as R;
        self.core.reset();
        let (mut consumed, mut written, mut ended) = (0, 0, 0);
        loop {
            let (result, nin, nout, nend) = self.core.read_record(
                &input[consumed..],
                &mut self.unescaped[written..],
                &mut self.ends[ended..],
            );
            consumed += nin;
            written += nout;
            ended += nend;
            if consumed > MAX_RECORD_BYTES {
                return Err(record_too_long());
            }
            match result {
                R::InputEmpty => {
                    if consumed >= input.len() {
                        // End of chunk: an empty read tells csv_core the input is over.
                        let (result, _, nout, nend) = self.core.read_record(
                            &[],
                            &mut self.unescaped[written..],
                            &mut self.ends[ended..],
                        );
                        written += nout;
                        ended += nend;
                        if !matches!(result, R::Record) {
                            return Ok(None);
                        }
                        break;
                    }
                }
                R::OutputFull => {
                    if self.unescaped.len() >= MAX_RECORD_BYTES {
                        return Err(record_too_long());
                    }
                    let doubled = self.unescaped.len() * 2;
                    self.unescaped.resize(doubled, 0);
                }
                R::OutputEndsFull => {
                    let doubled = self.ends.len() * 2;
                    self.ends.resize(doubled, 0);
                }
                R::Record => break,
                R::End => return Ok(None),
            }
        }
        let _ = written;
        self.ranges.clear();
        let mut start = 0;
        for &end in &self.ends[..ended] {
            self.ranges.push((start, end));
            start = end;
        }
        Ok(Some(consumed))
    }

    fn field<'a>(&'a self, bytes: &RecordBytes<'a>, i: usize) -> &'a [u8] {
        let (start, end) = self.ranges[i];
        match bytes {
            RecordBytes::Line(line) => &line[start..end],
            RecordBytes::Unescaped => &self.unescaped[start..end],
        }
    }
}

/// Parses one chunk of whole records.
fn parse_chunk(
    columns: &HistoryColumns,
    chunk: &[u8],
    points: Vec<RowPoint>,
) -> Result<ChunkOutput, ChunkError> {
    let mut out = ChunkOutput {
        points,
        ..ChunkOutput::default()
    };
    // NUL bytes are refused in the header (UTF-16, binary); in rows they cost a pass over
    // every chunk (~15 % of the parse) for little: a number with one fails to parse, and a
    // name with one is cleaned like any control character when shown.
    // Rows of one second share their timestamp: parse it once.
    let mut last_timestamp: (Vec<u8>, i64) = (Vec::new(), 0);
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut recent: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut next_guess = 0_usize;
    let mut key = Vec::new();
    let mut splitter = RecordSplitter::new(columns.field_count);
    let mut pos = 0;
    let mut line_no = 1_u64;
    // Without quotes every comma separates fields, so the shape of all lines is checked at
    // once: the chunk's commas must be what its rows' field counts add up to.
    let quote_free = memchr::memchr(b'"', chunk).is_none();
    let mut expected_commas = 0_usize;
    while pos < chunk.len() {
        let record_line = line_no;
        let at = |message: String| ChunkError {
            relative_line: record_line,
            message,
        };
        let rest = &chunk[pos..];
        let (bytes, field_count) = if quote_free {
            let (line_len, exact_count) = splitter.split_plain(rest, columns.last_needed + 1);
            if line_len > MAX_RECORD_BYTES {
                return Err(at(record_too_long()));
            }
            pos += (line_len + 1).min(rest.len());
            line_no += 1;
            let line = &rest[..line_len];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.trim_ascii().is_empty() {
                continue;
            }
            if line == columns.header_line.as_slice() {
                expected_commas += columns.field_count - 1;
                continue;
            }
            let count = exact_count.unwrap_or(columns.field_count);
            expected_commas += count.saturating_sub(1);
            (RecordBytes::Line(line), count)
        } else {
            match splitter.split_unquoted(rest, columns.last_needed + 1) {
                Some((line_len, count)) => {
                    if line_len > MAX_RECORD_BYTES {
                        return Err(at(record_too_long()));
                    }
                    pos += (line_len + 1).min(rest.len());
                    line_no += 1;
                    let line = &rest[..line_len];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.trim_ascii().is_empty() || line == columns.header_line.as_slice() {
                        continue;
                    }
                    (RecordBytes::Line(line), count)
                }
                None => {
                    let Some(consumed) = splitter.read_quoted(rest).map_err(at)? else {
                        break;
                    };
                    pos += consumed.max(1);
                    line_no += memchr::memchr_iter(b'\n', &rest[..consumed]).count() as u64;
                    let count = splitter.ranges.len();
                    let is_header = count == columns.raw_header.len()
                        && (0..count).all(|i| {
                            splitter.field(&RecordBytes::Unescaped, i) == &columns.raw_header[i]
                        });
                    if is_header {
                        continue;
                    }
                    (RecordBytes::Unescaped, count)
                }
            }
        };
        if field_count != columns.field_count {
            return Err(at(format!(
                "expected {} fields as in the header, found {field_count}",
                columns.field_count
            )));
        }
        let names = &columns.names;
        let field = |i: usize| splitter.field(&bytes, i);
        let num = |idx: Option<usize>| -> Result<Option<f64>, ChunkError> {
            match idx {
                // The message is only built on the (cold) error path.
                Some(i) => parse_number_bytes(field(i))
                    .or_else(|()| number_cell(field(i), &names[i]).map_err(at)),
                None => Ok(None),
            }
        };
        let timestamp = field(columns.timestamp);
        let t = if short_eq(timestamp, &last_timestamp.0) {
            last_timestamp.1
        } else {
            let t = match parse_plain_u64(timestamp) {
                Some(t) => t as i64,
                None => count_cell(timestamp, &names[columns.timestamp]).map_err(at)? as i64,
            };
            last_timestamp.0.clear();
            last_timestamp.0.extend_from_slice(timestamp);
            last_timestamp.1 = t;
            t
        };
        let method = columns.method.map_or(&b""[..], field);
        let name = field(columns.name);
        key.clear();
        key.extend_from_slice(method);
        key.push(0);
        key.extend_from_slice(name);
        // Locust writes the endpoints in the same order every second: the one after the
        // previous row's is the likely match, then a linear scan (few endpoints), then a map.
        let guess = recent.get(next_guess).filter(|(k, _)| short_eq(k, &key));
        let found = match guess.or_else(|| recent.iter().find(|(k, _)| short_eq(k, &key))) {
            Some((_, id)) => Some(*id),
            None => ids.get(key.as_slice()).copied(),
        };
        let endpoint = match found {
            Some(id) => id,
            None => {
                let id = out.endpoints.len() as u32;
                if recent.len() < LINEAR_LOOKUP_ENDPOINTS {
                    recent.push((key.clone(), id));
                } else {
                    ids.insert(key.clone(), id);
                }
                out.endpoints.push((
                    String::from_utf8_lossy(method).into_owned(),
                    String::from_utf8_lossy(name).into_owned(),
                ));
                out.partials.push(EndpointPartial::default());
                id
            }
        };
        let rps = num(columns.rps)?.unwrap_or(0.0);
        let p95 = num(columns.p95)?;
        let p99 = num(columns.p99)?;
        out.partials[endpoint as usize].add(t, rps, p95, p99);
        let row = RowPoint::new(
            endpoint,
            t,
            num(columns.users)?,
            rps,
            num(columns.failures_per_sec)?.unwrap_or(0.0),
            num(columns.p50)?,
            p95,
            p99,
        );
        next_guess = if endpoint as usize + 1 < recent.len() {
            endpoint as usize + 1
        } else {
            0
        };
        out.points.push(row);
    }
    out.lines = line_no - 1;
    if quote_free && memchr::memchr_iter(b',', chunk).count() != expected_commas {
        return Err(first_misshapen_line(columns, chunk));
    }
    Ok(out)
}

/// The first line of a quote-free chunk whose field count differs from the header's.
fn first_misshapen_line(columns: &HistoryColumns, chunk: &[u8]) -> ChunkError {
    for (i, line) in chunk.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.trim_ascii().is_empty() || line == columns.header_line.as_slice() {
            continue;
        }
        let fields = memchr::memchr_iter(b',', line).count() + 1;
        if fields != columns.field_count {
            return ChunkError {
                relative_line: i as u64 + 1,
                message: format!(
                    "expected {} fields as in the header, found {fields}",
                    columns.field_count
                ),
            };
        }
    }
    ChunkError {
        relative_line: 1,
        message: "the rows' field counts do not add up to the header's".into(),
    }
}

/// Where the last complete record of `buf` ends (just after its newline), given that
/// `buf` starts at a record boundary. A newline ends a record only outside quotes, and
/// it is outside quotes exactly when an even number of `"` precede it (an escaped `""`
/// counts twice).
pub(crate) fn last_record_end(buf: &[u8]) -> Option<usize> {
    if memchr::memchr(b'"', buf).is_none() {
        return memchr::memrchr(b'\n', buf).map(|i| i + 1);
    }
    let mut in_quotes = false;
    let mut last = None;
    for i in memchr::memchr2_iter(b'"', b'\n', buf) {
        if buf[i] == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            last = Some(i + 1);
        }
    }
    last
}

/// The end of the first record (the header), same rule as [`last_record_end`].
fn first_record_end(buf: &[u8]) -> Option<usize> {
    let mut in_quotes = false;
    for i in memchr::memchr2_iter(b'"', b'\n', buf) {
        if buf[i] == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            return Some(i + 1);
        }
    }
    None
}

/// Reads into `buf` until it holds `want` bytes or the file ends; returns false at EOF.
/// (`read_to_end` on a `take` fills spare capacity without zeroing it first.)
pub(crate) fn fill(
    file: &mut File,
    buf: &mut Vec<u8>,
    want: usize,
    path: &Path,
) -> Result<bool, ReportError> {
    if buf.len() >= want {
        return Ok(true);
    }
    let missing = want - buf.len();
    buf.reserve_exact(missing);
    let read = file
        .take(missing as u64)
        .read_to_end(buf)
        .map_err(|e| ReportError::io(path, e))?;
    Ok(read == missing)
}

pub(crate) enum ReaderMessage {
    Chunk(u64, Vec<u8>),
    /// The chunk at this sequence number could not be cut (an unbalanced quote).
    Failed(u64, ReportError),
}

/// The reader thread of every chunked reader: reads `file` (positioned after the header,
/// `carry` = bytes already read past it, starting at a record boundary) in chunks cut at
/// record ends (newlines outside `"` quotes), one token of `in_flight` per chunk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_chunks(
    mut file: File,
    mut carry: Vec<u8>,
    path: &Path,
    work: &SyncSender<ReaderMessage>,
    progress: Option<&ReadProgress>,
    pool: &BytePool,
    in_flight: &Receiver<()>,
    cut_last_line: &AtomicBool,
) {
    let mut seq = 0_u64;
    loop {
        let mut buf = pool.take();
        buf.extend_from_slice(&carry);
        carry.clear();
        buf.reserve(CHUNK_BYTES.saturating_sub(buf.len()));
        let mut want = CHUNK_BYTES.max(buf.len());
        let at_end = loop {
            let before = buf.len();
            let more = match fill(&mut file, &mut buf, want, path) {
                Ok(more) => more,
                Err(e) => {
                    let _ = work.send(ReaderMessage::Failed(seq, e));
                    return;
                }
            };
            if let Some(p) = progress {
                p.bytes_read
                    .fetch_add((buf.len() - before) as u64, Ordering::Relaxed);
            }
            if !more {
                break true;
            }
            match last_record_end(&buf) {
                Some(end) => {
                    carry.extend_from_slice(&buf[end..]);
                    buf.truncate(end);
                    break false;
                }
                None if buf.len() > MAX_RECORD_BYTES => {
                    let error = ReportError::malformed(path, 0, record_too_long());
                    let _ = work.send(ReaderMessage::Failed(seq, error));
                    return;
                }
                None => want = buf.len() * 2,
            }
        };
        if at_end {
            // Load tools end every row with a line break: a last line without one is a
            // row still being written. It is left out (the caller warns); a last record that
            // spans lines is an unbalanced quote and is parsed, to fail as before.
            let whole = last_record_end(&buf).unwrap_or(0);
            let tail = &buf[whole..];
            if !tail.trim_ascii().is_empty() && memchr::memchr(b'\n', tail).is_none() {
                cut_last_line.store(true, Ordering::Relaxed);
                buf.truncate(whole);
            }
        }
        // One token per chunk until it is folded: the reader can never run further ahead
        // of the fold than MAX_CHUNKS_IN_FLIGHT chunks, however uneven the parsing.
        if !buf.is_empty()
            && (in_flight.recv().is_err() || work.send(ReaderMessage::Chunk(seq, buf)).is_err())
        {
            return;
        }
        seq += 1;
        if at_end {
            return;
        }
    }
}

/// A time series with a fixed number of buckets: when full, neighbours merge and the
/// bucket width doubles, so any run length fits in [`MAX_SERIES_POINTS`].
#[derive(Debug, Clone)]
pub(crate) struct BoundedSeries {
    origin: Option<i64>,
    width_secs: i64,
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Mean {
    sum: f64,
    count: u32,
}

impl Mean {
    fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            self.sum += v;
            self.count += 1;
        }
    }
    fn merge(&mut self, other: Mean) {
        self.sum += other.sum;
        self.count += other.count;
    }
    fn get(self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: i64,
    users: Mean,
    rps: Mean,
    failures_per_sec: Mean,
    p50: Mean,
    p95: Mean,
    p99: Mean,
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.users.merge(other.users);
        self.rps.merge(other.rps);
        self.failures_per_sec.merge(other.failures_per_sec);
        self.p50.merge(other.p50);
        self.p95.merge(other.p95);
        self.p99.merge(other.p99);
    }
}

/// Zero percentiles in history rows mean "no request in this window", not 0 ms.
fn latency(value: Option<f64>) -> Option<f64> {
    value.filter(|v| *v > 0.0)
}

impl Default for BoundedSeries {
    fn default() -> Self {
        Self {
            origin: None,
            width_secs: 1,
            buckets: Vec::new(),
        }
    }
}

impl BoundedSeries {
    fn push(&mut self, row: &RowPoint) {
        let origin = *self.origin.get_or_insert(row.t);
        let index = (row.t - origin).max(0) / self.width_secs;
        let needs_new = self.buckets.last().is_none_or(|b| index > b.index);
        if needs_new {
            self.buckets.push(Bucket {
                index,
                ..Bucket::default()
            });
        }
        // Rows out of time order land in the latest bucket rather than reordering.
        let bucket = self.buckets.last_mut().expect("a bucket was just ensured");
        bucket.users.add(widen(row.users));
        bucket.rps.add(widen(row.rps));
        bucket.failures_per_sec.add(widen(row.failures_per_sec));
        bucket.p50.add(latency(widen(row.p50)));
        bucket.p95.add(latency(widen(row.p95)));
        bucket.p99.add(latency(widen(row.p99)));
        if self.buckets.len() > MAX_SERIES_POINTS {
            self.halve();
        }
    }

    fn halve(&mut self) {
        self.width_secs *= 2;
        let mut merged: Vec<Bucket> = Vec::with_capacity(self.buckets.len() / 2 + 1);
        for bucket in &self.buckets {
            let index = bucket.index / 2;
            match merged.last_mut() {
                Some(last) if last.index == index => last.merge(bucket),
                _ => merged.push(Bucket { index, ..*bucket }),
            }
        }
        self.buckets = merged;
    }

    pub(crate) fn points(&self) -> Vec<HistoryPoint> {
        // Rows travel as f32: four decimals is what they carry meaningfully, and it keeps
        // 76.19999694824219 out of the JSON.
        let round = |v: f64| (v * 1e4).round() / 1e4;
        let mean = |m: Mean| m.get().map(round);
        let origin = self.origin.unwrap_or(0);
        self.buckets
            .iter()
            .map(|b| HistoryPoint {
                t_start_unix: origin + b.index * self.width_secs,
                width_secs: self.width_secs,
                users: mean(b.users),
                rps: mean(b.rps).unwrap_or(0.0),
                failures_per_sec: mean(b.failures_per_sec).unwrap_or(0.0),
                p50_ms: mean(b.p50),
                p95_ms: mean(b.p95),
                p99_ms: mean(b.p99),
            })
            .collect()
    }
}

struct EndpointAccumulator {
    is_aggregate: bool,
    method: String,
    name: String,
    partial: EndpointPartial,
    series: BoundedSeries,
}

/// Folds chunk outputs, in file order, into the summary.
#[derive(Default)]
struct HistoryFold {
    ids: HashMap<(String, String), usize>,
    endpoints: Vec<EndpointAccumulator>,
    name_bytes: usize,
    timeline: BoundedSeries,
    rows: u64,
    skipped_rows: u64,
    first: Option<i64>,
    last: Option<i64>,
    peak_users: Option<f64>,
}

impl HistoryFold {
    /// Folds a chunk; gives back its row buffer for reuse.
    fn fold(&mut self, chunk: ChunkOutput) -> Vec<RowPoint> {
        let global: Vec<Option<usize>> = chunk
            .endpoints
            .into_iter()
            .zip(&chunk.partials)
            .map(|((method, name), partial)| {
                let id = match self.ids.get(&(method.clone(), name.clone())) {
                    Some(id) => *id,
                    None if self.endpoints.len() < MAX_HISTORY_ENDPOINTS
                        && self.name_bytes + method.len() + name.len()
                            <= MAX_HISTORY_NAME_BYTES =>
                    {
                        self.name_bytes += method.len() + name.len();
                        let id = self.endpoints.len();
                        self.ids.insert((method.clone(), name.clone()), id);
                        self.endpoints.push(EndpointAccumulator {
                            is_aggregate: is_aggregate_row(&method, &name),
                            method,
                            name,
                            partial: EndpointPartial::default(),
                            series: BoundedSeries::default(),
                        });
                        id
                    }
                    None => return None,
                };
                self.endpoints[id].partial.merge(partial);
                Some(id)
            })
            .collect();
        for row in &chunk.points {
            self.rows += 1;
            self.first = Some(self.first.map_or(row.t, |f| f.min(row.t)));
            self.last = Some(self.last.map_or(row.t, |l| l.max(row.t)));
            if let Some(users) = widen(row.users) {
                self.peak_users = Some(self.peak_users.map_or(users, |p| p.max(users)));
            }
            let Some(id) = global[row.endpoint as usize] else {
                self.skipped_rows += 1;
                continue;
            };
            let endpoint = &mut self.endpoints[id];
            endpoint.series.push(row);
            if endpoint.is_aggregate {
                self.timeline.push(row);
            }
        }
        chunk.points
    }

    fn finish(self) -> HistorySummary {
        let followed = self.endpoints.len();
        let endpoints = self
            .endpoints
            .into_iter()
            .map(|e| EndpointHistory {
                method: if e.is_aggregate {
                    String::new()
                } else {
                    e.method
                },
                name: e.name,
                rows: e.partial.rows,
                peak_p95_ms: e.partial.peak_p95.map(|p| p.0),
                peak_p95_at_unix: e.partial.peak_p95.map(|p| p.1),
                peak_p99_ms: e.partial.peak_p99.map(|p| p.0),
                peak_p99_at_unix: e.partial.peak_p99.map(|p| p.1),
                median_p95_ms: e.partial.p95.median(),
                median_p99_ms: e.partial.p99.median(),
                peak_rps: e.partial.peak_rps,
                series: e.series.points(),
                degradation: None,
            })
            .collect();
        let notes = if self.skipped_rows > 0 {
            vec![format!(
                "{} history rows of endpoints beyond the first {} were not charted (at most \
                 {MAX_HISTORY_ENDPOINTS} endpoints and {} MiB of names are followed)",
                self.skipped_rows,
                followed,
                MAX_HISTORY_NAME_BYTES / (1024 * 1024)
            )]
        } else {
            Vec::new()
        };
        HistorySummary {
            rows: self.rows,
            first_unix: self.first,
            last_unix: self.last,
            peak_users: self.peak_users.map(|u| u.round() as u64),
            timeline: self.timeline.points(),
            endpoints,
            notes,
            warnings: Vec::new(),
        }
    }
}

/// Reads a history file of any size with bounded memory, using the available cores.
pub fn read_history(
    path: &Path,
    progress: Option<&ReadProgress>,
) -> Result<HistorySummary, ReportError> {
    let (mut file, skipped) = open_text(path)?;
    if let (Some(p), Ok(meta)) = (progress, file.metadata()) {
        p.bytes_total.store(meta.len(), Ordering::Relaxed);
        p.bytes_read.store(skipped, Ordering::Relaxed);
    }
    // The header: read until its record ends.
    let mut head = Vec::new();
    let mut want = 64 * 1024;
    let header_end = loop {
        let more = fill(&mut file, &mut head, want, path)?;
        if let Some(end) = first_record_end(&head) {
            break end;
        }
        if !more {
            break head.len();
        }
        if head.len() >= MAX_RECORD_BYTES {
            return Err(ReportError::malformed(path, 1, record_too_long()));
        }
        want = (want * 2).min(MAX_RECORD_BYTES);
    };
    if header_end > MAX_RECORD_BYTES {
        return Err(ReportError::malformed(path, 1, record_too_long()));
    }
    if memchr::memchr(0, &head[..header_end]).is_some() {
        return Err(ReportError::malformed(path, 1, NUL_BYTES));
    }
    if head[..header_end].trim_ascii().is_empty() {
        return Err(ReportError::malformed(
            path,
            1,
            "empty file: expected a header row such as \"Timestamp,User Count,Type,Name,...\"",
        ));
    }
    let mut header_reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&head[..header_end]);
    let mut raw_header = ByteRecord::new();
    header_reader
        .read_byte_record(&mut raw_header)
        .map_err(|e| ReportError::malformed(path, 1, format!("not valid CSV: {e}")))?;
    let columns = HistoryColumns::new(path, raw_header, &head[..header_end])?;
    let header_lines = memchr::memchr_iter(b'\n', &head[..header_end]).count() as u64;
    let carry = head[header_end..].to_vec();
    drop(head);
    if let Some(p) = progress {
        p.bytes_read.store(
            skipped + (header_end + carry.len()) as u64,
            Ordering::Relaxed,
        );
    }

    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let (work_tx, work_rx) = sync_channel::<ReaderMessage>(2);
    let (token_tx, token_rx) = sync_channel::<()>(MAX_CHUNKS_IN_FLIGHT);
    for _ in 0..MAX_CHUNKS_IN_FLIGHT {
        let _ = token_tx.try_send(());
    }
    let (done_tx, done_rx) = sync_channel::<(u64, Result<ChunkOutput, ChunkError>)>(2);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let reader_failure: Mutex<Option<(u64, ReportError)>> = Mutex::new(None);
    let pools = BufferPools::default();
    let cut_last_line = AtomicBool::new(false);

    std::thread::scope(|scope| {
        let pools = &pools;
        let cut_last_line = &cut_last_line;
        scope.spawn(move || {
            read_chunks(
                file,
                carry,
                path,
                &work_tx,
                progress,
                &pools.bytes,
                &token_rx,
                cut_last_line,
            )
        });
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            let columns = &columns;
            let reader_failure = &reader_failure;
            scope.spawn(move || worker(columns, &work_rx, &done_tx, reader_failure, pools));
        }
        drop(done_tx);
        let result = collect(
            path,
            header_lines,
            done_rx,
            &reader_failure,
            pools,
            token_tx,
        );
        // Dropping the receiver lets any thread still sending stop.
        drop(work_rx);
        result
    })
    .map(|(mut summary, lines)| {
        if cut_last_line.load(Ordering::Relaxed) {
            summary.warnings.push(format!(
                "{}:{}: {LAST_LINE_INCOMPLETE} It was ignored.",
                path.display(),
                lines + 1
            ));
        }
        summary
    })
}

fn worker(
    columns: &HistoryColumns,
    work: &Mutex<Receiver<ReaderMessage>>,
    done: &SyncSender<(u64, Result<ChunkOutput, ChunkError>)>,
    reader_failure: &Mutex<Option<(u64, ReportError)>>,
    pools: &BufferPools,
) {
    loop {
        let message = {
            let Ok(receiver) = work.lock() else { return };
            receiver.recv()
        };
        match message {
            Ok(ReaderMessage::Chunk(seq, chunk)) => {
                let parsed = parse_chunk(columns, &chunk, pools.take_points());
                pools.bytes.give(chunk);
                if done.send((seq, parsed)).is_err() {
                    return;
                }
            }
            Ok(ReaderMessage::Failed(seq, error)) => {
                if let Ok(mut slot) = reader_failure.lock() {
                    *slot = Some((seq, error));
                }
                return;
            }
            Err(_) => return,
        }
    }
}

/// Folds chunk results in sequence order; the first error (in file order) wins.
fn collect(
    path: &Path,
    header_lines: u64,
    done: Receiver<(u64, Result<ChunkOutput, ChunkError>)>,
    reader_failure: &Mutex<Option<(u64, ReportError)>>,
    pools: &BufferPools,
    in_flight: SyncSender<()>,
) -> Result<(HistorySummary, u64), ReportError> {
    let mut fold = HistoryFold::default();
    let mut pending: BTreeMap<u64, Result<ChunkOutput, ChunkError>> = BTreeMap::new();
    let mut next_seq = 0_u64;
    let mut lines_before = header_lines;
    let mut drain = |pending: &mut BTreeMap<u64, Result<ChunkOutput, ChunkError>>,
                     next_seq: &mut u64,
                     fold: &mut HistoryFold|
     -> Result<(), ReportError> {
        while let Some(result) = pending.remove(next_seq) {
            match result {
                Ok(chunk) => {
                    lines_before += chunk.lines;
                    pools.give_points(fold.fold(chunk));
                    let _ = in_flight.try_send(());
                }
                Err(e) => {
                    return Err(ReportError::malformed(
                        path,
                        lines_before + e.relative_line,
                        e.message,
                    ));
                }
            }
            *next_seq += 1;
        }
        Ok(())
    };
    for (seq, result) in done.iter() {
        pending.insert(seq, result);
        drain(&mut pending, &mut next_seq, &mut fold)?;
    }
    drain(&mut pending, &mut next_seq, &mut fold)?;
    if let Some((_, error)) = reader_failure.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(match error {
            ReportError::Malformed { path, message, .. } => ReportError::Malformed {
                path,
                line: lines_before + 1,
                message,
            },
            other => other,
        });
    }
    Ok((fold.finish(), lines_before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ends_ignore_newlines_inside_quotes() {
        let buf = b"a,\"x\ny\",b\nc,\"\"\"q\"\"\"\nd,\"open\n";
        assert_eq!(first_record_end(buf), Some(10));
        assert_eq!(last_record_end(buf), Some(20));
        assert_eq!(last_record_end(b"no newline"), None);
    }

    #[test]
    fn short_equality() {
        assert!(short_eq(b"1795346552", b"1795346552"));
        assert!(!short_eq(b"1795346552", b"1795346553"));
        assert!(!short_eq(b"GET\0a", b"GET\0b"));
        assert!(short_eq(b"", b""));
        assert!(!short_eq(b"GET\0alerts_list_x", b"GET\0alerts_list_y"));
        assert!(!short_eq(b"abc", b"abcd"));
    }

    #[test]
    fn histogram_median_is_a_seen_value() {
        let mut h = LogHistogram::default();
        for v in [10.0, 10.0, 300.0, 20.0, 1000.0] {
            h.add(v);
        }
        assert_eq!(h.median(), Some(20.0));
        let mut other = LogHistogram::default();
        other.add(5.0);
        h.merge(&other);
        assert_eq!(h.median(), Some(10.0));
    }

    #[test]
    fn series_stay_bounded_and_cover_the_run() {
        let mut series = BoundedSeries::default();
        for t in 0..10_000 {
            series.push(&RowPoint::new(
                0,
                1_000 + t,
                Some(5.0),
                2.0,
                0.0,
                Some(1.0),
                Some(t as f64),
                None,
            ));
        }
        let points = series.points();
        assert!(points.len() <= MAX_SERIES_POINTS, "{}", points.len());
        assert_eq!(points[0].t_start_unix, 1_000);
        let last = points.last().unwrap();
        assert!(last.t_start_unix + last.width_secs > 10_999);
        assert_eq!(points[0].rps, 2.0);
        assert_eq!(points[0].p99_ms, None);
    }
}
