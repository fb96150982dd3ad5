//! The environment × component matrix at any size: what a cell shows is decided by its
//! width (the version first and whole, then build, age, tickets, health), digests are
//! shortened the same way everywhere, rows and columns scroll with a visible position
//! while the component column and the environment header stay, a version that differs
//! from the environment before it is marked (drift), and a value carried from an earlier
//! run is marked stale with its age.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::UnicodeWidthStr;

use super::super::View;
use super::super::text::{self, fit};
use super::super::theme::{Role, Theme};
use super::super::widgets::panel;
use crate::engine::model::{Cell, Part, Snapshot};

/// Hex digits of a digest shown: enough to tell images apart, short enough for a cell.
pub const DIGEST_HEX: usize = 10;
/// The narrowest an environment column gets before columns scroll sideways.
const MIN_CELL_WIDTH: usize = 12;
/// The component column: at least the header's width, at most this.
const MAX_COMPONENT_WIDTH: usize = 20;

/// How a deployed version reads everywhere: a tag as written, a digest pin that was
/// tied to a tag as that tag with `@`, a digest nothing ties to a tag as `@` and its first
/// hex digits. `None`: nothing deployed (or unknown).
pub fn version_text(cell: &Cell) -> Option<String> {
    if let Some(r) = &cell.resolved {
        return Some(format!("{}@", r.tag));
    }
    let tag = cell.tag.as_deref()?;
    Some(match tag.split_once(':') {
        Some((algo, hex)) if algo.starts_with("sha") && hex.len() > DIGEST_HEX && is_hex(hex) => {
            format!("@{}", &hex[..DIGEST_HEX])
        }
        _ => tag.to_string(),
    })
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The version a cell runs, for comparing environments (a resolved pin counts as its tag).
fn compared_version(cell: Option<&Cell>) -> Option<String> {
    let cell = cell?;
    match &cell.resolved {
        Some(r) => Some(r.tag.clone()),
        None => cell.tag.clone(),
    }
}

/// Whether `env_index`'s version differs from the environment before it in promotion
/// order (both known): "not promoted yet", or "ahead".
pub fn drifts(s: &Snapshot, component: &str, env_index: usize) -> bool {
    let Some(prev_env) = env_index.checked_sub(1).and_then(|i| s.environments.get(i)) else {
        return false;
    };
    let Some(env) = s.environments.get(env_index) else {
        return false;
    };
    match (
        compared_version(s.cell(prev_env, component)),
        compared_version(s.cell(env, component)),
    ) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// One cell's pieces, most important first; [`fit_pieces`] drops from the end.
#[derive(Clone)]
struct Pieces {
    version: String,
    /// Carried from an earlier run: how old the data is (`~2h`).
    stale: Option<String>,
    build: (&'static str, Style),
    age: String,
    tickets: String,
    health: Option<String>,
}

fn pieces(cell: &Cell, health_q: Option<&str>, view: &View) -> Pieces {
    let t = view.theme;
    let version = version_text(cell).unwrap_or_else(|| {
        if cell.is_stale(Part::Deployment) || cell.unresolved.is_some() {
            "?".into()
        } else {
            "–".into()
        }
    });
    let stale = cell
        .stale
        .values()
        .map(|a| a.0)
        .min()
        .map(|at| format!("~{}", text::age_short(text::between(at, view.now))));
    let build = match &cell.build {
        None => ("·", t.build(None)),
        Some(b) => {
            let glyph = match (b.state.as_deref(), b.status.as_deref()) {
                (Some("running" | "queued"), _) => "…",
                (_, Some(s)) if s.eq_ignore_ascii_case("SUCCESS") => "✓",
                (_, Some(s))
                    if s.eq_ignore_ascii_case("FAILURE") || s.eq_ignore_ascii_case("ERROR") =>
                {
                    "✗"
                }
                _ => "?",
            };
            (glyph, t.build(b.status.as_deref()))
        }
    };
    let age = cell
        .deployed_at
        .map(|at| text::age_short(text::between(at, view.now)))
        .unwrap_or_else(|| "?".into());
    let tickets = match &cell.tickets {
        Some(list) => format!("{}T", list.len()),
        None => "?T".to_string(),
    };
    let health = health_q.map(|q| match cell.health.get(q).copied().flatten() {
        Some(v) => text::figure(v),
        None => "–".into(),
    });
    Pieces {
        version,
        stale,
        build,
        age,
        tickets,
        health,
    }
}

/// Which pieces a column shows, and how wide each is: the same for every cell of the
/// column, so that builds, ages and ticket counts line up and no cell shows a piece its
/// neighbour drops. The version always shows (cut with `…` only when it alone is wider
/// than the cell).
#[derive(Debug, PartialEq, Eq, Default)]
struct Column {
    version: usize,
    /// Widths of the pieces shown; 0: dropped.
    stale: usize,
    build: usize,
    age: usize,
    tickets: usize,
    health: usize,
}

fn column(cells: &[Pieces], width: usize) -> Column {
    let w = |s: &str| UnicodeWidthStr::width(s);
    let max = |f: &dyn Fn(&Pieces) -> usize| cells.iter().map(f).max().unwrap_or(0);
    let version = max(&|p| w(&p.version)).min(width);
    let mut left = width.saturating_sub(version);
    let mut take = |need: usize| {
        if need > 0 && need < left {
            left -= need + 1;
            need
        } else {
            0
        }
    };
    // In order of what a glance needs: is it stale, did it build, how long ago, what
    // shipped, how healthy.
    let stale = take(max(&|p| p.stale.as_deref().map_or(0, w)));
    let build = take(1);
    let age = take(max(&|p| w(&p.age)));
    let tickets = take(max(&|p| w(&p.tickets)));
    let health = take(max(&|p| p.health.as_deref().map_or(0, w)));
    Column {
        version,
        stale,
        build,
        age,
        tickets,
        health,
    }
}

/// `s` padded with spaces to `width` columns (left-aligned, or right-aligned).
fn pad(s: &str, width: usize, right: bool) -> String {
    let gap = " ".repeat(width.saturating_sub(UnicodeWidthStr::width(s)));
    if right {
        format!("{gap}{s}")
    } else {
        format!("{s}{gap}")
    }
}

/// The spans of one cell in its column.
fn cell_spans(
    cell: Option<&Cell>,
    p: Option<&Pieces>,
    col: &Column,
    drift: bool,
    view: &View,
) -> Vec<Span<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let (Some(cell), Some(p)) = (cell, p) else {
        return vec![Span::styled("–", muted)];
    };
    // Nothing deployed: a dash, not a row of question marks.
    if cell.tag.is_none()
        && cell.stale.is_empty()
        && cell.unresolved.as_deref() == Some("not deployed")
    {
        return vec![Span::styled("–", muted)];
    }
    let stale_style = t.style(Role::MatrixStale);
    let part_style = |part: Part, normal: Style| {
        if cell.is_stale(part) {
            stale_style
        } else {
            normal
        }
    };
    let version_style = if cell.is_stale(Part::Deployment) {
        stale_style
    } else if drift {
        t.style(Role::MatrixDrift)
    } else {
        Style::new()
    };
    let mut spans = vec![Span::styled(
        pad(&fit(&p.version, col.version.max(1)), col.version, false),
        version_style,
    )];
    if col.stale > 0 {
        spans.push(Span::styled(
            format!(
                " {}",
                pad(p.stale.as_deref().unwrap_or(""), col.stale, false)
            ),
            stale_style,
        ));
    }
    if col.build > 0 {
        spans.push(Span::styled(
            format!(" {}", p.build.0),
            part_style(Part::Build, p.build.1),
        ));
    }
    if col.age > 0 {
        spans.push(Span::styled(
            format!(" {}", pad(&p.age, col.age, true)),
            part_style(Part::Deployment, muted),
        ));
    }
    if col.tickets > 0 {
        spans.push(Span::styled(
            format!(" {}", pad(&p.tickets, col.tickets, true)),
            part_style(Part::Tickets, muted),
        ));
    }
    if col.health > 0 {
        spans.push(Span::styled(
            format!(
                " {}",
                pad(p.health.as_deref().unwrap_or(""), col.health, true)
            ),
            part_style(Part::Health, Style::new()),
        ));
    }
    spans
}

/// Rows and columns of the matrix in view: scrolled so the cursor is always visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// First component row shown, and how many fit.
    pub top: usize,
    pub rows: usize,
    /// First environment column shown, and how many fit.
    pub left: usize,
    pub cols: usize,
    pub cell_width: usize,
    pub component_width: usize,
}

/// Lays out `n_rows` × `n_cols` cells in `width` × `height` (header included), keeping
/// the cursor `(row, col)` in view and moving as little as possible from `previous`.
pub fn window(
    width: usize,
    height: usize,
    n_rows: usize,
    n_cols: usize,
    components: &[&str],
    cursor: (usize, usize),
    previous: Window,
) -> Window {
    let component_width = components
        .iter()
        .map(|c| UnicodeWidthStr::width(*c))
        .max()
        .unwrap_or(9)
        .clamp(9, MAX_COMPONENT_WIDTH)
        .min(width.saturating_sub(MIN_CELL_WIDTH + 1).max(4));
    let room = width.saturating_sub(component_width + 1);
    let cols = (room / (MIN_CELL_WIDTH + 1)).clamp(1, n_cols.max(1));
    let cell_width = (room / cols).saturating_sub(1).max(1);
    let rows = height.saturating_sub(1).max(1);
    let follow = |first: usize, shown: usize, at: usize, total: usize| {
        let first = if at < first {
            at
        } else if at >= first + shown {
            at + 1 - shown
        } else {
            first
        };
        first.min(total.saturating_sub(shown))
    };
    Window {
        top: follow(previous.top, rows, cursor.0, n_rows),
        rows,
        left: follow(previous.left, cols, cursor.1, n_cols),
        cols,
        cell_width,
        component_width,
    }
}

/// What the matrix draws: the snapshot, which components pass the filter, the cursor.
pub struct MatrixView<'a> {
    pub snapshot: Option<&'a Snapshot>,
    /// Indices into `snapshot.components` of the rows shown (the filter's result).
    pub rows: &'a [usize],
    pub filter: Option<&'a str>,
    /// Typing the filter: the title says so.
    pub filtering: bool,
    pub cursor: (usize, usize),
    pub window: Window,
    /// A run is in progress: the matrix is its picture so far.
    pub running: bool,
    pub focused: bool,
}

