//! Drawing: the frame (header, footer, overlays) and one module per tab. Nothing here
//! does I/O: every figure drawn was put into state by an event beforehand.

pub mod cache;
pub mod reports;
pub mod sample;
pub mod schedule;
pub mod snapshot;
pub mod text;
pub mod theme;
pub mod widgets;

use std::time::Duration;

use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use time::{OffsetDateTime, UtcOffset};

use crate::app::action::{Action, Group};
use crate::app::keymap::{KeyChord, KeyMap};
use crate::app::{App, Overlay};
use crate::engine::events::EngineEvent;
use crate::report::{Report, ReportRequest};
use theme::{Role, Theme};
use unicode_width::UnicodeWidthStr;

/// The smallest terminal every screen is laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// What a tab needs to draw besides its own state.
pub struct View<'a> {
    pub theme: &'a Theme,
    pub keys: &'a KeyMap,
    /// The instant the frame is drawn for (fixed in tests).
    pub now: OffsetDateTime,
    /// The viewer's time zone.
    pub offset: UtcOffset,
}

/// Everything a tab may learn about: engine events and results of work the app did
/// off the render path.
#[derive(Debug, Clone)]
pub enum AppEvent {
    Engine(EngineEvent),
    /// Attached (again) to a daemon: what it shows now replaces what is on screen.
    Attached(Box<crate::serve::wire::AttachState>),
    /// The link to the daemon changed (the header says it).
    Link(crate::app::LinkStatus),
    /// A line for the footer from the event loop (a daemon's answer to a command).
    Notice(crate::engine::events::Level, String),
    /// The HTTP cache's counters, gauges and budgets, read on the blocking pool.
    CacheReport(Box<crate::cache::CacheReport>),
    /// A cache job finished (the error: it panicked or could not be started).
    CacheJobDone(Result<crate::cache::maintenance::Done, String>),
    /// A report started loading: asked for by a tab, at start, or after its files changed.
    ReportLoading {
        seq: u64,
        request: ReportRequest,
        reload: bool,
    },
    /// A report load finished (only the latest `seq` counts: an older one was overtaken).
    ReportLoaded(Box<ReportLoad>),
    /// Completions of a path typed in a prompt.
    Completions {
        input: String,
        candidates: Vec<String>,
    },
}

/// The outcome of loading a report, built on the blocking pool.
#[derive(Debug, Clone)]
pub struct ReportLoad {
    pub seq: u64,
    pub request: ReportRequest,
    /// Loaded again because its files changed.
    pub reload: bool,
    /// When the load finished.
    pub at: OffsetDateTime,
    /// The error is one line naming the file (and line) it is about.
    pub result: Result<Report, String>,
}

/// Work a tab asks the app to do (the app owns the engine handle and the store, and
/// does all I/O off the render path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Trigger,
    Cancel,
    /// Read the cache's figures (a [`AppEvent::CacheReport`] brings them).
    RefreshCache,
    /// Run a cache job off the render path ([`AppEvent::CacheJobDone`] when done).
    CacheJob(crate::cache::maintenance::Job),
    /// Build a report from these files (replaces the watched report once loaded).
    LoadReport(ReportRequest),
    /// Reload the current report from its files.
    ReloadReport,
    /// List what could complete this typed path.
    CompletePath(String),
    /// Give the terminal back and stop until the shell continues the process (Ctrl-Z).
    Suspend,
    /// Open a link (a build's page) with `$BROWSER`, else put it on the clipboard.
    OpenUrl(String),
    /// Replace the saved schedule edits with this layer (the engine checks, persists
    /// and applies it, and answers with a new schedule status).
    SaveSchedule(crate::schedule::Layer),
    /// Pause (true) or resume automatic snapshots.
    PauseSchedule(bool),
}

/// What handling a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not this tab's key.
    Ignored,
    /// State changed; redraw.
    Redraw,
    /// Ask the app to do something (and redraw).
    Do(Effect),
    /// Tell the user something in the footer (and redraw).
    Say(String),
}

