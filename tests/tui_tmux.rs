//! End to end: the real binary in a real terminal (tmux), in demo mode against the
//! built-in simulator. Keys go in with `send-keys`, the screen comes back with
//! `capture-pane`. Skipped, with a notice, when tmux is not installed.
//!
//! Every run uses its own tmux server (`-L`) and temporary HOME/XDG directories, so it
//! never touches the user's tmux, config, store or logs.

mod common;
mod store_lock;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_snaptop");
const WAIT: Duration = Duration::from_secs(20);
/// Prints `TTY=icanon echo` when the tty is cooked again (`TTY=-icanon -echo` in raw mode).
const TTY_REPORT: &str = "stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | \
     tr '\\n' ' ' | sed 's/^/TTY=/'; echo";

/// HOME and XDG directories under `d`, as `env` arguments.
fn home_env(d: &Path) -> String {
    let d = d.display();
    // The demo idle at start and quick, unless a test asks for the newcomer's demo.
    format!(
        "HOME={d} XDG_CONFIG_HOME={d}/config XDG_DATA_HOME={d}/data XDG_STATE_HOME={d}/state \
         XDG_RUNTIME_DIR={d}/run SNAPTOP_DEMO_AUTORUN=0 SNAPTOP_DEMO_LATENCY_MS=40 \
         SNAPTOP_DAEMON_LINGER_SECS=1"
    )
}

fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("notice: tmux is not installed; skipping the end-to-end TUI test");
    }
    ok
}

/// A tmux server of our own with one pane running a shell command.
struct Pane {
    socket: String,
    dir: tempfile::TempDir,
}

impl Pane {
    fn start(name: &str, width: u16, height: u16, snaptop_args: &str) -> Pane {
        Pane::start_with_env(name, width, height, &[], snaptop_args)
    }

    /// snaptop in a pane with `env` set (values without quotes or spaces). When it
    /// exits, the pane shows its exit status and whether the tty is back in canonical
    /// mode with echo (raw mode shows `-icanon -echo`).
    fn start_with_env(
        name: &str,
        width: u16,
        height: u16,
        env: &[(&str, String)],
        snaptop_args: &str,
    ) -> Pane {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let env: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let script = format!(
            "sh -c 'echo $$ > {pid}; exec env -u NO_COLOR -u TMUX {home} {env}{BIN} {snaptop_args}'; \
             echo SNAPTOP_EXIT=$?; {TTY_REPORT}; sleep 60",
            pid = d.join("pid").display(),
            home = home_env(d),
        );
        Pane::new(name, width, height, dir, &script)
    }

