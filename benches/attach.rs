//! Attach benchmark (issue 13): the real `snaptop serve` daemon with many panes attached
//! through its Unix socket, against the simulator's `seed` profile, in one run.
//!
//! `cargo bench --bench attach` (env: `SNAPTOP_BENCH_CLIENTS`, default 50;
//! `SNAPTOP_BENCH_LATENCY_MS`, default 50; `SNAPTOP_BENCH_RUNS`, default 3: the runs the
//! fan-out is measured over, a cold one then warm ones; `SNAPTOP_BENCH_IDLE_SECS`, default
//! 60; `SNAPTOP_BENCH_DAY_RUNS`, default 96: a day at 15-minute intervals, back to back;
//! `SNAPTOP_BENCH_ATTACHES`, default 50: new attaches timed to their first state;
//! `SNAPTOP_BENCH_TUI`, default 5: real TUI panes started under tmux, 0 skips them).
//!
//! Measured:
//! 1. one cold snapshot's upstream requests with 1 and with N attached clients (two fresh
//!    daemons and stores): equal;
//! 2. event fan-out, engine to the last of N clients (the daemon stamps each event when it
//!    serializes it, `sent_us`; each client notes when `Attachment::next` hands it over,
//!    parsed), p50/p99/max over the events of the runs, with 1 client as the baseline;
//! 3. a new client's first state after attach (from `Client::connect`), and a real TUI
//!    pane's first frame (its own "first frame drawn" log line);
//! 4. the daemon's idle CPU with N clients attached;
//! 5. its RSS over a simulated day of snapshots with N clients attached;
//! 6. its RSS per attached client.
//!
//! The simulator, the daemon and the clients share the machine's cores: the fan-out
//! includes the clients' own JSON parsing, N times over, on those cores.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snaptop::engine::events::EngineEvent;
use snaptop::serve::client::{AttachItem, Attachment, Client};
use snaptop::serve::wire::{TriggerOutcome, now_us};
use snaptop::sim::{Profile, RunningSim, SimOptions, Source};
use tokio::sync::mpsc;

/// How long any one wait may take before the bench gives up.
const WAIT: Duration = Duration::from_secs(180);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench());
}

struct Daemon {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    socket: PathBuf,
    config: PathBuf,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn said(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// VmRSS in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// utime + stime, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("daemon's /proc stat");
        // After the command's ")": field 3 (state) onwards; utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')').expect("stat") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| fields[i].parse::<u64>().expect("stat field");
        n(11) + n(12)
    }

    /// Per thread (name, id): utime + stime in clock ticks.
    fn thread_ticks(&self) -> BTreeMap<(String, u32), u64> {
        let mut out = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return out;
        };
        for entry in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = stat[open + 1..close].to_string();
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let n = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let tid = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            out.insert((name, tid), n(11) + n(12));
        }
        out
    }

    fn stop(&mut self) {
        // SIGTERM: the daemon winds down and flushes its store.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The simulator's config with a store and a socket under `dir`, automatic runs off.
fn write_config(sim: &RunningSim, dir: &Path) -> (PathBuf, PathBuf) {
    let socket = dir.join("s.sock");
    let path = dir.join("config.toml");
    let text = format!(
        "{}\n[store]\npath = {:?}\n\n[schedule]\nenabled = false\n\n[serve]\nsocket = {:?}\nautostart = false\n",
        sim.config_toml(),
        dir.join("store").display().to_string(),
        socket.display().to_string(),
    );
    std::fs::write(&path, text).expect("config");
    (path, socket)
}

/// The real binary, with the simulator's credentials and XDG dirs under `dir`.
fn snaptop(sim: &RunningSim, dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_snaptop"));
    cmd.envs(sim.secret_env());
    for var in [
        "XDG_STATE_HOME",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "XDG_RUNTIME_DIR",
    ] {
        cmd.env(var, dir.join(var.to_lowercase()));
    }
    cmd
}

/// Starts `snaptop --config C serve --socket S` and waits for it to say it serves.
fn start_daemon(sim: &RunningSim, dir: &Path) -> Daemon {
    let (config, socket) = write_config(sim, dir);
    let mut child = snaptop(sim, dir)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("snaptop serve");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("serving") {
                    let _ = tx.send(());
                }
                stderr.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    let daemon = Daemon {
        child,
        stderr,
        socket,
        config,
    };
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        panic!("the daemon did not serve: {}", daemon.said());
    }
    daemon
}

