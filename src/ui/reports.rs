//! The Reports tab. Reading Locust CSVs comes with the report issue; until then the tab
//! says how to get a report today and what it will show here.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::theme::Role;
use super::widgets::panel;
use super::{AppEvent, Outcome, Tab, View};
use crate::app::action::Action;

const SECTIONS: &[(&str, &str)] = &[
    (
        "endpoints",
        "requests, failures, p50/p95/p99/max, RPS and error % per endpoint",
    ),
    ("findings", "by severity, each with the reason"),
    (
        "advice",
        "immediate / short-term / long-term recommendations, cache TTLs",
    ),
    ("targets", "per-endpoint SLA pass/fail"),
    ("over time", "latency chart from *_stats_history.csv"),
    ("errors", "failures and exceptions"),
    ("compare", "before/after of two runs"),
];

#[derive(Debug, Clone, Default)]
pub struct ReportsTab;

impl Tab for ReportsTab {
    fn title(&self) -> &'static str {
        "Reports"
    }

    fn handle_key(&mut self, _action: Action) -> Outcome {
        Outcome::Ignored
    }

    fn on_event(&mut self, _event: &AppEvent) -> bool {
        false
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let mut lines = vec![
            Line::raw("Bottleneck reports from Locust load-test CSVs."),
            Line::raw(""),
            Line::from(vec![
                Span::raw("Open one from a shell: "),
                Span::styled("snaptop report PATH", t.style(Role::Title)),
                Span::styled(
                    "  (a CSV prefix like runs/checkout, a directory, or one *_stats.csv)",
                    muted,
                ),
            ]),
            Line::styled(
                "It exits 0 when every target passes, 1 when a gate fails, 2 on bad input.",
                muted,
            ),
            Line::raw(""),
            Line::styled("Here, this tab will show:", t.style(Role::Header)),
        ];
        for (name, what) in SECTIONS {
            lines.push(Line::from(vec![
                Span::styled(format!("  {name:<12}"), t.style(Role::Title)),
                Span::styled(*what, muted),
            ]));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(panel("Reports", t))
                .wrap(Wrap { trim: false }),
            area,
        );
    }

    fn hints(&self) -> Vec<Action> {
        vec![Action::TabSnapshot]
    }
}

impl ReportsTab {
    pub fn new() -> ReportsTab {
        ReportsTab
    }
}
