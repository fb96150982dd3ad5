//! Text from outside (PR titles, Jira summaries, error bodies, endpoint names, tags)
//! made safe for a terminal or a CI log. Shared by the engine's messages, the CLI's
//! output and the TUI, so a sequence is removed whole before any other layer sees it:
//! replacing only its ESC would leave `]0;pwned [2J` behind for the next one.

use std::borrow::Cow;

/// Makes text from the outside world (PR titles, Jira summaries, error bodies, tags)
/// safe to draw: escape sequences (CSI, OSC, DCS... with their parameters) are removed,
/// other control characters (C0, DEL, C1) become spaces or are dropped, and
/// bidirectional overrides that could reorder what the user sees are dropped.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_cleaning) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                // CSI: parameters and intermediates, then one final byte 0x40–0x7e.
                Some('[') => {
                    chars.next();
                    for n in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&n) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: up to BEL or ST (ESC \).
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    chars.next();
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' || n == '\u{9c}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // Two-byte escapes (ESC c, ESC 7...): drop the next character too.
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\u{9b}' => {
                for n in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&n) {
                        break;
                    }
                }
            }
            '\t' | '\n' | '\r' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if needs_cleaning(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

pub fn needs_cleaning(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// [`for_terminal`], then cut to `max_chars`: one line for a message, a log file or a
/// CI log (line breaks become spaces).
pub fn one_line(s: &str, max_chars: usize) -> String {
    let clean = for_terminal(s);
    match clean.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_go_whole_not_just_their_escape() {
        let hostile = "boom \u{1b}]0;pwned\u{7} \u{1b}[2J\u{1b}[31mred\u{1b}[0m \u{202e}evil\nnext";
        let out = one_line(hostile, 1000);
        assert_eq!(out, "boom  red evil next");
        for leftover in ["]0;", "pwned", "[2J", "[31m", "\u{1b}", "\u{202e}", "\n"] {
            assert!(!out.contains(leftover), "{leftover:?} in {out:?}");
        }
    }

    #[test]
    fn one_line_cuts_on_characters() {
        assert_eq!(one_line("héllo wörld", 5), "héllo…");
        assert_eq!(one_line("short", 5), "short");
    }
}