/// One event as a client received it.
#[derive(Debug, Clone, Copy)]
struct Rec {
    sent_us: u64,
    recv_us: u64,
    kind: &'static str,
    /// The event's size on the wire (raw panes only).
    bytes: usize,
    /// When the pane had the matrix a `provisional`/`finished` notice announced (it is
    /// fetched after the notice, on its own request).
    matrix_us: Option<u64>,
}

fn kind(ev: &EngineEvent) -> &'static str {
    match ev {
        EngineEvent::Started(_) => "started",
        EngineEvent::Progress(_) => "progress",
        EngineEvent::Provisional(_) => "provisional",
        EngineEvent::Log(_) => "log",
        EngineEvent::Finished { .. } => "finished",
        EngineEvent::Failed { .. } => "failed",
        EngineEvent::Schedule(_) => "schedule",
        EngineEvent::AlreadyRunning => "already_running",
    }
}

/// An attached client: a task following its own attach stream.
struct Pane {
    recs: Arc<Mutex<Vec<Rec>>>,
    /// States after the first one (sent to a pane that fell behind).
    resent_states: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Pane {
    fn len(&self) -> usize {
        self.recs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn slice(&self, from: usize) -> Vec<Rec> {
        self.recs.lock().unwrap_or_else(|p| p.into_inner())[from..].to_vec()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects and attaches; returns once the first state is read (the pane is counted).
async fn attach(socket: &Path) -> (Client, Attachment, Duration) {
    let began = Instant::now();
    let (client, _) = Client::connect(socket).await.expect("connect");
    let mut stream = client.attach().await.expect("attach");
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(AttachItem::State(_)))) => {}
        other => panic!("attach did not start with the state: {other:?}"),
    }
    let took = began.elapsed();
    (client, stream, took)
}

/// How a pane reads its stream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `Attachment::next`, as a TUI pane does: the time is taken once the event is parsed.
    Parsed,
    /// The SSE bytes alone: the time is taken when the chunk completing the event is read,
    /// `sent_us` picked out of the text (the daemon's delivery, without the client's JSON).
    Raw,
}

/// Attaches a pane that records every event and tells `finished` the id of each run
/// that ends.
async fn pane(socket: &Path, mode: Mode, finished: mpsc::UnboundedSender<u64>) -> Pane {
    let recs = Arc::new(Mutex::new(Vec::new()));
    let resent_states = Arc::new(Mutex::new(0));
    let task = match mode {
        Mode::Parsed => {
            let (client, stream, _) = attach(socket).await;
            tokio::spawn(follow_parsed(
                client,
                stream,
                recs.clone(),
                resent_states.clone(),
                finished,
            ))
        }
        Mode::Raw => {
            let (response, rest) = attach_raw(socket).await;
            tokio::spawn(follow_raw(
                response,
                rest,
                recs.clone(),
                resent_states.clone(),
                finished,
            ))
        }
    };
    Pane {
        recs,
        resent_states,
        task,
    }
}

async fn follow_parsed(
    client: Client,
    mut stream: Attachment,
    recs: Arc<Mutex<Vec<Rec>>>,
    resent: Arc<Mutex<usize>>,
    finished: mpsc::UnboundedSender<u64>,
) {
    let _client = client;
    while let Some(Ok(item)) = stream.next().await {
        let recv_us = now_us();
        match item {
            AttachItem::State(_) => {
                *resent.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            }
            AttachItem::Event {
                event,
                sent_us,
                received_us,
            } => {
                let matrix = matches!(
                    event,
                    EngineEvent::Provisional(_) | EngineEvent::Finished { .. }
                );
                recs.lock().unwrap_or_else(|p| p.into_inner()).push(Rec {
                    sent_us,
                    recv_us: received_us,
                    kind: kind(&event),
                    bytes: 0,
                    matrix_us: matrix.then_some(recv_us),
                });
                let ended = match &event {
                    EngineEvent::Finished { summary, .. } | EngineEvent::Failed { summary, .. } => {
                        Some(summary.id)
                    }
                    _ => None,
                };
                if let Some(id) = ended {
                    let _ = finished.send(id);
                }
            }
        }
    }
}

