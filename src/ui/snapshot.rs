//! The Snapshot tab: live progress while a snapshot runs; when idle, the last run, the
//! environment × component matrix with a cursor and a detail view, and the run history.

use std::collections::VecDeque;
use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Row, Table, TableState, Wrap};
use time::OffsetDateTime;

use super::text::{self, fit};
use super::theme::{Role, Theme};
use super::widgets::{bar, centered, panel};
use super::{AppEvent, Effect, Outcome, Tab, View};
use crate::app::action::Action;
use crate::engine::events::{EngineEvent, Level, LogLine, Progress, StageState};
use crate::engine::model::{Cell, RunSummary, Snapshot};

/// Lines of the run log kept in memory.
pub const LOG_LINES: usize = 500;
/// The detail view is not stretched wider than this on big panes.
const DETAIL_MAX_WIDTH: u16 = 110;
/// Lines one PageUp/PageDown scrolls the log.
const LOG_PAGE_LINES: usize = 10;
/// Runs kept for the history table.
pub const HISTORY_ROWS: usize = 50;

/// When the next automatic snapshot is due, as the engine last said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NextRun {
    /// The engine has not said yet.
    Unknown,
    ManualOnly,
    At(OffsetDateTime),
}

#[derive(Debug, Clone)]
pub struct SnapshotTab {
    snapshot: Option<Snapshot>,
    history: Vec<RunSummary>,
    /// Error of the last run when it produced no snapshot.
    last_error: Option<String>,
    progress: Option<Progress>,
    /// The matrix of the running snapshot so far (what arrived, the rest carried).
    provisional: Option<Snapshot>,
    next_run: NextRun,
    log: VecDeque<LogLine>,
    /// (component row, environment column) in the matrix.
    cursor: (usize, usize),
    /// Scroll offset of the open detail view.
    detail: Option<u16>,
    /// Idle view: the log of the last run in place of the run history.
    show_log: bool,
    /// Lines scrolled back from the end of the log; 0 follows new lines.
    log_back: usize,
}

impl SnapshotTab {
    /// Starts with what the store already holds, so the screen is full before any
    /// network call.
    pub fn new(snapshot: Option<Snapshot>, history: Vec<RunSummary>) -> SnapshotTab {
        SnapshotTab {
            snapshot,
            history,
            last_error: None,
            progress: None,
            provisional: None,
            next_run: NextRun::Unknown,
            log: VecDeque::new(),
            cursor: (0, 0),
            detail: None,
            show_log: false,
            log_back: 0,
        }
    }

    pub fn is_running(&self) -> bool {
        self.progress.is_some()
    }

    pub fn cursor(&self) -> (usize, usize) {
        self.cursor
    }

    pub fn log_shown(&self) -> bool {
        self.show_log || self.progress.is_some()
    }

    pub fn log_scrolled_back(&self) -> usize {
        self.log_back
    }

    pub fn detail_open(&self) -> bool {
        self.detail.is_some()
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn history(&self) -> &[RunSummary] {
        &self.history
    }

    pub fn log(&self) -> impl Iterator<Item = &LogLine> {
        self.log.iter()
    }

    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    pub fn next_run(&self) -> NextRun {
        self.next_run
    }

    fn dims(&self) -> (usize, usize) {
        self.snapshot
            .as_ref()
            .map(|s| (s.components.len(), s.environments.len()))
            .unwrap_or((0, 0))
    }

    fn selected(&self) -> Option<(&str, &str, Option<&Cell>)> {
        let s = self.snapshot.as_ref()?;
        let comp = s.components.get(self.cursor.0)?;
        let env = s.environments.get(self.cursor.1)?;
        Some((env, comp, s.cell(env, comp)))
    }

    fn clamp_cursor(&mut self) {
        let (rows, cols) = self.dims();
        self.cursor.0 = self.cursor.0.min(rows.saturating_sub(1));
        self.cursor.1 = self.cursor.1.min(cols.saturating_sub(1));
    }

    fn push_log(&mut self, line: LogLine) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
        // A reader scrolled back keeps the same lines in view.
        if self.log_back > 0 {
            self.log_back = (self.log_back + 1).min(self.log.len().saturating_sub(1));
        }
    }
}

