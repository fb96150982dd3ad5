//! The TUI's update logic as plain unit tests: engine events and key actions go into
//! `App` (or a tab), and the state that comes out is checked. No terminal involved.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use snaptop::app::action::Action;
use snaptop::app::keymap::KeyMap;
use snaptop::app::{App, Overlay, Startup};
use snaptop::cache::Namespace;
use snaptop::cache::maintenance::Job;
use snaptop::engine::events::{EngineEvent, Level};
use snaptop::engine::model::RunSummary;
use snaptop::ui::snapshot::{NextRun, SnapshotTab};
use snaptop::ui::theme::Theme;
use snaptop::ui::{AppEvent, Effect, Outcome, Tab, sample};
use time::UtcOffset;

mod store_lock;

fn app_with(startup: Startup) -> App {
    App::new(
        startup,
        KeyMap::defaults(),
        Theme::default_theme(),
        UtcOffset::UTC,
    )
}

fn idle_app() -> App {
    app_with(Startup {
        snapshot: Some(sample::snapshot()),
        history: sample::history(),
        demo: false,
        ..Startup::default()
    })
}

fn engine(ev: EngineEvent) -> AppEvent {
    AppEvent::Engine(ev)
}

fn finished(id: u64) -> EngineEvent {
    let mut snapshot = sample::snapshot();
    snapshot.run_id = id;
    snapshot.finished_at = sample::NOW;
    let summary = RunSummary {
        id,
        ..sample::history()[0].clone()
    };
    EngineEvent::Finished {
        summary,
        snapshot: Box::new(snapshot),
    }
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

#[test]
fn tabs_switch_by_number_and_cycle_both_ways() {
    let mut app = idle_app();
    assert_eq!(app.active_index(), 0);
    assert!(app.on_terminal(&key('3')));
    assert_eq!(app.active_tab().title(), "Reports");
    assert!(app.on_action(Action::NextTab));
    assert_eq!(app.active_tab().title(), "Cache");
    assert!(app.on_action(Action::NextTab));
    assert_eq!(app.active_index(), 0, "Tab wraps around");
    assert!(app.on_action(Action::PrevTab));
    assert_eq!(app.active_index(), 3, "Shift-Tab wraps backwards");
    assert!(
        !app.on_action(Action::TabCache),
        "same tab: nothing to redraw"
    );
}

#[test]
fn quit_is_immediate_when_idle_and_asks_while_running() {
    let mut app = idle_app();
    app.on_action(Action::Quit);
    assert!(app.should_quit());

    let mut app = idle_app();
    app.on_event(engine(EngineEvent::Started(Box::new(sample::progress()))));
    assert_eq!(app.running_fraction(), Some(0.42));
    app.on_terminal(&key('q'));
    assert!(!app.should_quit());
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    // Any other key keeps running.
    app.on_terminal(&key('x'));
    assert_eq!(app.overlay, Overlay::None);
    assert!(!app.should_quit());
    // Ctrl-C then `y` quits and cancels the run.
    app.on_terminal(&Event::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    app.on_terminal(&key('y'));
    assert!(app.should_quit());
    assert_eq!(app.take_effects(), vec![Effect::Cancel]);
}

fn help_scroll(app: &App) -> snaptop::ui::widgets::Scroll {
    match app.overlay {
        Overlay::Help { scroll } => scroll,
        other => panic!("help is not open: {other:?}"),
    }
}

#[test]
fn help_opens_scrolls_and_closes() {
    let mut app = idle_app();
    app.on_terminal(&key('?'));
    assert_eq!(help_scroll(&app).offset(), 0);
    app.on_action(Action::Down);
    assert_eq!(help_scroll(&app).offset(), 1);
    // Keys of the tab below do nothing while help is open.
    assert!(!app.on_action(Action::Trigger));
    assert!(app.take_effects().is_empty());
    app.on_action(Action::Back);
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn help_scroll_stops_at_the_end_so_no_press_is_dead() {
    let mut app = idle_app();
    app.on_terminal(&Event::Resize(80, 24));
    app.on_terminal(&key('?'));
    assert!(!app.on_action(Action::Up), "at the top: nothing to redraw");
    let max = help_scroll(&app).max_offset();
    assert!(max > 0, "the help is longer than an 80×24 pane");
    for _ in 0..100 {
        app.on_action(Action::Down);
    }
    assert_eq!(help_scroll(&app).offset(), max);
    assert!(
        !app.on_action(Action::Down),
        "at the end: nothing to redraw"
    );
    // The first press back up moves at once.
    assert!(app.on_action(Action::Up));
    assert_eq!(help_scroll(&app).offset(), max - 1);
    // A page keeps one line of the last one in view.
    assert!(app.on_action(Action::PageUp));
    assert_eq!(help_scroll(&app).offset(), (max - 1).saturating_sub(17));
    app.on_action(Action::PageUp);
    assert_eq!(help_scroll(&app).offset(), 0);
    assert!(app.on_action(Action::PageDown));
    // A taller pane shows more: the end comes sooner, and the offset stays inside it.
    app.on_action(Action::PageDown);
    app.on_action(Action::PageDown);
    app.on_terminal(&Event::Resize(80, 40));
    let s = help_scroll(&app);
    assert_eq!(s.offset(), s.max_offset());
    assert!(s.max_offset() < max);
    app.on_terminal(&Event::Resize(80, 200));
    assert_eq!(help_scroll(&app).offset(), 0);
    assert!(!app.on_action(Action::Down), "everything fits");
}

#[test]
fn trigger_asks_the_engine_and_a_second_trigger_only_says_so() {
    let mut app = idle_app();
    app.on_terminal(&key('r'));
    assert_eq!(app.take_effects(), vec![Effect::Trigger]);
    app.on_event(engine(EngineEvent::Started(Box::new(sample::progress()))));
    app.on_terminal(&key('r'));
    assert!(
        app.take_effects().is_empty(),
        "no second trigger while running"
    );
    let msg = app.message().expect("a message").text.clone();
    assert!(msg.contains("already running"), "{msg}");
    // The next key press clears the message.
    assert!(app.on_terminal(&key('x')));
    assert!(app.message().is_none());
    // The engine coalescing a trigger says so too.
    app.on_event(engine(EngineEvent::AlreadyRunning));
    assert!(app.message().unwrap().text.contains("already running"));
}

#[test]
fn cancel_only_while_running() {
    let mut app = idle_app();
    app.on_terminal(&key('c'));
    assert!(app.take_effects().is_empty());
    assert!(
        app.message()
            .unwrap()
            .text
            .contains("no snapshot is running")
    );
    app.on_event(engine(EngineEvent::Started(Box::new(sample::progress()))));
    app.on_terminal(&key('c'));
    assert_eq!(app.take_effects(), vec![Effect::Cancel]);
}

#[test]
fn finished_run_updates_header_history_and_message() {
    let mut app = idle_app();
    let before = app.data_as_of();
    app.on_event(engine(EngineEvent::Started(Box::new(sample::progress()))));
    assert!(app.on_event(engine(finished(43))));
    assert_eq!(app.running_fraction(), None);
    assert_eq!(app.data_as_of(), Some(sample::NOW));
    assert_ne!(app.data_as_of(), before);
    let m = app.message().unwrap();
    assert_eq!(m.level, Level::Info);
    assert!(m.text.contains("#43"), "{}", m.text);
}

#[test]
fn cancelled_and_failed_runs_are_told_apart() {
    let mut app = idle_app();
    let EngineEvent::Finished {
        summary,
        mut snapshot,
    } = finished(44)
    else {
        unreachable!()
    };
    snapshot.cancelled = true;
    snapshot.partial = true;
    app.on_event(engine(EngineEvent::Finished { summary, snapshot }));
    let m = app.message().unwrap();
    assert_eq!(m.level, Level::Warn);
    assert!(
        m.text.contains("cancelled") && m.text.contains("partial"),
        "{}",
        m.text
    );

    let mut summary = sample::history()[0].clone();
    summary.id = 45;
    app.on_event(engine(EngineEvent::Failed {
        summary,
        error: "store: disk full \u{1b}[2J".into(),
    }));
    let m = app.message().unwrap();
    assert_eq!(m.level, Level::Error);
    assert!(m.text.contains("disk full"));
    assert!(!m.text.contains('\u{1b}'), "sanitised: {:?}", m.text);
}

#[test]
fn progress_redraws_only_when_the_visible_percent_changes() {
    let mut app = idle_app();
    app.on_action(Action::TabCache);
    let mut p = sample::progress();
    assert!(app.on_event(engine(EngineEvent::Started(Box::new(p.clone())))));
    p.fraction = 0.421;
    assert!(
        !app.on_event(engine(EngineEvent::Progress(Box::new(p.clone())))),
        "same whole percent on another tab: no frame"
    );
    p.fraction = 0.43;
    assert!(app.on_event(engine(EngineEvent::Progress(Box::new(p)))));
}

#[test]
fn snapshot_tab_cursor_moves_within_the_matrix_and_opens_details() {
    let mut tab = SnapshotTab::new(Some(sample::snapshot()), sample::history());
    assert_eq!(tab.cursor(), (0, 0));
    assert_eq!(
        tab.handle_key(Action::Up),
        Outcome::Ignored,
        "already at the top"
    );
    assert_eq!(tab.handle_key(Action::Left), Outcome::Ignored);
    for _ in 0..10 {
        tab.handle_key(Action::Down);
        tab.handle_key(Action::Right);
    }
    assert_eq!(
        tab.cursor(),
        (4, 2),
        "stops at the last component and environment"
    );
    assert_eq!(tab.handle_key(Action::Open), Outcome::Redraw);
    assert!(tab.detail_open());
    assert_eq!(tab.hints(), vec![Action::Up, Action::Down, Action::Back]);
    // Up/down scroll the detail view, not the cursor.
    tab.handle_key(Action::Up);
    assert_eq!(tab.cursor(), (4, 2));
    assert_eq!(tab.handle_key(Action::Back), Outcome::Redraw);
    assert!(!tab.detail_open());
}

#[test]
fn snapshot_tab_without_data_has_nothing_to_open() {
    let mut tab = SnapshotTab::new(None, vec![]);
    assert_eq!(tab.handle_key(Action::Down), Outcome::Ignored);
    assert!(matches!(tab.handle_key(Action::Open), Outcome::Say(_)));
    assert!(!tab.detail_open());
}

#[test]
fn snapshot_tab_follows_a_run_from_start_to_finish() {
    let mut tab = SnapshotTab::new(None, vec![]);
    assert!(tab.on_event(&engine(EngineEvent::Schedule(None))));
    assert_eq!(tab.next_run(), NextRun::ManualOnly);
    tab.on_event(&engine(EngineEvent::Started(Box::new(sample::progress()))));
    assert!(tab.is_running());
    assert_eq!(
        tab.hints(),
        vec![
            Action::Cancel,
            Action::Up,
            Action::Down,
            Action::Open,
            Action::NextView
        ]
    );
    for line in sample::log() {
        tab.on_event(&engine(EngineEvent::Log(line)));
    }
    assert_eq!(tab.log().count(), 4);
    tab.on_event(&engine(finished(43)));
    assert!(!tab.is_running());
    assert_eq!(tab.snapshot().unwrap().run_id, 43);
    assert_eq!(tab.history()[0].id, 43);
    assert_eq!(
        tab.log().count(),
        4,
        "the run's log stays readable after it ends"
    );
    // A new run starts a new log.
    tab.on_event(&engine(EngineEvent::Started(Box::new(sample::progress()))));
    assert_eq!(tab.log().count(), 0);
}

#[test]
fn log_is_bounded() {
    let mut tab = SnapshotTab::new(None, vec![]);
    let line = sample::log().remove(0);
    for _ in 0..snaptop::ui::snapshot::LOG_LINES + 20 {
        tab.on_event(&engine(EngineEvent::Log(line.clone())));
    }
    // Bounded in lines and in bytes, whichever comes first.
    let kept = tab.log().count();
    assert!(
        kept <= snaptop::ui::snapshot::LOG_LINES && kept > 1_000,
        "{kept}"
    );
    let bytes: usize = tab
        .log()
        .map(|l| l.message.len() + l.source.len() + 32)
        .sum();
    assert!(bytes <= snaptop::ui::snapshot::log::LOG_BYTES, "{bytes}");
}

/// Between two visible words, every kind of sequence a hostile PR title, ticket
/// summary, tag, error body or log line could carry: CSI (clear screen), OSC (set the
/// window title), a C1 CSI, a C1 control, bidi overrides, a carriage return, a
/// backspace. What must reach the screen is `"{before} {after}"`.
fn hostile(before: &str, after: &str) -> String {
    format!("{before}\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}2J\u{85}\u{202e}\u{2066}\r\u{8}{after}")
}

/// What a sequence leaves behind when only its ESC is replaced.
const LEFTOVERS: [&str; 4] = ["]0;", "pwned", "[2J", "2J"];

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Draws `app` at 160×48 and checks that no cell holds a control character (C0, ESC,
/// DEL, C1) or a bidi control, that no leftover of a sequence is drawn, and that the
/// visible words around every sequence are.
fn assert_drawn_clean(app: &App, what: &str, visible: &[&str]) {
    let (w, h) = (160, 48);
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    t.draw(|f| snaptop::ui::draw(f, app, sample::NOW)).unwrap();
    let buf = t.backend().buffer();
    for y in 0..h {
        for x in 0..w {
            let symbol = buf[(x, y)].symbol();
            assert!(
                !symbol.chars().any(|c| c.is_control() || is_bidi_control(c)),
                "{what}: {symbol:?} drawn at ({x}, {y})"
            );
        }
    }
    let text = screen(app, w, h);
    for leftover in LEFTOVERS {
        assert!(
            !text.contains(leftover),
            "{what}: {leftover:?} on screen:\n{text}"
        );
    }
    for v in visible {
        assert!(text.contains(v), "{what}: {v:?} not on screen:\n{text}");
    }
}

#[test]
fn hostile_text_reaches_no_cell_of_the_snapshot_tab() {
    // Stored data (read from the store at start) and engine events both. The cell is
    // edited as JSON, as a store would hold it: checkout in dev, one ticket.
    let mut snapshot = serde_json::to_value(sample::snapshot()).unwrap();
    let cell = &mut snapshot["cells"]["dev"]["checkout"];
    cell["tag"] = hostile("v9", "x1").into();
    cell["tickets"][0]["summary"] = hostile("Refund", "rounding").into();
    let events = cell["events"].as_array_mut().unwrap();
    events.last_mut().unwrap()["to"] = hostile("v8", "y2").into();
    let mut snapshot: snaptop::engine::model::Snapshot = serde_json::from_value(snapshot).unwrap();
    snapshot.partial = true;
    snapshot.failures = vec![snaptop::engine::model::Failure {
        message: hostile("Bad", "Gateway"),
        ..sample::failure()
    }];
    let mut app = app_with(Startup {
        snapshot: Some(snapshot),
        history: sample::history(),
        ..Startup::default()
    });
    assert_drawn_clean(
        &app,
        "idle matrix",
        &["v9 x1", "1 failed: 503 Service Unavailable: Jira"],
    );
    // The failure's own message, in the failures view (log pane, Enter).
    app.on_action(Action::Log);
    app.on_action(Action::NextView);
    app.on_action(Action::Open);
    assert_drawn_clean(&app, "failures view", &["Bad Gateway"]);
    app.on_action(Action::Back);
    app.on_action(Action::Back);
    app.on_action(Action::Log);

    app.on_action(Action::Down);
    app.on_action(Action::Open);
    assert_drawn_clean(&app, "detail view", &["Refund rounding", "v8 y2"]);
    app.on_action(Action::Back);

    app.on_event(engine(EngineEvent::Started(Box::new(sample::progress()))));
    let mut line = sample::log().remove(0);
    line.source = hostile("Ji", "ra");
    line.message = hostile("source", "failed");
    app.on_event(engine(EngineEvent::Log(line)));
    assert_drawn_clean(&app, "run log", &["Ji ra", "source failed"]);

    let mut summary = sample::history()[0].clone();
    summary.id = 45;
    summary.error = Some(hostile("disk", "full"));
    app.on_event(engine(EngineEvent::Failed {
        summary,
        error: hostile("disk", "full"),
    }));
    assert_drawn_clean(
        &app,
        "failed run",
        &["last error: disk full", "snapshot #45 failed: disk full"],
    );
}

/// The real Locust 2.47 run with hostile text in its endpoint names, failure messages
/// and an exception (CSV quoting keeps the carriage returns inside the fields).
fn write_hostile_run(dir: &std::path::Path) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locust/2.47");
    for kind in ["stats", "stats_history", "failures", "exceptions"] {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(src.join(format!("api_{kind}.csv")))
            .unwrap();
        let mut writer = csv::Writer::from_path(dir.join(format!("api_{kind}.csv"))).unwrap();
        for record in reader.records() {
            let record: Vec<String> = record
                .unwrap()
                .iter()
                .map(|field| match field {
                    "alerts_list" => hostile("alerts", "list"),
                    f if f.contains("Internal Server Error") => hostile("HTTPError", "500"),
                    f => f.to_string(),
                })
                .collect();
            writer.write_record(&record).unwrap();
        }
        if kind == "exceptions" {
            writer
                .write_record([
                    "3",
                    &hostile("Boom", "crash"),
                    &format!("Traceback:\n  {}\n", hostile("File", "locustfile.py")),
                    "local",
                ])
                .unwrap();
        }
        writer.flush().unwrap();
    }
    dir.join("api")
}

#[test]
fn hostile_text_reaches_no_cell_of_the_reports_tab() {
    use snaptop::report::{ReportRequest, build_report};
    let dir = tempfile::tempdir().unwrap();
    let request = ReportRequest {
        inputs: vec![write_hostile_run(dir.path())],
        ..ReportRequest::default()
    };
    let result = build_report(&request, None).map_err(|e| e.to_string());
    assert!(result.is_ok(), "{result:?}");
    let mut app = idle_app();
    app.on_action(Action::TabReports);
    app.on_event(AppEvent::ReportLoading {
        seq: 1,
        request: request.clone(),
        reload: false,
    });
    app.on_event(AppEvent::ReportLoaded(Box::new(snaptop::ui::ReportLoad {
        seq: 1,
        request,
        reload: false,
        at: sample::NOW,
        result,
    })));
    // Endpoints, findings, advice, targets, over time, failures, exceptions, compare.
    let visible: [&[&str]; 8] = [
        &["alerts list"],
        &[],
        &[],
        &[],
        &[],
        &["HTTPError 500"],
        &["Boom crash", "File locustfile.py"],
        &[],
    ];
    for (view, visible) in visible.iter().enumerate() {
        assert_drawn_clean(&app, &format!("Reports view {view}"), visible);
        app.on_action(Action::NextView);
    }

    // A load error is outside text too (a path, a CSV's own words).
    app.on_event(AppEvent::ReportLoading {
        seq: 2,
        request: ReportRequest::default(),
        reload: false,
    });
    app.on_event(AppEvent::ReportLoaded(Box::new(snaptop::ui::ReportLoad {
        seq: 2,
        request: ReportRequest::default(),
        reload: false,
        at: sample::NOW,
        result: Err(hostile("bad", "csv")),
    })));
    assert_drawn_clean(&app, "Reports load error", &["bad csv"]);
}

#[test]
fn idle_screen_wakes_only_when_a_relative_time_changes() {
    let app = idle_app();
    let secs = std::time::Duration::from_secs;
    // The data is 7m old: "7m ago" becomes "8m ago" in 60 s...
    let next = app.next_change(sample::NOW).expect("a clock is visible");
    assert!(next > secs(59) && next <= secs(61), "{next:?}");
    // ...and 25 s later, in 35 s.
    let later = sample::NOW + time::Duration::seconds(25);
    let next = app.next_change(later).unwrap();
    assert!(next > secs(34) && next <= secs(36), "{next:?}");
    // Nothing on screen depends on the clock without data.
    let empty = app_with(Startup::default());
    assert_eq!(empty.next_change(sample::NOW), None);
}

fn cache_report() -> AppEvent {
    AppEvent::CacheReport(Box::new(sample::cache_report()))
}

#[test]
fn cache_tab_refresh_is_an_effect_not_io() {
    let mut app = idle_app();
    app.on_action(Action::TabCache);
    app.on_event(cache_report());
    app.on_terminal(&key('u'));
    assert_eq!(app.take_effects(), vec![Effect::RefreshCache]);
    // A second refresh before the first answer does not pile up.
    app.on_terminal(&key('u'));
    assert!(app.take_effects().is_empty());
}

#[test]
fn cache_tab_reloads_its_figures_when_opened_when_a_run_ends_and_after_a_job() {
    let mut app = idle_app();
    // The loop's load at start is in flight: opening the tab does not ask twice.
    app.on_action(Action::TabCache);
    assert!(app.take_effects().is_empty());
    app.on_event(cache_report());
    // Opened again later: the figures are read again.
    app.on_action(Action::TabSnapshot);
    assert!(app.take_effects().is_empty(), "other tabs ask for nothing");
    app.on_action(Action::TabCache);
    assert_eq!(app.take_effects(), vec![Effect::RefreshCache]);
    app.on_event(cache_report());
    // A run ends, the tab hidden or not: it moved the counters.
    app.on_action(Action::TabSnapshot);
    app.on_event(engine(finished(43)));
    assert_eq!(app.take_effects(), vec![Effect::RefreshCache]);
    app.on_event(cache_report());
    app.on_event(engine(EngineEvent::Failed {
        summary: sample::history()[0].clone(),
        error: "github: 401".into(),
    }));
    assert_eq!(app.take_effects(), vec![Effect::RefreshCache]);
    // A run that ends while a load is in flight: one more load once it lands, since
    // the figures in flight may predate the run's end.
    app.on_event(engine(finished(44)));
    assert!(app.take_effects().is_empty());
    app.on_event(cache_report());
    assert_eq!(app.take_effects(), vec![Effect::RefreshCache]);
    app.on_event(cache_report());
    assert!(app.take_effects().is_empty(), "and no more");
    // A job's end: the footer says what went, the figures are read again.
    let done = snaptop::cache::maintenance::Done {
        job: Job::PurgeExpired,
        entries: 2,
        bytes: 3 << 20,
        files: None,
    };
    assert!(app.on_event(AppEvent::CacheJobDone(Ok(done))));
    assert_eq!(app.take_effects(), vec![Effect::RefreshCache]);
    assert_eq!(
        app.message().unwrap().text,
        "purged expired entries: 2 entries, 3.0 MiB"
    );
}

#[test]
fn cache_tab_clear_asks_first_and_no_keeps_everything() {
    let mut app = idle_app();
    app.on_action(Action::TabCache);
    app.on_event(cache_report());
    app.take_effects();
    // `l` moves to github; `d` asks; while it asks, `q` and `2` do not leave.
    app.on_terminal(&key('l'));
    app.on_terminal(&key('d'));
    assert!(app.take_effects().is_empty(), "nothing happens before yes");
    assert!(screen(&app, 80, 24).contains("Clear the github namespace?"));
    app.on_terminal(&key('2'));
    assert_eq!(app.active_tab().title(), "Cache");
    app.on_terminal(&key('n'));
    assert!(app.take_effects().is_empty());
    assert!(!screen(&app, 80, 24).contains("Clear the github"));
    assert!(!app.should_quit());
    // Esc declines too; y says yes.
    app.on_terminal(&key('d'));
    app.on_terminal(&Event::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    assert!(app.take_effects().is_empty());
    app.on_terminal(&key('d'));
    app.on_terminal(&key('y'));
    assert_eq!(
        app.take_effects(),
        vec![Effect::CacheJob(Job::ClearNamespace(Namespace::GitHub))]
    );
    // `p` asks about a purge; Enter says yes.
    app.on_event(AppEvent::CacheJobDone(Err("gone".into())));
    app.take_effects();
    assert!(
        app.message()
            .unwrap()
            .text
            .contains("cache job failed: gone")
    );
    app.on_terminal(&key('p'));
    app.on_terminal(&Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    assert_eq!(
        app.take_effects(),
        vec![Effect::CacheJob(Job::PurgeExpired)]
    );
}

#[test]
fn cache_tab_says_no_lookups_never_zero_percent() {
    let mut app = idle_app();
    app.on_action(Action::TabCache);
    app.on_event(cache_report());
    // The registry was never asked.
    for _ in 0..5 {
        app.on_terminal(&key('l'));
    }
    let text = screen(&app, 120, 40);
    let rates = text
        .lines()
        .find(|l| l.contains("lifetime ") && l.contains("last run (#42)"))
        .unwrap_or_else(|| panic!("no rates line:\n{text}"));
    assert_eq!(rates.matches("no lookups").count(), 3, "{rates}");
    assert!(!rates.contains('%'), "{rates}");
    // Without any run recorded, every window says so.
    let mut empty = idle_app();
    empty.on_action(Action::TabCache);
    empty.on_event(AppEvent::CacheReport(Box::default()));
    let text = screen(&empty, 80, 24);
    assert!(text.contains("no runs recorded yet"), "{text}");
    assert!(!text.contains("0.0%"), "{text}");
    assert!(!text.contains("Coming here"));
}

#[test]
fn cache_tab_source_rows_add_up_to_the_all_row() {
    let mut app = idle_app();
    app.on_action(Action::TabCache);
    app.on_event(cache_report());
    let text = screen(&app, 120, 40);
    let row = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find_map(|l| {
                let i = l.find(&format!("│{name} "))?;
                Some(l[i..].to_string())
            })
            .unwrap_or_else(|| panic!("no {name} row:\n{text}"));
        line.trim_matches(|c| c == '│' || c == ' ')
            .split_whitespace()
            .map(|c| c.replace(',', ""))
            .collect()
    };
    let all = row("all");
    // entries and budget saved (bytes are rounded per row).
    for col in [1, 4] {
        let sum: u64 = ["github", "teamcity", "datadog", "jira", "registry"]
            .iter()
            .map(|s| row(s)[col].parse::<u64>().unwrap())
            .sum();
        assert_eq!(all[col], sum.to_string(), "column {col}:\n{text}");
    }
}

#[test]
fn mouse_wheel_moves_and_a_click_on_the_tab_bar_switches() {
    use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mouse = |kind, column, row| {
        Event::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    let mut app = idle_app();
    // " 1 Snapshot " is 12 wide, then a space: column 15 is in " 2 Schedule ".
    assert!(app.on_terminal(&mouse(MouseEventKind::Down(MouseButton::Left), 15, 0)));
    assert_eq!(app.active_tab().title(), "Schedule");
    assert!(!app.on_terminal(&mouse(MouseEventKind::Down(MouseButton::Left), 15, 5)));
    assert!(!app.on_terminal(&mouse(MouseEventKind::Down(MouseButton::Left), 79, 0)));
    app.on_action(Action::TabSnapshot);
    assert!(app.on_terminal(&mouse(MouseEventKind::ScrollDown, 10, 10)));
    assert!(!app.on_terminal(&mouse(MouseEventKind::Moved, 10, 10)));
}

#[test]
fn last_run_log_can_replace_the_history_and_scroll_back() {
    let mut tab = SnapshotTab::new(Some(sample::snapshot()), sample::history());
    tab.on_event(&engine(EngineEvent::Started(Box::new(sample::progress()))));
    for _ in 0..10 {
        for line in sample::log() {
            tab.on_event(&engine(EngineEvent::Log(line)));
        }
    }
    assert!(tab.log_shown(), "the log is on screen while a run goes");
    assert_eq!(tab.handle_key(Action::PageUp), Outcome::Redraw);
    assert_eq!(tab.log_scrolled_back(), 10);
    // New lines do not move what a reader scrolled back to.
    tab.on_event(&engine(EngineEvent::Log(sample::log().remove(0))));
    assert_eq!(tab.log_scrolled_back(), 11);
    for _ in 0..10 {
        tab.handle_key(Action::PageUp);
    }
    assert_eq!(
        tab.log_scrolled_back(),
        31,
        "a whole page stays in view: 41 lines, 10 a page"
    );
    tab.on_event(&engine(finished(43)));
    assert!(!tab.log_shown(), "idle: the history is shown");
    assert_eq!(tab.handle_key(Action::PageUp), Outcome::Ignored);
    assert_eq!(tab.handle_key(Action::Log), Outcome::Redraw);
    assert!(tab.log_shown());
    assert_eq!(tab.log_scrolled_back(), 0, "the log opens at its end");
    assert!(tab.hints().contains(&Action::Log));
    tab.handle_key(Action::PageUp);
    assert_eq!(tab.handle_key(Action::PageDown), Outcome::Redraw);
    assert_eq!(
        tab.handle_key(Action::PageDown),
        Outcome::Ignored,
        "already at the end"
    );
}

#[test]
fn an_open_prompt_takes_the_keys_that_are_global_elsewhere() {
    let mut app = idle_app();
    app.on_terminal(&key('3'));
    assert!(!app.active_tab().takes_text());
    assert!(app.on_terminal(&key('o')));
    assert!(app.active_tab().takes_text());
    // Quit, tab numbers, help and Tab-as-next-tab all stay in the prompt.
    for c in ['q', '1', '?'] {
        assert!(app.on_terminal(&key(c)));
    }
    app.on_terminal(&Event::Key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)));
    assert!(!app.should_quit());
    assert_eq!(app.active_tab().title(), "Reports");
    assert_eq!(app.overlay, Overlay::None);
    // Tab asked for completions of what was typed.
    assert_eq!(app.take_effects(), [Effect::CompletePath("q1?".into())]);
    // Enter hands the typed path to the loop; the global keys work again.
    app.on_terminal(&Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    let effects = app.take_effects();
    assert!(
        matches!(&effects[..], [Effect::LoadReport(r)] if r.inputs == [std::path::PathBuf::from("q1?")]),
        "{effects:?}"
    );
    assert!(!app.active_tab().takes_text());
    app.on_terminal(&key('1'));
    assert_eq!(app.active_index(), 0);
    // Ctrl-C in a prompt leaves the prompt, not the program.
    app.on_terminal(&key('3'));
    app.on_terminal(&key('o'));
    app.on_terminal(&Event::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(!app.should_quit());
    assert!(!app.active_tab().takes_text());
}

/// The screen as text, one line per row.
fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    t.draw(|f| snaptop::ui::draw(f, app, sample::NOW)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_store_whose_latest_snapshot_does_not_read_back_still_starts_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let id = {
        let store = snaptop::store::Store::open(&path, 8).unwrap();
        let id = store.next_run_id().unwrap();
        let mut snapshot = sample::snapshot();
        snapshot.run_id = id;
        let summary = RunSummary {
            id,
            ..sample::history()[0].clone()
        };
        store.commit_run(&summary, Some(&snapshot)).unwrap();
        store.flush_blocking().unwrap();
        id
    };
    store_lock::wait_released(&path);
    {
        // Garbage where the only snapshot was: nothing to fall back to.
        let db = sled::open(&path).unwrap();
        db.open_tree("snapshots")
            .unwrap()
            .insert(id.to_be_bytes(), &b"{\"run_id\": tru"[..])
            .unwrap();
        db.flush().unwrap();
    }
    store_lock::wait_released(&path);
    let store = snaptop::store::Store::open(&path, 8).unwrap();
    let startup = snaptop::app::run::read_startup(&store).expect("not an error");
    assert!(startup.snapshot.is_none());
    assert_eq!(startup.history.len(), 1, "the run itself is still listed");
    let app = app_with(startup);
    let m = app.message().expect("an error line");
    assert_eq!(m.level, Level::Error);
    let text = screen(&app, 200, 30);
    for needle in [
        format!("store {}", path.display()),
        "the latest snapshot could not be read (no snapshot to show".to_string(),
        "No snapshot yet".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not on screen:\n{text}");
    }
}

#[test]
fn the_next_snapshot_follows_the_schedule_status() {
    use snaptop::engine::scheduler::ScheduleStatus;
    let mut tab = SnapshotTab::new(None, vec![]);
    let at = time::macros::datetime!(2026-12-01 10:30 UTC);
    let status = |enabled, paused, next_at| {
        engine(EngineEvent::Schedule(Some(Box::new(ScheduleStatus {
            enabled,
            paused,
            next_at,
            next_rule: next_at.map(|_| "business".to_string()),
            next_business: true,
            skipped: 0,
            settings: Default::default(),
            runs: Default::default(),
            seed: snaptop::schedule::Seed::NONE,
        }))))
    };
    assert!(tab.on_event(&status(true, false, Some(at))));
    assert_eq!(tab.next_run(), NextRun::At(at));
    tab.on_event(&status(true, true, None));
    assert_eq!(tab.next_run(), NextRun::Paused);
    assert_eq!(tab.next_run().word(), Some("paused"));
    tab.on_event(&status(false, false, None));
    assert_eq!(tab.next_run(), NextRun::Disabled);
}

mod schedule_tab {
    use super::*;
    use snaptop::engine::scheduler::ScheduleStatus;
    use snaptop::schedule::{Key, Layer, Origin, Runs, Seed, Settings};
    use snaptop::ui::schedule::ScheduleTab;

    fn status(file: Layer, store: Layer, paused: bool) -> AppEvent {
        engine(EngineEvent::Schedule(Some(Box::new(ScheduleStatus {
            enabled: true,
            paused,
            next_at: None,
            next_rule: None,
            next_business: false,
            skipped: 0,
            settings: Settings { file, store },
            runs: Runs::default(),
            seed: Seed::NONE,
        }))))
    }

    fn file() -> Layer {
        Layer::from([
            (Key::IntervalBusiness, "20m".to_string()),
            (Key::Timezone, "UTC".to_string()),
        ])
    }

    fn tab() -> ScheduleTab {
        let mut tab = ScheduleTab::new(Vec::new());
        let store = Layer::from([(Key::CooldownAfterManual, "10m".to_string())]);
        tab.on_event(&status(file(), store, false));
        tab
    }

    fn press(tab: &mut ScheduleTab, code: KeyCode) -> Outcome {
        let keys = KeyMap::defaults();
        let ev = KeyEvent::new(code, KeyModifiers::NONE);
        if tab.takes_text() {
            let action = keys.action_in(&ev, Some(tab.group()));
            tab.handle_text(&ev, action)
        } else {
            match keys.action_in(&ev, Some(tab.group())) {
                Some(a) => tab.handle_key(a),
                None => Outcome::Ignored,
            }
        }
    }

    fn type_text(tab: &mut ScheduleTab, text: &str) {
        for c in text.chars() {
            press(tab, KeyCode::Char(c));
        }
    }

    fn ctrl_s(tab: &mut ScheduleTab) -> Outcome {
        let ev = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
        if tab.takes_text() {
            tab.handle_text(&ev, Some(Action::Save))
        } else {
            tab.handle_key(Action::Save)
        }
    }

    /// Selects `key` (from the top) and opens it for typing with the text cleared.
    fn edit(tab: &mut ScheduleTab, key: Key) {
        while tab.selected() != key {
            assert_ne!(
                press(tab, KeyCode::Down),
                Outcome::Ignored,
                "{key} not found"
            );
        }
        press(tab, KeyCode::Enter);
        assert!(tab.is_editing());
        for _ in 0..tab.draft(key).chars().count() {
            press(tab, KeyCode::Backspace);
        }
    }

    #[test]
    fn values_show_where_they_come_from() {
        let tab = tab();
        assert_eq!(
            tab.in_force(Key::IntervalBusiness),
            ("20m".to_string(), Origin::Config)
        );
        assert_eq!(tab.in_force(Key::CooldownAfterManual).1, Origin::Store);
        assert_eq!(tab.in_force(Key::Jitter).1, Origin::Default);
        assert_eq!(tab.draft(Key::IntervalBusiness), "20m");
        assert!(!tab.is_dirty());
    }

    #[test]
    fn arrows_and_vim_keys_move_between_fields_and_stop_at_the_ends() {
        let mut tab = tab();
        assert_eq!(tab.selected(), Key::Enabled);
        assert_eq!(press(&mut tab, KeyCode::Up), Outcome::Ignored);
        press(&mut tab, KeyCode::Char('j'));
        press(&mut tab, KeyCode::Down);
        assert_eq!(tab.selected(), Key::IntervalOffHours);
        press(&mut tab, KeyCode::Char('k'));
        assert_eq!(tab.selected(), Key::IntervalBusiness);
        for _ in 0..20 {
            press(&mut tab, KeyCode::Down);
        }
        assert_eq!(tab.selected(), Key::AdaptiveFloor);
    }

    #[test]
    fn typing_validates_at_once_and_esc_restores_the_field() {
        let mut tab = tab();
        edit(&mut tab, Key::IntervalBusiness);
        type_text(&mut tab, "30s");
        let e = tab.error(Key::IntervalBusiness).expect("too short");
        assert!(e.contains("shorter than the shortest interval"), "{e}");
        assert!(tab.is_changed(Key::IntervalBusiness));
        // j and k are text while typing, not moves.
        type_text(&mut tab, "jk");
        assert_eq!(tab.draft(Key::IntervalBusiness), "30sjk");
        assert_eq!(tab.selected(), Key::IntervalBusiness);
        press(&mut tab, KeyCode::Esc);
        assert!(!tab.is_editing());
        assert_eq!(tab.draft(Key::IntervalBusiness), "20m");
        assert_eq!(tab.error(Key::IntervalBusiness), None);
        assert!(!tab.is_dirty());
    }

    #[test]
    fn a_cross_field_error_is_shown_on_the_field_it_is_about() {
        let mut tab = tab();
        edit(&mut tab, Key::End);
        type_text(&mut tab, "08:00");
        assert!(
            tab.error(Key::End)
                .is_some_and(|e| e.contains("ends when it starts"))
        );
        // Enter leaves the field keeping the draft.
        press(&mut tab, KeyCode::Enter);
        assert!(!tab.is_editing());
        assert_eq!(tab.draft(Key::End), "08:00");
        let out = ctrl_s(&mut tab);
        let Outcome::Say(msg) = out else {
            panic!("{out:?}")
        };
        assert!(msg.contains("not saved") && msg.contains("end"), "{msg}");
    }

    #[test]
    fn space_and_enter_toggle_booleans() {
        let mut tab = tab();
        assert_eq!(tab.draft(Key::Enabled), "true");
        press(&mut tab, KeyCode::Char(' '));
        assert_eq!(tab.draft(Key::Enabled), "false");
        assert!(tab.is_changed(Key::Enabled));
        press(&mut tab, KeyCode::Enter);
        assert_eq!(tab.draft(Key::Enabled), "true");
        assert!(!tab.is_dirty());
    }

    #[test]
    fn the_day_picker_moves_and_toggles_days() {
        let mut tab = tab();
        while tab.selected() != Key::Days {
            press(&mut tab, KeyCode::Down);
        }
        assert_eq!(tab.draft(Key::Days), "mon-fri");
        press(&mut tab, KeyCode::Char('l'));
        press(&mut tab, KeyCode::Right);
        assert_eq!(tab.picked_day(), 2);
        press(&mut tab, KeyCode::Char(' '));
        assert_eq!(tab.draft(Key::Days), "mon,tue,thu,fri");
        for _ in 0..10 {
            press(&mut tab, KeyCode::Right);
        }
        assert_eq!(tab.picked_day(), 6, "stops at Sunday");
        press(&mut tab, KeyCode::Enter);
        assert_eq!(tab.draft(Key::Days), "mon,tue,thu,fri,sun");
        assert!(tab.error(Key::Days).is_none());
    }

    #[test]
    fn ctrl_s_saves_changed_keys_over_the_saved_edits_and_drops_those_back_at_the_file_value() {
        let mut tab = tab();
        edit(&mut tab, Key::IntervalBusiness);
        type_text(&mut tab, "45m");
        press(&mut tab, KeyCode::Enter);
        // The saved edit set back to the default: it goes back to coming from there.
        edit(&mut tab, Key::CooldownAfterManual);
        type_text(&mut tab, "5m");
        let out = ctrl_s(&mut tab);
        assert!(
            !tab.is_editing(),
            "Ctrl-S while typing keeps the text and saves"
        );
        assert_eq!(
            out,
            Outcome::Do(Effect::SaveSchedule(Layer::from([(
                Key::IntervalBusiness,
                "45m".to_string()
            )])))
        );
        // A value typed back to the file's leaves no edit either.
        let mut tab = self::tab();
        edit(&mut tab, Key::IntervalBusiness);
        type_text(&mut tab, "20m ");
        assert!(!tab.is_changed(Key::IntervalBusiness));
        press(&mut tab, KeyCode::Enter);
        edit(&mut tab, Key::Timezone);
        type_text(&mut tab, "Europe/Berlin");
        let Outcome::Do(Effect::SaveSchedule(layer)) = ctrl_s(&mut tab) else {
            panic!("saves")
        };
        assert_eq!(
            layer,
            Layer::from([
                (Key::CooldownAfterManual, "10m".to_string()),
                (Key::Timezone, "Europe/Berlin".to_string()),
            ])
        );
    }

    #[test]
    fn the_engines_answer_makes_saved_fields_clean_and_marks_them_saved_edits() {
        let mut tab = tab();
        edit(&mut tab, Key::IntervalBusiness);
        type_text(&mut tab, "45m");
        let Outcome::Do(Effect::SaveSchedule(layer)) = ctrl_s(&mut tab) else {
            panic!("saves")
        };
        assert!(tab.on_event(&status(file(), layer, false)));
        assert!(!tab.is_dirty());
        assert_eq!(
            tab.in_force(Key::IntervalBusiness),
            ("45m".to_string(), Origin::Store)
        );
        assert_eq!(
            ctrl_s(&mut tab),
            Outcome::Say("nothing to save: no field was changed".into())
        );
    }

    #[test]
    fn ctrl_s_with_an_invalid_draft_is_refused_naming_the_field() {
        let mut tab = tab();
        edit(&mut tab, Key::Jitter);
        type_text(&mut tab, "90%");
        press(&mut tab, KeyCode::Enter);
        press(&mut tab, KeyCode::Up);
        let out = ctrl_s(&mut tab);
        let Outcome::Say(msg) = out else {
            panic!("{out:?}")
        };
        assert!(msg.contains("jitter") && msg.contains("50%"), "{msg}");
        assert_eq!(tab.selected(), Key::Jitter, "the wrong field is selected");
    }

    #[test]
    fn esc_discards_unsaved_changes() {
        let mut tab = tab();
        press(&mut tab, KeyCode::Char(' '));
        edit(&mut tab, Key::RunTimeout);
        type_text(&mut tab, "1h");
        press(&mut tab, KeyCode::Enter);
        assert!(tab.is_dirty());
        let out = press(&mut tab, KeyCode::Esc);
        assert!(
            matches!(out, Outcome::Say(ref m) if m.contains("discarded")),
            "{out:?}"
        );
        assert!(!tab.is_dirty());
        assert_eq!(tab.draft(Key::Enabled), "true");
        assert_eq!(tab.draft(Key::RunTimeout), "15m");
        assert_eq!(press(&mut tab, KeyCode::Esc), Outcome::Ignored);
    }

    #[test]
    fn a_status_from_the_engine_does_not_clobber_an_edit_in_progress() {
        let mut tab = tab();
        press(&mut tab, KeyCode::Char(' ')); // enabled: changed, not saved
        edit(&mut tab, Key::IntervalOffHours);
        type_text(&mut tab, "3");
        // The CLI saved other edits meanwhile.
        let store = Layer::from([
            (Key::IntervalOffHours, "4h".to_string()),
            (Key::Jitter, "5%".to_string()),
            (Key::Enabled, "true".to_string()),
        ]);
        tab.on_event(&status(file(), store, false));
        assert!(tab.is_editing());
        assert_eq!(tab.draft(Key::IntervalOffHours), "3");
        type_text(&mut tab, "h");
        assert_eq!(tab.draft(Key::IntervalOffHours), "3h");
        assert_eq!(
            tab.draft(Key::Enabled),
            "false",
            "a changed field keeps its draft"
        );
        assert_eq!(tab.draft(Key::Jitter), "5%", "an untouched field follows");
        assert_eq!(tab.in_force(Key::Jitter).1, Origin::Store);
    }

    #[test]
    fn p_pauses_and_resumes_here_and_on_the_snapshot_tab() {
        let mut tab = tab();
        assert_eq!(
            press(&mut tab, KeyCode::Char('p')),
            Outcome::Do(Effect::PauseSchedule(true))
        );
        assert_eq!(tab.hint_word(Action::Pause), "pause");
        tab.on_event(&status(file(), Layer::new(), true));
        assert_eq!(
            press(&mut tab, KeyCode::Char('p')),
            Outcome::Do(Effect::PauseSchedule(false))
        );
        assert_eq!(tab.hint_word(Action::Pause), "resume");

        let mut app = idle_app();
        app.on_event(status(file(), Layer::new(), true));
        assert!(app.on_terminal(&key('p')));
        assert_eq!(app.take_effects(), vec![Effect::PauseSchedule(false)]);
        // On the Cache tab `p` is still purge.
        app.on_action(Action::TabCache);
        app.take_effects();
        app.on_terminal(&key('p'));
        assert!(app.take_effects().is_empty());
    }

    #[test]
    fn days_written_another_way_are_not_a_change() {
        let mut tab = ScheduleTab::new(Vec::new());
        let file = Layer::from([(Key::Days, "mon,tue,wed,thu,fri".to_string())]);
        tab.on_event(&status(file, Layer::new(), false));
        while tab.selected() != Key::Days {
            press(&mut tab, KeyCode::Down);
        }
        press(&mut tab, KeyCode::Char(' '));
        assert!(tab.is_changed(Key::Days));
        press(&mut tab, KeyCode::Char(' '));
        assert_eq!(tab.draft(Key::Days), "mon-fri");
        assert!(!tab.is_dirty(), "the same days as the file's");
    }

    #[test]
    fn the_header_counts_down_to_the_next_snapshot_by_the_minute() {
        let mut app = app_with(Startup::default());
        let mut ev = status(file(), Layer::new(), false);
        if let AppEvent::Engine(EngineEvent::Schedule(Some(s))) = &mut ev {
            s.next_at = Some(sample::NOW + time::Duration::seconds(12 * 60 + 20));
        }
        assert!(app.on_event(ev));
        let shown = screen(&app, 120, 30);
        assert!(shown.contains("next snapshot in 13m"), "{shown}");
        assert_eq!(
            app.next_change(sample::NOW),
            Some(std::time::Duration::from_secs(20)),
            "wakes when the minute changes, not every second"
        );
        app.on_event(status(file(), Layer::new(), true));
        assert!(screen(&app, 120, 30).contains("schedule paused"));
        assert_eq!(app.next_change(sample::NOW), None);
    }

    #[test]
    fn the_preview_follows_the_draft_and_wakes_by_the_minute() {
        let mut tab = tab();
        let now = sample::NOW;
        let first = tab.preview(now);
        assert_eq!(first.len(), 10);
        edit(&mut tab, Key::IntervalBusiness);
        type_text(&mut tab, "45m");
        let edited = tab.preview(now);
        assert_ne!(first, edited, "the preview follows the draft as you type");
        type_text(&mut tab, "x");
        assert_eq!(
            tab.preview(now),
            first,
            "an invalid draft previews the policy in force"
        );
        let wake = tab.next_change(now).unwrap();
        assert!(wake.as_secs() >= 1 && wake.as_secs() <= 60, "{wake:?}");
    }
}

mod attached {
    use super::*;
    use snaptop::app::LinkStatus;
    use snaptop::serve::wire::AttachState;

    fn attached_app(state: AttachState) -> App {
        let mut app = app_with(Startup::default());
        app.on_event(AppEvent::Link(LinkStatus::Attached {
            socket: "config-1a2b3c4d.sock".into(),
            pid: 42,
        }));
        app.on_event(AppEvent::Attached(Box::new(state)));
        app
    }

    #[test]
    fn the_state_on_attach_fills_the_header_and_the_tabs() {
        let app = attached_app(AttachState {
            snapshot: Some(sample::snapshot()),
            history: sample::history(),
            progress: Some(sample::progress()),
            ..AttachState::default()
        });
        assert_eq!(
            app.running_fraction(),
            Some(sample::progress().fraction),
            "a run going on the daemon shows as running"
        );
        assert_eq!(
            app.data_as_of(),
            Some(sample::snapshot().data_as_of()),
            "the daemon's latest snapshot is on screen"
        );
        assert!(matches!(app.link(), LinkStatus::Attached { pid: 42, .. }));
    }

    #[test]
    fn quitting_an_attached_pane_leaves_the_daemons_run_alone() {
        let mut app = attached_app(AttachState {
            progress: Some(sample::progress()),
            ..AttachState::default()
        });
        app.on_action(Action::Quit);
        assert!(
            app.should_quit(),
            "no question: the run is not this pane's to cancel"
        );
        assert_eq!(app.overlay, Overlay::None);
        assert!(
            !app.take_effects().contains(&Effect::Cancel),
            "quitting sends no cancel"
        );
    }

    #[test]
    fn a_lost_daemon_is_said_the_screen_kept_and_the_return_told() {
        let mut app = attached_app(AttachState {
            snapshot: Some(sample::snapshot()),
            ..AttachState::default()
        });
        app.on_event(AppEvent::Link(LinkStatus::Lost(
            "daemon pid 42 closed the connection".into(),
        )));
        let msg = app.message().unwrap();
        assert_eq!(msg.level, Level::Warn);
        assert!(msg.text.contains("reconnecting"), "{}", msg.text);
        assert!(app.data_as_of().is_some(), "what is on screen stays");
        app.on_event(AppEvent::Link(LinkStatus::Attached {
            socket: "config-1a2b3c4d.sock".into(),
            pid: 43,
        }));
        assert!(
            app.message()
                .unwrap()
                .text
                .contains("attached again (daemon pid 43)")
        );
        // A store problem the daemon reports is named like an embedded one.
        app.on_event(AppEvent::Attached(Box::new(AttachState {
            store_problem: Some("store /x: the latest snapshot could not be read".into()),
            ..AttachState::default()
        })));
        assert_eq!(app.message().unwrap().level, Level::Error);
    }
}
