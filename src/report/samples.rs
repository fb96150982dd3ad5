//! Reports from raw samples (one row per request: JMeter `.jtl`, k6 CSV): every reader
//! feeds a [`SampleAggregator`], and [`SampleAggregator::finish`] gives the same
//! [`RunData`] the Locust reader builds, so findings, targets, TTL advice, the over-time
//! chart and `--compare` work unchanged.
//!
//! Latencies go into HDR histograms (exact below 2,048 ticks, 3 significant digits above):
//! one per endpoint for the final percentiles, and a smaller one (2 significant digits,
//! under 1% off) per endpoint and time bucket for the chart. Aggregators merge in any
//! order, so a file is read in parallel chunks ([`read_chunked`]), each chunk into its
//! own aggregator, folded in file order (the first error in the file is the one named).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use super::error::ReportError;
use super::history::{BytePool, ReadProgress, ReaderMessage, read_chunks, short_eq};
use super::locust::{MAX_FAILURE_ROWS, MAX_KEPT_TEXT_BYTES, MAX_SERIES_POINTS};
use super::model::{
    EndpointHistory, EndpointStats, FailureRow, HistoryPoint, HistorySummary, PercentileValue,
    RunData, RunFiles,
};

/// Width of a time-series bucket unless `--bucket` says otherwise.
pub const DEFAULT_BUCKET_SECS: u64 = 5;
/// Significant digits of an endpoint's histogram (its final percentiles).
pub const TOTAL_SIGFIG: u8 = 3;
/// Significant digits of a time bucket's histogram (chart points: under 1% off).
pub const SERIES_SIGFIG: u8 = 2;
/// Distinct labels a run may have: each costs a histogram (16 KiB or more).
pub const MAX_SAMPLE_ENDPOINTS: usize = 2_000;
/// Bytes of labels a run may have in all.
pub const MAX_SAMPLE_NAME_BYTES: usize = 16 * 1024 * 1024;
/// Histogram slots (4 bytes each) the time series may hold in all: when more would be
/// needed, buckets double in width, so the series stays under ~32 MiB whatever the run.
pub const MAX_SERIES_SLOTS: usize = 8 * 1024 * 1024;
/// Endpoints found by a linear scan before a hash map is used.
const LINEAR_LOOKUP_ENDPOINTS: usize = 32;
/// Samples between two checks of the series' memory bound.
const SLOTS_CHECK_SAMPLES: u64 = 1 << 16;
/// The percentiles an endpoint gets, as Locust 2.x writes them in its stats table.
pub const PERCENTILES: [f64; 11] = [
    50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0,
];
/// Bytes handed to a parser thread at a time.
pub const CHUNK_BYTES: usize = 2 * 1024 * 1024;
/// Chunks read but not yet folded.
pub const MAX_CHUNKS_IN_FLIGHT: usize = 6;

/// How the sample readers are told what the file does not say (`snaptop report` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOptions {
    /// Width of a time-series bucket, in seconds (at least 1).
    pub bucket_secs: u64,
    /// Column names of a JMeter file saved without its header (`print_field_names=false`).
    pub jtl_columns: Option<Vec<String>>,
    /// Field delimiter; detected from the header when `None`.
    pub delimiter: Option<u8>,
    /// JMeter `timestamp_format`: `ms` (epoch milliseconds) or a date pattern such as
    /// `yyyy/MM/dd HH:mm:ss.SSS`; detected from the first row when `None`.
    pub timestamp_format: Option<String>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            bucket_secs: DEFAULT_BUCKET_SECS,
            jtl_columns: None,
            delimiter: None,
            timestamp_format: None,
        }
    }
}

/// What a latency of 1 in a histogram means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyUnit {
    /// Whole milliseconds (JMeter's `elapsed`): exact up to 2,048 ms.
    Millis,
    /// Microseconds (k6 writes fractional milliseconds).
    Micros,
}

impl LatencyUnit {
    fn ticks_per_ms(self) -> f64 {
        match self {
            Self::Millis => 1.0,
            Self::Micros => 1000.0,
        }
    }
}

/// One sample, as a reader found it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// HTTP method when the format has one; empty otherwise (JMeter).
    pub method: &'a [u8],
    /// The label or URL name the sample is grouped by.
    pub name: &'a [u8],
    /// When the sample started, in Unix milliseconds.
    pub timestamp_ms: i64,
    /// Its latency in milliseconds (0 or more).
    pub elapsed_ms: f64,
    pub ok: bool,
    /// Why it failed (only read when `ok` is false); empty when the file does not say.
    pub error: &'a [u8],
    /// Users (threads, VUs) active when it ran, when the file says.
    pub users: Option<u32>,
}

fn histogram<C: hdrhistogram::Counter>(sigfig: u8) -> Histogram<C> {
    Histogram::new(sigfig).expect("1..=5 significant digits is a valid histogram")
}

