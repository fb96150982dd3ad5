//! The HTTP layer every source uses, against small servers on 127.0.0.1: coalescing,
//! 304s replaying `Link`, retry limits, connection errors, the shared pause after
//! `Retry-After`, and where credentials may go.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use snaptop::cache::{HttpCache, Namespace};
use snaptop::config::CacheConfig;
use snaptop::redact::Redactor;
use snaptop::sources::http::ClientCache;
use snaptop::sources::http::{
    Auth, ClientContext, ClientOptions, CrossOrigin, MAX_TRANSIENT_RETRIES, SourceClient,
};
use snaptop::store::Store;

/// What a test server saw: (time, method, path and query, headers).
type Seen = Arc<Mutex<Vec<(Instant, String, String, HeaderMap)>>>;

struct Server {
    url: String,
    seen: Seen,
}

impl Server {
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Serves `answer(n, request)` for the n-th request (from 0), recording each.
async fn server<F>(answer: F) -> Server
where
    F: Fn(usize, &Request) -> Response + Clone + Send + Sync + 'static,
{
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new().fallback(move |req: Request| {
        let record = record.clone();
        let answer = answer.clone();
        async move {
            let n = {
                let mut s = record.lock().unwrap();
                s.push((
                    Instant::now(),
                    req.method().to_string(),
                    req.uri().to_string(),
                    req.headers().clone(),
                ));
                s.len() - 1
            };
            answer(n, &req)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { url, seen }
}

fn client(base: &str, cache: Option<HttpCache>) -> SourceClient {
    client_with(base, cache, |_| {})
}

fn client_with(
    base: &str,
    cache: Option<HttpCache>,
    f: impl FnOnce(&mut ClientOptions),
) -> SourceClient {
    let ctx = ClientContext::quiet(Duration::from_millis(1));
    let mut opts = ClientOptions {
        cache: cache.map(|cache| ClientCache {
            cache,
            namespace: Namespace::GitHub,
            reload_before: None,
        }),
        ..ClientOptions::new(
            "test",
            "Test",
            base.to_string(),
            Auth::Bearer("tok-SECRET-123".into()),
            &ctx,
        )
    };
    f(&mut opts);
    SourceClient::new(opts).unwrap()
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

#[tokio::test]
async fn identical_gets_in_flight_share_one_request_and_its_error_and_leave_no_entry() {
    let srv = server(|_, _| json(StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#)).await;
    let c = client(&srv.url, None);
    let url = c.url("things").unwrap();
    let (a, b) = tokio::join!(c.get(url.clone(), "core"), c.get(url.clone(), "core"));
    assert_eq!(srv.requests(), 1, "coalesced");
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    assert_eq!((a.status, b.status), (Some(404), Some(404)));
    assert_eq!(a.message, b.message);
    // The finished request left the in-flight map: the next GET is sent again.
    let _ = c.get(url, "core").await;
    assert_eq!(srv.requests(), 2);
}

#[tokio::test]
async fn a_304_replays_the_cached_body_and_its_link_header() {
    let srv = server(|_, req| {
        let etag = "W/\"v1\"";
        if req
            .headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            == Some(etag)
        {
            return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
        }
        (
            StatusCode::OK,
            [
                ("etag", etag),
                (
                    "link",
                    "<http://x/items?page=2>; rel=\"next\", <http://x/items?page=3>; rel=\"last\"",
                ),
                ("content-type", "application/json"),
            ],
            "[1,2,3]",
        )
            .into_response()
    })
    .await;
    let cache = HttpCache::open(Store::temporary().unwrap(), CacheConfig::default());
    let c = client(&srv.url, Some(cache));
    let url = c.url("items").unwrap();
    let (first, resp): (Vec<u32>, _) = c.get_json(url.clone(), "core").await.unwrap();
    assert!(!resp.not_modified);
    let (again, resp2): (Vec<u32>, _) = c.get_json(url, "core").await.unwrap();
    assert_eq!(first, again);
    assert!(resp2.not_modified, "answered 304");
    assert_eq!(
        resp2.link, resp.link,
        "the Link header is replayed for paging"
    );
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen[1].3.get("if-none-match").unwrap(), "W/\"v1\"");
}

#[tokio::test]
async fn transient_failures_are_retried_a_bounded_number_of_times() {
    let srv = server(|_, _| json(StatusCode::SERVICE_UNAVAILABLE, "{}")).await;
    let c = client(&srv.url, None);
    let e = c
        .get_uncached(c.url("x").unwrap(), "core")
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(503));
    assert_eq!(srv.requests(), 1 + MAX_TRANSIENT_RETRIES);
    // A 4xx is an answer, not a transient failure: once.
    let srv =
        server(|_, _| json(StatusCode::UNAUTHORIZED, r#"{"message":"Bad credentials"}"#)).await;
    let c = client(&srv.url, None);
    let e = c
        .get_uncached(c.url("x").unwrap(), "core")
        .await
        .unwrap_err();
    assert!(e.message.contains("Bad credentials"), "{e}");
    assert_eq!(srv.requests(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_named_and_retries_come_out_of_one_budget() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let c = client(&closed, None);
    let started = Instant::now();
    let mut retried = 0;
    for i in 0..30 {
        let e = c
            .get_uncached(c.url(&format!("x{i}")).unwrap(), "core")
            .await
            .unwrap_err();
        assert!(e.message.contains("cannot connect"), "{e}");
        assert!(e.transient);
        retried = c
            .counters()
            .retries
            .load(std::sync::atomic::Ordering::Relaxed);
    }
    // 30 endpoints × 3 retries without a budget; far fewer with one.
    let sent = c
        .counters()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        retried <= snaptop::sources::http::RETRY_BUDGET_BASE + sent / 5,
        "{retried} retries of {sent}"
    );
    assert!(retried < 30 * MAX_TRANSIENT_RETRIES as u64, "{retried}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn retry_after_pauses_every_request_of_the_budget_not_just_the_one_answered() {
    let srv = server(|n, _| {
        if n == 0 {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response();
        }
        json(StatusCode::OK, "[]")
    })
    .await;
    let c = client(&srv.url, None);
    let first = c.get_uncached(c.url("a").unwrap(), "core");
    let second = async {
        // Sent once the first one has been told to wait.
        while srv.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.get_uncached(c.url("b").unwrap(), "core").await
    };
    let (a, b) = tokio::join!(first, second);
    a.unwrap();
    b.unwrap();
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "429, then both after the pause");
    let limited_at = seen[0].0;
    for (at, _, path, _) in &seen[1..] {
        assert!(
            at.duration_since(limited_at) >= Duration::from_millis(900),
            "{path} was sent {:?} after the 429",
            at.duration_since(limited_at)
        );
    }
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    let capture = server(|_, _| json(StatusCode::OK, "{}")).await;
    let target = format!("{}/blob", capture.url);
    let redirecting = server(move |_, _| {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", target.clone())],
        )
            .into_response()
    })
    .await;
    // An API refuses it, naming where it pointed.
    let api = client(&redirecting.url, None);
    let e = api
        .get_uncached(api.url("x").unwrap(), "core")
        .await
        .unwrap_err();
    assert!(
        e.message.contains("redirected to another origin") && e.message.contains(&capture.url),
        "{e}"
    );
    assert_eq!(capture.requests(), 0);
    // A registry follows it to its CDN, without any credential.
    let registry = client_with(&redirecting.url, None, |o| {
        o.cross_origin = CrossOrigin::FollowWithoutCredentials;
        o.auth = Auth::Headers(vec![("dd-api-key", "k-SECRET".into())]);
    });
    registry
        .get_uncached(registry.url("x").unwrap(), "core")
        .await
        .unwrap();
    let seen = capture.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].3.get("authorization").is_none() && seen[0].3.get("dd-api-key").is_none(),
        "{:?}",
        seen[0].3
    );
}

#[tokio::test]
async fn redirects_within_the_origin_are_followed_but_not_forever_and_posts_only_with_307() {
    let srv = server(|_, req| match req.uri().path() {
        "/moved" => (StatusCode::MOVED_PERMANENTLY, [("location", "/here")]).into_response(),
        "/here" => json(StatusCode::OK, r#"{"ok":true}"#),
        "/loop" => (StatusCode::FOUND, [("location", "/loop")]).into_response(),
        "/post-303" => (StatusCode::SEE_OTHER, [("location", "/here")]).into_response(),
        "/post-307" => (StatusCode::TEMPORARY_REDIRECT, [("location", "/here")]).into_response(),
        _ => json(StatusCode::NOT_FOUND, "{}"),
    })
    .await;
    let c = client(&srv.url, None);
    let ok = c
        .get_uncached(c.url("moved").unwrap(), "core")
        .await
        .unwrap();
    assert_eq!(ok.body, r#"{"ok":true}"#);
    let seen = srv.seen.lock().unwrap().clone();
    assert!(
        seen[1].3.get("authorization").is_some(),
        "same origin keeps the credentials"
    );
    let e = c
        .get_uncached(c.url("loop").unwrap(), "core")
        .await
        .unwrap_err();
    assert!(e.message.contains("redirects"), "{e}");
    let body = serde_json::json!({"q": 1});
    let e = c
        .post_json(c.url("post-303").unwrap(), &body, "core")
        .await
        .unwrap_err();
    assert!(e.message.contains("POST redirected"), "{e}");
    let ok = c
        .post_json(c.url("post-307").unwrap(), &body, "core")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn links_and_urls_off_the_configured_origin_are_refused_before_sending() {
    let srv = server(|_, _| json(StatusCode::OK, "[]")).await;
    let other = server(|_, _| json(StatusCode::OK, "[]")).await;
    let c = client(&format!("{}/api/v3", srv.url), None);
    let e = c
        .follow_link(&format!("{}/api/v3/items?page=2", other.url), "/items")
        .unwrap_err();
    assert!(e.message.contains("not followed"), "{e}");
    // Same origin but outside the base path: not an endpoint of this API either.
    assert!(
        c.follow_link(&format!("{}/admin?page=2", srv.url), "/items")
            .is_err()
    );
    assert!(
        c.follow_link(&format!("{}/api/v3/items?page=2", srv.url), "/items")
            .is_ok()
    );
    let url = reqwest::Url::parse(&format!("{}/x", other.url)).unwrap();
    let e = c.get_uncached(url, "core").await.unwrap_err();
    assert!(e.message.contains("not a configured origin"), "{e}");
    assert_eq!(other.requests(), 0);
}

#[tokio::test]
async fn an_answer_echoing_a_secret_is_redacted_and_never_cached() {
    let srv = server(|_, req| {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            StatusCode::OK,
            [
                ("etag", "W/\"e\"".to_string()),
                ("content-type", "application/json".into()),
            ],
            format!("[\"{auth}\"]"),
        )
            .into_response()
    })
    .await;
    let cache = HttpCache::open(Store::temporary().unwrap(), CacheConfig::default());
    let c = client_with(&srv.url, Some(cache.clone()), |o| {
        o.redactor = Redactor::new(["tok-SECRET-123"], []);
    });
    let url = c.url("echo").unwrap();
    let (_, resp): (Vec<String>, _) = c.get_json(url.clone(), "core").await.unwrap();
    assert!(
        resp.body.contains("tok-SECRET-123"),
        "the caller parses what came"
    );
    assert_eq!(cache.report().disk_total().entries, 0, "not stored");
    assert_eq!(cache.report().lifetime_total().not_stored, 1);
    // An error quoting it is redacted.
    let srv = server(|_, _| {
        json(
            StatusCode::BAD_REQUEST,
            r#"{"message":"bad token tok-SECRET-123"}"#,
        )
    })
    .await;
    let c = client_with(&srv.url, None, |o| {
        o.redactor = Redactor::new(["tok-SECRET-123"], []);
    });
    let e = c
        .get_uncached(c.url("x").unwrap(), "core")
        .await
        .unwrap_err();
    assert!(
        !e.to_string().contains("SECRET") && e.message.contains("[REDACTED]"),
        "{e}"
    );
}

#[tokio::test]
async fn bodies_are_capped_whether_or_not_they_announce_their_length() {
    let srv = server(|_, req| {
        let big = "x".repeat(3 << 20);
        if req.uri().path() == "/announced" {
            return (StatusCode::OK, big).into_response();
        }
        let chunks =
            (0..48).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 64 << 10])));
        Response::new(axum::body::Body::from_stream(futures::stream::iter(chunks)))
    })
    .await;
    let c = client_with(&srv.url, None, |o| o.max_body_bytes = 1 << 20);
    for path in ["announced", "streamed"] {
        let e = c
            .get_uncached(c.url(path).unwrap(), "core")
            .await
            .unwrap_err();
        assert!(e.message.contains("over the 1 MiB limit"), "{path}: {e}");
        assert!(!e.transient, "{path}: retrying gets the same body");
    }
}

#[tokio::test]
async fn concurrent_identical_gets_send_one_request_and_the_cache_counts_the_waiters() {
    let etag = "\"v1\"";
    let srv = server(move |_, req| {
        if req
            .headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            == Some(etag)
        {
            return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
        }
        (
            StatusCode::OK,
            [
                ("etag", etag),
                ("cache-control", "max-age=0"),
                ("content-type", "application/json"),
            ],
            "[1,2,3]",
        )
            .into_response()
    })
    .await;
    let cache = HttpCache::open(Store::temporary().unwrap(), CacheConfig::default());
    let c = client(&srv.url, Some(cache.clone()));
    let url = c.url("items").unwrap();
    let gets =
        || futures::future::join_all((0..16).map(|_| c.get_json::<Vec<u32>>(url.clone(), "core")));
    // Cold: one request, fifteen waiters.
    for answer in gets().await {
        assert_eq!(answer.unwrap().0, vec![1, 2, 3]);
    }
    assert_eq!(srv.requests(), 1);
    let gh = cache.report().lifetime[&Namespace::GitHub];
    assert_eq!((gh.requests, gh.misses, gh.coalesced), (1, 1, 15), "{gh:?}");
    // Stale (max-age=0): one conditional request for all sixteen, answered 304.
    for answer in gets().await {
        assert_eq!(answer.unwrap().0, vec![1, 2, 3]);
    }
    assert_eq!(srv.requests(), 2);
    let gh = cache.report().lifetime[&Namespace::GitHub];
    assert_eq!(
        (gh.requests, gh.revalidated, gh.coalesced),
        (2, 1, 30),
        "{gh:?}"
    );
    // GitHub does not charge a 304: the revalidation and every waiter saved one.
    assert_eq!(gh.budget_saved, 31);
}
