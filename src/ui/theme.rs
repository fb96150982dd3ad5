//! Themes: TOML files of styles named by meaning (`severity.critical`, `gauge.running`).
//!
//! The files under `themes/` are built into the binary; a file of the same name in
//! `$XDG_CONFIG_HOME/snaptop/themes/` wins, and `--theme` also takes a path. A theme
//! file only needs the roles it changes: the rest come from `default`. Built-in themes
//! use the 16 named ANSI colours only (and `reset`, which keeps the terminal's own
//! background). With `NO_COLOR` set, colours are dropped and meaning is carried by
//! modifiers (bold, reversed, underlined) and by the text itself.

use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};

use crate::engine::events::{Level, StageState};

macro_rules! roles {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A styled element, named for what it means rather than how it looks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Role { $($variant),* }

        impl Role {
            pub const ALL: &'static [Role] = &[$(Role::$variant),*];
            pub fn name(self) -> &'static str {
                match self { $(Role::$variant => $name),* }
            }
        }
    };
}

roles! {
    Text => "text.normal",
    Muted => "text.muted",
    Title => "text.title",
    Header => "text.header",
    Notice => "text.notice",
    Border => "border.normal",
    BorderFocused => "border.focused",
    TabActive => "tab.active",
    TabInactive => "tab.inactive",
    BadgeDemo => "badge.demo",
    Key => "key.hint",
    Selection => "selection.cell",
    StatusOk => "status.ok",
    StatusPartial => "status.partial",
    StatusFailed => "status.failed",
    StatusRunning => "status.running",
    GaugeRunning => "gauge.running",
    GaugeDone => "gauge.done",
    GaugeFailed => "gauge.failed",
    GaugePending => "gauge.pending",
    GaugeSkipped => "gauge.skipped",
    SeverityInfo => "severity.info",
    SeverityWarn => "severity.warn",
    SeverityError => "severity.error",
    SeverityCritical => "severity.critical",
    BuildSuccess => "build.success",
    BuildFailure => "build.failure",
    BuildUnknown => "build.unknown",
    ChartP50 => "chart.p50",
    ChartP95 => "chart.p95",
    ChartP99 => "chart.p99",
    ChangeWorse => "change.worse",
    ChangeBetter => "change.better",
    MatrixDrift => "matrix.drift",
    MatrixStale => "matrix.stale",
}

/// Built-in theme files, embedded so the binary works anywhere.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThemeError {
    #[error("{file}:{line}: {message}")]
    At {
        file: String,
        line: usize,
        message: String,
    },
    #[error("theme `{name}` not found (built in: {built_in}; user themes: {dir})")]
    NotFound {
        name: String,
        built_in: String,
        dir: String,
    },
    #[error("{file}: cannot read theme: {message}")]
    Read { file: String, message: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    styles: Vec<Style>,
    pub no_color: bool,
}

impl Theme {
    /// The built-in default (cannot fail: it is checked by a test).
    pub fn default_theme() -> Theme {
        Theme::parse("default", BUILT_IN[0].1, "themes/default.toml", None)
            .expect("built-in default theme is valid")
    }