/// One tab of the app. The app keeps tabs in a list and calls these; adding a tab is
/// writing one of these and registering it in [`crate::app::App::new`].
pub trait Tab {
    /// Name in the tab bar.
    fn title(&self) -> &'static str;
    /// A key the global map did not take (tab switching, help and quit never reach here).
    fn handle_key(&mut self, action: Action) -> Outcome;
    /// Whether a text input of this tab is open: then every key goes to
    /// [`Tab::handle_text`] and global keys (quit, tab switching, help) do not fire.
    fn takes_text(&self) -> bool {
        false
    }
    /// A key while [`Tab::takes_text`]: the raw key, and the action the key map binds it
    /// to (for Enter/Esc-like keys; a printable character is text whatever it is bound to).
    fn handle_text(&mut self, _key: &KeyEvent, _action: Option<Action>) -> Outcome {
        Outcome::Ignored
    }
    /// An event reached the app; return whether anything this tab draws changed.
    fn on_event(&mut self, event: &AppEvent) -> bool;
    /// Work this tab asks for after an event (the Cache tab reloads the store figures
    /// when a run ends); the app collects it after every event.
    fn take_effects(&mut self) -> Vec<Effect> {
        Vec::new()
    }
    /// The tab was switched to (by key, number or click): a chance to bring what it
    /// shows up to date.
    fn on_show(&mut self) -> Outcome {
        Outcome::Ignored
    }
    fn render(&self, frame: &mut Frame, area: Rect, view: &View);
    /// The actions shown in the footer while this tab is active, in order.
    fn hints(&self) -> Vec<Action>;
    /// The footer's word for an action, when it depends on this tab's state
    /// (`p pause` / `p resume`).
    fn hint_word(&self, action: Action) -> &'static str {
        action.hint()
    }
    /// Whose keys win when two tabs share one (`o`): this tab's group's.
    fn group(&self) -> Group {
        Group::Global
    }
    /// When a relative time this tab shows ("7m ago", "in 12m") next changes its text;
    /// None when nothing on it depends on the clock.
    fn next_change(&self, _now: OffsetDateTime) -> Option<Duration> {
        None
    }
}

/// Draws the whole frame.
pub fn draw(frame: &mut Frame, app: &App, now: OffsetDateTime) {
    let area = frame.area();
    let view = View {
        theme: &app.theme,
        keys: &app.keys,
        now,
        offset: app.offset,
    };
    frame
        .buffer_mut()
        .set_style(area, app.theme.style(Role::Text));
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area, &view);
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, app, &view);
    app.active_tab().render(frame, body, &view);
    draw_footer(frame, footer, app, &view);
    match app.overlay {
        Overlay::None => {}
        Overlay::Help { scroll } => draw_help(frame, body, scroll, &view),
        Overlay::ConfirmQuit => draw_confirm_quit(frame, body, &view),
    }
}

fn draw_too_small(frame: &mut Frame, area: Rect, view: &View) {
    let t = view.theme;
    let lines = vec![
        Line::styled("snaptop needs a bigger pane", t.style(Role::Notice)),
        Line::raw(format!(
            "at least {MIN_WIDTH}×{MIN_HEIGHT}, this one is {}×{}",
            area.width, area.height
        )),
        Line::styled(
            format!("{} quits", view.keys.first(Action::Quit)),
            t.style(Role::Muted),
        ),
    ];
    let top = area.height.saturating_sub(3) / 2;
    let inner = Rect {
        y: area.y + top,
        height: area.height - top,
        ..area
    };
    frame.render_widget(
        Paragraph::new(lines)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        inner,
    );
}

/// A tab's label in the tab bar; [`tab_at`] uses the same widths.
fn tab_label(i: usize, tab: &dyn Tab) -> String {
    format!(" {} {} ", i + 1, tab.title())
}

