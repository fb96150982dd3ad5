//! Text for the screen: sanitising outside text, fitting it to a width, and human times.

use std::borrow::Cow;
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::engine::events::{EngineEvent, LogLine};
use crate::engine::model::{Cell, RunSummary, Snapshot};
use crate::report::Report;

/// Outside text made safe to draw (see [`crate::sanitize::for_terminal`]).
pub use crate::sanitize::for_terminal as sanitize;

fn clean(s: &mut String) {
    if let Cow::Owned(o) = sanitize(s) {
        *s = o;
    }
}

fn clean_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        clean(s);
    }
}

/// Sanitises every outside string of an engine event, once, as it enters the UI.
pub fn sanitize_event(ev: &mut EngineEvent) {
    match ev {
        EngineEvent::Started(p) | EngineEvent::Progress(p) => {
            for b in &mut p.budgets {
                clean(&mut b.source);
            }
        }
        EngineEvent::Log(line) => sanitize_log(line),
        EngineEvent::Provisional(snapshot) => sanitize_snapshot(snapshot),
        EngineEvent::Finished { summary, snapshot } => {
            sanitize_summary(summary);
            sanitize_snapshot(snapshot);
        }
        EngineEvent::Failed { summary, error } => {
            sanitize_summary(summary);
            clean(error);
        }
        EngineEvent::AlreadyRunning | EngineEvent::Schedule(_) => {}
    }
}

/// Sanitises what a daemon sends a pane on attach: the same outside text as its events.
pub fn sanitize_attach(state: &mut crate::serve::wire::AttachState) {
    if let Some(s) = &mut state.snapshot {
        sanitize_snapshot(s);
    }
    if let Some(s) = &mut state.provisional {
        sanitize_snapshot(s);
    }
    state.history.iter_mut().for_each(sanitize_summary);
    state.run_details.values_mut().for_each(sanitize_detail);
    state.log.iter_mut().for_each(sanitize_log);
    clean_opt(&mut state.store_problem);
    if let Some(p) = &mut state.progress {
        for b in &mut p.budgets {
            clean(&mut b.source);
        }
    }
}

pub fn sanitize_log(line: &mut LogLine) {
    clean(&mut line.source);
    clean(&mut line.message);
}

pub fn sanitize_summary(s: &mut RunSummary) {
    clean_opt(&mut s.error);
}

/// A run's kept detail, read from the store (its log and failures came from outside).
pub fn sanitize_detail(d: &mut crate::engine::model::RunDetail) {
    d.log.iter_mut().for_each(sanitize_log);
    for f in &mut d.failures {
        clean(&mut f.source);
        clean(&mut f.endpoint);
        clean(&mut f.message);
    }
}

pub fn sanitize_snapshot(s: &mut Snapshot) {
    s.environments.iter_mut().for_each(clean);
    s.components.iter_mut().for_each(clean);
    s.health_queries.iter_mut().for_each(clean);
    for f in &mut s.failures {
        clean(&mut f.source);
        clean(&mut f.endpoint);
        clean(&mut f.message);
    }
    let cells = std::mem::take(&mut s.cells);
    s.cells = cells
        .into_iter()
        .map(|(env, comps)| {
            let comps = comps
                .into_iter()
                .map(|(c, mut cell)| {
                    sanitize_cell(&mut cell);
                    (sanitize(&c).into_owned(), cell)
                })
                .collect();
            (sanitize(&env).into_owned(), comps)
        })
        .collect();
    let per_source = std::mem::take(&mut s.stats.per_source);
    s.stats.per_source = per_source
        .into_iter()
        .map(|(k, v)| (sanitize(&k).into_owned(), v))
        .collect();
}

/// Sanitises every string of a report that came from its CSV or TOML files, once, as
/// it enters the UI (the report engine's own pass, shared with the CLI's text output).
pub fn sanitize_report(r: &mut Report) {
    crate::report::render::sanitize_for_terminal(r);
}

fn sanitize_cell(cell: &mut Cell) {
    clean_opt(&mut cell.tag);
    clean_opt(&mut cell.deploy_commit);
    clean_opt(&mut cell.source_commit);
    if let Some(b) = &mut cell.build {
        clean_opt(&mut b.number);
        clean_opt(&mut b.status);
        clean_opt(&mut b.state);
        clean_opt(&mut b.web_url);
    }
    let health = std::mem::take(&mut cell.health);
    cell.health = health
        .into_iter()
        .map(|(k, v)| (sanitize(&k).into_owned(), v))
        .collect();
    clean_opt(&mut cell.unresolved);
    if let Some(r) = &mut cell.resolved {
        clean(&mut r.tag);
        clean(&mut r.via);
    }
    for t in cell.tickets.iter_mut().flatten() {
        clean(&mut t.key);
        clean_opt(&mut t.status);
        clean_opt(&mut t.summary);
    }
    for e in &mut cell.events {
        clean_opt(&mut e.from);
        clean_opt(&mut e.to);
        clean(&mut e.commit);
    }
}

