//! The app: state, the update step, and the event loop that drives them.
//!
//! `App` holds what is common to every tab (the active tab, overlays, the footer
//! message, whether a run is going) and a list of [`Tab`]s that own the rest. Keys are
//! turned into [`Action`]s by the [`KeyMap`]; engine events reach every tab after being
//! sanitised once. `App` never does I/O: what it needs done comes out as [`Effect`]s
//! that the event loop (`run`) carries out.

pub mod action;
pub mod keymap;
pub mod pacer;
pub mod report_jobs;
pub mod run;
pub mod terminal;

use std::time::Duration;

use ratatui::crossterm::event::{
    Event, KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind,
};
use time::{OffsetDateTime, UtcOffset};

use crate::engine::events::{EngineEvent, Level};
use crate::engine::model::{RunSummary, Snapshot};
use crate::ui::cache::CacheTab;
use crate::ui::reports::ReportsTab;
use crate::ui::schedule::ScheduleTab;
use crate::ui::snapshot::{NextRun, SnapshotTab};
use crate::ui::text;
use crate::ui::theme::Theme;
use crate::ui::widgets::Scroll;
use crate::ui::{AppEvent, Effect, Outcome, Tab};
use action::Action;
use keymap::KeyMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    /// The keys; the scroll is kept inside the help text for the current pane size.
    Help {
        scroll: Scroll,
    },
    ConfirmQuit,
}

/// Where the engine runs, for the header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LinkStatus {
    /// In this process (demo mode, `--embedded`, or no daemon could be started).
    #[default]
    Embedded,
    /// Attached to the daemon at this socket (its file name), of this pid.
    Attached { socket: String, pid: u32 },
    /// The daemon is gone; reconnecting. What is on screen is kept.
    Lost(String),
    /// Not reconnecting (refused, or a protocol mismatch): why.
    GaveUp(String),
}

/// A line in the footer until the next key press.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub level: Level,
    pub text: String,
}

/// What the app starts with, read from the store before the first frame.
#[derive(Debug, Clone, Default)]
pub struct Startup {
    pub snapshot: Option<Snapshot>,
    pub history: Vec<RunSummary>,
    /// Demo mode: the built-in simulator and a throw-away store.
    pub demo: bool,
    /// `--targets FILE`: checked against every report opened in the Reports tab.
    pub report_targets: Option<std::path::PathBuf>,
    /// What was wrong with the store's data (a latest snapshot that did not read back),
    /// shown as an error line.
    pub store_problem: Option<String>,
    /// Warnings from the config (a token file others can read), shown as a warning line
    /// when there is no store problem to show.
    pub warnings: Vec<String>,
    /// What the runs of the history did (per source, failures, log), where kept.
    pub run_details: std::collections::HashMap<u64, crate::engine::model::RunDetail>,
}

pub struct App {
    tabs: Vec<Box<dyn Tab>>,
    active: usize,
    pub keys: KeyMap,
    pub theme: Theme,
    pub offset: UtcOffset,
    pub overlay: Overlay,
    demo: bool,
    running: Option<f64>,
    data_as_of: Option<OffsetDateTime>,
    /// The next automatic snapshot, for the header.
    next_run: NextRun,
    message: Option<Message>,
    quit: bool,
    effects: Vec<Effect>,
    /// The terminal's size (columns, rows), for scrolling what only drawing measures.
    size: (u16, u16),
    link: LinkStatus,
}

