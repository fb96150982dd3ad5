//! The Snapshot tab: the environment × component matrix (the last good value of every
//! cell, marked stale where a later run could not bring a newer one), live progress above
//! it while a snapshot runs, the run history as a list to open, and the run log.
//!
//! Three panes take the focus in turn (`]`/`[`): the matrix, the runs, the log. Popups
//! (a cell, a run, the failures) scroll within their content and never past it.

pub mod detail;
pub mod log;
pub mod matrix;
mod progress;
pub mod runs;

// Measures of the last frame (`&self` draws), as the Reports tab keeps them.
use std::cell::Cell as Feedback;
use std::collections::HashMap;
use std::time::Duration;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use time::OffsetDateTime;

use super::text;
use super::theme::Role;
use super::widgets::{Scroll, centered, panel};
use super::{AppEvent, Effect, Outcome, Tab, View};
use crate::app::action::{Action, Group};
use crate::engine::events::{EngineEvent, LogLine, Progress};
use crate::engine::model::{Cell, RunDetail, RunSummary, Snapshot};
use log::LogRing;
use matrix::{MatrixView, Window};
use runs::{errors, result, run_end, trigger_word};

pub use log::LOG_LINES;
/// Popups are not stretched wider than this on big panes.
const POPUP_MAX_WIDTH: u16 = 110;
/// Lines one PageUp/PageDown moves where the pane gives no better measure.
const PAGE_LINES: usize = 10;
/// Runs kept for the history table.
pub const HISTORY_ROWS: usize = 50;
/// Rows the lower pane (runs or log) keeps under the matrix at the least.
const LOWER_MIN_ROWS: u16 = 5;

/// When the next automatic snapshot is due, as the engine last said.
/// What `p` does: pause or resume automatic runs, or say there is no schedule.
pub fn pause_key(paused: Option<bool>) -> Outcome {
    match paused {
        Some(p) => Outcome::Do(Effect::PauseSchedule(!p)),
        None => Outcome::Say("no schedule in this process: snapshots run when asked".into()),
    }
}

/// The footer's word for `p`.
pub fn pause_word(paused: Option<bool>) -> &'static str {
    if paused == Some(true) {
        "resume"
    } else {
        "pause"
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NextRun {
    /// The engine has not said yet.
    Unknown,
    /// No scheduler (headless engines, tests).
    ManualOnly,
    /// The policy's `enabled = false`.
    Disabled,
    Paused,
    At(OffsetDateTime),
}

impl NextRun {
    /// What the engine's schedule status says.
    pub fn from_status(status: Option<&crate::engine::scheduler::ScheduleStatus>) -> NextRun {
        match status {
            None => NextRun::ManualOnly,
            Some(s) if !s.enabled => NextRun::Disabled,
            Some(s) if s.paused => NextRun::Paused,
            Some(s) => s.next_at.map_or(NextRun::ManualOnly, NextRun::At),
        }
    }

    /// The words for it when no time is due ("manual only", "paused").
    pub fn word(self) -> Option<&'static str> {
        match self {
            NextRun::Unknown | NextRun::ManualOnly => Some("manual only"),
            NextRun::Disabled => Some("manual only (schedule off)"),
            NextRun::Paused => Some("paused"),
            NextRun::At(_) => None,
        }
    }
}

/// Which pane the arrows move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Matrix,
    Runs,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Popup {
    Cell,
    Run(u64),
    Failures,
}

#[derive(Debug, Clone)]
pub struct SnapshotTab {
    snapshot: Option<Snapshot>,
    /// The matrix of the running snapshot so far (what arrived, the rest carried).
    provisional: Option<Snapshot>,
    history: Vec<RunSummary>,
    /// Per-source figures, failures and log of the runs in the history, when kept.
    details: HashMap<u64, RunDetail>,
    /// Error of the last run when it produced no snapshot.
    last_error: Option<String>,
    progress: Option<Progress>,
    next_run: NextRun,
    /// Whether automatic runs are paused (None: no scheduler).
    paused: Option<bool>,
    log: LogRing,
    /// Lines scrolled back from the end of the log; 0 follows new lines.
    log_back: usize,
    /// (row among the filtered components, environment column).
    cursor: (usize, usize),
    filter: String,
    filtering: bool,
    focus: Focus,
    runs_cursor: usize,
    popup: Option<Popup>,
    /// The popup's scroll, clamped to its content as last drawn.
    popup_scroll: Feedback<Scroll>,
    /// The lower pane shows the log in place of the run history.
    show_log: bool,
    /// Measures of the last frame, so that keys clamp to what is on screen.
    window: Feedback<Window>,
    log_rows: Feedback<usize>,
}

