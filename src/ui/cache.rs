//! The Cache tab: what the store holds (loaded off the render path: at start, when a
//! run ends, when the tab is opened, and on `u`) and how the last run used the HTTP
//! cache, per source.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table};

use super::text;
use super::theme::Role;
use super::widgets::panel;
use super::{AppEvent, Effect, Outcome, Tab, View};
use crate::app::action::Action;
use crate::engine::events::EngineEvent;
use crate::engine::model::{RunStats, SourceStats};
use crate::store::NamespaceSize;

/// What the tab will show once the cache tiers report it.
const PLANNED: &str = "Coming here: lifetime and recent-window hit rates, stale served, \
evictions, requests saved per rate-limit budget; clear a namespace, purge expired entries.";

#[derive(Debug, Clone, Default)]
pub struct CacheTab {
    /// None until the first load finishes.
    sizes: Option<Vec<NamespaceSize>>,
    /// A load of the store figures is in flight.
    loading: bool,
    /// A run ended while a load was in flight: the figures it brings may predate the
    /// run's commit, so load once more when it lands.
    stale: bool,
    /// Work asked for by an event, for the app to collect.
    effects: Vec<Effect>,
    /// Request accounting of the last snapshot.
    last_run: Option<(u64, RunStats)>,
}

impl CacheTab {
    /// The loop loads the store figures once at start: the tab begins as loading.
    pub fn new(last_run: Option<(u64, RunStats)>) -> CacheTab {
        CacheTab {
            loading: true,
            last_run,
            ..CacheTab::default()
        }
    }

    pub fn sizes(&self) -> Option<&[NamespaceSize]> {
        self.sizes.as_deref()
    }

    pub fn is_loading(&self) -> bool {
        self.loading
    }

    /// Asks for the store figures unless a load is already on its way.
    fn refresh(&mut self) -> Option<Effect> {
        if self.loading {
            return None;
        }
        self.loading = true;
        Some(Effect::RefreshStore)
    }
}

/// The `all` row: the per-source figures summed, so the table adds up whatever the
/// totals stored beside them say (older snapshots without per-source figures show
/// the totals, and no error count).
fn total_row(stats: &RunStats) -> SourceStats {
    if stats.per_source.is_empty() {
        return SourceStats {
            requests: stats.requests,
            not_modified: stats.not_modified,
            cache_hits: stats.cache_hits,
            retries: stats.retries,
            rate_limited_waits: stats.rate_limited_waits,
            ..SourceStats::default()
        };
    }
    let mut all = SourceStats::default();
    for s in stats.per_source.values() {
        all.requests += s.requests;
        all.not_modified += s.not_modified;
        all.cache_hits += s.cache_hits;
        all.retries += s.retries;
        all.rate_limited_waits += s.rate_limited_waits;
        all.errors += s.errors;
        all.answered += s.answered;
    }
    all
}

