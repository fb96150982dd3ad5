//! The Cache tab, after varnishstat: the HTTP cache's counters for one namespace (or
//! `all`) with their lifetime value, what the last run added and the average per run;
//! hit rates each naming its window, a sparkline of the recent runs' rates (a run with
//! no lookups is a gap, never 0%), what each source holds and saved of its budget, and
//! the tiers against their budgets. `d` clears, `p` purges, each after a question.
//!
//! The figures arrive as a [`CacheReport`] read on the blocking pool (at start, when
//! the tab is opened, when a run ends, after a job, and on `u`); jobs run there too.

use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table};

use super::text;
use super::theme::Role;
use super::widgets::{centered, panel};
use super::{AppEvent, Effect, Outcome, Tab, View};
use crate::app::action::Action;
use crate::cache::maintenance::{Done, Job};
use crate::cache::{CacheReport, Namespace};
use crate::engine::events::EngineEvent;

/// The counters table's rows: 13 counters, a header and the borders.
const COUNTERS_H: u16 = 16;
/// The tallest the hit-rate sparkline gets.
const SPARK_MAX_H: u16 = 6;
/// Width of the per-source and tiers column on an 80-column pane.
const SIDE_MIN_W: u16 = 36;

/// One line of the counters table.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterRow {
    pub name: &'static str,
    pub lifetime: u64,
    /// What the last recorded run added.
    pub last_run: u64,
    /// Per run over the recorded runs; None before the first run.
    pub average: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct CacheTab {
    /// None until the first load finishes.
    report: Option<Box<CacheReport>>,
    /// A load of the figures is in flight.
    loading: bool,
    /// A run ended (or a job finished) while a load was in flight: the figures it
    /// brings may predate it, so load once more when it lands.
    stale: bool,
    /// Work asked for by an event, for the app to collect.
    effects: Vec<Effect>,
    /// 0: all namespaces; i: `Namespace::ALL[i - 1]`.
    selected: usize,
    hide_zeros: bool,
    /// A job waiting for a yes or a no.
    confirm: Option<Job>,
    /// A job on its way.
    running: Option<Job>,
}

/// `cleared github: 120 entries, 3.2 MiB` (the footer and `snaptop cache clear`).
pub fn done_text(done: &Done) -> String {
    if let Some((before, after)) = done.files {
        return format!(
            "{}: files {} → {} ({} given back)",
            done.job.done_verb(),
            text::bytes(before),
            text::bytes(after),
            text::bytes(done.bytes)
        );
    }
    format!(
        "{}: {} {}, {}",
        done.job.done_verb(),
        text::count(done.entries),
        if done.entries == 1 {
            "entry"
        } else {
            "entries"
        },
        text::bytes(done.bytes)
    )
}

impl CacheTab {
    /// The loop loads the figures once at start: the tab begins as loading.
    pub fn new() -> CacheTab {
        CacheTab {
            loading: true,
            ..CacheTab::default()
        }
    }

    pub fn report(&self) -> Option<&CacheReport> {
        self.report.as_deref()
    }

    pub fn is_loading(&self) -> bool {
        self.loading
    }

    /// The namespace shown; None: all of them.
    pub fn namespace(&self) -> Option<Namespace> {
        self.selected.checked_sub(1).map(|i| Namespace::ALL[i])
    }

    pub fn hides_zeros(&self) -> bool {
        self.hide_zeros
    }

    /// The job the question on screen is about.
    pub fn confirming(&self) -> Option<Job> {
        self.confirm
    }

    pub fn job_running(&self) -> Option<Job> {
        self.running
    }

    /// Asks for the figures unless a load is already on its way.
    fn refresh(&mut self) -> Option<Effect> {
        if self.loading {
            return None;
        }
        self.loading = true;
        Some(Effect::RefreshCache)
    }

    /// A refresh now, or once the load in flight lands.
    fn refresh_soon(&mut self) {
        match self.refresh() {
            Some(effect) => self.effects.push(effect),
            None => self.stale = true,
        }
    }

