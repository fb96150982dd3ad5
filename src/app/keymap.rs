//! Keys as data: one typed map from key chords to [`Action`]s, defaults in code, user
//! overrides from the `[keys]` table of the config. A bad override stops the program with
//! a message naming the action and the key; the help overlay and the footer read the
//! same map, so what they show is what the keys do.

use std::collections::BTreeMap;
use std::fmt;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::{Action, Group};
use crate::config::KeyBinding;

/// One key with its modifiers, normalised so that `R` and `shift-r` are the same chord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl KeyChord {
    pub fn new(code: KeyCode, mods: KeyModifiers) -> KeyChord {
        let mut mods = mods & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match code {
            // The character already says whether shift was held.
            KeyCode::Char(c) => {
                mods.remove(KeyModifiers::SHIFT);
                if mods.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            KeyCode::Tab if mods.contains(KeyModifiers::SHIFT) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        KeyChord { code, mods }
    }

    pub fn plain(code: KeyCode) -> KeyChord {
        KeyChord::new(code, KeyModifiers::NONE)
    }

    pub fn from_event(ev: &KeyEvent) -> KeyChord {
        KeyChord::new(ev.code, ev.modifiers)
    }

    /// Parses `q`, `R`, `?`, `ctrl-c`, `alt-x`, `shift-tab`, `enter`, `f1`, `space`...
    pub fn parse(text: &str) -> Result<KeyChord, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty key".into());
        }
        // A lone `-` or `+` is the key itself, not a separator.
        let (prefix, last) = if t.len() > 1 && (t.ends_with("--") || t.ends_with("+-")) {
            (&t[..t.len() - 2], "-")
        } else if t.len() > 1 && (t.ends_with("-+") || t.ends_with("++")) {
            (&t[..t.len() - 2], "+")
        } else {
            match t.rfind(['-', '+']) {
                Some(i) if i > 0 => (&t[..i], &t[i + 1..]),
                _ => ("", t),
            }
        };
        let mut mods = KeyModifiers::NONE;
        for m in prefix.split(['-', '+']).filter(|m| !m.is_empty()) {
            mods |= match m.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => KeyModifiers::CONTROL,
                "alt" | "meta" => KeyModifiers::ALT,
                "shift" => KeyModifiers::SHIFT,
                other => return Err(format!("unknown modifier `{other}`")),
            };
        }
        let mut chars = last.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => match last.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                "space" => KeyCode::Char(' '),
                "minus" => KeyCode::Char('-'),
                "plus" => KeyCode::Char('+'),
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n @ 1..=12) => KeyCode::F(n),
                    _ => return Err(format!("unknown key `{last}`")),
                },
                _ => return Err(format!("unknown key `{last}`")),
            },
        };
        Ok(KeyChord::new(code, mods))
    }
}