impl App {
    pub fn new(mut startup: Startup, keys: KeyMap, theme: Theme, offset: UtcOffset) -> App {
        // Stored data came from the outside world too.
        if let Some(s) = &mut startup.snapshot {
            text::sanitize_snapshot(s);
        }
        startup.history.iter_mut().for_each(text::sanitize_summary);
        startup
            .run_details
            .values_mut()
            .for_each(text::sanitize_detail);
        let data_as_of = startup.snapshot.as_ref().map(|s| s.data_as_of());
        // The tabs, in tab-bar order; keys 1–4 follow this order.
        let schedule = ScheduleTab::new(startup.history.clone());
        let tabs: Vec<Box<dyn Tab>> = vec![
            Box::new(
                SnapshotTab::new(startup.snapshot, startup.history)
                    .with_details(startup.run_details),
            ),
            Box::new(schedule),
            Box::new(ReportsTab::new(startup.report_targets)),
            Box::new(CacheTab::new()),
        ];
        App {
            tabs,
            active: 0,
            keys,
            theme,
            offset,
            overlay: Overlay::None,
            demo: startup.demo,
            running: None,
            data_as_of,
            next_run: NextRun::Unknown,
            message: startup
                .store_problem
                .map(|p| (Level::Error, p))
                .or_else(|| startup.warnings.first().map(|w| (Level::Warn, w.clone())))
                .map(|(level, p)| Message {
                    level,
                    text: text::sanitize(&p).into_owned(),
                }),
            quit: false,
            effects: Vec::new(),
            size: (crate::ui::MIN_WIDTH, crate::ui::MIN_HEIGHT),
            link: LinkStatus::Embedded,
        }
    }

    /// The terminal's size: told by the loop at start and by every resize.
    pub fn set_size(&mut self, width: u16, height: u16) {
        self.size = (width, height);
        if let Overlay::Help { scroll } = &mut self.overlay {
            scroll.resize(scroll.content(), crate::ui::help_rows(height));
        }
    }

    fn help_scroll(&self) -> Scroll {
        Scroll::new(
            crate::ui::help_lines(&self.keys, &self.theme).len(),
            crate::ui::help_rows(self.size.1),
        )
    }

    pub fn tabs(&self) -> &[Box<dyn Tab>] {
        &self.tabs
    }

    pub fn active_index(&self) -> usize {
        self.active
    }