/// Cuts `s` to at most `width` columns, ending in `…` when cut.
pub fn fit(s: &str, width: usize) -> Cow<'_, str> {
    if s.width() <= width {
        return Cow::Borrowed(s);
    }
    if width == 0 {
        return Cow::Borrowed("");
    }
    let kept = fitting_bytes(s.chars(), width - 1);
    Cow::Owned(format!("{}…", &s[..kept]))
}

/// Cuts the start of `s` instead (paths read best from their end): `…/2.47/api`.
pub fn fit_left(s: &str, width: usize) -> Cow<'_, str> {
    if s.width() <= width {
        return Cow::Borrowed(s);
    }
    if width == 0 {
        return Cow::Borrowed("");
    }
    let kept = fitting_bytes(s.chars().rev(), width - 1);
    Cow::Owned(format!("…{}", &s[s.len() - kept..]))
}

/// Units that stay on the line of the number before them: "9 s", "120 ms", "2.45 %".
const UNITS: [&str; 14] = [
    "s", "ms", "µs", "m", "min", "h", "d", "%", "x", "rps", "B", "KiB", "MiB", "GiB",
];

/// The words of `s` for wrapping: split at spaces, except between a number and its unit.
fn wrap_words(s: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in s.split(' ').filter(|w| !w.is_empty()) {
        let bare = w.trim_end_matches([',', ';', ':', '.', ')', ']']);
        let after_number = words
            .last()
            .is_some_and(|p| p.ends_with(|c: char| c.is_ascii_digit()));
        match words.last_mut() {
            Some(prev) if after_number && UNITS.contains(&bare) => {
                prev.push(' ');
                prev.push_str(w);
            }
            _ => words.push(w.to_string()),
        }
    }
    words
}

/// Word-wraps `s` to lines of at most `width` columns: the first line begins with
/// `first`, every continuation line with `indent` (both count in the width), so wrapped
/// lines keep the indent of their block. Words are never cut silently: a number stays
/// with its unit ("9 s"), and a word longer than a whole line is split with `…` ending
/// each part but the last. Always at least one line.
pub fn wrap(s: &str, width: usize, first: &str, indent: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = first.to_string();
    let mut fresh = true;
    for word in wrap_words(s) {
        let sep = usize::from(!fresh);
        if !fresh && line.width() + sep + word.width() > width {
            out.push(std::mem::replace(&mut line, indent.to_string()));
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        let mut rest = word.as_str();
        // Longer than what is left of a fresh line: cut it in parts marked with `…`.
        while line.width() + rest.width() > width {
            let room = width.saturating_sub(line.width() + 1);
            let kept = fitting_bytes(rest.chars(), room);
            if kept == 0 {
                if line.width() > indent.width() || !fresh {
                    out.push(std::mem::replace(&mut line, indent.to_string()));
                    fresh = true;
                    continue;
                }
                // Not even one character fits beside the indent: give up on the width.
                break;
            }
            line.push_str(&rest[..kept]);
            line.push('…');
            out.push(std::mem::replace(&mut line, indent.to_string()));
            rest = &rest[kept..];
        }
        line.push_str(rest);
        fresh = false;
    }
    out.push(line);
    out
}

/// [`wrap`], at most `max` lines: when there is more, the last line kept ends in `…`.
pub fn wrap_at_most(s: &str, width: usize, first: &str, indent: &str, max: usize) -> Vec<String> {
    let mut lines = wrap(s, width, first, indent);
    if lines.len() > max {
        lines.truncate(max.max(1));
        if let Some(last) = lines.last_mut() {
            *last = fit(&format!("{last} …"), width).into_owned();
            if !last.ends_with('…') {
                last.push('…');
            }
        }
    }
    lines
}

/// Cuts the start of a path at a component boundary when it can (`…/2.47/api`), so no
/// directory name is shown half; [`fit_left`] when even the last component is too long.
pub fn fit_path(s: &str, width: usize) -> Cow<'_, str> {
    if s.width() <= width {
        return Cow::Borrowed(s);
    }
    let room = width.saturating_sub(1);
    // The longest tail that starts at a `/` and fits beside the `…`.
    let tail = s
        .match_indices('/')
        .map(|(i, _)| &s[i..])
        .find(|t| t.width() <= room && t.len() > 1);
    match tail {
        Some(t) => Cow::Owned(format!("…{t}")),
        None => fit_left(s, width),
    }
}