    /// The counters of the selected namespace, zeros left out when they are hidden.
    pub fn counter_rows(&self) -> Vec<CounterRow> {
        let Some(report) = &self.report else {
            return Vec::new();
        };
        let ns = self.namespace();
        let runs = report.runs.len();
        let lifetime = report.lifetime_of(ns).fields();
        let last = report.last_runs(ns, 1).fields();
        let recorded = report.last_runs(ns, runs).fields();
        lifetime
            .iter()
            .zip(last.iter().zip(recorded.iter()))
            .map(|(&(name, value), (&(_, last), &(_, sum)))| CounterRow {
                name,
                lifetime: value,
                last_run: last,
                average: (runs > 0).then(|| sum as f64 / runs as f64),
            })
            .filter(|r| !self.hide_zeros || r.lifetime != 0 || r.last_run != 0)
            .collect()
    }

    fn ask(&mut self, job: Job) -> Outcome {
        if let Some(running) = self.running {
            return Outcome::Say(format!("wait: {} is still going", running.describe()));
        }
        self.confirm = Some(job);
        Outcome::Redraw
    }

    fn answer(&mut self, yes: bool) -> Outcome {
        let Some(job) = self.confirm.take() else {
            return Outcome::Ignored;
        };
        if !yes {
            return Outcome::Say(format!("kept: did not {}", job.describe()));
        }
        self.running = Some(job);
        Outcome::Do(Effect::CacheJob(job))
    }
}

impl Tab for CacheTab {
    fn title(&self) -> &'static str {
        "Cache"
    }

    fn handle_key(&mut self, action: Action) -> Outcome {
        let n = Namespace::ALL.len() + 1;
        match action {
            Action::Refresh => match self.refresh() {
                Some(effect) => Outcome::Do(effect),
                None => Outcome::Say("already loading the cache figures".into()),
            },
            Action::Left => {
                self.selected = (self.selected + n - 1) % n;
                Outcome::Redraw
            }
            Action::Right => {
                self.selected = (self.selected + 1) % n;
                Outcome::Redraw
            }
            Action::HideZeros => {
                self.hide_zeros = !self.hide_zeros;
                Outcome::Redraw
            }
            Action::ClearCache => self.ask(match self.namespace() {
                Some(ns) => Job::ClearNamespace(ns),
                None => Job::ClearAll,
            }),
            Action::PurgeCache => self.ask(Job::PurgeExpired),
            Action::CompactStore => self.ask(Job::CompactStore),
            _ => Outcome::Ignored,
        }
    }

    /// The question is modal: its keys only, until it is answered.
    fn takes_text(&self) -> bool {
        self.confirm.is_some()
    }

    fn handle_text(&mut self, _key: &KeyEvent, action: Option<Action>) -> Outcome {
        match action {
            Some(Action::Confirm | Action::Open) => self.answer(true),
            Some(Action::Decline | Action::Back | Action::Quit) => self.answer(false),
            _ => Outcome::Ignored,
        }
    }

    fn on_show(&mut self) -> Outcome {
        match self.refresh() {
            Some(effect) => Outcome::Do(effect),
            None => Outcome::Ignored,
        }
    }

    fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn on_event(&mut self, event: &AppEvent) -> bool {
        match event {
            AppEvent::CacheReport(report) => {
                self.report = Some(report.clone());
                self.loading = false;
                if std::mem::take(&mut self.stale)
                    && let Some(effect) = self.refresh()
                {
                    self.effects.push(effect);
                }
                true
            }
            AppEvent::CacheJobDone(_) => {
                self.running = None;
                self.refresh_soon();
                true
            }
            // A run ended: it moved the counters and wrote entries.
            AppEvent::Engine(EngineEvent::Finished { .. } | EngineEvent::Failed { .. }) => {
                self.refresh_soon();
                true
            }
            _ => false,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let Some(report) = self.report.as_deref() else {
            frame.render_widget(
                Paragraph::new(Line::styled("reading the cache figures…", muted))
                    .block(panel("Cache", t)),
                area,
            );
            return;
        };
        // Before any run, or with no lookups in any, there is nothing to chart: one line
        // says so.
        let nothing_to_chart = report
            .hit_rate_series(self.namespace())
            .iter()
            .all(Option::is_none);
        let spark_h = if nothing_to_chart {
            1
        } else {
            area.height
                .saturating_sub(1 + COUNTERS_H + 3)
                .clamp(1, SPARK_MAX_H)
        };
        let [picker, rates, lower] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(3 + spark_h),
            Constraint::Fill(1),
        ])
        .areas(area);
        self.render_picker(frame, picker, view);
        self.render_rates(frame, rates, report, view);
        // The side column keeps its 80-column width until there is room for halves.
        let side_w = if lower.width < 100 {
            SIDE_MIN_W
        } else {
            lower.width / 2
        };
        let [left, side] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(side_w)]).areas(lower);
        // Each panel as tall as its rows: no empty block under a short table.
        let counters_h = (self.counter_rows().len() as u16 + 3).max(3);
        let [counters, runs] =
            Layout::vertical([Constraint::Length(counters_h), Constraint::Fill(1)]).areas(left);
        self.render_counters(frame, counters, report, view);
        if runs.height >= 4 && !report.runs.is_empty() {
            self.render_runs(frame, runs, report, view);
        }
        let sources_h = 3 + Namespace::ALL.len() as u16 + 1;
        let [sources, tiers, _] = Layout::vertical([
            Constraint::Length(sources_h),
            Constraint::Length(7),
            Constraint::Fill(1),
        ])
        .areas(side);
        self.render_sources(frame, sources, report, view);
        render_tiers(frame, tiers, report, view);
        if let Some(job) = self.confirm {
            render_confirm(frame, area, job, report, view);
        }
    }

    fn group(&self) -> crate::app::action::Group {
        crate::app::action::Group::Cache
    }

    fn hints(&self) -> Vec<Action> {
        if self.confirm.is_some() {
            return vec![Action::Confirm, Action::Decline];
        }
        vec![
            Action::Left,
            Action::Right,
            Action::ClearCache,
            Action::PurgeCache,
            Action::CompactStore,
            Action::HideZeros,
            Action::Refresh,
        ]
    }
}

