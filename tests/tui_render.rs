//! Every tab rendered into ratatui's `TestBackend` and compared with an `insta`
//! snapshot, at 80×24 (the smallest supported pane) and 160×48. The clock is fixed
//! ([`sample::NOW`], UTC), so the frames are the same on every machine.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use snaptop::app::action::Action;
use snaptop::app::keymap::KeyMap;
use snaptop::app::{App, Startup};
use snaptop::engine::events::EngineEvent;
use snaptop::report::{ReportRequest, build_report};
use snaptop::ui::theme::Theme;
use snaptop::ui::{self, AppEvent, ReportLoad, sample};
use time::UtcOffset;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn app(startup: Startup, theme: Theme) -> App {
    let mut app = App::new(startup, KeyMap::defaults(), theme, UtcOffset::UTC);
    app.on_event(AppEvent::Engine(EngineEvent::Schedule(None)));
    app
}

fn idle() -> App {
    let mut app = app(
        Startup {
            snapshot: Some(sample::snapshot()),
            history: sample::history(),
            demo: true,
            ..Startup::default()
        },
        Theme::default_theme(),
    );
    app.on_event(cache_report());
    app
}

fn cache_report() -> AppEvent {
    AppEvent::CacheReport(Box::new(sample::cache_report()))
}

fn running() -> App {
    let mut app = idle();
    app.on_event(AppEvent::Engine(EngineEvent::Started(Box::new(
        sample::progress(),
    ))));
    for line in sample::log() {
        app.on_event(AppEvent::Engine(EngineEvent::Log(line)));
    }
    app
}

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app, sample::NOW)).unwrap();
    t
}

