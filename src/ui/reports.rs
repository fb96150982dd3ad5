//! The Reports tab: a Locust run's bottleneck report in views (endpoints, findings,
//! advice, targets, latency over time, failures, exceptions, comparison), a path prompt
//! to open runs, and the state of the last load. Reading files is the event loop's job:
//! this tab asks with [`Effect`]s and learns the results from [`AppEvent`]s.

use std::cell::Cell as Feedback;
use std::path::PathBuf;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Clear, Dataset, GraphType, Paragraph, Row, Table, TableState,
};
use ratatui_textarea::{CursorMove, TextArea};
use time::OffsetDateTime;
use unicode_width::UnicodeWidthStr;

use super::text::{self, fit};
use super::theme::{Role, Theme};
use super::widgets::{centered, panel};
use super::{AppEvent, Effect, Outcome, Tab, View};
use crate::app::action::Action;
use crate::report::analysis::human_secs;
use crate::report::model::{
    Change, EndpointColumn, EndpointHistory, EndpointStats, Horizon, MetricDelta, Severity,
    sort_endpoints,
};
use crate::report::paths::{common_prefix, expand_home};
use crate::report::render::ms;
use crate::report::{Report, ReportRequest};

/// Lines one PageUp/PageDown scrolls a view.
const PAGE_LINES: u16 = 10;
/// Completion candidates listed under the prompt.
const PROMPT_CANDIDATES: usize = 8;
/// The endpoint list beside the latency chart is shown from this tab width on.
const CHART_LIST_MIN_WIDTH: u16 = 110;
/// The comparison shows base and current values (not only the change) from this width on.
const COMPARE_WIDE_MIN_WIDTH: u16 = 120;

/// A view inside the tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportView {
    Endpoints,
    Findings,
    Advice,
    Targets,
    OverTime,
    Failures,
    Exceptions,
    Compare,
}

impl ReportView {
    pub const ALL: [ReportView; 8] = [
        ReportView::Endpoints,
        ReportView::Findings,
        ReportView::Advice,
        ReportView::Targets,
        ReportView::OverTime,
        ReportView::Failures,
        ReportView::Exceptions,
        ReportView::Compare,
    ];

    pub fn title(self) -> &'static str {
        match self {
            ReportView::Endpoints => "Endpoints",
            ReportView::Findings => "Findings",
            ReportView::Advice => "Advice",
            ReportView::Targets => "Targets",
            ReportView::OverTime => "Over time",
            ReportView::Failures => "Failures",
            ReportView::Exceptions => "Exceptions",
            ReportView::Compare => "Compare",
        }
    }

    /// For narrow panes.
    fn short(self) -> &'static str {
        match self {
            ReportView::Endpoints => "Endp",
            ReportView::Findings => "Find",
            ReportView::Advice => "Advice",
            ReportView::Targets => "Tgt",
            ReportView::OverTime => "Time",
            ReportView::Failures => "Fail",
            ReportView::Exceptions => "Exc",
            ReportView::Compare => "Cmp",
        }
    }

    fn index(self) -> usize {
        ReportView::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// What a prompt opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// The run to report on.
    Run,
    /// The earlier run to compare with.
    CompareBase,
}

/// The path prompt: a one-line text input with Tab completion.
#[derive(Debug, Clone)]
struct Prompt {
    kind: PromptKind,
    input: TextArea<'static>,
    /// Candidates of the last completion, and which one Tab put in the input.
    candidates: Vec<String>,
    cycle: Option<usize>,
    /// The last completion found nothing.
    no_match: bool,
    /// The prefilled text is untouched: a first `/` or `~` starts a new path instead.
    pristine: bool,
}

impl Prompt {
    fn new(kind: PromptKind, text: &str) -> Prompt {
        Prompt {
            kind,
            input: super::widgets::one_line_input(text),
            candidates: Vec::new(),
            cycle: None,
            no_match: false,
            pristine: !text.is_empty(),
        }
    }

    /// Shell-like editing the text area does not do the shell's way; true when the key
    /// was one of them. `Ctrl-U` deletes to the start; `Ctrl-W` deletes the path
    /// component before the cursor with its separator (`results/api/` → `results/`);
    /// `/` or `~` typed first on the prefilled text replaces it (a new absolute or home
    /// path).
    fn edit(&mut self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let pristine = std::mem::take(&mut self.pristine);
        match key.code {
            KeyCode::Char(c @ ('/' | '~')) if pristine && !ctrl && !alt => {
                self.set_text(&c.to_string());
            }
            KeyCode::Char('u' | 'U') if ctrl && !alt => {
                self.input.delete_line_by_head();
            }
            KeyCode::Char('w' | 'W') if ctrl && !alt => self.delete_path_word(),
            KeyCode::Backspace if alt && !ctrl => self.delete_path_word(),
            _ => return false,
        }
        self.cycle = None;
        self.no_match = false;
        true
    }

    /// Deletes back from the cursor over separators (`/`, spaces), then over the word
    /// before them, as a shell's `unix-filename-rubout` does.
    fn delete_path_word(&mut self) {
        let col = self.input.cursor().1;
        let text = self.text();
        let before: Vec<char> = text.chars().take(col).collect();
        let is_sep = |c: &char| *c == '/' || c.is_whitespace();
        let mut start = before.len();
        while start > 0 && is_sep(&before[start - 1]) {
            start -= 1;
        }
        while start > 0 && !is_sep(&before[start - 1]) {
            start -= 1;
        }
        if start == col {
            return;
        }
        self.input.move_cursor(CursorMove::Jump(0, start as u16));
        self.input.delete_str(col - start);
    }

    fn text(&self) -> String {
        self.input.lines().first().cloned().unwrap_or_default()
    }