impl CacheTab {
    fn render_picker(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let mut spans = vec![Span::styled("namespace ", t.style(Role::Muted))];
        let names = std::iter::once("all").chain(Namespace::ALL.iter().map(|n| n.as_str()));
        for (i, name) in names.enumerate() {
            let style = if i == self.selected {
                t.style(Role::TabActive)
            } else {
                t.style(Role::TabInactive)
            };
            spans.push(Span::styled(format!(" {name} "), style));
            spans.push(Span::raw(" "));
        }
        frame.render_widget(Line::from(spans), area);
        let mut status = Vec::new();
        if let Some(job) = self.running {
            status.push(format!("{}…", job.describe()));
        } else if self.loading {
            status.push("loading…".to_string());
        }
        if self.hide_zeros {
            status.push("zeros hidden".into());
        }
        if !status.is_empty() {
            frame.render_widget(
                Line::styled(status.join(" · "), t.style(Role::Notice)).alignment(Alignment::Right),
                area,
            );
        }
    }

    fn render_rates(&self, frame: &mut Frame, area: Rect, report: &CacheReport, view: &View) {
        let t = view.theme;
        let ns = self.namespace();
        let name = ns.map_or("all", Namespace::as_str);
        let series = report.hit_rate_series(ns);
        let inner_w = usize::from(area.width.saturating_sub(2));
        // The y labels take 5 columns when there is room for two of them.
        let spark_h = area.height.saturating_sub(3);
        let label_w = if spark_h >= 2 { 5 } else { 0 };
        let shown = series.len().min(inner_w.saturating_sub(label_w));
        let recent = &series[series.len() - shown..];
        let mut lines = vec![rates_line(report, ns, view)];
        if recent.is_empty() {
            lines.push(Line::styled("no runs recorded yet", t.style(Role::Muted)));
        } else if recent.iter().all(Option::is_none) {
            // A chart of gaps only is an empty box: say it instead.
            lines.push(Line::styled(
                format!(
                    "no lookups in the last {shown} {}",
                    if shown == 1 { "run" } else { "runs" }
                ),
                t.style(Role::Muted),
            ));
        } else {
            let bars = spark_rows(recent, spark_h);
            let last = bars.len().saturating_sub(1);
            for (i, row) in bars.into_iter().enumerate() {
                let label = match i {
                    _ if label_w == 0 => String::new(),
                    0 => "100% ".into(),
                    i if i == last => "  0% ".into(),
                    _ => "     ".into(),
                };
                lines.push(Line::from(vec![
                    Span::styled(label, t.style(Role::Muted)),
                    Span::styled(row, t.style(Role::ChartP50)),
                ]));
            }
        }
        let bottom = if recent.iter().all(Option::is_none) {
            // No chart drawn: nothing to explain under it.
            String::new()
        } else {
            format!(
                " last {shown} {}, oldest left · gap: no lookups ",
                if shown == 1 { "run" } else { "runs" }
            )
        };
        let block = panel(format!("Hit rate · {name} · (hits + 304s) / lookups"), t)
            .title_bottom(Line::styled(bottom, t.style(Role::Muted)).alignment(Alignment::Right));
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }

    fn render_counters(&self, frame: &mut Frame, area: Rect, report: &CacheReport, view: &View) {
        let t = view.theme;
        let ns = self.namespace();
        let name = ns.map_or("all", Namespace::as_str);
        let runs = report.runs.len();
        let title = match runs {
            0 => format!("Counters · {name} · no runs yet"),
            1 => format!("Counters · {name} · avg of 1 run"),
            n => format!("Counters · {name} · avg of {n} runs"),
        };
        let run_header = report
            .runs
            .last()
            .map_or("run".to_string(), |r| format!("run #{}", r.run_id));
        let inner = area.width.saturating_sub(2);
        // The name, then three figures sharing what is left (lifetime takes the rest).
        let name_w = 16u16;
        let avail = inner.saturating_sub(name_w + 3);
        let fig_w = (avail / 3).max(7);
        let life_w = avail.saturating_sub(2 * fig_w).max(fig_w);
        let (life, fig) = (usize::from(life_w), usize::from(fig_w));
        let rows: Vec<Row> = self
            .counter_rows()
            .into_iter()
            .map(|r| {
                Row::new([
                    r.name.to_string(),
                    format!("{:>life$}", fit_count(r.lifetime, life)),
                    format!(
                        "{:>fig$}",
                        if r.last_run == 0 {
                            "0".to_string()
                        } else {
                            format!("+{}", fit_count(r.last_run, fig - 1))
                        }
                    ),
                    format!(
                        "{:>fig$}",
                        r.average.map_or("–".to_string(), |a| fit_average(a, fig))
                    ),
                ])
            })
            .collect();
        let empty = rows.is_empty();
        let header = Row::new([
            "counter".to_string(),
            format!("{:>life$}", "lifetime"),
            format!("{:>fig$}", text::fit(&run_header, fig)),
            format!("{:>fig$}", "avg/run"),
        ])
        .style(t.style(Role::Header));
        let widths = [
            Constraint::Length(name_w),
            Constraint::Length(life_w),
            Constraint::Length(fig_w),
            Constraint::Length(fig_w),
        ];
        let block = panel(text::fit(&title, usize::from(inner.saturating_sub(2))), t);
        if empty {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    "every counter is zero (z shows them)",
                    t.style(Role::Muted),
                ))
                .block(block),
                area,
            );
            return;
        }
        frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
    }

    fn render_sources(&self, frame: &mut Frame, area: Rect, report: &CacheReport, view: &View) {
        let t = view.theme;
        let inner = area.width.saturating_sub(2);
        // The hit-rate column only where there is room for it.
        let wide = inner >= 46;
        let saved_w: u16 = if wide { 9 } else { 7 };
        let mut cols: Vec<(&str, u16)> = vec![("source", 8), ("entries", 7), ("bytes", 9)];
        cols.push(("saved", saved_w));
        if wide {
            cols.push(("hit rate", 10));
        }
        let header = Row::new(
            cols.iter()
                .enumerate()
                .map(|(i, (h, w))| align(h, usize::from(*w), i > 0)),
        )
        .style(t.style(Role::Header));
        let row = |ns: Option<Namespace>| {
            let disk = report.disk_of(ns);
            let life = report.lifetime_of(ns);
            let mut cells = vec![
                ns.map_or("all", Namespace::as_str).to_string(),
                align(&fit_count(disk.entries, 7), 7, true),
                align(&text::bytes(disk.bytes), 9, true),
                align(
                    &fit_count(life.budget_saved, usize::from(saved_w)),
                    usize::from(saved_w),
                    true,
                ),
            ];
            if wide {
                let rate = life
                    .hit_rate()
                    .map_or("no lookups".to_string(), |r| format!("{:.1}%", r * 100.0));
                cells.push(align(&rate, 10, true));
            }
            let selected = ns == self.namespace();
            let style = match (ns, selected) {
                (_, true) => t.style(Role::Selection),
                (None, false) => t.style(Role::Title),
                _ => Style::default(),
            };
            Row::new(cells).style(style)
        };
        let rows = Namespace::ALL
            .iter()
            .map(|n| row(Some(*n)))
            .chain(std::iter::once(row(None)));
        let widths: Vec<Constraint> = cols.iter().map(|(_, w)| Constraint::Length(*w)).collect();
        let title = if wide {
            "Per source · lifetime budget saved and hit rate"
        } else {
            "Per source · budget saved"
        };
        frame.render_widget(
            Table::new(rows, widths).header(header).block(panel(
                text::fit(title, usize::from(inner.saturating_sub(2))),
                t,
            )),
            area,
        );
    }
}