/// Records a latency, growing the histogram to hold it (`saturating_record` would clamp
/// it to the histogram's current top instead).
#[inline]
fn record_ticks<C: hdrhistogram::Counter>(h: &mut Histogram<C>, ticks: u64) {
    if h.record(ticks).is_err() {
        h.saturating_record(ticks);
    }
}

/// An endpoint's (method, name) bytes as recorded.
type EndpointKey = (Box<[u8]>, Box<[u8]>);

/// One time bucket of one series.
#[derive(Debug, Clone)]
struct Bucket {
    count: u64,
    failures: u64,
    latency: Histogram<u32>,
    users: Option<u32>,
}

impl Bucket {
    fn new() -> Self {
        Self {
            count: 0,
            failures: 0,
            latency: histogram(SERIES_SIGFIG),
            users: None,
        }
    }

    fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.failures += other.failures;
        self.latency
            .add(&other.latency)
            .expect("auto-resizing histograms always add");
        self.users = self.users.max(other.users);
    }
}

/// Buckets by absolute index (`timestamp_ms / width`), sorted.
#[derive(Debug, Clone, Default)]
struct Series {
    buckets: Vec<(i64, Bucket)>,
    last_hit: usize,
}

impl Series {
    fn bucket(&mut self, index: i64) -> &mut Bucket {
        let found = match self.buckets.get(self.last_hit) {
            Some((i, _)) if *i == index => Ok(self.last_hit),
            _ => self.buckets.binary_search_by_key(&index, |(i, _)| *i),
        };
        let at = match found {
            Ok(at) => at,
            Err(at) => {
                self.buckets.insert(at, (index, Bucket::new()));
                at
            }
        };
        self.last_hit = at;
        &mut self.buckets[at].1
    }

    fn slots(&self) -> usize {
        self.buckets
            .iter()
            .map(|(_, b)| b.latency.distinct_values())
            .sum()
    }

    /// Merges neighbours `shift` times (each time the width doubles).
    fn coarsen(&mut self, shift: u32) {
        if shift == 0 {
            return;
        }
        let mut merged: Vec<(i64, Bucket)> = Vec::with_capacity(self.buckets.len());
        for (index, bucket) in self.buckets.drain(..) {
            let index = index >> shift;
            match merged.last_mut() {
                Some((last, into)) if *last == index => into.merge(&bucket),
                _ => merged.push((index, bucket)),
            }
        }
        self.buckets = merged;
        self.last_hit = 0;
    }

    fn merge(&mut self, other: &Self) {
        for (index, bucket) in &other.buckets {
            self.bucket(*index).merge(bucket);
        }
    }
}

#[derive(Debug, Clone)]
struct EndpointAcc {
    method: String,
    name: String,
    count: u64,
    failures: u64,
    sum_ms: f64,
    min_ms: f64,
    max_ms: f64,
    latency: Histogram<u64>,
    series: Series,
    /// Only transaction samples (a JMeter Transaction Controller's): left out of the total.
    transaction: bool,
}

impl EndpointAcc {
    fn new(method: String, name: String) -> Self {
        Self {
            transaction: true,
            method,
            name,
            count: 0,
            failures: 0,
            sum_ms: 0.0,
            min_ms: f64::INFINITY,
            max_ms: 0.0,
            latency: histogram(TOTAL_SIGFIG),
            series: Series::default(),
        }
    }

    fn merge(&mut self, other: &Self) {
        self.transaction &= other.transaction;
        self.count += other.count;
        self.failures += other.failures;
        self.sum_ms += other.sum_ms;
        self.min_ms = self.min_ms.min(other.min_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
        self.latency
            .add(&other.latency)
            .expect("auto-resizing histograms always add");
        self.series.merge(&other.series);
    }
}

#[derive(Debug, Clone, Copy)]
struct FailureAcc {
    occurrences: u64,
    first_ms: i64,
    last_ms: i64,
}

/// Counts, failures, latency histograms and time series of samples: feed it with
/// [`record`](Self::record), combine partial ones with [`merge`](Self::merge), and turn it
/// into a run with [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct SampleAggregator {
    unit: LatencyUnit,
    bucket_ms: i64,
    /// Buckets are `bucket_ms << shift` wide.
    shift: u32,
    endpoints: Vec<EndpointAcc>,
    ids: HashMap<Box<[u8]>, usize>,
    /// (method, name) of each endpoint as recorded, by id.
    keys: Vec<EndpointKey>,
    key: Vec<u8>,
    last_endpoint: usize,
    name_bytes: usize,
    timeline: Series,
    failures: HashMap<(usize, Box<[u8]>), FailureAcc>,
    failure_text_bytes: usize,
    failures_dropped: u64,
    samples: u64,
    first_ms: Option<i64>,
    last_end_ms: Option<i64>,
    peak_users: Option<u32>,
    /// A label past [`MAX_SAMPLE_ENDPOINTS`] or [`MAX_SAMPLE_NAME_BYTES`]: refused at the end.
    too_many_endpoints: bool,
}

