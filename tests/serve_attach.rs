//! `snaptop serve` on its Unix socket, as panes use it: real daemon processes against the
//! simulator, clients attached through the socket. One engine for every client (one run,
//! seen live by all, a second trigger coalesced), a daemon killed mid-run (clients told
//! at once, a restart recovers the last committed snapshot and replaces the stale
//! socket), a protocol mismatch named both ways, and a stranger refused by its uid.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snaptop::engine::events::EngineEvent;
use snaptop::serve::client::{AttachItem, Client, ConnectError};
use snaptop::serve::wire::TriggerOutcome;
use snaptop::sim::{RunningSim, SimOptions, Source};

const WAIT: Duration = Duration::from_secs(60);

struct Daemon {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn said(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The sim's config under `dir` with automatic runs off (the test decides).
fn config(sim: &RunningSim, dir: &Path) -> PathBuf {
    let config = common::write_config(sim, dir);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[schedule]\nenabled = false\n");
    std::fs::write(&config, text).unwrap();
    config
}

/// Starts `snaptop serve --socket SOCKET` and waits for it to say it serves.
fn start(sim: &RunningSim, dir: &Path, config: &Path, socket: &Path) -> Daemon {
    let mut command = common::snaptop(sim, dir);
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .arg("--socket")
        .arg(socket);
    serve(command)
}

/// Runs a `snaptop … serve …` command and waits for it to say it serves; its stderr
/// is kept for [`Daemon::said`].
fn serve(mut command: std::process::Command) -> Daemon {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let serving = line.contains("serving");
                stderr.lock().unwrap().push(line);
                if serving {
                    let _ = tx.send(());
                }
            }
        });
    }
    let daemon = Daemon { child, stderr };
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the daemon did not serve: {}", daemon.said()));
    daemon
}

/// Follows one attach stream: its first state, then events until `done` says stop.
async fn follow(
    client: Client,
    mut done: impl FnMut(&EngineEvent) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<Vec<EngineEvent>> {
    let mut stream = client.attach().await.unwrap();
    match stream.next().await {
        Some(Ok(AttachItem::State(_))) => {}
        other => panic!("attach did not start with the state: {other:?}"),
    }
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(Ok(item))) = tokio::time::timeout(WAIT, stream.next()).await {
            if let AttachItem::Event { event, .. } = item {
                let stop = done(&event);
                seen.push(event);
                if stop {
                    break;
                }
            }
        }
        seen
    })
}