    pub fn active_tab(&self) -> &dyn Tab {
        self.tabs[self.active].as_ref()
    }

    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// Where the engine runs: embedded or attached to a daemon.
    pub fn link(&self) -> &LinkStatus {
        &self.link
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Overall fraction of the running snapshot, None when idle.
    pub fn running_fraction(&self) -> Option<f64> {
        self.running
    }

    /// When the data on screen was gathered (the last snapshot's end).
    pub fn data_as_of(&self) -> Option<OffsetDateTime> {
        self.data_as_of
    }

    /// The next automatic snapshot as the engine last said.
    pub fn next_run(&self) -> NextRun {
        self.next_run
    }

    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    pub fn say(&mut self, level: Level, text: impl Into<String>) {
        self.message = Some(Message {
            level,
            text: text.into(),
        });
    }

    /// Work for the event loop, oldest first.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// A terminal event; returns whether the screen must be redrawn.
    pub fn on_terminal(&mut self, ev: &Event) -> bool {
        match ev {
            Event::Key(k) => self.on_key(k),
            Event::Resize(w, h) => {
                self.set_size(*w, *h);
                true
            }
            Event::Mouse(m) => self.on_mouse(m),
            // Focus and paste are not used; nothing changes.
            _ => false,
        }
    }

    pub fn on_key(&mut self, key: &KeyEvent) -> bool {
        let had_message = self.message.take().is_some();
        // Suspending works wherever the keys go, a prompt included.
        if key.kind != KeyEventKind::Release && self.keys.action_for(key) == Some(Action::Suspend) {
            self.effects.push(Effect::Suspend);
            return had_message;
        }
        if self.overlay == Overlay::None && self.tabs[self.active].takes_text() {
            if key.kind == KeyEventKind::Release {
                return had_message;
            }
            let action = self
                .keys
                .action_in(key, Some(self.tabs[self.active].group()));
            let outcome = self.tabs[self.active].handle_text(key, action);
            return self.apply(outcome) || had_message;
        }
        let Some(action) = self
            .keys
            .action_in(key, Some(self.tabs[self.active].group()))
        else {
            if self.overlay == Overlay::ConfirmQuit {
                self.overlay = Overlay::None;
                return true;
            }
            return had_message;
        };
        self.on_action(action) || had_message
    }

    /// Mouse input (only with `[ui] mouse = true`): the wheel moves like the arrow
    /// keys, a click on the tab bar switches tabs.
    fn on_mouse(&mut self, m: &MouseEvent) -> bool {
        if self.tabs[self.active].takes_text() {
            return false;
        }
        match m.kind {
            MouseEventKind::ScrollUp => self.on_action(Action::Up),
            MouseEventKind::ScrollDown => self.on_action(Action::Down),
            MouseEventKind::Down(MouseButton::Left) if m.row == 0 => {
                match crate::ui::tab_at(self, m.column) {
                    Some(i) if i != self.active && self.overlay == Overlay::None => {
                        self.show_tab(i);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// An action from a key; returns whether the screen must be redrawn.
    pub fn on_action(&mut self, action: Action) -> bool {
        match self.overlay {
            Overlay::ConfirmQuit => {
                if matches!(action, Action::Confirm | Action::Quit) {
                    self.quit = true;
                    self.effects.push(Effect::Cancel);
                }
                self.overlay = Overlay::None;
                return true;
            }
            Overlay::Help { mut scroll } => {
                let moved = match action {
                    Action::Help | Action::Back => {
                        self.overlay = Overlay::None;
                        return true;
                    }
                    Action::Quit => {
                        self.overlay = Overlay::None;
                        return self.on_action(Action::Quit);
                    }
                    Action::Up => scroll.up(1),
                    Action::Down => scroll.down(1),
                    Action::PageUp => scroll.page_up(),
                    Action::PageDown => scroll.page_down(),
                    _ => false,
                };
                self.overlay = Overlay::Help { scroll };
                return moved;
            }
            Overlay::None => {}
        }
        let n = self.tabs.len();
        let goto = |i: usize| Some(i.min(n - 1));
        let target = match action {
            Action::Quit => {
                // An attached pane's quitting leaves the daemon's run alone.
                if self.running.is_some() && self.link == LinkStatus::Embedded {
                    self.overlay = Overlay::ConfirmQuit;
                } else {
                    self.quit = true;
                }
                return true;
            }
            Action::Help => {
                self.overlay = Overlay::Help {
                    scroll: self.help_scroll(),
                };
                return true;
            }
            Action::NextTab => goto((self.active + 1) % n),
            Action::PrevTab => goto((self.active + n - 1) % n),
            Action::TabSnapshot => goto(0),
            Action::TabSchedule => goto(1),
            Action::TabReports => goto(2),
            Action::TabCache => goto(3),
            _ => None,
        };
        if let Some(i) = target {
            if i == self.active {
                return false;
            }
            self.show_tab(i);
            return true;
        }
        let outcome = self.tabs[self.active].handle_key(action);
        self.apply(outcome)
    }

    /// Makes tab `i` the visible one and lets it bring itself up to date.
    fn show_tab(&mut self, i: usize) {
        self.active = i;
        let outcome = self.tabs[i].on_show();
        self.apply(outcome);
    }

    /// Carries out what a tab said a key did; returns whether to redraw.
    fn apply(&mut self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Ignored => false,
            Outcome::Redraw => true,
            Outcome::Do(effect) => {
                self.effects.push(effect);
                true
            }
            Outcome::Say(text) => {
                self.say(Level::Info, text);
                true
            }
        }
    }

    /// An event from the engine or from work the loop did; returns whether to redraw.
    pub fn on_event(&mut self, mut event: AppEvent) -> bool {
        let mut changed = false;
        match &mut event {
            AppEvent::Engine(ev) => {
                text::sanitize_event(ev);
                changed |= self.note_engine_event(ev);
            }
            // CSV text (endpoint names, errors, tracebacks) is outside text too.
            AppEvent::ReportLoaded(load) => match &mut load.result {
                Ok(report) => text::sanitize_report(report),
                Err(e) => *e = text::sanitize(e).into_owned(),
            },
            AppEvent::Completions { candidates, .. } => {
                for c in candidates.iter_mut() {
                    *c = text::sanitize(c).into_owned();
                }
            }
            AppEvent::CacheJobDone(result) => {
                changed = true;
                match result {
                    Ok(done) => self.say(Level::Info, crate::ui::cache::done_text(done)),
                    Err(e) => self.say(Level::Error, format!("cache job failed: {e}")),
                }
            }
            AppEvent::Attached(state) => {
                text::sanitize_attach(state);
                self.running = state.progress.as_ref().map(|p| p.fraction);
                self.data_as_of = state.snapshot.as_ref().map(|s| s.data_as_of());
                self.next_run = NextRun::from_status(state.schedule.as_ref());
                if let Some(problem) = &state.store_problem {
                    self.say(Level::Error, problem.clone());
                }
                changed = true;
            }
            AppEvent::Link(status) => {
                if let LinkStatus::Lost(why) | LinkStatus::GaveUp(why) = status {
                    *why = text::sanitize(why).into_owned();
                }
                let status = status.clone();
                match &status {
                    LinkStatus::Lost(why) => {
                        self.say(
                            Level::Warn,
                            format!("{why}; reconnecting (what is on screen is kept)"),
                        );
                    }
                    LinkStatus::GaveUp(why) => self.say(Level::Error, why.clone()),
                    LinkStatus::Attached { pid, .. }
                        if matches!(self.link, LinkStatus::Lost(_)) =>
                    {
                        self.say(Level::Info, format!("attached again (daemon pid {pid})"));
                    }
                    _ => {}
                }
                self.link = status;
                changed = true;
            }
            AppEvent::Notice(level, line) => {
                let line = text::sanitize(line).into_owned();
                self.say(*level, line);
                changed = true;
            }
            AppEvent::CacheReport(_) | AppEvent::ReportLoading { .. } => {}
        }
        for (i, tab) in self.tabs.iter_mut().enumerate() {
            // Every tab keeps its state current; only the visible one costs a frame.
            changed |= tab.on_event(&event) && i == self.active;
            self.effects.extend(tab.take_effects());
        }
        changed
    }

    fn note_engine_event(&mut self, ev: &EngineEvent) -> bool {
        match ev {
            EngineEvent::Started(p) | EngineEvent::Progress(p) => {
                let before = self.running;
                self.running = Some(p.fraction);
                // The header shows whole percents.
                before.map(|f| (f * 100.0).round()) != Some((p.fraction * 100.0).round())
            }
            EngineEvent::Log(_) | EngineEvent::Provisional(_) => false,
            EngineEvent::Finished { summary, snapshot } => {
                self.running = None;
                self.data_as_of = Some(snapshot.data_as_of());
                let took = text::duration(Duration::from_millis(summary.duration_ms));
                if snapshot.cancelled {
                    self.say(
                        Level::Warn,
                        format!(
                            "snapshot #{} cancelled after {took}; partial result kept",
                            summary.id
                        ),
                    );
                } else if snapshot.partial {
                    self.say(
                        Level::Warn,
                        format!(
                            "snapshot #{} finished in {took} with {} failures (partial)",
                            summary.id,
                            snapshot.failures.len()
                        ),
                    );
                } else {
                    self.say(
                        Level::Info,
                        format!("snapshot #{} finished in {took}", summary.id),
                    );
                }
                true
            }
            EngineEvent::Failed { summary, error } => {
                self.running = None;
                self.say(
                    Level::Error,
                    format!("snapshot #{} failed: {error}", summary.id),
                );
                true
            }
            EngineEvent::AlreadyRunning => {
                self.say(Level::Info, "a snapshot is already running");
                true
            }
            EngineEvent::Schedule(status) => {
                let before = self.next_run;
                self.next_run = NextRun::from_status(status.as_deref());
                before != self.next_run
            }
        }
    }

    /// How long until something on screen changes by itself (a relative time's text);
    /// None when the screen is static until the next event.
    pub fn next_change(&self, now: OffsetDateTime) -> Option<Duration> {
        let age = self
            .data_as_of
            .map(|at| text::age_changes_in(text::between(at, now)));
        // The header's "next snapshot in 12m" (not while a run shows its percent).
        let next = match self.next_run {
            NextRun::At(at) if self.running.is_none() => {
                Some(text::countdown_changes_in(text::between(now, at)))
            }
            _ => None,
        };
        let header = match (age, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let tab = self.active_tab().next_change(now);
        match (header, tab) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
