//! Frame render time at 200×50 (target ≤ 1 ms): the whole frame drawn by `ui::draw`
//! into ratatui's `TestBackend`, diffing included, for the busiest screens.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use snaptop::app::action::Action;
use snaptop::app::keymap::KeyMap;
use snaptop::app::{App, Startup};
use snaptop::engine::events::EngineEvent;
use snaptop::report::{ReportRequest, build_report};
use snaptop::ui::theme::Theme;
use snaptop::ui::{self, AppEvent, ReportLoad, sample};
use time::UtcOffset;

/// An idle app showing `snapshot` and the sample history.
fn showing(snapshot: snaptop::engine::model::Snapshot) -> App {
    let mut app = App::new(
        Startup {
            snapshot: Some(snapshot),
            history: sample::history(),
            demo: true,
            ..Startup::default()
        },
        KeyMap::defaults(),
        Theme::default_theme(),
        UtcOffset::UTC,
    );
    app.on_event(AppEvent::Engine(EngineEvent::Schedule(None)));
    app
}

fn idle() -> App {
    showing(sample::snapshot())
}

/// The Reports tab with the bundled Locust 2.47 run, `views` views to the right of the
/// endpoint table (4: the latency chart).
fn report(views: usize) -> App {
    let mut app = idle();
    app.on_action(Action::TabReports);
    let request = ReportRequest {
        inputs: vec!["tests/fixtures/locust/2.47/api".into()],
        targets: Some("tests/fixtures/targets/demo.toml".into()),
        ..ReportRequest::default()
    };
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
    for _ in 0..views {
        app.on_action(Action::NextView);
    }
    // What is measured must be the loaded report, not the empty tab.
    let mut t = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let frame = t.draw(|f| ui::draw(f, &app, sample::NOW)).unwrap();
    let text: String = frame.buffer.content().iter().map(|c| c.symbol()).collect();
    assert!(text.contains("GET alerts_list"), "report not loaded");
    app
}

fn bench(c: &mut Criterion) {
    let mut running = idle();
    running.on_event(AppEvent::Engine(EngineEvent::Started(Box::new(
        sample::progress(),
    ))));
    for _ in 0..50 {
        for line in sample::log() {
            running.on_event(AppEvent::Engine(EngineEvent::Log(line)));
        }
    }
    let mut detail = idle();
    detail.on_action(Action::Open);
    let seed = || showing(sample::seed_snapshot());
    let mut seed_failed = seed();
    let (summary, snapshot) = sample::seed_failed_run();
    seed_failed.on_event(AppEvent::Engine(EngineEvent::Finished {
        summary,
        snapshot: Box::new(snapshot),
    }));
    let screens = [
        ("seed_idle", seed()),
        ("seed_failed_after_good", seed_failed),
        ("idle", idle()),
        ("running", running),
        ("detail", detail),
        ("report_endpoints", report(0)),
        ("report_chart", report(4)),
    ];
    let mut group = c.benchmark_group("render_200x50");
    for (name, app) in &screens {
        let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap();
        group.bench_function(*name, |b| {
            b.iter(|| {
                terminal
                    .draw(|f| ui::draw(f, black_box(app), sample::NOW))
                    .unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