/// `GET /api/attach` read as bytes; returns once the first (state) event is in, with
/// what came after it.
async fn attach_raw(socket: &Path) -> (reqwest::Response, Vec<u8>) {
    let http = reqwest::Client::builder()
        .unix_socket(socket)
        .build()
        .expect("client");
    let mut response = http
        .get("http://snaptop/api/attach")
        .header(
            snaptop::serve::wire::PROTOCOL_HEADER,
            snaptop::serve::wire::PROTOCOL.to_string(),
        )
        .send()
        .await
        .expect("attach");
    assert!(response.status().is_success(), "{}", response.status());
    let mut buffer = Vec::new();
    loop {
        if let Some(end) = memchr::memmem::find(&buffer, b"\n\n") {
            assert!(buffer.starts_with(b"event: state"), "no state first");
            return (response, buffer.split_off(end + 2));
        }
        match tokio::time::timeout(WAIT, response.chunk()).await {
            Ok(Ok(Some(bytes))) => buffer.extend_from_slice(&bytes),
            other => panic!("attach: {other:?}"),
        }
    }
}

const KINDS: [&str; 7] = [
    "started",
    "progress",
    "provisional",
    "log",
    "finished",
    "failed",
    "schedule",
];

async fn follow_raw(
    mut response: reqwest::Response,
    mut buffer: Vec<u8>,
    recs: Arc<Mutex<Vec<Rec>>>,
    resent: Arc<Mutex<usize>>,
    finished: mpsc::UnboundedSender<u64>,
) {
    let mut scanned = 0;
    loop {
        let recv_us = now_us();
        while let Some(at) = memchr::memmem::find(&buffer[scanned..], b"\n\n") {
            let end = scanned + at;
            let block = &buffer[..end];
            scanned = 0;
            let name = block
                .strip_prefix(b"event: ")
                .and_then(|b| b.split(|c| *c == b'\n').next())
                .map(|n| String::from_utf8_lossy(n).into_owned());
            match name.as_deref() {
                Some("state") => *resent.lock().unwrap_or_else(|p| p.into_inner()) += 1,
                Some(name) => {
                    let kind = KINDS.iter().find(|k| **k == name).copied().unwrap_or("?");
                    let sent_us = memchr::memmem::find(block, b"\"sent_us\":")
                        .map(|i| {
                            block[i + 10..]
                                .iter()
                                .take_while(|c| c.is_ascii_digit())
                                .fold(0u64, |n, c| n * 10 + u64::from(c - b'0'))
                        })
                        .unwrap_or(0);
                    recs.lock().unwrap_or_else(|p| p.into_inner()).push(Rec {
                        sent_us,
                        recv_us,
                        kind,
                        bytes: end,
                        matrix_us: None,
                    });
                    if kind == "finished" || kind == "failed" {
                        // `"summary":{"id":N`: the run's id.
                        let id = memchr::memmem::find(block, b"\"summary\":{\"id\":")
                            .map(|i| {
                                block[i + 16..]
                                    .iter()
                                    .take_while(|c| c.is_ascii_digit())
                                    .fold(0u64, |n, c| n * 10 + u64::from(c - b'0'))
                            })
                            .unwrap_or(0);
                        let _ = finished.send(id);
                    }
                }
                // A keep-alive comment.
                None => {}
            }
            buffer.drain(..end + 2);
        }
        // Only the new bytes (and the one before them) can complete an event.
        scanned = buffer.len().saturating_sub(1);
        match response.chunk().await {
            Ok(Some(bytes)) => buffer.extend_from_slice(&bytes),
            _ => return,
        }
    }
}

/// N panes on one daemon, and the channel their run ends come in on.
struct Panes {
    panes: Vec<Pane>,
    finished: mpsc::UnboundedReceiver<u64>,
}

impl Panes {
    async fn attach(socket: &Path, n: usize, mode: Mode) -> Panes {
        let (tx, finished) = mpsc::unbounded_channel();
        let mut panes = Vec::with_capacity(n);
        for _ in 0..n {
            panes.push(pane(socket, mode, tx.clone()).await);
        }
        Panes { panes, finished }
    }

    /// Where every pane's record is now (a pane may hold one provisional matrix fewer
    /// than another: one replaced before it fetched it).
    fn mark(&self) -> Vec<usize> {
        self.panes.iter().map(Pane::len).collect()
    }

    fn resent_states(&self) -> usize {
        self.panes
            .iter()
            .map(|p| *p.resent_states.lock().unwrap_or_else(|e| e.into_inner()))
            .sum()
    }

    /// Triggers a run through `trigger` and waits until every pane saw it end.
    async fn run(&mut self, trigger: &Client) -> u64 {
        let id = match trigger.trigger(false).await.expect("trigger") {
            TriggerOutcome::Started(Some(id)) => id,
            other => panic!("trigger: {other:?}"),
        };
        let mut ended = 0;
        while ended < self.panes.len() {
            match tokio::time::timeout(WAIT, self.finished.recv()).await {
                Ok(Some(done)) if done == id => ended += 1,
                Ok(Some(_)) => {}
                _ => panic!("run #{id} did not end for every pane"),
            }
        }
        // Every pane has every event of the run (the end is the last one).
        id
    }
}