impl SnapshotTab {
    /// Starts with what the store already holds, so the screen is full before any
    /// network call.
    pub fn new(snapshot: Option<Snapshot>, history: Vec<RunSummary>) -> SnapshotTab {
        SnapshotTab {
            snapshot,
            provisional: None,
            history,
            details: HashMap::new(),
            last_error: None,
            progress: None,
            next_run: NextRun::Unknown,
            paused: None,
            log: LogRing::default(),
            log_back: 0,
            cursor: (0, 0),
            filter: String::new(),
            filtering: false,
            focus: Focus::Matrix,
            runs_cursor: 0,
            popup: None,
            popup_scroll: Feedback::new(Scroll::default()),
            show_log: false,
            window: Feedback::new(Window::default()),
            log_rows: Feedback::new(PAGE_LINES),
        }
    }

    /// The details kept of the runs in the history (read from the store at start).
    pub fn with_details(mut self, details: HashMap<u64, RunDetail>) -> SnapshotTab {
        self.details = details;
        self
    }

    pub fn is_running(&self) -> bool {
        self.progress.is_some()
    }

    pub fn cursor(&self) -> (usize, usize) {
        self.cursor
    }

    pub fn focus(&self) -> Focus {
        self.focus
    }

    pub fn filter(&self) -> Option<&str> {
        (!self.filter.is_empty()).then_some(self.filter.as_str())
    }

    pub fn log_shown(&self) -> bool {
        self.show_log || self.progress.is_some()
    }

    pub fn log_scrolled_back(&self) -> usize {
        self.log_back
    }

    pub fn detail_open(&self) -> bool {
        self.popup.is_some()
    }

    /// The popup's scroll offset (clamped to its content as last drawn).
    pub fn popup_scroll(&self) -> usize {
        self.popup_scroll.get().offset()
    }