impl SampleAggregator {
    /// `bucket_secs` (at least 1) is the width of the chart's points before they are
    /// merged to stay under [`MAX_SERIES_POINTS`].
    pub fn new(bucket_secs: u64, unit: LatencyUnit) -> Self {
        Self {
            unit,
            bucket_ms: (bucket_secs.clamp(1, 86_400 * 365) * 1000) as i64,
            shift: 0,
            endpoints: Vec::new(),
            ids: HashMap::new(),
            keys: Vec::new(),
            key: Vec::new(),
            last_endpoint: usize::MAX,
            name_bytes: 0,
            timeline: Series::default(),
            failures: HashMap::new(),
            failure_text_bytes: 0,
            failures_dropped: 0,
            samples: 0,
            first_ms: None,
            last_end_ms: None,
            peak_users: None,
            too_many_endpoints: false,
        }
    }

    /// An empty aggregator with the same settings (for another chunk).
    pub fn empty_like(&self) -> Self {
        Self::new((self.bucket_ms / 1000) as u64, self.unit)
    }

    /// Samples recorded so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    fn endpoint_id(&mut self, method: &[u8], name: &[u8]) -> Option<usize> {
        // Few labels in practice: a linear scan with inline word compares (a hash and a
        // `memcmp` call per sample cost more than the rest of the sample's work).
        if let Some((m, n)) = self.keys.get(self.last_endpoint)
            && short_eq(n, name)
            && short_eq(m, method)
        {
            return Some(self.last_endpoint);
        }
        if self.keys.len() <= LINEAR_LOOKUP_ENDPOINTS {
            if let Some(id) = self
                .keys
                .iter()
                .position(|(m, n)| short_eq(n, name) && short_eq(m, method))
            {
                self.last_endpoint = id;
                return Some(id);
            }
        } else {
            self.key.clear();
            self.key.extend_from_slice(method);
            self.key.push(0);
            self.key.extend_from_slice(name);
            if let Some(&id) = self.ids.get(self.key.as_slice()) {
                self.last_endpoint = id;
                return Some(id);
            }
        }
        if self.endpoints.len() >= MAX_SAMPLE_ENDPOINTS
            || self.name_bytes + method.len() + name.len() + 1 > MAX_SAMPLE_NAME_BYTES
        {
            self.too_many_endpoints = true;
            return None;
        }
        self.name_bytes += method.len() + name.len() + 1;
        let id = self.endpoints.len();
        self.keys.push((method.into(), name.into()));
        let mut key = method.to_vec();
        key.push(0);
        key.extend_from_slice(name);
        self.ids.insert(key.into_boxed_slice(), id);
        self.endpoints.push(EndpointAcc::new(
            String::from_utf8_lossy(method).into_owned(),
            String::from_utf8_lossy(name).into_owned(),
        ));
        self.last_endpoint = id;
        Some(id)
    }

    /// Adds one sample. A negative or non-finite latency counts as 0 (readers refuse them
    /// with the line first).
    pub fn record(&mut self, sample: &Sample<'_>) {
        self.record_as(sample, false);
    }

    /// Adds a sample that sums up others already recorded (a JMeter Transaction
    /// Controller's): its label gets its own row and chart, as in JMeter's dashboard, but it
    /// is left out of the "Aggregated" total, its time line and the failures table, which
    /// would otherwise count its requests twice.
    pub fn record_transaction(&mut self, sample: &Sample<'_>) {
        self.record_as(sample, true);
    }

    fn record_as(&mut self, sample: &Sample<'_>, transaction: bool) {
        let Some(id) = self.endpoint_id(sample.method, sample.name) else {
            return;
        };
        self.add(id, sample, transaction);
        self.check_series(id);
    }

    fn add(&mut self, id: usize, sample: &Sample<'_>, transaction: bool) {
        let elapsed = if sample.elapsed_ms.is_finite() {
            sample.elapsed_ms.max(0.0)
        } else {
            0.0
        };
        // Non-negative: adding a half and truncating rounds, without a libm call.
        let ticks = (elapsed * self.unit.ticks_per_ms() + 0.5) as u64;
        let index = sample.timestamp_ms.div_euclid(self.bucket_ms << self.shift);
        let failed = u64::from(!sample.ok);
        self.samples += 1;
        self.first_ms = Some(
            self.first_ms
                .map_or(sample.timestamp_ms, |f| f.min(sample.timestamp_ms)),
        );
        let end = sample.timestamp_ms.saturating_add(elapsed.ceil() as i64);
        self.last_end_ms = Some(self.last_end_ms.map_or(end, |l| l.max(end)));
        self.peak_users = self.peak_users.max(sample.users);

        let endpoint = &mut self.endpoints[id];
        endpoint.transaction &= transaction;
        endpoint.count += 1;
        endpoint.failures += failed;
        endpoint.sum_ms += elapsed;
        endpoint.min_ms = endpoint.min_ms.min(elapsed);
        endpoint.max_ms = endpoint.max_ms.max(elapsed);
        record_ticks(&mut endpoint.latency, ticks);
        let bucket = endpoint.series.bucket(index);
        bucket.count += 1;
        bucket.failures += failed;
        record_ticks(&mut bucket.latency, ticks);
        bucket.users = bucket.users.max(sample.users);
        // The "Aggregated" series is the endpoints' series merged in `finish`: one histogram
        // record less per sample.
        if !sample.ok && !transaction {
            self.record_failure(
                id,
                sample.error,
                sample.timestamp_ms,
                1,
                sample.timestamp_ms,
            );
        }
        if self.timeline.buckets.len() > MAX_SERIES_POINTS {
            self.fit_series();
        }
    }

    /// Called after each sample: keeps the series within their bounds.
    #[inline]
    fn check_series(&mut self, id: usize) {
        if self.timeline.buckets.len() > MAX_SERIES_POINTS
            || self.endpoints[id].series.buckets.len() > MAX_SERIES_POINTS
            || self.samples.is_multiple_of(SLOTS_CHECK_SAMPLES)
        {
            self.fit_series();
        }
    }

    /// First and last bucket index of every series.
    fn span(&self) -> Option<(i64, i64)> {
        std::iter::once(&self.timeline)
            .chain(self.endpoints.iter().map(|e| &e.series))
            .filter_map(|s| Some((s.buckets.first()?.0, s.buckets.last()?.0)))
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }

    fn record_failure(&mut self, id: usize, error: &[u8], first_ms: i64, count: u64, last_ms: i64) {
        // Keyed by the raw bytes: no allocation for a failure seen before.
        let key = (id, Box::<[u8]>::from(error));
        if let Some(acc) = self.failures.get_mut(&key) {
            acc.occurrences += count;
            acc.first_ms = acc.first_ms.min(first_ms);
            acc.last_ms = acc.last_ms.max(last_ms);
            return;
        }
        if self.failures.len() >= MAX_FAILURE_ROWS
            || self.failure_text_bytes + error.len() > MAX_KEPT_TEXT_BYTES
        {
            self.failures_dropped += count;
            return;
        }
        self.failure_text_bytes += error.len();
        self.failures.insert(
            key,
            FailureAcc {
                occurrences: count,
                first_ms,
                last_ms,
            },
        );
    }

    /// Doubles the bucket width until the chart fits its point and memory bounds.
    fn fit_series(&mut self) {
        loop {
            let span = self.span().map_or(0, |(a, b)| (b - a + 1) as usize);
            let slots: usize = self.timeline.slots()
                + self
                    .endpoints
                    .iter()
                    .map(|e| e.series.slots())
                    .sum::<usize>();
            if span <= MAX_SERIES_POINTS && slots <= MAX_SERIES_SLOTS {
                return;
            }
            self.coarsen_to(self.shift + 1);
            if self.shift > 40 {
                return;
            }
        }
    }

    fn coarsen_to(&mut self, shift: u32) {
        if shift <= self.shift {
            return;
        }
        let by = shift - self.shift;
        self.shift = shift;
        self.timeline.coarsen(by);
        for e in &mut self.endpoints {
            e.series.coarsen(by);
        }
    }

    /// Adds everything `other` recorded (any order gives the same result).
    pub fn merge(&mut self, mut other: Self) {
        let shift = self.shift.max(other.shift);
        self.coarsen_to(shift);
        other.coarsen_to(shift);
        let mut ids = Vec::with_capacity(other.endpoints.len());
        for e in &other.endpoints {
            let id = self.endpoint_id(e.method.as_bytes(), e.name.as_bytes());
            if let Some(id) = id {
                self.endpoints[id].merge(e);
            }
            ids.push(id);
        }
        self.timeline.merge(&other.timeline);
        for ((id, error), acc) in other.failures {
            if let Some(id) = ids[id] {
                self.record_failure(id, &error, acc.first_ms, acc.occurrences, acc.last_ms);
            }
        }
        self.failures_dropped += other.failures_dropped;
        self.samples += other.samples;
        self.first_ms = match (self.first_ms, other.first_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end_ms = self.last_end_ms.max(other.last_end_ms);
        self.peak_users = self.peak_users.max(other.peak_users);
        self.too_many_endpoints |= other.too_many_endpoints;
        self.fit_series();
    }

    fn millis(&self, ticks: u64) -> f64 {
        ticks as f64 / self.unit.ticks_per_ms()
    }

    /// A percentile of a histogram as the lowest value of its HDR bucket (exact for values
    /// the histogram holds exactly), kept within the exact min and max.
    fn quantile<C: hdrhistogram::Counter>(
        &self,
        h: &Histogram<C>,
        percent: f64,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        if h.is_empty() {
            return None;
        }
        if percent >= 100.0 {
            return Some(max);
        }
        let value = h.lowest_equivalent(h.value_at_quantile(percent / 100.0));
        Some(self.millis(value).clamp(min, max))
    }

    fn stats(
        &self,
        method: &str,
        name: &str,
        e: &EndpointAcc,
        duration_secs: f64,
    ) -> EndpointStats {
        let (min, max) = if e.count == 0 {
            (0.0, 0.0)
        } else {
            (e.min_ms, e.max_ms)
        };
        let q = |p: f64| self.quantile(&e.latency, p, min, max);
        let percentiles = PERCENTILES
            .iter()
            .map(|&percent| PercentileValue {
                percent,
                millis: q(percent),
            })
            .collect();
        let has = e.count > 0;
        EndpointStats {
            method: method.to_owned(),
            name: name.to_owned(),
            requests: e.count,
            failures: e.failures,
            error_pct: if has {
                e.failures as f64 * 100.0 / e.count as f64
            } else {
                0.0
            },
            median_ms: q(50.0),
            average_ms: has.then(|| e.sum_ms / e.count as f64),
            min_ms: has.then_some(min),
            max_ms: has.then_some(max),
            p50_ms: q(50.0),
            p95_ms: q(95.0),
            p99_ms: q(99.0),
            rps: e.count as f64 / duration_secs,
            failures_per_sec: Some(e.failures as f64 / duration_secs),
            percentiles,
        }
    }

    fn series_points(&self, series: &Series, range: Option<(i64, i64)>) -> Vec<HistoryPoint> {
        let width_ms = self.bucket_ms << self.shift;
        let width_secs = width_ms as f64 / 1000.0;
        let Some((first, last)) = range else {
            return Vec::new();
        };
        let round = |v: f64| (v * 1e4).round() / 1e4;
        let mut points = Vec::with_capacity((last - first + 1) as usize);
        let mut at = series.buckets.iter().peekable();
        for index in first..=last {
            let bucket = at
                .next_if(|(i, _)| *i == index)
                .map(|(_, b)| b)
                .filter(|b| b.count > 0);
            let q = |p: f64| {
                let b = bucket?;
                let v = b.latency.lowest_equivalent(b.latency.value_at_quantile(p));
                Some(round(self.millis(v)))
            };
            points.push(HistoryPoint {
                t_start_unix: (index * width_ms).div_euclid(1000),
                width_secs: width_secs as i64,
                users: bucket.and_then(|b| b.users).map(f64::from),
                rps: round(bucket.map_or(0, |b| b.count) as f64 / width_secs),
                failures_per_sec: round(bucket.map_or(0, |b| b.failures) as f64 / width_secs),
                p50_ms: q(0.50),
                p95_ms: q(0.95),
                p99_ms: q(0.99),
            });
        }
        points
    }

    fn endpoint_history(
        &self,
        method: &str,
        name: &str,
        series: &Series,
        range: Option<(i64, i64)>,
    ) -> EndpointHistory {
        let points = self.series_points(series, range);
        let peak = |pick: fn(&HistoryPoint) -> Option<f64>| {
            points
                .iter()
                .filter_map(|p| pick(p).map(|v| (v, p.t_start_unix)))
                .fold(None, |best: Option<(f64, i64)>, (v, t)| match best {
                    Some((b, _)) if b >= v => best,
                    _ => Some((v, t)),
                })
        };
        let median = |pick: fn(&HistoryPoint) -> Option<f64>| {
            let mut values: Vec<f64> = points.iter().filter_map(pick).collect();
            values.sort_by(f64::total_cmp);
            values.get(values.len().saturating_sub(1) / 2).copied()
        };
        let p95 = peak(|p| p.p95_ms);
        let p99 = peak(|p| p.p99_ms);
        EndpointHistory {
            method: method.to_owned(),
            name: name.to_owned(),
            rows: series.buckets.iter().filter(|(_, b)| b.count > 0).count() as u64,
            peak_p95_ms: p95.map(|p| p.0),
            peak_p95_at_unix: p95.map(|p| p.1),
            peak_p99_ms: p99.map(|p| p.0),
            peak_p99_at_unix: p99.map(|p| p.1),
            median_p95_ms: median(|p| p.p95_ms),
            median_p99_ms: median(|p| p.p99_ms),
            peak_rps: points.iter().map(|p| p.rps).fold(0.0, f64::max),
            series: points,
            degradation: None,
        }
    }

    /// The run these samples make: per-endpoint statistics, an "Aggregated" total, the time
    /// series (with "Aggregated" as Locust's history has it) and the failures table.
    /// `path` is the file read; `what` names its format in the notes (`JMeter CSV`).
    pub fn finish(mut self, path: &Path, what: &str) -> Result<RunData, ReportError> {
        if self.too_many_endpoints {
            return Err(ReportError::Refused {
                path: path.to_owned(),
                message: format!(
                    "more than {MAX_SAMPLE_ENDPOINTS} labels (or {} MiB of them): group \
                     samples under fewer names (a JMeter label per request type, not per URL)",
                    MAX_SAMPLE_NAME_BYTES / (1024 * 1024)
                ),
            });
        }
        let (Some(first_ms), Some(last_end_ms)) = (self.first_ms, self.last_end_ms) else {
            return Err(ReportError::EmptyRun {
                path: path.to_owned(),
                reason: format!("the {what} file has no samples"),
            });
        };
        self.fit_series();
        let duration_secs = ((last_end_ms - first_ms) as f64 / 1000.0).max(0.001);
        // Sorted for the table; ids (used by failures) stay as recorded.
        let mut order: Vec<usize> = (0..self.endpoints.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.endpoints[a], &self.endpoints[b]);
            (&a.name, &a.method).cmp(&(&b.name, &b.method))
        });
        let mut total = EndpointAcc::new(String::new(), "Aggregated".into());
        let mut endpoints = Vec::with_capacity(self.endpoints.len());
        for e in order.iter().map(|&i| &self.endpoints[i]) {
            endpoints.push(self.stats(&e.method, &e.name, e, duration_secs));
            if e.transaction {
                continue;
            }
            total.count += e.count;
            total.failures += e.failures;
            total.sum_ms += e.sum_ms;
            total.min_ms = total.min_ms.min(e.min_ms);
            total.max_ms = total.max_ms.max(e.max_ms);
            total
                .latency
                .add(&e.latency)
                .expect("auto-resizing histograms always add");
        }
        let aggregate = self.stats("", "Aggregated", &total, duration_secs);

        self.timeline = Series::default();
        for e in self.endpoints.iter().filter(|e| !e.transaction) {
            self.timeline.merge(&e.series);
        }
        let range = self.span();
        let mut histories: Vec<EndpointHistory> = order
            .iter()
            .map(|&i| &self.endpoints[i])
            .map(|e| self.endpoint_history(&e.method, &e.name, &e.series, range))
            .collect();
        let timeline = self.series_points(&self.timeline, range);
        histories.push(self.endpoint_history("", "Aggregated", &self.timeline, range));
        let width_secs = (self.bucket_ms << self.shift) / 1000;
        let mut history_notes = Vec::new();
        if self.shift > 0 {
            history_notes.push(format!(
                "{}: time series in {width_secs} s buckets (asked for {} s; at most \
                 {MAX_SERIES_POINTS} points are charted)",
                path.display(),
                self.bucket_ms / 1000
            ));
        }
        let history = HistorySummary {
            rows: self.samples,
            first_unix: Some(first_ms.div_euclid(1000)),
            last_unix: Some(last_end_ms.div_euclid(1000)),
            peak_users: self.peak_users.map(u64::from),
            timeline,
            endpoints: histories,
            notes: history_notes,
            warnings: Vec::new(),
        };

        let mut failures: Vec<FailureRow> = self
            .failures
            .iter()
            .map(|((id, error), acc)| {
                let e = &self.endpoints[*id];
                FailureRow {
                    method: e.method.clone(),
                    name: e.name.clone(),
                    error: String::from_utf8_lossy(error).into_owned(),
                    occurrences: acc.occurrences,
                    first_seen: utc_seconds(acc.first_ms),
                    last_seen: utc_seconds(acc.last_ms),
                }
            })
            .collect();
        failures.sort_by(|a, b| {
            b.occurrences
                .cmp(&a.occurrences)
                .then_with(|| (&a.name, &a.error).cmp(&(&b.name, &b.error)))
        });
        let mut notes = vec![format!(
            "{}: {what}, {} samples of {} labels over {:.0} s, {width_secs} s buckets",
            path.display(),
            self.samples,
            self.endpoints.len(),
            duration_secs
        )];
        if self.failures_dropped > 0 {
            notes.push(format!(
                "{}: {} failed samples of kinds beyond the first {} were counted but not \
                 listed (at most {MAX_FAILURE_ROWS} kinds and {} MiB of text are kept)",
                path.display(),
                self.failures_dropped,
                failures.len(),
                MAX_KEPT_TEXT_BYTES / (1024 * 1024)
            ));
        }
        Ok(RunData {
            files: RunFiles {
                stats: Some(path.to_owned()),
                ..RunFiles::default()
            },
            generation: None,
            endpoints,
            aggregate: Some(aggregate),
            history: Some(history),
            failures,
            exceptions: Vec::new(),
            checks: Vec::new(),
            notes,
            warnings: Vec::new(),
        })
    }
}

