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
use snaptop::ui::theme::Theme;
use snaptop::ui::{self, AppEvent, sample};
use time::UtcOffset;

fn idle() -> App {
    let mut app = App::new(
        Startup {
            snapshot: Some(sample::snapshot()),
            history: sample::history(),
            demo: true,
            ..Startup::default()
        },
        KeyMap::defaults(),
        Theme::default_theme(),
        UtcOffset::UTC,
    );
    app.on_event(AppEvent::Engine(EngineEvent::NextRun(None)));
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
    let screens = [("idle", idle()), ("running", running), ("detail", detail)];
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
