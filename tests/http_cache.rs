//! Issue 12: the HTTP cache measured against the simulator's own request log. What the
//! cache says it saved must match what the sources saw, a warm snapshot must be answered
//! by 304s and hits, and no identical GET may reach a source twice in a run.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use snaptop::cache::{Counts, HttpCache, Namespace};
use snaptop::engine::model::{Part, Snapshot};
use snaptop::sim::{Fault, LoggedRequest, Profile, RunningSim, SimOptions, Source};
use snaptop::store::Store;

fn namespace(source: Source) -> Namespace {
    match source {
        Source::GitHub => Namespace::GitHub,
        Source::TeamCity => Namespace::TeamCity,
        Source::Datadog => Namespace::Datadog,
        Source::Jira => Namespace::Jira,
        Source::Registry => Namespace::Registry,
    }
}

/// One snapshot through `cache` (the app keeps one per process), and the cache's
/// counts for that run.
async fn run(
    sim: &RunningSim,
    store: &Store,
    cache: &HttpCache,
) -> (Snapshot, BTreeMap<Namespace, Counts>) {
    let (snapshot, _) = common::snapshot_env(sim, sim.config(), store, |env| {
        env.cache = cache.clone();
    })
    .await;
    cache.settle().await;
    let report = cache.report();
    let last = report.runs.last().expect("the run's counts were kept");
    assert_eq!(last.run_id, snapshot.run_id, "the counts are the run's own");
    (snapshot, last.per_namespace.clone())
}

/// GETs that reached a source more than once: (source, target) → times. A 401 is the
/// registry token flow's challenge (ask, be refused with a realm, ask again with a
/// token), not an answer.
fn duplicate_gets(log: &[LoggedRequest]) -> BTreeMap<(String, String), usize> {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in log.iter().filter(|r| r.method == "GET" && r.status != 401) {
        *seen
            .entry((r.source.name().to_string(), r.target.clone()))
            .or_default() += 1;
    }
    seen.retain(|_, n| *n > 1);
    seen
}