impl Tab for SnapshotTab {
    fn title(&self) -> &'static str {
        "Snapshot"
    }

    fn handle_key(&mut self, action: Action) -> Outcome {
        if let Some(scroll) = &mut self.detail {
            return match action {
                Action::Back | Action::Open => {
                    self.detail = None;
                    Outcome::Redraw
                }
                Action::Up => {
                    *scroll = scroll.saturating_sub(1);
                    Outcome::Redraw
                }
                Action::Down => {
                    *scroll = scroll.saturating_add(1);
                    Outcome::Redraw
                }
                Action::PageUp => {
                    *scroll = scroll.saturating_sub(LOG_PAGE_LINES as u16);
                    Outcome::Redraw
                }
                Action::PageDown => {
                    *scroll = scroll.saturating_add(LOG_PAGE_LINES as u16);
                    Outcome::Redraw
                }
                Action::Trigger | Action::Cancel => self.run_key(action),
                _ => Outcome::Ignored,
            };
        }
        let (rows, cols) = self.dims();
        let before = self.cursor;
        match action {
            Action::Up => self.cursor.0 = self.cursor.0.saturating_sub(1),
            Action::Down => self.cursor.0 = (self.cursor.0 + 1).min(rows.saturating_sub(1)),
            Action::Left => self.cursor.1 = self.cursor.1.saturating_sub(1),
            Action::Right => self.cursor.1 = (self.cursor.1 + 1).min(cols.saturating_sub(1)),
            Action::Open => {
                return if self.selected().is_some() {
                    self.detail = Some(0);
                    Outcome::Redraw
                } else {
                    Outcome::Say("no snapshot yet: nothing to open".into())
                };
            }
            Action::Trigger | Action::Cancel => return self.run_key(action),
            Action::Log => {
                self.show_log = !self.show_log;
                self.log_back = 0;
                return Outcome::Redraw;
            }
            Action::PageUp if self.log_shown() => {
                let before = self.log_back;
                self.log_back =
                    (self.log_back + LOG_PAGE_LINES).min(self.log.len().saturating_sub(1));
                return if self.log_back == before {
                    Outcome::Ignored
                } else {
                    Outcome::Redraw
                };
            }
            Action::PageDown if self.log_shown() => {
                let before = self.log_back;
                self.log_back = self.log_back.saturating_sub(LOG_PAGE_LINES);
                return if self.log_back == before {
                    Outcome::Ignored
                } else {
                    Outcome::Redraw
                };
            }
            _ => return Outcome::Ignored,
        }
        if self.cursor == before {
            Outcome::Ignored
        } else {
            Outcome::Redraw
        }
    }

    fn on_event(&mut self, event: &AppEvent) -> bool {
        let AppEvent::Engine(ev) = event else {
            return false;
        };
        match ev {
            EngineEvent::Started(p) => {
                self.log.clear();
                self.log_back = 0;
                self.progress = Some((**p).clone());
            }
            EngineEvent::Progress(p) => self.progress = Some((**p).clone()),
            EngineEvent::Provisional(s) => self.provisional = Some((**s).clone()),
            EngineEvent::Log(line) => self.push_log(line.clone()),
            EngineEvent::Finished { summary, snapshot } => {
                self.progress = None;
                self.provisional = None;
                self.last_error = None;
                self.snapshot = Some((**snapshot).clone());
                self.history.insert(0, summary.clone());
                self.history.truncate(HISTORY_ROWS);
                self.clamp_cursor();
            }
            EngineEvent::Failed { summary, error } => {
                self.progress = None;
                self.provisional = None;
                self.last_error = Some(error.clone());
                self.history.insert(0, summary.clone());
                self.history.truncate(HISTORY_ROWS);
            }
            EngineEvent::AlreadyRunning => return false,
            EngineEvent::NextRun(at) => {
                self.next_run = match at {
                    Some(t) => NextRun::At(*t),
                    None => NextRun::ManualOnly,
                }
            }
        }
        true
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        match &self.progress {
            Some(p) => self.render_running(frame, area, p, view),
            None => self.render_idle(frame, area, view),
        }
        if self.detail.is_some() {
            self.render_detail(frame, area, view);
        }
    }

    fn hints(&self) -> Vec<Action> {
        if self.detail.is_some() {
            vec![Action::Up, Action::Down, Action::Back]
        } else if self.is_running() {
            vec![Action::Cancel, Action::PageUp, Action::PageDown]
        } else {
            vec![
                Action::Trigger,
                Action::Up,
                Action::Down,
                Action::Left,
                Action::Right,
                Action::Open,
                Action::Log,
            ]
        }
    }

    fn next_change(&self, now: OffsetDateTime) -> Option<Duration> {
        if let Some(p) = &self.progress {
            // The elapsed seconds tick while a run is busy.
            let e = text::between(p.started_at, now);
            return Some(Duration::from_secs(1) - Duration::from_nanos(e.subsec_nanos().into()));
        }
        let mut next: Option<Duration> = None;
        let mut consider = |d: Duration| next = Some(next.map_or(d, |n| n.min(d)));
        if let Some(s) = &self.snapshot {
            consider(text::age_changes_in(text::between(s.finished_at, now)));
            for cell in s.cells.values().flat_map(|c| c.values()) {
                if let Some(at) = cell.deployed_at {
                    consider(text::age_changes_in(text::between(at, now)));
                }
            }
        }
        if let Some(r) = self.history.first() {
            consider(text::age_changes_in(text::between(run_end(r), now)));
        }
        if let NextRun::At(t) = self.next_run {
            let left = text::between(now, t);
            let step = if left.as_secs() < 60 { 1 } else { 60 };
            let into = left.as_secs() % step;
            consider(Duration::from_secs(if into == 0 { step } else { into }));
        }
        next
    }
}