/// Which tab's label is at `column` of the header (mouse clicks).
pub fn tab_at(app: &App, column: u16) -> Option<usize> {
    let mut x = 0usize;
    for (i, tab) in app.tabs().iter().enumerate() {
        let w = unicode_width::UnicodeWidthStr::width(tab_label(i, tab.as_ref()).as_str());
        if (x..x + w).contains(&(column as usize)) {
            return Some(i);
        }
        x += w + 1;
    }
    None
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, view: &View) {
    let t = view.theme;
    let mut left: Vec<Span> = Vec::new();
    for (i, tab) in app.tabs().iter().enumerate() {
        let style = if i == app.active_index() {
            t.style(Role::TabActive)
        } else {
            t.style(Role::TabInactive)
        };
        left.push(Span::styled(tab_label(i, tab.as_ref()), style));
        left.push(Span::raw(" "));
    }
    let left = Line::from(left);
    let room = (area.width as usize).saturating_sub(left.width());
    // The fullest status that fits next to the tabs.
    let mut right: Vec<Span> = Vec::new();
    for (compact, link) in [(false, true), (true, true), (true, false)] {
        right = header_status(app, view, compact);
        if link {
            right.splice(0..0, link_status(app, view, compact));
        }
        if Line::from(right.clone()).width() <= room {
            break;
        }
    }
    let right = Line::from(right);
    let right_w = (right.width() as u16).min(area.width);
    let [l, r] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(right_w)]).areas(area);
    frame.render_widget(left, l);
    frame.render_widget(right.alignment(Alignment::Right), r);
}

/// "attached to config-1a2b3c4d.sock", "embedded", "daemon gone": where the engine is
/// (nothing in the demo).
fn link_status(app: &App, view: &View, compact: bool) -> Vec<Span<'static>> {
    use crate::app::LinkStatus;
    // The demo is always embedded, and its badge says so.
    if app.is_demo() {
        return Vec::new();
    }
    let t = view.theme;
    let (text, role) = match app.link() {
        LinkStatus::Embedded => ("embedded".to_string(), Role::Muted),
        LinkStatus::Attached { .. } if compact => ("attached".to_string(), Role::StatusOk),
        LinkStatus::Attached { socket, .. } => (format!("attached to {socket}"), Role::StatusOk),
        LinkStatus::Lost(_) if compact => ("detached".to_string(), Role::SeverityWarn),
        LinkStatus::Lost(_) => ("daemon gone, reconnecting".to_string(), Role::SeverityWarn),
        LinkStatus::GaveUp(_) => ("detached".to_string(), Role::SeverityError),
    };
    vec![
        Span::styled(text, t.style(role)),
        Span::styled(" · ", t.style(Role::Muted)),
    ]
}

fn header_status(app: &App, view: &View, compact: bool) -> Vec<Span<'static>> {
    let t = view.theme;
    let mut right: Vec<Span> = Vec::new();
    if let Some(f) = app.running_fraction() {
        let text = if compact {
            format!("● {:.0}%", f * 100.0)
        } else {
            format!("● running {:.0}%", f * 100.0)
        };
        right.push(Span::styled(text, t.style(Role::StatusRunning)));
        right.push(Span::styled(" · ", t.style(Role::Muted)));
    } else if let Some(next) = next_run_text(app.next_run(), view.now, compact) {
        right.push(Span::styled(next, t.style(Role::Title)));
        right.push(Span::styled(" · ", t.style(Role::Muted)));
    }
    let age = match app.data_as_of() {
        Some(at) if compact => format!(
            "{}, {}",
            text::clock(at, view.offset),
            text::ago(text::between(at, view.now))
        ),
        Some(at) => format!(
            "as of {}, {}",
            text::clock(at, view.offset),
            text::ago(text::between(at, view.now))
        ),
        None => "no data yet".into(),
    };
    right.push(Span::styled(age, t.style(Role::Muted)));
    if app.is_demo() {
        right.push(Span::raw(" "));
        right.push(Span::styled(" DEMO ", t.style(Role::BadgeDemo)));
    }
    right
}