    fn set_text(&mut self, text: &str) {
        self.input = super::widgets::one_line_input(text);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loaded {
    at: OffsetDateTime,
    reload: bool,
}

#[derive(Debug)]
pub struct ReportsTab {
    /// `--targets FILE`, checked against every run opened here.
    targets: Option<PathBuf>,
    /// The request of the report on screen.
    request: Option<ReportRequest>,
    report: Option<Report>,
    /// The report's endpoints in the order shown.
    endpoints: Vec<EndpointStats>,
    sort: (EndpointColumn, bool),
    view: ReportView,
    /// Selected row of the endpoint table.
    selected: usize,
    /// Selected endpoint of the latency chart (an index into the history's endpoints).
    chart_endpoint: usize,
    /// Scroll offset of the text views.
    scroll: u16,
    /// The largest useful scroll of the text view last drawn (known only when drawing).
    max_scroll: Feedback<u16>,
    /// The load in flight: its sequence number and what it says it does.
    loading: Option<(u64, String)>,
    error: Option<String>,
    loaded: Option<Loaded>,
    prompt: Option<Prompt>,
}

impl ReportsTab {
    pub fn new(targets: Option<PathBuf>) -> ReportsTab {
        ReportsTab {
            targets,
            request: None,
            report: None,
            endpoints: Vec::new(),
            // Bottlenecks first.
            sort: (EndpointColumn::P99, true),
            view: ReportView::Endpoints,
            selected: 0,
            chart_endpoint: 0,
            scroll: 0,
            max_scroll: Feedback::new(u16::MAX),
            loading: None,
            error: None,
            loaded: None,
            prompt: None,
        }
    }

    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    pub fn view(&self) -> ReportView {
        self.view
    }

    /// The endpoints in the order shown.
    pub fn endpoints(&self) -> &[EndpointStats] {
        &self.endpoints
    }

    pub fn sort(&self) -> (EndpointColumn, bool) {
        self.sort
    }

    pub fn selected(&self) -> usize {
        self.selected
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    pub fn prompt_kind(&self) -> Option<PromptKind> {
        self.prompt.as_ref().map(|p| p.kind)
    }

    pub fn prompt_text(&self) -> Option<String> {
        self.prompt.as_ref().map(Prompt::text)
    }

    pub fn prompt_candidates(&self) -> &[String] {
        self.prompt.as_ref().map_or(&[], |p| &p.candidates)
    }

    /// The history endpoint the chart shows.
    pub fn chart_endpoint(&self) -> Option<&EndpointHistory> {
        self.history_endpoints().get(self.chart_endpoint)
    }

    fn history_endpoints(&self) -> &[EndpointHistory] {
        self.report
            .as_ref()
            .and_then(|r| r.run.history.as_ref())
            .map_or(&[], |h| &h.endpoints)
    }

    fn resort(&mut self) {
        let keep = self.endpoints.get(self.selected).map(EndpointStats::label);
        sort_endpoints(&mut self.endpoints, self.sort.0, self.sort.1);
        self.selected = keep
            .and_then(|l| self.endpoints.iter().position(|e| e.label() == l))
            .unwrap_or(0);
    }

    fn set_report(&mut self, report: Report) {
        let keep_row = self.endpoints.get(self.selected).map(EndpointStats::label);
        let keep_chart = self.chart_endpoint().map(EndpointHistory::label);
        self.endpoints = report.run.endpoints.clone();
        self.report = Some(report);
        sort_endpoints(&mut self.endpoints, self.sort.0, self.sort.1);
        // A reload keeps the reader where they were.
        self.selected = keep_row
            .and_then(|l| self.endpoints.iter().position(|e| e.label() == l))
            .unwrap_or(0);
        self.chart_endpoint = keep_chart
            .and_then(|l| self.history_endpoints().iter().position(|e| e.label() == l))
            .unwrap_or(0);
    }

    fn switch_view(&mut self, step: isize) -> Outcome {
        let n = ReportView::ALL.len() as isize;
        let i = (self.view.index() as isize + step).rem_euclid(n) as usize;
        self.view = ReportView::ALL[i];
        self.scroll = 0;
        self.max_scroll.set(u16::MAX);
        Outcome::Redraw
    }

    fn open_prompt(&mut self, kind: PromptKind) -> Outcome {
        let current = self.request.as_ref();
        let text = match kind {
            PromptKind::Run => current
                .and_then(|r| r.inputs.first())
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            PromptKind::CompareBase => {
                if current.is_none() {
                    return Outcome::Say(
                        "open a run first (o), then the run to compare with".into(),
                    );
                }
                match current.and_then(|r| r.compare_base.as_ref()?.first().cloned()) {
                    Some(base) => base.display().to_string(),
                    // Runs to compare usually sit side by side.
                    None => current
                        .and_then(|r| r.inputs.first()?.parent().map(|d| d.display().to_string()))
                        .filter(|d| !d.is_empty())
                        .map(|d| format!("{d}/"))
                        .unwrap_or_default(),
                }
            }
        };
        self.prompt = Some(Prompt::new(kind, &text));
        Outcome::Redraw
    }

    fn submit(&mut self) -> Outcome {
        let Some(prompt) = self.prompt.take() else {
            return Outcome::Ignored;
        };
        let text = prompt.text();
        let typed = text.trim();
        match prompt.kind {
            PromptKind::Run => {
                if typed.is_empty() {
                    self.prompt = Some(prompt);
                    return Outcome::Say("type the path of a run (Esc cancels)".into());
                }
                let mut request = self.request.clone().unwrap_or_else(|| ReportRequest {
                    targets: self.targets.clone(),
                    ..ReportRequest::default()
                });
                request.inputs = vec![expand_home(typed)];
                Outcome::Do(Effect::LoadReport(request))
            }
            PromptKind::CompareBase => {
                let Some(mut request) = self.request.clone() else {
                    return Outcome::Say("open a run first".into());
                };
                // An empty base stops comparing.
                request.compare_base = (!typed.is_empty()).then(|| vec![expand_home(typed)]);
                Outcome::Do(Effect::LoadReport(request))
            }
        }
    }

    fn complete(&mut self, back: bool) -> Outcome {
        let Some(p) = &mut self.prompt else {
            return Outcome::Ignored;
        };
        let text = p.text();
        // Once the common part is typed, Tab walks through the candidates.
        let cycling = p.cycle.is_some_and(|i| p.candidates.get(i) == Some(&text))
            || (p.cycle.is_none()
                && p.candidates.len() > 1
                && common_prefix(&p.candidates) == text);
        if cycling {
            let n = p.candidates.len();
            let next = match (p.cycle, back) {
                (None, false) => 0,
                (None, true) => n - 1,
                (Some(i), false) => (i + 1) % n,
                (Some(i), true) => (i + n - 1) % n,
            };
            p.cycle = Some(next);
            let c = p.candidates[next].clone();
            p.set_text(&c);
            return Outcome::Redraw;
        }
        Outcome::Do(Effect::CompletePath(text))
    }

    fn on_completions(&mut self, input: &str, candidates: &[String]) -> bool {
        let Some(p) = &mut self.prompt else {
            return false;
        };
        // The user typed on meanwhile: these answer an older question.
        if p.text() != input {
            return false;
        }
        p.cycle = None;
        p.no_match = candidates.is_empty();
        p.candidates = candidates.to_vec();
        match candidates {
            [] => {}
            [only] => {
                p.set_text(only);
                p.candidates.clear();
            }
            _ => {
                let common = common_prefix(candidates);
                if common.len() > input.len() {
                    p.set_text(&common);
                }
            }
        }
        true
    }

    fn scroll_by(&mut self, delta: i32) -> Outcome {
        let before = self.scroll;
        let max = self.max_scroll.get();
        self.scroll = (i32::from(self.scroll) + delta).clamp(0, i32::from(max)) as u16;
        if self.scroll == before {
            Outcome::Ignored
        } else {
            Outcome::Redraw
        }
    }

    fn move_in_view(&mut self, delta: i32, page: bool) -> Outcome {
        let step = if page {
            delta * i32::from(PAGE_LINES)
        } else {
            delta
        };
        let moved = |i: usize, n: usize| -> usize {
            (i as i64 + i64::from(step)).clamp(0, n.saturating_sub(1) as i64) as usize
        };
        match self.view {
            ReportView::Endpoints => {
                let before = self.selected;
                self.selected = moved(self.selected, self.endpoints.len());
                if before == self.selected {
                    Outcome::Ignored
                } else {
                    Outcome::Redraw
                }
            }
            ReportView::OverTime => {
                let before = self.chart_endpoint;
                self.chart_endpoint = moved(self.chart_endpoint, self.history_endpoints().len());
                if before == self.chart_endpoint {
                    Outcome::Ignored
                } else {
                    Outcome::Redraw
                }
            }
            _ => self.scroll_by(step),
        }
    }

    /// The selected endpoint's latency over time.
    fn open_selected(&mut self) -> Outcome {
        if self.view != ReportView::Endpoints {
            return Outcome::Ignored;
        }
        let Some(label) = self.endpoints.get(self.selected).map(EndpointStats::label) else {
            return Outcome::Ignored;
        };
        match self
            .history_endpoints()
            .iter()
            .position(|e| e.label() == label)
        {
            Some(i) => {
                self.chart_endpoint = i;
                self.view = ReportView::OverTime;
                Outcome::Redraw
            }
            None => Outcome::Say(format!("{label} has no history in this run")),
        }
    }
}

impl Tab for ReportsTab {
    fn title(&self) -> &'static str {
        "Reports"
    }

    fn handle_key(&mut self, action: Action) -> Outcome {
        match action {
            Action::OpenReport => self.open_prompt(PromptKind::Run),
            Action::OpenCompare => self.open_prompt(PromptKind::CompareBase),
            Action::NextView => self.switch_view(1),
            Action::PrevView => self.switch_view(-1),
            Action::SortColumn | Action::SortReverse if self.view != ReportView::Endpoints => {
                Outcome::Say("sorting applies to the Endpoints view".into())
            }
            Action::SortColumn => {
                let all = EndpointColumn::ALL;
                let i = all.iter().position(|c| *c == self.sort.0).unwrap_or(0);
                let next = all[(i + 1) % all.len()];
                // Names read A→Z; figures biggest first.
                self.sort = (next, next != EndpointColumn::Endpoint);
                self.resort();
                Outcome::Redraw
            }
            Action::SortReverse => {
                self.sort.1 = !self.sort.1;
                self.resort();
                Outcome::Redraw
            }
            Action::Up => self.move_in_view(-1, false),
            Action::Down => self.move_in_view(1, false),
            Action::PageUp => self.move_in_view(-1, true),
            Action::PageDown => self.move_in_view(1, true),
            Action::Open => self.open_selected(),
            Action::Refresh => match &self.request {
                Some(_) => Outcome::Do(Effect::ReloadReport),
                None => Outcome::Say("no report to reload: o opens one".into()),
            },
            _ => Outcome::Ignored,
        }
    }

    fn takes_text(&self) -> bool {
        self.prompt.is_some()
    }

    fn handle_text(&mut self, key: &KeyEvent, action: Option<Action>) -> Outcome {
        let Some(p) = &mut self.prompt else {
            return Outcome::Ignored;
        };
        if super::widgets::breaks_line(key) {
            return Outcome::Ignored;
        }
        if p.edit(key) {
            return Outcome::Redraw;
        }
        if super::widgets::is_typed_char(key) {
            p.input.input(*key);
            p.cycle = None;
            p.no_match = false;
            return Outcome::Redraw;
        }
        match (key.code, action) {
            (KeyCode::Enter, _) | (_, Some(Action::Open)) => self.submit(),
            // Ctrl-C leaves the prompt rather than the program.
            (KeyCode::Esc, _) | (_, Some(Action::Back | Action::Quit)) => {
                self.prompt = None;
                Outcome::Redraw
            }
            (KeyCode::Tab, _) => self.complete(false),
            (KeyCode::BackTab, _) => self.complete(true),
            _ => {
                if p.input.input(*key) {
                    p.cycle = None;
                    p.no_match = false;
                }
                // The cursor may have moved without the text changing.
                Outcome::Redraw
            }
        }
    }

    fn on_event(&mut self, event: &AppEvent) -> bool {
        match event {
            AppEvent::ReportLoading {
                seq,
                request,
                reload,
            } => {
                let what = request
                    .inputs
                    .iter()
                    .map(|p| text::sanitize(&p.display().to_string()).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                let word = if *reload { "reloading" } else { "loading" };
                self.loading = Some((*seq, format!("{word} {what}")));
                true
            }
            AppEvent::ReportLoaded(load) => {
                // Only the latest load counts; an older one finishing late is dropped.
                if self
                    .loading
                    .as_ref()
                    .is_none_or(|(seq, _)| *seq != load.seq)
                {
                    return false;
                }
                self.loading = None;
                match &load.result {
                    Ok(report) => {
                        self.error = None;
                        self.request = Some(load.request.clone());
                        self.loaded = Some(Loaded {
                            at: load.at,
                            reload: load.reload,
                        });
                        self.set_report(report.clone());
                    }
                    Err(e) => self.error = Some(e.clone()),
                }
                true
            }
            AppEvent::Completions { input, candidates } => self.on_completions(input, candidates),
            AppEvent::Engine(_)
            | AppEvent::CacheReport(_)
            | AppEvent::CacheJobDone(_)
            | AppEvent::Attached(_)
            | AppEvent::Link(_)
            | AppEvent::Notice(..) => false,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let status_rows = self.status_rows(area, view);
        let [status, bar, body] = Layout::vertical([
            Constraint::Length(status_rows.len() as u16),
            Constraint::Length(1),
            Constraint::Fill(1),
        ])
        .areas(area);
        render_status(frame, status, status_rows);
        self.render_view_bar(frame, bar, view);
        match &self.report {
            None => self.render_empty(frame, body, view),
            Some(report) => match self.view {
                ReportView::Endpoints => self.render_endpoints(frame, body, report, view),
                ReportView::OverTime => self.render_over_time(frame, body, report, view),
                v => {
                    let block = panel(self.panel_title(report), view.theme);
                    let inner = block.inner(body);
                    frame.render_widget(block, body);
                    let lines = match v {
                        ReportView::Findings => findings_lines(report, inner.width, view),
                        ReportView::Advice => advice_lines(report, inner.width, view),
                        ReportView::Targets => targets_lines(report, inner.width, view),
                        ReportView::Failures => failures_lines(report, inner.width, view),
                        ReportView::Exceptions => exceptions_lines(report, inner.width, view),
                        _ => compare_lines(report, inner.width, view),
                    };
                    self.render_scrolled(frame, body, inner, lines);
                }
            },
        }
        if let Some(p) = &self.prompt {
            render_prompt(frame, area, p, view);
        }
    }

    fn group(&self) -> crate::app::action::Group {
        crate::app::action::Group::Reports
    }

    fn hints(&self) -> Vec<Action> {
        if self.prompt.is_some() {
            return Vec::new();
        }
        if self.report.is_none() {
            return vec![Action::OpenReport, Action::PrevView, Action::NextView];
        }
        let mut hints = vec![
            Action::OpenReport,
            Action::OpenCompare,
            Action::PrevView,
            Action::NextView,
        ];
        match self.view {
            ReportView::Endpoints => hints.extend([Action::SortColumn, Action::SortReverse]),
            ReportView::OverTime => hints.extend([Action::Up, Action::Down]),
            _ => hints.push(Action::Refresh),
        }
        hints
    }
}

impl ReportsTab {
    fn panel_title(&self, report: &Report) -> String {
        let n = |count: usize| format!("{} ({count})", self.view.title());
        match self.view {
            ReportView::Endpoints => {
                let (col, desc) = self.sort;
                format!(
                    "Endpoints ({}) · sorted by {} {}",
                    self.endpoints.len(),
                    column_name(col),
                    if desc { "▼" } else { "▲" }
                )
            }
            ReportView::Findings => n(report.findings.len()),
            ReportView::Failures => n(report.run.failures.len()),
            // A k6 run has checks where a Locust run has exceptions: both are shown here.
            ReportView::Exceptions if !report.run.checks.is_empty() => format!(
                "Checks ({}) · exceptions ({})",
                report.run.checks.len(),
                report.run.exceptions.len()
            ),
            ReportView::Exceptions => n(report.run.exceptions.len()),
            ReportView::Targets => match &report.targets {
                Some(t) => format!(
                    "Targets · {} of {} pass",
                    t.outcomes.iter().filter(|o| o.passed).count(),
                    t.outcomes.len()
                ),
                None => "Targets".into(),
            },
            ReportView::Compare => match &report.comparison {
                Some(c) => format!(
                    "Compare · {} regressions · {} improvements",
                    c.regressions, c.improvements
                ),
                None => "Compare".into(),
            },
            v => v.title().into(),
        }
    }

    /// The status lines above the views: the open report's summary and when it was
    /// loaded; after a failed load, the whole error (wrapped) and, when a report is still
    /// on screen, that it is the last good one and when that was loaded.
    fn status_rows(&self, area: Rect, view: &View) -> Vec<StatusRow> {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let width = usize::from(area.width);
        let loading = self
            .loading
            .as_ref()
            .map(|(_, what)| Line::styled(format!("{what}…"), t.style(Role::StatusRunning)));
        let loaded = |l: Loaded| {
            let word = if l.reload { "reloaded" } else { "loaded" };
            format!("{word} {}", text::clock(l.at, view.offset))
        };
        let Some(e) = &self.error else {
            let right = loading.or_else(|| self.loaded.map(|l| Line::styled(loaded(l), muted)));
            let right_w = right.as_ref().map_or(0, Line::width);
            let left_w = width.saturating_sub(right_w + 1).max(width / 2);
            let left = if let Some(report) = &self.report {
                summary_line(self.request.as_ref(), report, left_w, view)
            } else if self.loading.is_none() {
                Line::styled("No report open.", t.style(Role::Notice))
            } else {
                Line::raw("")
            };
            return vec![StatusRow { left, right }];
        };
        // A long error is wrapped whole; only an absurd one is cut (with `…`).
        let max_lines = usize::from(area.height / 4).max(2);
        let mut rows: Vec<StatusRow> = text::wrap_at_most(e, width, "✗ ", "  ", max_lines)
            .into_iter()
            .map(|l| StatusRow {
                left: Line::styled(l, t.style(Role::SeverityError)),
                right: None,
            })
            .collect();
        match (&self.report, self.loaded) {
            (Some(_), Some(l)) => {
                let right_w = loading.as_ref().map_or(0, Line::width);
                let what = self
                    .request
                    .as_ref()
                    .and_then(|r| r.inputs.first())
                    .map(|p| text::sanitize(&p.display().to_string()).into_owned())
                    .unwrap_or_default();
                let lead = format!("  still showing the last good report, {}: ", loaded(l));
                let room = width.saturating_sub(right_w + 1 + lead.width());
                rows.push(StatusRow {
                    left: Line::from(vec![
                        Span::styled(lead, muted),
                        Span::styled(
                            text::fit_path(&what, room).into_owned(),
                            t.style(Role::Title),
                        ),
                    ]),
                    right: loading,
                });
            }
            _ if loading.is_some() => rows.push(StatusRow {
                left: Line::raw(""),
                right: loading,
            }),
            _ => {}
        }
        rows
    }

    fn render_view_bar(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let count = |v: ReportView| -> Option<usize> {
            let r = self.report.as_ref()?;
            match v {
                ReportView::Findings => Some(r.findings.len()),
                ReportView::Failures => Some(r.run.failures.len()),
                ReportView::Exceptions => Some(r.run.exceptions.len() + r.run.checks.len()),
                _ => None,
            }
        };
        // The fullest labels that fit: with counts, without, then short names.
        let mut chosen = Vec::new();
        for style in 0..3 {
            chosen = ReportView::ALL
                .iter()
                .map(|v| match (style, count(*v)) {
                    (0, Some(n)) => format!(" {} {n} ", v.title()),
                    (0 | 1, _) => format!(" {} ", v.title()),
                    _ => format!(" {} ", v.short()),
                })
                .collect::<Vec<_>>();
            let w: usize = chosen.iter().map(|s| s.width()).sum();
            if w <= area.width as usize {
                break;
            }
        }
        let mut spans = Vec::new();
        for (v, label) in ReportView::ALL.iter().zip(chosen) {
            let style = if *v == self.view {
                t.style(Role::TabActive)
            } else {
                t.style(Role::TabInactive)
            };
            // The labels' own padding separates them.
            spans.push(Span::styled(label, style));
        }
        frame.render_widget(Line::from(spans), area);
    }

    fn render_empty(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let key = |a| Span::styled(view.keys.first(a), t.style(Role::Key));
        let lines = vec![
            Line::raw("Bottleneck reports from Locust CSVs, JMeter .jtl files and k6 results."),
            Line::raw(""),
            Line::from(vec![
                key(Action::OpenReport),
                Span::raw(" opens a run: a prefix such as "),
                Span::styled("results/api", t.style(Role::Title)),
                Span::raw(
                    " (for results/api_stats.csv...), a directory, a *_stats.csv, a .jtl, or a k6 CSV or summary JSON.",
                ),
            ]),
            Line::styled(
                "Or start with: snaptop --report PREFIX [--targets FILE] [--compare BASE_PREFIX]",
                muted,
            ),
            Line::styled(
                "From a shell or CI: snaptop report PATH (exit 0 pass, 1 gate failed, 2 bad input).",
                muted,
            ),
            Line::raw(""),
            Line::styled(
                "Views: endpoints, findings, advice (recommendations, cache TTLs), targets,",
                muted,
            ),
            Line::styled(
                "latency over time, failures, exceptions, comparison with an earlier run.",
                muted,
            ),
            Line::styled("The report reloads by itself when its files change.", muted),
        ];
        frame.render_widget(
            Paragraph::new(lines)
                .block(panel("Reports", t))
                .wrap(ratatui::widgets::Wrap { trim: false }),
            area,
        );
    }

    /// `lines` in `area` (the inside of `outer`'s block) from the scroll offset, with
    /// "more ↑/↓" on the block's bottom border when there is more than shows.
    fn render_scrolled(
        &self,
        frame: &mut Frame,
        outer: Rect,
        area: Rect,
        lines: Vec<Line<'static>>,
    ) {
        let max = (lines.len() as u16).saturating_sub(area.height);
        self.max_scroll.set(max);
        let scroll = self.scroll.min(max);
        frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), area);
        let more = match (scroll > 0, scroll < max) {
            (true, true) => " more ↑↓ ",
            (true, false) => " more ↑ ",
            (false, true) => " more ↓ ",
            (false, false) => return,
        };
        if outer.height >= 2 && outer.width > 4 {
            let border = Rect {
                x: outer.x + 1,
                y: outer.bottom() - 1,
                width: outer.width - 2,
                height: 1,
            };
            frame.render_widget(Line::from(more).alignment(Alignment::Right), border);
        }
    }

    fn render_endpoints(&self, frame: &mut Frame, area: Rect, report: &Report, view: &View) {
        let t = view.theme;
        let block = panel(self.panel_title(report), t);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if self.endpoints.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    "No stats file in this run: the endpoint table needs PREFIX_stats.csv.",
                    t.style(Role::Muted),
                )),
                inner,
            );
            return;
        }
        let has_total = report.run.aggregate.is_some();
        let [table_area, total_area] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(u16::from(has_total)),
        ])
        .areas(inner);
        // Flag, endpoint, then the figures.
        const NUM_W: [u16; 8] = [7, 6, 6, 6, 6, 6, 6, 6];
        let fixed: u16 = 2 + NUM_W.iter().sum::<u16>() + NUM_W.len() as u16 + 1;
        // Names as wide as the longest; the figures stay next to them on wide panes.
        let longest = self
            .endpoints
            .iter()
            .chain(report.run.aggregate.iter())
            .map(|e| e.label().width())
            .max()
            .unwrap_or(0) as u16;
        let name_w = inner
            .width
            .saturating_sub(fixed)
            .min(longest.max(20))
            .max(8);
        let mut widths = vec![Constraint::Length(2), Constraint::Length(name_w)];
        widths.extend(NUM_W.iter().map(|w| Constraint::Length(*w)));
        let (sort_col, desc) = self.sort;
        let header = Row::new(
            std::iter::once(Cell::from(""))
                .chain(EndpointColumn::ALL.iter().map(|c| {
                    let mut name = column_name(*c).to_string();
                    if *c == sort_col {
                        name.push(if desc { '▼' } else { '▲' });
                    }
                    let line = Line::from(name);
                    Cell::from(if *c == EndpointColumn::Endpoint {
                        line
                    } else {
                        line.alignment(Alignment::Right)
                    })
                }))
                .collect::<Vec<_>>(),
        )
        .style(t.style(Role::Header));
        let rows: Vec<Row> = self
            .endpoints
            .iter()
            .map(|e| endpoint_row(e, worst_severity(report, &e.label()), name_w, t))
            .collect();
        let table = Table::new(rows, widths.clone())
            .header(header)
            .column_spacing(1)
            .row_highlight_style(t.style(Role::Selection));
        let mut state = TableState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(table, table_area, &mut state);
        if let Some(total) = &report.run.aggregate {
            let row = endpoint_row(total, None, name_w, t).style(t.style(Role::Title));
            frame.render_widget(Table::new([row], widths).column_spacing(1), total_area);
        }
    }

    fn render_over_time(&self, frame: &mut Frame, area: Rect, report: &Report, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let Some(history) = &report.run.history else {
            let block = panel("Over time", t);
            let lines = vec![
                Line::styled("No history file in this run.", t.style(Role::Notice)),
                Line::styled(
                    "Locust writes PREFIX_stats_history.csv with --csv PREFIX; run it with \
                     --csv-full-history for one line per endpoint, not only the total.",
                    muted,
                ),
            ];
            frame.render_widget(
                Paragraph::new(lines)
                    .block(block)
                    .wrap(ratatui::widgets::Wrap { trim: false }),
                area,
            );
            return;
        };
        let endpoints = &history.endpoints;
        let Some(selected) = endpoints.get(self.chart_endpoint) else {
            frame.render_widget(
                Paragraph::new(Line::styled("The history file has no rows.", muted))
                    .block(panel("Over time", t)),
                area,
            );
            return;
        };
        let (list_area, chart_area) = if area.width >= CHART_LIST_MIN_WIDTH {
            let [l, c] =
                Layout::horizontal([Constraint::Length(30), Constraint::Fill(1)]).areas(area);
            (Some(l), c)
        } else {
            (None, area)
        };
        if let Some(l) = list_area {
            let block = panel(format!("Endpoints ({})", endpoints.len()), t);
            let inner = block.inner(l);
            frame.render_widget(block, l);
            let rows: Vec<Row> = endpoints
                .iter()
                .map(|e| Row::new([fit(&e.label(), inner.width as usize).into_owned()]))
                .collect();
            let mut state = TableState::default().with_selected(Some(self.chart_endpoint));
            frame.render_stateful_widget(
                Table::new(rows, [Constraint::Fill(1)])
                    .row_highlight_style(t.style(Role::Selection)),
                inner,
                &mut state,
            );
        }
        // Without colour, the lines differ by their dots; the title is the legend.
        let markers = if t.no_color {
            [Marker::Dot, Marker::Braille, Marker::Block]
        } else {
            [Marker::Braille; 3]
        };
        let roles = [Role::ChartP50, Role::ChartP95, Role::ChartP99];
        let mut title = vec![Span::styled(
            format!(
                " {} ({}/{}) · ",
                fit(
                    &selected.label(),
                    chart_area.width.saturating_sub(40) as usize
                ),
                self.chart_endpoint + 1,
                endpoints.len()
            ),
            t.style(Role::Title),
        )];
        for (i, name) in ["p50", "p95", "p99"].iter().enumerate() {
            let mark = match markers[i] {
                Marker::Dot => "• ",
                Marker::Block => "█ ",
                _ => "",
            };
            title.push(Span::styled(format!("{mark}{name}"), t.style(roles[i])));
            title.push(Span::styled(
                if i < 2 { " " } else { " ms " },
                t.style(Role::Title),
            ));
        }
        let block = Block::bordered()
            .title(Line::from(title))
            .border_style(t.style(Role::Border));
        let inner = block.inner(chart_area);
        frame.render_widget(block, chart_area);
        let [chart_area, notes_area] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(2)]).areas(inner);
        let start = history.first_unix.unwrap_or(0);
        let end = history.last_unix.unwrap_or(start).max(start + 1);
        let series = |get: fn(&crate::report::model::HistoryPoint) -> Option<f64>| {
            selected
                .series
                .iter()
                .filter_map(|p| {
                    let x = (p.t_start_unix - start) as f64 + p.width_secs as f64 / 2.0;
                    Some((x, get(p)?))
                })
                .collect::<Vec<(f64, f64)>>()
        };
        let p50 = series(|p| p.p50_ms);
        let p95 = series(|p| p.p95_ms);
        let p99 = series(|p| p.p99_ms);
        let y_max = nice_ceiling(
            p50.iter()
                .chain(&p95)
                .chain(&p99)
                .map(|(_, y)| *y)
                .fold(0.0_f64, f64::max)
                * 1.05,
        );
        let datasets = vec![
            Dataset::default()
                .name("p50")
                .marker(markers[0])
                .graph_type(GraphType::Line)
                .style(t.style(roles[0]))
                .data(&p50),
            Dataset::default()
                .name("p95")
                .marker(markers[1])
                .graph_type(GraphType::Line)
                .style(t.style(roles[1]))
                .data(&p95),
            Dataset::default()
                .name("p99")
                .marker(markers[2])
                .graph_type(GraphType::Line)
                .style(t.style(roles[2]))
                .data(&p99),
        ];
        let span = (end - start) as f64;
        let chart = Chart::new(datasets)
            .x_axis(Axis::default().style(muted).bounds([0.0, span]).labels([
                "0s".to_string(),
                format!("{:.0}s", span / 2.0),
                format!("{span:.0}s"),
            ]))
            .y_axis(Axis::default().style(muted).bounds([0.0, y_max]).labels([
                "0".to_string(),
                ms(Some(y_max / 2.0)),
                ms(Some(y_max)),
            ]))
            .legend_position(None);
        if p50.is_empty() && p95.is_empty() && p99.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    "No latency recorded for this endpoint in the history.",
                    muted,
                )),
                chart_area,
            );
        } else {
            frame.render_widget(chart, chart_area);
        }
        let mut notes = vec![Line::from(vec![
            Span::styled("peak p95 ", muted),
            Span::raw(format!("{} ms", ms(selected.peak_p95_ms))),
            Span::styled(" · peak p99 ", muted),
            Span::raw(format!("{} ms", ms(selected.peak_p99_ms))),
            Span::styled(" · median p95 ", muted),
            Span::raw(format!("{} ms", ms(selected.median_p95_ms))),
            Span::styled(" · peak ", muted),
            Span::raw(format!("{:.1} rps", selected.peak_rps)),
        ])];
        notes.push(match &selected.degradation {
            None => Line::styled("no lasting slowdown in this run", muted),
            Some(d) => {
                let users = d
                    .users_at_start
                    .map(|u| format!(" with {u:.0} users"))
                    .unwrap_or_default();
                let until = match d.recovered_at_unix {
                    Some(r) => format!(", recovered after {}s", r - d.started_at_unix),
                    None => ", still slow at the end".into(),
                };
                Line::styled(
                    format!(
                        "slowed at +{}s{users}: p95 {} → {} ms ({:.1}×){until}",
                        d.offset_secs,
                        ms(Some(d.baseline_p95_ms)),
                        ms(Some(d.degraded_p95_ms)),
                        d.factor
                    ),
                    t.style(Role::SeverityWarn),
                )
            }
        });
        frame.render_widget(Paragraph::new(notes), notes_area);
    }
}