fn seed() -> SimOptions {
    SimOptions {
        profile: Profile::Seed,
        ..SimOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_snapshot_is_answered_by_the_cache_and_its_counts_match_the_sources() {
    let sim = common::sim(seed()).await;
    let store = Store::temporary().unwrap();
    let cache = HttpCache::open(store.clone(), sim.config().cache.clone());

    let (cold, cold_counts) = run(&sim, &store, &cache).await;
    assert!(!cold.partial, "{:?}", cold.failures);
    check_counts_match_the_log(&sim, &cold_counts);

    sim.reset_counts();
    let (warm, counts) = run(&sim, &store, &cache).await;
    assert!(!warm.partial, "{:?}", warm.failures);
    assert_eq!(warm.cells, cold.cells, "the cache changed no answer");
    check_counts_match_the_log(&sim, &counts);

    // The target: ≥ 95% of the second snapshot's GitHub requests answered by a
    // 304 or by the cache (no request at all).
    let gh = counts[&Namespace::GitHub];
    let log = sim.request_log();
    let upstream = log.iter().filter(|r| r.source == Source::GitHub).count() as u64;
    let answered_304 = log
        .iter()
        .filter(|r| r.source == Source::GitHub && r.status == 304)
        .count() as u64;
    let no_request = gh.hits_memory + gh.hits_disk;
    let share = (answered_304 + no_request) as f64 / (upstream + no_request) as f64;
    println!(
        "second snapshot, GitHub: {upstream} requests ({answered_304} answered 304), \
         {no_request} answered without a request: {:.1}% by 304 or cache",
        share * 100.0
    );
    assert!(share >= 0.95, "{:.1}% < 95%: {gh:?}", share * 100.0);
    // GitHub does not charge a 304 against the budget: every 304 and every hit saved one.
    assert_eq!(gh.budget_saved, answered_304 + no_request + gh.coalesced);
}

/// The cache's own accounting against the simulator's log: the requests it counts are
/// the ones the source saw, every 304 the source gave is a revalidation and, where
/// objects are not fetched in batches (all but GitHub's file texts and the registry's
/// digests), every request is a miss, a revalidation or a bypass.
fn check_counts_match_the_log(sim: &RunningSim, counts: &BTreeMap<Namespace, Counts>) {
    let log = sim.request_log();
    for source in Source::ALL {
        let ns = namespace(source);
        let c = counts.get(&ns).copied().unwrap_or_default();
        let sent = log.iter().filter(|r| r.source == source).count() as u64;
        let not_modified = log
            .iter()
            .filter(|r| r.source == source && r.status == 304)
            .count() as u64;
        assert_eq!(sent, c.requests, "{}: requests sent: {c:?}", source.name());
        if !matches!(ns, Namespace::GitHub | Namespace::Registry) {
            assert_eq!(
                sent,
                c.misses + c.revalidated + c.bypassed,
                "{}: misses + 304s + bypasses: {c:?}",
                source.name()
            );
        }
        assert_eq!(not_modified, c.revalidated, "{}: 304s", source.name());
        assert_eq!(sim.counts(source).not_modified, not_modified);
        assert_eq!(c.stale_served, 0, "{}: nothing failed", source.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identical_get_reaches_a_source_twice_in_a_run() {
    // Latency keeps requests in flight long enough for identical ones to meet.
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(15),
        ..seed()
    })
    .await;
    let store = Store::temporary().unwrap();
    let cache = HttpCache::open(store.clone(), sim.config().cache.clone());
    for phase in ["cold", "warm"] {
        sim.reset_counts();
        let (snapshot, counts) = run(&sim, &store, &cache).await;
        assert!(!snapshot.partial, "{phase}: {:?}", snapshot.failures);
        let log = sim.request_log();
        assert!(!log.is_empty());
        let dups = duplicate_gets(&log);
        assert!(
            dups.is_empty(),
            "{phase}: duplicate upstream GETs: {dups:#?}"
        );
        let coalesced: u64 = counts.values().map(|c| c.coalesced).sum();
        println!(
            "{phase}: {} upstream requests, 0 duplicates, {coalesced} coalesced waiters",
            log.len()
        );
    }
}

#[tokio::test]
async fn concurrent_runs_of_one_client_share_each_request() {
    // Two snapshots at once over one cache (a daemon's scheduled run meeting a manual
    // one): each still sends what it needs, but within each the GETs are unique, and
    // the store stays consistent for a third run.
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(5),
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let cache = HttpCache::open(store.clone(), sim.config().cache.clone());
    let _ = run(&sim, &store, &cache).await;
    sim.reset_counts();
    let config = Arc::new(sim.config());
    let one = common::snapshot_env(&sim, (*config).clone(), &store, |env| {
        env.cache = cache.clone();
    });
    let two = common::snapshot_env(&sim, (*config).clone(), &store, |env| {
        env.cache = cache.clone();
    });
    let ((a, _), (b, _)) = tokio::join!(one, two);
    assert!(!a.partial && !b.partial);
    assert_eq!(a.cells, b.cells);
    let (third, counts) = run(&sim, &store, &cache).await;
    assert_eq!(third.cells, a.cells);
    assert!(counts[&Namespace::GitHub].hits() > 0);
}

#[tokio::test]
async fn a_source_that_fails_is_served_stale_counted_and_marked_in_the_cells() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let cache = HttpCache::open(store.clone(), sim.config().cache.clone());
    let (good, _) = run(&sim, &store, &cache).await;
    assert!(!good.partial);

    sim.set_fault(Source::TeamCity, Fault::ServerError);
    let (bad, counts) = run(&sim, &store, &cache).await;
    assert!(bad.partial, "a stale answer is not a complete run");
    let tc = counts[&Namespace::TeamCity];
    assert!(tc.stale_served > 0, "{tc:?}");
    assert_eq!(tc.misses + tc.revalidated, 0, "{tc:?}");
    for (env, row) in &good.cells {
        for (comp, before) in row {
            let cell = bad.cell(env, comp).unwrap();
            assert_eq!(
                cell.build, before.build,
                "{env}/{comp}: the last known build"
            );
            assert!(cell.is_stale(Part::Build), "{env}/{comp}: shown stale");
            assert!(
                !cell.is_stale(Part::Deployment),
                "{env}/{comp}: GitHub answered"
            );
        }
    }
    assert!(
        bad.failures.iter().any(|f| f.source == "teamcity"),
        "the failure is named: {:?}",
        bad.failures
    );
    let lifetime = cache.report().lifetime[&Namespace::TeamCity];
    assert_eq!(
        lifetime.stale_served, tc.stale_served,
        "lifetime counts it too"
    );
}