/// The bytes of the leading `chars` that fit in `width` columns.
fn fitting_bytes(chars: impl Iterator<Item = char>, width: usize) -> usize {
    let mut used = 0;
    let mut bytes = 0;
    for c in chars {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        bytes += c.len_utf8();
    }
    bytes
}

/// Coarse age buckets shared by every relative time on screen, so the redraw timer
/// can be armed for the moment the text changes and not before.
fn bucket(secs: u64) -> u64 {
    match secs {
        0..60 => 60,
        60..3_600 => 60,
        3_600..172_800 => 3_600,
        _ => 86_400,
    }
}

/// "3d", "5h", "12m", "now": a compact age for table cells.
pub fn age_short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => "now".into(),
        60..3_600 => format!("{}m", s / 60),
        3_600..172_800 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

/// "just now", "7m ago", "5h ago", "3d ago".
pub fn ago(d: Duration) -> String {
    match d.as_secs() {
        0..60 => "just now".into(),
        _ => format!("{} ago", age_short(d)),
    }
}

/// How long until the text of [`ago`]/[`age_short`] for this age next changes.
pub fn age_changes_in(d: Duration) -> Duration {
    let s = d.as_secs();
    let step = bucket(s);
    let into = if s < 60 { s } else { s % step };
    // Land just past the boundary so the new text is already due when we wake.
    Duration::from_secs(step - into) - Duration::from_nanos(u64::from(d.subsec_nanos()))
        + Duration::from_millis(5)
}

/// "in 23m" / "in 45s" / "in 2h": the text of a countdown to a future instant.
pub fn countdown(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..86_400 => match s.div_ceil(60) {
            m @ 0..60 => format!("{m}m"),
            m => format!("{}h{:02}m", m / 60, m % 60),
        },
        _ => {
            let h = s / 3_600;
            format!("{}d{}h", h / 24, h % 24)
        }
    }
}

/// How long until [`countdown`] of a time `left` away shows another text: a second
/// under a minute, the minute step up to a day, then the hour step, so a countdown in
/// minutes wakes the screen once a minute.
pub fn countdown_changes_in(left: Duration) -> Duration {
    let s = left.as_secs();
    let next = match s {
        // At 60s, "1m" turns into "59s".
        0..=60 => 1,
        61..86_400 => match s % 60 {
            0 => 60,
            r => r,
        },
        _ => s % 3_600 + 1,
    };
    Duration::from_secs(next)
}

/// "850ms", "4.2s", "2m 05s", "1h 03m".
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", d.as_secs_f64()),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1_000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Whole seconds: "12s", "2m 05s", "1h 03m" (for clocks that tick once a second).
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3_600, (s / 60) % 60),
    }
}

/// Time between two instants, zero when `later` is earlier.
pub fn between(earlier: OffsetDateTime, later: OffsetDateTime) -> Duration {
    Duration::try_from(later - earlier).unwrap_or(Duration::ZERO)
}

const HM: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[hour]:[minute]");
const MD_HM: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[month]-[day] [hour]:[minute]");

/// "14:05" in the viewer's time zone.
pub fn clock(t: OffsetDateTime, offset: UtcOffset) -> String {
    t.to_offset(offset).format(HM).unwrap_or_default()
}

/// "11-23 14:05" in the viewer's time zone.
pub fn date_clock(t: OffsetDateTime, offset: UtcOffset) -> String {
    t.to_offset(offset).format(MD_HM).unwrap_or_default()
}

