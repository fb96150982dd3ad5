//! The Cache tab: what the store holds (loaded off the render path, at start and on
//! refresh) and how the last run used the HTTP cache, per source.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, Wrap};

use super::text;
use super::theme::Role;
use super::widgets::panel;
use super::{AppEvent, Effect, Outcome, Tab, View};
use crate::app::action::Action;
use crate::engine::events::EngineEvent;
use crate::engine::model::RunStats;
use crate::store::NamespaceSize;

#[derive(Debug, Clone, Default)]
pub struct CacheTab {
    /// None until the first load finishes.
    sizes: Option<Vec<NamespaceSize>>,
    loading: bool,
    /// Request accounting of the last snapshot.
    last_run: Option<(u64, RunStats)>,
}

impl CacheTab {
    pub fn new(last_run: Option<(u64, RunStats)>) -> CacheTab {
        CacheTab {
            sizes: None,
            loading: true,
            last_run,
        }
    }

    pub fn sizes(&self) -> Option<&[NamespaceSize]> {
        self.sizes.as_deref()
    }
}

impl Tab for CacheTab {
    fn title(&self) -> &'static str {
        "Cache"
    }

    fn handle_key(&mut self, action: Action) -> Outcome {
        match action {
            Action::Refresh if self.loading => {
                Outcome::Say("already loading the store figures".into())
            }
            Action::Refresh => {
                self.loading = true;
                Outcome::Do(Effect::RefreshStore)
            }
            _ => Outcome::Ignored,
        }
    }

    fn on_event(&mut self, event: &AppEvent) -> bool {
        match event {
            AppEvent::StoreSizes(sizes) => {
                self.sizes = Some(sizes.clone());
                self.loading = false;
                true
            }
            AppEvent::Engine(EngineEvent::Finished { snapshot, .. }) => {
                self.last_run = Some((snapshot.run_id, snapshot.stats.clone()));
                true
            }
            _ => false,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let store_h = 3 + self.sizes.as_ref().map_or(1, |s| s.len() as u16 + 1);
        let [store, run, planned] = Layout::vertical([
            Constraint::Length(store_h),
            Constraint::Fill(1),
            Constraint::Length(4),
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
                let hit = |req: u64, nm: u64, hits: u64| text::percent(nm + hits, req + hits);
                let rows = stats
                    .per_source
                    .iter()
                    .map(|(name, s)| {
                        Row::new([
                            name.clone(),
                            text::count(s.requests),
                            text::count(s.not_modified),
                            text::count(s.cache_hits),
                            hit(s.requests, s.not_modified, s.cache_hits),
                            s.retries.to_string(),
                            s.rate_limited_waits.to_string(),
                            s.errors.to_string(),
                        ])
                    })
                    .chain(std::iter::once(
                        Row::new([
                            "all".to_string(),
                            text::count(stats.requests),
                            text::count(stats.not_modified),
                            text::count(stats.cache_hits),
                            hit(stats.requests, stats.not_modified, stats.cache_hits),
                            stats.retries.to_string(),
                            stats.rate_limited_waits.to_string(),
                            String::new(),
                        ])
                        .style(t.style(Role::Title)),
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
            Paragraph::new(vec![
                Line::styled(
                    "Coming here: lifetime and recent-window hit rates, stale served, evictions,",
                    muted,
                ),
                Line::styled(
                    "requests saved per rate-limit budget; clear a namespace, purge expired entries.",
                    muted,
                ),
            ])
            .wrap(Wrap { trim: true })
            .block(panel("Planned", t)),
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