impl SnapshotTab {
    fn run_key(&mut self, action: Action) -> Outcome {
        match (action, &self.progress) {
            (Action::Trigger, Some(p)) => Outcome::Say(format!(
                "a snapshot is already running ({:.0}%)",
                p.fraction * 100.0
            )),
            (Action::Trigger, None) => Outcome::Do(Effect::Trigger),
            (Action::Cancel, Some(_)) => Outcome::Do(Effect::Cancel),
            (Action::Cancel, None) => Outcome::Say("no snapshot is running".into()),
            _ => Outcome::Ignored,
        }
    }

    fn status_lines(&self, view: &View) -> Vec<Line<'static>> {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let mut first: Vec<Span> = Vec::new();
        match self.history.first() {
            None => first.push(Span::styled("No snapshot yet.", t.style(Role::Notice))),
            Some(r) => {
                let (word, style) = run_result(r, t);
                first.push(Span::raw(format!("Last run #{} ", r.id)));
                first.push(Span::styled(word, style));
                let ended = run_end(r);
                first.push(Span::styled(
                    format!(
                        " · ended {} ({}) · took {} · {} errors · {}",
                        text::clock(ended, view.offset),
                        text::ago(text::between(ended, view.now)),
                        text::duration(Duration::from_millis(r.duration_ms)),
                        r.errors,
                        trigger_word(r.trigger),
                    ),
                    muted,
                ));
            }
        }
        let mut second: Vec<Span> = vec![Span::raw("Next snapshot: ")];
        match self.next_run {
            NextRun::Unknown | NextRun::ManualOnly => {
                second.push(Span::styled("manual only", t.style(Role::Title)))
            }
            NextRun::At(at) => second.push(Span::styled(
                format!(
                    "in {} ({})",
                    text::countdown(text::between(view.now, at)),
                    text::clock(at, view.offset)
                ),
                t.style(Role::Title),
            )),
        }
        second.push(Span::styled(" · ", muted));
        second.push(Span::styled(
            view.keys.first(Action::Trigger),
            t.style(Role::Key),
        ));
        second.push(Span::styled(" runs one now", muted));
        if let Some(e) = &self.last_error {
            second.push(Span::styled(" · last error: ", muted));
            second.push(Span::styled(e.clone(), t.style(Role::SeverityError)));
        } else if let Some(s) = &self.snapshot
            && !s.failures.is_empty()
        {
            second.push(Span::styled(" · ", muted));
            second.push(Span::styled(
                format!("{} failed: {}", s.failures.len(), s.failures[0]),
                t.style(Role::SeverityWarn),
            ));
        }
        vec![Line::from(first), Line::from(second)]
    }

    fn render_idle(&self, frame: &mut Frame, area: Rect, view: &View) {
        let (rows, _) = self.dims();
        let matrix_h = (rows.max(1) as u16 + 3).min(area.height.saturating_sub(2) / 2 + 4);
        let show_log = area.height >= 40 && !self.log.is_empty();
        let [status, matrix, history, log] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(matrix_h),
            Constraint::Fill(2),
            Constraint::Fill(if show_log { 1 } else { 0 }),
        ])
        .areas(area);
        // One line each, cut at the edge: the layout below must not move.
        frame.render_widget(Paragraph::new(self.status_lines(view)), status);
        self.render_matrix(frame, matrix, view);
        if self.show_log {
            self.render_log(frame, history, "Log of the last run", view);
        } else {
            self.render_history(frame, history, view);
        }
        if show_log && !self.show_log {
            self.render_log(frame, log, "Log of the last run", view);
        }
    }

    fn render_matrix(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let Some(s) = &self.snapshot else {
            let block = panel("Deployments", t);
            frame.render_widget(
                Paragraph::new(Line::styled(
                    format!(
                        "No snapshot yet — press {} to take one.",
                        view.keys.first(Action::Trigger)
                    ),
                    t.style(Role::Muted),
                ))
                .block(block),
                area,
            );
            return;
        };
        let n_env = s.environments.len().max(1) as u16;
        // The health figure only when a cell has room for it next to the tag.
        let health_q = s
            .health_queries
            .first()
            .filter(|_| area.width / n_env >= 28);
        let mut title = format!(
            "Deployments · tag age build {}tickets",
            health_q.map(|q| format!("{q} ")).unwrap_or_default()
        );
        if s.cancelled {
            title.push_str(" · CANCELLED, partial");
        } else if s.partial {
            title.push_str(" · PARTIAL");
        }
        let block = panel(title, t);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let comp_w = s
            .components
            .iter()
            .map(|c| unicode_width::UnicodeWidthStr::width(c.as_str()))
            .max()
            .unwrap_or(9)
            .clamp(9, 20) as u16;
        let cell_w = (inner.width.saturating_sub(comp_w + 1) / n_env).saturating_sub(1) as usize;
        let header = Row::new(
            std::iter::once(ratatui::widgets::Cell::from("component")).chain(
                s.environments
                    .iter()
                    .map(|e| ratatui::widgets::Cell::from(fit(e, cell_w).into_owned())),
            ),
        )
        .style(t.style(Role::Header));
        let rows = s.components.iter().enumerate().map(|(r, comp)| {
            let mut cells = vec![ratatui::widgets::Cell::from(
                fit(comp, comp_w as usize).into_owned(),
            )];
            for (c, env) in s.environments.iter().enumerate() {
                let selected = self.cursor == (r, c);
                cells.push(ratatui::widgets::Cell::from(cell_line(
                    s.cell(env, comp),
                    health_q.map(String::as_str),
                    cell_w,
                    selected,
                    view,
                )));
            }
            Row::new(cells)
        });
        let widths = std::iter::once(Constraint::Length(comp_w))
            .chain(s.environments.iter().map(|_| Constraint::Fill(1)));
        let table = Table::new(rows, widths).header(header).column_spacing(1);
        let mut state = TableState::default().with_selected(Some(self.cursor.0));
        frame.render_stateful_widget(table, inner, &mut state);
    }

    fn render_history(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let block = panel(format!("Runs ({})", self.history.len()), t);
        if self.history.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("No runs recorded yet.", t.style(Role::Muted)))
                    .block(block),
                area,
            );
            return;
        }
        let header = Row::new([
            "run", "start", "took", "trigger", "requests", "304 %", "hits", "errors", "result",
        ])
        .style(t.style(Role::Header));
        let rows = self.history.iter().map(|r| {
            let (word, style) = run_result(r, t);
            Row::new(vec![
                ratatui::widgets::Cell::from(format!("#{}", r.id)),
                ratatui::widgets::Cell::from(text::date_clock(r.started_at, view.offset)),
                ratatui::widgets::Cell::from(text::duration(Duration::from_millis(r.duration_ms))),
                ratatui::widgets::Cell::from(trigger_word(r.trigger)),
                ratatui::widgets::Cell::from(text::count(r.requests)),
                ratatui::widgets::Cell::from(text::percent(r.not_modified, r.requests)),
                ratatui::widgets::Cell::from(text::count(r.cache_hits)),
                ratatui::widgets::Cell::from(r.errors.to_string()),
                ratatui::widgets::Cell::from(Span::styled(word, style)),
            ])
        });
        let widths = [
            Constraint::Length(6),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Fill(1),
        ];
        frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
    }

    fn render_running(&self, frame: &mut Frame, area: Rect, p: &Progress, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let budget_lines = 2u16;
        let progress_h = (p.stages.len() as u16 + 4 + budget_lines).min(area.height);
        // On tall panes the last snapshot's matrix stays in view under the progress.
        let matrix_h = if area.height >= 40 && self.snapshot.is_some() {
            self.dims().0 as u16 + 3
        } else {
            0
        };
        let [top, matrix, log] = Layout::vertical([
            Constraint::Length(progress_h),
            Constraint::Length(matrix_h),
            Constraint::Fill(1),
        ])
        .areas(area);
        if matrix_h > 0 {
            self.render_matrix(frame, matrix, view);
        }
        let elapsed = text::between(p.started_at, view.now);
        let block = panel(
            format!(
                "Snapshot #{} running · {} · {}",
                p.run_id,
                trigger_word(p.trigger),
                text::seconds(elapsed)
            ),
            t,
        );
        let inner = block.inner(top);
        frame.render_widget(block, top);
        let label_w = 20usize;
        let count_w = 26usize;
        let bar_w = (inner.width as usize)
            .saturating_sub(label_w + count_w + 2)
            .max(1);
        let mut lines: Vec<Line> = Vec::new();
        let eta = match p.eta {
            Some(d) if d < Duration::from_secs(1) => "ETA <1s".into(),
            Some(d) => format!("ETA {}", text::seconds(d)),
            None => "ETA learning (first run)".into(),
        };
        let mut overall = vec![Span::styled(
            format!("{:<label_w$}", "overall"),
            t.style(Role::Title),
        )];
        overall.extend(bar(p.fraction, bar_w, t.style(Role::GaugeRunning), muted));
        overall.push(Span::styled(
            format!(" {:>4.0}%  {eta}", p.fraction * 100.0),
            t.style(Role::StatusRunning),
        ));
        lines.push(Line::from(overall));
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
        lines.push(Line::from(vec![
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
            Span::styled(" · cache hits ", muted),
            Span::raw(text::count(p.cache_hits)),
        ]));
        let mut budgets: Vec<Span> = vec![Span::styled("budgets ", muted)];
        if p.budgets.is_empty() {
            budgets.push(Span::styled("none reported yet", muted));
        }
        for (i, b) in p.budgets.iter().enumerate() {
            if i > 0 {
                budgets.push(Span::styled(" · ", muted));
            }
            let low = b.limit > 0 && b.remaining * 10 < b.limit;
            let style = if low {
                t.style(Role::SeverityWarn)
            } else {
                Style::new()
            };
            budgets.push(Span::styled(
                format!(
                    "{} {}/{}",
                    b.source,
                    text::count(b.remaining),
                    text::count(b.limit)
                ),
                style,
            ));
            if let Some(at) = b.resets_at {
                budgets.push(Span::styled(
                    format!(
                        ", resets in {}",
                        text::countdown(text::between(view.now, at))
                    ),
                    muted,
                ));
            }
        }
        lines.push(Line::from(budgets));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        self.render_log(frame, log, "Log", view);
    }

    fn render_log(&self, frame: &mut Frame, area: Rect, title: &str, view: &View) {
        let t = view.theme;
        let title = if self.log_back > 0 {
            format!(
                "{title} ({}, {} newer below)",
                self.log.len(),
                self.log_back
            )
        } else {
            format!("{title} ({})", self.log.len())
        };
        let block = panel(title, t);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if self.log.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("no warnings so far", t.style(Role::Muted))),
                inner,
            );
            return;
        }
        // Newest at the bottom; the view follows the end unless scrolled back.
        let n = inner.height as usize;
        let end = self.log.len().saturating_sub(self.log_back);
        let lines: Vec<Line> = self
            .log
            .iter()
            .take(end)
            .skip(end.saturating_sub(n))
            .map(|l| {
                Line::from(vec![
                    Span::styled(
                        format!("{} ", text::clock(l.at, view.offset)),
                        t.style(Role::Muted),
                    ),
                    Span::styled(format!("{:<5} ", level_word(l.level)), t.severity(l.level)),
                    Span::styled(format!("{}: ", l.source), t.style(Role::Title)),
                    Span::raw(l.message.clone()),
                ])
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }

    fn render_detail(&self, frame: &mut Frame, area: Rect, view: &View) {
        let Some((env, comp, cell)) = self.selected() else {
            return;
        };
        let t = view.theme;
        let popup = centered(
            area,
            area.width.saturating_sub(4).clamp(1, DETAIL_MAX_WIDTH),
            area.height.saturating_sub(2).max(1),
        );
        frame.render_widget(Clear, popup);
        let block = panel(format!("{comp} in {env}"), t).border_style(t.style(Role::BorderFocused));
        let inner = block.inner(popup);
        frame.render_widget(block, popup);
        let muted = t.style(Role::Muted);
        let short = |s: &str| s.chars().take(10).collect::<String>();
        let mut lines: Vec<Line> = Vec::new();
        let Some(cell) = cell else {
            lines.push(Line::styled(
                "No data for this cell in the last snapshot.",
                muted,
            ));
            frame.render_widget(Paragraph::new(lines), inner);
            return;
        };
        let mut deployed = vec![
            Span::styled("deployed  ", muted),
            Span::styled(
                cell.tag.clone().unwrap_or_else(|| "unknown".into()),
                t.style(Role::Title),
            ),
        ];
        if let Some(at) = cell.deployed_at {
            deployed.push(Span::raw(format!(
                " since {} ({})",
                text::date_clock(at, view.offset),
                text::ago(text::between(at, view.now))
            )));
        }
        lines.push(Line::from(deployed));
        if let Some(r) = &cell.resolved {
            let via = match r.via.as_str() {
                "newTag" => "its newTag",
                "replaced tag" => "the tag it replaced",
                "registry" => "the image's revision label",
                other => other,
            };
            lines.push(Line::from(vec![
                Span::styled("pinned    ", muted),
                Span::raw(format!("digest of {} (from {via})", r.tag)),
            ]));
        }
        if let Some(why) = &cell.unresolved {
            lines.push(Line::from(vec![
                Span::styled("unknown   ", muted),
                Span::styled(why.clone(), t.style(Role::SeverityWarn)),
            ]));
        }
        lines.push(Line::from(vec![
            Span::styled("commits   ", muted),
            Span::raw(format!(
                "gitops {} · source {}",
                cell.deploy_commit
                    .as_deref()
                    .map(short)
                    .unwrap_or_else(|| "–".into()),
                cell.source_commit
                    .as_deref()
                    .map(short)
                    .unwrap_or_else(|| "not resolved".into())
            )),
        ]));
        let build = match &cell.build {
            None => vec![Span::styled("no build data", muted)],
            Some(b) => {
                let mut v = vec![
                    Span::raw(format!("#{} ", b.number.as_deref().unwrap_or("?"))),
                    Span::styled(
                        b.status.clone().unwrap_or_else(|| "UNKNOWN".into()),
                        t.build(b.status.as_deref()),
                    ),
                ];
                if let Some(state) = b.state.as_deref().filter(|s| *s != "finished") {
                    v.push(Span::raw(format!(" ({state})")));
                }
                if let Some(at) = b.finished_at {
                    v.push(Span::styled(
                        format!(" finished {}", text::date_clock(at, view.offset)),
                        muted,
                    ));
                }
                v
            }
        };
        lines.push(Line::from(
            [vec![Span::styled("build     ", muted)], build].concat(),
        ));
        let health = if cell.health.is_empty() {
            "no metrics".to_string()
        } else {
            cell.health
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k} {}",
                        v.map(text::figure).unwrap_or_else(|| "no data".into())
                    )
                })
                .collect::<Vec<_>>()
                .join(" · ")
        };
        lines.push(Line::from(vec![
            Span::styled("health    ", muted),
            Span::raw(health),
        ]));
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("Deployment history ({}, newest first)", cell.events.len()),
            t.style(Role::Header),
        ));
        if cell.events.is_empty() {
            lines.push(Line::styled("  no deployments in the window", muted));
        }
        for e in cell.events.iter().rev() {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {}  ", text::date_clock(e.at, view.offset)),
                    muted,
                ),
                Span::raw(format!(
                    "{} → {}",
                    e.from.as_deref().unwrap_or("∅"),
                    e.to.as_deref().unwrap_or("∅")
                )),
                Span::styled(format!("  {}", short(&e.commit)), muted),
            ]));
        }
        lines.push(Line::raw(""));
        let tickets = cell.tickets.as_deref().unwrap_or_default();
        lines.push(Line::styled(
            match &cell.tickets {
                Some(list) => format!("Shipped tickets ({})", list.len()),
                None => "Shipped tickets (unknown)".to_string(),
            },
            t.style(Role::Header),
        ));
        match &cell.tickets {
            None => lines.push(Line::styled(
                format!(
                    "  unknown: {}",
                    cell.unresolved.as_deref().unwrap_or("not resolved")
                ),
                muted,
            )),
            Some(list) if list.is_empty() => lines.push(Line::styled(
                "  none found in the shipped pull requests",
                muted,
            )),
            Some(_) => {}
        }
        for tk in tickets {
            let status = match (tk.status.as_deref(), tk.in_jira) {
                (Some(s), _) => s,
                (None, Some(false)) => "not in Jira",
                (None, _) => "?",
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<12}", tk.key), t.style(Role::Title)),
                Span::styled(format!("{:<14}", fit(status, 13)), muted),
                Span::raw(tk.summary.clone().unwrap_or_default()),
            ]));
        }
        let max_scroll = (lines.len() as u16).saturating_sub(inner.height);
        let scroll = self.detail.unwrap_or(0).min(max_scroll);
        frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
    }
}