fn render_prompt(frame: &mut Frame, area: Rect, p: &Prompt, view: &View) {
    let t = view.theme;
    let listed = p.candidates.len().min(PROMPT_CANDIDATES);
    let extra = if p.candidates.is_empty() {
        u16::from(p.no_match)
    } else {
        listed as u16 + u16::from(p.candidates.len() > PROMPT_CANDIDATES)
    };
    let width = area.width.saturating_sub(4).min(100);
    let height = 4 + extra;
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let title = match p.kind {
        PromptKind::Run => "Open a run: a Locust prefix, a directory, a *_stats.csv or a .jtl",
        PromptKind::CompareBase => "Compare with an earlier run (empty: stop comparing)",
    };
    let block = panel(title, t).border_style(t.style(Role::BorderFocused));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [input, list, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(&p.input, input);
    let muted = t.style(Role::Muted);
    let mut lines: Vec<Line> = Vec::new();
    if p.no_match {
        lines.push(Line::styled(
            "no directory or run (*_stats.csv) starts with that",
            t.style(Role::SeverityWarn),
        ));
    }
    for (i, c) in p.candidates.iter().take(PROMPT_CANDIDATES).enumerate() {
        let style = if p.cycle == Some(i) {
            t.style(Role::Selection)
        } else {
            muted
        };
        lines.push(Line::styled(
            format!("  {}", fit(c, list.width.saturating_sub(2) as usize)),
            style,
        ));
    }
    if p.candidates.len() > PROMPT_CANDIDATES {
        lines.push(Line::styled(
            format!("  … {} more", p.candidates.len() - PROMPT_CANDIDATES),
            muted,
        ));
    }
    frame.render_widget(Paragraph::new(lines), list);
    let key = |k: String| Span::styled(k, t.style(Role::Key));
    frame.render_widget(
        Line::from(vec![
            key(view.keys.first(Action::Open)),
            Span::styled(" load  ", muted),
            key("Tab".into()),
            Span::styled(" complete  ", muted),
            key(view.keys.first(Action::Back)),
            Span::styled(" cancel", muted),
        ]),
        keys,
    );
}

/// One status line: text on the left, a short note (loading, loaded at) on the right.
struct StatusRow {
    left: Line<'static>,
    right: Option<Line<'static>>,
}

fn render_status(frame: &mut Frame, area: Rect, rows: Vec<StatusRow>) {
    for (i, row) in rows.into_iter().enumerate() {
        let line_area = Rect {
            y: area.y + i as u16,
            height: 1,
            ..area
        };
        if line_area.y >= area.bottom() {
            break;
        }
        let right_w = row.right.as_ref().map_or(0, |r| r.width() as u16);
        let right_w = right_w.min(area.width / 2);
        let [l, r] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(right_w)])
            .spacing(u16::from(right_w > 0))
            .areas(line_area);
        frame.render_widget(row.left, l);
        if let Some(right) = row.right {
            frame.render_widget(right.alignment(Alignment::Right), r);
        }
    }
}