impl CacheTab {
    /// The recent runs of the selected namespace, newest first, as many as fit.
    fn render_runs(&self, frame: &mut Frame, area: Rect, report: &CacheReport, view: &View) {
        let t = view.theme;
        let ns = self.namespace();
        let fit = usize::from(area.height.saturating_sub(3));
        // Requests sent only where there is room for every column.
        let wide = area.width.saturating_sub(2) >= 48;
        let mut cols: Vec<(&str, u16)> = vec![("run", 6), ("ended", 5), ("lookups", 8)];
        cols.push(("hit rate", 10));
        if wide {
            cols.push(("sent", 7));
        }
        cols.push(("saved", 7));
        let header = Row::new(
            cols.iter()
                .enumerate()
                .map(|(i, (h, w))| align(h, usize::from(*w), i > 1)),
        )
        .style(t.style(Role::Header));
        let rows = report.runs.iter().rev().take(fit).map(|r| {
            let c = match ns {
                Some(ns) => r.per_namespace.get(&ns).copied().unwrap_or_default(),
                None => r.total(),
            };
            let rate = c
                .hit_rate()
                .map_or("no lookups".to_string(), |r| format!("{:.1}%", r * 100.0));
            let mut cells = vec![
                format!("#{}", r.run_id),
                text::clock(r.at, view.offset),
                align(&fit_count(c.lookups(), 8), 8, true),
                align(&rate, 10, true),
            ];
            if wide {
                cells.push(align(&fit_count(c.requests, 7), 7, true));
            }
            cells.push(align(&fit_count(c.budget_saved, 7), 7, true));
            Row::new(cells)
        });
        let widths: Vec<Constraint> = cols.iter().map(|(_, w)| Constraint::Length(*w)).collect();
        let name = ns.map_or("all", Namespace::as_str);
        frame.render_widget(
            Table::new(rows, widths)
                .header(header)
                .block(panel(format!("Recent runs · {name}"), t)),
            area,
        );
    }
}

/// `last run (#42) 97.9%   last 10 runs 90.1%   lifetime 85.0%`.
fn rates_line(report: &CacheReport, ns: Option<Namespace>, view: &View) -> Line<'static> {
    let t = view.theme;
    let mut spans = Vec::new();
    for (i, w) in report.hit_rates(ns).iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("   "));
        }
        spans.push(Span::styled(format!("{} ", w.label), t.style(Role::Muted)));
        let style = if w.rate.is_some() {
            t.style(Role::Title)
        } else {
            t.style(Role::Muted)
        };
        spans.push(Span::styled(w.text(), style));
    }
    Line::from(spans)
}

/// What the tiers hold against their budgets, and the store's files.
fn render_tiers(frame: &mut Frame, area: Rect, report: &CacheReport, view: &View) {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let disk = report.disk_total();
    let label = |s: &str| Span::styled(format!("{s:<7} "), muted);
    let pad = || Span::raw(" ".repeat(8));
    let mut lines = vec![
        Line::from(vec![
            label("store"),
            Span::raw(format!("{} entries", text::count(disk.entries))),
        ]),
        Line::from(vec![
            pad(),
            Span::raw(format!(
                "{} of {} ({})",
                text::bytes(disk.bytes),
                text::bytes(report.disk_budget_bytes),
                text::percent(disk.bytes, report.disk_budget_bytes)
            )),
        ]),
    ];
    if report.memory_budget_bytes == 0 {
        lines.push(Line::from(vec![
            label("memory"),
            Span::styled("off (memory_mib = 0)", muted),
        ]));
        lines.push(Line::raw(""));
    } else {
        lines.push(Line::from(vec![
            label("memory"),
            Span::raw(format!("{} entries", text::count(report.memory.entries))),
        ]));
        lines.push(Line::from(vec![
            pad(),
            Span::raw(format!(
                "{} of {} ({})",
                text::bytes(report.memory.bytes),
                text::bytes(report.memory_budget_bytes),
                text::percent(report.memory.bytes, report.memory_budget_bytes)
            )),
        ]));
    }
    lines.push(Line::from(vec![
        label("files"),
        Span::raw(format!(
            "{}, {} live",
            text::bytes(report.store_file_bytes),
            text::bytes(report.store_live_bytes)
        )),
    ]));
    frame.render_widget(Paragraph::new(lines).block(panel("Tiers", t)), area);
}