    /// The last committed snapshot.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// What the matrix shows: the running snapshot so far, else the last one.
    pub fn shown(&self) -> Option<&Snapshot> {
        self.provisional.as_ref().or(self.snapshot.as_ref())
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

    /// Indices of the components the filter keeps, in config order.
    fn rows(&self) -> Vec<usize> {
        let Some(s) = self.shown() else {
            return vec![];
        };
        let needle = self.filter.to_lowercase();
        s.components
            .iter()
            .enumerate()
            .filter(|(_, c)| needle.is_empty() || c.to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect()
    }

    fn dims(&self) -> (usize, usize) {
        let cols = self.shown().map_or(0, |s| s.environments.len());
        (self.rows().len(), cols)
    }

    fn selected(&self) -> Option<(&Snapshot, &str, &str, Option<&Cell>)> {
        let s = self.shown()?;
        let row = *self.rows().get(self.cursor.0)?;
        let comp = s.components.get(row)?;
        let env = s.environments.get(self.cursor.1)?;
        Some((s, env, comp, s.cell(env, comp)))
    }

    fn clamp_cursor(&mut self) {
        let (rows, cols) = self.dims();
        self.cursor.0 = self.cursor.0.min(rows.saturating_sub(1));
        self.cursor.1 = self.cursor.1.min(cols.saturating_sub(1));
        self.runs_cursor = self.runs_cursor.min(self.history.len().saturating_sub(1));
    }

    /// Everything a daemon shows now, on attach: the scroll positions and the cursor
    /// stay, clamped to the new data.
    fn attached(&mut self, state: &crate::serve::wire::AttachState) {
        self.snapshot = state.snapshot.clone();
        self.provisional = state.provisional.clone();
        self.history = state.history.clone();
        self.history.truncate(HISTORY_ROWS);
        self.details = state.run_details.clone();
        self.progress = state.progress.clone();
        self.last_error = None;
        self.next_run = NextRun::from_status(state.schedule.as_ref());
        self.paused = state.schedule.as_ref().map(|s| s.paused);
        self.log.clear();
        for line in &state.log {
            self.log.push(line.clone());
        }
        self.log_back = self.log_back.min(self.log.len().saturating_sub(1));
        self.clamp_cursor();
    }

    fn push_log(&mut self, line: LogLine) {
        self.log.push(line);
        // A reader scrolled back keeps the same lines in view.
        if self.log_back > 0 {
            self.log_back = (self.log_back + 1).min(self.log.len().saturating_sub(1));
        }
    }

    /// The failures of the run shown, for the status line and the failures popup.
    fn failures(&self) -> &[crate::engine::model::Failure] {
        self.snapshot
            .as_ref()
            .map(|s| s.failures.as_slice())
            .unwrap_or(&[])
    }

    fn moved(&mut self, f: impl FnOnce(&mut Self)) -> Outcome {
        let before = (self.cursor, self.runs_cursor, self.log_back, self.focus);
        f(self);
        if (self.cursor, self.runs_cursor, self.log_back, self.focus) == before {
            Outcome::Ignored
        } else {
            Outcome::Redraw
        }
    }

    fn popup_key(&mut self, action: Action) -> Outcome {
        let mut scroll = self.popup_scroll.get();
        let moved = match action {
            Action::Back | Action::Open => {
                self.popup = None;
                return Outcome::Redraw;
            }
            Action::Up => scroll.up(1),
            Action::Down => scroll.down(1),
            Action::PageUp => scroll.page_up(),
            Action::PageDown => scroll.page_down(),
            Action::Trigger | Action::Cancel => return self.run_key(action),
            _ => return Outcome::Ignored,
        };
        self.popup_scroll.set(scroll);
        if moved {
            Outcome::Redraw
        } else {
            Outcome::Ignored
        }
    }

    fn scroll_log(&mut self, back: isize) -> Outcome {
        self.moved(|t| {
            let max = t.log.len().saturating_sub(t.log_rows.get());
            t.log_back = (t.log_back as isize + back).clamp(0, max as isize) as usize;
        })
    }

    fn cycle_focus(&mut self, forward: bool) -> Outcome {
        let lower = if self.log_shown() {
            Focus::Log
        } else {
            Focus::Runs
        };
        self.moved(|t| {
            t.focus = match (t.focus, forward) {
                (Focus::Matrix, _) => lower,
                (_, _) => Focus::Matrix,
            };
        })
    }

    fn open(&mut self) -> Outcome {
        let popup = match self.focus {
            Focus::Matrix => {
                if self.selected().is_none() {
                    return Outcome::Say("no snapshot yet: nothing to open".into());
                }
                Popup::Cell
            }
            Focus::Runs => match self.history.get(self.runs_cursor) {
                Some(r) => Popup::Run(r.id),
                None => return Outcome::Say("no runs recorded yet".into()),
            },
            Focus::Log => Popup::Failures,
        };
        self.popup = Some(popup);
        self.popup_scroll.set(Scroll::default());
        Outcome::Redraw
    }

    fn browse(&self) -> Outcome {
        match self.selected() {
            Some((_, env, comp, Some(cell))) => {
                match cell.build.as_ref().and_then(|b| b.web_url.clone()) {
                    Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                        Outcome::Do(Effect::OpenUrl(url))
                    }
                    _ => Outcome::Say(format!("no build link for {comp} in {env}")),
                }
            }
            _ => Outcome::Say("nothing selected".into()),
        }
    }
}

impl Tab for SnapshotTab {
    fn title(&self) -> &'static str {
        "Snapshot"
    }

    fn group(&self) -> Group {
        Group::Snapshot
    }

    fn takes_text(&self) -> bool {
        self.filtering
    }

