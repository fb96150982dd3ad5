//! The Schedule tab. Automatic snapshots come with the scheduler; until then the tab
//! says that runs are manual and shows the policy the form will edit.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use time::OffsetDateTime;

use super::snapshot::NextRun;
use super::text;
use super::theme::Role;
use super::widgets::{labelled, panel};
use super::{AppEvent, Outcome, Tab, View};
use crate::app::action::Action;
use crate::engine::events::EngineEvent;

/// The fields of the scheduling policy, as the form will show them.
const POLICY: &[(&str, &str)] = &[
    ("enabled", "automatic snapshots on or off (pause / resume)"),
    (
        "business hours",
        "interval between runs inside the window, e.g. 15m",
    ),
    ("off hours", "interval outside the window, e.g. 2h"),
    (
        "window",
        "days, start–end and time zone, e.g. Mon–Fri 08:00–18:00 Europe/Berlin",
    ),
    (
        "cooldown",
        "quiet time after a manual run before the next automatic one",
    ),
    (
        "jitter",
        "random spread so shared boxes do not hit the APIs together",
    ),
    (
        "timeout",
        "per-run limit; a run past it is cancelled and kept as partial",
    ),
];

#[derive(Debug, Clone)]
pub struct ScheduleTab {
    next_run: NextRun,
}

impl Default for ScheduleTab {
    fn default() -> Self {
        ScheduleTab {
            next_run: NextRun::Unknown,
        }
    }
}

impl Tab for ScheduleTab {
    fn title(&self) -> &'static str {
        "Schedule"
    }

    fn handle_key(&mut self, _action: Action) -> Outcome {
        Outcome::Ignored
    }

    fn on_event(&mut self, event: &AppEvent) -> bool {
        if let AppEvent::Engine(EngineEvent::Schedule(status)) = event {
            self.next_run = NextRun::from_status(status.as_deref());
            return true;
        }
        false
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let mut lines = vec![match self.next_run {
            NextRun::At(at) => Line::from(vec![
                Span::raw("Next automatic snapshot "),
                Span::styled(
                    format!(
                        "in {} ({})",
                        text::countdown(text::between(view.now, at)),
                        text::clock(at, view.offset)
                    ),
                    t.style(Role::Title),
                ),
            ]),
            other => Line::from(vec![
                Span::raw("Snapshots are "),
                Span::styled(other.word().unwrap_or_default(), t.style(Role::Title)),
                Span::raw(". Press "),
                Span::styled(view.keys.first(Action::Trigger), t.style(Role::Key)),
                Span::raw(" on the Snapshot tab to run one."),
            ]),
        }];
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "The policy this tab will edit (saved at once, used from the next run):",
            t.style(Role::Header),
        ));
        // Inside the panel's borders; a wrapped description stays in its column.
        let width = usize::from(area.width.saturating_sub(2));
        for (name, what) in POLICY {
            lines.extend(labelled(
                &format!("  {name}"),
                18,
                what,
                width,
                t.style(Role::Title),
                muted,
            ));
        }
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "With inline validation and a preview of the next runs.",
            muted,
        ));
        frame.render_widget(
            Paragraph::new(lines)
                .block(panel("Schedule", t))
                .wrap(Wrap { trim: false }),
            area,
        );
    }

    fn hints(&self) -> Vec<Action> {
        vec![Action::TabSnapshot]
    }

    fn next_change(&self, now: OffsetDateTime) -> Option<Duration> {
        match self.next_run {
            NextRun::At(at) => {
                let left = text::between(now, at).as_secs();
                let step = if left < 60 { 1 } else { 60 };
                Some(Duration::from_secs(match left % step {
                    0 => step,
                    r => r,
                }))
            }
            _ => None,
        }
    }
}
