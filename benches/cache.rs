//! HTTP cache benchmark (issue 12): how much of a warm snapshot the cache answers, and
//! what one lookup costs from each tier.
//!
//! `cargo bench --bench cache` (criterion options after `--`, e.g. `-- lookup/store`).
//!
//! 1. **Second snapshot**: the simulator's `seed` profile, a cold snapshot then a warm one
//!    through one cache (as the app keeps one per process); the share of the warm run's
//!    GitHub requests answered 304 or not sent at all, from the simulator's request log.
//! 2. **Lookups** (criterion): a fresh 16 KiB JSON answer (the size of a 100-item GitHub
//!    list page) looked up among 5,000 entries, from the memory tier and from the store
//!    (memory tier off, `memory_mib = 0`: sled read + decode + policy check), with a miss
//!    for reference. The store is on disk in a temporary directory.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use snaptop::cache::{Answer, CacheRequest, Found, HttpCache, Namespace};
use snaptop::config::CacheConfig;
use snaptop::engine::model::Trigger;
use snaptop::engine::runner::{RunEnv, run_snapshot};
use snaptop::sim::{Profile, SimOptions, Source};
use snaptop::store::Store;
use tokio_util::sync::CancellationToken;

const ENTRIES: usize = 5_000;
const BODY_BYTES: usize = 16 * 1024;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(second_snapshot());
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(4));
    lookups(&mut c, &rt);
    c.final_summary();
}

async fn second_snapshot() {
    let sim = snaptop::sim::start(SimOptions {
        profile: Profile::Seed,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store"), 64).expect("store");
    let config = Arc::new(sim.config());
    let cache = HttpCache::open(store.clone(), config.cache.clone());
    for run in ["cold", "warm"] {
        sim.reset_counts();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let env = RunEnv::new(
            config.clone(),
            sim.secrets(),
            store.clone(),
            cache.clone(),
            tx,
        );
        let started = std::time::Instant::now();
        let (_, snapshot) = run_snapshot(env, Trigger::Cli, CancellationToken::new())
            .await
            .unwrap_or_else(|(_, e)| panic!("{run} snapshot failed: {e}"));
        let wall = started.elapsed();
        let _ = drain.await;
        cache.settle().await;
        assert!(!snapshot.partial, "{run}: {:?}", snapshot.failures);
        let log = sim.request_log();
        let github: Vec<_> = log.iter().filter(|r| r.source == Source::GitHub).collect();
        let answered_304 = github.iter().filter(|r| r.status == 304).count() as u64;
        let report = cache.report();
        let gh = report.runs.last().expect("run counts").per_namespace[&Namespace::GitHub];
        let no_request = gh.hits_memory + gh.hits_disk;
        let asked = github.len() as u64 + no_request;
        println!(
            "{run:>4} snapshot ({:.0} ms): GitHub {} requests sent, {answered_304} answered 304, \
             {no_request} answered by the cache without a request, {} coalesced; \
             {:.1}% of {asked} answered by 304 or cache; budget saved {}; all sources {} requests",
            wall.as_secs_f64() * 1e3,
            github.len(),
            gh.coalesced,
            (answered_304 + no_request) as f64 * 100.0 / asked.max(1) as f64,
            gh.budget_saved,
            log.len(),
        );
    }
    println!(
        "target: ≥ 95% of the second snapshot's GitHub requests answered by a 304 or the cache \
         (the seed team's was 70%)\n"
    );
}

fn body() -> String {
    // A JSON array of commit-like objects, to the byte size asked.
    let mut out = String::from("[");
    let mut i = 0;
    while out.len() < BODY_BYTES - 200 {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"sha":"{i:040x}","commit":{{"message":"change {i}","author":{{"date":"2026-11-30T12:00:00Z"}}}},"html_url":"https://github.example/o/r/commit/{i:040x}"}}"#
        ));
        i += 1;
    }
    out.push(']');
    out
}

fn url(i: usize) -> String {
    format!("https://api.github.example/repos/acme/svc-{i}/commits?per_page=100&page=1")
}

/// A cache over an on-disk store holding `ENTRIES` fresh answers.
fn filled(rt: &tokio::runtime::Runtime, memory_mib: u64, dir: &std::path::Path) -> HttpCache {
    let store = Store::open(&dir.join("store"), 64).expect("store");
    let cache = HttpCache::open(
        store,
        CacheConfig {
            memory_mib,
            disk_mib: 1024,
            ..CacheConfig::default()
        },
    );
    let body = body();
    let mut headers = HeaderMap::new();
    headers.insert("etag", HeaderValue::from_static("W/\"abc\""));
    headers.insert(
        "cache-control",
        HeaderValue::from_static("private, max-age=86400"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    rt.block_on(async {
        for i in 0..ENTRIES {
            let req = request(i);
            let stored = cache
                .store(
                    Namespace::GitHub,
                    &key(i),
                    &req,
                    Answer {
                        status: 200,
                        headers: &headers,
                        link: None,
                        body: &body,
                    },
                )
                .await;
            assert!(stored);
        }
        cache.settle().await;
    });
    cache
}

fn key(i: usize) -> String {
    format!("github anon GET {}", url(i))
}

fn request(i: usize) -> CacheRequest {
    let mut h = HeaderMap::new();
    h.insert(
        "accept",
        HeaderValue::from_static("application/vnd.github+json"),
    );
    CacheRequest::get(&url::Url::parse(&url(i)).expect("url"), &h).expect("request")
}

fn lookups(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let memory = filled(rt, 256, &dir.path().join("memory"));
    let store_only = filled(rt, 0, &dir.path().join("disk"));
    let requests: Vec<CacheRequest> = (0..ENTRIES).map(request).collect();
    let keys: Vec<String> = (0..ENTRIES).map(key).collect();
    // Warm the memory tier: every entry read once.
    rt.block_on(async {
        for i in 0..ENTRIES {
            let found = memory
                .lookup(Namespace::GitHub, &keys[i], &requests[i], None)
                .await;
            assert!(matches!(found, Some(Found::Fresh(..))));
        }
    });

    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(1));
    for (name, cache) in [("memory", &memory), ("store", &store_only)] {
        let mut i = 0usize;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(rt).iter(|| {
                i = (i + 7919) % ENTRIES;
                let (k, r) = (&keys[i], &requests[i]);
                async move {
                    let found = cache.lookup(Namespace::GitHub, k, r, None).await;
                    assert!(matches!(found, Some(Found::Fresh(..))));
                    black_box(found)
                }
            })
        });
    }
    let absent = request(ENTRIES + 1);
    group.bench_function(BenchmarkId::from_parameter("miss"), |b| {
        b.to_async(rt).iter(|| async {
            black_box(
                memory
                    .lookup(Namespace::GitHub, "github anon GET absent", &absent, None)
                    .await,
            )
        })
    });
    group.finish();
    println!("targets: memory lookup ≤ 5 µs, store lookup ≤ 100 µs");
}