/// `api (tests/…/api) · Locust 1.x/2.x · 5,758 requests · 27 failed · ✗ gate failed: …`
fn summary_line(
    request: Option<&ReportRequest>,
    report: &Report,
    width: usize,
    view: &View,
) -> Line<'static> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let run = &report.run;
    let what = request
        .and_then(|r| r.inputs.first())
        .map(|p| text::sanitize(&p.display().to_string()).into_owned())
        .unwrap_or_default();
    let (requests, failures) = run.aggregate.as_ref().map_or_else(
        || {
            (
                run.endpoints.iter().map(|e| e.requests).sum(),
                run.endpoints.iter().map(|e| e.failures).sum(),
            )
        },
        |a| (a.requests, a.failures),
    );
    let (verdicts, style) = if report.verdict.passed {
        (vec!["✓ pass".to_string()], t.style(Role::StatusOk))
    } else {
        (
            vec![
                format!("✗ FAIL: {}", report.verdict.reasons.join("; ")),
                "✗ FAIL".to_string(),
            ],
            t.style(Role::StatusFailed),
        )
    };
    // The verdict matters most, then the figures; the path gives way first, then the
    // reasons of a failed gate (the Findings and Targets views have them), the format
    // and the failures.
    let mut parts = vec![format!(" · {} requests", text::count(requests))];
    if failures > 0 {
        parts.push(format!(" · {} failed", text::count(failures)));
    }
    if !report.warnings.is_empty() {
        parts.push(format!(" · ⚠ {} warning(s)", report.warnings.len()));
    }
    if let Some(g) = run.generation {
        parts.push(format!(" · {g}"));
    }
    const PATH_MIN_W: usize = 16;
    let n = parts.len();
    let mut choices: Vec<(&String, usize)> = Vec::new();
    for v in &verdicts {
        choices.extend([(v, n), (v, n.saturating_sub(1))]);
    }
    let short = verdicts.last().expect("one verdict at least");
    choices.extend((0..n.saturating_sub(1)).rev().map(|k| (short, k)));
    let (verdict, tail) = choices
        .iter()
        .map(|(v, keep)| ((*v).clone(), parts[..*keep].concat() + " · "))
        .find(|(v, tail)| PATH_MIN_W + tail.width() + v.width() <= width)
        .unwrap_or_else(|| (short.clone(), " · ".into()));
    let what_w = width
        .saturating_sub(tail.width() + verdict.width())
        .max(PATH_MIN_W.min(width));
    let what = text::fit_path(&what, what_w).into_owned();
    let rest = width.saturating_sub(what.width());
    let tail = fit(&tail, rest).into_owned();
    let verdict = fit(&verdict, rest.saturating_sub(tail.width())).into_owned();
    Line::from(vec![
        Span::styled(what, t.style(Role::Title)),
        Span::styled(tail, muted),
        Span::styled(verdict, style),
    ])
}