/// One matrix cell: `v1.4.2 3d ✓ 0.012 2T`, the tag cut to fit.
fn cell_line(
    cell: Option<&Cell>,
    health_q: Option<&str>,
    width: usize,
    selected: bool,
    view: &View,
) -> Line<'static> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let Some(cell) = cell else {
        let l = Line::styled("–", muted);
        return if selected {
            l.style(t.style(Role::Selection))
        } else {
            l
        };
    };
    let age = cell
        .deployed_at
        .map(|at| text::age_short(text::between(at, view.now)))
        .unwrap_or_else(|| "?".into());
    let (glyph, build_style) = match &cell.build {
        None => ("·", t.build(None)),
        Some(b) => {
            let g = match (b.state.as_deref(), b.status.as_deref()) {
                (Some("running" | "queued"), _) => "…",
                (_, Some(s)) if s.eq_ignore_ascii_case("SUCCESS") => "✓",
                (_, Some(s))
                    if s.eq_ignore_ascii_case("FAILURE") || s.eq_ignore_ascii_case("ERROR") =>
                {
                    "✗"
                }
                _ => "?",
            };
            (g, t.build(b.status.as_deref()))
        }
    };
    let health = health_q
        .map(|q| match cell.health.get(q).copied().flatten() {
            Some(v) => text::figure(v),
            None => "–".into(),
        })
        .map(|h| format!(" {h}"))
        .unwrap_or_default();
    let tickets = match &cell.tickets {
        Some(list) => format!(" {}T", list.len()),
        None => " ?T".to_string(),
    };
    let suffix_w = 1 + age.len() + 2 + health.chars().count() + tickets.len();
    // A digest pin shows the tag it stands for, marked `@`.
    let pinned = cell.resolved.as_ref().map(|r| format!("{}@", r.tag));
    let tag = pinned.as_deref().or(cell.tag.as_deref()).unwrap_or("?");
    let tag = fit(tag, width.saturating_sub(suffix_w).max(1)).into_owned();
    let mut line = Line::from(vec![
        Span::raw(tag),
        Span::styled(format!(" {age} "), muted),
        Span::styled(glyph, build_style),
        Span::raw(health),
        Span::styled(tickets, muted),
    ]);
    if selected {
        line = line.style(t.style(Role::Selection));
        for s in &mut line.spans {
            s.style = t.style(Role::Selection);
        }
    }
    line
}

/// When a run ended (its summary has the start and the duration).
fn run_end(r: &RunSummary) -> OffsetDateTime {
    r.started_at + Duration::from_millis(r.duration_ms)
}

fn run_result(r: &RunSummary, t: &Theme) -> (&'static str, Style) {
    if r.error.is_some() {
        ("✗ failed", t.style(Role::StatusFailed))
    } else if r.cancelled {
        ("◐ cancelled, partial", t.style(Role::StatusPartial))
    } else if r.partial {
        ("◐ partial", t.style(Role::StatusPartial))
    } else {
        ("✓ complete", t.style(Role::StatusOk))
    }
}

fn trigger_word(t: crate::engine::model::Trigger) -> &'static str {
    match t {
        crate::engine::model::Trigger::Manual => "manual",
        crate::engine::model::Trigger::Scheduled => "scheduled",
        crate::engine::model::Trigger::Cli => "cli",
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

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}
