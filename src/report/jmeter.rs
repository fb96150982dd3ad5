//! JMeter CSV results (`.jtl`): one row per sample, read by column name.
//!
//! What JMeter writes is set by its `jmeter.save.saveservice.*` properties: any column may
//! be missing or moved, `sample_variables` adds columns (ignored here), the delimiter
//! (`default_delimiter`) and the timestamp (`timestamp_format`: epoch milliseconds, or a
//! `SimpleDateFormat` pattern) can change, and `print_field_names=false` drops the header
//! (then `--jtl-columns` names the columns). The delimiter and the timestamp format are
//! detected from the header and the first row unless given.
//!
//! As JMeter's HTML dashboard does: every row is a sample of its `label`, sub-results
//! included (JMeter writes them as rows of their own, labelled `parent-0`, `parent-1`...);
//! a Transaction Controller's sample (its `responseMessage` starts with "Number of samples
//! in transaction") gets its own row and chart, but is left out of the "Aggregated" total
//! and the failures table, where it would count its requests twice. The timestamp is the
//! sample's start (`sampleresult.timestamp.start=true` in the shipped jmeter.properties).
//! A failure's text is the dashboard's error key: the assertion's `failureMessage` when
//! the response code was a success, else `responseCode/responseMessage`.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::csv_file::{MAX_RECORD_BYTES, NUL_BYTES, open_text, record_too_long};
use super::error::ReportError;
use super::history::{ReadProgress, fill, parse_plain_u64};
use super::locust::{LAST_LINE_INCOMPLETE, parse_number_bytes};
use super::model::RunData;
use super::samples::{
    ChunkError, LatencyUnit, Sample, SampleAggregator, SampleOptions, read_chunked,
};

/// Delimiters JMeter is configured with in practice (`default_delimiter`), tried in order.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The columns JMeter 5.x writes by default, in its order.
pub const JMETER_5_COLUMNS: [&str; 17] = [
    "timeStamp",
    "elapsed",
    "label",
    "responseCode",
    "responseMessage",
    "threadName",
    "dataType",
    "success",
    "failureMessage",
    "bytes",
    "sentBytes",
    "grpThreads",
    "allThreads",
    "URL",
    "Latency",
    "IdleTime",
    "Connect",
];

/// How a Transaction Controller's sample says what it is (JMeter's
/// `TransactionController.NUMBER_OF_SAMPLES_IN_TRANSACTION_PREFIX`, which the dashboard's
/// `Sample.isController()` looks for).
const TRANSACTION_PREFIX: &[u8] = b"Number of samples in transaction";

/// Date patterns tried, in order, on a first timestamp that is not epoch milliseconds.
const DATE_PATTERNS: [&str; 8] = [
    "yyyy/MM/dd HH:mm:ss.SSS",
    "yyyy/MM/dd HH:mm:ss",
    "yyyy-MM-dd HH:mm:ss.SSS",
    "yyyy-MM-dd HH:mm:ss",
    "yyyy-MM-dd'T'HH:mm:ss.SSSX",
    "yyyy-MM-dd'T'HH:mm:ss.SSS",
    "yyyy-MM-dd'T'HH:mm:ssX",
    "yyyy-MM-dd'T'HH:mm:ss",
];

fn split(line: &[u8], delimiter: u8) -> Vec<&[u8]> {
    line.split(|b| *b == delimiter)
        .map(|f| {
            let f = f.trim_ascii();
            f.strip_prefix(b"\"")
                .and_then(|f| f.strip_suffix(b"\""))
                .unwrap_or(f)
        })
        .collect()
}

fn is_header(fields: &[&[u8]]) -> bool {
    let has = |name: &[u8]| fields.iter().any(|f| f.eq_ignore_ascii_case(name));
    has(b"timeStamp") && has(b"elapsed")
}

fn is_digits(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(u8::is_ascii_digit)
}

/// A row JMeter wrote without a header: an epoch-ms or dated timestamp, then `elapsed`.
fn looks_like_headerless_row(fields: &[&[u8]]) -> bool {
    fields.len() >= 3
        && is_digits(fields[1])
        && ((fields[0].len() == 13 && is_digits(fields[0]))
            || DATE_PATTERNS
                .iter()
                .any(|p| DatePattern::parse(p).is_ok_and(|p| p.millis(fields[0]).is_some())))
}