/// The axis top for a peak: the next of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ.
fn nice_ceiling(peak: f64) -> f64 {
    if !peak.is_finite() || peak <= 1.0 {
        return 1.0;
    }
    let decade = 10_f64.powf(peak.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|v| *v >= peak)
        .unwrap_or(10.0 * decade)
}

fn column_name(c: EndpointColumn) -> &'static str {
    match c {
        EndpointColumn::Endpoint => "endpoint",
        EndpointColumn::Requests => "reqs",
        EndpointColumn::Failures => "fails",
        EndpointColumn::ErrorPct => "err %",
        EndpointColumn::P50 => "p50",
        EndpointColumn::P95 => "p95",
        EndpointColumn::P99 => "p99",
        EndpointColumn::Max => "max",
        EndpointColumn::Rps => "rps",
    }
}

fn severity_style(s: Severity, t: &Theme) -> Style {
    t.style(match s {
        Severity::Info => Role::SeverityInfo,
        Severity::Warning => Role::SeverityWarn,
        Severity::Critical => Role::SeverityCritical,
    })
}

/// The worst finding about an endpoint, if any.
fn worst_severity(report: &Report, label: &str) -> Option<Severity> {
    report
        .findings
        .iter()
        .filter(|f| f.endpoint == label)
        .map(|f| f.severity)
        .max()
}

fn endpoint_row(
    e: &EndpointStats,
    worst: Option<Severity>,
    name_w: u16,
    t: &Theme,
) -> Row<'static> {
    let right = |s: String| Cell::from(Line::from(s).alignment(Alignment::Right));
    // The flag reads without colour: `!!` critical, `! ` warning.
    let (flag, style) = match worst {
        Some(Severity::Critical) => ("!!", severity_style(Severity::Critical, t)),
        Some(Severity::Warning) => ("! ", severity_style(Severity::Warning, t)),
        _ => ("  ", Style::new()),
    };
    Row::new(vec![
        Cell::from(Span::styled(flag, style)),
        Cell::from(fit(&e.label(), name_w as usize).into_owned()),
        right(text::count(e.requests)),
        right(text::count(e.failures)),
        right(format!("{:.2}", e.error_pct)),
        right(ms(e.p50_ms.or(e.median_ms))),
        right(ms(e.p95_ms)),
        right(ms(e.p99_ms)),
        right(ms(e.max_ms)),
        right(format!("{:.1}", e.rps)),
    ])
}

/// Wrapped text as lines of one style.
fn wrapped(s: &str, width: u16, first: &str, indent: &str, style: Style) -> Vec<Line<'static>> {
    text::wrap(s, width as usize, first, indent)
        .into_iter()
        .map(|l| Line::styled(l, style))
        .collect()
}