    /// Finds a theme by name or path: a path (contains `/` or ends in `.toml`), a file in
    /// `user_dir`, or a built-in one. `no_color` drops every colour.
    pub fn load(name: &str, user_dir: Option<&Path>, no_color: bool) -> Result<Theme, ThemeError> {
        let base = Theme::default_theme();
        let from_file = |path: PathBuf| -> Result<Theme, ThemeError> {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| ThemeError::Read {
                file: file.clone(),
                message: e.to_string(),
            })?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.to_string());
            Theme::parse(&stem, &text, &file, Some(&base))
        };
        let theme = if name.contains('/') || name.ends_with(".toml") {
            from_file(PathBuf::from(name))?
        } else if let Some(path) = user_dir
            .map(|d| d.join(format!("{name}.toml")))
            .filter(|p| p.is_file())
        {
            from_file(path)?
        } else if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) {
            Theme::parse(name, text, &format!("themes/{name}.toml"), Some(&base))?
        } else {
            return Err(ThemeError::NotFound {
                name: name.into(),
                built_in: BUILT_IN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
                dir: user_dir
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "none".into()),
            });
        };
        Ok(if no_color {
            theme.without_color()
        } else {
            theme
        })
    }

    /// Parses theme text; `file` names it in errors; roles missing from the text come
    /// from `base` (every role is required when there is no base).
    pub fn parse(
        name: &str,
        text: &str,
        file: &str,
        base: Option<&Theme>,
    ) -> Result<Theme, ThemeError> {
        let at = |line: usize, message: String| ThemeError::At {
            file: file.to_string(),
            line,
            message,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            at(
                e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
                e.message().trim().to_string(),
            )
        })?;
        let mut styles: Vec<Option<Style>> = match base {
            Some(b) => b.styles.iter().copied().map(Some).collect(),
            None => vec![None; Role::ALL.len()],
        };
        for (section, value) in &table {
            let toml::Value::Table(entries) = value else {
                return Err(at(
                    find_line(text, None, section),
                    format!("`{section}` should be a table of styles like [{section}]"),
                ));
            };
            for (key, spec) in entries {
                let full = format!("{section}.{key}");
                let line = find_line(text, Some(section), key);
                let Some(idx) = Role::ALL.iter().position(|r| r.name() == full) else {
                    return Err(at(
                        line,
                        format!("unknown style `{full}` (known: {})", known_roles()),
                    ));
                };
                styles[idx] =
                    Some(parse_style(spec).map_err(|m| at(line, format!("`{full}`: {m}")))?);
            }
        }
        let mut out = Vec::with_capacity(styles.len());
        for (i, s) in styles.into_iter().enumerate() {
            match s {
                Some(s) => out.push(s),
                None => {
                    return Err(at(1, format!("missing style `{}`", Role::ALL[i].name())));
                }
            }
        }
        Ok(Theme {
            name: name.into(),
            styles: out,
            no_color: false,
        })
    }

    /// The same theme without any colour: what `NO_COLOR` asks for. Roles whose meaning
    /// was carried by colour get a modifier instead.
    pub fn without_color(&self) -> Theme {
        let styles = Role::ALL
            .iter()
            .zip(&self.styles)
            .map(|(role, s)| {
                let mut m = Style::new().add_modifier(s.add_modifier);
                let extra = match role {
                    Role::Selection | Role::TabActive | Role::BadgeDemo => {
                        Modifier::REVERSED | Modifier::BOLD
                    }
                    Role::StatusFailed
                    | Role::SeverityError
                    | Role::GaugeFailed
                    | Role::BuildFailure
                    | Role::ChangeWorse
                    | Role::Title
                    | Role::Key
                    | Role::Header => Modifier::BOLD,
                    Role::SeverityCritical | Role::MatrixDrift => {
                        Modifier::BOLD | Modifier::UNDERLINED
                    }
                    Role::MatrixStale => Modifier::DIM | Modifier::ITALIC,
                    Role::Muted | Role::GaugeSkipped | Role::GaugePending => Modifier::DIM,
                    _ => Modifier::empty(),
                };
                m = m.add_modifier(extra);
                m
            })
            .collect();
        Theme {
            name: self.name.clone(),
            styles,
            no_color: true,
        }
    }

    pub fn style(&self, role: Role) -> Style {
        let idx = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
        self.styles[idx]
    }

    pub fn severity(&self, level: Level) -> Style {
        self.style(match level {
            Level::Info => Role::SeverityInfo,
            Level::Warn => Role::SeverityWarn,
            Level::Error => Role::SeverityError,
        })
    }

    pub fn gauge(&self, state: StageState) -> Style {
        self.style(match state {
            StageState::Pending => Role::GaugePending,
            StageState::Running => Role::GaugeRunning,
            StageState::Done => Role::GaugeDone,
            StageState::Failed => Role::GaugeFailed,
            StageState::Skipped => Role::GaugeSkipped,
        })
    }

    /// TeamCity status (`SUCCESS`, `FAILURE`, anything else).
    pub fn build(&self, status: Option<&str>) -> Style {
        self.style(match status {
            Some(s) if s.eq_ignore_ascii_case("SUCCESS") => Role::BuildSuccess,
            Some(s) if s.eq_ignore_ascii_case("FAILURE") || s.eq_ignore_ascii_case("ERROR") => {
                Role::BuildFailure
            }
            _ => Role::BuildUnknown,
        })
    }

    /// Names of the built-in themes.
    pub fn built_in_names() -> Vec<&'static str> {
        BUILT_IN.iter().map(|(n, _)| *n).collect()
    }
}

fn known_roles() -> String {
    Role::ALL
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_style(spec: &toml::Value) -> Result<Style, String> {
    match spec {
        toml::Value::String(c) => Ok(Style::new().fg(parse_color(c)?)),
        toml::Value::Table(t) => {
            let mut style = Style::new();
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("fg", toml::Value::String(c)) => style = style.fg(parse_color(c)?),
                    ("bg", toml::Value::String(c)) => style = style.bg(parse_color(c)?),
                    (m, toml::Value::Boolean(on)) => {
                        let modifier = match m {
                            "bold" => Modifier::BOLD,
                            "dim" => Modifier::DIM,
                            "italic" => Modifier::ITALIC,
                            "underlined" => Modifier::UNDERLINED,
                            "reversed" => Modifier::REVERSED,
                            other => {
                                return Err(format!(
                                    "unknown attribute `{other}` (fg, bg, bold, dim, italic, underlined, reversed)"
                                ));
                            }
                        };
                        if *on {
                            style = style.add_modifier(modifier);
                        }
                    }
                    (other, _) => {
                        return Err(format!(
                            "`{other}` should be fg/bg = \"colour\" or a modifier = true/false"
                        ));
                    }
                }
            }
            Ok(style)
        }
        _ => Err("a style is a colour name or a table like { fg = \"red\", bold = true }".into()),
    }
}