/// Per event (recorded by the panes from `from`), the latest arrival: engine to the
/// last client, in µs, with the event's kind. Events are matched by their send time and
/// kind: a pane skips a provisional matrix that was replaced before it fetched it, so
/// panes need not hold the same list.
fn fan_out(panes: &Panes, from: &[usize]) -> Vec<(u64, &'static str, usize)> {
    let all: Vec<Vec<Rec>> = panes
        .panes
        .iter()
        .zip(from)
        .map(|(p, f)| p.slice(*f))
        .collect();
    let mut events: BTreeMap<(u64, &'static str), (u64, usize, usize)> = BTreeMap::new();
    for recs in &all {
        for r in recs {
            let e = events.entry((r.sent_us, r.kind)).or_insert((0, 0, r.bytes));
            e.0 = e.0.max(r.recv_us);
            e.1 += 1;
        }
    }
    let skipped = events.values().filter(|e| e.1 < all.len()).count();
    if skipped > 0 {
        println!(
            "  ({skipped} events not held by every pane: provisional matrices replaced before they were fetched)"
        );
    }
    events
        .into_iter()
        .map(|((sent, kind), (last, _, bytes))| (last.saturating_sub(sent), kind, bytes))
        .collect()
}

/// Per matrix notice, when the last pane had the matrix itself (fetched after the
/// notice): engine to the last client's matrix, in µs.
fn matrix_fan_out(panes: &Panes, from: &[usize]) -> Vec<(u64, &'static str, usize)> {
    let mut events: BTreeMap<(u64, &'static str), u64> = BTreeMap::new();
    for (p, f) in panes.panes.iter().zip(from) {
        for r in p.slice(*f) {
            if let Some(m) = r.matrix_us {
                let e = events.entry((r.sent_us, r.kind)).or_insert(0);
                *e = (*e).max(m);
            }
        }
    }
    events
        .into_iter()
        .map(|((sent, kind), last)| (last.saturating_sub(sent), kind, 0))
        .collect()
}

/// p-th percentile (nearest rank) of sorted values.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Spread {
    n: usize,
    p50: u64,
    p99: u64,
    max: u64,
    worst: &'static str,
}

fn spread(events: &[(u64, &'static str, usize)]) -> Spread {
    let mut v: Vec<u64> = events.iter().map(|e| e.0).collect();
    v.sort_unstable();
    let worst = events.iter().max_by_key(|e| e.0).map_or("-", |e| e.1);
    Spread {
        n: v.len(),
        p50: pct(&v, 50.0),
        p99: pct(&v, 99.0),
        max: v.last().copied().unwrap_or(0),
        worst,
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Per kind of event: how many, p50 and max to the last client (and the largest size).
fn by_kind(label: &str, events: &[(u64, &'static str, usize)]) {
    let mut kinds: BTreeMap<&str, Vec<(u64, usize)>> = BTreeMap::new();
    for (us, k, b) in events {
        kinds.entry(k).or_default().push((*us, *b));
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|(k, v)| {
            let mut us: Vec<u64> = v.iter().map(|e| e.0).collect();
            us.sort_unstable();
            let size = v.iter().map(|e| e.1).max().unwrap_or(0);
            let size = if size > 0 {
                format!(", ≤ {:.0} KiB", size as f64 / 1024.0)
            } else {
                String::new()
            };
            format!(
                "{k} ×{}: p50 {:.2} / max {:.2} ms{size}",
                us.len(),
                ms(pct(&us, 50.0)),
                ms(*us.last().unwrap_or(&0))
            )
        })
        .collect();
    println!("{label}: {}", parts.join("; "));
}

/// Every request but GraphQL's since the last reset, as (source, method, path without
/// the query, a digest as `sha256:…`), sorted: what must not depend on the number of clients. (GraphQL's count
/// depends on timing: reads waiting at the same moment share a request.)
fn rest_requests(sim: &RunningSim) -> Vec<(Source, String, String)> {
    let mut v: Vec<(Source, String, String)> = sim
        .request_log()
        .into_iter()
        .filter(|r| r.target != "/api/graphql")
        .map(|r| {
            let mut path = r.target.split('?').next().unwrap_or("").to_string();
            // The registry's manifest digests are the simulator's own per request.
            if let Some(i) = path.find("sha256:") {
                path.truncate(i + 7);
                path.push('…');
            }
            (r.source, r.method, path)
        })
        .collect();
    v.sort();
    v
}

/// What each sorted list has that the other has not (counting repeats).
fn multiset_diff<T: Ord + Clone>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && a[i] < b[j]) {
            only_a.push(a[i].clone());
            i += 1;
        } else if i == a.len() || b[j] < a[i] {
            only_b.push(b[j].clone());
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    (only_a, only_b)
}

/// Upstream requests per source since the last reset.
fn counts(sim: &RunningSim) -> BTreeMap<Source, u64> {
    Source::ALL
        .iter()
        .map(|s| (*s, sim.counts(*s).requests))
        .collect()
}

/// The daemon's `attached_clients` gauge.
async fn attached_gauge(socket: &Path) -> Option<u64> {
    let http = reqwest::Client::builder()
        .unix_socket(socket)
        .build()
        .ok()?;
    let text = http
        .get("http://snaptop/metrics")
        .header(
            snaptop::serve::wire::PROTOCOL_HEADER,
            snaptop::serve::wire::PROTOCOL.to_string(),
        )
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| !l.starts_with('#') && l.contains("attached_clients"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Waits until the daemon counts `n` attached clients (a closed stream is noticed
/// when the daemon next reads or writes it); false if it did not within `within`.
async fn wait_attached(socket: &Path, n: u64, within: Duration) -> bool {
    let began = Instant::now();
    loop {
        if attached_gauge(socket).await == Some(n) {
            return true;
        }
        if began.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole state a run leaves: nothing in flight, every pane caught up.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn bench() {
    let clients = env_num("SNAPTOP_BENCH_CLIENTS", 50).max(1) as usize;
    let latency_ms = env_num("SNAPTOP_BENCH_LATENCY_MS", 50);
    let runs = env_num("SNAPTOP_BENCH_RUNS", 3).max(1) as usize;
    let idle_secs = env_num("SNAPTOP_BENCH_IDLE_SECS", 60).max(1);
    let day_runs = env_num("SNAPTOP_BENCH_DAY_RUNS", 96).max(1) as usize;
    let attaches = env_num("SNAPTOP_BENCH_ATTACHES", 50).max(1) as usize;
    let tui_panes = env_num("SNAPTOP_BENCH_TUI", 5) as usize;

    // GitHub's documented budgets and concurrency; the per-minute points are lifted: a
    // day of runs back to back would spend in a minute what a real day spreads over 24 h.
    let sim = snaptop::sim::start(SimOptions {
        profile: Profile::Seed,
        latency: Duration::from_millis(latency_ms),
        github_rest_points_per_minute: usize::MAX,
        github_graphql_points_per_minute: usize::MAX,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    println!(
        "attach benchmark: seed profile ({} components × {} environments), {latency_ms} ms per call, {clients} clients, {} cores",
        sim.org().components.len(),
        sim.org().environments.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    // ---- Daemon A: one client (requests baseline, fan-out baseline), then memory per client.
    let dir_a = tempfile::tempdir().expect("temp dir");
    let mut a = start_daemon(&sim, dir_a.path());
    let (trigger_a, _) = Client::connect(&a.socket).await.expect("connect");
    let mut one = Panes::attach(&a.socket, 1, Mode::Parsed).await;
    sim.reset_counts();
    let from = one.mark();
    one.run(&trigger_a).await;
    settle().await;
    let requests_1 = counts(&sim);
    let endpoints_1 = sim.github_endpoint_counts();
    let rest_1 = rest_requests(&sim);
    for _ in 1..runs {
        one.run(&trigger_a).await;
        settle().await;
    }
    let events_1 = fan_out(&one, &from);
    let fan_1 = spread(&events_1);
    let resent_1 = one.resent_states();

    // Memory per client: the one pane detached, then N attached and their state received.
    drop(one);
    let detach_began = Instant::now();
    let detached_seen = wait_attached(&a.socket, 0, Duration::from_secs(40)).await;
    let detach_noticed = detach_began.elapsed();
    settle().await;
    let rss_0 = a.rss_kib();
    let extra = Panes::attach(&a.socket, clients, Mode::Parsed).await;
    let attached_seen = wait_attached(&a.socket, clients as u64, Duration::from_secs(10)).await;
    settle().await;
    let rss_n = a.rss_kib();
    drop(extra);
    a.stop();
    drop(trigger_a);

    // ---- Daemon B: N clients.
    let dir_b = tempfile::tempdir().expect("temp dir");
    let mut b = start_daemon(&sim, dir_b.path());
    let (trigger_b, _) = Client::connect(&b.socket).await.expect("connect");
    let mut many = Panes::attach(&b.socket, clients, Mode::Parsed).await;
    sim.reset_counts();
    let from = many.mark();
    many.run(&trigger_b).await;
    settle().await;
    let requests_n = counts(&sim);
    let endpoints_n = sim.github_endpoint_counts();
    let rest_n = rest_requests(&sim);
    for _ in 1..runs {
        many.run(&trigger_b).await;
        settle().await;
    }
    let events_n = fan_out(&many, &from);
    let fan_n = spread(&events_n);
    let matrices_n = matrix_fan_out(&many, &from);

    // Idle CPU with N attached and nothing running.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = b.cpu_ticks();
    let threads0 = b.thread_ticks();
    let w0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_ticks = b.cpu_ticks() - t0;
    let idle_threads: Vec<String> = b
        .thread_ticks()
        .into_iter()
        .filter_map(|(k, t)| {
            let d = t - threads0.get(&k).copied().unwrap_or(0);
            (d > 0).then(|| format!("{} {d}", k.0))
        })
        .collect();
    let idle_wall = w0.elapsed().as_secs_f64();
    let idle_pct = idle_ticks as f64 / hz as f64 / idle_wall * 100.0;

    // A simulated day: runs back to back, RSS every 12.
    let from_day = many.mark();
    let mut rss_day = Vec::new();
    let day_began = Instant::now();
    for i in 1..=day_runs {
        many.run(&trigger_b).await;
        if i % 12 == 0 || i == day_runs {
            settle().await;
            rss_day.push((i, b.rss_kib()));
        }
    }
    let day_wall = day_began.elapsed();
    settle().await;
    let events_day = fan_out(&many, &from_day);
    let fan_day = spread(&events_day);
    let resent_n = many.resent_states();

    // First state after attach, N more attaches one after the other (each dropped).
    let mut firsts = Vec::with_capacity(attaches);
    for _ in 0..attaches {
        let (client, stream, took) = attach(&b.socket).await;
        firsts.push(took.as_micros() as u64);
        drop(stream);
        drop(client);
    }
    firsts.sort_unstable();

    // Real TUI panes attaching to the same daemon, under tmux.
    let tui = tui_first_frames(&sim, &b, tui_panes).await;

    drop(many);
    b.stop();
    drop(trigger_b);

    // ---- Daemon C: N raw clients (the daemon's delivery alone), the same runs.
    let dir_c = tempfile::tempdir().expect("temp dir");
    let mut c = start_daemon(&sim, dir_c.path());
    let (trigger_c, _) = Client::connect(&c.socket).await.expect("connect");
    let mut raw = Panes::attach(&c.socket, clients, Mode::Raw).await;
    sim.reset_counts();
    let from = raw.mark();
    raw.run(&trigger_c).await;
    settle().await;
    let requests_raw = counts(&sim);
    let endpoints_raw = sim.github_endpoint_counts();
    let rest_raw = rest_requests(&sim);
    for _ in 1..runs {
        raw.run(&trigger_c).await;
        settle().await;
    }
    let events_raw = fan_out(&raw, &from);
    let fan_raw = spread(&events_raw);
    let resent_raw = raw.resent_states();
    drop(raw);
    c.stop();
    drop(trigger_c);

    // ---- The table.
    let equal = rest_1 == rest_n && rest_1 == rest_raw;
    let gql = |e: &BTreeMap<String, u64>| e.get("graphql").copied().unwrap_or(0);
    let fmt_counts = |c: &BTreeMap<Source, u64>| {
        c.iter()
            .map(|(s, n)| format!("{} {n}", s.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!("| measure | 1 client | {clients} clients | target | met |");
    println!("| --- | ---: | ---: | --- | --- |");
    println!(
        "| upstream requests, one cold snapshot | {} ({} REST + {} GraphQL) | {} ({} REST + {} GraphQL; raw clients: {} + {}) | the same | REST requests identical: {} |",
        requests_1.values().sum::<u64>(),
        rest_1.len(),
        gql(&endpoints_1),
        requests_n.values().sum::<u64>(),
        rest_n.len(),
        gql(&endpoints_n),
        rest_raw.len(),
        gql(&endpoints_raw),
        yes(equal)
    );
    let fan_row = |label: &str, f1: Option<&Spread>, fnn: &Spread| {
        let one = f1.map_or_else(
            || "—".to_string(),
            |f| {
                format!(
                    "p50 {:.2} / p99 {:.2} / max {:.2} ms ({} events)",
                    ms(f.p50),
                    ms(f.p99),
                    ms(f.max),
                    f.n
                )
            },
        );
        println!(
            "| {label} | {one} | p50 {:.2} / p99 {:.2} / max {:.2} ms ({} events; worst: {}) | p99 ≤ 5 ms | {} |",
            ms(fnn.p50),
            ms(fnn.p99),
            ms(fnn.max),
            fnn.n,
            fnn.worst,
            yes(fnn.p99 <= 5_000)
        );
    };
    fan_row(
        &format!("event fan-out to the last client, {runs} runs (1 cold)"),
        Some(&fan_1),
        &fan_n,
    );
    fan_row(
        &format!(
            "event delivery to the last client (bytes read, not parsed), {runs} runs (1 cold)"
        ),
        None,
        &fan_raw,
    );
    let small = |e: &[(u64, &'static str, usize)]| {
        let v: Vec<_> = e
            .iter()
            .filter(|x| x.1 != "provisional" && x.1 != "finished")
            .copied()
            .collect();
        spread(&v)
    };
    fan_row(
        &format!("the same, events without a snapshot (not provisional/finished), {runs} runs"),
        Some(&small(&events_1)),
        &small(&events_n),
    );
    fan_row(
        &format!("event fan-out to the last client, the day's {day_runs} warm runs"),
        None,
        &fan_day,
    );
    println!(
        "| first state after attach ({attaches} attaches, {clients} attached) | — | p50 {:.1} / p99 {:.1} / max {:.1} ms | ≤ 100 ms | {} |",
        ms(pct(&firsts, 50.0)),
        ms(pct(&firsts, 99.0)),
        ms(*firsts.last().unwrap_or(&0)),
        yes(pct(&firsts, 99.0) <= 100_000)
    );
    match &tui {
        Ok(frames) if !frames.is_empty() => {
            let mut f = frames.clone();
            f.sort_unstable();
            println!(
                "| TUI pane: start to first frame, attached ({} panes) | — | p50 {} / max {} ms | ≤ 100 ms | {} |",
                f.len(),
                f[f.len() / 2],
                f[f.len() - 1],
                yes(f[f.len() - 1] <= 100)
            );
        }
        Ok(_) => println!("| TUI pane first frame | — | skipped | ≤ 100 ms | — |"),
        Err(why) => println!("| TUI pane first frame | — | not measured: {why} | ≤ 100 ms | — |"),
    }
    println!(
        "| daemon idle CPU, {idle_secs} s | — | {idle_ticks} ticks = {idle_pct:.3}% of a core | ≤ 0.1% | {} |",
        yes(idle_pct <= 0.1)
    );
    let warm = rss_day.first().map_or(0, |r| r.1);
    let last = rss_day.last().map_or(0, |r| r.1);
    println!(
        "| daemon RSS over {day_runs} runs (after run {} → run {}) | — | {:.1} → {:.1} MiB ({:+.1} MiB, {:+.1}%) | flat | {} |",
        rss_day.first().map_or(0, |r| r.0),
        rss_day.last().map_or(0, |r| r.0),
        warm as f64 / 1024.0,
        last as f64 / 1024.0,
        (last as f64 - warm as f64) / 1024.0,
        (last as f64 / warm.max(1) as f64 - 1.0) * 100.0,
        yes(last <= warm + warm / 20)
    );
    let per_client = (rss_n as f64 - rss_0 as f64) / clients as f64;
    println!(
        "| daemon RSS per attached client | — | {:.1} → {:.1} MiB: {:.0} KiB each | ≤ 1 MiB | {} |",
        rss_0 as f64 / 1024.0,
        rss_n as f64 / 1024.0,
        per_client,
        yes(per_client <= 1024.0)
    );
    println!();
    println!("upstream requests, 1 client:  {}", fmt_counts(&requests_1));
    println!(
        "upstream requests, {clients} clients: {}",
        fmt_counts(&requests_n)
    );
    println!(
        "upstream requests, {clients} raw clients: {}",
        fmt_counts(&requests_raw)
    );
    for (label, other) in [("clients", &rest_n), ("raw clients", &rest_raw)] {
        let (only_1, only_n) = multiset_diff(&rest_1, other);
        if !only_1.is_empty() || !only_n.is_empty() {
            println!(
                "REST requests of the 1-client run only: {only_1:?}; of the {clients}-{label} run only: {only_n:?}"
            );
        }
    }
    println!(
        "RSS samples (run, MiB): {}",
        rss_day
            .iter()
            .map(|(i, k)| format!("{i}: {:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "day: {day_runs} runs in {:.1} s; states resent to lagging panes: {resent_1} (1 client), {resent_n} ({clients} clients), {resent_raw} ({clients} raw)",
        day_wall.as_secs_f64()
    );
    println!(
        "memory per client: the daemon counted 0 attached after the detach: {} (after {:.2} s); {clients} after the attach: {}",
        yes(detached_seen),
        detach_noticed.as_secs_f64(),
        yes(attached_seen)
    );
    if let Err(why) = &tui {
        println!("TUI: {why}");
    }
    let keys: std::collections::BTreeSet<&String> = endpoints_1
        .keys()
        .chain(endpoints_n.keys())
        .chain(endpoints_raw.keys())
        .collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter_map(|k| {
            let n = |m: &BTreeMap<String, u64>| m.get(k).copied().unwrap_or(0);
            let (x, y, z) = (n(&endpoints_1), n(&endpoints_n), n(&endpoints_raw));
            (x != y || x != z).then(|| format!("{k} {x}/{y}/{z}"))
        })
        .collect();
    println!(
        "GitHub endpoints that differ between the cold runs (1 / {clients} / {clients} raw): {}",
        if differ.is_empty() {
            "none".to_string()
        } else {
            differ.join(", ")
        }
    );
    println!(
        "idle ticks by daemon thread: {}",
        if idle_threads.is_empty() {
            "none".to_string()
        } else {
            idle_threads.join(", ")
        }
    );
    by_kind("fan-out by event, 1 client", &events_1);
    by_kind(&format!("fan-out by event, {clients} clients"), &events_n);
    by_kind(
        &format!("delivery by event, {clients} raw clients"),
        &events_raw,
    );
    by_kind(
        &format!("fan-out by event, the day, {clients} clients"),
        &events_day,
    );
    let m = spread(&matrices_n);
    println!(
        "matrix in hand at the last of {clients} panes (fetched after its notice): {} matrices, p50 {:.2} / p99 {:.2} / max {:.2} ms",
        m.n,
        ms(m.p50),
        ms(m.p99),
        ms(m.max)
    );
    by_kind(
        &format!("matrix in hand by kind, {clients} clients"),
        &matrices_n,
    );
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "**no**" }
}

/// Starts `panes` real TUI panes (one after the other, each in its own private tmux
/// server, its own state dir) attached to `daemon`, and reads each one's "first frame
/// drawn ms=N" log line: start of the process to its first frame, in ms.
async fn tui_first_frames(
    sim: &RunningSim,
    daemon: &Daemon,
    panes: usize,
) -> Result<Vec<u64>, String> {
    if panes == 0 {
        return Ok(Vec::new());
    }
    let tmux_ok = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !tmux_ok {
        return Err("no tmux".into());
    }
    let mut frames = Vec::new();
    for i in 0..panes {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let state = dir.path().join("state");
        let server = format!("snaptop-attach-bench-{}-{i}", std::process::id());
        let mut env = String::new();
        for (k, v) in sim.secret_env() {
            env.push_str(&format!("{k}={v} "));
        }
        let cmd = format!(
            "env {env} XDG_STATE_HOME={} XDG_CONFIG_HOME={} XDG_DATA_HOME={} XDG_RUNTIME_DIR={} {} --config {}; sleep 60",
            state.display(),
            dir.path().join("c").display(),
            dir.path().join("d").display(),
            dir.path().join("r").display(),
            env!("CARGO_BIN_EXE_snaptop"),
            daemon.config.display()
        );
        let tmux = |args: &[&str]| {
            std::process::Command::new("tmux")
                .args(["-L", &server, "-f", "/dev/null"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
        tmux(&["new-session", "-d", "-x", "200", "-y", "50", &cmd]).map_err(|e| e.to_string())?;
        let began = Instant::now();
        let mut found = None;
        while began.elapsed() < Duration::from_secs(20) && found.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            found = first_frame_ms(&state.join("snaptop"));
        }
        let _ = tmux(&["send-keys", "-t", "0", "q"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = tmux(&["kill-server"]);
        match found {
            Some(ms) => frames.push(ms),
            None => {
                return Err(format!(
                    "pane {i}: no \"first frame drawn\" line within 20 s"
                ));
            }
        }
    }
    Ok(frames)
}

/// The `ms` of the "first frame drawn" line of a log under `dir`, if written yet.
fn first_frame_ms(dir: &Path) -> Option<u64> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("snaptop.log") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).ok()?;
        for line in text.lines() {
            if let Some(at) = line.find("first frame drawn") {
                let _ = at;
                let ms = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("ms="))
                    .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok());
                if ms.is_some() {
                    return ms;
                }
            }
        }
    }
    None
}
