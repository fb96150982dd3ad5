//! Issue 10, the Snapshot tab as plain state and rendered frames: scrolling never runs
//! past the end, the filter, the panes, the run history's details, the last good values
//! after a failed run, `o` opening a cell's build.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use snaptop::app::action::Action;
use snaptop::app::keymap::KeyMap;
use snaptop::app::{App, Startup};
use snaptop::engine::events::EngineEvent;
use snaptop::ui::snapshot::{Focus, SnapshotTab};
use snaptop::ui::theme::Theme;
use snaptop::ui::{self, AppEvent, Effect, Outcome, Tab, sample};
use time::UtcOffset;

fn seed_app() -> App {
    App::new(
        Startup {
            snapshot: Some(sample::seed_snapshot()),
            history: sample::history(),
            ..Startup::default()
        },
        KeyMap::defaults(),
        Theme::default_theme(),
        UtcOffset::UTC,
    )
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app, sample::NOW)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn press(app: &mut App, code: KeyCode) {
    app.on_key(&KeyEvent::new(code, KeyModifiers::NONE));
}

#[test]
fn a_popup_scrolls_within_its_content_and_the_first_key_back_moves_it() {
    let mut app = seed_app();
    // ledger in prod: four deployments and twelve tickets, more than a 80×24 popup.
    for a in [
        Action::Down,
        Action::Down,
        Action::Right,
        Action::Right,
        Action::Right,
        Action::Open,
    ] {
        app.on_action(a);
    }
    let first = screen(&app, 80, 24);
    assert!(
        first.contains("ledger in prod") && first.contains("more ↓"),
        "{first}"
    );
    for _ in 0..40 {
        app.on_action(Action::Down);
        let _ = screen(&app, 80, 24);
    }
    let at_end = screen(&app, 80, 24);
    assert!(!at_end.contains("more ↓"), "{at_end}");
    // One press back moves it: the offset was never past the end.
    app.on_action(Action::Up);
    let moved = screen(&app, 80, 24);
    assert_ne!(at_end, moved, "the first Up scrolls");
    assert!(moved.contains("more ↓"), "{moved}");
}

#[test]
fn the_matrix_scrolls_to_its_last_row_with_a_visible_position_and_keeps_its_header() {
    let mut app = seed_app();
    let top = screen(&app, 80, 24);
    assert!(top.contains("1–12/15 ↓"), "{top}");
    for _ in 0..30 {
        app.on_action(Action::Down);
    }
    let bottom = screen(&app, 80, 24);
    assert!(bottom.contains("4–15/15 ↑"), "{bottom}");
    assert!(
        bottom.contains("scheduler") && bottom.contains("component"),
        "{bottom}"
    );
    assert!(!bottom.contains("payments "), "{bottom}");
    // Whole semver tags and digests shortened the same way.
    assert!(
        top.contains("v1.44.0") && top.contains("@0808065736"),
        "{top}"
    );
    assert!(!top.contains("sha256:"), "{top}");
}

#[test]
fn slash_filters_components_enter_keeps_it_and_esc_clears_it() {
    let mut app = seed_app();
    app.on_action(Action::Filter);
    for c in "pay".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    let typed = screen(&app, 80, 24);
    assert!(typed.contains("/pay") && typed.contains("1/15"), "{typed}");
    assert!(!typed.contains("checkout"), "{typed}");
    // While typing, `q` and digits are text, not quit or tab switches.
    press(&mut app, KeyCode::Char('q'));
    assert!(!app.should_quit());
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Enter);
    let kept = screen(&app, 80, 24);
    assert!(kept.contains("/pay 1/15"), "{kept}");
    app.on_action(Action::Back);
    let cleared = screen(&app, 80, 24);
    assert!(
        cleared.contains("checkout") && !cleared.contains("/pay"),
        "{cleared}"
    );
}

