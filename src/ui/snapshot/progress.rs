//! The running snapshot's progress, above the matrix: a compact panel on small panes,
//! one gauge per stage on tall ones.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::super::View;
use super::super::text::{self, fit};
use super::super::theme::Role;
use super::super::widgets::{bar, panel};
use super::runs::trigger_word;
use crate::engine::events::{Progress, StageState};

/// Rows the panel takes (borders included): compact below 40 rows.
pub fn height(p: &Progress, area_height: u16) -> u16 {
    if area_height >= 40 {
        p.stages.len() as u16 + 5
    } else {
        5
    }
}

fn state_word(s: StageState) -> &'static str {
    match s {
        StageState::Pending => "pending",
        StageState::Running => "running",
        StageState::Done => "done",
        StageState::Failed => "failed",
        StageState::Skipped => "skipped",
    }
}

fn eta(p: &Progress) -> String {
    match p.eta {
        Some(d) if d < Duration::from_secs(1) => "ETA <1s".into(),
        Some(d) => format!("ETA {}", text::seconds(d)),
        None => "ETA: learning".into(),
    }
}

pub fn render(frame: &mut Frame, area: Rect, p: &Progress, view: &View) {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let elapsed = text::between(p.started_at, view.now);
    let block = panel(
        format!(
            "Snapshot #{} running · {} · {} · {} cancels",
            p.run_id,
            trigger_word(p.trigger),
            text::seconds(elapsed),
            view.keys.first(crate::app::action::Action::Cancel)
        ),
        t,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let compact = area.height < (p.stages.len() as u16 + 5);
    let mut lines: Vec<Line> = Vec::new();
    let tail = format!(" {:>4.0}%  {}", p.fraction * 100.0, eta(p));
    let label_w = if compact { 8 } else { 20 };
    let bar_w = width
        .saturating_sub(label_w + text::fit(&tail, 40).chars().count() + 1)
        .max(1);
    let mut overall = vec![Span::styled(
        format!("{:<label_w$}", "overall"),
        t.style(Role::Title),
    )];
    overall.extend(bar(p.fraction, bar_w, t.style(Role::GaugeRunning), muted));
    overall.push(Span::styled(tail, t.style(Role::StatusRunning)));
    lines.push(Line::from(overall));
    if compact {
        let mut spans = Vec::new();
        for (i, s) in p.stages.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(" · ", muted));
            }
            let count = match s.state {
                StageState::Skipped => "–".to_string(),
                StageState::Done => "✓".into(),
                StageState::Failed => "✗".into(),
                StageState::Pending => "…".into(),
                StageState::Running => format!("{}/{}", s.done, s.total),
            };
            spans.push(Span::raw(format!("{} ", s.stage.label())));
            spans.push(Span::styled(count, t.gauge(s.state)));
        }
        lines.push(Line::from(spans));
    } else {
        let count_w = 26usize;
        let bar_w = width.saturating_sub(label_w + count_w + 2).max(1);
        for s in &p.stages {
            let frac = match s.state {
                StageState::Done | StageState::Failed => 1.0,
                _ if s.total == 0 => 0.0,
                _ => f64::from(s.done) / f64::from(s.total),
            };
            let style = t.gauge(s.state);
            let mut spans = vec![Span::raw(format!(
                "{:<label_w$}",
                fit(s.stage.label(), label_w - 1)
            ))];
            spans.extend(bar(frac, bar_w, style, muted));
            let count = match s.state {
                StageState::Skipped => "not configured".to_string(),
                StageState::Pending => "waiting".to_string(),
                _ => format!("{}/{} {}", s.done, s.total, s.stage.unit()),
            };
            spans.push(Span::raw(format!(
                " {:<w$}",
                fit(&count, count_w - 9),
                w = count_w - 9
            )));
            spans.push(Span::styled(format!(" {}", state_word(s.state)), style));
            lines.push(Line::from(spans));
        }
    }
    let mut numbers = vec![
        Span::styled("in flight ", muted),
        Span::raw(p.in_flight.to_string()),
        Span::styled(" · requests ", muted),
        Span::raw(text::count(p.requests)),
        Span::styled(" · 304s ", muted),
        Span::raw(format!(
            "{} ({})",
            text::count(p.not_modified),
            text::percent(p.not_modified, p.requests)
        )),
        Span::styled(" · from the store ", muted),
        Span::raw(text::count(p.cache_hits)),
    ];
    for b in &p.budgets {
        let low = b.limit > 0 && b.remaining * 10 < b.limit;
        numbers.push(Span::styled(" · ", muted));
        numbers.push(Span::styled(
            format!(
                "{} {}/{}",
                b.source,
                text::count(b.remaining),
                text::count(b.limit)
            ),
            if low {
                t.style(Role::SeverityWarn)
            } else {
                Style::new()
            },
        ));
        if let Some(at) = b.resets_at.filter(|_| low) {
            numbers.push(Span::styled(
                format!(
                    ", resets in {}",
                    text::countdown(text::between(view.now, at))
                ),
                muted,
            ));
        }
    }
    lines.push(Line::from(numbers));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