/// True for a JMeter CSV header (it has `timeStamp` and `elapsed` columns, whatever the
/// delimiter), or a row JMeter wrote without one.
pub fn looks_like_jtl(line: &[u8]) -> bool {
    DELIMITERS.iter().any(|&d| {
        let fields = split(line, d);
        fields.len() > 1 && (is_header(&fields) || looks_like_headerless_row(&fields))
    })
}

/// One letter run of a `SimpleDateFormat` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DateToken {
    Year(usize),
    Month(usize),
    Day(usize),
    Hour(usize),
    Minute(usize),
    Second(usize),
    Millis(usize),
    /// `Z` (`+0100`) or `X` (`Z`, `+01`, `+01:00`).
    Zone,
    Literal(u8),
}

/// A `timestamp_format` date pattern (the subset of Java's `SimpleDateFormat` JMeter users
/// write: `y M d H m s S`, `Z`/`X` zones, `'quoted'` text). Without a zone a time is read
/// as UTC: JMeter writes the JVM's local time and does not say which zone that was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatePattern {
    tokens: Vec<DateToken>,
    pub text: String,
}

impl DatePattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let bytes = pattern.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'\'' {
                let end = bytes[i + 1..]
                    .iter()
                    .position(|b| *b == b'\'')
                    .ok_or_else(|| format!("unclosed quote in date pattern \"{pattern}\""))?;
                if end == 0 {
                    tokens.push(DateToken::Literal(b'\''));
                }
                tokens.extend(
                    bytes[i + 1..i + 1 + end]
                        .iter()
                        .map(|b| DateToken::Literal(*b)),
                );
                i += end + 2;
                continue;
            }
            let run = bytes[i..].iter().take_while(|b| **b == c).count();
            let token = match c {
                b'y' | b'u' => DateToken::Year(run),
                b'M' => DateToken::Month(run),
                b'd' => DateToken::Day(run),
                b'H' => DateToken::Hour(run),
                b'm' => DateToken::Minute(run),
                b's' => DateToken::Second(run),
                b'S' => DateToken::Millis(run),
                b'Z' | b'X' => DateToken::Zone,
                _ if c.is_ascii_alphabetic() => {
                    return Err(format!(
                        "date pattern \"{pattern}\": the letter '{}' is not supported (use y M d \
                         H m s S Z X and 'quoted text')",
                        c as char
                    ));
                }
                _ => {
                    for _ in 0..run {
                        tokens.push(DateToken::Literal(c));
                    }
                    i += run;
                    continue;
                }
            };
            tokens.push(token);
            i += run;
        }
        if !tokens.iter().any(|t| matches!(t, DateToken::Year(_)))
            || !tokens.iter().any(|t| matches!(t, DateToken::Second(_)))
        {
            return Err(format!(
                "date pattern \"{pattern}\" needs at least the year and the seconds (yyyy, ss)"
            ));
        }
        Ok(Self {
            tokens,
            text: pattern.to_owned(),
        })
    }

    /// Unix milliseconds of `text`, or None when it does not match.
    pub fn millis(&self, text: &[u8]) -> Option<i64> {
        let (mut year, mut month, mut day) = (1970_i64, 1_i64, 1_i64);
        let (mut hour, mut minute, mut second, mut millis) = (0_i64, 0_i64, 0_i64, 0_i64);
        let mut offset_secs = 0_i64;
        let mut at = 0;
        for (k, token) in self.tokens.iter().enumerate() {
            let next_is_digit_field = self
                .tokens
                .get(k + 1)
                .is_some_and(|t| !matches!(t, DateToken::Literal(_) | DateToken::Zone));
            let mut number = |width: usize| -> Option<(i64, usize)> {
                let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
                let take = if next_is_digit_field {
                    width
                } else {
                    digits.min(9)
                };
                if take == 0 || digits < take {
                    return None;
                }
                let value = text[at..at + take]
                    .iter()
                    .fold(0_i64, |v, b| v * 10 + i64::from(b - b'0'));
                at += take;
                Some((value, take))
            };
            match *token {
                DateToken::Year(w) => {
                    let (v, n) = number(w.max(2))?;
                    year = if n == 2 { 2000 + v } else { v };
                }
                DateToken::Month(w) => month = number(w)?.0,
                DateToken::Day(w) => day = number(w)?.0,
                DateToken::Hour(w) => hour = number(w)?.0,
                DateToken::Minute(w) => minute = number(w)?.0,
                DateToken::Second(w) => second = number(w)?.0,
                DateToken::Millis(w) => {
                    let (v, n) = number(w)?;
                    // `S` is milliseconds in SimpleDateFormat; more digits are read as a
                    // fraction of a second, as people who write `SSSSSS` mean.
                    millis = if n <= 3 {
                        v
                    } else {
                        v / 10_i64.pow(n as u32 - 3)
                    };
                }
                DateToken::Zone => {
                    let rest = &text[at..];
                    match rest.first()? {
                        b'Z' => at += 1,
                        sign @ (b'+' | b'-') => {
                            let digits: Vec<i64> = rest[1..]
                                .iter()
                                .take(5)
                                .take_while(|b| b.is_ascii_digit() || **b == b':')
                                .filter(|b| b.is_ascii_digit())
                                .map(|b| i64::from(b - b'0'))
                                .collect();
                            let used = rest[1..]
                                .iter()
                                .take(5)
                                .take_while(|b| b.is_ascii_digit() || **b == b':')
                                .count();
                            let (h, m) = match digits.as_slice() {
                                [a, b] => (a * 10 + b, 0),
                                [a, b, c, d] => (a * 10 + b, c * 10 + d),
                                _ => return None,
                            };
                            offset_secs = (h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 };
                            at += 1 + used;
                        }
                        _ => return None,
                    }
                }
                DateToken::Literal(c) => {
                    if text.get(at) != Some(&c) {
                        return None;
                    }
                    at += 1;
                }
            }
        }
        if at != text.len()
            || !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(((days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs) * 1000) + millis)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How the `timeStamp` column is written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TimestampFormat {
    EpochMillis,
    Date(DatePattern),
}

/// Where the columns read are, and how a row is written.
#[derive(Debug, Clone)]
struct Layout {
    delimiter: u8,
    field_count: usize,
    timestamp: usize,
    elapsed: usize,
    label: usize,
    success: Option<usize>,
    response_code: Option<usize>,
    response_message: Option<usize>,
    failure_message: Option<usize>,
    all_threads: Option<usize>,
    names: Vec<String>,
    /// The header line as written (repeated headers are skipped); None without one.
    header_line: Option<Vec<u8>>,
    timestamps: TimestampFormat,
}

fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        _ => format!("'{}'", d as char),
    }
}