#[test]
fn the_run_history_is_a_list_that_opens_a_run_with_its_log() {
    let mut app = seed_app();
    let (summary, snapshot) = sample::seed_failed_run();
    app.on_event(AppEvent::Engine(EngineEvent::Log(sample::log().remove(1))));
    app.on_event(AppEvent::Engine(EngineEvent::Finished {
        summary,
        snapshot: Box::new(snapshot),
    }));
    app.on_action(Action::NextView);
    let list = screen(&app, 160, 48);
    assert!(list.contains("1/7"), "the list has the focus: {list}");
    app.on_action(Action::Open);
    let detail = screen(&app, 160, 48);
    for want in [
        "Run #43",
        "By source",
        "Failures (4)",
        "Connection refused",
        "Log (1 lines)",
        "rate limited",
    ] {
        assert!(detail.contains(want), "{want}: {detail}");
    }
    app.on_action(Action::Back);
    for _ in 0..20 {
        app.on_action(Action::Down);
    }
    let last = screen(&app, 160, 48);
    assert!(last.contains("7/7"), "stops at the last run: {last}");
}

#[test]
fn after_a_failed_run_every_cell_keeps_its_last_good_value_and_says_how_old() {
    let mut app = seed_app();
    let before = screen(&app, 160, 48);
    let (summary, snapshot) = sample::seed_failed_run();
    app.on_event(AppEvent::Engine(EngineEvent::Finished {
        summary,
        snapshot: Box::new(snapshot),
    }));
    let after = screen(&app, 160, 48);
    assert!(
        after.contains("v1.44.0") && after.contains("~7m"),
        "{after}"
    );
    assert!(
        !after.contains(" 0T ") || before.contains(" 0T "),
        "no invented zeros"
    );
    assert!(
        after.contains("as of 14:05, 7m ago"),
        "the data's time, not the run's: {after}"
    );
    assert!(
        after.contains("Connection refused: datadog, github, jira, teamcity"),
        "{after}"
    );
}

#[test]
fn o_opens_the_selected_cells_build_and_is_the_reports_tabs_open_elsewhere() {
    let mut tab = SnapshotTab::new(Some(sample::seed_snapshot()), sample::history());
    match tab.handle_key(Action::Browse) {
        Outcome::Do(Effect::OpenUrl(url)) => {
            assert!(url.starts_with("https://teamcity.acme.test/"), "{url}")
        }
        other => panic!("{other:?}"),
    }
    // The same key: Browse in the Snapshot tab, OpenReport in the Reports tab.
    let keys = KeyMap::defaults();
    let o = KeyEvent::new(KeyCode::Char('o'), KeyModifiers::NONE);
    use snaptop::app::action::Group;
    assert_eq!(
        keys.action_in(&o, Some(Group::Snapshot)),
        Some(Action::Browse)
    );
    assert_eq!(
        keys.action_in(&o, Some(Group::Reports)),
        Some(Action::OpenReport)
    );
    // A cell without a link says so.
    let mut empty = SnapshotTab::new(Some(sample::snapshot()), vec![]);
    assert!(matches!(empty.handle_key(Action::Browse), Outcome::Say(_)));
}

#[test]
fn the_panes_take_the_focus_in_turn_and_esc_comes_back_to_the_matrix() {
    let mut tab = SnapshotTab::new(Some(sample::seed_snapshot()), sample::history());
    assert_eq!(tab.focus(), Focus::Matrix);
    tab.handle_key(Action::NextView);
    assert_eq!(tab.focus(), Focus::Runs);
    tab.handle_key(Action::Log);
    assert_eq!(tab.focus(), Focus::Log);
    tab.handle_key(Action::Back);
    assert_eq!(tab.focus(), Focus::Matrix);
    assert_eq!(
        tab.handle_key(Action::Up),
        Outcome::Ignored,
        "already at the top"
    );
}

#[test]
fn every_seed_screen_fits_80x24_without_a_panic_and_a_20x5_pane_says_so() {
    let mut app = seed_app();
    for action in [Action::Open, Action::Back, Action::NextView, Action::Open] {
        app.on_action(action);
        let _ = screen(&app, 80, 24);
    }
    let tiny = screen(&app, 20, 5);
    assert!(tiny.contains("bigger"), "{tiny}");
}