fn check(name: &str, app: &App) {
    for (w, h) in SIZES {
        let t = render(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

#[test]
fn snapshot_tab_idle() {
    check("snapshot_idle", &idle());
}

#[test]
fn snapshot_tab_empty_store() {
    check(
        "snapshot_empty",
        &app(Startup::default(), Theme::default_theme()),
    );
}

#[test]
fn snapshot_tab_running() {
    check("snapshot_running", &running());
}

#[test]
fn snapshot_tab_detail_of_a_cell() {
    let mut app = idle();
    app.on_action(Action::Down);
    app.on_action(Action::Right);
    app.on_action(Action::Open);
    check("snapshot_detail", &app);
}

#[test]
fn snapshot_tab_after_a_cancelled_partial_run() {
    let mut app = idle();
    let mut snapshot = sample::snapshot();
    snapshot.run_id = 43;
    snapshot.partial = true;
    snapshot.cancelled = true;
    // A cancel is not an error: nothing failed, and what the run had not fetched yet
    // (the builds) is the last good value, marked with when it was fetched.
    snapshot.failures = vec![];
    let earlier = snapshot.finished_at;
    for row in snapshot.cells.values_mut() {
        for cell in row.values_mut() {
            cell.stale.insert(
                snaptop::engine::model::Part::Build,
                snaptop::engine::model::AsOf(earlier),
            );
        }
    }
    snapshot.finished_at = sample::NOW - time::Duration::seconds(20);
    let mut summary = sample::history()[0].clone();
    summary.id = 43;
    summary.started_at = snapshot.finished_at - time::Duration::seconds(3);
    summary.duration_ms = 3_000;
    summary.partial = true;
    summary.cancelled = true;
    summary.errors = 0;
    app.on_event(AppEvent::Engine(EngineEvent::Finished {
        summary,
        snapshot: Box::new(snapshot),
    }));
    check("snapshot_cancelled", &app);
}

#[test]
fn snapshot_tab_log_of_the_last_run_scrolled_back() {
    let mut app = running();
    for i in 0..30 {
        let mut line = sample::log().remove(1);
        line.message = format!("retried request {i}");
        app.on_event(AppEvent::Engine(EngineEvent::Log(line)));
    }
    let mut summary = sample::history()[0].clone();
    summary.id = 43;
    app.on_event(AppEvent::Engine(EngineEvent::Finished {
        summary,
        snapshot: Box::new(sample::snapshot()),
    }));
    app.on_action(Action::Log);
    app.on_action(Action::PageUp);
    check("snapshot_log", &app);
}

/// A schedule status as the engine sends it: `interval_business` from the config
/// file, `cooldown_after_manual` a saved edit, the zone fixed, jitter off; the last run
/// 7 minutes before [`sample::NOW`] (a Monday, inside the window), manual.
fn schedule_status(paused: bool) -> EngineEvent {
    use snaptop::engine::scheduler::ScheduleStatus;
    use snaptop::schedule::{Key, Layer, Runs, Seed, Settings};
    let file = Layer::from([
        (Key::IntervalBusiness, "20m".to_string()),
        (Key::Timezone, "UTC".to_string()),
    ]);
    let store = Layer::from([(Key::CooldownAfterManual, "10m".to_string())]);
    let last = jiff::Timestamp::from_second(sample::NOW.unix_timestamp() - 7 * 60).unwrap();
    EngineEvent::Schedule(Some(Box::new(ScheduleStatus {
        enabled: true,
        paused,
        next_at: (!paused).then(|| sample::NOW + time::Duration::minutes(13)),
        next_rule: Some("business".into()),
        next_business: true,
        skipped: 0,
        settings: Settings { file, store },
        runs: Runs {
            last: Some(last),
            last_manual: Some(last),
            changed_streak: 0,
        },
        seed: Seed::NONE,
    })))
}

fn schedule_app(paused: bool) -> App {
    let mut app = idle();
    app.on_event(AppEvent::Engine(schedule_status(paused)));
    app.on_action(Action::TabSchedule);
    app
}

/// The Schedule tab at the smallest pane and at a roomy one.
fn check_schedule(name: &str, app: &App) {
    for (w, h) in [(80, 24), (120, 40)] {
        let t = render(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

#[test]
fn schedule_form_with_values_from_the_file_and_a_saved_edit() {
    check_schedule("schedule_form", &schedule_app(false));
}

#[test]
fn schedule_validation_error_while_typing() {
    let mut app = schedule_app(false);
    app.on_action(Action::Down);
    app.on_terminal(&ratatui::crossterm::event::Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    for c in ['x', 'y'] {
        app.on_terminal(&ratatui::crossterm::event::Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    check_schedule("schedule_typing_error", &app);
}

#[test]
fn schedule_preview_follows_an_edit_before_it_is_saved() {
    let mut app = schedule_app(false);
    app.on_action(Action::Down);
    app.on_terminal(&ratatui::crossterm::event::Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    for k in [KeyCode::Backspace, KeyCode::Backspace, KeyCode::Backspace] {
        app.on_terminal(&ratatui::crossterm::event::Event::Key(KeyEvent::new(
            k,
            KeyModifiers::NONE,
        )));
    }
    for c in "45m".chars() {
        app.on_terminal(&ratatui::crossterm::event::Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    app.on_terminal(&ratatui::crossterm::event::Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    check_schedule("schedule_unsaved_preview", &app);
}

#[test]
fn schedule_saved_edit_after_the_engines_answer() {
    use ratatui::crossterm::event::Event;
    use snaptop::schedule::Key;
    let mut app = schedule_app(false);
    let press = |app: &mut App, code, mods| {
        app.on_terminal(&Event::Key(KeyEvent::new(code, mods)));
    };
    press(&mut app, KeyCode::Down, KeyModifiers::NONE);
    press(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    for _ in 0..3 {
        press(&mut app, KeyCode::Backspace, KeyModifiers::NONE);
    }
    press(&mut app, KeyCode::Char('m'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Home, KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('4'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('5'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('s'), KeyModifiers::CONTROL);
    let effects = app.take_effects();
    let [snaptop::ui::Effect::SaveSchedule(layer)] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(
        layer.get(&Key::IntervalBusiness).map(String::as_str),
        Some("45m")
    );
    let EngineEvent::Schedule(Some(mut status)) = schedule_status(false) else {
        unreachable!()
    };
    status.settings.store = layer.clone();
    app.on_event(AppEvent::Engine(EngineEvent::Schedule(Some(status))));
    check_schedule("schedule_saved", &app);
}

#[test]
fn schedule_paused() {
    check_schedule("schedule_paused", &schedule_app(true));
}

#[test]
fn schedule_tab() {
    let mut app = idle();
    app.on_action(Action::TabSchedule);
    check("schedule", &app);
}

#[test]
fn reports_tab() {
    let mut app = idle();
    app.on_action(Action::TabReports);
    check("reports", &app);
}

/// A fixture run by its path relative to the package root (cargo's working directory
/// for tests), so the path drawn in the status line is the same on every machine.
fn locust(rel: &str) -> std::path::PathBuf {
    std::path::Path::new("tests/fixtures/locust").join(rel)
}

/// The app on the Reports tab with the report of `request` loaded at [`sample::NOW`].
fn with_report(request: ReportRequest) -> App {
    let mut app = idle();
    app.on_action(Action::TabReports);
    let result = build_report(&request, None).map_err(|e| e.to_string());
    app.on_event(AppEvent::ReportLoading {
        seq: 1,
        request: request.clone(),
        reload: false,
    });
    app.on_event(AppEvent::ReportLoaded(Box::new(ReportLoad {
        seq: 1,
        request,
        reload: false,
        at: sample::NOW,
        result,
    })));
    app
}

/// The run bundled for demo mode (a real Locust 2.47 run) with the demo's targets.
fn demo_report() -> App {
    with_report(ReportRequest {
        inputs: vec![locust("2.47/api")],
        targets: Some("tests/fixtures/targets/demo.toml".into()),
        ..ReportRequest::default()
    })
}

/// Locust 2.8 (exceptions with multi-line tracebacks) compared with the same
/// locustfile under Locust 1.6.
fn compared_report() -> App {
    with_report(ReportRequest {
        inputs: vec![locust("2.8/run")],
        compare_base: Some(vec![locust("1.6/run")]),
        ..ReportRequest::default()
    })
}

fn view(mut app: App, steps: usize) -> App {
    for _ in 0..steps {
        app.on_action(Action::NextView);
    }
    app
}

#[test]
fn reports_endpoints() {
    check("reports_endpoints", &demo_report());
}

#[test]
fn reports_endpoints_sorted_by_name_ascending_with_a_row_selected() {
    let mut app = demo_report();
    // p99 → max → rps → endpoint (A→Z).
    for _ in 0..3 {
        app.on_action(Action::SortColumn);
    }
    app.on_action(Action::Down);
    app.on_action(Action::Down);
    check("reports_endpoints_by_name", &app);
}

#[test]
fn reports_findings() {
    check("reports_findings", &view(demo_report(), 1));
}

#[test]
fn reports_advice() {
    check("reports_advice", &view(demo_report(), 2));
}

#[test]
fn reports_targets() {
    check("reports_targets", &view(demo_report(), 3));
}

#[test]
fn reports_over_time() {
    let mut app = view(demo_report(), 4);
    // GET alerts_list: the endpoint that slowed down for a while.
    app.on_action(Action::Down);
    check("reports_over_time", &app);
}

#[test]
fn reports_over_time_without_history() {
    // Locust 0.13 wrote no history file.
    let app = with_report(ReportRequest {
        inputs: vec![locust("0.13/run")],
        ..ReportRequest::default()
    });
    check("reports_over_time_no_history", &view(app, 4));
}

#[test]
fn reports_failures() {
    check("reports_failures", &view(demo_report(), 5));
}

#[test]
fn reports_exceptions() {
    check("reports_exceptions", &view(compared_report(), 6));
}

/// A real k6 run: its checks are shown in the exceptions view (k6 has no exceptions).
#[test]
fn reports_k6_checks() {
    let app = with_report(ReportRequest {
        inputs: vec!["tests/fixtures/k6/1.1/run.csv".into()],
        ..ReportRequest::default()
    });
    check("reports_k6_checks", &view(app, 6));
}

#[test]
fn reports_compare() {
    check("reports_compare", &view(compared_report(), 7));
}

#[test]
fn reports_compare_without_a_base() {
    check("reports_compare_none", &view(demo_report(), 7));
}

#[test]
fn reports_load_error_keeps_the_last_report() {
    let mut app = demo_report();
    let request = ReportRequest {
        inputs: vec![locust("nope/run")],
        ..ReportRequest::default()
    };
    app.on_event(AppEvent::ReportLoading {
        seq: 2,
        request: request.clone(),
        reload: false,
    });
    let result = build_report(&request, None).map_err(|e| e.to_string());
    assert!(result.is_err());
    app.on_event(AppEvent::ReportLoaded(Box::new(ReportLoad {
        seq: 2,
        request,
        reload: false,
        at: sample::NOW,
        result,
    })));
    check("reports_error", &app);
}

#[test]
fn reports_open_prompt_with_completions() {
    let mut app = demo_report();
    app.on_action(Action::OpenReport);
    for _ in 0.."api".len() {
        app.on_key(&KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
    }
    let input = "tests/fixtures/locust/2.47/".to_string();
    app.on_event(AppEvent::Completions {
        input: input.clone(),
        candidates: vec![format!("{input}api"), format!("{input}api_old")],
    });
    check("reports_prompt", &app);
}

/// The Cache tab at the smallest pane and at a roomy one.
fn check_cache(name: &str, app: &App) {
    for (w, h) in [(80, 24), (120, 40)] {
        let t = render(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

fn cache_tab_app() -> App {
    let mut app = idle();
    // Opening the tab reads the figures again; here is the answer.
    app.on_action(Action::TabCache);
    app.on_event(cache_report());
    app
}

#[test]
fn cache_tab() {
    check_cache("cache", &cache_tab_app());
}

#[test]
fn cache_tab_one_namespace_zeros_hidden() {
    let mut app = cache_tab_app();
    app.on_action(Action::Right);
    app.on_action(Action::Right);
    app.on_action(Action::HideZeros);
    check_cache("cache_teamcity_no_zeros", &app);
}

#[test]
fn cache_tab_a_namespace_without_lookups() {
    let mut app = cache_tab_app();
    app.on_action(Action::Left);
    check_cache("cache_registry", &app);
}

#[test]
fn cache_tab_confirm_clear() {
    let mut app = cache_tab_app();
    app.on_action(Action::Right);
    app.on_action(Action::ClearCache);
    check_cache("cache_confirm_clear", &app);
}

#[test]
fn cache_tab_confirm_compact() {
    let mut app = cache_tab_app();
    app.on_action(Action::CompactStore);
    check_cache("cache_confirm_compact", &app);
}

#[test]
fn cache_tab_before_any_run() {
    let mut app = app(Startup::default(), Theme::default_theme());
    app.on_action(Action::TabCache);
    // A fresh store: nothing recorded, the default budgets.
    app.on_event(AppEvent::CacheReport(Box::new(
        snaptop::cache::CacheReport {
            memory_budget_bytes: 64 << 20,
            disk_budget_bytes: 512 << 20,
            ..Default::default()
        },
    )));
    check_cache("cache_empty", &app);
}

#[test]
fn help_overlay() {
    let mut app = idle();
    app.on_action(Action::Help);
    check("help", &app);
}

#[test]
fn help_overlay_scrolled_to_the_end() {
    for (w, h) in SIZES {
        let mut app = idle();
        app.set_size(w, h);
        app.on_action(Action::Help);
        for _ in 0..100 {
            app.on_action(Action::Down);
        }
        let t = render(&app, w, h);
        insta::assert_snapshot!(format!("help_end_{w}x{h}"), t.backend());
    }
}

fn footer(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let y = buf.area.height - 1;
    (0..buf.area.width)
        .map(|x| buf[(x, y)].symbol().to_string())
        .collect()
}

#[test]
fn footer_keeps_help_and_quit_beside_a_long_message() {
    let mut app = idle();
    app.on_action(Action::TabReports);
    app.on_event(AppEvent::Engine(EngineEvent::Failed {
        summary: sample::history()[0].clone(),
        error: "github: GET /repos/acme/payments-api/commits?path=overlays/prod/api/kustomization.yaml: \
                502 Bad Gateway after 3 retries"
            .into(),
    }));
    for (w, h) in SIZES {
        let f = footer(&render(&app, w, h));
        assert!(f.trim_end().ends_with("? help  q quit"), "{f:?}");
        assert!(f.starts_with("snapshot #42 failed: github: GET"), "{f:?}");
        if w == 80 {
            assert!(f.contains('…'), "the message is cut, and says so: {f:?}");
        }
    }
    insta::assert_snapshot!("footer_message_80x24", render(&app, 80, 24).backend());
}

#[test]
fn footer_shows_the_directions_as_one_kind_of_key() {
    let keys = |pairs: &[(&str, &[&str])]| {
        let overrides = pairs
            .iter()
            .map(|(a, ks)| {
                (
                    a.to_string(),
                    snaptop::config::KeyBinding::Many(ks.iter().map(|k| k.to_string()).collect()),
                )
            })
            .collect();
        KeyMap::with_overrides(&overrides).unwrap()
    };
    let footer_with = |map: KeyMap| {
        let app = App::new(
            Startup {
                snapshot: Some(sample::snapshot()),
                ..Startup::default()
            },
            map,
            Theme::default_theme(),
            UtcOffset::UTC,
        );
        footer(&render(&app, 160, 48))
    };
    // The README's example: an arrow is still there for every direction.
    let f = footer_with(keys(&[("down", &["j", "down", "ctrl-n"])]));
    assert!(f.contains("↑↓←→ move"), "{f}");
    // Letters first: letters for all.
    let f = footer_with(keys(&[
        ("up", &["k", "up"]),
        ("down", &["j", "down", "ctrl-n"]),
    ]));
    assert!(f.contains("kjhl move"), "{f}");
    // No arrow for down, a letter for each: letters.
    let f = footer_with(keys(&[("down", &["j"])]));
    assert!(f.contains("kjhl move"), "{f}");
    // Nothing in common: each one's first key, apart.
    let f = footer_with(keys(&[("down", &["ctrl-n"]), ("left", &["left"])]));
    assert!(f.contains("↑/^N/←/→ move"), "{f}");
}

#[test]
fn quit_prompt_while_running() {
    let mut app = running();
    app.on_action(Action::Quit);
    check("confirm_quit", &app);
}

#[test]
fn too_small_notice_and_no_panic_down_to_one_cell() {
    let app = running();
    let t = render(&app, 60, 20);
    insta::assert_snapshot!("too_small_60x20", t.backend());
    let mut detail = idle();
    detail.on_action(Action::Open);
    let mut help = idle();
    help.on_action(Action::Help);
    for a in [&app, &detail, &help] {
        for w in [1, 2, 5, 17, 40, 79, 80, 81] {
            for h in [1, 2, 3, 7, 23, 24, 25] {
                render(a, w, h);
            }
        }
    }
}

#[test]
fn selected_cell_is_marked_without_colour() {
    let t = render(&idle(), 80, 24);
    // Under NO_COLOR the cursor must still be visible: reversed, not only coloured.
    let mono = App::new(
        Startup {
            snapshot: Some(sample::snapshot()),
            history: sample::history(),
            demo: true,
            ..Startup::default()
        },
        KeyMap::defaults(),
        Theme::default_theme().without_color(),
        UtcOffset::UTC,
    );
    let m = render(&mono, 80, 24);
    let buf = m.backend().buffer();
    let mut reversed = 0;
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let c = &buf[(x, y)];
            assert!(
                matches!(c.fg, Color::Reset) && matches!(c.bg, Color::Reset),
                "colour at {x},{y}"
            );
            if c.modifier.contains(Modifier::REVERSED) {
                reversed += 1;
            }
        }
    }
    assert!(
        reversed > 10,
        "cursor cell, active tab and DEMO badge are reversed"
    );
    // Same text with and without colour.
    assert_eq!(t.backend().to_string(), m.backend().to_string());
}

#[test]
fn footer_and_help_follow_the_key_map() {
    let overrides = std::collections::BTreeMap::from([(
        "trigger".to_string(),
        snaptop::config::KeyBinding::One("F5".into()),
    )]);
    let keys = KeyMap::with_overrides(&overrides).unwrap();
    let mut app = App::new(
        Startup::default(),
        keys,
        Theme::default_theme(),
        UtcOffset::UTC,
    );
    let t = render(&app, 80, 24);
    let footer: String = (0..80)
        .map(|x| t.backend().buffer()[(x, 23)].symbol().to_string())
        .collect();
    assert!(footer.contains("F5 run now"), "{footer}");
    app.on_action(Action::Help);
    let t = render(&app, 160, 48);
    assert!(
        t.backend().to_string().contains("F5"),
        "help lists the overridden key"
    );
}

#[test]
fn reports_views_carry_meaning_without_colour_and_survive_tiny_panes() {
    let mut app = demo_report();
    let mut mono = App::new(
        Startup {
            demo: true,
            ..Startup::default()
        },
        KeyMap::defaults(),
        Theme::default_theme().without_color(),
        UtcOffset::UTC,
    );
    mono.on_action(Action::TabReports);
    let request = ReportRequest {
        inputs: vec![locust("2.47/api")],
        targets: Some("tests/fixtures/targets/demo.toml".into()),
        ..ReportRequest::default()
    };
    mono.on_event(AppEvent::ReportLoading {
        seq: 1,
        request: request.clone(),
        reload: false,
    });
    mono.on_event(AppEvent::ReportLoaded(Box::new(ReportLoad {
        seq: 1,
        result: build_report(&request, None).map_err(|e| e.to_string()),
        request,
        reload: false,
        at: sample::NOW,
    })));
    for _ in 0..8 {
        let t = render(&mono, 80, 24);
        let buf = t.backend().buffer();
        for c in buf.content() {
            assert!(matches!(c.fg, Color::Reset) && matches!(c.bg, Color::Reset));
        }
        // The selected row or the active view stays visible.
        assert!(
            buf.content()
                .iter()
                .any(|c| c.modifier.contains(Modifier::REVERSED))
        );
        for (w, h) in [(1, 1), (20, 5), (79, 23), (80, 24), (81, 25), (200, 60)] {
            render(&app, w, h);
        }
        mono.on_action(Action::NextView);
        app.on_action(Action::NextView);
    }
    app.on_action(Action::OpenReport);
    for (w, h) in [(1, 1), (20, 5), (80, 24)] {
        render(&app, w, h);
    }
}

// --- the seed team's size: 15 components × 4 environments -----------------------------

fn seed() -> App {
    app(
        Startup {
            snapshot: Some(sample::seed_snapshot()),
            history: sample::history(),
            ..Startup::default()
        },
        Theme::default_theme(),
    )
}

#[test]
fn seed_matrix_idle() {
    check("seed_idle", &seed());
}

#[test]
fn seed_matrix_scrolled_to_the_last_component() {
    let mut app = seed();
    for _ in 0..20 {
        app.on_action(Action::Down);
    }
    app.on_action(Action::Right);
    app.on_action(Action::Right);
    app.on_action(Action::Right);
    check("seed_scrolled", &app);
}

#[test]
fn seed_matrix_filtered() {
    let mut app = seed();
    app.on_action(Action::Filter);
    for c in "ing".chars() {
        app.on_key(&KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    check("seed_filtering", &app);
    app.on_key(&KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    check("seed_filtered", &app);
}

#[test]
fn seed_matrix_while_running_stays_in_view_and_updates() {
    let mut app = seed();
    app.on_event(AppEvent::Engine(EngineEvent::Started(Box::new(
        sample::progress(),
    ))));
    let mut so_far = sample::seed_snapshot();
    so_far.run_id = 43;
    let cell = so_far
        .cells
        .get_mut("prod")
        .unwrap()
        .get_mut("payments")
        .unwrap();
    cell.tag = Some("v1.44.0".into());
    app.on_event(AppEvent::Engine(EngineEvent::Provisional(Box::new(so_far))));
    for line in sample::log() {
        app.on_event(AppEvent::Engine(EngineEvent::Log(line)));
    }
    check("seed_running", &app);
}

#[test]
fn seed_matrix_after_a_failed_run_keeps_every_last_good_value() {
    let mut app = seed();
    let (summary, snapshot) = sample::seed_failed_run();
    app.on_event(AppEvent::Engine(EngineEvent::Finished {
        summary,
        snapshot: Box::new(snapshot),
    }));
    check("seed_failed_after_good", &app);
    // The failures, grouped, one key away.
    app.on_action(Action::NextView);
    app.on_action(Action::Open);
    check("seed_failures", &app);
}

#[test]
fn seed_cell_detail_says_why_tickets_are_unknown() {
    let mut app = seed();
    for _ in 0..7 {
        app.on_action(Action::Down);
    }
    for _ in 0..3 {
        app.on_action(Action::Right);
    }
    app.on_action(Action::Open);
    check("seed_detail_unresolved", &app);
}

#[test]
fn seed_run_history_opens_a_run() {
    let mut app = seed();
    app.on_action(Action::NextView);
    app.on_action(Action::Down);
    app.on_action(Action::Open);
    check("seed_run_detail", &app);
}

/// A pane attached to a daemon: the state it was sent on attach fills every tab, and
/// the header says where the engine is.
fn attached_app() -> App {
    let mut app = app(Startup::default(), Theme::default_theme());
    app.on_event(AppEvent::Link(snaptop::app::LinkStatus::Attached {
        socket: "config-1a2b3c4d.sock".into(),
        pid: 4242,
    }));
    app.on_event(AppEvent::Attached(Box::new(
        snaptop::serve::wire::AttachState {
            snapshot: Some(sample::snapshot()),
            history: sample::history(),
            progress: Some(sample::progress()),
            log: sample::log(),
            ..Default::default()
        },
    )));
    app
}

#[test]
fn snapshot_tab_attached_to_a_daemon_mid_run() {
    check("snapshot_attached_running", &attached_app());
}

#[test]
fn snapshot_tab_when_the_daemon_is_gone() {
    let mut app = attached_app();
    app.on_event(AppEvent::Link(snaptop::app::LinkStatus::Lost(
        "daemon pid 4242 closed the connection".into(),
    )));
    check("snapshot_daemon_gone", &app);
}
