//! The Schedule tab: the policy as an editable form (text fields, true/false toggles, a
//! day picker), checked as you type; beside it the next runs the edited policy would
//! give and the last runs. `Ctrl-S` hands the edits to the engine as an effect (it
//! checks, persists and applies them, and answers with a new status); `Esc` discards.

use std::time::Duration;

use jiff::civil::Weekday;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui_textarea::TextArea;
use time::OffsetDateTime;

use super::snapshot::runs::result;
use super::snapshot::{pause_key, pause_word};
use super::text;
use super::theme::Role;
use super::widgets::panel;
use super::{AppEvent, Effect, Outcome, Tab, View};
use crate::app::action::{Action, Group};
use crate::engine::events::{EngineEvent, Level};
use crate::engine::model::{RunSummary, Trigger};
use crate::engine::scheduler::ScheduleStatus;
use crate::schedule::policy::Days;
use crate::schedule::{Due, FieldError, Key, Layer, Origin, Policy, Settings, preview};

/// Runs the preview shows.
pub const PREVIEW_RUNS: usize = 10;
/// Last runs kept for the list (more than ever fit).
const RUNS_KEPT: usize = 30;
/// The widest key name (`cooldown_after_manual`).
const NAME_W: usize = 21;
/// The widest origin word (`config file`).
const ORIGIN_W: usize = 11;
/// From this width the form and the preview stand side by side.
const SIDE_BY_SIDE_W: u16 = 110;
/// The form's width when side by side.
const FORM_W: u16 = 62;
const DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];
const DAY_LABELS: [&str; 7] = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"];

/// The field being typed in, with the text it had before (Esc puts it back).
#[derive(Debug, Clone)]
struct Editing {
    input: TextArea<'static>,
    before: String,
}

/// What the last save came to, shown under the form until the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Notice {
    /// Sent to the engine; waiting for its answer.
    Saving,
    Saved,
    Refused(String),
}

#[derive(Debug, Clone)]
pub struct ScheduleTab {
    /// What the engine last said (None: no scheduler, or nothing said yet).
    status: Option<Box<ScheduleStatus>>,
    /// The policy in force, when the engine's settings resolve.
    in_force: Option<Policy>,
    /// The form's text per key; starts as (and follows) the values in force.
    draft: Layer,
    /// Errors of the draft as a whole (per field and across fields).
    errors: Vec<FieldError>,
    /// The draft's policy when it is valid (the preview uses it).
    draft_policy: Option<Policy>,
    selected: usize,
    /// The day the picker's cursor is on (Monday = 0).
    day: usize,
    editing: Option<Editing>,
    notice: Option<Notice>,
    running: bool,
    /// Newest first.
    history: Vec<RunSummary>,
}

impl Default for ScheduleTab {
    fn default() -> Self {
        ScheduleTab::new(Vec::new())
    }
}

/// Whether two texts of a key say the same (`mon,tue,wed,thu,fri` is `mon-fri`, `True`
/// is `true`), so a field set back to what it was is not marked changed.
fn same_value(key: Key, a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if a == b {
        return true;
    }
    if key == Key::Days {
        return matches!((Days::parse(a), Days::parse(b)), (Ok(x), Ok(y)) if x == y);
    }
    key.is_bool() && a.eq_ignore_ascii_case(b)
}

impl ScheduleTab {
    /// The tab with the run history read at start, newest first.
    pub fn new(mut history: Vec<RunSummary>) -> ScheduleTab {
        history.truncate(RUNS_KEPT);
        let mut tab = ScheduleTab {
            status: None,
            in_force: None,
            draft: Layer::new(),
            errors: Vec::new(),
            draft_policy: None,
            selected: 0,
            day: 0,
            editing: None,
            notice: None,
            running: false,
            history,
        };
        tab.discard();
        tab
    }

    /// The layers in force (the built-in values before the engine has said).
    fn settings(&self) -> Settings {
        self.status
            .as_ref()
            .map(|s| s.settings.clone())
            .unwrap_or_default()
    }

    /// The text in force for a key and where it came from.
    pub fn in_force(&self, key: Key) -> (String, Origin) {
        self.settings().text(key)
    }

    /// The form's text of a key.
    pub fn draft(&self, key: Key) -> &str {
        self.draft.get(&key).map_or("", String::as_str)
    }

    pub fn selected(&self) -> Key {
        Key::ALL[self.selected]
    }

    pub fn is_editing(&self) -> bool {
        self.editing.is_some()
    }