/// The header's word on the next automatic snapshot: "next snapshot in 12m",
/// "paused"; nothing when snapshots are manual only.
fn next_run_text(next: snapshot::NextRun, now: OffsetDateTime, compact: bool) -> Option<String> {
    use snapshot::NextRun;
    match next {
        NextRun::At(at) => {
            let left = text::countdown(text::between(now, at));
            Some(if compact {
                format!("next {left}")
            } else {
                format!("next snapshot in {left}")
            })
        }
        NextRun::Paused => Some(if compact { "paused" } else { "schedule paused" }.into()),
        NextRun::Unknown | NextRun::ManualOnly | NextRun::Disabled => None,
    }
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App, view: &View) {
    let t = view.theme;
    let mut actions = match app.overlay {
        Overlay::ConfirmQuit => vec![Action::Confirm, Action::Back],
        Overlay::Help { .. } => vec![Action::Up, Action::Down, Action::Back],
        Overlay::None => app.active_tab().hints(),
    };
    // While a prompt takes the keys, the global ones do nothing: do not offer them.
    let global = app.overlay == Overlay::None && !app.active_tab().takes_text();
    if global {
        actions.push(Action::NextTab);
    }
    let tab = app.active_tab();
    let hints = footer_hints(view.keys, &actions, &|a| tab.hint_word(a));
    // `? help` and `q quit` are always there: they are how a newcomer finds the rest.
    let essentials = if global {
        footer_hints(view.keys, &[Action::Help, Action::Quit], &Action::hint)
    } else {
        Vec::new()
    };
    let width = usize::from(area.width);
    let hint_w = |h: &Hint| h.keys.width() + 1 + h.word.width() + 2;
    let essentials_w: usize = essentials.iter().map(hint_w).sum();
    let mut spans: Vec<Span> = Vec::new();
    let mut used = 0;
    if let Some(msg) = app.message() {
        // The message gives way to the essentials, never the other way round.
        const SEPARATOR: &str = "│ ";
        let room = width.saturating_sub(essentials_w + SEPARATOR.width() + 1);
        let text = text::fit(&msg.text, room);
        used += text.width() + 1 + SEPARATOR.width();
        spans.push(Span::styled(format!("{text} "), t.severity(msg.level)));
        spans.push(Span::styled(SEPARATOR, t.style(Role::Muted)));
    }
    // The tab's hints in order, as many as fit before the essentials.
    for h in &hints {
        let w = hint_w(h);
        if used + w + essentials_w > width + 2 {
            break;
        }
        used += w;
        push_hint(&mut spans, h, t);
    }
    for h in &essentials {
        push_hint(&mut spans, h, t);
    }
    frame.render_widget(Line::from(spans), area);
}

/// One footer hint: `↑↓←→ move`, `o open`.
struct Hint {
    keys: String,
    word: String,
}

fn push_hint(spans: &mut Vec<Span<'static>>, h: &Hint, t: &Theme) {
    spans.push(Span::styled(h.keys.clone(), t.style(Role::Key)));
    spans.push(Span::styled(format!(" {}  ", h.word), t.style(Role::Muted)));
}

/// The footer hints of `actions`, groups that go both ways merged into one hint.
fn footer_hints(
    keys: &KeyMap,
    actions: &[Action],
    word: &dyn Fn(Action) -> &'static str,
) -> Vec<Hint> {
    // The four directions read better as one hint: "↑↓←→ move"; a pair too: "[] view".
    const GROUPS: [(&[Action], &str); 3] = [
        (
            &[Action::Up, Action::Down, Action::Left, Action::Right],
            "move",
        ),
        (&[Action::PrevView, Action::NextView], "view"),
        // Only the Cache tab moves sideways alone: between namespaces.
        (&[Action::Left, Action::Right], "namespace"),
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while i < actions.len() {
        if let Some((group, word)) = GROUPS.iter().find(|(g, _)| actions[i..].starts_with(g)) {
            out.push(Hint {
                keys: direction_keys(keys, group),
                word: (*word).to_string(),
            });
            i += group.len();
            continue;
        }
        let a = actions[i];
        out.push(Hint {
            keys: keys.first(a),
            word: word(a).to_string(),
        });
        i += 1;
    }
    out
}

/// The keys of actions shown as one group (`↑↓←→`, `kjhl`, `[]`): one key of each, all
/// of one kind — the kind of the first action's first key (arrows or letters), so a
/// user's `down = ["j", "down"]` does not turn `↑↓←→` into `↑j←→`. When the actions have
/// no kind in common, each one's first key, separated by `/`.
pub fn direction_keys(keys: &KeyMap, actions: &[Action]) -> String {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Arrow,
        Char,
        Other,
    }
    let kind = |c: &KeyChord| match c.code {
        _ if c.mods != KeyModifiers::NONE => Kind::Other,
        KeyCode::Up | KeyCode::Down | KeyCode::Left | KeyCode::Right => Kind::Arrow,
        KeyCode::Char(ch) if !ch.is_whitespace() => Kind::Char,
        _ => Kind::Other,
    };
    let first_kind = actions
        .first()
        .and_then(|a| keys.keys(*a).first())
        .map(kind);
    let mut kinds = Vec::new();
    kinds.extend(first_kind.filter(|k| *k != Kind::Other));
    kinds.extend(
        [Kind::Arrow, Kind::Char]
            .into_iter()
            .filter(|k| Some(*k) != first_kind),
    );
    for k in kinds {
        let picked: Option<Vec<String>> = actions
            .iter()
            .map(|a| {
                keys.keys(*a)
                    .iter()
                    .find(|c| kind(c) == k)
                    .map(ToString::to_string)
            })
            .collect();
        if let Some(p) = picked {
            return p.concat();
        }
    }
    actions
        .iter()
        .map(|a| keys.first(*a))
        .collect::<Vec<_>>()
        .join("/")
}

