//! Store growth benchmark (issue 12): the store's size on disk over 1,000 runs against
//! its budget, with and without compaction, and a warm snapshot on the aged store
//! against one on a fresh store.
//!
//! `cargo bench --bench store_growth` (env: `SNAPTOP_BENCH_RUNS`, default 1000;
//! `SNAPTOP_BENCH_REAL_RUNS`, default all: how many of them are real snapshots).
//!
//! Each variant opens a store on disk with the simulator config's `[retention]` and
//! budget (`[cache] disk_mib` plus what the retention keeps), runs real warm snapshots of
//! the simulator's `seed` profile (its rate limits lifted) for the first `REAL_RUNS`
//! runs, and then, if fewer than all, commits the rest the way a warm run writes the store: the last real
//! snapshot and run detail under a new run id (`commit_run` + `put_run_detail`, so the
//! retention trims as it would), every HTTP-cache index record rewritten (a warm run
//! touches each entry it uses) and a tenth of the cache entries rewritten (answers that
//! changed), then a flush. "with compaction" checks `needs_compaction()` after every run
//! and compacts when it says so (what an open does, or the UI's action); "without" never
//! compacts. Then three warm snapshots on each aged store and on a fresh one (after its
//! cold run), medians compared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use snaptop::cache::HttpCache;
use snaptop::config::Config;
use snaptop::engine::model::{RunDetail, RunSummary, Snapshot, Trigger};
use snaptop::engine::runner::{RunEnv, run_snapshot};
use snaptop::sim::{Profile, RunningSim, SimOptions};
use snaptop::store::{Store, StoreOptions};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const MIB: f64 = 1024.0 * 1024.0;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(
        env("SNAPTOP_BENCH_RUNS", 1000),
        env("SNAPTOP_BENCH_REAL_RUNS", u64::MAX),
    ));
}

/// One real snapshot through `cache`; its wall time.
async fn real_run(
    sim: &RunningSim,
    config: &Arc<Config>,
    store: &Store,
    cache: &HttpCache,
) -> (Duration, RunSummary, Snapshot) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let env = RunEnv::new(
        config.clone(),
        sim.secrets(),
        store.clone(),
        cache.clone(),
        tx,
    );
    let started = Instant::now();
    let (summary, snapshot) = run_snapshot(env, Trigger::Scheduled, CancellationToken::new())
        .await
        .unwrap_or_else(|(_, e)| panic!("snapshot failed: {e}"));
    let wall = started.elapsed();
    let _ = drain.await;
    assert!(!snapshot.partial, "{:?}", snapshot.failures);
    (wall, summary, snapshot)
}