    pub fn is_changed(&self, key: Key) -> bool {
        !same_value(key, self.draft(key), &self.in_force(key).0)
    }

    pub fn is_dirty(&self) -> bool {
        Key::ALL.into_iter().any(|k| self.is_changed(k))
    }

    /// The first error about `key` in the draft.
    pub fn error(&self, key: Key) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.key() == Some(key))
            .map(|e| e.message.as_str())
    }

    pub fn paused(&self) -> Option<bool> {
        self.status.as_ref().map(|s| s.paused)
    }

    /// The picker's day (Monday = 0).
    pub fn picked_day(&self) -> usize {
        self.day
    }

    /// Every field back to the value in force.
    fn discard(&mut self) {
        self.editing = None;
        self.draft = Key::ALL
            .into_iter()
            .map(|k| (k, self.in_force(k).0))
            .collect();
        self.revalidate();
    }

    fn revalidate(&mut self) {
        let draft = Settings {
            file: Layer::new(),
            store: self.draft.clone(),
        };
        match draft.resolve() {
            Ok(r) => {
                self.errors.clear();
                self.draft_policy = Some(r.policy);
            }
            Err(errors) => {
                self.errors = errors;
                self.draft_policy = None;
            }
        }
        // The field being typed in is checked on its own first, so its own message
        // shows even while another field is wrong.
        if let Some(e) = &self.editing {
            let key = self.selected();
            let text = e.input.lines().first().cloned().unwrap_or_default();
            if let Err(message) = crate::schedule::policy::check(key, &text)
                && self.error(key).is_none()
            {
                self.errors.insert(0, FieldError::new(key, message));
            }
        }
    }

    fn set_draft(&mut self, key: Key, text: String) {
        self.draft.insert(key, text);
        self.notice = None;
        self.revalidate();
    }

    /// The layer Ctrl-S saves: the saved edits, with each changed key's draft, and a
    /// key whose draft is what the file (or the default) says dropped, so it goes back
    /// to coming from there.
    pub fn edits_to_save(&self) -> Layer {
        let settings = self.settings();
        let below = Settings {
            file: settings.file.clone(),
            store: Layer::new(),
        };
        let mut layer = settings.store.clone();
        for key in Key::ALL.into_iter().filter(|k| self.is_changed(*k)) {
            let text = self.draft(key).trim().to_string();
            if same_value(key, &below.text(key).0, &text) {
                layer.remove(&key);
            } else {
                layer.insert(key, text);
            }
        }
        layer
    }

    fn save(&mut self) -> Outcome {
        self.editing = None;
        self.revalidate();
        if self.status.is_none() {
            return Outcome::Say("no schedule in this process: edits cannot be saved".into());
        }
        if let Some(e) = self.errors.first() {
            if let Some(i) = e.key().and_then(|k| Key::ALL.iter().position(|x| *x == k)) {
                self.selected = i;
            }
            return Outcome::Say(format!("not saved: {}: {}", e.field, e.message));
        }
        if !self.is_dirty() {
            return Outcome::Say("nothing to save: no field was changed".into());
        }
        self.notice = Some(Notice::Saving);
        Outcome::Do(Effect::SaveSchedule(self.edits_to_save()))
    }

    fn start_editing(&mut self) {
        let text = self.draft(self.selected()).to_string();
        self.editing = Some(Editing {
            input: super::widgets::one_line_input(&text),
            before: text,
        });
        self.notice = None;
    }

    fn toggle(&mut self) -> Outcome {
        let key = self.selected();
        if key.is_bool() {
            let on = self.draft(key).trim().eq_ignore_ascii_case("true");
            self.set_draft(key, (!on).to_string());
            Outcome::Redraw
        } else if key == Key::Days {
            let mut days = Days::parse(self.draft(key)).unwrap_or_default();
            days.toggle(DAYS[self.day]);
            self.set_draft(key, days.to_string());
            Outcome::Redraw
        } else {
            Outcome::Ignored
        }
    }

    fn move_to(&mut self, i: usize) -> Outcome {
        if i == self.selected || i >= Key::ALL.len() {
            return Outcome::Ignored;
        }
        self.selected = i;
        Outcome::Redraw
    }

    /// A new status from the engine: fields the user has not changed follow it; a
    /// changed field, and the one being typed in, keep their text.
    fn on_status(&mut self, status: Option<Box<ScheduleStatus>>) {
        let before: Vec<String> = Key::ALL.into_iter().map(|k| self.in_force(k).0).collect();
        self.in_force = status
            .as_ref()
            .and_then(|s| s.settings.resolve().ok())
            .map(|r| r.policy);
        self.status = status;
        for (i, key) in Key::ALL.into_iter().enumerate() {
            let editing = self.editing.is_some() && i == self.selected;
            if !editing && same_value(key, self.draft(key), &before[i]) {
                let now = self.in_force(key).0;
                self.draft.insert(key, now);
            }
        }
        if self.notice == Some(Notice::Saving) && !self.is_dirty() {
            self.notice = Some(Notice::Saved);
        }
        self.revalidate();
    }

    /// The next runs: of the draft when it is valid, else of the policy in force.
    pub fn preview(&self, now: OffsetDateTime) -> Vec<Due> {
        let Some(status) = &self.status else {
            return Vec::new();
        };
        let Some(policy) = self.draft_policy.as_ref().or(self.in_force.as_ref()) else {
            return Vec::new();
        };
        preview(
            policy,
            &status.runs,
            crate::schedule::timestamp_of(now),
            status.seed,
            PREVIEW_RUNS,
        )
    }

    fn text_key(&mut self, key: &KeyEvent, action: Option<Action>) -> Outcome {
        let Some(e) = &mut self.editing else {
            return Outcome::Ignored;
        };
        if super::widgets::breaks_line(key) {
            return Outcome::Ignored;
        }
        if !super::widgets::is_typed_char(key) {
            match (key.code, action) {
                (_, Some(Action::Save)) => return self.save(),
                (KeyCode::Enter, _) => {
                    self.editing = None;
                    self.revalidate();
                    return Outcome::Redraw;
                }
                (KeyCode::Up | KeyCode::Down | KeyCode::Tab | KeyCode::BackTab, _) => {
                    self.editing = None;
                    self.revalidate();
                    let down = matches!(key.code, KeyCode::Down | KeyCode::Tab);
                    let i = if down {
                        self.selected + 1
                    } else {
                        self.selected.wrapping_sub(1)
                    };
                    self.move_to(i);
                    return Outcome::Redraw;
                }
                // Ctrl-C leaves the field rather than the program.
                (KeyCode::Esc, _) | (_, Some(Action::Back | Action::Quit)) => {
                    let before = e.before.clone();
                    self.editing = None;
                    self.set_draft(self.selected(), before);
                    return Outcome::Redraw;
                }
                (KeyCode::Char('u' | 'U'), _) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    e.input.delete_line_by_head();
                }
                _ => {
                    e.input.input(*key);
                }
            }
        } else {
            e.input.input(*key);
        }
        let text = e.input.lines().first().cloned().unwrap_or_default();
        self.set_draft(self.selected(), text);
        Outcome::Redraw
    }
}