// --- config and the simulator's config, as a newcomer follows the README ----------------

const BIN: &str = env!("CARGO_BIN_EXE_snaptop");

fn run_bin(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("c"))
        .env("XDG_DATA_HOME", dir.join("d"))
        .env("XDG_STATE_HOME", dir.join("s"))
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

const SOURCES: &str = "environments = [\"dev\"]\n[gitops]\nrepo = \"acme/deploy\"\n\
    path = \"o/{env}/{component}/k.yaml\"\n[[components]]\nname = \"api\"\nrepo = \"acme/api\"\n\
    image = \"acme/api\"\n[github]\nbase_url = \"http://127.0.0.1:9\"\n";

#[test]
fn key_and_theme_mistakes_name_their_line_and_a_secret_named_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let write = |text: &str| std::fs::write(&path, text).unwrap();
    let err = |args: &[&str]| {
        let out = run_bin(dir.path(), args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cfg = path.to_str().unwrap();
    // Line 11 is `[keys]`, 12 `quit = …`, 13 `trigger = "nokey"`.
    write(&format!(
        "{SOURCES}[keys]\nquit = \"q\"\ntrigger = \"nokey\"\n"
    ));
    let e = err(&["--config", cfg]);
    assert!(e.contains("config.toml:13:") && e.contains("nokey"), "{e}");
    write(&format!("{SOURCES}[ui]\ntheme = \"no-such-theme\"\n"));
    let e = err(&["--config", cfg]);
    assert!(
        e.contains("config.toml:12:") && e.contains("no-such-theme"),
        "{e}"
    );
    let both = SOURCES.replace(
        "[github]\n",
        "[github]\ntoken_env = \"GH\"\ntoken_file = \"/run/secrets/gh\"\n",
    );
    write(&both);
    let e = err(&["snapshot", "--config", cfg]);
    let line = both.lines().position(|l| l == "[github]").unwrap() + 1;
    assert!(
        e.contains(&format!("config.toml:{line}:"))
            && e.contains("[github]")
            && e.contains("keep one"),
        "{e}"
    );
    // A config with only [ui] and [keys] is the TUI's demo with the user's keys; a
    // snapshot says it has nothing to fetch.
    write("[ui]\ntheme = \"light\"\n[keys]\ntrigger = \"F5\"\n");
    let e = err(&["snapshot", "--config", cfg]);
    assert!(
        e.contains("has no sources") && e.contains("demo mode"),
        "{e}"
    );
    match snaptop::config::ConfigFile::load(&path).unwrap() {
        snaptop::config::ConfigFile::UiOnly(u) => {
            assert_eq!(u.ui.theme.as_deref(), Some("light"));
            assert!(u.keys.contains_key("trigger"));
        }
        other => panic!("{other:?}"),
    }
    write("[ui]\nthem = \"light\"\n");
    let e = match snaptop::config::ConfigFile::load(&path) {
        Err(e) => e.to_string(),
        Ok(c) => panic!("{c:?}"),
    };
    assert!(e.contains("config.toml:2:") && e.contains("them"), "{e}");
}

#[test]
fn the_readme_sim_flow_works_when_followed_literally() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, as a newcomer would type it.
    let config = dir.path().join("new/dir/sim.toml");
    let mut sim = std::process::Command::new(BIN)
        .args(["sim", "--port", "0", "--write-config"])
        .arg(&config)
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path().join("s"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = sim.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut said = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let serving = line.contains("serving");
        said.push(line);
        if serving {
            break;
        }
    }
    assert!(
        said.iter().any(|l| l.contains("config written to")),
        "{said:#?}"
    );
    // No export: the config names token files (0600) beside it.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("token_file") && !text.contains("token_env"),
        "{text}"
    );
    let out = run_bin(
        dir.path(),
        &["snapshot", "--config", config.to_str().unwrap()],
    );
    let _ = sim.kill();
    let _ = sim.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("readable by others"), "{stderr}");
    assert!(stderr.contains("[100%] complete"), "{stderr}");
}