impl Layout {
    fn new(
        path: &Path,
        names: Vec<String>,
        delimiter: u8,
        header_line: Option<Vec<u8>>,
    ) -> Result<Self, ReportError> {
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let need = |name: &str| {
            find(name).ok_or_else(|| {
                ReportError::malformed(
                    path,
                    1,
                    format!(
                        "expected a \"{name}\" column in the JMeter header (found {}; the \
                         delimiter read is {})",
                        crate::sanitize::one_line(&names.join(","), 200),
                        delimiter_name(delimiter)
                    ),
                )
            })
        };
        Ok(Self {
            delimiter,
            field_count: names.len(),
            timestamp: need("timeStamp")?,
            elapsed: need("elapsed")?,
            label: need("label")?,
            success: find("success"),
            response_code: find("responseCode"),
            response_message: find("responseMessage"),
            failure_message: find("failureMessage"),
            all_threads: find("allThreads"),
            names,
            header_line,
            timestamps: TimestampFormat::EpochMillis,
        })
    }
}

/// Reads the start of the file: up to the end of the first data row (or [`MAX_RECORD_BYTES`]
/// twice over), returns the bytes read.
fn read_head(path: &Path, file: &mut std::fs::File) -> Result<Vec<u8>, ReportError> {
    let mut head = Vec::new();
    let mut want = 64 * 1024;
    loop {
        let more = fill(file, &mut head, want, path)?;
        let lines = memchr::memchr_iter(b'\n', &head).take(2).count();
        if !more || lines >= 2 || head.len() >= 2 * MAX_RECORD_BYTES {
            return Ok(head);
        }
        want = (want * 2).min(2 * MAX_RECORD_BYTES);
    }
}