/// An integer with thin grouping: 12345 → "12,345".
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "512 B", "3.4 KiB", "12.0 MiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// A compact health figure: 0.0123 → "0.012", 231.4 → "231".
pub fn figure(v: f64) -> String {
    if !v.is_finite() {
        return "?".into();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a < 10.0 {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').into()
    } else if a < 10_000.0 {
        format!("{v:.0}")
    } else {
        format!("{:.0}k", v / 1000.0)
    }
}

/// Percentage of `part` in `whole`, "–" when there is no whole.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_countdown_changes_its_text_exactly_when_it_says() {
        let secs = Duration::from_secs;
        for left in [
            5u64, 59, 60, 61, 720, 700, 661, 3_599, 3_600, 3_661, 7_199, 7_200, 7_300, 36_000,
            86_399, 86_400, 90_000, 200_000,
        ] {
            let wait = countdown_changes_in(secs(left));
            let now = countdown(secs(left));
            assert_eq!(
                countdown(secs(left - wait.as_secs() + 1)),
                now,
                "{left}s: the same text until then"
            );
            if left > wait.as_secs() {
                assert_ne!(countdown(secs(left - wait.as_secs())), now, "{left}s");
            }
        }
        assert_eq!(countdown_changes_in(secs(720)), secs(60), "minute steps");
        assert_eq!(countdown(secs(73 * 60)), "1h13m");
        assert_eq!(countdown(secs(3_600)), "1h00m");
        assert_eq!(countdown(secs(26 * 3_600 + 5)), "1d2h");
    }

    #[test]
    fn escape_sequences_and_controls_never_survive() {
        let nasty = "fix \u{1b}[2J\u{1b}[31mred\u{1b}[0m \u{1b}]0;pwned\u{7} title\u{1b}]8;;http://x\u{1b}\\link\u{1b}c\r\nnext\u{7}\u{8}\u{9b}1mC1\u{202e}evil";
        let out = sanitize(nasty);
        assert!(!out.chars().any(crate::sanitize::needs_cleaning), "{out:?}");
        assert_eq!(out, "fix red  titlelink nextC1evil");
        assert!(matches!(sanitize("plain PR title"), Cow::Borrowed(_)));
        assert_eq!(sanitize("trailing \u{1b}"), "trailing ");
        assert_eq!(sanitize("\u{1b}[12;"), "");
    }

    #[test]
    fn fit_cuts_on_display_width() {
        assert_eq!(fit("v1.2.3", 10), "v1.2.3");
        assert_eq!(fit("v1.2.3-rc1", 6), "v1.2.…");
        assert_eq!(fit("日本語のタイトル", 5), "日本…");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("abc", 1), "…");
    }

    #[test]
    fn wrap_keeps_words_indents_and_units() {
        assert_eq!(wrap("aa bb cc dd", 8, "- ", "  "), ["- aa bb", "  cc dd"]);
        assert_eq!(wrap("", 10, "> ", ""), ["> "]);
        // A word longer than a line is split, and every cut says so.
        assert_eq!(wrap("abcdefghij", 6, "", ""), ["abcde…", "fghij"]);
        assert_eq!(
            wrap("see a/very/long/path", 8, "  ", "  "),
            ["  see", "  a/ver…", "  y/lon…", "  g/path"]
        );
        // A number keeps its unit.
        assert_eq!(
            wrap("users for 9 s, then recovered", 12, "", ""),
            ["users for", "9 s, then", "recovered"]
        );
        assert_eq!(
            wrap("p99 120 ms here", 9, "", ""),
            ["p99", "120 ms", "here"]
        );
        // Continuation lines keep the indent; nothing is lost.
        for w in wrap("one two three four five six seven", 12, "  - ", "    ") {
            assert!(w.width() <= 12 && w.starts_with("  "), "{w:?}");
        }
        // Degenerate widths end, and keep every character.
        let w = wrap("abc", 2, "  ", "  ");
        assert_eq!(w.concat().replace([' ', '…'], ""), "abc");
    }

    #[test]
    fn fit_path_cuts_at_a_component() {
        let p = "tests/fixtures/locust/2.47/api";
        assert_eq!(fit_path(p, 40), p);
        assert_eq!(fit_path(p, 28), "…/fixtures/locust/2.47/api");
        assert_eq!(fit_path(p, 18), "…/locust/2.47/api");
        assert_eq!(fit_path(p, 16), "…/2.47/api");
        // The last component alone is too long: cut it, and say so.
        assert_eq!(fit_path("runs/averyveryverylongname", 8), "…ongname");
    }

    #[test]
    fn wrap_at_most_marks_what_it_leaves_out() {
        let w = wrap_at_most("aa bb cc dd ee", 5, "", "", 2);
        assert_eq!(w, ["aa bb", "cc d…"]);
        assert_eq!(wrap_at_most("aa bb", 5, "", "", 2), ["aa bb"]);
    }

    #[test]
    fn ages_and_when_their_text_changes() {
        let s = Duration::from_secs;
        assert_eq!(ago(s(5)), "just now");
        assert_eq!(ago(s(7 * 60 + 3)), "7m ago");
        assert_eq!(age_short(s(3 * 86_400 + 5)), "3d");
        assert_eq!(age_short(s(5 * 3_600)), "5h");
        // 7m03s: the text changes at 8m, in 57s.
        let next = age_changes_in(s(7 * 60 + 3));
        assert!(next > s(56) && next <= s(58), "{next:?}");
        assert_eq!(age_short(s(7 * 60 + 3) + next), "8m");
        // 5h10m: changes at 6h.
        let next = age_changes_in(s(5 * 3_600 + 600));
        assert_eq!(age_short(s(5 * 3_600 + 600) + next), "6h");
        assert!(age_changes_in(s(30)) <= s(31));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(figure(0.0123), "0.012");
        assert_eq!(figure(231.4), "231");
        assert_eq!(figure(f64::NAN), "?");
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(1, 0), "–");
        assert_eq!(duration(Duration::from_millis(4_200)), "4.2s");
        assert_eq!(duration(Duration::from_secs(125)), "2m 05s");
        assert_eq!(countdown(Duration::from_secs(23 * 60 - 10)), "23m");
    }
}