fn parse_color(name: &str) -> Result<Color, String> {
    name.parse::<Color>().map_err(|_| {
        format!(
            "unknown colour `{name}` (a name like `red`/`lightblue`, `reset`, `#rrggbb` or 0-255)"
        )
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line where `key` is defined inside `[section]` (or as `section.key`), for
/// errors found after parsing, when the TOML parser no longer has spans.
fn find_line(text: &str, section: Option<&str>, key: &str) -> usize {
    let mut current: Option<String> = None;
    let starts_key = |line: &str, k: &str| {
        line.strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with('=') || rest.starts_with('.'))
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = Some(h.trim().to_string());
            if section.is_none() && h.trim() == key {
                return i + 1;
            }
            continue;
        }
        match section {
            Some(s) if current.as_deref() == Some(s) && starts_key(line, key) => return i + 1,
            Some(s) if current.is_none() && starts_key(line, &format!("{s}.{key}")) => {
                return i + 1;
            }
            None if current.is_none() && starts_key(line, key) => return i + 1,
            _ => {}
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIXTEEN: [Color; 17] = [
        Color::Reset,
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];

    #[test]
    fn built_in_themes_are_complete_and_sixteen_colour_safe() {
        for (name, text) in BUILT_IN {
            let t = Theme::parse(name, text, name, None).unwrap_or_else(|e| panic!("{e}"));
            for (role, s) in Role::ALL.iter().zip(&t.styles) {
                for c in [s.fg, s.bg].into_iter().flatten() {
                    assert!(SIXTEEN.contains(&c), "{name}: {} uses {c:?}", role.name());
                }
            }
        }
    }

    #[test]
    fn light_theme_has_no_foreground_that_vanishes_on_white() {
        let t = Theme::load("light", None, false).unwrap();
        for r in Role::ALL {
            let s = t.style(*r);
            // A light foreground is fine only on a background of its own.
            if s.bg.is_none() || s.bg == Some(Color::Reset) {
                assert!(
                    !matches!(
                        s.fg,
                        Some(Color::Gray | Color::White | Color::Yellow | Color::LightYellow)
                    ),
                    "{} is hard to read on white",
                    r.name()
                );
            }
        }
    }

    #[test]
    fn default_keeps_the_terminal_background() {
        let t = Theme::default_theme();
        for r in [Role::Text, Role::Muted, Role::Border, Role::Title] {
            assert!(
                matches!(t.style(r).bg, None | Some(Color::Reset)),
                "{}",
                r.name()
            );
        }
    }

    #[test]
    fn bad_colour_names_file_and_line() {
        let text = "[severity]\ninfo = \"blue\"\ncritical = { fg = \"reddish\" }\n";
        let err = Theme::parse("x", text, "x.toml", Some(&Theme::default_theme())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("x.toml:3:"), "{msg}");
        assert!(
            msg.contains("severity.critical") && msg.contains("reddish"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_role_and_syntax_errors_name_the_line() {
        let base = Theme::default_theme();
        let msg = Theme::parse(
            "x",
            "[gauge]\nrunning = \"green\"\nrunnin = \"red\"\n",
            "x.toml",
            Some(&base),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with("x.toml:3:") && msg.contains("gauge.runnin"),
            "{msg}"
        );
        let msg = Theme::parse("x", "[gauge]\nrunning = \n", "x.toml", Some(&base))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("x.toml:2:"), "{msg}");
        let msg = Theme::parse(
            "x",
            "[gauge]\nrunning = { fg = \"red\", blink = true }\n",
            "x.toml",
            Some(&base),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with("x.toml:2:") && msg.contains("blink"),
            "{msg}"
        );
    }

    #[test]
    fn partial_user_theme_inherits_from_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "[severity]\ncritical = \"magenta\"\n",
        )
        .unwrap();
        let t = Theme::load("mine", Some(dir.path()), false).unwrap();
        assert_eq!(t.style(Role::SeverityCritical).fg, Some(Color::Magenta));
        assert_eq!(
            t.style(Role::Text),
            Theme::default_theme().style(Role::Text)
        );
        let e = Theme::load("nope", Some(dir.path()), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("high-contrast"), "{e}");
    }

    #[test]
    fn no_color_drops_colour_and_keeps_meaning() {
        let t = Theme::load("high-contrast", None, true).unwrap();
        for r in Role::ALL {
            let s = t.style(*r);
            assert_eq!((s.fg, s.bg), (None, None), "{}", r.name());
        }
        assert!(
            t.style(Role::Selection)
                .add_modifier
                .contains(Modifier::REVERSED)
        );
        assert!(
            t.style(Role::SeverityCritical)
                .add_modifier
                .contains(Modifier::BOLD)
        );
    }
}
