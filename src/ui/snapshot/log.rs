//! The run log and the failures: kept in a ring bounded in bytes, drawn wrapped so the
//! cause at the end of a line is always visible, failures grouped by source and cause.

use std::collections::{BTreeMap, VecDeque};

use ratatui::text::{Line, Span};
use time::UtcOffset;
use unicode_width::UnicodeWidthStr;

use super::super::text;
use super::super::theme::{Role, Theme};
use crate::engine::events::{Level, LogLine};
use crate::engine::model::Failure;

/// The log kept in memory, in bytes of text: a few thousand lines of a bad run, not an
/// unbounded heap on a pane open all day.
pub const LOG_BYTES: usize = 512 * 1024;
/// Most log lines kept, whatever their size.
pub const LOG_LINES: usize = 10_000;

/// Log lines, oldest first, dropped from the front past [`LOG_BYTES`] or [`LOG_LINES`].
#[derive(Debug, Clone, Default)]
pub struct LogRing {
    lines: VecDeque<LogLine>,
    bytes: usize,
}

impl LogRing {
    pub fn push(&mut self, line: LogLine) {
        self.bytes += weight(&line);
        self.lines.push_back(line);
        while (self.bytes > LOG_BYTES || self.lines.len() > LOG_LINES) && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= weight(&old);
            }
        }
    }

    pub fn clear(&mut self) {
        self.lines.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> + ExactSizeIterator {
        self.lines.iter()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

fn weight(l: &LogLine) -> usize {
    l.message.len() + l.source.len() + 32
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// `text` wrapped to go after a prefix of `first_prefix` columns in a `width`-wide pane:
/// the chunks of [`text::wrap`] with that indent, continuation lines under the first so
/// that none starts at column 0 inside the block.
pub fn wrap_indented(first_prefix: usize, text: &str, width: usize) -> Vec<String> {
    let indent = " ".repeat(first_prefix);
    text::wrap(text, width.max(first_prefix + 8), &indent, &indent)
        .into_iter()
        .map(|l| l[indent.len()..].to_string())
        .collect()
}

/// The lines of one log entry at `width`: `14:05:02 warn  github: message`, the message
/// wrapped under itself.
pub fn entry_lines(l: &LogLine, width: usize, offset: UtcOffset, t: &Theme) -> Vec<Line<'static>> {
    let time = format!("{} ", text::clock(l.at, offset));
    let level = format!("{:<5} ", level_word(l.level));
    let source = format!("{}: ", l.source);
    let prefix = time.width() + level.width() + source.width();
    let body = wrap_indented(prefix, &l.message, width);
    let mut out = Vec::with_capacity(body.len());
    for (i, chunk) in body.into_iter().enumerate() {
        if i == 0 {
            out.push(Line::from(vec![
                Span::styled(time.clone(), t.style(Role::Muted)),
                Span::styled(level.clone(), t.severity(l.level)),
                Span::styled(source.clone(), t.style(Role::Title)),
                Span::raw(chunk),
            ]));
        } else {
            out.push(Line::from(vec![
                Span::raw(" ".repeat(prefix)),
                Span::raw(chunk),
            ]));
        }
    }
    out
}

/// What a failure was, in a few words: the HTTP status and its reason, else the
/// innermost cause of the message (`Connection refused`).
pub fn cause(f: &Failure) -> String {
    if let Some(status) = f.status {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        // A 200 failure is about the body, which the message's start says.
        if status == 200 {
            let what = f.message.split(':').next().unwrap_or(&f.message);
            return format!("200: {what}");
        }
        return format!("{status} {reason}").trim().to_string();
    }
    let inner = f.message.rsplit(": ").next().unwrap_or(&f.message);
    let inner = match inner.find(" (os error") {
        Some(i) => &inner[..i],
        None => inner,
    };
    inner.trim().to_string()
}

/// Failures grouped by source and cause, the largest group first:
/// `("datadog", "Connection refused", 12)`.
pub fn groups(failures: &[Failure]) -> Vec<(String, String, usize)> {
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in failures {
        *by.entry((f.source.clone(), cause(f))).or_default() += 1;
    }
    let mut out: Vec<(String, String, usize)> =
        by.into_iter().map(|((s, c), n)| (s, c, n)).collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Failures by cause, with the sources that had it:
/// `Connection refused: datadog 12, github 3 · 502 Bad Gateway: github 2` (a dead network
/// reads as one cause, not four).
pub fn groups_line(failures: &[Failure]) -> String {
    /// (cause, its sources with their counts, the total).
    type ByCause = (String, Vec<(String, usize)>, usize);
    let mut by_cause: Vec<ByCause> = Vec::new();
    for (source, cause_text, n) in groups(failures) {
        match by_cause.iter_mut().find(|(c, _, _)| *c == cause_text) {
            Some((_, sources, total)) => {
                sources.push((source, n));
                *total += n;
            }
            None => by_cause.push((cause_text, vec![(source, n)], n)),
        }
    }
    by_cause.sort_by_key(|c| std::cmp::Reverse(c.2));
    by_cause
        .iter()
        .map(|(cause_text, sources, _)| {
            let who: Vec<String> = sources
                .iter()
                .map(|(s, n)| {
                    if *n == 1 {
                        s.clone()
                    } else {
                        format!("{s} {n}")
                    }
                })
                .collect();
            format!("{cause_text}: {}", who.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The failures view: one header per group, then each failure's endpoint (shortened in
/// the middle, where it repeats) and its whole message, wrapped.
pub fn failure_lines(failures: &[Failure], width: usize, t: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    if failures.is_empty() {
        out.push(Line::styled("Nothing failed.", t.style(Role::Muted)));
        return out;
    }
    for (source, cause_text, n) in groups(failures) {
        out.push(Line::styled(
            format!("{source} · {n}× {cause_text}"),
            t.style(Role::Header),
        ));
        for f in failures
            .iter()
            .filter(|f| f.source == source && cause(f) == cause_text)
        {
            let endpoint = middle(&f.endpoint, width.saturating_sub(4));
            out.push(Line::from(vec![
                Span::raw("  "),
                Span::styled(endpoint, t.style(Role::Title)),
            ]));
            for chunk in wrap_indented(4, &f.message, width) {
                out.push(Line::from(vec![
                    Span::raw("    "),
                    Span::styled(chunk, t.style(Role::SeverityWarn)),
                ]));
            }
        }
    }
    out
}

/// `s` cut in the middle to `width` columns (`GET /repos/acme/deploy/c…&per_page=100`):
/// the start names the call, the end often the part that differs.
pub fn middle(s: &str, width: usize) -> String {
    if s.width() <= width || width < 5 {
        return text::fit(s, width).into_owned();
    }
    let keep = width - 1;
    let head = keep * 3 / 5;
    let tail = keep - head;
    let start = text::fit(s, head + 1).into_owned();
    let start = start.trim_end_matches('…').to_string();
    let end = text::fit_left(s, tail + 1).into_owned();
    let end = end.trim_start_matches('…').to_string();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(source: &str, status: Option<u16>, message: &str) -> Failure {
        Failure {
            source: source.into(),
            endpoint: "GET /x".into(),
            status,
            message: message.into(),
        }
    }

    #[test]
    fn the_ring_is_bounded_in_bytes_and_keeps_the_newest() {
        let mut ring = LogRing::default();
        for i in 0..20_000 {
            ring.push(LogLine {
                at: time::OffsetDateTime::UNIX_EPOCH,
                level: Level::Warn,
                source: "github".into(),
                message: format!("line {i} {}", "x".repeat(40)),
            });
        }
        assert!(ring.bytes() <= LOG_BYTES);
        assert!(ring.len() > 1000);
        assert!(
            ring.iter()
                .last()
                .unwrap()
                .message
                .starts_with("line 19999")
        );
    }

    #[test]
    fn failures_group_by_source_and_cause() {
        let fs = [
            failure(
                "datadog",
                None,
                "request failed: cannot connect: tcp connect error: Connection refused (os error 111)",
            ),
            failure(
                "datadog",
                None,
                "request failed: cannot connect: tcp connect error: Connection refused (os error 111)",
            ),
            failure("github", Some(502), "Bad Gateway: upstream"),
            failure(
                "teamcity",
                Some(200),
                "response does not have the documented shape: missing field `count`",
            ),
        ];
        assert_eq!(cause(&fs[0]), "Connection refused");
        assert_eq!(cause(&fs[2]), "502 Bad Gateway");
        assert_eq!(
            cause(&fs[3]),
            "200: response does not have the documented shape"
        );
        assert_eq!(
            groups_line(&fs),
            "Connection refused: datadog 2 · 502 Bad Gateway: github · 200: response does not have the documented shape: teamcity"
        );
    }

    #[test]
    fn long_endpoints_are_cut_in_the_middle_and_messages_wrap_under_themselves() {
        let e = "GET /repos/acme/deploy/commits?path=overlays%2Fstaging%2Fpayments%2Fkustomization.yaml&since=2026-10-03&per_page=100";
        let m = middle(e, 50);
        assert_eq!(m.width(), 50, "{m}");
        assert!(
            m.starts_with("GET /repos/acme/deploy/") && m.ends_with("per_page=100"),
            "{m}"
        );
        let lines = wrap_indented(20, "request failed: cannot connect: Connection refused", 40);
        assert!(
            lines.len() > 1 && lines.iter().all(|l| l.width() <= 20),
            "{lines:?}"
        );
        assert!(lines.last().unwrap().contains("refused"));
    }
}
