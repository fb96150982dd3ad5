//! The cache's semantics without a network: answers are stored with the headers a
//! source would send, then looked up as the fetchers do.

use super::*;
use crate::config::{CacheConfig, HumanDuration};

fn cache_with(config: CacheConfig) -> HttpCache {
    HttpCache::open(Store::temporary().unwrap(), config)
}

fn cache() -> HttpCache {
    cache_with(CacheConfig::default())
}

fn req(url: &str) -> CacheRequest {
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("application/json"));
    CacheRequest::get(&url::Url::parse(url).unwrap(), &h).unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

async fn put(
    c: &HttpCache,
    key: &str,
    r: &CacheRequest,
    h: &[(&'static str, &str)],
    body: &str,
) -> bool {
    let h = headers(h);
    c.store(
        Namespace::GitHub,
        key,
        r,
        Answer {
            status: 200,
            headers: &h,
            link: Some("<x?page=2>; rel=\"next\"".into()),
            body,
        },
    )
    .await
}

const URL: &str = "https://api.example.test/repos/o/r/commits?per_page=100";

fn gh(c: &HttpCache) -> Counts {
    c.report().lifetime[&Namespace::GitHub]
}

#[tokio::test]
async fn a_fresh_answer_is_served_without_a_request_from_memory_then_from_the_store() {
    let c = cache();
    let r = req(URL);
    assert!(
        put(
            &c,
            "k",
            &r,
            &[
                ("cache-control", "private, max-age=60"),
                ("etag", "W/\"1\"")
            ],
            "[1]"
        )
        .await
    );
    match c.lookup(Namespace::GitHub, "k", &r, None).await {
        Some(Found::Fresh(e, Tier::Memory)) => {
            assert_eq!(e.body, "[1]");
            assert_eq!(e.link.as_deref(), Some("<x?page=2>; rel=\"next\""));
        }
        other => panic!("{other:?}"),
    }
    // Another process (or after a restart): the store tier answers.
    let again = HttpCache::open(c.inner.store.clone(), CacheConfig::default());
    assert!(matches!(
        again.lookup(Namespace::GitHub, "k", &r, None).await,
        Some(Found::Fresh(_, Tier::Disk))
    ));
    assert!(matches!(
        again.lookup(Namespace::GitHub, "k", &r, None).await,
        Some(Found::Fresh(_, Tier::Memory))
    ));
    let n = gh(&c);
    assert_eq!((n.hits_memory, n.budget_saved), (1, 1));
    let n = gh(&again);
    assert_eq!((n.hits_disk, n.hits_memory), (1, 1));
}

#[tokio::test]
async fn a_stale_answer_is_revalidated_with_its_validators() {
    let c = cache();
    let r = req(URL);
    put(
        &c,
        "k",
        &r,
        &[
            ("cache-control", "max-age=0"),
            ("etag", "\"abc\""),
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ],
        "[1]",
    )
    .await;
    let Some(Found::Stale(entry, conditional)) = c.lookup(Namespace::GitHub, "k", &r, None).await
    else {
        panic!("stale");
    };
    assert_eq!(conditional.get("if-none-match").unwrap(), "\"abc\"");
    assert_eq!(
        conditional.get("if-modified-since").unwrap(),
        "Tue, 01 Dec 2026 10:00:00 GMT"
    );
    // The 304 refreshes the policy: now fresh for its new max-age.
    let h304 = headers(&[("etag", "\"abc\""), ("cache-control", "max-age=60")]);
    let updated = c
        .revalidated(Namespace::GitHub, "k", &entry, &r, &h304)
        .await
        .unwrap();
    assert!(updated.validated_at_ms >= entry.validated_at_ms);
    assert!(matches!(
        c.lookup(Namespace::GitHub, "k", &r, None).await,
        Some(Found::Fresh(..))
    ));
    // A 304 naming another strong validator does not confirm this body.
    let other = headers(&[("etag", "\"zzz\"")]);
    assert!(
        c.revalidated(Namespace::GitHub, "k", &entry, &r, &other)
            .await
            .is_none()
    );
    let n = gh(&c);
    assert_eq!(n.revalidated, 1);
    assert_eq!(
        n.budget_saved, 2,
        "GitHub does not charge a 304; one fresh hit"
    );
}

#[tokio::test]
async fn a_manual_run_revalidates_even_a_fresh_answer() {
    let c = cache();
    let r = req(URL);
    put(
        &c,
        "k",
        &r,
        &[("cache-control", "max-age=3600"), ("etag", "\"e\"")],
        "[]",
    )
    .await;
    let later = unix_now_ms() + 1;
    match c.lookup(Namespace::GitHub, "k", &r, Some(later)).await {
        Some(Found::Stale(_, conditional)) => {
            assert_eq!(conditional.get("if-none-match").unwrap(), "\"e\"")
        }
        other => panic!("{other:?}"),
    }
    // Confirmed during the run: fresh for the rest of it.
    let earlier = unix_now_ms() - 60_000;
    assert!(matches!(
        c.lookup(Namespace::GitHub, "k", &r, Some(earlier)).await,
        Some(Found::Fresh(..))
    ));
}

#[tokio::test]
async fn no_store_and_errors_are_never_stored() {
    let c = cache();
    let r = req(URL);
    assert!(
        !put(
            &c,
            "k",
            &r,
            &[("cache-control", "no-store"), ("etag", "\"e\"")],
            "[]"
        )
        .await
    );
    assert!(c.lookup(Namespace::GitHub, "k", &r, None).await.is_none());
    let h = HeaderMap::new();
    for status in [404, 500, 302] {
        let answer = Answer {
            status,
            headers: &h,
            link: None,
            body: "{}",
        };
        assert!(
            !c.store(Namespace::GitHub, "e", &r, answer).await,
            "{status}"
        );
    }
    assert_eq!(c.report().disk_total().entries, 0);
    assert_eq!(gh(&c).not_stored, 1);
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let c = cache();
    let r = req(URL);
    put(
        &c,
        "k",
        &r,
        &[
            ("cache-control", "max-age=60"),
            ("vary", "Accept, Authorization"),
        ],
        "[]",
    )
    .await;
    let mut raw = HeaderMap::new();
    raw.insert(
        "accept",
        HeaderValue::from_static("application/vnd.github.raw"),
    );
    let other = CacheRequest::get(&url::Url::parse(URL).unwrap(), &raw).unwrap();
    assert!(
        c.lookup(Namespace::GitHub, "k", &other, None)
            .await
            .is_none()
    );
    assert!(matches!(
        c.lookup(Namespace::GitHub, "k", &r, None).await,
        Some(Found::Fresh(..))
    ));
    // The fresh verdict remembered for `r` is not another variant's.
    assert!(
        c.lookup(Namespace::GitHub, "k", &other, None)
            .await
            .is_none()
    );
    // Credentials never reach the policy: `Vary: Authorization` is the key's fingerprint.
    let mut creds = HeaderMap::new();
    creds.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
    creds.insert("dd-api-key", HeaderValue::from_static("k3y"));
    let sanitized = CacheRequest::get(&url::Url::parse(URL).unwrap(), &creds).unwrap();
    assert!(sanitized.headers.is_empty());
    assert_ne!(
        credential_fingerprint(&["a"]),
        credential_fingerprint(&["b"])
    );
    assert_eq!(credential_fingerprint(&[]), "anon");
    assert!(!credential_fingerprint(&["bearer", "s3cret"]).contains("s3cret"));
}

#[tokio::test]
async fn a_remembered_fresh_verdict_runs_out_with_the_answers_freshness() {
    let c = cache();
    let r = req(URL);
    put(
        &c,
        "k",
        &r,
        &[("cache-control", "max-age=1"), ("etag", "\"e\"")],
        "[]",
    )
    .await;
    for _ in 0..3 {
        assert!(matches!(
            c.lookup(Namespace::GitHub, "k", &r, None).await,
            Some(Found::Fresh(..))
        ));
    }
    // A request with its own directives is judged by the policy, not the memo.
    let mut h = HeaderMap::new();
    h.insert("cache-control", HeaderValue::from_static("max-age=0"));
    let strict = CacheRequest::get(&url::Url::parse(URL).unwrap(), &h).unwrap();
    assert!(matches!(
        c.lookup(Namespace::GitHub, "k", &strict, None).await,
        Some(Found::Stale(..))
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let Some(Found::Stale(_, conditional)) = c.lookup(Namespace::GitHub, "k", &r, None).await
    else {
        panic!("expired: must be revalidated")
    };
    assert_eq!(conditional.get("if-none-match").unwrap(), "\"e\"");
    assert_eq!(gh(&c).hits_memory, 3);
}

#[tokio::test]
async fn answers_without_freshness_use_the_namespace_ttl() {
    let mut config = CacheConfig::default();
    config.ttl.github = HumanDuration::secs(30);
    let c = cache_with(config);
    let r = req(URL);
    put(&c, "k", &r, &[("content-type", "application/json")], "[]").await;
    assert!(matches!(
        c.lookup(Namespace::GitHub, "k", &r, None).await,
        Some(Found::Fresh(..))
    ));
    // With a TTL of 0 it must be asked again, and nothing says how: no validators.
    let c = cache();
    put(&c, "k", &r, &[("content-type", "application/json")], "[]").await;
    match c.lookup(Namespace::GitHub, "k", &r, None).await {
        Some(Found::Stale(_, conditional)) => assert!(conditional.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn immutable_objects_stay_until_evicted() {
    let c = cache();
    let key = "github anon file o/r@abc:k.yaml";
    assert_eq!(c.immutable(Namespace::GitHub, key).await, None);
    c.put_immutable_blocking(
        Namespace::GitHub,
        &[(key.to_string(), "images: []".to_string())],
    );
    assert_eq!(
        c.immutable(Namespace::GitHub, key).await.as_deref(),
        Some("images: []")
    );
    assert_eq!(
        c.immutable(Namespace::GitHub, key).await.as_deref(),
        Some("images: []")
    );
    let n = gh(&c);
    assert_eq!((n.misses, n.hits_disk, n.hits_memory), (1, 1, 1));
    assert_eq!(c.purge_expired(), 0, "never expires while used");
}

#[tokio::test]
async fn stale_if_error_is_bounded_by_its_window() {
    let c = cache();
    let r = req(URL);
    put(
        &c,
        "k",
        &r,
        &[("cache-control", "max-age=0"), ("etag", "\"e\"")],
        "[]",
    )
    .await;
    let Some(Found::Stale(entry, _)) = c.lookup(Namespace::GitHub, "k", &r, None).await else {
        panic!()
    };
    assert!(c.serve_stale(Namespace::GitHub, &entry));
    let strict = cache_with(CacheConfig {
        stale_if_error: HumanDuration::secs(0),
        ..CacheConfig::default()
    });
    let old = Entry {
        validated_at_ms: unix_now_ms() - 5,
        ..(*entry).clone()
    };
    assert!(!strict.serve_stale(Namespace::GitHub, &old));
    assert_eq!(gh(&c).stale_served, 1);
    assert_eq!(gh(&strict).stale_served, 0);
}

#[tokio::test]
async fn the_store_tier_evicts_least_recently_used_first_within_its_budget() {
    let config = CacheConfig {
        disk_mib: 1,
        ..CacheConfig::default()
    };
    let c = cache_with(config);
    let body = "x".repeat(100 << 10);
    let r = req(URL);
    for i in 0..8 {
        put(&c, &format!("k{i}"), &r, &[("etag", "\"e\"")], &body).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // k0 is used again: k1 is now the least recently used.
    assert!(c.lookup(Namespace::GitHub, "k0", &r, None).await.is_some());
    tokio::time::sleep(Duration::from_millis(3)).await;
    for i in 8..12 {
        put(&c, &format!("k{i}"), &r, &[("etag", "\"e\"")], &body).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let report = c.report();
    assert!(
        report.disk_total().bytes <= 1 << 20,
        "{:?}",
        report.disk_total()
    );
    let present = |k: &str| c.index().records.contains_key(k);
    assert!(present("k0"), "recently used");
    assert!(
        !present("k1") && !present("k2"),
        "least recently used went first"
    );
    assert!(present("k11"));
    assert!(gh(&c).evicted >= 2, "{:?}", gh(&c));
    // Gone from the memory tier too, though moka still holds it until it notices.
    assert!(c.lookup(Namespace::GitHub, "k1", &r, None).await.is_none());
    assert!(c.inner.store.cache_get("k1").unwrap().is_none());
}

#[tokio::test]
async fn the_memory_tier_holds_its_byte_budget_and_counts_evictions() {
    let config = CacheConfig {
        memory_mib: 1,
        ..CacheConfig::default()
    };
    let c = cache_with(config);
    let body = "y".repeat(60 << 10);
    let r = req(URL);
    for i in 0..40 {
        put(
            &c,
            &format!("m{i}"),
            &r,
            &[("cache-control", "max-age=60")],
            &body,
        )
        .await;
    }
    c.settle().await;
    let report = c.report();
    assert!(report.memory.bytes <= 1 << 20, "{:?}", report.memory);
    assert!(gh(&c).evicted_memory > 0);
    assert_eq!(report.disk_total().entries, 40, "the store keeps them all");
    // An entry larger than its share of the memory budget is served from the store only.
    put(
        &c,
        "big",
        &r,
        &[("cache-control", "max-age=60")],
        &"z".repeat(300 << 10),
    )
    .await;
    assert!(matches!(
        c.lookup(Namespace::GitHub, "big", &r, None).await,
        Some(Found::Fresh(_, Tier::Disk))
    ));
}

#[tokio::test]
async fn purge_drops_what_nothing_can_use_and_counts_it() {
    let config = CacheConfig {
        stale_if_error: HumanDuration::secs(0),
        ..CacheConfig::default()
    };
    let c = cache_with(config);
    let r = req(URL);
    put(
        &c,
        "no-validator",
        &r,
        &[("content-type", "application/json")],
        "[]",
    )
    .await;
    put(&c, "validator", &r, &[("etag", "\"e\"")], "[]").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(c.purge_expired(), 1);
    assert!(c.index().records.contains_key("validator"));
    assert_eq!(gh(&c).expired, 1);
    assert_eq!(c.clear(Namespace::GitHub), 1);
    assert_eq!(c.report().disk_total(), Gauge::default());
}

#[tokio::test]
async fn counters_and_runs_persist_across_a_reopen() {
    let store = Store::temporary().unwrap();
    let c = HttpCache::open(store.clone(), CacheConfig::default());
    let r = req(URL);
    c.begin_run();
    put(&c, "k", &r, &[("cache-control", "max-age=60")], "[]").await;
    c.record_miss(Namespace::GitHub);
    c.lookup(Namespace::GitHub, "k", &r, None).await;
    c.record_bypass(Namespace::Datadog);
    let run = c.end_run(7);
    assert_eq!(run.run_id, 7);
    assert_eq!(run.per_namespace[&Namespace::GitHub].hit_rate(), Some(0.5));
    assert!(
        !run.per_namespace.contains_key(&Namespace::Jira),
        "idle: not listed"
    );
    drop(c);
    let c = HttpCache::open(store, CacheConfig::default());
    let report = c.report();
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.lifetime[&Namespace::GitHub].misses, 1);
    assert_eq!(report.lifetime[&Namespace::Datadog].bypassed, 1);
    assert_eq!(report.disk[&Namespace::GitHub].entries, 1);
    assert_eq!(
        report.hit_rates(Some(Namespace::Jira))[0].text(),
        "no lookups"
    );
}

#[tokio::test]
async fn an_unreadable_entry_is_dropped_at_its_lookup() {
    let c = cache();
    let r = req(URL);
    put(&c, "k", &r, &[("etag", "\"e\"")], "[]").await;
    let record = c.inner.store.cache_index().unwrap().remove(0).1;
    c.inner.store.cache_put("k", b"garbage", &record).unwrap();
    c.inner.memory.invalidate("k").await;
    assert!(c.lookup(Namespace::GitHub, "k", &r, None).await.is_none());
    assert!(c.inner.store.cache_get("k").unwrap().is_none());
}

#[test]
fn credentials_in_the_url_are_recognised() {
    let u = |s: &str| url::Url::parse(s).unwrap();
    assert!(url_carries_credentials(&u("https://user:pw@h/x")));
    assert!(url_carries_credentials(&u("https://h/x?access_token=abc")));
    assert!(url_carries_credentials(&u("https://h/x?API_KEY=abc")));
    assert!(!url_carries_credentials(&u(
        "https://h/x?per_page=100&page=2"
    )));
}
