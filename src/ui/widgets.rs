//! Small drawing pieces shared by the tabs.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Block;
use unicode_width::UnicodeWidthStr;

use super::theme::{Role, Theme};

/// A rectangle of at most `width`×`height` centred in `area` (never outside it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A bordered block with a titled frame in the theme's colours.
pub fn panel<'a>(title: impl Into<String>, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .title(Span::styled(
            format!(" {} ", title.into()),
            theme.style(Role::Title),
        ))
        .border_style(theme.style(Role::Border))
}

/// A scroll position that stays inside its content: never before the first line, never
/// past the point where the last line reaches the bottom of the viewport. Every move
/// returns whether the offset changed, so a key at the end costs no frame and no dead
/// presses pile up.
///
/// ```
/// use snaptop::ui::widgets::Scroll;
/// let mut s = Scroll::new(30, 10); // 30 lines of content, 10 visible
/// assert!(!s.up(1) && s.more_below() && !s.more_above());
/// s.page_down();
/// s.page_down();
/// s.page_down();
/// assert_eq!(s.offset(), 20); // the last line is at the bottom, no further
/// assert!(s.up(1) && s.offset() == 19);
/// s.resize(30, 40); // everything fits now
/// assert_eq!(s.offset(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scroll {
    offset: usize,
    content: usize,
    viewport: usize,
}

impl Scroll {
    /// At the top of `content` lines, `viewport` of them visible.
    pub fn new(content: usize, viewport: usize) -> Scroll {
        Scroll {
            offset: 0,
            content,
            viewport,
        }
    }

    /// The first visible line.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// For `Paragraph::scroll`: `(offset, 0)`, saturated to `u16`.
    pub fn paragraph(&self) -> (u16, u16) {
        (u16::try_from(self.offset).unwrap_or(u16::MAX), 0)
    }

    pub fn content(&self) -> usize {
        self.content
    }

    pub fn viewport(&self) -> usize {
        self.viewport
    }

    /// The largest offset: the last line at the bottom of the viewport.
    pub fn max_offset(&self) -> usize {
        self.content.saturating_sub(self.viewport)
    }

    /// New content length or viewport height (a resize, new lines); the offset is kept
    /// where possible and clamped otherwise.
    pub fn resize(&mut self, content: usize, viewport: usize) {
        self.content = content;
        self.viewport = viewport;
        self.offset = self.offset.min(self.max_offset());
    }

    /// Moves to `offset` (clamped); returns whether it moved.
    pub fn scroll_to(&mut self, offset: usize) -> bool {
        let before = self.offset;
        self.offset = offset.min(self.max_offset());
        self.offset != before
    }

    pub fn up(&mut self, lines: usize) -> bool {
        self.scroll_to(self.offset.saturating_sub(lines))
    }

    pub fn down(&mut self, lines: usize) -> bool {
        self.scroll_to(self.offset.saturating_add(lines))
    }

    /// One viewport up, keeping one line of the old view for context.
    pub fn page_up(&mut self) -> bool {
        self.up(self.page())
    }

    pub fn page_down(&mut self) -> bool {
        self.down(self.page())
    }

    pub fn top(&mut self) -> bool {
        self.scroll_to(0)
    }

    pub fn bottom(&mut self) -> bool {
        self.scroll_to(usize::MAX)
    }

    /// Lines above the viewport ("more ↑").
    pub fn more_above(&self) -> bool {
        self.offset > 0
    }

    /// Lines below the viewport ("more ↓").
    pub fn more_below(&self) -> bool {
        self.offset < self.max_offset()
    }

    fn page(&self) -> usize {
        self.viewport.saturating_sub(1).max(1)
    }
}

/// `label` in a column `label_w` wide, then `text` word-wrapped to `width`; wrapped
/// lines start under the text, never at column 0 (`  window          days, start–end…`).
/// A label wider than its column is cut with `…`.
pub fn labelled(
    label: &str,
    label_w: usize,
    text: &str,
    width: usize,
    label_style: Style,
    text_style: Style,
) -> Vec<Line<'static>> {
    let label = super::text::fit(label, label_w);
    let pad = " ".repeat(label_w.saturating_sub(label.width()));
    let indent = " ".repeat(label_w);
    super::text::wrap(text, width, &indent, &indent)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let body = l[indent.len()..].to_string();
            if i == 0 {
                Line::from(vec![
                    Span::styled(format!("{label}{pad}"), label_style),
                    Span::styled(body, text_style),
                ])
            } else {
                Line::from(vec![
                    Span::raw(indent.clone()),
                    Span::styled(body, text_style),
                ])
            }
        })
        .collect()
}