    /// An interactive bash with job control (Ctrl-Z, `fg`), for the suspend test.
    fn shell(name: &str, width: u16, height: u16) -> Pane {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "exec env -u NO_COLOR -u TMUX {} PS1='test$ ' bash --norc --noprofile -i",
            home_env(dir.path())
        );
        Pane::new(name, width, height, dir, &script)
    }

    fn new(name: &str, width: u16, height: u16, dir: tempfile::TempDir, script: &str) -> Pane {
        let socket = format!("snaptop-e2e-{name}-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(script)
            .env("TERM", "xterm-256color")
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Pane { socket, dir }
    }

    /// A tmux format of the pane: `#{alternate_on}`, `#{cursor_flag}`...
    fn format(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display-message",
                "-p",
                "-t",
                "0",
                format,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Whether the pane shows the alternate screen, and whether its cursor is visible.
    fn screen_mode(&self) -> (bool, bool) {
        let f = self.format("#{alternate_on} #{cursor_flag}");
        (f.starts_with('1'), f.ends_with('1'))
    }

    /// Waits until the pane's alternate screen is `on` or off.
    fn wait_for_alternate(&self, on: bool) {
        let start = Instant::now();
        while self.screen_mode().0 != on {
            if start.elapsed() > WAIT {
                panic!(
                    "waited {WAIT:?} for alternate screen {on}; the screen is:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn tmux(&self, args: &[&str]) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .status()
            .unwrap();
        assert!(ok.success(), "tmux {args:?}");
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", "0", k])
                .status()
                .unwrap();
            assert!(ok.success());
            // One key at a time, as a person types.
            std::thread::sleep(Duration::from_millis(80));
        }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until every one of `needles` is on screen; panics with the screen if not.
    fn wait_for(&self, needles: &[&str]) -> String {
        self.wait_until(&format!("{needles:?}"), |s| {
            needles.iter().all(|n| s.contains(n))
        })
    }

    /// Waits until `ready` holds for the screen; panics with the screen if not.
    fn wait_until(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ready(&s) {
                return s;
            }
            if start.elapsed() > WAIT {
                panic!("waited {WAIT:?} for {what}; the screen is:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid(&self) -> u32 {
        let start = Instant::now();
        loop {
            if let Ok(p) = std::fs::read_to_string(self.path().join("pid"))
                && let Ok(pid) = p.trim().parse()
            {
                return pid;
            }
            assert!(start.elapsed() < WAIT, "no pid file");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("state/snaptop"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// How long the idle screen is watched, and what it may write meanwhile.
const IDLE_WINDOW: Duration = Duration::from_secs(8);
const IDLE_FRAMES_MAX: usize = 3;
const IDLE_BYTES_MAX: usize = 1_500;

/// Frames in what a pane was sent: ratatui ends each frame by hiding the cursor (or
/// showing it, where a prompt has it).
fn frames(bytes: &[u8]) -> usize {
    bytes
        .windows(6)
        .filter(|w| *w == b"\x1b[?25l" || *w == b"\x1b[?25h")
        .count()
}

/// What a pane was sent so far while [`Pane::record`] runs.
struct Recording<'a> {
    path: &'a Path,
    started: Instant,
    bytes: Vec<u8>,
    last_growth: Instant,
}

impl Recording<'_> {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn elapsed(&self, d: Duration) -> bool {
        self.started.elapsed() >= d
    }

    /// Nothing new for `d`.
    fn quiet_for(&self, d: Duration) -> bool {
        self.last_growth.elapsed() >= d
    }
}

impl Pane {
    /// Records what the pane is sent (tmux `pipe-pane`) until `done` says so, checked
    /// every 100 ms; panics after [`WAIT`]. Returns the bytes.
    fn record(&self, name: &str, mut done: impl FnMut(&Recording) -> bool) -> Vec<u8> {
        let path = self.path().join(format!("pipe-{name}"));
        std::fs::write(&path, b"").unwrap();
        self.tmux(&[
            "pipe-pane",
            "-o",
            "-t",
            "0",
            &format!("cat >> {}", path.display()),
        ]);
        let now = Instant::now();
        let mut rec = Recording {
            path: &path,
            started: now,
            bytes: Vec::new(),
            last_growth: now,
        };
        loop {
            let bytes = std::fs::read(rec.path).unwrap_or_default();
            if bytes.len() != rec.bytes.len() {
                rec.bytes = bytes;
                rec.last_growth = Instant::now();
            }
            if done(&rec) {
                break;
            }
            if rec.started.elapsed() > WAIT + IDLE_WINDOW {
                panic!(
                    "recording {name}: not done after {:?} ({} bytes, {} frames)",
                    rec.started.elapsed(),
                    rec.bytes.len(),
                    frames(&rec.bytes)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.tmux(&["pipe-pane", "-t", "0"]);
        rec.bytes
    }
}

fn log_text(dir: &Path) -> String {
    log_files(dir)
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

#[test]
fn demo_session_start_tabs_snapshot_quit() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start("demo", 100, 30, "");
    // The first frame, before any network call: the demo store is empty.
    pane.wait_for(&["1 Snapshot", "DEMO", "No snapshot yet"]);

    pane.keys(&["2"]);
    pane.wait_for(&["interval_business", "Off (enabled = false)"]);
    // The demo's bundled Locust run, loaded off the render path at start.
    pane.keys(&["3"]);
    pane.wait_for(&["Endpoints (6)", "GET alerts_list", "loaded "]);
    pane.keys(&["]"]);
    pane.wait_for(&["Findings (7)", "CRITICAL"]);
    pane.keys(&["4"]);
    pane.wait_for(&["namespace", "Counters · all", "no runs recorded yet"]);
    pane.keys(&["BTab", "BTab", "BTab"]);
    pane.wait_for(&["Next snapshot: manual only"]);

    pane.keys(&["r"]);
    // A capture can land in the middle of a frame being written: wait for all of it.
    pane.wait_for(&["Last run #1", "complete", "component", "as of ", "Runs (1)"]);

    // Idle means idle: once the run's last frames are out, a frame is drawn only when a
    // relative time on screen changes its text ("just now" → "1m ago" in the header, a
    // cell's "5h" → "6h"): in a window of seconds, at most one or two, where a ticker of
    // even 1 Hz would draw one a second. Frames are counted by the cursor-hide sequence
    // ratatui ends every frame with.
    let settled = pane.record("settle", |w| w.quiet_for(Duration::from_millis(1_500)));
    eprintln!("settled after {} bytes", settled.len());
    let idle = pane.record("idle", |w| w.elapsed(IDLE_WINDOW));
    assert!(
        frames(&idle) <= IDLE_FRAMES_MAX && idle.len() <= IDLE_BYTES_MAX,
        "in {IDLE_WINDOW:?} idle: {} frames, {} bytes written to the terminal",
        frames(&idle),
        idle.len()
    );
    // ...while a key that changes the screen is written through the same pipe, and
    // costs more than everything idle may write.
    let busy = pane.record("busy", |w| {
        if w.bytes().is_empty() {
            pane.keys(&["2", "1"]);
        }
        frames(w.bytes()) >= 2
    });
    assert!(
        busy.len() > IDLE_BYTES_MAX,
        "switching tabs twice wrote {} bytes in {} frames",
        busy.len(),
        frames(&busy)
    );
    eprintln!(
        "idle: {} frames {} bytes; busy: {} frames {} bytes",
        frames(&idle),
        idle.len(),
        frames(&busy),
        busy.len()
    );

    // Drill into a cell and back, vim keys and arrows both.
    pane.keys(&["j", "Right", "Enter"]);
    pane.wait_for(&["Deployment history", "Shipped tickets"]);
    pane.keys(&["Escape", "?"]);
    pane.wait_for(&["Everywhere", "Snapshot tab"]);
    pane.keys(&["Escape", "q"]);

    let s = pane.wait_for(&["SNAPTOP_EXIT=0", "TTY="]);
    assert!(s.contains("TTY=icanon echo"), "terminal not restored:\n{s}");
    assert!(
        !log_files(pane.path()).is_empty(),
        "a log file under XDG_STATE_HOME/snaptop"
    );
}

/// The entries column of a source's row in the Cache tab's per-source table.
fn source_entries(screen: &str, source: &str) -> Option<u64> {
    let line = screen.lines().find_map(|l| {
        let i = l.find(&format!("│{source} "))?;
        Some(l[i + source.len() + 3..].to_string())
    })?;
    line.split_whitespace()
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

#[test]
fn cache_tab_clears_a_namespace_after_asking() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start("cache", 100, 30, "");
    pane.wait_for(&["1 Snapshot", "DEMO"]);
    pane.keys(&["r"]);
    pane.wait_for(&["Last run #1", "complete", "Runs (1)"]);
    // The tab reads the figures the run left in the process's one cache.
    pane.keys(&["4"]);
    let s = pane.wait_until("github entries", |s| {
        s.contains("run #1") && source_entries(s, "github").is_some_and(|n| n > 0)
    });
    let before = source_entries(&s, "github").unwrap();
    let teamcity = source_entries(&s, "teamcity").unwrap();
    assert!(s.contains("Hit rate · all"), "{s}");
    // `l` picks github; `d` asks; `n` keeps everything.
    pane.keys(&["l", "d"]);
    pane.wait_for(&["Clear the github namespace?", "y/Enter yes"]);
    pane.keys(&["n"]);
    let s = pane.wait_for(&["kept: did not clear the github namespace"]);
    assert_eq!(source_entries(&s, "github"), Some(before), "{s}");
    // `d` again and `y`: the job runs off the render path, the counts follow.
    pane.keys(&["d"]);
    pane.wait_for(&["Clear the github namespace?"]);
    pane.keys(&["y"]);
    let s = pane.wait_until("github cleared", |s| {
        s.contains(&format!("cleared github: {before} entries"))
            && source_entries(s, "github") == Some(0)
    });
    assert_eq!(
        source_entries(&s, "teamcity"),
        Some(teamcity),
        "other namespaces are kept:\n{s}"
    );
    assert!(!s.contains("Clear the github namespace?"), "{s}");
    pane.keys(&["q"]);
    let s = pane.wait_for(&["SNAPTOP_EXIT=0", "TTY="]);
    assert!(s.contains("TTY=icanon echo"), "terminal not restored:\n{s}");
}

/// Copies the real Locust 2.47 run under `dir` as `NAME_*.csv`.
fn copy_run(dir: &Path, name: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locust/2.47");
    for kind in ["stats", "stats_history", "failures", "exceptions"] {
        std::fs::copy(
            src.join(format!("api_{kind}.csv")),
            dir.join(format!("{name}_{kind}.csv")),
        )
        .unwrap();
    }
}

#[test]
fn reports_open_complete_compare_and_reload_on_change() {
    if !have_tmux() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    copy_run(runs.path(), "api");
    copy_run(runs.path(), "base");
    let api = runs.path().join("api");
    let pane = Pane::start("reports", 100, 30, &format!("--report {}", api.display()));
    // `--report` opens on the Reports tab.
    pane.wait_for(&["Endpoints (6)", "/api · 5,758 requests", "loaded "]);

    // Open the other run: edit the prefilled path, complete it with Tab.
    pane.keys(&["o", "BSpace", "BSpace", "BSpace", "b", "a", "Tab"]);
    pane.wait_for(&["Open a run", "/base"]);
    pane.keys(&["Enter"]);
    pane.wait_for(&["/base · 5,758 requests"]);

    // Compare it with the first one; the prompt starts in the same directory.
    pane.keys(&["b", "a", "p", "i", "Enter", "["]);
    pane.wait_for(&["Compare · 0 regressions · 0 improvements", "base: "]);

    // Locust rewrites a file of the run on screen: the report reloads by itself.
    let stats = runs.path().join("base_stats.csv");
    let text = std::fs::read_to_string(&stats).unwrap();
    std::fs::write(&stats, text).unwrap();
    pane.wait_for(&["reloaded "]);

    // A bad path is one line naming it; the report stays.
    pane.keys(&["o", "Home", "C-k"]);
    pane.keys(&["/", "n", "o", "p", "e", "Enter"]);
    pane.wait_for(&["✗ /nope", "Compare · 0 regressions"]);
    pane.keys(&["q"]);
    let s = pane.wait_for(&["SNAPTOP_EXIT=0", "TTY="]);
    assert!(s.contains("TTY=icanon echo"), "terminal not restored:\n{s}");
}

/// Asserts the pane is back to a cooked shell after snaptop exited: canonical mode with
/// echo, the main screen, the cursor shown.
fn assert_terminal_restored(pane: &Pane, s: &str, what: &str) {
    assert!(
        s.contains("TTY=icanon echo"),
        "{what}: terminal not restored:\n{s}"
    );
    assert_eq!(
        pane.screen_mode(),
        (false, true),
        "{what}: (alternate screen, cursor visible) after exit:\n{s}"
    );
}

#[test]
fn catchable_signals_restore_the_terminal_and_exit_128_plus_the_signal() {
    if !have_tmux() {
        return;
    }
    for (signal, status) in [("INT", 130), ("QUIT", 131), ("TERM", 143), ("HUP", 129)] {
        let pane = Pane::start(signal, 90, 26, "--theme high-contrast");
        pane.wait_for(&["1 Snapshot", "DEMO"]);
        assert_eq!(pane.screen_mode(), (true, false), "SIG{signal}: running");
        let pid = pane.pid();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let s = pane.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
        assert!(
            s.contains(&format!("SNAPTOP_EXIT={status}")),
            "SIG{signal}: exit status {status} expected:\n{s}"
        );
        assert_terminal_restored(&pane, &s, &format!("SIG{signal}"));
    }
}

#[test]
fn ctrl_z_and_sigtstp_suspend_to_the_shell_and_fg_resumes() {
    if !have_tmux() {
        return;
    }
    if !Command::new("bash")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("notice: bash is not installed; skipping the suspend test");
        return;
    }
    let pane = Pane::shell("suspend", 100, 30);
    pane.wait_for(&["test$"]);
    let pid_file = pane.path().join("pid");
    pane.keys(&[
        &format!("sh -c 'echo $$ > {}; exec {BIN}'", pid_file.display()),
        "Enter",
    ]);
    pane.wait_for(&["1 Snapshot", "DEMO", "No snapshot yet"]);
    let pid = pane.pid();

    for (how, suspend) in [("Ctrl-Z", None), ("SIGTSTP", Some("-TSTP"))] {
        match suspend {
            None => pane.keys(&["C-z"]),
            Some(signal) => {
                let ok = Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
        }
        // The shell has the terminal, cooked, with its cursor.
        pane.wait_for_alternate(false);
        pane.wait_for(&["Stopped"]);
        pane.tmux(&["send-keys", "-t", "0", "clear; ", TTY_REPORT, "Enter"]);
        // The report's line, not the command line that prints it.
        let s = pane.wait_until("a TTY= line", |s| s.lines().any(|l| l.starts_with("TTY=")));
        assert_terminal_restored(&pane, &s, how);
        // `fg`: snaptop takes the terminal again and draws the whole screen. (The shell's
        // screen is cleared first, so the next round reads only its own lines.)
        pane.tmux(&["send-keys", "-t", "0", "clear; fg", "Enter"]);
        pane.wait_for_alternate(true);
        pane.wait_for(&["1 Snapshot", "DEMO", "No snapshot yet", "q quit"]);
        assert_eq!(pane.screen_mode(), (true, false), "{how}: resumed");
        // And the keys work again.
        pane.keys(&["2"]);
        pane.wait_for(&["interval_business"]);
        pane.keys(&["1"]);
        pane.wait_for(&["No snapshot yet"]);
    }
    pane.keys(&["q"]);
    pane.wait_for_alternate(false);
    pane.tmux(&["send-keys", "-t", "0", "echo SNAPTOP_EXIT=$?", "Enter"]);
    pane.wait_until("SNAPTOP_EXIT=0", |s| {
        s.lines().any(|l| l.starts_with("SNAPTOP_EXIT=0"))
    });
}

/// Without job control (nothing could ever continue the process) SIGTSTP does not stop
/// snaptop: it gives the terminal back for a moment, takes it again, and carries on.
#[test]
fn sigtstp_without_job_control_carries_on() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start("tstp", 90, 26, "");
    pane.wait_for(&["1 Snapshot", "DEMO"]);
    let pid = pane.pid();
    let ok = Command::new("kill")
        .args(["-TSTP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    // The log says when it is back.
    let start = Instant::now();
    while !log_text(pane.path()).contains("terminal taken back") {
        assert!(
            start.elapsed() < WAIT,
            "no resume in the log:\n{}",
            log_text(pane.path())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pane.wait_for(&["1 Snapshot", "DEMO", "q quit"]);
    assert_eq!(pane.screen_mode(), (true, false));
    pane.keys(&["2"]);
    pane.wait_for(&["interval_business"]);
    pane.keys(&["q"]);
    let s = pane.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
    assert!(s.contains("SNAPTOP_EXIT=0"), "{s}");
    assert_terminal_restored(&pane, &s, "after SIGTSTP");
}

#[test]
fn too_small_pane_shows_a_notice_and_still_quits() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start("small", 50, 12, "");
    pane.wait_for(&["needs a bigger pane", "50×12"]);
    pane.keys(&["q"]);
    pane.wait_for(&["SNAPTOP_EXIT=0"]);
}

/// A latest snapshot whose bytes are damaged does not stop the TUI: it starts with the
/// newest snapshot that reads back and a line naming the store, and the next run
/// replaces the damaged one.
#[test]
fn a_corrupt_latest_snapshot_is_named_and_replaced_by_the_next_run() {
    if !have_tmux() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(common::sim(snaptop::sim::SimOptions::default()));
    let data = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, data.path());
    let store_path = data.path().join("store");
    for _ in 0..2 {
        let out = common::snaptop(&sim, data.path())
            .args(["snapshot", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    {
        let db = sled::open(&store_path).unwrap();
        let latest = db
            .open_tree("meta")
            .unwrap()
            .get("latest_snapshot")
            .unwrap()
            .unwrap();
        assert_eq!(&latest[..], 2u64.to_be_bytes(), "runs are numbered 1, 2");
        db.open_tree("snapshots")
            .unwrap()
            .insert(latest, &b"\x00\xffnot json"[..])
            .unwrap();
        db.flush().unwrap();
    }
    store_lock::wait_released(&store_path);

    let env = sim.secret_env().map(|(k, v)| (k, v.to_string()));
    let pane = Pane::start_with_env(
        "corrupt",
        200,
        40,
        &env,
        &format!("--config {}", config.display()),
    );
    let s = pane.wait_for(&[
        "1 Snapshot",
        "the latest snapshot could not be read (showing run #1;",
        "component",
    ]);
    assert!(
        s.contains(&format!("store {}", store_path.display())),
        "{s}"
    );
    pane.keys(&["r"]);
    pane.wait_for(&["Last run #3", "snapshot #3 finished"]);
    pane.keys(&["q"]);
    let s = pane.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
    assert!(s.contains("SNAPTOP_EXIT=0"), "{s}");
    // The daemon the pane started lets the store go a moment after its last pane
    // (its process ends after sled's flock is free: open until it is ours).
    store_lock::wait_released(&store_path);
    let began = Instant::now();
    let store = loop {
        match snaptop::store::Store::open(&store_path, 8) {
            Err(snaptop::store::StoreError::Locked { .. }) if began.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other.unwrap(),
        }
    };
    let latest = store
        .latest_snapshot()
        .expect("the latest reads back again");
    assert_eq!(latest.map(|s| s.run_id), Some(3));
}

/// Configuration mistakes stop the program before the terminal is touched, naming
/// what is wrong (no tmux needed).
#[test]
fn bad_keys_and_bad_theme_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let config = |extra: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "environments = [\"dev\"]\n[gitops]\nrepo = \"acme/deploy\"\npath = \"o/{{env}}/{{component}}/k.yaml\"\n\
                 [[components]]\nname = \"api\"\nrepo = \"acme/api\"\nimage = \"acme/api\"\n\
                 [github]\nbase_url = \"http://127.0.0.1:9\"\n{extra}"
            ),
        )
        .unwrap();
        path
    };
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("c"))
            .env("XDG_DATA_HOME", dir.path().join("d"))
            .env("XDG_STATE_HOME", dir.path().join("s"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let c = config("[keys]\ntrigger = \"q\"\n");
    let err = run(&["--config", c.to_str().unwrap()]);
    assert!(
        err.contains("`q`") && err.contains("quit") && err.contains("trigger"),
        "{err}"
    );

    let c = config("[keys]\nrefersh = \"x\"\n");
    let err = run(&["--config", c.to_str().unwrap()]);
    assert!(err.contains("refersh"), "{err}");

    let theme = dir.path().join("broken.toml");
    std::fs::write(
        &theme,
        "[gauge]\nrunning = \"cyan\"\n\ndone = { fg = \"greem\" }\n",
    )
    .unwrap();
    let c = config("");
    let err = run(&[
        "--config",
        c.to_str().unwrap(),
        "--theme",
        theme.to_str().unwrap(),
    ]);
    assert!(
        err.contains("broken.toml:4:") && err.contains("greem"),
        "{err}"
    );
}

/// The seed team's size in a real terminal at 80×24: the 15 × 4 matrix scrolls with its
/// position shown, `/` filters, a run keeps the matrix in view, and a run where every
/// source fails keeps every last good value, marked with its age.
#[test]
fn seed_size_matrix_scrolls_filters_and_keeps_the_last_good_values() {
    if !have_tmux() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(common::sim(snaptop::sim::SimOptions {
        profile: snaptop::sim::Profile::Seed,
        // A network's latency: the run lasts long enough to be seen.
        latency: Duration::from_millis(120),
        ..snaptop::sim::SimOptions::default()
    }));
    let data = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, data.path());
    let env = sim.secret_env().map(|(k, v)| (k, v.to_string()));
    let pane = Pane::start_with_env(
        "seed",
        80,
        24,
        &env,
        &format!("--config {}", config.display()),
    );
    pane.wait_for(&["1 Snapshot", "No snapshot yet"]);
    pane.keys(&["r"]);
    // While it runs, the matrix is there under the progress.
    pane.wait_for(&["running", "Deployments · updating"]);
    let s = pane.wait_for(&["Last run #1", "1–12/15 ↓"]);
    assert!(s.contains("component") && s.contains("prod"), "{s}");
    for _ in 0..14 {
        pane.keys(&["j"]);
    }
    let s = pane.wait_for(&["4–15/15 ↑", "scheduler"]);
    assert!(!s.contains("│payments "), "{s}");
    pane.keys(&["/", "c", "h", "e", "c", "k", "Enter"]);
    let s = pane.wait_for(&["/check 1/15"]);
    assert!(s.contains("checkout") && !s.contains("ledger"), "{s}");
    pane.keys(&["Escape"]);
    pane.wait_for(&["1–12/15"]);
    // Every source goes down: the next run brings nothing, and nothing is hidden.
    for source in snaptop::sim::Source::ALL {
        sim.set_fault(source, snaptop::sim::Fault::ServerError);
    }
    pane.keys(&["r"]);
    let s = pane.wait_for(&["Last run #2", "cells from earlier runs", "~"]);
    assert!(s.contains("failed"), "{s}");
    assert!(s.contains("v1."), "the last good tags stay: {s}");
    pane.keys(&["q"]);
    let s = pane.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
    assert!(s.contains("SNAPTOP_EXIT=0"), "{s}");
    drop(rt);
}

/// The demo a newcomer sees: a first run starts by itself, paced like a real network, so
/// the live progress shows, `c` cancels it and a second `r` only says one is running.
#[test]
fn the_demo_runs_a_first_snapshot_by_itself_paced_to_be_seen() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start_with_env(
        "newcomer",
        100,
        30,
        &[
            ("SNAPTOP_DEMO_AUTORUN", "1".into()),
            ("SNAPTOP_DEMO_LATENCY_MS", "300".into()),
        ],
        "",
    );
    pane.wait_for(&["running", "overall", "Deployments · updating"]);
    pane.keys(&["r"]);
    pane.wait_for(&["already running"]);
    pane.keys(&["c"]);
    let s = pane.wait_for(&["Last run #1", "cancelled"]);
    assert!(s.contains("0 errors"), "a cancel is not an error: {s}");
    pane.keys(&["r"]);
    pane.wait_for(&["running"]);
    pane.wait_for(&["Last run #2", "complete"]);
    pane.keys(&["q"]);
    let s = pane.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
    assert!(s.contains("SNAPTOP_EXIT=0"), "{s}");
}

/// The line of the Schedule tab's form that holds `key`.
fn form_row<'a>(screen: &'a str, key: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(&format!("{key}  ")))
}

/// An edit made in the Schedule tab is saved with Ctrl-S, said to be a saved edit, and
/// still in force (over the config file's value) after a restart.
#[test]
fn schedule_tab_edit_is_saved_and_kept_across_restarts() {
    if !have_tmux() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(common::sim(snaptop::sim::SimOptions::default()));
    let data = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, data.path());
    // Automatic runs off, so nothing starts under the keys; the interval from the file.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[schedule]\nenabled = false\ninterval_business = \"30m\"\n");
    std::fs::write(&config, text).unwrap();
    let store_path = data.path().join("store");
    let env = sim.secret_env().map(|(k, v)| (k, v.to_string()));
    let args = format!("--config {}", config.display());

    let pane = Pane::start_with_env("schedule", 100, 30, &env, &args);
    pane.wait_for(&["1 Snapshot"]);
    pane.keys(&["2"]);
    let s = pane.wait_for(&["interval_business", "Next runs"]);
    let row = form_row(&s, "interval_business").unwrap();
    assert!(row.contains("30m") && row.contains("config file"), "{s}");
    pane.keys(&["j", "Enter", "BSpace", "BSpace", "BSpace", "4", "5", "m"]);
    let s = pane.wait_for(&["unsaved changes"]);
    assert!(
        form_row(&s, "interval_business").is_some_and(|r| r.contains("45m")),
        "{s}"
    );
    pane.keys(&["Enter", "C-s"]);
    let s = pane.wait_until("the saved edit", |s| {
        form_row(s, "interval_business")
            .is_some_and(|r| r.contains("45m") && r.contains("saved edit"))
    });
    assert!(!s.contains("unsaved changes"), "{s}");
    pane.keys(&["q"]);
    let s = pane.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
    assert!(s.contains("SNAPTOP_EXIT=0"), "{s}");
    drop(pane);
    store_lock::wait_released(&store_path);

    let pane = Pane::start_with_env("schedule-again", 100, 30, &env, &args);
    pane.wait_for(&["1 Snapshot"]);
    pane.keys(&["2"]);
    let s = pane.wait_for(&["interval_business", "Next runs"]);
    let row = form_row(&s, "interval_business").unwrap();
    assert!(row.contains("45m") && row.contains("saved edit"), "{s}");
    pane.keys(&["q"]);
    pane.wait_for(&["SNAPTOP_EXIT=0"]);
    drop(rt);
}

/// Two panes of one config: the first starts the daemon, the second attaches to it (no
/// "store in use"), a run triggered in one is seen live in both, closing one leaves
/// the other attached, and a daemon killed under them is reported and replaced.
#[test]
fn two_panes_share_one_daemon_and_both_see_one_run() {
    if !have_tmux() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(common::sim(snaptop::sim::SimOptions {
        latency: Duration::from_millis(80),
        ..snaptop::sim::SimOptions::default()
    }));
    let data = tempfile::tempdir().unwrap();
    let config = common::write_config(&sim, data.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[schedule]\nenabled = false\n");
    std::fs::write(&config, text).unwrap();
    let mut env: Vec<(&str, String)> = sim
        .secret_env()
        .map(|(k, v)| (k, v.to_string()))
        .into_iter()
        .collect();
    // Both panes' sockets in one place, as for one user.
    let run_dir = data.path().join("run");
    env.push(("XDG_RUNTIME_DIR", run_dir.display().to_string()));
    let args = format!("--config {}", config.display());
    let a = Pane::start_with_env("share-a", 120, 30, &env, &args);
    a.wait_for(&["1 Snapshot", "attached to config-"]);
    let b = Pane::start_with_env("share-b", 120, 30, &env, &args);
    let s = b.wait_for(&["1 Snapshot", "attached to config-"]);
    assert!(!s.contains("in use"), "{s}");

    a.keys(&["r"]);
    b.wait_for(&["running"]);
    let sa = a.wait_for(&["Last run #1"]);
    let sb = b.wait_for(&["Last run #1"]);
    assert!(
        sa.contains("payments") && sb.contains("payments"),
        "{sa}\n{sb}"
    );

    // Closing a pane does not touch the other one or the daemon.
    b.keys(&["q"]);
    let s = b.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
    assert!(s.contains("SNAPTOP_EXIT=0"), "{s}");
    a.keys(&["r"]);
    a.wait_for(&["Last run #2"]);

    // The daemon killed: the pane says so, starts another and attaches again, with the
    // screen kept all along.
    let pids = std::process::Command::new("pgrep")
        .args(["-f", &format!("{} serve --auto", config.display())])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout).trim().to_string();
    assert!(!pid.is_empty(), "no daemon process");
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    let s = a.wait_until("attached again", |s| {
        s.contains("attached again (daemon pid")
    });
    assert!(s.contains("Last run #2") && s.contains("payments"), "{s}");
    a.keys(&["q"]);
    a.wait_for(&["SNAPTOP_EXIT=0"]);
    drop(rt);
}
