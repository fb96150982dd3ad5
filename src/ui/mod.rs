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
use crate::app::keymap::KeyMap;
use crate::app::{App, Overlay};
use crate::engine::events::EngineEvent;
use crate::report::{Report, ReportRequest};
use crate::store::NamespaceSize;
use theme::{Role, Theme};

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
    StoreSizes(Vec<NamespaceSize>),
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
    RefreshStore,
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
    fn render(&self, frame: &mut Frame, area: Rect, view: &View);
    /// The actions shown in the footer while this tab is active, in order.
    fn hints(&self) -> Vec<Action>;
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
    for compact in [false, true] {
        right = header_status(app, view, compact);
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

fn draw_footer(frame: &mut Frame, area: Rect, app: &App, view: &View) {
    let t = view.theme;
    let mut spans: Vec<Span> = Vec::new();
    if let Some(msg) = app.message() {
        spans.push(Span::styled(
            format!("{} ", msg.text),
            t.severity(msg.level),
        ));
        spans.push(Span::styled("│ ", t.style(Role::Muted)));
    }
    let mut actions = match app.overlay {
        Overlay::ConfirmQuit => vec![Action::Confirm, Action::Back],
        Overlay::Help { .. } => vec![Action::Up, Action::Down, Action::Back],
        Overlay::None => app.active_tab().hints(),
    };
    // While a prompt takes the keys, the global ones do nothing: do not offer them.
    if app.overlay == Overlay::None && !app.active_tab().takes_text() {
        actions.extend([Action::NextTab, Action::Help, Action::Quit]);
    }
    // The four directions read better as one hint: "↑↓←→ move".
    const DIRECTIONS: [Action; 4] = [Action::Up, Action::Down, Action::Left, Action::Right];
    const PAIRS: [([Action; 2], &str); 1] = [([Action::PrevView, Action::NextView], "view")];
    let mut i = 0;
    while i < actions.len() {
        if actions[i..].starts_with(&DIRECTIONS) {
            let keys: String = DIRECTIONS.iter().map(|a| view.keys.first(*a)).collect();
            spans.push(Span::styled(keys, t.style(Role::Key)));
            spans.push(Span::styled(" move  ", t.style(Role::Muted)));
            i += DIRECTIONS.len();
            continue;
        }
        // A pair that goes both ways reads as one hint too: "[] view".
        if let Some((pair, word)) = PAIRS.iter().find(|(p, _)| actions[i..].starts_with(p)) {
            let keys: String = pair.iter().map(|a| view.keys.first(*a)).collect();
            spans.push(Span::styled(keys, t.style(Role::Key)));
            spans.push(Span::styled(format!(" {word}  "), t.style(Role::Muted)));
            i += pair.len();
            continue;
        }
        let a = actions[i];
        spans.push(Span::styled(view.keys.first(a), t.style(Role::Key)));
        spans.push(Span::styled(
            format!(" {}  ", a.hint()),
            t.style(Role::Muted),
        ));
        i += 1;
    }
    frame.render_widget(Line::from(spans), area);
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

fn draw_help(frame: &mut Frame, area: Rect, scroll: u16, view: &View) {
    let popup = widgets::centered(area, 74, area.height.saturating_sub(2));
    frame.render_widget(Clear, popup);
    let lines = help_lines(view.keys, view.theme);
    let visible = popup.height.saturating_sub(2);
    let max_scroll = (lines.len() as u16).saturating_sub(visible);
    let scroll = scroll.min(max_scroll);
    let title = if max_scroll == 0 {
        " Keys ".to_string()
    } else {
        format!(
            " Keys · {} {} to scroll ",
            view.keys.first(Action::Up),
            view.keys.first(Action::Down)
        )
    };
    let block = Block::bordered()
        .title(Span::styled(title, view.theme.style(Role::Title)))
        .border_style(view.theme.style(Role::BorderFocused));
    frame.render_widget(
        Paragraph::new(lines).block(block).scroll((scroll, 0)),
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