/// The first line of `buf` without its line end, and where the next one starts.
fn line_at(buf: &[u8], start: usize) -> (&[u8], usize) {
    let rest = &buf[start..];
    let (line, next) = match memchr::memchr(b'\n', rest) {
        Some(i) => (&rest[..i], start + i + 1),
        None => (rest, buf.len()),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), next)
}

/// Reads a JMeter CSV results file into a run.
pub fn read_jtl(
    path: &Path,
    options: &SampleOptions,
    progress: Option<&ReadProgress>,
) -> Result<RunData, ReportError> {
    let (mut file, skipped) = open_text(path)?;
    if let (Some(p), Ok(meta)) = (progress, file.metadata()) {
        p.bytes_total.store(meta.len(), Ordering::Relaxed);
        p.bytes_read.store(skipped, Ordering::Relaxed);
    }
    let head = read_head(path, &mut file)?;
    let mut warnings = Vec::new();
    let (first, after_first) = line_at(&head, 0);
    if first.len() > MAX_RECORD_BYTES {
        return Err(ReportError::malformed(path, 1, record_too_long()));
    }
    if memchr::memchr(0, first).is_some() {
        return Err(ReportError::malformed(path, 1, NUL_BYTES));
    }
    if head.trim_ascii().is_empty() {
        return Err(ReportError::malformed(
            path,
            1,
            format!(
                "empty file: no header and no samples (expected a JMeter CSV header such as \
                 \"{}\")",
                JMETER_5_COLUMNS[..4].join(",") + ",..."
            ),
        ));
    }
    let header_delimiter = options
        .delimiter
        .map(|d| vec![d])
        .unwrap_or_else(|| DELIMITERS.to_vec())
        .into_iter()
        .find(|&d| is_header(&split(first, d)));
    let (mut layout, data_start, header_lines) = match (header_delimiter, &options.jtl_columns) {
        (Some(d), _) => {
            let names = split(first, d)
                .into_iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            let layout = Layout::new(path, names, d, Some(first.to_vec()))?;
            (layout, after_first, 1)
        }
        (None, Some(columns)) => {
            // No header: the delimiter is the one that splits the first row into as many
            // fields as the columns named.
            let d = match options.delimiter {
                Some(d) => d,
                None => DELIMITERS
                    .into_iter()
                    .find(|&d| split(first, d).len() == columns.len())
                    .ok_or_else(|| {
                        ReportError::malformed(
                            path,
                            1,
                            format!(
                                "--jtl-columns names {} columns, but no delimiter (, ; tab |) \
                                 splits the first row into {}",
                                columns.len(),
                                columns.len()
                            ),
                        )
                    })?,
            };
            (Layout::new(path, columns.clone(), d, None)?, 0, 0)
        }
        (None, None) => {
            let message = if looks_like_jtl(first) {
                format!(
                    "no header row: this looks like a JMeter CSV saved with \
                     jmeter.save.saveservice.print_field_names=false; name its columns with \
                     --jtl-columns (JMeter 5.x default: {})",
                    JMETER_5_COLUMNS.join(",")
                )
            } else {
                format!(
                    "expected a JMeter CSV header with timeStamp and elapsed columns (such as \
                     \"{},...\"), delimited by , ; tab or |",
                    JMETER_5_COLUMNS[..4].join(",")
                )
            };
            return Err(ReportError::malformed(path, 1, message));
        }
    };

    // The timestamp format: as given, else from the first data row.
    layout.timestamps = match options.timestamp_format.as_deref() {
        Some("ms") => TimestampFormat::EpochMillis,
        Some(pattern) => TimestampFormat::Date(
            DatePattern::parse(pattern).map_err(|e| ReportError::malformed(path, 1, e))?,
        ),
        None => {
            let mut start = data_start;
            let mut row = None;
            while start < head.len() {
                let (line, next) = line_at(&head, start);
                if !line.trim_ascii().is_empty() {
                    row = Some(line);
                    break;
                }
                start = next;
            }
            match row.map(|line| split(line, layout.delimiter)) {
                Some(fields) if fields.len() > layout.timestamp => {
                    let stamp = fields[layout.timestamp];
                    if is_digits(stamp) {
                        TimestampFormat::EpochMillis
                    } else {
                        DATE_PATTERNS
                            .iter()
                            .filter_map(|p| DatePattern::parse(p).ok())
                            .find(|p| p.millis(stamp).is_some())
                            .map(TimestampFormat::Date)
                            .unwrap_or(TimestampFormat::EpochMillis)
                    }
                }
                _ => TimestampFormat::EpochMillis,
            }
        }
    };
    if layout.success.is_none() {
        warnings.push(format!(
            "{}: no \"success\" column (jmeter.save.saveservice.successful=false): a sample \
             counts as failed when its responseCode is not 2xx or 3xx{}",
            path.display(),
            if layout.response_code.is_none() {
                ", and there is no responseCode column either: no sample is failed"
            } else {
                ""
            }
        ));
    }

    let carry = head[data_start..].to_vec();
    drop(head);
    let empty = SampleAggregator::new(options.bucket_secs, LatencyUnit::Millis);
    let layout = &layout;
    let read = read_chunked(
        path,
        file,
        carry,
        header_lines,
        progress,
        &empty,
        |chunk, aggregator| parse_chunk(layout, chunk, aggregator),
    )?;
    if let Some(line) = read.cut_last_line {
        warnings.push(format!(
            "{}:{line}: {LAST_LINE_INCOMPLETE} It was ignored.",
            path.display()
        ));
    }
    let what = match &layout.timestamps {
        TimestampFormat::EpochMillis => format!(
            "JMeter CSV ({} delimited, epoch-ms timestamps)",
            delimiter_name(layout.delimiter)
        ),
        TimestampFormat::Date(p) => format!(
            "JMeter CSV ({} delimited, timestamps as \"{}\", read as UTC)",
            delimiter_name(layout.delimiter),
            p.text
        ),
    };
    let mut run = read.aggregator.finish(path, &what)?;
    run.warnings.extend(warnings);
    Ok(run)
}