/// What a warm run writes to the store, without the run.
fn synthetic_run(store: &Store, template: &(RunSummary, Snapshot, RunDetail), n: u64) {
    let (summary, snapshot, detail) = template;
    let id = store.next_run_id().expect("run id");
    let now = OffsetDateTime::now_utc();
    let summary = RunSummary {
        id,
        started_at: now,
        ..summary.clone()
    };
    let snapshot = Snapshot {
        run_id: id,
        started_at: now,
        finished_at: now,
        ..snapshot.clone()
    };
    store.commit_run(&summary, Some(&snapshot)).expect("commit");
    store.put_run_detail(id, detail).expect("detail");
    let index = store.cache_index().expect("index");
    store.cache_touch(&index).expect("touch");
    for (key, record) in index.iter().skip((n % 10) as usize).step_by(10) {
        if let Some(entry) = store.cache_get(key).expect("entry") {
            store.cache_put(key, &entry, record).expect("put");
        }
    }
    store.flush_blocking().expect("flush");
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

async fn warm_median(
    sim: &RunningSim,
    config: &Arc<Config>,
    store: &Store,
    cache: &HttpCache,
) -> Duration {
    let mut walls = Vec::new();
    for _ in 0..3 {
        walls.push(real_run(sim, config, store, cache).await.0);
    }
    median(walls)
}

async fn bench(runs: u64, real_runs: u64) {
    // The simulator's rate limits lifted: a thousand runs in minutes is not what the
    // hourly budgets are for (snaptop would wait for their resets).
    let sim = snaptop::sim::start(SimOptions {
        profile: Profile::Seed,
        github_rest_budget: u64::MAX / 2,
        github_graphql_budget: u64::MAX / 2,
        github_rest_points_per_minute: usize::MAX,
        github_graphql_points_per_minute: usize::MAX,
        datadog_budget: u64::MAX / 2,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let config = Arc::new(sim.config());
    let options = StoreOptions::from_config(&config);
    let budget = options.budget_bytes;
    println!(
        "store growth: seed profile, {runs} runs ({} real snapshots, any others committed as a warm run writes the store); \
         retention {:?}; budget {:.0} MiB ([cache] disk_mib {} + retention + 64 MiB)",
        real_runs.min(runs),
        config.retention,
        budget as f64 / MIB,
        config.cache.disk_mib,
    );

    // A fresh store: its cold run, then warm ones.
    let fresh_dir = tempfile::tempdir().expect("temp dir");
    let fresh = Store::open_with(&fresh_dir.path().join("store"), options.clone()).expect("store");
    let fresh_cache = HttpCache::open(fresh.clone(), config.cache.clone());
    let (cold, _, _) = real_run(&sim, &config, &fresh, &fresh_cache).await;
    let fresh_warm = warm_median(&sim, &config, &fresh, &fresh_cache).await;
    let (fresh_file, fresh_live) = fresh.disk_usage_total();
    println!(
        "fresh store: cold snapshot {:.0} ms, warm {:.0} ms (median of 3); {:.1} MiB on disk, {:.1} MiB live",
        cold.as_secs_f64() * 1e3,
        fresh_warm.as_secs_f64() * 1e3,
        fresh_file as f64 / MIB,
        fresh_live as f64 / MIB,
    );
    drop((fresh, fresh_cache));

    for compacting in [false, true] {
        let name = if compacting {
            "with compaction"
        } else {
            "without compaction"
        };
        println!("\n{name}:");
        println!("  runs | on disk MiB | live MiB | disk/live | budget used | compactions");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_with(
            &dir.path().join("store"),
            StoreOptions {
                auto_compact: compacting,
                ..options.clone()
            },
        )
        .expect("store");
        let cache = HttpCache::open(store.clone(), config.cache.clone());
        let mut template = None;
        let mut compactions = Vec::new();
        let mut max_file = 0u64;
        let started = Instant::now();
        for n in 1..=runs {
            if n <= real_runs || template.is_none() {
                let (_, summary, snapshot) = real_run(&sim, &config, &store, &cache).await;
                let detail = store
                    .run_details(&[summary.id])
                    .remove(&summary.id)
                    .expect("the run's detail");
                template = Some((summary, snapshot, detail));
            } else if let Some(t) = &template {
                synthetic_run(&store, t, n);
            }
            let (file, _) = store.disk_usage();
            max_file = max_file.max(file);
            if compacting && store.needs_compaction() {
                compactions.push(store.compact().expect("compaction"));
            }
            if n % 100 == 0 || n == runs {
                let (file, live) = store.disk_usage_total();
                println!(
                    "  {n:>4} | {:>11.1} | {:>8.1} | {:>8.1}× | {:>10.1}% | {}",
                    file as f64 / MIB,
                    live as f64 / MIB,
                    file as f64 / live.max(1) as f64,
                    file as f64 * 100.0 / budget as f64,
                    compactions.len(),
                );
            }
        }
        let aged_warm = warm_median(&sim, &config, &store, &cache).await;
        println!(
            "  {runs} runs in {:.0} s; largest on disk {:.1} MiB ({:.1}% of the budget)",
            started.elapsed().as_secs_f64(),
            max_file as f64 / MIB,
            max_file as f64 * 100.0 / budget as f64,
        );
        for c in &compactions {
            println!(
                "  compaction: {:.1} → {:.1} MiB in {:.0} ms",
                c.before_bytes as f64 / MIB,
                c.after_bytes as f64 / MIB,
                c.duration.as_secs_f64() * 1e3,
            );
        }
        if !compacting {
            let report = store.compact().expect("compaction");
            println!(
                "  one compaction at the end: {:.1} → {:.1} MiB in {:.0} ms",
                report.before_bytes as f64 / MIB,
                report.after_bytes as f64 / MIB,
                report.duration.as_secs_f64() * 1e3,
            );
        }
        println!(
            "  warm snapshot on the {runs}-run store {:.0} ms vs {:.0} ms on a fresh store: {:.2}×",
            aged_warm.as_secs_f64() * 1e3,
            fresh_warm.as_secs_f64() * 1e3,
            aged_warm.as_secs_f64() / fresh_warm.as_secs_f64(),
        );
    }
    println!(
        "\ntargets: after 1,000 runs the store's size on disk within its budget; a snapshot no slower than on a fresh store"
    );
}