/// The question before a job, over the tab.
fn render_confirm(frame: &mut Frame, area: Rect, job: Job, report: &CacheReport, view: &View) {
    let t = view.theme;
    let (title, what) = match job {
        Job::ClearNamespace(ns) => {
            let g = report.disk_of(Some(ns));
            (
                format!("Clear the {ns} namespace?"),
                format!(
                    "{} entries ({}) leave both tiers; the next run fetches them again. \
                     The counters stay.",
                    text::count(g.entries),
                    text::bytes(g.bytes)
                ),
            )
        }
        Job::ClearAll => {
            let g = report.disk_total();
            (
                "Clear every namespace?".to_string(),
                format!(
                    "{} entries ({}) leave both tiers; the next run fetches everything \
                     again. The counters stay.",
                    text::count(g.entries),
                    text::bytes(g.bytes)
                ),
            )
        }
        Job::CompactStore => (
            "Compact the store?".to_string(),
            format!(
                "The store's files ({}) are rewritten around their live data ({}); \
                 nothing is lost. Runs wait for it (about a second per 60 MiB).",
                text::bytes(report.store_file_bytes),
                text::bytes(report.store_live_bytes)
            ),
        ),
        Job::PurgeExpired => (
            "Purge expired entries?".to_string(),
            "Entries unused for max_idle, or expired past the stale-if-error window with \
             nothing to revalidate them by, leave the store."
                .to_string(),
        ),
    };
    let width = 60u16.min(area.width);
    let body = text::wrap(&what, usize::from(width.saturating_sub(4)), "", "");
    let height = body.len() as u16 + 5;
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let mut lines: Vec<Line> = body.into_iter().map(Line::raw).collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled(
            format!(
                "{}/{}",
                view.keys.first(Action::Confirm),
                view.keys.first(Action::Open)
            ),
            t.style(Role::Key),
        ),
        Span::raw(" yes   "),
        Span::styled(
            format!(
                "{}/{}",
                view.keys.first(Action::Decline),
                view.keys.first(Action::Back)
            ),
            t.style(Role::Key),
        ),
        Span::raw(" no"),
    ]));
    let block = Block::bordered()
        .title(Span::styled(format!(" {title} "), t.style(Role::Title)))
        .border_style(t.style(Role::BorderFocused));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .alignment(Alignment::Center),
        popup,
    );
}

/// A per-run hit-rate chart `height` rows tall, one column per run: 0% is the lowest
/// bar (visible), a run with no lookups a blank column.
pub fn spark_rows(series: &[Option<f64>], height: u16) -> Vec<String> {
    const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let h = usize::from(height.max(1));
    let eighths: Vec<Option<usize>> = series
        .iter()
        .map(|r| r.map(|r| ((r.clamp(0.0, 1.0) * (h * 8) as f64).round() as usize).max(1)))
        .collect();
    (0..h)
        .map(|row| {
            // Row 0 is the top; each row holds eighths (h-1-row)*8 .. (h-row)*8.
            let floor = (h - 1 - row) * 8;
            eighths
                .iter()
                .map(|e| match e {
                    None => ' ',
                    Some(e) if *e <= floor => ' ',
                    Some(e) => LEVELS[(*e - floor).min(8)],
                })
                .collect()
        })
        .collect()
}

/// `12,345` when it fits `width`, else `12.3k`, `4.5M`, `6.7G`.
fn fit_count(n: u64, width: usize) -> String {
    let full = text::count(n);
    if full.len() <= width {
        return full;
    }
    let v = n as f64;
    let (div, unit) = if n >= 1_000_000_000 {
        (1e9, "G")
    } else if n >= 1_000_000 {
        (1e6, "M")
    } else {
        (1e3, "k")
    };
    format!("{:.1}{unit}", v / div)
}

/// `3.2` under 100, else a whole count that fits `width`.
fn fit_average(a: f64, width: usize) -> String {
    if a < 100.0 {
        format!("{a:.1}")
    } else {
        fit_count(a.round() as u64, width)
    }
}