impl fmt::Display for KeyChord {
    /// Short form for the footer and help: `q`, `^C`, `⇧Tab`, `↑`, `Enter`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("^")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("M-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("S-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) if self.mods.contains(KeyModifiers::CONTROL) => {
                write!(f, "{}", c.to_ascii_uppercase())
            }
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("S-Tab"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::Insert => f.write_str("Ins"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A bad `[keys]` entry. Every message names the action and, when there is one, the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyMapError {
    #[error("[keys] `{action}`: no such action (known: {known})")]
    UnknownAction { action: String, known: String },
    #[error("[keys] {action} = \"{key}\": {reason}")]
    BadKey {
        action: String,
        key: String,
        reason: String,
    },
    #[error("[keys] {action}: bind at least one key")]
    Unbound { action: String },
    #[error("[keys] key `{key}` is bound to both `{first}` and `{second}`")]
    Conflict {
        key: String,
        first: String,
        second: String,
    },
}

impl KeyMapError {
    /// The `[keys]` entry the error is about.
    pub fn entry(&self) -> &str {
        match self {
            KeyMapError::UnknownAction { action, .. }
            | KeyMapError::BadKey { action, .. }
            | KeyMapError::Unbound { action } => action,
            KeyMapError::Conflict { second, .. } => second,
        }
    }
}

/// The key map: every action's keys, and the reverse lookup.
#[derive(Debug, Clone)]
pub struct KeyMap {
    by_action: BTreeMap<Action, Vec<KeyChord>>,
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap::defaults()
    }
}

impl KeyMap {
    /// Vim keys and arrows both; nothing needs a mouse.
    pub fn defaults() -> KeyMap {
        use KeyCode::*;
        let c = |ch| KeyChord::plain(Char(ch));
        let ctrl = |ch| KeyChord::new(Char(ch), KeyModifiers::CONTROL);
        let p = KeyChord::plain;
        let by_action = BTreeMap::from([
            (Action::Quit, vec![c('q'), ctrl('c')]),
            // Raw mode turns Ctrl-Z into a key; it does what it does in a shell.
            (Action::Suspend, vec![ctrl('z')]),
            (Action::Help, vec![c('?'), p(F(1))]),
            (Action::NextTab, vec![p(Tab)]),
            (Action::PrevTab, vec![p(BackTab)]),
            (Action::TabSnapshot, vec![c('1')]),
            (Action::TabSchedule, vec![c('2')]),
            (Action::TabReports, vec![c('3')]),
            (Action::TabCache, vec![c('4')]),
            (Action::Up, vec![p(Up), c('k')]),
            (Action::Down, vec![p(Down), c('j')]),
            (Action::Left, vec![p(Left), c('h')]),
            (Action::Right, vec![p(Right), c('l')]),
            (Action::Open, vec![p(Enter)]),
            (Action::Back, vec![p(Esc)]),
            (Action::Confirm, vec![c('y')]),
            (Action::Decline, vec![c('n')]),
            (Action::Trigger, vec![c('r')]),
            (Action::Cancel, vec![c('c')]),
            (Action::Refresh, vec![c('u')]),
            (Action::PageUp, vec![p(PageUp)]),
            (Action::PageDown, vec![p(PageDown)]),
            (Action::Log, vec![c('L')]),
            (Action::Filter, vec![c('/')]),
            // As in k9s and lazygit; `o` also opens a run in the Reports tab.
            (Action::Browse, vec![c('o')]),
            (Action::OpenReport, vec![c('o')]),
            // The Schedule tab's form; `p` pauses there and on the Snapshot tab.
            (Action::Toggle, vec![c(' ')]),
            (Action::Save, vec![ctrl('s')]),
            (Action::Pause, vec![c('p')]),
            (Action::OpenCompare, vec![c('b')]),
            (Action::NextView, vec![c(']')]),
            (Action::PrevView, vec![c('[')]),
            // As in htop: `>` picks the sort column, `I` inverts the order.
            (Action::SortColumn, vec![c('>')]),
            (Action::SortReverse, vec![c('I')]),
            // As in varnishstat's `z` (hide zeros); `d` deletes, `p` purges.
            (Action::ClearCache, vec![c('d')]),
            (Action::PurgeCache, vec![c('p')]),
            (Action::CompactStore, vec![c('C')]),
            (Action::HideZeros, vec![c('z')]),
        ]);
        KeyMap { by_action }
    }

    /// The defaults with the `[keys]` overrides applied: an override replaces all of
    /// that action's default keys.
    pub fn with_overrides(overrides: &BTreeMap<String, KeyBinding>) -> Result<KeyMap, KeyMapError> {
        let mut map = KeyMap::defaults();
        for (name, binding) in overrides {
            let action = Action::from_name(name).ok_or_else(|| KeyMapError::UnknownAction {
                action: name.clone(),
                known: Action::ALL.map(|a| a.name()).join(", "),
            })?;
            let texts: Vec<&String> = match binding {
                KeyBinding::One(k) => vec![k],
                KeyBinding::Many(ks) => ks.iter().collect(),
            };
            if texts.is_empty() {
                return Err(KeyMapError::Unbound {
                    action: name.clone(),
                });
            }
            let mut chords = Vec::new();
            for text in texts {
                let chord = KeyChord::parse(text).map_err(|reason| KeyMapError::BadKey {
                    action: name.clone(),
                    key: text.clone(),
                    reason,
                })?;
                if !chords.contains(&chord) {
                    chords.push(chord);
                }
            }
            map.by_action.insert(action, chords);
        }
        map.check_conflicts()?;
        Ok(map)
    }

    /// Two actions may share a key only when they belong to different tabs (`o` opens
    /// a run in Reports and a link in Snapshot); a global or navigation key is one
    /// action everywhere.
    fn check_conflicts(&self) -> Result<(), KeyMapError> {
        let mut seen: Vec<(KeyChord, Action)> = Vec::new();
        let shared = |a: Action, b: Action| {
            let tab_only = |g: Group| !matches!(g, Group::Global | Group::Navigation);
            let groups = |x: Action| std::iter::once(x.group()).chain(x.also_in().iter().copied());
            tab_only(a.group()) && tab_only(b.group()) && !groups(a).any(|g| b.applies_in(g))
        };
        for (&action, chords) in &self.by_action {
            for chord in chords {
                if let Some((_, first)) = seen
                    .iter()
                    .find(|(c, other)| c == chord && !shared(*other, action))
                {
                    return Err(KeyMapError::Conflict {
                        key: chord.to_string(),
                        first: first.name().into(),
                        second: action.name().into(),
                    });
                }
                seen.push((*chord, action));
            }
        }
        Ok(())
    }

    /// The action a key press asks for (releases and repeats of other kinds are ignored).
    pub fn action_for(&self, ev: &KeyEvent) -> Option<Action> {
        self.action_in(ev, None)
    }

    /// [`KeyMap::action_for`] in the tab of `group`: a key two tabs share is that tab's.
    pub fn action_in(&self, ev: &KeyEvent, group: Option<Group>) -> Option<Action> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        let chord = KeyChord::from_event(ev);
        let mut bound = self
            .by_action
            .iter()
            .filter(|(_, chords)| chords.contains(&chord))
            .map(|(a, _)| *a);
        let first = bound.next()?;
        Some(
            std::iter::once(first)
                .chain(bound)
                .find(|a| group.is_some_and(|g| a.applies_in(g)))
                .unwrap_or(first),
        )
    }

    pub fn keys(&self, action: Action) -> &[KeyChord] {
        self.by_action
            .get(&action)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// All keys of an action as shown in help: `q, ^C`.
    pub fn label(&self, action: Action) -> String {
        self.keys(action)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first key of an action, for the footer.
    pub fn first(&self, action: Action) -> String {
        self.keys(action)
            .first()
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn defaults_have_no_conflicts_and_cover_every_action() {
        let map = KeyMap::defaults();
        map.check_conflicts().unwrap();
        for a in Action::ALL {
            assert!(!map.keys(a).is_empty(), "{a:?} has no key");
        }
    }

    #[test]
    fn vim_keys_and_arrows_both_move() {
        let map = KeyMap::defaults();
        let k = press(KeyCode::Char('k'), KeyModifiers::NONE);
        let up = press(KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(map.action_for(&k), Some(Action::Up));
        assert_eq!(map.action_for(&up), Some(Action::Up));
        let ctrl_c = press(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map.action_for(&ctrl_c), Some(Action::Quit));
        assert_eq!(
            map.action_for(&press(KeyCode::Char('c'), KeyModifiers::NONE)),
            Some(Action::Cancel)
        );
        // Terminals send shift-tab as BackTab with SHIFT set.
        let backtab = press(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(map.action_for(&backtab), Some(Action::PrevTab));
    }

    #[test]
    fn parses_the_documented_forms() {
        let p = |s| KeyChord::parse(s).unwrap();
        assert_eq!(
            p("ctrl-c"),
            KeyChord::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
        );
        assert_eq!(p("Ctrl+C"), p("ctrl-c"));
        assert_eq!(p("shift-tab"), KeyChord::plain(KeyCode::BackTab));
        assert_eq!(p("R"), KeyChord::plain(KeyCode::Char('R')));
        assert_eq!(p("shift-R"), p("R"));
        assert_eq!(p("-"), KeyChord::plain(KeyCode::Char('-')));
        assert_eq!(
            p("ctrl--"),
            KeyChord::new(KeyCode::Char('-'), KeyModifiers::CONTROL)
        );
        assert_eq!(p("f5"), KeyChord::plain(KeyCode::F(5)));
        assert_eq!(p("space"), KeyChord::plain(KeyCode::Char(' ')));
        assert!(KeyChord::parse("f13").is_err());
        assert!(KeyChord::parse("hyper-x").is_err());
        assert!(KeyChord::parse("").is_err());
    }

    #[test]
    fn override_replaces_defaults() {
        let o = BTreeMap::from([(
            "trigger".to_string(),
            KeyBinding::Many(vec!["s".into(), "f5".into()]),
        )]);
        let map = KeyMap::with_overrides(&o).unwrap();
        let s = press(KeyCode::Char('s'), KeyModifiers::NONE);
        assert_eq!(map.action_for(&s), Some(Action::Trigger));
        assert_eq!(
            map.action_for(&press(KeyCode::Char('r'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(map.label(Action::Trigger), "s, F5");
    }

    #[test]
    fn bad_overrides_fail_loudly_naming_action_and_key() {
        let one = |a: &str, k: &str| {
            let o = BTreeMap::from([(a.to_string(), KeyBinding::One(k.into()))]);
            KeyMap::with_overrides(&o).unwrap_err().to_string()
        };
        let e = one("trigerr", "r");
        assert!(e.contains("trigerr") && e.contains("trigger"), "{e}");
        let e = one("trigger", "ctl-x");
        assert!(e.contains("trigger") && e.contains("ctl-x"), "{e}");
        let e = one("trigger", "q");
        assert!(
            e.contains("`q`") && e.contains("quit") && e.contains("trigger"),
            "{e}"
        );
        let o = BTreeMap::from([("help".to_string(), KeyBinding::Many(vec![]))]);
        let e = KeyMap::with_overrides(&o).unwrap_err().to_string();
        assert!(e.contains("help"), "{e}");
    }

    #[test]
    fn p_pauses_on_the_schedule_and_snapshot_tabs_and_purges_on_the_cache_tab() {
        let map = KeyMap::defaults();
        let p = press(KeyCode::Char('p'), KeyModifiers::NONE);
        assert_eq!(
            map.action_in(&p, Some(Group::Schedule)),
            Some(Action::Pause)
        );
        assert_eq!(
            map.action_in(&p, Some(Group::Snapshot)),
            Some(Action::Pause)
        );
        assert_eq!(
            map.action_in(&p, Some(Group::Cache)),
            Some(Action::PurgeCache)
        );
        let ctrl_s = press(KeyCode::Char('s'), KeyModifiers::CONTROL);
        assert_eq!(map.action_for(&ctrl_s), Some(Action::Save));
        // Pause is a Snapshot tab key too: `r` there cannot also be pause.
        let o = BTreeMap::from([("pause".to_string(), KeyBinding::One("r".into()))]);
        assert!(KeyMap::with_overrides(&o).is_err());
    }

    #[test]
    fn release_events_are_ignored() {
        let map = KeyMap::defaults();
        let mut ev = press(KeyCode::Char('q'), KeyModifiers::NONE);
        ev.kind = KeyEventKind::Release;
        assert_eq!(map.action_for(&ev), None);
    }
}
