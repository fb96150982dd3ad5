//! `snaptop serve --http`: the real daemon process against the simulator, asked over
//! loopback HTTP like a CI job would: the token, one snapshot at a time (202 then 409),
//! status while running, the latest snapshot, and metrics a Prometheus parser reads.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use snaptop::sim::SimOptions;

const TOKEN: &str = "s3cr3t-token-for-tests-0123456789";

struct Daemon {
    child: Child,
    base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(sim: &snaptop::sim::RunningSim, dir: &std::path::Path) -> Daemon {
    let config = common::write_config(sim, dir);
    let mut text = std::fs::read_to_string(&config).unwrap();
    // No automatic first run: the test decides when runs start.
    text.push_str("\n[schedule]\nenabled = false\n");
    std::fs::write(&config, text).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = common::snaptop(sim, dir)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--http", "127.0.0.1:0", "--http-token-file"])
        .arg(&token)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let line = lines
        .next()
        .expect("the daemon says where it serves")
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    // Keep draining stderr so the daemon never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Daemon { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_job_triggers_once_watches_and_reads_the_result_and_the_metrics() {
    // Far enough that a run lasts a second or so.
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(100),
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(&sim, dir.path());
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", daemon.base);
    let authed = |r: reqwest::RequestBuilder| r.bearer_auth(TOKEN);
    // An authorised call: its status and JSON body.
    let call = |r: reqwest::RequestBuilder| async move {
        let r = r.bearer_auth(TOKEN).send().await.unwrap();
        let status = r.status();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };

    // Without the token, or with another one: 401, whatever the route.
    for path in [
        "/api/snapshot/status",
        "/metrics",
        "/api/snapshot/latest",
        "/api/events",
    ] {
        let r = http.get(url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = http
        .post(url("/api/snapshot/trigger"))
        .bearer_auth("not-the-token-at-all-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Nothing yet.
    let r = authed(http.get(url("/api/snapshot/latest")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A watcher subscribes to the events before the run.
    let mut sse = authed(http.get(url("/api/events"))).send().await.unwrap();
    assert_eq!(sse.status(), 200);
    assert!(
        sse.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let watcher = tokio::spawn(async move {
        let mut seen = String::new();
        while !seen.contains("event: finished") {
            match tokio::time::timeout(Duration::from_secs(60), sse.chunk()).await {
                Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                _ => break,
            }
        }
        seen
    });

    // One trigger starts run 1; the next, while it goes, is refused naming it.
    let (status, v) = call(http.post(url("/api/snapshot/trigger"))).await;
    assert_eq!(status, 202);
    assert_eq!(v["run_id"], 1);
    let (status, v) = call(http.post(url("/api/snapshot/trigger"))).await;
    assert_eq!(status, 409);
    assert_eq!(v["run_id"], 1);
    assert_eq!(v["error"], "snapshot #1 is running");
    let (_, s) = call(http.get(url("/api/snapshot/status"))).await;
    assert_eq!(s["state"], "running");
    assert_eq!(s["run_id"], 1);

    // Wait for the end, then read the snapshot and the metrics.
    let began = Instant::now();
    let done = loop {
        let (_, s) = call(http.get(url("/api/snapshot/status"))).await;
        if s["state"] == "idle" {
            break s;
        }
        assert!(began.elapsed() < Duration::from_secs(60), "{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["last_run"]["id"], 1);
    assert_eq!(done["last_run"]["result"], "complete");
    // The watcher saw the run start, move and end, as it happened.
    let seen = watcher.await.unwrap();
    for name in ["event: started", "event: progress", "event: finished"] {
        assert!(seen.contains(name), "{name} in {seen}");
    }
    assert!(seen.contains("\"run_id\":1"), "{seen}");
    assert!(!seen.contains(TOKEN));
    let r = authed(http.get(url("/api/snapshot/latest")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let latest: serde_json::Value = r.json().await.unwrap();
    assert_eq!(latest["partial"], false);
    assert!(
        latest["environments"]
            .as_object()
            .is_some_and(|e| !e.is_empty())
    );

    let r = authed(http.get(url("/metrics"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    assert!(!text.contains(TOKEN));
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let get = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        get("snaptop_snapshots_total", &[("result", "complete")]),
        Some(1.0),
        "{text}"
    );
    assert!(
        get(
            "snaptop_upstream_requests_total",
            &[("source", "github"), ("status", "2xx")]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        get(
            "snaptop_cache_lookups_total",
            &[("namespace", "github"), ("result", "miss")]
        )
        .unwrap()
            > 0.0
    );
    assert!(get("snaptop_last_success_timestamp_seconds", &[]).unwrap() > 1.7e9);
    drop(daemon);
}

#[tokio::test]
async fn the_api_never_listens_beyond_loopback_by_accident_nor_without_a_token() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = |args: &[&str]| {
        common::snaptop(&sim, dir.path())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .args(args)
            .output()
            .unwrap()
    };
    let t = token.to_str().unwrap();
    let out = run(&["--http", "0.0.0.0:0", "--http-token-file", t]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("beyond loopback: add --http-public"));
    let out = run(&["--http", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never runs without a token"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["--http", "127.0.0.1:0", "--http-token-file", t]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by others (mode 0644)"), "{err}");
    assert!(!err.contains(TOKEN));
}
