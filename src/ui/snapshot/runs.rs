//! The run history: a list to move in, and the detail of one run (when, how long,
//! requests per source, 304s, what failed, its log).

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};
use time::OffsetDateTime;

use super::super::View;
use super::super::text;
use super::super::theme::{Role, Theme};
use super::super::widgets::panel;
use super::log::{entry_lines, failure_lines};
use crate::engine::model::{RunDetail, RunSummary, Trigger};

/// When a run ended (its summary has the start and the duration).
pub fn run_end(r: &RunSummary) -> OffsetDateTime {
    r.started_at + Duration::from_millis(r.duration_ms)
}

/// The result word of a run, and its style: never cut (the column is sized for it).
pub fn result(r: &RunSummary, t: &Theme) -> (&'static str, Style) {
    if r.error.is_some() {
        ("✗ failed", t.style(Role::StatusFailed))
    } else if r.cancelled {
        ("◐ cancelled", t.style(Role::StatusPartial))
    } else if r.partial {
        ("◐ partial", t.style(Role::StatusPartial))
    } else {
        ("✓ complete", t.style(Role::StatusOk))
    }
}

pub fn trigger_word(t: Trigger) -> &'static str {
    match t {
        Trigger::Manual => "manual",
        Trigger::Scheduled => "scheduled",
        Trigger::Cli => "cli",
    }
}

/// `1 error`, `3 errors`.
pub fn errors(n: u64) -> String {
    if n == 1 {
        "1 error".into()
    } else {
        format!("{n} errors")
    }
}

/// The runs table; `selected` is highlighted when the list has the focus.
pub fn render(
    frame: &mut Frame,
    area: Rect,
    history: &[RunSummary],
    selected: Option<usize>,
    view: &View,
) {
    let t = view.theme;
    let rows_fit = area.height.saturating_sub(3) as usize;
    let mut title = format!("Runs ({})", history.len());
    if let Some(i) = selected {
        title.push_str(&format!(
            " · {}/{} · {} opens",
            i + 1,
            history.len(),
            view.keys.first(crate::app::action::Action::Open)
        ));
    } else if history.len() > rows_fit {
        title.push_str(" · more ↓");
    }
    let block = panel(title, t).border_style(if selected.is_some() {
        t.style(Role::BorderFocused)
    } else {
        t.style(Role::Border)
    });
    if history.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled("No runs recorded yet.", t.style(Role::Muted)))
                .block(block),
            area,
        );
        return;
    }
    // Narrow panes drop the columns a glance needs least, never the result.
    let wide = area.width >= 100;
    let mut header = vec![
        "run", "start", "took", "requests", "304 %", "errors", "result",
    ];
    if wide {
        header.insert(3, "trigger");
        header.insert(6, "hits");
    }
    let rows = history.iter().map(|r| {
        let (word, style) = result(r, t);
        let mut cells = vec![
            ratatui::widgets::Cell::from(format!("#{}", r.id)),
            ratatui::widgets::Cell::from(text::date_clock(r.started_at, view.offset)),
            ratatui::widgets::Cell::from(text::duration(Duration::from_millis(r.duration_ms))),
            ratatui::widgets::Cell::from(text::count(r.requests)),
            ratatui::widgets::Cell::from(text::percent(r.not_modified, r.requests)),
            ratatui::widgets::Cell::from(r.errors.to_string()),
            ratatui::widgets::Cell::from(Span::styled(word, style)),
        ];
        if wide {
            cells.insert(3, ratatui::widgets::Cell::from(trigger_word(r.trigger)));
            cells.insert(6, ratatui::widgets::Cell::from(text::count(r.cache_hits)));
        }
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(6),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Min(11),
    ];
    if wide {
        widths.insert(3, Constraint::Length(9));
        widths.insert(6, Constraint::Length(6));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.style(Role::Header)))
        .row_highlight_style(t.style(Role::Selection))
        .block(block);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

/// The lines of one run's detail at `width`.
pub fn detail_lines(
    r: &RunSummary,
    detail: Option<&RunDetail>,
    width: usize,
    view: &View,
) -> Vec<Line<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let (word, style) = result(r, t);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("Run #{} ", r.id), t.style(Role::Title)),
            Span::styled(word, style),
        ]),
        Line::from(vec![
            Span::styled("started   ", muted),
            Span::raw(format!(
                "{} ({}) · {}",
                text::date_clock(r.started_at, view.offset),
                text::ago(text::between(r.started_at, view.now)),
                trigger_word(r.trigger)
            )),
        ]),
        Line::from(vec![
            Span::styled("took      ", muted),
            Span::raw(text::duration(Duration::from_millis(r.duration_ms))),
        ]),
        Line::from(vec![
            Span::styled("requests  ", muted),
            Span::raw(format!(
                "{} · 304s {} ({}) · from the store {} · {}",
                text::count(r.requests),
                text::count(r.not_modified),
                text::percent(r.not_modified, r.requests),
                text::count(r.cache_hits),
                errors(r.errors)
            )),
        ]),
    ];
    if let Some(e) = &r.error {
        lines.push(Line::from(vec![
            Span::styled("error     ", muted),
            Span::styled(e.clone(), t.style(Role::SeverityError)),
        ]));
    }
    let Some(d) = detail else {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "Per-source figures, failures and the log are kept for runs since this version of snaptop.",
            muted,
        ));
        return lines;
    };
    lines.push(Line::raw(""));
    lines.push(Line::styled("By source", t.style(Role::Header)));
    lines.push(Line::styled(
        format!(
            "  {:<10} {:>8} {:>6} {:>7} {:>7} {:>6} {:>6}",
            "source", "requests", "304", "cached", "retries", "waits", "errors"
        ),
        muted,
    ));
    for (name, s) in &d.per_source {
        lines.push(Line::raw(format!(
            "  {:<10} {:>8} {:>6} {:>7} {:>7} {:>6} {:>6}",
            name,
            text::count(s.requests),
            text::count(s.not_modified),
            text::count(s.cache_hits),
            s.retries,
            s.rate_limited_waits,
            s.errors
        )));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("Failures ({})", d.failures.len()),
        t.style(Role::Header),
    ));
    lines.extend(failure_lines(&d.failures, width, t));
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("Log ({} lines)", d.log.len()),
        t.style(Role::Header),
    ));
    if d.log.is_empty() {
        lines.push(Line::styled("no warnings", muted));
    }
    for l in &d.log {
        lines.extend(entry_lines(l, width, view.offset, t));
    }
    lines
}