/// Where the vector scan of a line stopped.
#[cfg(target_arch = "x86_64")]
enum Scan {
    Line(usize),
    Quote,
    /// Fewer than 16 bytes were left: the byte loop goes on from `scanned`.
    Partial {
        scanned: usize,
        start: usize,
    },
}

/// Splits records of a chunk into field ranges: plain lines by the delimiter, quoted
/// records (JMeter quotes fields holding the delimiter, a quote or a line break, doubling
/// quotes) unescaped into a reused buffer.
struct Splitter {
    delimiter: u8,
    ranges: Vec<(usize, usize)>,
    unescaped: Vec<u8>,
}

impl Splitter {
    /// Splits the line at the start of `rest` in one pass; returns its length (without
    /// the line end), or None when it has a quote (then it is read by [`Self::quoted`]).
    #[inline]
    fn plain(&mut self, rest: &[u8]) -> Option<usize> {
        self.ranges.clear();
        #[cfg(target_arch = "x86_64")]
        let (scanned, start) = match self.plain_sse2(rest) {
            Scan::Line(len) => return Some(len),
            Scan::Quote => return None,
            Scan::Partial { scanned, start } => (scanned, start),
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (scanned, start) = (0, 0);
        self.plain_scalar(rest, scanned, start)
    }

    /// The byte loop of [`Self::plain`] from `from` (a field starts at `start`).
    fn plain_scalar(&mut self, rest: &[u8], from: usize, mut start: usize) -> Option<usize> {
        let d = self.delimiter;
        for (i, &b) in rest.iter().enumerate().skip(from) {
            if b == d {
                self.ranges.push((start, i));
                start = i + 1;
            } else if b == b'\n' {
                self.end_line(rest, start, i);
                return Some(i);
            } else if b == b'"' {
                return None;
            }
        }
        self.end_line(rest, start, rest.len());
        Some(rest.len())
    }

    #[inline]
    fn end_line(&mut self, rest: &[u8], start: usize, end: usize) {
        let end = if end > start && rest[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        self.ranges.push((start, end));
    }

    /// 16 bytes at a time: SSE2 compares give bit masks of delimiters, line ends and quotes,
    /// and fields are cut at the set bits (SSE2 is part of every x86_64 CPU).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn plain_sse2(&mut self, rest: &[u8]) -> Scan {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut start = 0;
        let mut base = 0;
        // SAFETY: SSE2 is always available on x86_64; every load reads the 16 bytes at
        // `base..base + 16`, inside `rest`.
        unsafe {
            let delimiter = _mm_set1_epi8(self.delimiter as i8);
            let newline = _mm_set1_epi8(b'\n' as i8);
            let quote = _mm_set1_epi8(b'"' as i8);
            while base + 16 <= rest.len() {
                let block = _mm_loadu_si128(rest.as_ptr().add(base).cast::<__m128i>());
                let ends = _mm_movemask_epi8(_mm_cmpeq_epi8(block, newline)) as u32;
                let quotes = _mm_movemask_epi8(_mm_cmpeq_epi8(block, quote)) as u32;
                let mut cuts = _mm_movemask_epi8(_mm_cmpeq_epi8(block, delimiter)) as u32 | ends;
                if quotes != 0 && quotes.trailing_zeros() < ends.trailing_zeros() {
                    return Scan::Quote;
                }
                while cuts != 0 {
                    let bit = cuts.trailing_zeros();
                    let at = base + bit as usize;
                    if ends & (1 << bit) != 0 {
                        self.end_line(rest, start, at);
                        return Scan::Line(at);
                    }
                    self.ranges.push((start, at));
                    start = at + 1;
                    cuts &= cuts - 1;
                }
                base += 16;
            }
        }
        Scan::Partial {
            scanned: base,
            start,
        }
    }

    /// Reads the quoted record at the start of `input`; returns the bytes it took (its
    /// line end included).
    fn quoted(&mut self, input: &[u8]) -> Result<usize, String> {
        self.ranges.clear();
        self.unescaped.clear();
        let mut i = 0;
        loop {
            let start = self.unescaped.len();
            if input.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    let Some(q) = memchr::memchr(b'"', &input[i..]) else {
                        return Err("a quoted field is not closed (unbalanced \")".into());
                    };
                    self.unescaped.extend_from_slice(&input[i..i + q]);
                    i += q + 1;
                    if input.get(i) == Some(&b'"') {
                        self.unescaped.push(b'"');
                        i += 1;
                    } else {
                        break;
                    }
                }
                if self.unescaped.len() > MAX_RECORD_BYTES {
                    return Err(record_too_long());
                }
            }
            // Unquoted (or after the closing quote): up to the delimiter or the line end.
            let rest = &input[i..];
            let stop = memchr::memchr2(self.delimiter, b'\n', rest).unwrap_or(rest.len());
            let text = &rest[..stop];
            self.unescaped
                .extend_from_slice(text.strip_suffix(b"\r").unwrap_or(text));
            self.ranges.push((start, self.unescaped.len()));
            i += stop;
            match input.get(i) {
                Some(b) if *b == self.delimiter => i += 1,
                Some(_) => return Ok(i + 1),
                None => return Ok(i),
            }
        }
    }
}