impl Tab for CacheTab {
    fn title(&self) -> &'static str {
        "Cache"
    }

    fn handle_key(&mut self, action: Action) -> Outcome {
        match action {
            Action::Refresh => match self.refresh() {
                Some(effect) => Outcome::Do(effect),
                None => Outcome::Say("already loading the store figures".into()),
            },
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
            AppEvent::StoreSizes(sizes) => {
                self.sizes = Some(sizes.clone());
                self.loading = false;
                if std::mem::take(&mut self.stale)
                    && let Some(effect) = self.refresh()
                {
                    self.effects.push(effect);
                }
                true
            }
            // A run ended: it wrote to the store (a failed one its summary).
            AppEvent::Engine(ev @ (EngineEvent::Finished { .. } | EngineEvent::Failed { .. })) => {
                if let EngineEvent::Finished { snapshot, .. } = ev {
                    self.last_run = Some((snapshot.run_id, snapshot.stats.clone()));
                }
                match self.refresh() {
                    Some(effect) => self.effects.push(effect),
                    None => self.stale = true,
                }
                true
            }
            _ => false,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let store_h = 3 + self.sizes.as_ref().map_or(1, |s| s.len() as u16 + 1);
        let planned_lines: Vec<Line> =
            text::wrap(PLANNED, usize::from(area.width.saturating_sub(2)), "", "")
                .into_iter()
                .map(|l| Line::styled(l, muted))
                .collect();
        // Each panel as tall as its rows: no empty block under a short table.
        let run_h = 3 + self
            .last_run
            .as_ref()
            .map_or(1, |(_, stats)| stats.per_source.len() as u16 + 1);
        let [store, run, planned, _] = Layout::vertical([
            Constraint::Length(store_h),
            Constraint::Length(run_h),
            Constraint::Length(planned_lines.len() as u16 + 2),
            Constraint::Fill(1),
        ])
        .areas(area);

        let title = if self.loading {
            "Store · loading…"
        } else {
            "Store"
        };
        match &self.sizes {
            None => frame.render_widget(
                Paragraph::new(Line::styled("reading the store…", muted)).block(panel(title, t)),
                store,
            ),
            Some(sizes) => {
                let header =
                    Row::new(["namespace", "entries", "bytes"]).style(t.style(Role::Header));
                let total: u64 = sizes.iter().map(|s| s.bytes).sum();
                let rows = sizes
                    .iter()
                    .map(|s| {
                        Row::new([
                            s.name.to_string(),
                            text::count(s.entries),
                            text::bytes(s.bytes),
                        ])
                    })
                    .chain(std::iter::once(
                        Row::new(["total".to_string(), String::new(), text::bytes(total)])
                            .style(t.style(Role::Title)),
                    ));
                let widths = [
                    Constraint::Length(12),
                    Constraint::Length(10),
                    Constraint::Length(12),
                ];
                frame.render_widget(
                    Table::new(rows, widths)
                        .header(header)
                        .block(panel(title, t)),
                    store,
                );
            }
        }

        match &self.last_run {
            None => frame.render_widget(
                Paragraph::new(Line::styled(
                    "No snapshot yet: nothing to account for.",
                    muted,
                ))
                .block(panel("Last run, per source", t)),
                run,
            ),
            Some((id, stats)) => {
                let header = Row::new([
                    "source",
                    "requests",
                    "304s",
                    "cache hits",
                    "hit %",
                    "retries",
                    "rate waits",
                    "errors",
                ])
                .style(t.style(Role::Header));
                let row = |name: &str, s: &SourceStats| {
                    Row::new([
                        name.to_string(),
                        text::count(s.requests),
                        text::count(s.not_modified),
                        text::count(s.cache_hits),
                        text::percent(s.not_modified + s.cache_hits, s.requests + s.cache_hits),
                        text::count(s.retries),
                        text::count(s.rate_limited_waits),
                        text::count(s.errors),
                    ])
                };
                let all = total_row(stats);
                let rows =
                    stats
                        .per_source
                        .iter()
                        .map(|(name, s)| row(name, s))
                        .chain(std::iter::once(
                            row("all", &all).style(t.style(Role::Title)),
                        ));
                let widths = [
                    Constraint::Length(14),
                    Constraint::Length(9),
                    Constraint::Length(6),
                    Constraint::Length(10),
                    Constraint::Length(6),
                    Constraint::Length(7),
                    Constraint::Length(10),
                    Constraint::Length(6),
                ];
                frame.render_widget(
                    Table::new(rows, widths).header(header).block(panel(
                        format!("Last run #{id}, per source (hit % = (304s + hits) / lookups)"),
                        t,
                    )),
                    run,
                );
            }
        }
        frame.render_widget(
            Paragraph::new(planned_lines).block(panel("Planned", t)),
            planned,
        );
    }

    fn group(&self) -> crate::app::action::Group {
        crate::app::action::Group::Cache
    }

    fn hints(&self) -> Vec<Action> {
        vec![Action::Refresh]
    }
}