/// A text gauge `██████░░░░`: readable without colour, in 16 colours and over SSH.
pub fn bar(fraction: f64, width: usize, filled: Style, empty: Style) -> [Span<'static>; 2] {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = ((f * width as f64).round() as usize).min(width);
    [
        Span::styled("█".repeat(full), filled),
        Span::styled("░".repeat(width - full), empty),
    ]
}

/// A one-line text input with the cursor at the end; styled without colour so it reads
/// the same in every theme and under `NO_COLOR` (the Reports prompt, the Schedule form).
pub fn one_line_input(text: &str) -> ratatui_textarea::TextArea<'static> {
    use ratatui::style::Modifier;
    let mut t = ratatui_textarea::TextArea::new(vec![text.to_string()]);
    t.set_cursor_line_style(Style::new());
    t.set_cursor_style(Style::new().add_modifier(Modifier::REVERSED));
    t.move_cursor(ratatui_textarea::CursorMove::End);
    t
}

/// A key that would break a one-line input in two (Ctrl-M, a raw CR or LF): dropped.
pub fn breaks_line(key: &ratatui::crossterm::event::KeyEvent) -> bool {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    matches!(key.code, KeyCode::Char('\n' | '\r'))
        || (key.code == KeyCode::Char('m') && key.modifiers.contains(KeyModifiers::CONTROL))
}

/// A printable character typed as text, whatever key it is bound to.
pub fn is_typed_char(key: &ratatui::crossterm::event::KeyEvent) -> bool {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    matches!(key.code, KeyCode::Char(_))
        && !key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centered_never_leaves_the_area() {
        let area = Rect::new(3, 2, 10, 4);
        let r = centered(area, 50, 50);
        assert_eq!(r, area);
        let r = centered(area, 4, 2);
        assert_eq!(r, Rect::new(6, 3, 4, 2));
    }

    #[test]
    fn scroll_never_runs_past_either_end() {
        let mut s = Scroll::new(40, 18);
        assert_eq!(s.max_offset(), 22);
        assert!(!s.up(1), "already at the top");
        assert!(!s.more_above() && s.more_below());
        // Far more presses than lines: the offset stops at the end...
        for _ in 0..100 {
            s.down(1);
        }
        assert_eq!(s.offset(), 22);
        assert!(s.more_above() && !s.more_below());
        assert!(!s.down(1), "a press at the end changes nothing");
        // ...so one press up moves at once (no dead presses).
        assert!(s.up(1));
        assert_eq!(s.offset(), 21);
        assert!(s.top() && s.offset() == 0);
        assert!(s.bottom() && s.offset() == 22);
    }

    #[test]
    fn scroll_pages_keep_a_line_of_context_and_clamp() {
        let mut s = Scroll::new(40, 10);
        assert!(s.page_down());
        assert_eq!(s.offset(), 9);
        s.page_down();
        s.page_down();
        assert_eq!(s.offset(), 27);
        assert!(s.page_down());
        assert_eq!(s.offset(), 30, "clamped to the end");
        assert!(!s.page_down());
        s.page_up();
        assert_eq!(s.offset(), 21);
        // A viewport of one line still moves by one.
        let mut one = Scroll::new(3, 1);
        assert!(one.page_down() && one.offset() == 1);
        assert_eq!(one.paragraph(), (1, 0));
    }

    #[test]
    fn scroll_clamps_when_content_or_viewport_changes() {
        let mut s = Scroll::new(40, 10);
        s.bottom();
        s.resize(40, 30);
        assert_eq!(s.offset(), 10);
        s.resize(5, 30);
        assert_eq!(s.offset(), 0);
        assert!(!s.more_above() && !s.more_below());
        assert!(!s.down(1) && !s.page_down());
        let empty = Scroll::default();
        assert_eq!((empty.offset(), empty.max_offset()), (0, 0));
        assert!(!empty.more_below());
    }

    #[test]
    fn labelled_text_wraps_under_itself() {
        let lines = labelled(
            "  window",
            10,
            "days, start and end",
            21,
            Style::new(),
            Style::new(),
        );
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["  window  days, start", "          and end"]);
        let cut = labelled("a long label", 6, "x", 20, Style::new(), Style::new());
        assert_eq!(cut[0].to_string(), "a lon…x");
    }

    #[test]
    fn bar_fills_in_proportion() {
        let [a, b] = bar(0.5, 10, Style::new(), Style::new());
        assert_eq!(
            (a.content.chars().count(), b.content.chars().count()),
            (5, 5)
        );
        let [a, b] = bar(f64::NAN, 4, Style::new(), Style::new());
        assert_eq!((a.content.len(), b.content.chars().count()), (0, 4));
        let [a, _] = bar(7.0, 4, Style::new(), Style::new());
        assert_eq!(a.content.chars().count(), 4);
    }
}