/// The help overlay, generated from the key map.
pub fn help_lines(keys: &KeyMap, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut group: Option<Group> = None;
    let key_w = Action::ALL
        .iter()
        .map(|a| keys.label(*a).chars().count())
        .max()
        .unwrap_or(0)
        .min(18);
    for a in Action::ALL {
        if group != Some(a.group()) {
            if group.is_some() {
                lines.push(Line::raw(""));
            }
            group = Some(a.group());
            lines.push(Line::styled(a.group().title(), theme.style(Role::Header)));
        }
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {:<key_w$}  ", keys.label(a)),
                theme.style(Role::Key),
            ),
            Span::raw(a.description()),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Keys can be changed in the [keys] table of the config (see README).",
        theme.style(Role::Muted),
    ));
    lines
}

/// The help popup: the body less a line above and below.
fn help_popup(body: Rect) -> Rect {
    widgets::centered(body, 74, body.height.saturating_sub(2))
}

/// How many lines of help a pane `rows` high shows (the header and footer lines, the
/// popup's margin and its borders are the rest); the app scrolls with the same figure.
pub fn help_rows(rows: u16) -> usize {
    usize::from(rows.saturating_sub(2).saturating_sub(2).saturating_sub(2))
}

fn draw_help(frame: &mut Frame, area: Rect, scroll: widgets::Scroll, view: &View) {
    let t = view.theme;
    let popup = help_popup(area);
    frame.render_widget(Clear, popup);
    let lines = help_lines(view.keys, t);
    // The app's scroll was measured for this pane; clamp again for what is drawn.
    let mut scroll = scroll;
    scroll.resize(lines.len(), usize::from(popup.height.saturating_sub(2)));
    let title = if scroll.max_offset() == 0 {
        " Keys ".to_string()
    } else {
        format!(
            " Keys · {} to scroll ",
            direction_keys(view.keys, &[Action::Up, Action::Down])
        )
    };
    let mut block = Block::bordered()
        .title(Span::styled(title, t.style(Role::Title)))
        .border_style(t.style(Role::BorderFocused));
    if scroll.more_above() {
        block =
            block.title(Line::styled(" more ↑ ", t.style(Role::Key)).alignment(Alignment::Right));
    }
    if scroll.more_below() {
        block = block
            .title_bottom(Line::styled(" more ↓ ", t.style(Role::Key)).alignment(Alignment::Right));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll(scroll.paragraph()),
        popup,
    );
}

fn draw_confirm_quit(frame: &mut Frame, area: Rect, view: &View) {
    let popup = widgets::centered(area, 52, 5);
    frame.render_widget(Clear, popup);
    let t = view.theme;
    let block = Block::bordered()
        .title(Span::styled(" Quit? ", t.style(Role::Title)))
        .border_style(t.style(Role::BorderFocused));
    let lines = vec![
        Line::raw("A snapshot is running; quitting cancels it."),
        Line::from(vec![
            Span::styled(view.keys.first(Action::Confirm), t.style(Role::Key)),
            Span::raw(" quit   "),
            Span::styled("any other key", t.style(Role::Key)),
            Span::raw(" keep running"),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .alignment(Alignment::Center),
        popup,
    );
}