/// `2026-11-22T11:22:35Z`, as Locust writes first/last seen.
fn utc_seconds(ms: i64) -> Option<String> {
    let t = jiff::Timestamp::from_millisecond(ms).ok()?;
    Some(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// A parse error inside a chunk: the line is counted from the chunk's first line (1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError {
    pub relative_line: u64,
    pub message: String,
}

/// What [`read_chunked`] read.
#[derive(Debug)]
pub struct ChunkedRead {
    pub aggregator: SampleAggregator,
    /// Lines read (after `lines_before`).
    pub lines: u64,
    /// The line number of a last line without its line end, which was left out.
    pub cut_last_line: Option<u64>,
}

type Parsed = (u64, Result<(SampleAggregator, u64), ChunkError>);

/// Reads the rest of `file` (positioned after what `carry` holds, which starts at a record
/// boundary, `lines_before` lines into the file) in chunks cut at record ends (newlines
/// outside `"` quotes), parses them with `parse` on up to 4 threads, each chunk into its
/// own aggregator, and folds them in file order. A last line without a line end is left
/// out (the writer is still writing it) and reported in `cut_last_line`.
pub fn read_chunked<P>(
    path: &Path,
    file: File,
    carry: Vec<u8>,
    lines_before: u64,
    progress: Option<&ReadProgress>,
    empty: &SampleAggregator,
    parse: P,
) -> Result<ChunkedRead, ReportError>
where
    P: Fn(&[u8], &mut SampleAggregator) -> Result<(), ChunkError> + Sync,
{
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let (work_tx, work_rx) = sync_channel::<ReaderMessage>(workers);
    let (token_tx, token_rx) = sync_channel::<()>(MAX_CHUNKS_IN_FLIGHT);
    for _ in 0..MAX_CHUNKS_IN_FLIGHT {
        let _ = token_tx.try_send(());
    }
    let (done_tx, done_rx) = sync_channel::<Parsed>(workers);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let cut_last_line = AtomicBool::new(false);
    let pool = BytePool::new(MAX_CHUNKS_IN_FLIGHT);
    let reader_failure: Mutex<Option<ReportError>> = Mutex::new(None);
    let parse = &parse;
    let result = std::thread::scope(|scope| {
        let cut = &cut_last_line;
        let pool = &pool;
        scope.spawn(move || {
            read_chunks(file, carry, path, &work_tx, progress, pool, &token_rx, cut);
        });
        let reader_failure = &reader_failure;
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let message = {
                        let Ok(receiver) = work_rx.lock() else { return };
                        receiver.recv()
                    };
                    let (seq, chunk) = match message {
                        Ok(ReaderMessage::Chunk(seq, chunk)) => (seq, chunk),
                        Ok(ReaderMessage::Failed(seq, error)) => {
                            // Passed on as the chunk's result; the fold names it in order.
                            if let Ok(mut slot) = reader_failure.lock() {
                                *slot = Some(error);
                            }
                            let _ = done_tx.send((
                                seq,
                                Err(ChunkError {
                                    relative_line: u64::MAX,
                                    message: String::new(),
                                }),
                            ));
                            return;
                        }
                        Err(_) => return,
                    };
                    let mut aggregator = empty.empty_like();
                    let lines = memchr::memchr_iter(b'\n', &chunk).count() as u64;
                    let parsed = parse(&chunk, &mut aggregator).map(|()| (aggregator, lines));
                    pool.give(chunk);
                    if done_tx.send((seq, parsed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut total = empty.empty_like();
        let mut pending: BTreeMap<u64, Result<(SampleAggregator, u64), ChunkError>> =
            BTreeMap::new();
        let mut next = 0_u64;
        let mut lines = 0_u64;
        for (seq, parsed) in done_rx.iter() {
            pending.insert(seq, parsed);
            while let Some(parsed) = pending.remove(&next) {
                match parsed {
                    Ok((aggregator, chunk_lines)) => {
                        total.merge(aggregator);
                        lines += chunk_lines;
                        let _ = token_tx.try_send(());
                    }
                    Err(e) if e.relative_line == u64::MAX => {
                        let failure = reader_failure.lock().ok().and_then(|mut f| f.take());
                        return Err(match failure {
                            // A record too long: it starts on the line after the last one read.
                            Some(ReportError::Malformed { message, .. }) => {
                                ReportError::malformed(path, lines_before + lines + 1, message)
                            }
                            Some(other) => other,
                            None => {
                                ReportError::malformed(path, lines_before + lines + 1, e.message)
                            }
                        });
                    }
                    Err(e) => {
                        return Err(ReportError::malformed(
                            path,
                            lines_before + lines + e.relative_line,
                            e.message,
                        ));
                    }
                }
                next += 1;
            }
        }
        Ok((total, lines))
    });
    drop(work_rx);
    let (aggregator, lines) = result?;
    Ok(ChunkedRead {
        aggregator,
        lines,
        cut_last_line: cut_last_line
            .load(Ordering::Relaxed)
            .then_some(lines_before + lines + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, t: i64, ms: f64, ok: bool) -> Sample<'_> {
        Sample {
            method: b"",
            name: name.as_bytes(),
            timestamp_ms: t,
            elapsed_ms: ms,
            ok,
            error: b"500 boom",
            users: Some(3),
        }
    }

    #[test]
    fn merged_chunks_equal_one_pass() {
        let mut one = SampleAggregator::new(5, LatencyUnit::Millis);
        let mut parts = vec![one.empty_like(), one.empty_like(), one.empty_like()];
        for i in 0..3_000_i64 {
            let s = sample(
                if i % 3 == 0 { "/a" } else { "/b" },
                1_700_000_000_000 + i * 37,
                (i % 997) as f64,
                i % 50 != 0,
            );
            one.record(&s);
            parts[(i % 3) as usize].record(&s);
        }
        let mut merged = parts.pop().unwrap();
        for p in parts {
            merged.merge(p);
        }
        let path = Path::new("x.jtl");
        let a = one.finish(path, "test").unwrap();
        let b = merged.finish(path, "test").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.endpoints.len(), 2);
        assert_eq!(a.aggregate.as_ref().unwrap().requests, 3_000);
        assert_eq!(a.failures.iter().map(|f| f.occurrences).sum::<u64>(), 60);
    }

    #[test]
    fn long_runs_keep_the_series_bounded() {
        let mut agg = SampleAggregator::new(1, LatencyUnit::Millis);
        for i in 0..10_000_i64 {
            agg.record(&sample("/a", i * 1000, 10.0, true));
        }
        let run = agg.finish(Path::new("x.jtl"), "test").unwrap();
        let h = run.history.unwrap();
        assert!(
            h.timeline.len() <= MAX_SERIES_POINTS,
            "{}",
            h.timeline.len()
        );
        assert!(h.timeline[0].width_secs > 1);
        assert_eq!(run.endpoints[0].p99_ms, Some(10.0));
    }

    /// Nearest-rank percentile of sorted values, the definition HDR histograms follow.
    fn exact(sorted: &[f64], percent: f64) -> f64 {
        let rank = ((percent / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank - 1]
    }

    #[test]
    fn percentiles_are_within_hdr_precision_of_sorting() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        for (unit, whole) in [(LatencyUnit::Millis, true), (LatencyUnit::Micros, false)] {
            let mut agg = SampleAggregator::new(5, unit);
            let mut values = Vec::new();
            for i in 0..200_000_i64 {
                // heavy-tailed: most under 100 ms, some up to a minute
                let u: f64 = rng.random_range(0.0..1.0);
                let mut v = 2.0 * (1.0 / (1.0 - u * 0.9999)).powf(1.3);
                v = v.min(60_000.0);
                if whole {
                    v = v.round();
                } else {
                    v = (v * 1000.0).round() / 1000.0;
                }
                values.push(v);
                agg.record(&sample("/a", i * 3, v, true));
            }
            values.sort_by(f64::total_cmp);
            let run = agg.finish(Path::new("x.jtl"), "test").unwrap();
            let e = &run.endpoints[0];
            for p in &e.percentiles {
                let want = exact(&values, p.percent);
                let got = p.millis.unwrap();
                // 3 significant digits: within 1/1000 of the value, and exact where the
                // histogram has single-tick resolution (under 2,048 ticks).
                let tolerance = want / 1000.0 + if whole { 0.0 } else { 0.001 };
                assert!(
                    (got - want).abs() <= tolerance,
                    "{unit:?} p{}: {got} vs exact {want}",
                    p.percent
                );
                if whole && want < 2048.0 {
                    assert_eq!(got, want, "p{}", p.percent);
                }
            }
            assert_eq!(e.max_ms, values.last().copied());
            assert!(values.last().unwrap() > &10_000.0);
        }
    }

    #[test]
    fn no_samples_is_an_empty_run() {
        let agg = SampleAggregator::new(5, LatencyUnit::Millis);
        let error = agg.finish(Path::new("x.jtl"), "JMeter CSV").unwrap_err();
        assert!(error.to_string().contains("no samples"), "{error}");
    }
}
