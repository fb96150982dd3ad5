//! End to end: the real binary in a real terminal (tmux), in demo mode against the
//! built-in simulator. Keys go in with `send-keys`, the screen comes back with
//! `capture-pane`. Skipped, with a notice, when tmux is not installed.
//!
//! Every run uses its own tmux server (`-L`) and temporary HOME/XDG directories, so it
//! never touches the user's tmux, config, store or logs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_snaptop");
const WAIT: Duration = Duration::from_secs(20);

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
        let dir = tempfile::tempdir().unwrap();
        let socket = format!("snaptop-e2e-{name}-{}", std::process::id());
        let d = dir.path();
        // After snaptop exits, print its exit code and whether the tty is back in
        // canonical mode with echo (raw mode shows `-icanon -echo`).
        let script = format!(
            "sh -c 'echo $$ > {pid}; exec env -u NO_COLOR -u TMUX HOME={d} XDG_CONFIG_HOME={d}/config \
             XDG_DATA_HOME={d}/data XDG_STATE_HOME={d}/state {BIN} {snaptop_args}'; \
             echo SNAPTOP_EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | \
             tr '\\n' ' ' | sed 's/^/TTY=/'; echo; sleep 60",
            pid = d.join("pid").display(),
            d = d.display(),
        );
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
        let start = Instant::now();
        loop {
            let s = self.screen();
            if needles.iter().all(|n| s.contains(n)) {
                return s;
            }
            if start.elapsed() > WAIT {
                panic!("waited {WAIT:?} for {needles:?}; the screen is:\n{s}");
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

#[test]
fn demo_session_start_tabs_snapshot_quit() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start("demo", 100, 30, "");
    // The first frame, before any network call: the demo store is empty.
    pane.wait_for(&["1 Snapshot", "DEMO", "No snapshot yet"]);

    pane.keys(&["2"]);
    pane.wait_for(&["manual only", "policy this tab will edit"]);
    // The demo's bundled Locust run, loaded off the render path at start.
    pane.keys(&["3"]);
    pane.wait_for(&["Endpoints (6)", "GET alerts_list", "loaded "]);
    pane.keys(&["]"]);
    pane.wait_for(&["Findings (7)", "CRITICAL"]);
    pane.keys(&["4"]);
    pane.wait_for(&["namespace", "snapshots"]);
    pane.keys(&["BTab", "BTab", "BTab"]);
    pane.wait_for(&["Next snapshot: manual only"]);

    pane.keys(&["r"]);
    // A capture can land in the middle of a frame being written: wait for all of it.
    pane.wait_for(&["Last run #1", "complete", "component", "as of ", "Runs (1)"]);

    // Idle means idle: nothing is written to the terminal while nothing changes. (A
    // cell's "5h" can turn "6h" inside any window, rarely; a second window then must be
    // silent.)
    std::thread::sleep(Duration::from_millis(300));
    let mut idle_bytes = Vec::new();
    for attempt in 0..2 {
        let written = pane.dir.path().join(format!("idle-bytes-{attempt}"));
        pane.tmux(&[
            "pipe-pane",
            "-o",
            "-t",
            "0",
            &format!("cat >> {}", written.display()),
        ]);
        std::thread::sleep(Duration::from_secs(3));
        pane.tmux(&["pipe-pane", "-t", "0"]);
        std::thread::sleep(Duration::from_millis(200));
        idle_bytes.push(std::fs::metadata(&written).map(|m| m.len()).unwrap_or(0));
        if idle_bytes.last() == Some(&0) {
            break;
        }
    }
    assert_eq!(
        idle_bytes.last(),
        Some(&0),
        "bytes written to the terminal in 3 idle seconds: {idle_bytes:?}"
    );
    // ...while a key that changes the screen is written through the same pipe.
    let busy = pane.dir.path().join("busy-bytes");
    pane.tmux(&[
        "pipe-pane",
        "-o",
        "-t",
        "0",
        &format!("cat >> {}", busy.display()),
    ]);
    pane.keys(&["2", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    pane.tmux(&["pipe-pane", "-t", "0"]);
    std::thread::sleep(Duration::from_millis(200));
    let bytes = std::fs::metadata(&busy).map(|m| m.len()).unwrap_or(0);
    assert!(bytes > 100, "switching tabs wrote {bytes} bytes");

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
    pane.keys(&["3"]);
    pane.wait_for(&["Endpoints (6)", "/api · 5,758 requests", "loaded "]);

    // Open the other run: edit the prefilled path, complete it with Tab.
    pane.keys(&["o", "BSpace", "BSpace", "BSpace", "b", "a", "Tab"]);
    pane.wait_for(&["Open a Locust run", "/base"]);
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

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    if !have_tmux() {
        return;
    }
    for signal in ["TERM", "HUP"] {
        let pane = Pane::start(signal, 90, 26, "--theme high-contrast");
        pane.wait_for(&["1 Snapshot", "DEMO"]);
        let pid = pane.pid();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let s = pane.wait_for(&["SNAPTOP_EXIT=", "TTY="]);
        assert!(s.contains("SNAPTOP_EXIT=0"), "SIG{signal}: {s}");
        assert!(
            s.contains("TTY=icanon echo"),
            "SIG{signal}: terminal not restored:\n{s}"
        );
    }
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