fn finished_id(events: &[EngineEvent]) -> Option<u64> {
    events.iter().find_map(|e| match e {
        EngineEvent::Finished { summary, .. } => Some(summary.id),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_share_one_engine_one_run_one_budget() {
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(60),
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let socket = dir.path().join("s.sock");
    let daemon = start(&sim, dir.path(), &config, &socket);
    let mode = std::fs::metadata(&socket).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600, "owner only");

    // A raw reader of the attach stream, to look at the bytes that leave the daemon.
    let raw = reqwest::Client::builder()
        .unix_socket(socket.as_path())
        .build()
        .unwrap();
    let mut bytes_seen = raw.get("http://snaptop/api/attach").send().await.unwrap();
    let raw_reader = tokio::spawn(async move {
        let mut seen = String::new();
        while !seen.contains("event: finished") {
            match tokio::time::timeout(WAIT, bytes_seen.chunk()).await {
                Ok(Ok(Some(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
                _ => break,
            }
        }
        seen
    });
    // A second daemon for the same config is told who already serves it.
    let second = common::snaptop(&sim, dir.path())
        .arg("--config")
        .arg(&config)
        .args(["serve", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("already serves"), "{said}");
    let mut watchers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, hello) = Client::connect(&socket).await.unwrap();
        assert_eq!(hello.pid, daemon.child.id());
        assert_eq!(
            hello.config,
            std::fs::canonicalize(&config)
                .unwrap()
                .display()
                .to_string()
        );
        watchers.push(
            follow(client.clone(), |e| {
                matches!(e, EngineEvent::Finished { .. })
            })
            .await,
        );
        clients.push(client);
    }
    // The metrics count the attached panes: four followers and the raw reader.
    let metrics = raw
        .get("http://snaptop/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).unwrap();
    let attached = scrape
        .samples
        .iter()
        .find(|s| s.metric == "snaptop_attached_clients")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        });
    assert_eq!(attached, Some(5.0), "{metrics}");
    let before = sim.counts(Source::GitHub).requests;
    let first = clients[0].trigger(false).await.unwrap();
    let TriggerOutcome::Started(Some(id)) = first else {
        panic!("{first:?}")
    };
    // A second pane's trigger is coalesced into the run, naming it.
    let second = clients[1].trigger(false).await.unwrap();
    assert_eq!(second, TriggerOutcome::AlreadyRunning(Some(id)));

    for w in watchers {
        let seen = w.await.unwrap();
        assert!(
            seen.iter().any(|e| matches!(e, EngineEvent::Started(_))),
            "{seen:?}"
        );
        assert!(seen.iter().any(|e| matches!(e, EngineEvent::Progress(_))));
        assert_eq!(
            finished_id(&seen),
            Some(id),
            "every pane saw the same run end"
        );
    }
    // What left the daemon carries none of the upstream credentials.
    let seen = raw_reader.await.unwrap();
    assert!(seen.contains("event: state") && seen.contains("event: provisional"));
    for (_, secret) in sim.secret_env() {
        assert!(!seen.contains(secret), "{secret} left the daemon");
    }
    // One run's requests, whatever the number of panes: the daemon's own run history
    // has one run, and a pane attaching now is shown it.
    let used = sim.counts(Source::GitHub).requests - before;
    assert!(used > 0);
    let (late, _) = Client::connect(&socket).await.unwrap();
    let mut stream = late.attach().await.unwrap();
    let Some(Ok(AttachItem::State(state))) = stream.next().await else {
        panic!("no state")
    };
    assert_eq!(state.history.len(), 1, "one run for four panes");
    assert_eq!(state.snapshot.as_ref().map(|s| s.run_id), Some(id));
    assert!(state.progress.is_none());
    assert!(!daemon.said().contains("ghp_"), "{}", daemon.said());

    // The schedule and the cache through the socket.
    clients[2].pause(true).await.unwrap();
    let report = clients[3].cache_report().await.unwrap();
    assert!(report.lifetime_total().lookups() > 0, "{report:?}");
    let done = clients[3]
        .cache_job(snaptop::cache::maintenance::Job::PurgeExpired)
        .await
        .unwrap();
    assert_eq!(done.job, snaptop::cache::maintenance::Job::PurgeExpired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_is_noticed_at_once_and_a_restart_recovers() {
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(150),
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let socket = dir.path().join("s.sock");
    let mut daemon = start(&sim, dir.path(), &config, &socket);
    let (client, _) = Client::connect(&socket).await.unwrap();

    // A first complete run, committed.
    let w = follow(client.clone(), |e| {
        matches!(e, EngineEvent::Finished { .. })
    })
    .await;
    let TriggerOutcome::Started(Some(committed)) = client.trigger(false).await.unwrap() else {
        panic!()
    };
    assert_eq!(finished_id(&w.await.unwrap()), Some(committed));

    // A second one, killed mid-run: the attached client hears it at once.
    let mut stream = client.attach().await.unwrap();
    let _state = stream.next().await;
    client.trigger(false).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, stream.next()).await.unwrap() {
            Some(Ok(AttachItem::Event {
                event: EngineEvent::Progress(_),
                ..
            })) => break,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    daemon.kill9();
    let killed = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the client did not notice within a second"),
        }
    }
    assert!(killed.elapsed() < Duration::from_secs(1));
    // The socket file stays behind, refusing connections.
    assert!(socket.exists());
    assert!(matches!(
        Client::connect(&socket).await,
        Err(ConnectError::Absent(_))
    ));

    // A restart replaces the stale socket and serves the last committed snapshot.
    let daemon = start(&sim, dir.path(), &config, &socket);
    assert!(
        daemon.said().contains("replaced a stale socket"),
        "{}",
        daemon.said()
    );
    let (client, _) = Client::connect(&socket).await.unwrap();
    let mut stream = client.attach().await.unwrap();
    let Some(Ok(AttachItem::State(state))) = stream.next().await else {
        panic!("no state")
    };
    assert_eq!(state.snapshot.as_ref().map(|s| s.run_id), Some(committed));
    assert!(state.store_problem.is_none(), "{:?}", state.store_problem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_mismatch_names_both_versions() {
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let socket = dir.path().join("s.sock");
    let _daemon = start(&sim, dir.path(), &config, &socket);
    // A client of another protocol asking the real daemon.
    let http = reqwest::Client::builder()
        .unix_socket(socket.as_path())
        .build()
        .unwrap();
    let r = http
        .get("http://snaptop/api/snapshot/status")
        .header(snaptop::serve::wire::PROTOCOL_HEADER, "99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    let text = body["error"].as_str().unwrap();
    assert!(text.contains("protocol 99"), "{text}");
    assert!(
        text.contains(&format!(
            "snaptop {} (protocol {})",
            env!("CARGO_PKG_VERSION"),
            snaptop::serve::wire::PROTOCOL
        )),
        "{text}"
    );

    // This client meeting a daemon of another protocol: a fake one answering hello.
    let fake = dir.path().join("old.sock");
    let listener = tokio::net::UnixListener::bind(&fake).unwrap();
    let app = axum::Router::new().route(
        "/api/hello",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({"protocol": 0, "version": "0.0.9", "pid": 1}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let err = Client::connect(&fake).await.unwrap_err();
    let ConnectError::Mismatch(text) = &err else {
        panic!("{err:?}")
    };
    assert!(text.contains("0.0.9 (protocol 0)"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

/// Another uid connecting: the test runs a daemon as `nobody` and connects as itself
/// (root reaches any socket file, so only the peer-credential check stands between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_by_its_credentials() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("notice: not root: cannot run a daemon as another uid; skipped");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let socket = dir.path().join("s.sock");
    for p in [dir.path(), config.as_path()] {
        nix::unistd::chown(p, Some(nobody.uid), Some(nobody.gid)).unwrap();
    }
    let mut command = common::snaptop(&sim, dir.path());
    use std::os::unix::process::CommandExt;
    command
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .arg("--socket")
        .arg(&socket);
    let daemon = serve(command);
    assert!(daemon.said().contains("serving"), "{}", daemon.said());
    let err = Client::connect(&socket).await.unwrap_err();
    let ConnectError::Refused(why) = &err else {
        panic!("{err:?}")
    };
    assert!(why.starts_with("uid 0 (root) may not attach"), "{why}");
    assert!(
        why.contains(&format!("uid {} (nobody)", nobody.uid)),
        "{why}"
    );
    drop(daemon);
}

/// `snaptop snapshot` on a box where a daemon serves the config: the daemon runs it
/// (no "store in use"), the command prints the same progress, JSON and exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_snapshot_runs_on_the_daemon() {
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(20),
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    // The default socket of this config, as a pane and the CLI find it.
    let mut command = common::snaptop(&sim, dir.path());
    command.arg("--config").arg(&config).arg("serve");
    let daemon = serve(command);
    assert!(daemon.said().contains("serving"), "{}", daemon.said());
    let run_dir = dir.path().join("xdg_runtime_dir").join("snaptop");
    let mode = std::fs::metadata(&run_dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o700);

    let cli = |args: &'static [&'static str]| {
        let mut cmd = common::snaptop(&sim, dir.path());
        cmd.arg("--config").arg(&config).args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = cli(&["snapshot", "--json"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("snapshot on the daemon at"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["partial"], false);
    assert_eq!(json["run_id"], 1, "{json}");

    // The schedule and the cache commands go through the daemon too.
    let out = cli(&["schedule", "set", "interval_business", "45m"])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("applied now by the daemon"), "{stdout}");
    let out = cli(&["schedule", "pause"]).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["schedule", "show", "--json"]).await.unwrap();
    let show: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(show["paused"], true, "{show}");
    let out = cli(&["cache", "stats", "--json"]).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(stats.is_object(), "{stats}");
    let out = cli(&["cache", "clear", "jira"]).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("by the daemon"));
    drop(daemon);
}

/// Team mode: the socket belongs to the group, 0660, and a member (another uid, here
/// `nobody` of group `nogroup`) attaches; a process of another uid outside the group
/// cannot even open the socket file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_mode_lets_a_member_of_the_group_attach() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let curl_ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !nix::unistd::getuid().is_root() || !curl_ok {
        eprintln!("notice: needs root and curl to connect as other uids; skipped");
        return;
    }
    let Ok(Some(group)) = nix::unistd::Group::from_name("nogroup") else {
        eprintln!("notice: no group nogroup; skipped");
        return;
    };
    let sim = common::sim(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = config(&sim, dir.path());
    let socket = dir.path().join("team.sock");
    let mut command = common::snaptop(&sim, dir.path());
    command
        .arg("--config")
        .arg(&config)
        .args(["serve", "--group", "nogroup", "--socket"])
        .arg(&socket);
    let daemon = serve(command);
    assert!(
        daemon.said().contains("for group nogroup"),
        "{}",
        daemon.said()
    );
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), group.gid.as_raw());

    let hello_as = |uid: u32, gid: u32| {
        let socket = socket.clone();
        move || {
            std::process::Command::new("curl")
                .uid(uid)
                .gid(gid)
                .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
                .arg(&socket)
                .arg("http://snaptop/api/hello")
                .output()
                .unwrap()
        }
    };
    let member = tokio::task::spawn_blocking(hello_as(65534, group.gid.as_raw()))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&member.stdout);
    assert!(text.ends_with("200"), "{text}");
    assert!(text.contains("\"protocol\":1"), "{text}");
    let outsider = tokio::task::spawn_blocking(hello_as(1, 1)).await.unwrap();
    let text = String::from_utf8_lossy(&outsider.stdout);
    assert!(!text.contains("protocol"), "{text}");
}