impl Tab for ScheduleTab {
    fn title(&self) -> &'static str {
        "Schedule"
    }

    fn group(&self) -> Group {
        Group::Schedule
    }

    fn handle_key(&mut self, action: Action) -> Outcome {
        let key = self.selected();
        match action {
            Action::Up => self.move_to(self.selected.wrapping_sub(1)),
            Action::Down => self.move_to(self.selected + 1),
            Action::Left if key == Key::Days && self.day > 0 => {
                self.day -= 1;
                Outcome::Redraw
            }
            Action::Right if key == Key::Days && self.day < 6 => {
                self.day += 1;
                Outcome::Redraw
            }
            Action::Open if !key.is_bool() && key != Key::Days => {
                self.start_editing();
                Outcome::Redraw
            }
            Action::Open | Action::Toggle => self.toggle(),
            Action::Save => self.save(),
            Action::Back if self.is_dirty() => {
                self.discard();
                self.notice = None;
                Outcome::Say("unsaved schedule changes discarded".into())
            }
            Action::Pause => pause_key(self.paused()),
            _ => Outcome::Ignored,
        }
    }

    fn takes_text(&self) -> bool {
        self.editing.is_some()
    }

    fn handle_text(&mut self, key: &KeyEvent, action: Option<Action>) -> Outcome {
        self.text_key(key, action)
    }

    fn on_event(&mut self, event: &AppEvent) -> bool {
        let ev = match event {
            AppEvent::Engine(ev) => ev,
            AppEvent::Attached(state) => {
                self.history = state.history.clone();
                self.history.truncate(RUNS_KEPT);
                self.running = state.progress.is_some();
                self.on_status(state.schedule.clone().map(Box::new));
                return true;
            }
            _ => return false,
        };
        match ev {
            EngineEvent::Schedule(status) => self.on_status(status.clone()),
            EngineEvent::Started(_) => self.running = true,
            EngineEvent::Finished { summary, .. } | EngineEvent::Failed { summary, .. } => {
                self.running = false;
                self.history.insert(0, summary.clone());
                self.history.truncate(RUNS_KEPT);
            }
            EngineEvent::Log(line)
                if matches!(line.level, Level::Warn | Level::Error)
                    && line.message.starts_with("schedule edit") =>
            {
                self.notice = Some(Notice::Refused(line.message.clone()));
            }
            _ => return false,
        }
        true
    }

    fn render(&self, frame: &mut Frame, area: Rect, view: &View) {
        let wide = area.width >= SIDE_BY_SIDE_W;
        let form_w = if wide { FORM_W } else { area.width };
        let form_h = (self.form_lines(view, form_w).len() as u16 + 2).min(area.height);
        let (form, preview, runs) = if wide {
            let [form, right] =
                Layout::horizontal([Constraint::Length(FORM_W), Constraint::Fill(1)]).areas(area);
            let preview_h = (PREVIEW_RUNS as u16 + 2).min(right.height.saturating_sub(4));
            let [preview, runs] =
                Layout::vertical([Constraint::Length(preview_h), Constraint::Fill(1)]).areas(right);
            (form, preview, runs)
        } else {
            // Stacked: the form whole, the preview and the runs side by side below.
            let form_h = form_h.min(area.height.saturating_sub(4));
            let [form, below] =
                Layout::vertical([Constraint::Length(form_h), Constraint::Fill(1)]).areas(area);
            let [preview, runs] =
                Layout::horizontal([Constraint::Percentage(56), Constraint::Fill(1)]).areas(below);
            (form, preview, runs)
        };
        self.render_form(frame, form, view);
        self.render_preview(frame, preview, view);
        self.render_runs(frame, runs, view);
    }

    fn hints(&self) -> Vec<Action> {
        if self.editing.is_some() {
            return vec![Action::Open, Action::Back, Action::Save];
        }
        let key = self.selected();
        let mut h = vec![Action::Up, Action::Down];
        if key == Key::Days {
            h = vec![Action::Up, Action::Down, Action::Left, Action::Right];
            h.push(Action::Toggle);
        } else if key.is_bool() {
            h.push(Action::Toggle);
        } else {
            h.push(Action::Open);
        }
        if self.is_dirty() {
            h.extend([Action::Save, Action::Back]);
        }
        if self.status.is_some() {
            h.push(Action::Pause);
        }
        h
    }

    fn hint_word(&self, action: Action) -> &'static str {
        match action {
            Action::Pause => pause_word(self.paused()),
            Action::Open if self.editing.is_some() => "keep",
            Action::Back if self.editing.is_some() => "restore",
            Action::Back => "discard",
            Action::Open => "edit",
            a => a.hint(),
        }
    }

    fn next_change(&self, now: OffsetDateTime) -> Option<Duration> {
        if self.status.as_ref().is_none_or(|s| s.paused) {
            return None;
        }
        self.preview(now)
            .iter()
            .map(
                |d| match text::between(now, crate::schedule::offset_of(d.at)) {
                    // A run due now stays "now"; the clock beside it moves with the minute.
                    left if left.is_zero() => Duration::from_secs(60 - u64::from(now.second())),
                    left => text::countdown_changes_in(left),
                },
            )
            .min()
    }
}