fn shown(raw: &[u8]) -> String {
    crate::sanitize::one_line(&String::from_utf8_lossy(raw.trim_ascii()), 40)
}

/// True for a 2xx or 3xx response code (what JMeter's dashboard counts as a success code).
fn is_success_code(code: &[u8]) -> bool {
    code.len() == 3 && matches!(code[0], b'2' | b'3') && code.iter().all(u8::is_ascii_digit)
}

/// Parses one chunk of whole records into `aggregator`.
fn parse_chunk(
    layout: &Layout,
    chunk: &[u8],
    aggregator: &mut SampleAggregator,
) -> Result<(), ChunkError> {
    let mut splitter = Splitter {
        delimiter: layout.delimiter,
        ranges: Vec::with_capacity(layout.field_count + 1),
        unescaped: Vec::new(),
    };
    let mut error_text = Vec::new();
    // Rows of one second share their date prefix: parse it once.
    let mut last_date: (Vec<u8>, i64) = (Vec::new(), 0);
    let mut pos = 0;
    let mut line_no = 1_u64;
    while pos < chunk.len() {
        let record_line = line_no;
        let at = |message: String| ChunkError {
            relative_line: record_line,
            message,
        };
        let rest = &chunk[pos..];
        let (record, quoted): (&[u8], bool) = match splitter.plain(rest) {
            Some(line_len) => {
                pos += line_len + 1;
                line_no += 1;
                let line = &rest[..line_len];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if splitter.ranges.len() == 1 && line.trim_ascii().is_empty()
                    || (splitter.ranges.len() == layout.field_count
                        && line.first() == Some(&b't')
                        && layout.header_line.as_deref() == Some(line))
                {
                    continue;
                }
                (line, false)
            }
            None => {
                let consumed = splitter.quoted(rest).map_err(at)?;
                line_no += memchr::memchr_iter(b'\n', &rest[..consumed]).count() as u64;
                pos += consumed.max(1);
                (&splitter.unescaped, true)
            }
        };
        let ranges = &splitter.ranges;
        if ranges.len() != layout.field_count {
            if quoted && ranges.len() == 1 && record.trim_ascii().is_empty() {
                continue;
            }
            return Err(at(format!(
                "expected {} fields as in the header ({} delimited), found {}",
                layout.field_count,
                delimiter_name(layout.delimiter),
                ranges.len()
            )));
        }
        let field = |i: usize| {
            let (a, b) = ranges[i];
            &record[a..b]
        };
        let column = |i: usize| layout.names[i].as_str();

        let stamp = field(layout.timestamp);
        let timestamp_ms = match &layout.timestamps {
            TimestampFormat::EpochMillis => parse_plain_u64(stamp).map(|v| v as i64),
            TimestampFormat::Date(pattern) => {
                // Rows of one second share all but their milliseconds: the rest is parsed
                // once per second.
                let split = stamp
                    .len()
                    .checked_sub(4)
                    .filter(|&i| pattern.text.ends_with(".SSS") && stamp[i] == b'.');
                let cached = split.and_then(|i| {
                    let ms = parse_plain_u64(&stamp[i + 1..])? as i64;
                    (last_date.0 == stamp[..i]).then_some(last_date.1 + ms)
                });
                match cached {
                    Some(value) => Some(value),
                    None => {
                        let value = pattern.millis(stamp);
                        if let (Some(v), Some(i)) = (value, split)
                            && let Some(ms) = parse_plain_u64(&stamp[i + 1..])
                        {
                            last_date.0.clear();
                            last_date.0.extend_from_slice(&stamp[..i]);
                            last_date.1 = v - ms as i64;
                        }
                        value
                    }
                }
            }
        }
        .ok_or_else(|| {
            at(format!(
                "expected a timestamp in column \"{}\" ({}), found \"{}\"",
                column(layout.timestamp),
                match &layout.timestamps {
                    TimestampFormat::EpochMillis => "epoch milliseconds".to_string(),
                    TimestampFormat::Date(p) => format!("as \"{}\"", p.text),
                },
                shown(stamp)
            ))
        })?;
        let raw_elapsed = field(layout.elapsed);
        let elapsed_ms = match parse_plain_u64(raw_elapsed) {
            Some(v) => v as f64,
            None => match parse_number_bytes(raw_elapsed) {
                Ok(Some(v)) if v >= 0.0 => v,
                _ => {
                    return Err(at(format!(
                        "expected milliseconds (0 or more) in column \"{}\", found \"{}\"",
                        column(layout.elapsed),
                        shown(raw_elapsed)
                    )));
                }
            },
        };
        let code = layout.response_code.map_or(&b""[..], field);
        let ok = match layout.success.map(field) {
            Some(&[b't', b'r', b'u', b'e']) => true,
            Some(&[b'f', b'a', b'l', b's', b'e']) => false,
            Some(v) if v.eq_ignore_ascii_case(b"true") => true,
            Some(v) if v.eq_ignore_ascii_case(b"false") => false,
            Some(v) => {
                return Err(at(format!(
                    "expected true or false in column \"{}\", found \"{}\"",
                    column(layout.success.unwrap_or(0)),
                    shown(v)
                )));
            }
            None => code.is_empty() || is_success_code(code),
        };
        let message = layout.response_message.map_or(&b""[..], field);
        let users = layout
            .all_threads
            .map(field)
            .and_then(parse_plain_u64)
            .map(|v| v.min(u64::from(u32::MAX)) as u32);
        if !ok {
            // JMeter's dashboard error key (ErrorsSummaryConsumer.getErrorKey).
            error_text.clear();
            let failure = layout.failure_message.map_or(&b""[..], field);
            if is_success_code(code) || (code.is_empty() && !failure.is_empty()) {
                error_text.extend_from_slice(if failure.is_empty() {
                    b"Assertion failed"
                } else {
                    failure
                });
            } else {
                error_text.extend_from_slice(code);
                if !message.is_empty() {
                    error_text.push(b'/');
                    error_text.extend_from_slice(message);
                }
            }
        }
        let sample = Sample {
            method: b"",
            name: field(layout.label),
            timestamp_ms,
            elapsed_ms,
            ok,
            error: &error_text,
            users,
        };
        if message.len() >= TRANSACTION_PREFIX.len()
            && message[0] == b'N'
            && message.starts_with(TRANSACTION_PREFIX)
        {
            aggregator.record_transaction(&sample);
        } else {
            aggregator.record(&sample);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_patterns_of_timestamp_format() {
        let p = DatePattern::parse("yyyy/MM/dd HH:mm:ss.SSS").unwrap();
        assert_eq!(
            p.millis(b"2026/11/22 11:22:35.123"),
            Some(1_795_346_555_123)
        );
        assert_eq!(p.millis(b"2026/11/22 11:22:35"), None);
        let p = DatePattern::parse("yyyy-MM-dd'T'HH:mm:ss.SSSX").unwrap();
        assert_eq!(
            p.millis(b"2026-11-22T12:22:35.123+01:00"),
            Some(1_795_346_555_123)
        );
        assert_eq!(
            p.millis(b"2026-11-22T11:22:35.123Z"),
            Some(1_795_346_555_123)
        );
        let p = DatePattern::parse("yyyyMMddHHmmss").unwrap();
        assert_eq!(p.millis(b"20261122112235"), Some(1_795_346_555_000));
        assert!(DatePattern::parse("EEE HH:mm").is_err());
        assert!(DatePattern::parse("HH:mm:ss").is_err());
    }

    #[test]
    fn headers_and_headerless_rows_are_recognised() {
        assert!(looks_like_jtl(b"timeStamp,elapsed,label,responseCode"));
        assert!(looks_like_jtl(b"timeStamp;elapsed;label"));
        assert!(looks_like_jtl(b"timeStamp\telapsed\tlabel"));
        assert!(looks_like_jtl(
            b"1795346555123,12,home,200,OK,t 1-1,text,true"
        ));
        assert!(looks_like_jtl(b"2026/11/22 11:22:35.123|12|home|200"));
        assert!(!looks_like_jtl(b"Type,Name,Request Count,Failure Count"));
        assert!(!looks_like_jtl(b"Timestamp,User Count,Type,Name"));
    }

    #[test]
    fn vector_and_byte_splits_agree() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let alphabet = b"ab,;\t\n\r\"0";
        for _ in 0..20_000 {
            let len = rng.random_range(0..70);
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut fast = Splitter {
                delimiter: b',',
                ranges: Vec::new(),
                unescaped: Vec::new(),
            };
            let mut slow = Splitter {
                delimiter: b',',
                ranges: Vec::new(),
                unescaped: Vec::new(),
            };
            let a = fast.plain(&line);
            let b = slow.plain_scalar(&line, 0, 0);
            assert_eq!(a, b, "{line:?}");
            if a.is_some() {
                assert_eq!(fast.ranges, slow.ranges, "{line:?}");
            }
        }
    }

    #[test]
    fn quoted_records_unescape_and_span_lines() {
        let mut s = Splitter {
            delimiter: b',',
            ranges: Vec::new(),
            unescaped: Vec::new(),
        };
        let input = b"1,\"a,\"\"b\"\"\nc\",x\r\nnext";
        let used = s.quoted(input).unwrap();
        assert_eq!(&input[used..], b"next");
        let fields: Vec<&[u8]> = s.ranges.iter().map(|&(a, b)| &s.unescaped[a..b]).collect();
        assert_eq!(fields, [&b"1"[..], b"a,\"b\"\nc", b"x"]);
        assert!(s.quoted(b"1,\"open").is_err());
    }
}
