//! Small drawing pieces shared by the tabs.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::Block;

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