impl ScheduleTab {
    /// The form's lines: a row per key (an error line under a wrong one), then the
    /// selected key's help or what the last save came to.
    fn form_lines(&self, view: &View, width: u16) -> Vec<Line<'static>> {
        let t = view.theme;
        let inner = usize::from(width.saturating_sub(2));
        let value_w = inner.saturating_sub(2 + NAME_W + 2 + 2 + ORIGIN_W).max(8);
        let mut lines = Vec::new();
        for (i, key) in Key::ALL.into_iter().enumerate() {
            let selected = i == self.selected;
            let changed = self.is_changed(key);
            let error = self.error(key);
            let mut spans = vec![
                Span::styled(if selected { "▸" } else { " " }, t.style(Role::Key)),
                Span::styled(if changed { "*" } else { " " }, t.style(Role::Notice)),
                Span::styled(
                    format!("{:<NAME_W$}  ", key.name()),
                    if selected {
                        t.style(Role::Selection)
                    } else {
                        t.style(Role::Text)
                    },
                ),
            ];
            let value_style = if error.is_some() {
                t.style(Role::SeverityError)
            } else {
                t.style(Role::Title)
            };
            let draft = self.draft(key);
            let shown: Vec<Span<'static>> = if key == Key::Days {
                let days = Days::parse(draft).unwrap_or_default();
                let mut s = Vec::new();
                for (d, label) in DAY_LABELS.iter().enumerate() {
                    let on = days.contains(DAYS[d]);
                    let mut style = if on {
                        t.style(Role::Title)
                    } else {
                        t.style(Role::Muted)
                    };
                    if selected && d == self.day {
                        style = style.add_modifier(Modifier::REVERSED);
                    }
                    let label = if on {
                        (*label).to_string()
                    } else {
                        label.to_ascii_lowercase()
                    };
                    s.push(Span::styled(label, style));
                    s.push(Span::raw(" "));
                }
                s
            } else if key.is_bool() {
                let on = draft.trim().eq_ignore_ascii_case("true");
                vec![Span::styled(
                    format!("[{}] {}", if on { "x" } else { " " }, draft.trim()),
                    value_style,
                )]
            } else if selected && self.editing.is_some() {
                // The text input is drawn over this cell.
                vec![Span::raw(" ".repeat(value_w))]
            } else {
                vec![Span::styled(
                    text::fit(draft, value_w).into_owned(),
                    value_style,
                )]
            };
            let shown_w: usize = shown.iter().map(|s| s.width()).sum();
            spans.extend(shown);
            spans.push(Span::raw(" ".repeat(value_w.saturating_sub(shown_w) + 2)));
            let (_, origin) = self.in_force(key);
            spans.push(if changed {
                Span::styled("unsaved", t.style(Role::Notice))
            } else {
                Span::styled(origin.label(), t.style(Role::Muted))
            });
            lines.push(Line::from(spans));
            if let Some(e) = error {
                lines.push(Line::styled(
                    text::fit(&format!("    ↳ {e}"), inner).into_owned(),
                    t.style(Role::SeverityError),
                ));
            }
        }
        let key = self.selected();
        let help = match &self.notice {
            Some(Notice::Saving) => Line::styled("Saving…", t.style(Role::Muted)),
            Some(Notice::Saved) => Line::styled(
                "Saved: in force now, and kept over the config file's values.",
                t.style(Role::StatusOk),
            ),
            Some(Notice::Refused(why)) => Line::styled(
                text::fit(why, inner).into_owned(),
                t.style(Role::SeverityError),
            ),
            None => Line::styled(
                text::fit(&format!("{}: {}", key.name(), key.expects()), inner).into_owned(),
                t.style(Role::Muted),
            ),
        };
        match (&self.notice, self.error(key)) {
            // The whole message of the selected field when its line under it is cut.
            (None, Some(e)) if e.chars().count() + 6 > inner => {
                for l in text::wrap_at_most(e, inner, "", "", 2) {
                    lines.push(Line::styled(l, t.style(Role::SeverityError)));
                }
            }
            _ => lines.push(help),
        }
        lines
    }

    fn render_form(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let title = if self.is_dirty() {
            format!(
                "Schedule · unsaved changes — {} saves, {} discards",
                view.keys.first(Action::Save),
                view.keys.first(Action::Back)
            )
        } else {
            "Schedule".to_string()
        };
        let mut block = panel(title, t);
        if self.is_dirty() {
            block = block.border_style(t.style(Role::BorderFocused));
        }
        let inner = block.inner(area);
        let lines = self.form_lines(view, area.width);
        frame.render_widget(Paragraph::new(lines).block(block), area);
        if let Some(e) = &self.editing {
            // The selected row, counting the error lines above it.
            let row = (0..self.selected)
                .filter(|i| self.error(Key::ALL[*i]).is_some())
                .count()
                + self.selected;
            let value_w = usize::from(inner.width).saturating_sub(2 + NAME_W + 2 + 2 + ORIGIN_W);
            let cell = Rect {
                x: inner.x + (2 + NAME_W + 2) as u16,
                y: inner.y + row as u16,
                width: value_w.max(8) as u16,
                height: 1,
            }
            .intersection(inner);
            if !cell.is_empty() {
                frame.render_widget(&e.input, cell);
            }
        }
    }

    fn render_preview(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let inner_w = usize::from(area.width.saturating_sub(2));
        let editing_preview = self.is_dirty() && self.draft_policy.is_some();
        let title = if editing_preview {
            "Next runs · with your edits"
        } else {
            "Next runs"
        };
        let mut lines: Vec<Line> = Vec::new();
        let pause = view.keys.first(Action::Pause);
        let enabled = self
            .draft_policy
            .as_ref()
            .or(self.in_force.as_ref())
            .is_some_and(|p| p.enabled);
        match &self.status {
            None => lines.push(Line::styled(
                "No schedule in this process: snapshots run when asked.",
                muted,
            )),
            Some(s) if s.paused => {
                lines.push(Line::styled(
                    "Paused: no automatic snapshots.",
                    t.style(Role::Notice),
                ));
                lines.push(Line::styled(format!("{pause} resumes."), muted));
            }
            Some(_) if !enabled => lines.push(Line::styled(
                "Off (enabled = false): snapshots run when asked.",
                t.style(Role::Notice),
            )),
            Some(_) => {
                if self.running {
                    lines.push(Line::styled(
                        "● a snapshot is running",
                        t.style(Role::StatusRunning),
                    ));
                }
                if self.is_dirty() && self.draft_policy.is_none() {
                    lines.push(Line::styled(
                        text::fit("as in force (the draft has errors)", inner_w).into_owned(),
                        muted,
                    ));
                }
                let today = view.now.to_offset(view.offset).date();
                for due in self.preview(view.now) {
                    let at = crate::schedule::offset_of(due.at);
                    let local = at.to_offset(view.offset);
                    let day = if local.date() == today {
                        "   ".to_string()
                    } else {
                        local.weekday().to_string()[..3].to_string()
                    };
                    let left = text::between(view.now, at);
                    let rel = if left.is_zero() {
                        "now".to_string()
                    } else {
                        format!("in {}", text::countdown(left))
                    };
                    let mut rule = due.rule.label().to_string();
                    if !matches!(
                        due.rule,
                        crate::schedule::Rule::Business
                            | crate::schedule::Rule::WindowOpen
                            | crate::schedule::Rule::OffHours
                    ) {
                        rule.push_str(if due.business {
                            " · business"
                        } else {
                            " · off-hours"
                        });
                    }
                    let head = format!("{day} {} {rel:<9} ", text::clock(at, view.offset));
                    let room = inner_w.saturating_sub(head.chars().count());
                    lines.push(Line::from(vec![
                        Span::styled(head, t.style(Role::Text)),
                        Span::styled(
                            text::fit(&rule, room).into_owned(),
                            if due.business {
                                t.style(Role::Title)
                            } else {
                                muted
                            },
                        ),
                    ]));
                }
            }
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(panel(title, t))
                .wrap(Wrap { trim: false }),
            area,
        );
    }

    fn render_runs(&self, frame: &mut Frame, area: Rect, view: &View) {
        let t = view.theme;
        let muted = t.style(Role::Muted);
        let inner_w = usize::from(area.width.saturating_sub(2));
        let today = view.now.to_offset(view.offset).date();
        let mut lines: Vec<Line> = Vec::new();
        if self.history.is_empty() {
            lines.push(Line::styled("No runs yet.", muted));
        }
        let rows = usize::from(area.height.saturating_sub(2));
        let shown: Vec<&RunSummary> = self.history.iter().take(rows).collect();
        let when = |r: &RunSummary| {
            let local = r.started_at.to_offset(view.offset);
            if local.date() == today {
                text::clock(r.started_at, view.offset)
            } else {
                format!(
                    "{} {}",
                    &local.weekday().to_string()[..3],
                    text::clock(r.started_at, view.offset)
                )
            }
        };
        let id_w = shown
            .iter()
            .map(|r| r.id.to_string().len())
            .max()
            .unwrap_or(1);
        let when_w = shown.iter().map(|r| when(r).len()).max().unwrap_or(5);
        for r in shown {
            let trigger = match r.trigger {
                Trigger::Scheduled => "auto",
                Trigger::Manual | Trigger::Cli => "manual",
            };
            let (word, style) = result(r, t);
            let head = format!("#{:<id_w$} {:>when_w$} {trigger:<6} ", r.id, when(r));
            let room = inner_w.saturating_sub(head.chars().count());
            lines.push(Line::from(vec![
                Span::styled(head, t.style(Role::Text)),
                Span::styled(text::fit(word, room).into_owned(), style),
            ]));
        }
        frame.render_widget(Paragraph::new(lines).block(panel("Last runs", t)), area);
    }
}