fn findings_lines(report: &Report, width: u16, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    // What the reader was not sure of comes first: it qualifies every finding below.
    let mut lines = Vec::new();
    for w in &report.warnings {
        lines.extend(wrapped(w, width, "⚠ ", "  ", t.style(Role::SeverityWarn)));
    }
    if report.findings.is_empty() {
        lines.push(Line::styled(
            "No findings: every endpoint is under the thresholds.",
            t.style(Role::StatusOk),
        ));
        return lines;
    }
    for f in &report.findings {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<8}", f.severity.to_string()),
                severity_style(f.severity, t),
            ),
            Span::styled(format!(" {:<3} ", f.id), t.style(Role::Muted)),
            Span::styled(f.endpoint.clone(), t.style(Role::Title)),
            Span::styled(
                format!("  {}", f.kind.to_string().replace('_', " ")),
                t.style(Role::Muted),
            ),
        ]));
        lines.extend(wrapped(&f.reason, width, "    ", "    ", Style::new()));
    }
    lines
}

fn advice_lines(report: &Report, width: u16, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let mut lines = Vec::new();
    for horizon in [Horizon::Immediate, Horizon::ShortTerm, Horizon::LongTerm] {
        let recs: Vec<_> = report
            .recommendations
            .iter()
            .filter(|r| r.horizon == horizon)
            .collect();
        lines.push(Line::styled(horizon.to_string(), t.style(Role::Header)));
        if recs.is_empty() {
            lines.push(Line::styled("  nothing", muted));
        }
        for r in recs {
            let because = if r.because_of.is_empty() {
                String::new()
            } else {
                format!(" [{}]", r.because_of.join(", "))
            };
            lines.extend(wrapped(
                &format!("{}{because}", r.action),
                width,
                "  • ",
                "    ",
                Style::new(),
            ));
        }
        lines.push(Line::raw(""));
    }
    lines.push(Line::styled("Cache TTL", t.style(Role::Header)));
    if report.cache_ttls.is_empty() {
        lines.push(Line::styled("  no endpoints", muted));
    }
    let name_w = (width as usize).saturating_sub(34).clamp(10, 40);
    lines.push(Line::styled(
        format!(
            "  {:<name_w$} {:>8} {:>7} {:>7} {:>8}",
            "endpoint", "traffic", "rps", "p99", "ttl"
        ),
        muted,
    ));
    for a in &report.cache_ttls {
        let ttl = a.ttl_secs.map_or("no cache".into(), human_secs);
        lines.push(Line::from(vec![
            Span::raw(format!("  {:<name_w$}", fit(&a.endpoint, name_w))),
            Span::styled(
                format!(
                    " {:>8} {:>7.1} {:>7}",
                    a.tier.to_string(),
                    a.rps,
                    ms(a.p99_ms)
                ),
                muted,
            ),
            Span::styled(format!(" {ttl:>8}"), t.style(Role::Title)),
        ]));
        lines.extend(wrapped(&a.reason, width, "      ", "      ", muted));
    }
    lines
}

fn targets_lines(report: &Report, width: u16, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let Some(targets) = &report.targets else {
        return vec![
            Line::styled("No targets file.", t.style(Role::Notice)),
            Line::styled("Start with --targets FILE, a TOML file such as:", muted),
            Line::styled("  [targets]", muted),
            Line::styled(
                "  \"GET /api/users\" = [\"p95 < 150\", \"error_rate < 0.5%\"]",
                muted,
            ),
        ];
    };
    let mut lines = Vec::new();
    let longest = |f: fn(&crate::report::model::TargetOutcome) -> &str| {
        targets
            .outcomes
            .iter()
            .map(|o| f(o).width())
            .max()
            .unwrap_or(0)
    };
    let rule_w = longest(|o| &o.rule).clamp(8, 24);
    let name_w =
        longest(|o| &o.endpoint).clamp(10, (width as usize).saturating_sub(rule_w + 30).max(10));
    for o in &targets.outcomes {
        let (word, style) = if o.passed {
            ("✓ pass", t.style(Role::StatusOk))
        } else {
            ("✗ FAIL", t.style(Role::StatusFailed))
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{word}  "), style),
            Span::raw(format!("{:<name_w$}  ", fit(&o.endpoint, name_w))),
            Span::styled(
                format!("{:<rule_w$}", fit(&o.rule, rule_w)),
                t.style(Role::Title),
            ),
            Span::styled(format!("  {}", o.detail), muted),
        ]));
    }
    if !targets.warnings.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("Warnings ({})", targets.warnings.len()),
            t.style(Role::Header),
        ));
        for w in &targets.warnings {
            lines.extend(wrapped(w, width, "⚠ ", "  ", t.style(Role::SeverityWarn)));
        }
    }
    lines
}

fn failures_lines(report: &Report, width: u16, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    if report.run.failures.is_empty() {
        let msg = if report.run.files.failures.is_some() {
            "No failures recorded."
        } else {
            "No failures file in this run (PREFIX_failures.csv)."
        };
        return vec![Line::styled(msg, muted)];
    }
    let mut lines = Vec::new();
    for f in &report.run.failures {
        let mut head = vec![
            Span::styled(
                format!("{:>6}× ", text::count(f.occurrences)),
                t.style(Role::SeverityError),
            ),
            Span::styled(
                crate::report::model::endpoint_label(&f.method, &f.name),
                t.style(Role::Title),
            ),
        ];
        if let (Some(a), Some(b)) = (&f.first_seen, &f.last_seen) {
            head.push(Span::styled(format!("  {}", seen_between(a, b)), muted));
        }
        lines.push(Line::from(head));
        for part in f.error.lines() {
            lines.extend(wrapped(part, width, "        ", "        ", Style::new()));
        }
    }
    lines
}

/// `2026-11-22 11:22:35Z → 11:23:12Z` when both are on one day, else both in full.
fn seen_between(first: &str, last: &str) -> String {
    match (first.split_once('T'), last.split_once('T')) {
        (Some((d1, t1)), Some((d2, t2))) if d1 == d2 => format!("{d1} {t1} → {t2}"),
        _ => format!("{first} → {last}"),
    }
}

fn exceptions_lines(report: &Report, width: u16, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let mut lines = checks_lines(report, view);
    if !lines.is_empty() {
        if report.run.exceptions.is_empty() {
            return lines;
        }
        lines.push(Line::raw(""));
    }
    if report.run.exceptions.is_empty() {
        let msg = if report.run.files.exceptions.is_some() {
            "No exceptions recorded."
        } else {
            "No exceptions file in this run (PREFIX_exceptions.csv)."
        };
        return vec![Line::styled(msg, muted)];
    }
    for (i, x) in report.run.exceptions.iter().enumerate() {
        if i > 0 {
            lines.push(Line::raw(""));
        }
        let mut message = x.message.lines();
        let first = message.next().unwrap_or("");
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:>6}× ", text::count(x.count)),
                t.style(Role::SeverityError),
            ),
            Span::styled(first.to_string(), t.style(Role::Title)),
            Span::styled(
                if x.nodes.is_empty() {
                    String::new()
                } else {
                    format!("  on {}", x.nodes)
                },
                muted,
            ),
        ]));
        for more in message {
            lines.extend(wrapped(
                more,
                width,
                "        ",
                "        ",
                t.style(Role::Title),
            ));
        }
        // Tracebacks keep their own indentation; long lines wrap under it.
        for tb in x.traceback.lines().filter(|l| !l.trim().is_empty()) {
            let lead = tb.len() - tb.trim_start().len();
            let first = format!("        {}", &tb[..lead]);
            let rest = format!("{first}  ");
            lines.extend(wrapped(tb.trim_start(), width, &first, &rest, muted));
        }
    }
    lines
}

/// k6 checks: passes and fails per check, the failing ones marked.
fn checks_lines(report: &Report, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let checks = &report.run.checks;
    if checks.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![Line::styled(
        format!("{:>8} {:>8} {:>7}  check", "passes", "fails", "fail %"),
        t.style(Role::Header),
    )];
    for c in checks {
        let style = if c.fails > 0 {
            t.style(Role::SeverityError)
        } else {
            t.style(Role::Text)
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!(
                    "{:>8} {:>8} {:>7.2}  ",
                    text::count(c.passes),
                    text::count(c.fails),
                    c.fail_pct()
                ),
                style,
            ),
            Span::styled(c.path(), t.style(Role::Title)),
        ]));
    }
    lines
}

fn change_cell(d: &MetricDelta, wide: bool, t: &Theme) -> Span<'static> {
    let (glyph, style) = match d.change {
        Change::Regression => ("▲", t.style(Role::ChangeWorse)),
        Change::Improvement => ("▼", t.style(Role::ChangeBetter)),
        Change::Unchanged => (" ", t.style(Role::Muted)),
    };
    let change = match (d.metric.as_str(), d.delta, d.delta_pct) {
        (_, None, _) => "–".to_string(),
        ("error_pct", Some(x), _) => format!("{x:+.2}pt"),
        (_, Some(_), Some(p)) => format!("{p:+.0}%"),
        (_, Some(x), None) => format!("{x:+.1}"),
    };
    let text = if wide {
        let v = |x: Option<f64>| match d.metric.as_str() {
            "error_pct" => x.map_or("–".into(), |x| format!("{x:.2}")),
            "rps" => x.map_or("–".into(), |x| format!("{x:.1}")),
            _ => ms(x),
        };
        format!(
            "{:>13} {:>7} {glyph}",
            format!("{}→{}", v(d.base), v(d.current)),
            change
        )
    } else {
        format!("{change:>7} {glyph}")
    };
    Span::styled(text, style)
}