pub fn render(frame: &mut Frame, area: Rect, m: &MatrixView, view: &View) {
    let t = view.theme;
    let Some(s) = m.snapshot else {
        let block = panel("Deployments", t);
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!(
                    "No snapshot yet — press {} to take one.",
                    view.keys.first(crate::app::action::Action::Trigger)
                ),
                t.style(Role::Muted),
            ))
            .block(block),
            area,
        );
        return;
    };
    let w = m.window;
    let total = s.components.len();
    let shown_rows: Vec<usize> = m.rows.iter().skip(w.top).take(w.rows).copied().collect();
    let health_q = s
        .health_queries
        .first()
        .map(String::as_str)
        .filter(|_| w.cell_width >= 26);
    let mut title = String::from("Deployments");
    if m.running {
        title.push_str(" · updating");
    } else if s.cancelled {
        title.push_str(" · cancelled, partial");
    } else if s.partial {
        title.push_str(" · partial");
    }
    if m.filtering || m.filter.is_some() {
        title.push_str(&format!(
            " · /{}{} {}/{total}",
            m.filter.unwrap_or_default(),
            if m.filtering { "▏" } else { "" },
            m.rows.len()
        ));
    }
    if m.rows.len() > w.rows {
        let last = (w.top + shown_rows.len()).min(m.rows.len());
        title.push_str(&format!(
            " · {}–{last}/{}{}{}",
            w.top + 1,
            m.rows.len(),
            if w.top > 0 { " ↑" } else { "" },
            if last < m.rows.len() { " ↓" } else { "" }
        ));
    }
    let n_env = s.environments.len();
    if w.cols < n_env {
        title.push_str(&format!(
            " · envs {}–{}/{n_env}{}{}",
            w.left + 1,
            w.left + w.cols,
            if w.left > 0 { " ←" } else { "" },
            if w.left + w.cols < n_env { " →" } else { "" }
        ));
    }
    let block = panel(title, t).border_style(if m.focused {
        t.style(Role::BorderFocused)
    } else {
        t.style(Role::Border)
    });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let pad = |s: String, width: usize| {
        let shown = fit(&s, width).into_owned();
        let used = UnicodeWidthStr::width(shown.as_str());
        format!("{shown}{}", " ".repeat(width.saturating_sub(used)))
    };
    let envs = w.left..(w.left + w.cols).min(n_env);
    let mut header = vec![Span::styled(
        pad("component".into(), w.component_width),
        t.style(Role::Header),
    )];
    for e in envs.clone() {
        header.push(Span::raw(" "));
        header.push(Span::styled(
            pad(s.environments[e].clone(), w.cell_width),
            t.style(Role::Header),
        ));
    }
    let mut lines = vec![Line::from(header)];
    if m.rows.is_empty() {
        lines.push(Line::styled(
            format!("no component matches /{}", m.filter.unwrap_or_default()),
            t.style(Role::Muted),
        ));
    }
    // Each column's pieces are measured over the rows in view.
    let columns: Vec<(usize, Vec<Option<Pieces>>, Column)> = envs
        .clone()
        .map(|e| {
            let env = &s.environments[e];
            let ps: Vec<Option<Pieces>> = shown_rows
                .iter()
                .map(|&r| {
                    s.cell(env, &s.components[r])
                        .map(|c| pieces(c, health_q, view))
                })
                .collect();
            let present: Vec<Pieces> = ps.iter().flatten().cloned().collect();
            let col = column(&present, w.cell_width);
            (e, ps, col)
        })
        .collect();
    for (i, &r) in shown_rows.iter().enumerate() {
        let comp = &s.components[r];
        let row = w.top + i;
        let mut spans = vec![Span::styled(
            pad(comp.clone(), w.component_width),
            if row == m.cursor.0 {
                t.style(Role::Title)
            } else {
                Style::new()
            },
        )];
        for (e, ps, col) in &columns {
            let e = *e;
            spans.push(Span::raw(" "));
            let cell = s.cell(&s.environments[e], comp);
            let mut cs = cell_spans(cell, ps[i].as_ref(), col, drifts(s, comp, e), view);
            let used: usize = cs.iter().map(|s| s.width()).sum();
            cs.push(Span::raw(" ".repeat(w.cell_width.saturating_sub(used))));
            if m.focused && (row, e) == m.cursor {
                let sel = t.style(Role::Selection);
                for s in &mut cs {
                    s.style = s.style.patch(sel);
                }
            }
            spans.extend(cs);
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The legend under the matrix on tall panes: what the marks mean.
pub fn legend(t: &Theme) -> Line<'static> {
    let muted = t.style(Role::Muted);
    Line::from(vec![
        Span::styled("v1.2@", Style::new()),
        Span::styled(" digest of v1.2 · ", muted),
        Span::styled("@08080657c3", Style::new()),
        Span::styled(" digest · ", muted),
        Span::styled("v1.3", t.style(Role::MatrixDrift)),
        Span::styled(" differs from the environment before · ", muted),
        Span::styled("~2h", t.style(Role::MatrixStale)),
        Span::styled(" from an earlier run · ?T tickets unknown", muted),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Resolved;

    fn cell(tag: &str) -> Cell {
        Cell {
            tag: Some(tag.into()),
            ..Cell::default()
        }
    }

    #[test]
    fn versions_read_the_same_way_everywhere() {
        assert_eq!(version_text(&cell("v1.44.10")).as_deref(), Some("v1.44.10"));
        let digest = "sha256:0808065736a1b2c3d4e5f60718293a4b5c6d7e8f9012345678901234567890ab";
        assert_eq!(version_text(&cell(digest)).as_deref(), Some("@0808065736"));
        let mut pinned = cell(digest);
        pinned.resolved = Some(Resolved {
            tag: "v2.3.0".into(),
            via: "registry".into(),
        });
        assert_eq!(version_text(&pinned).as_deref(), Some("v2.3.0@"));
        assert_eq!(version_text(&Cell::default()), None);
        assert_eq!(
            version_text(&cell("sha-abc1234")).as_deref(),
            Some("sha-abc1234")
        );
    }

    fn pieces_of(version: &str) -> Pieces {
        Pieces {
            version: version.into(),
            stale: None,
            build: ("✓", Style::new()),
            age: "3d".into(),
            tickets: "12T".into(),
            health: Some("0.012".into()),
        }
    }

    #[test]
    fn a_column_keeps_the_version_whole_and_drops_the_rest_in_order_for_every_cell() {
        let cells = [pieces_of("v1.44.10"), pieces_of("v1.9.0")];
        // 8 for the widest version, then " ✓" " 3d" " 12T" " 0.012".
        let c = column(&cells, 8);
        assert_eq!(
            (c.version, c.build, c.age, c.tickets, c.health),
            (8, 0, 0, 0, 0)
        );
        let c = column(&cells, 13);
        assert_eq!((c.build, c.age, c.tickets), (1, 2, 0), "{c:?}");
        let c = column(&cells, 17);
        assert_eq!((c.build, c.age, c.tickets, c.health), (1, 2, 3, 0), "{c:?}");
        let mut stale = pieces_of("v1.2.0");
        stale.stale = Some("~2h".into());
        let c = column(&[stale, pieces_of("v1.2.0")], 12);
        assert!(c.stale == 3 && c.build == 1 && c.age == 0, "{c:?}");
        // A version wider than the cell is cut, never the cell's only content lost.
        assert_eq!(
            column(&[pieces_of("release-2026-11-20-build-77")], 10).version,
            10
        );
    }

    #[test]
    fn drift_compares_with_the_environment_before() {
        let mut s = crate::ui::sample::snapshot();
        let comp = s.components[0].clone();
        let envs = s.environments.clone();
        for (i, env) in envs.iter().enumerate() {
            let c = s.cells.get_mut(env).unwrap().get_mut(&comp).unwrap();
            c.resolved = None;
            c.tag = Some(if i == 2 { "v1.0.0" } else { "v1.1.0" }.into());
        }
        assert!(
            !drifts(&s, &comp, 0),
            "the first environment has nothing before it"
        );
        assert!(!drifts(&s, &comp, 1));
        assert!(drifts(&s, &comp, 2));
        // A pin of the same tag is the same version.
        let c = s.cells.get_mut(&envs[2]).unwrap().get_mut(&comp).unwrap();
        c.tag = Some("sha256:ab".into());
        c.resolved = Some(Resolved {
            tag: "v1.1.0".into(),
            via: "newTag".into(),
        });
        assert!(!drifts(&s, &comp, 2));
    }

    #[test]
    fn the_window_follows_the_cursor_and_never_runs_past_the_end() {
        let names: Vec<&str> = vec!["payments"; 15];
        let first = window(80, 13, 15, 4, &names, (0, 0), Window::default());
        assert_eq!((first.top, first.rows), (0, 12));
        assert_eq!(first.cols, 4, "{first:?}");
        assert!(first.cell_width >= MIN_CELL_WIDTH, "{first:?}");
        let down = window(80, 13, 15, 4, &names, (14, 0), first);
        assert_eq!(down.top, 3, "the last row at the bottom");
        let back = window(80, 13, 15, 4, &names, (5, 0), down);
        assert_eq!(back.top, 3, "moving inside the view does not scroll");
        let up = window(80, 13, 15, 4, &names, (1, 0), back);
        assert_eq!(up.top, 1);
        // Eight environments in 80 columns scroll sideways.
        let wide = window(80, 13, 15, 8, &names, (0, 7), Window::default());
        assert!(wide.cols < 8 && wide.left + wide.cols == 8, "{wide:?}");
        // A pane taller than the rows never scrolls.
        let tall = window(160, 48, 15, 4, &names, (14, 3), Window::default());
        assert_eq!(tall.top, 0);
    }
}