    fn handle_text(&mut self, key: &KeyEvent, action: Option<Action>) -> Outcome {
        match (key.code, action) {
            (KeyCode::Enter, _) => self.filtering = false,
            (KeyCode::Esc, _) => {
                self.filtering = false;
                self.filter.clear();
            }
            (KeyCode::Backspace, _) => {
                self.filter.pop();
            }
            (KeyCode::Char('u'), _) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.filter.clear()
            }
            (KeyCode::Char('c'), _) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.filtering = false;
                self.filter.clear();
            }
            (KeyCode::Char(c), _)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                    && !c.is_control() =>
            {
                self.filter.push(c)
            }
            _ => return Outcome::Ignored,
        }
        self.cursor.0 = 0;
        self.clamp_cursor();
        Outcome::Redraw
    }

    fn handle_key(&mut self, action: Action) -> Outcome {
        if self.popup.is_some() {
            return self.popup_key(action);
        }
        let (rows, cols) = self.dims();
        let page = self.window.get().rows.max(1);
        match (self.focus, action) {
            (_, Action::Trigger | Action::Cancel) => self.run_key(action),
            (_, Action::Pause) => pause_key(self.paused),
            (_, Action::Open) => self.open(),
            (_, Action::NextView) => self.cycle_focus(true),
            (_, Action::PrevView) => self.cycle_focus(false),
            (_, Action::Log) => {
                self.show_log = !self.show_log;
                self.log_back = 0;
                if self.focus != Focus::Matrix {
                    self.focus = if self.log_shown() {
                        Focus::Log
                    } else {
                        Focus::Runs
                    };
                }
                Outcome::Redraw
            }
            (_, Action::Filter) => {
                self.filtering = true;
                self.focus = Focus::Matrix;
                Outcome::Redraw
            }
            (Focus::Matrix, Action::Back) if !self.filter.is_empty() => {
                self.filter.clear();
                self.clamp_cursor();
                Outcome::Redraw
            }
            (_, Action::Back) if self.focus != Focus::Matrix => {
                self.focus = Focus::Matrix;
                Outcome::Redraw
            }
            (Focus::Matrix, Action::Browse) => self.browse(),
            (Focus::Matrix, Action::Up) => {
                self.moved(|t| t.cursor.0 = t.cursor.0.saturating_sub(1))
            }
            (Focus::Matrix, Action::Down) => {
                self.moved(|t| t.cursor.0 = (t.cursor.0 + 1).min(rows.saturating_sub(1)))
            }
            (Focus::Matrix, Action::Left) => {
                self.moved(|t| t.cursor.1 = t.cursor.1.saturating_sub(1))
            }
            (Focus::Matrix, Action::Right) => {
                self.moved(|t| t.cursor.1 = (t.cursor.1 + 1).min(cols.saturating_sub(1)))
            }
            // The log keeps its PageUp/PageDown wherever the focus is, while it shows.
            (Focus::Matrix | Focus::Log, Action::PageUp) if self.log_shown() => {
                self.scroll_log(self.log_rows.get().max(1) as isize)
            }
            (Focus::Matrix | Focus::Log, Action::PageDown) if self.log_shown() => {
                self.scroll_log(-(self.log_rows.get().max(1) as isize))
            }
            (Focus::Matrix, Action::PageUp) => {
                self.moved(|t| t.cursor.0 = t.cursor.0.saturating_sub(page))
            }
            (Focus::Matrix, Action::PageDown) => {
                self.moved(|t| t.cursor.0 = (t.cursor.0 + page).min(rows.saturating_sub(1)))
            }
            (Focus::Runs, Action::Up) => {
                self.moved(|t| t.runs_cursor = t.runs_cursor.saturating_sub(1))
            }
            (Focus::Runs, Action::Down) => self.moved(|t| {
                t.runs_cursor = (t.runs_cursor + 1).min(t.history.len().saturating_sub(1))
            }),
            (Focus::Runs, Action::PageUp) => {
                self.moved(|t| t.runs_cursor = t.runs_cursor.saturating_sub(PAGE_LINES))
            }
            (Focus::Runs, Action::PageDown) => self.moved(|t| {
                t.runs_cursor = (t.runs_cursor + PAGE_LINES).min(t.history.len().saturating_sub(1))
            }),
            (Focus::Log, Action::Up) => self.scroll_log(1),
            (Focus::Log, Action::Down) => self.scroll_log(-1),
            _ => Outcome::Ignored,
        }
    }

    fn on_event(&mut self, event: &AppEvent) -> bool {
        let ev = match event {
            AppEvent::Engine(ev) => ev,
            AppEvent::Attached(state) => {
                self.attached(state);
                return true;
            }
            _ => return false,
        };
        match ev {
            EngineEvent::Started(p) => {
                self.log.clear();
                self.log_back = 0;
                self.progress = Some((**p).clone());
                self.provisional = None;
            }
            EngineEvent::Progress(p) => self.progress = Some((**p).clone()),
            EngineEvent::Provisional(s) => self.provisional = Some((**s).clone()),
            EngineEvent::Log(line) => self.push_log(line.clone()),
            EngineEvent::Finished { summary, snapshot } => {
                self.progress = None;
                self.provisional = None;
                self.last_error = None;
                self.snapshot = Some((**snapshot).clone());
                self.details.insert(
                    summary.id,
                    RunDetail::of(Some(snapshot), self.log.iter().cloned().collect()),
                );
                self.history.insert(0, summary.clone());
                self.history.truncate(HISTORY_ROWS);
                self.clamp_cursor();
            }
            EngineEvent::Failed { summary, error } => {
                self.progress = None;
                self.provisional = None;
                self.last_error = Some(error.clone());
                self.details.insert(
                    summary.id,
                    RunDetail::of(None, self.log.iter().cloned().collect()),
                );
                self.history.insert(0, summary.clone());
                self.history.truncate(HISTORY_ROWS);
            }
            EngineEvent::AlreadyRunning => return false,
            EngineEvent::Schedule(status) => {
                self.next_run = NextRun::from_status(status.as_deref());
                self.paused = status.as_ref().map(|s| s.paused);
            }
        }
        true
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let (top, rest) = match &self.progress {
            Some(p) => {
                let h = progress::height(p, area.height).min(area.height);
                let [top, rest] =
                    Layout::vertical([Constraint::Length(h), Constraint::Fill(1)]).areas(area);
                progress::render(frame, top, p, view);
                (None, rest)
            }
            None => {
                let width = area.width as usize;
                let status: Vec<Line> = self
                    .status_lines(view)
                    .into_iter()
                    .map(|l| fit_line(l, width))
                    .collect();
                let h = (status.len() as u16).min(area.height);
                let [top, rest] =
                    Layout::vertical([Constraint::Length(h), Constraint::Fill(1)]).areas(area);
                (Some((top, status)), rest)
            }
        };
        if let Some((top, status)) = top {
            frame.render_widget(Paragraph::new(status), top);
        }
        let rows = self.rows();
        let wanted = rows.len().max(1) as u16 + 3;
        let matrix_h = wanted.min(rest.height.saturating_sub(LOWER_MIN_ROWS).max(4));
        let legend = rest.height >= matrix_h + LOWER_MIN_ROWS + 8 && self.shown().is_some();
        let [matrix_area, legend_area, lower] = Layout::vertical([
            Constraint::Length(matrix_h),
            Constraint::Length(u16::from(legend)),
            Constraint::Fill(1),
        ])
        .areas(rest);
        self.render_matrix(frame, matrix_area, &rows, view);
        if legend {
            frame.render_widget(
                Paragraph::new(fit_line(
                    matrix::legend(view.theme),
                    legend_area.width as usize,
                )),
                legend_area,
            );
        }
        if self.log_shown() {
            let title = if self.progress.is_some() {
                "Log"
            } else {
                "Log of the last run"
            };
            self.render_log(frame, lower, title, view);
        } else {
            let selected = (self.focus == Focus::Runs).then_some(self.runs_cursor);
            runs::render(frame, lower, &self.history, selected, view);
        }
        if self.popup.is_some() {
            self.render_popup(frame, area, view);
        }
    }

    fn hints(&self) -> Vec<Action> {
        if self.popup.is_some() {
            return vec![Action::Up, Action::Down, Action::Back];
        }
        if self.filtering {
            return vec![Action::Open, Action::Back];
        }
        let mut h = match (self.is_running(), self.focus) {
            (true, Focus::Matrix) => vec![Action::Cancel, Action::Up, Action::Down, Action::Open],
            (false, Focus::Matrix) => vec![
                Action::Trigger,
                Action::Up,
                Action::Down,
                Action::Left,
                Action::Right,
                Action::Open,
            ],
            (_, Focus::Runs) => vec![Action::Up, Action::Down, Action::Open],
            (_, Focus::Log) => vec![Action::Up, Action::Down, Action::PageUp, Action::Open],
        };
        h.push(Action::NextView);
        if !self.is_running() {
            h.push(Action::Log);
        }
        if self.paused.is_some() {
            h.push(Action::Pause);
        }
        h
    }

    fn hint_word(&self, action: Action) -> &'static str {
        match action {
            Action::Pause => pause_word(self.paused),
            a => a.hint(),
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
        if let Some(s) = self.shown() {
            consider(text::age_changes_in(text::between(s.finished_at, now)));
            for cell in s.cells.values().flat_map(|c| c.values()) {
                if let Some(at) = cell.deployed_at {
                    consider(text::age_changes_in(text::between(at, now)));
                }
                for at in cell.stale.values() {
                    consider(text::age_changes_in(text::between(at.0, now)));
                }
            }
        }
        if let Some(r) = self.history.first() {
            consider(text::age_changes_in(text::between(run_end(r), now)));
        }
        if let NextRun::At(t) = self.next_run {
            consider(text::countdown_changes_in(text::between(now, t)));
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
                let (word, style) = result(r, t);
                first.push(Span::raw(format!("Last run #{} ", r.id)));
                first.push(Span::styled(word, style));
                let ended = run_end(r);
                first.push(Span::styled(
                    format!(
                        " · ended {} ({}) · took {} · {} · {}",
                        text::clock(ended, view.offset),
                        text::ago(text::between(ended, view.now)),
                        text::duration(Duration::from_millis(r.duration_ms)),
                        errors(r.errors),
                        trigger_word(r.trigger),
                    ),
                    muted,
                ));
            }
        }
        let mut second: Vec<Span> = vec![Span::raw("Next snapshot: ")];
        match self.next_run {
            NextRun::At(at) if self.progress.is_some() => second.push(Span::styled(
                format!("after this run, {}", text::clock(at, view.offset)),
                t.style(Role::Title),
            )),
            NextRun::At(at) => second.push(Span::styled(
                format!(
                    "in {} ({})",
                    text::countdown(text::between(view.now, at)),
                    text::clock(at, view.offset)
                ),
                t.style(Role::Title),
            )),
            other => second.push(Span::styled(
                other.word().unwrap_or_default(),
                t.style(Role::Title),
            )),
        }
        second.push(Span::styled(" · ", muted));
        second.push(Span::styled(
            view.keys.first(Action::Trigger),
            t.style(Role::Key),
        ));
        second.push(Span::styled(" runs one now", muted));
        if let Some(s) = &self.snapshot
            && let Some(oldest) = s.oldest_stale()
        {
            let stale = s
                .cells
                .values()
                .flat_map(|r| r.values())
                .filter(|c| !c.stale.is_empty())
                .count();
            second.push(Span::styled(" · ", muted));
            second.push(Span::styled(
                format!(
                    "~ {stale} cells from earlier runs (oldest {})",
                    text::ago(text::between(oldest, view.now))
                ),
                t.style(Role::MatrixStale),
            ));
        }
        let mut lines = vec![Line::from(first), Line::from(second)];
        if let Some(e) = &self.last_error {
            lines.push(Line::from(vec![
                Span::styled("last error: ", muted),
                Span::styled(e.clone(), t.style(Role::SeverityError)),
            ]));
        } else if !self.failures().is_empty() {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{} failed: ", self.failures().len()),
                    t.style(Role::SeverityWarn),
                ),
                Span::raw(log::groups_line(self.failures())),
                Span::styled(
                    format!(
                        " · {} {} reads them",
                        view.keys.first(Action::NextView),
                        view.keys.first(Action::Open)
                    ),
                    muted,
                ),
            ]));
        }
        lines
    }
}