fn align(s: &str, width: usize, right: bool) -> String {
    if right {
        format!("{s:>width$}")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Counts, RunCounts};

    fn report() -> CacheReport {
        let github = Counts {
            requests: 10,
            revalidated: 9,
            misses: 1,
            budget_saved: 9,
            ..Counts::default()
        };
        CacheReport {
            lifetime: [(Namespace::GitHub, github)].into(),
            runs: vec![RunCounts {
                run_id: 7,
                at: time::OffsetDateTime::UNIX_EPOCH,
                per_namespace: [(Namespace::GitHub, github)].into(),
            }],
            ..CacheReport::default()
        }
    }

    fn loaded() -> CacheTab {
        let mut tab = CacheTab::new();
        tab.on_event(&AppEvent::CacheReport(Box::new(report())));
        tab
    }

    #[test]
    fn left_and_right_walk_all_then_each_namespace_and_wrap() {
        let mut tab = loaded();
        assert_eq!(tab.namespace(), None);
        tab.handle_key(Action::Right);
        assert_eq!(tab.namespace(), Some(Namespace::GitHub));
        tab.handle_key(Action::Left);
        tab.handle_key(Action::Left);
        assert_eq!(tab.namespace(), Some(Namespace::Registry));
        tab.handle_key(Action::Right);
        assert_eq!(tab.namespace(), None);
    }

    #[test]
    fn z_hides_the_zero_counters_and_shows_them_again() {
        let mut tab = loaded();
        assert_eq!(tab.counter_rows().len(), 13);
        tab.handle_key(Action::HideZeros);
        let names: Vec<&str> = tab.counter_rows().iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            ["requests sent", "revalidated 304", "misses", "budget saved"]
        );
        let requests = &tab.counter_rows()[0];
        assert_eq!(
            (requests.lifetime, requests.last_run, requests.average),
            (10, 10, Some(10.0))
        );
        tab.handle_key(Action::HideZeros);
        assert_eq!(tab.counter_rows().len(), 13);
    }

    #[test]
    fn a_job_waits_for_yes_and_no_does_nothing() {
        let mut tab = loaded();
        tab.handle_key(Action::Right);
        assert_eq!(tab.handle_key(Action::ClearCache), Outcome::Redraw);
        assert_eq!(
            tab.confirming(),
            Some(Job::ClearNamespace(Namespace::GitHub))
        );
        assert!(tab.takes_text(), "the question is modal");
        let key = KeyEvent::from(ratatui::crossterm::event::KeyCode::Char('n'));
        assert!(matches!(
            tab.handle_text(&key, Some(Action::Decline)),
            Outcome::Say(_)
        ));
        assert_eq!(tab.confirming(), None);
        // `all` selected: the whole cache; Enter says yes.
        tab.handle_key(Action::Left);
        tab.handle_key(Action::ClearCache);
        assert_eq!(
            tab.handle_text(&key, Some(Action::Open)),
            Outcome::Do(Effect::CacheJob(Job::ClearAll))
        );
        assert_eq!(tab.job_running(), Some(Job::ClearAll));
        // No second job while one runs.
        assert!(matches!(
            tab.handle_key(Action::PurgeCache),
            Outcome::Say(_)
        ));
        assert_eq!(tab.confirming(), None);
        // Its end reloads the figures.
        let done = Done {
            job: Job::ClearAll,
            entries: 3,
            bytes: 2048,
            files: None,
        };
        assert!(tab.on_event(&AppEvent::CacheJobDone(Ok(done))));
        assert_eq!(tab.job_running(), None);
        assert_eq!(tab.take_effects(), vec![Effect::RefreshCache]);
        assert_eq!(
            done_text(&done),
            "cleared every namespace: 3 entries, 2.0 KiB"
        );
    }

    #[test]
    fn the_sparkline_has_gaps_for_no_lookups_and_a_floor_for_zero() {
        let rows = spark_rows(&[Some(0.0), None, Some(1.0), Some(0.5)], 1);
        assert_eq!(rows, vec!["▁ █▄".to_string()]);
        let rows = spark_rows(&[Some(0.0), None, Some(1.0)], 2);
        assert_eq!(rows, vec!["  █".to_string(), "▁ █".to_string()]);
        assert_eq!(fit_count(12_345_678, 9), "12.3M");
        assert_eq!(fit_count(12_345, 9), "12,345");
    }
}