fn compare_lines(report: &Report, width: u16, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let Some(c) = &report.comparison else {
        return vec![
            Line::styled("No compare base loaded.", t.style(Role::Notice)),
            Line::from(vec![
                Span::styled(view.keys.first(Action::OpenCompare), t.style(Role::Key)),
                Span::styled(
                    " opens an earlier run to compare with (or start with --compare BASE_PREFIX).",
                    muted,
                ),
            ]),
        ];
    };
    let wide = width >= COMPARE_WIDE_MIN_WIDTH;
    let cell_w = if wide { 24 } else { 9 };
    let metrics = ["p50", "p95", "p99", "error_pct", "rps"];
    let name_w = (width as usize)
        .saturating_sub(2 + metrics.len() * (cell_w + 1))
        .max(8);
    let mut lines = vec![
        Line::styled(
            fit(&format!("base: {}", c.base_label), width as usize).into_owned(),
            muted,
        ),
        Line::styled(
            format!(
                "  {:<name_w$}{}",
                "endpoint",
                metrics
                    .iter()
                    .map(|m| {
                        let w = cell_w - 2;
                        format!(" {:>w$}  ", if *m == "error_pct" { "err %" } else { m })
                    })
                    .collect::<String>()
            ),
            t.style(Role::Header),
        ),
    ];
    for e in &c.endpoints {
        let worse = e.deltas.iter().any(|d| d.change == Change::Regression);
        let better = e.deltas.iter().any(|d| d.change == Change::Improvement);
        let flag = match (worse, better) {
            (true, _) => Span::styled("▲ ", t.style(Role::ChangeWorse)),
            (false, true) => Span::styled("▼ ", t.style(Role::ChangeBetter)),
            _ => Span::raw("  "),
        };
        let mut spans = vec![
            flag,
            Span::raw(format!("{:<name_w$}", fit(&e.endpoint, name_w))),
        ];
        for m in metrics {
            spans.push(Span::raw(" "));
            match e.deltas.iter().find(|d| d.metric == m) {
                Some(d) => {
                    let mut s = change_cell(d, wide, t);
                    s.content = format!("{:>cell_w$}", s.content).into();
                    spans.push(s);
                }
                None => spans.push(Span::styled(format!("{:>cell_w$}", "–"), muted)),
            }
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "▲ worse  ▼ better  (changes under 10% or 5 ms are noise and not flagged)",
        muted,
    ));
    for (word, list) in [("Added", &c.added), ("Removed", &c.removed)] {
        if !list.is_empty() {
            lines.extend(wrapped(
                &list.join(", "),
                width,
                &format!("{word} ({}): ", list.len()),
                "  ",
                Style::new(),
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::build_report;
    use crate::ui::ReportLoad;

    fn request(rel: &str) -> ReportRequest {
        ReportRequest {
            inputs: vec![PathBuf::from("tests/fixtures/locust").join(rel)],
            ..ReportRequest::default()
        }
    }

    fn loading(tab: &mut ReportsTab, seq: u64, request: &ReportRequest) {
        tab.on_event(&AppEvent::ReportLoading {
            seq,
            request: request.clone(),
            reload: false,
        });
    }

    fn loaded(tab: &mut ReportsTab, seq: u64, request: &ReportRequest, reload: bool) -> bool {
        let result = build_report(request, None).map_err(|e| e.to_string());
        tab.on_event(&AppEvent::ReportLoaded(Box::new(ReportLoad {
            seq,
            request: request.clone(),
            reload,
            at: OffsetDateTime::UNIX_EPOCH,
            result,
        })))
    }

    fn with_report(rel: &str) -> ReportsTab {
        let mut tab = ReportsTab::new(None);
        let r = request(rel);
        loading(&mut tab, 1, &r);
        assert!(loaded(&mut tab, 1, &r, false));
        tab
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn names(tab: &ReportsTab) -> Vec<String> {
        tab.endpoints().iter().map(EndpointStats::label).collect()
    }

    #[test]
    fn sorts_by_every_column_both_ways() {
        let mut tab = with_report("2.47/api");
        // Bottlenecks first by default.
        assert_eq!(tab.sort(), (EndpointColumn::P99, true));
        assert_eq!(names(&tab)[0], "GET dashboard_overview");
        for _ in 0..EndpointColumn::ALL.len() {
            tab.handle_key(Action::SortColumn);
            let (col, desc) = tab.sort();
            for reverse in [false, true] {
                if reverse {
                    assert_eq!(tab.handle_key(Action::SortReverse), Outcome::Redraw);
                }
                let mut expected = tab.endpoints().to_vec();
                sort_endpoints(&mut expected, col, desc != reverse);
                assert_eq!(tab.endpoints(), expected, "{col:?} reverse={reverse}");
            }
            tab.handle_key(Action::SortReverse);
        }
        // Names read A→Z; the column cycle comes back to p99.
        assert_eq!(tab.sort(), (EndpointColumn::P99, true));
        while tab.sort().0 != EndpointColumn::Endpoint {
            tab.handle_key(Action::SortColumn);
        }
        assert_eq!(tab.sort(), (EndpointColumn::Endpoint, false));
        assert_eq!(names(&tab)[0], "GET alerts_list");
    }

    #[test]
    fn the_selected_row_follows_its_endpoint_through_a_sort() {
        let mut tab = with_report("2.47/api");
        tab.handle_key(Action::Down);
        let picked = names(&tab)[tab.selected()].clone();
        tab.handle_key(Action::SortReverse);
        assert_eq!(names(&tab)[tab.selected()], picked);
        // Moving stops at the ends.
        assert_eq!(tab.handle_key(Action::PageDown), Outcome::Redraw);
        assert_eq!(tab.selected(), 5);
        assert_eq!(tab.handle_key(Action::Down), Outcome::Ignored);
    }

    #[test]
    fn views_cycle_both_ways_and_enter_opens_the_chart_of_a_row() {
        let mut tab = with_report("2.47/api");
        assert_eq!(tab.view(), ReportView::Endpoints);
        tab.handle_key(Action::PrevView);
        assert_eq!(tab.view(), ReportView::Compare);
        for v in ReportView::ALL {
            tab.handle_key(Action::NextView);
            assert_eq!(tab.view(), v);
        }
        // Sorting is for the table only.
        assert!(matches!(
            tab.handle_key(Action::SortColumn),
            Outcome::Say(_)
        ));
        tab.handle_key(Action::NextView);
        let row = names(&tab)[tab.selected()].clone();
        assert_eq!(tab.handle_key(Action::Open), Outcome::Redraw);
        assert_eq!(tab.view(), ReportView::OverTime);
        assert_eq!(tab.chart_endpoint().unwrap().label(), row);
        tab.handle_key(Action::Up);
        assert_ne!(tab.chart_endpoint().unwrap().label(), row);
    }

    #[test]
    fn the_prompt_takes_every_printable_key_and_loads_on_enter() {
        let mut tab = ReportsTab::new(Some("targets.toml".into()));
        assert!(!tab.takes_text());
        tab.handle_key(Action::OpenReport);
        assert!(tab.takes_text());
        assert_eq!(tab.prompt_text().as_deref(), Some(""));
        // Keys bound to actions (quit, tabs, views) are text here.
        for c in "q3]o/x".chars() {
            let action = match c {
                'q' => Some(Action::Quit),
                '3' => Some(Action::TabReports),
                _ => None,
            };
            assert_eq!(
                tab.handle_text(&key(KeyCode::Char(c)), action),
                Outcome::Redraw
            );
        }
        tab.handle_text(&key(KeyCode::Backspace), None);
        assert_eq!(tab.prompt_text().as_deref(), Some("q3]o/"));
        let out = tab.handle_text(&key(KeyCode::Enter), Some(Action::Open));
        let Outcome::Do(Effect::LoadReport(r)) = out else {
            panic!("Enter loads: {out:?}");
        };
        assert_eq!(r.inputs, [PathBuf::from("q3]o/")]);
        assert_eq!(r.targets, Some(PathBuf::from("targets.toml")));
        assert!(!tab.takes_text());
        // Esc leaves without loading.
        tab.handle_key(Action::OpenReport);
        assert_eq!(
            tab.handle_text(&key(KeyCode::Esc), Some(Action::Back)),
            Outcome::Redraw
        );
        assert!(!tab.takes_text());
    }

    #[test]
    fn compare_prompt_needs_a_run_and_keeps_the_run() {
        let mut tab = ReportsTab::new(None);
        assert!(matches!(
            tab.handle_key(Action::OpenCompare),
            Outcome::Say(_)
        ));
        let mut tab = with_report("2.8/run");
        tab.handle_key(Action::OpenCompare);
        assert_eq!(tab.prompt_kind(), Some(PromptKind::CompareBase));
        // Runs to compare usually sit side by side.
        assert_eq!(
            tab.prompt_text().as_deref(),
            Some("tests/fixtures/locust/2.8/")
        );
        for c in "run".chars() {
            tab.handle_text(&key(KeyCode::Char(c)), None);
        }
        let Outcome::Do(Effect::LoadReport(r)) = tab.handle_text(&key(KeyCode::Enter), None) else {
            panic!("Enter loads");
        };
        assert_eq!(r.inputs, request("2.8/run").inputs);
        assert_eq!(
            r.compare_base,
            Some(vec![PathBuf::from("tests/fixtures/locust/2.8/run")])
        );
    }

    #[test]
    fn tab_completes_on_a_temp_dir_through_the_event_loop() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["api_stats.csv", "api2_stats.csv", "other_stats.csv"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let base = format!("{}/", dir.path().display());
        let mut tab = ReportsTab::new(None);
        tab.handle_key(Action::OpenReport);
        for c in format!("{base}a").chars() {
            tab.handle_text(&key(KeyCode::Char(c)), None);
        }
        // Tab asks the loop to list the directory (no I/O in the UI)...
        let out = tab.handle_text(&key(KeyCode::Tab), Some(Action::NextTab));
        let Outcome::Do(Effect::CompletePath(input)) = out else {
            panic!("Tab asks for completions: {out:?}");
        };
        assert_eq!(input, format!("{base}a"));
        // ...which the loop does with the engine's completion.
        let candidates = crate::report::paths::complete(&input);
        assert_eq!(candidates, [format!("{base}api"), format!("{base}api2")]);
        assert!(tab.on_event(&AppEvent::Completions {
            input: input.clone(),
            candidates: candidates.clone(),
        }));
        // The common part is filled in, then Tab walks the candidates.
        assert_eq!(tab.prompt_text(), Some(format!("{base}api")));
        assert_eq!(tab.prompt_candidates(), candidates);
        assert_eq!(tab.handle_text(&key(KeyCode::Tab), None), Outcome::Redraw);
        assert_eq!(tab.prompt_text(), Some(format!("{base}api")));
        tab.handle_text(&key(KeyCode::Tab), None);
        assert_eq!(tab.prompt_text(), Some(format!("{base}api2")));
        tab.handle_text(&key(KeyCode::BackTab), None);
        assert_eq!(tab.prompt_text(), Some(format!("{base}api")));
        // An answer to an older question is dropped.
        tab.handle_text(&key(KeyCode::Char('x')), None);
        assert!(!tab.on_event(&AppEvent::Completions {
            input,
            candidates: vec!["elsewhere".into()],
        }));
        // One candidate completes at once.
        let mut tab = ReportsTab::new(None);
        tab.handle_key(Action::OpenReport);
        let input = format!("{base}o");
        tab.prompt.as_mut().unwrap().set_text(&input);
        tab.on_event(&AppEvent::Completions {
            candidates: crate::report::paths::complete(&input),
            input,
        });
        assert_eq!(tab.prompt_text(), Some(format!("{base}other")));
    }

    #[test]
    fn load_results_latest_wins_errors_keep_the_last_report() {
        let mut tab = ReportsTab::new(None);
        let a = request("2.47/api");
        let b = request("2.8/run");
        loading(&mut tab, 1, &a);
        assert!(tab.is_loading());
        loading(&mut tab, 2, &b);
        // The first load finishing late is overtaken.
        assert!(!loaded(&mut tab, 1, &a, false));
        assert!(tab.report().is_none() && tab.is_loading());
        assert!(loaded(&mut tab, 2, &b, false));
        assert!(!tab.is_loading());
        assert_eq!(tab.endpoints().len(), 3);
        // A failed load says why and keeps what was shown.
        let bad = request("nope/run");
        loading(&mut tab, 3, &bad);
        assert!(loaded(&mut tab, 3, &bad, false));
        assert!(
            tab.error().unwrap().contains("nope/run"),
            "{:?}",
            tab.error()
        );
        assert_eq!(tab.endpoints().len(), 3);
        // A reload that works clears the error; the reader keeps their row.
        tab.handle_key(Action::Down);
        let row = names(&tab)[tab.selected()].clone();
        loading(&mut tab, 4, &b);
        assert!(loaded(&mut tab, 4, &b, true));
        assert!(tab.error().is_none());
        assert_eq!(names(&tab)[tab.selected()], row);
        assert_eq!(
            tab.handle_key(Action::Refresh),
            Outcome::Do(Effect::ReloadReport)
        );
    }

    #[test]
    fn the_readers_warnings_come_first_in_the_findings() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["api_stats.csv", "api_stats_history.csv"] {
            let text = std::fs::read_to_string(format!("tests/fixtures/locust/2.47/{f}")).unwrap();
            // Locust still writing its history: the last line has no line end yet.
            let text = if f.contains("history") {
                text.trim_end()[..text.trim_end().len() - 10].to_owned()
            } else {
                text
            };
            std::fs::write(dir.path().join(f), text).unwrap();
        }
        let report = build_report(
            &ReportRequest {
                inputs: vec![dir.path().join("api")],
                ..ReportRequest::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        let theme = crate::ui::theme::Theme::default_theme();
        let keys = crate::app::keymap::KeyMap::default();
        let view = View {
            theme: &theme,
            keys: &keys,
            now: OffsetDateTime::UNIX_EPOCH,
            offset: time::UtcOffset::UTC,
        };
        let lines = findings_lines(&report, 200, &view);
        let first: String = lines[0].spans.iter().map(|s| s.content.as_ref()).collect();
        assert!(
            first.starts_with("⚠ ") && first.contains("last line incomplete"),
            "{first}"
        );
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    /// A Run prompt prefilled with `text`, the cursor at its end.
    fn prompt_with(text: &str) -> ReportsTab {
        let mut tab = ReportsTab::new(None);
        tab.prompt = Some(Prompt::new(PromptKind::Run, text));
        tab
    }

    fn typed(tab: &mut ReportsTab, keys: &[KeyEvent]) -> String {
        for k in keys {
            tab.handle_text(k, None);
        }
        tab.prompt_text().unwrap()
    }

    #[test]
    fn prompt_ctrl_w_deletes_a_path_component_with_its_separator() {
        let mut tab = prompt_with("results/api/");
        assert_eq!(typed(&mut tab, &[ctrl('w')]), "results/");
        assert_eq!(typed(&mut tab, &[ctrl('w')]), "");
        assert_eq!(
            typed(&mut tab, &[ctrl('w')]),
            "",
            "nothing left: nothing happens"
        );
        let mut tab = prompt_with("/tmp/runs/api_stats.csv");
        assert_eq!(typed(&mut tab, &[ctrl('w')]), "/tmp/runs/");
        assert_eq!(typed(&mut tab, &[ctrl('w')]), "/tmp/");
        assert_eq!(typed(&mut tab, &[ctrl('w')]), "/");
        // Only what is before the cursor goes.
        let mut tab = prompt_with("results/api");
        let left = key(KeyCode::Left);
        assert_eq!(typed(&mut tab, &[left, left, left, ctrl('w')]), "api");
        // Alt-Backspace does the same.
        let mut tab = prompt_with("a/b");
        let alt_bs = KeyEvent::new(KeyCode::Backspace, KeyModifiers::ALT);
        assert_eq!(typed(&mut tab, &[alt_bs]), "a/");
    }

    #[test]
    fn prompt_ctrl_u_deletes_to_the_start() {
        let mut tab = prompt_with("results/api");
        assert_eq!(typed(&mut tab, &[ctrl('u')]), "");
        let mut tab = prompt_with("results/api");
        let left = key(KeyCode::Left);
        assert_eq!(typed(&mut tab, &[left, left, left, ctrl('u')]), "api");
        // ...and the cursor is at the start: typing goes before what is left.
        assert_eq!(typed(&mut tab, &[key(KeyCode::Char('x'))]), "xapi");
    }

    #[test]
    fn prompt_first_slash_or_tilde_starts_a_new_path() {
        for (first, then) in [('/', "tmp"), ('~', "/runs")] {
            let mut tab = prompt_with("tests/fixtures/locust/2.47/api");
            let mut keys = vec![key(KeyCode::Char(first))];
            keys.extend(then.chars().map(|c| key(KeyCode::Char(c))));
            assert_eq!(typed(&mut tab, &keys), format!("{first}{then}"));
        }
        // Any other first key edits the prefilled text as usual...
        let mut tab = prompt_with("results/");
        assert_eq!(typed(&mut tab, &[key(KeyCode::Char('a'))]), "results/a");
        assert_eq!(typed(&mut tab, &[key(KeyCode::Char('/'))]), "results/a/");
        // ...and so does a `/` after a key that moved the cursor.
        let mut tab = prompt_with("results");
        let keys = [key(KeyCode::End), key(KeyCode::Char('/'))];
        assert_eq!(typed(&mut tab, &keys), "results/");
        // An empty prompt just takes the `/`.
        let mut tab = prompt_with("");
        assert_eq!(typed(&mut tab, &[key(KeyCode::Char('/'))]), "/");
    }

    #[test]
    fn fit_left_keeps_the_end_of_a_path() {
        assert_eq!(text::fit_left("runs/2.47/api", 8), "….47/api");
        assert_eq!(text::fit_left("api", 8), "api");
    }
}