/// `line` cut to `width` columns, ending in `…` where it was cut (no word is cut
/// without saying so).
fn fit_line(line: Line<'static>, width: usize) -> Line<'static> {
    if line.width() <= width {
        return line;
    }
    let mut left = width.saturating_sub(1);
    let mut spans = Vec::new();
    for span in line.spans {
        if left == 0 {
            break;
        }
        let w = span.width();
        if w <= left {
            left -= w;
            spans.push(span);
        } else {
            let cut = text::fit(&span.content, left + 1).into_owned();
            let cut = cut.trim_end_matches('…').to_string();
            left = 0;
            spans.push(Span::styled(cut, span.style));
        }
    }
    spans.push(Span::raw("…"));
    Line::from(spans)
}

impl SnapshotTab {
    fn render_matrix(&self, frame: &mut Frame, area: Rect, rows: &[usize], view: &View) {
        let s = self.shown();
        let (n_rows, n_cols) = (rows.len(), s.map_or(0, |s| s.environments.len()));
        let names: Vec<&str> = s
            .map(|s| s.components.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let w = matrix::window(
            area.width.saturating_sub(2) as usize,
            area.height.saturating_sub(2) as usize,
            n_rows,
            n_cols,
            &names,
            self.cursor,
            self.window.get(),
        );
        self.window.set(w);
        matrix::render(
            frame,
            area,
            &MatrixView {
                snapshot: s,
                rows,
                filter: self.filter(),
                filtering: self.filtering,
                cursor: self.cursor,
                window: w,
                running: self.progress.is_some(),
                focused: self.focus == Focus::Matrix,
            },
            view,
        );
    }

    fn render_log(&self, frame: &mut Frame, area: Rect, title: &str, view: &View) {
        let t = view.theme;
        let width = area.width.saturating_sub(2) as usize;
        let rows = area.height.saturating_sub(2) as usize;
        self.log_rows.set(rows.max(1));
        // Newest at the bottom; the view follows the end unless scrolled back. Entries
        // wrap, so whole entries are taken from the end until the pane is full.
        let all: Vec<&LogLine> = self.log.iter().collect();
        let end = all.len().saturating_sub(self.log_back);
        let mut lines: Vec<Line> = Vec::new();
        let mut first = end;
        while first > 0 && lines.len() < rows {
            first -= 1;
            let mut entry = log::entry_lines(all[first], width, view.offset, t);
            entry.extend(std::mem::take(&mut lines));
            lines = entry;
        }
        // Scrolled back past the top: fill the pane from there down, never leave it
        // half empty.
        let mut last = end;
        while lines.len() < rows && last < all.len() {
            lines.extend(log::entry_lines(all[last], width, view.offset, t));
            last += 1;
        }
        let skip = lines.len().saturating_sub(rows);
        let shown: Vec<Line> = lines.split_off(skip).into_iter().take(rows).collect();
        let below = all.len() - last;
        let mut title = format!("{title} ({})", self.log.len());
        if below > 0 {
            title.push_str(&format!(" · {below} newer below ↓"));
        }
        if first > 0 {
            title.push_str(" · more ↑");
        }
        if self.focus == Focus::Log {
            title.push_str(&format!(" · {} failures", view.keys.first(Action::Open)));
        }
        let block = panel(title, t).border_style(if self.focus == Focus::Log {
            t.style(Role::BorderFocused)
        } else {
            t.style(Role::Border)
        });
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if self.log.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("no warnings so far", t.style(Role::Muted))),
                inner,
            );
            return;
        }
        frame.render_widget(Paragraph::new(shown), inner);
    }

    fn render_popup(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let popup = centered(
            area,
            area.width.saturating_sub(4).clamp(1, POPUP_MAX_WIDTH),
            area.height.saturating_sub(2).max(1),
        );
        let width = popup.width.saturating_sub(2) as usize;
        let (title, lines) = match self.popup {
            Some(Popup::Cell) => match self.selected() {
                Some((_, env, comp, cell)) => {
                    (format!("{comp} in {env}"), detail::lines(cell, width, view))
                }
                None => return,
            },
            Some(Popup::Run(id)) => match self.history.iter().find(|r| r.id == id) {
                Some(r) => (
                    format!("Run #{id}"),
                    runs::detail_lines(r, self.details.get(&id), width, view),
                ),
                None => return,
            },
            Some(Popup::Failures) => (
                format!("Failures of the last run ({})", self.failures().len()),
                log::failure_lines(self.failures(), width, t),
            ),
            None => return,
        };
        let mut scroll = self.popup_scroll.get();
        scroll.resize(lines.len(), popup.height.saturating_sub(2) as usize);
        self.popup_scroll.set(scroll);
        let mut title = title;
        if scroll.more_above() {
            title.push_str(" · more ↑");
        }
        if scroll.more_below() {
            title.push_str(" · more ↓");
        }
        frame.render_widget(Clear, popup);
        let block = panel(title, t).border_style(t.style(Role::BorderFocused));
        let inner = block.inner(popup);
        frame.render_widget(block, popup);
        frame.render_widget(Paragraph::new(lines).scroll(scroll.paragraph()), inner);
    }
}
