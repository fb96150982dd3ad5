//! A report as plain text, JSON or Markdown.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

use crate::sanitize::for_terminal;

use super::analysis::human_secs;
use super::model::{Change, EndpointStats, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Markdown,
}

fn clean(s: &mut String) {
    if let Cow::Owned(o) = for_terminal(s) {
        *s = o;
    }
}

fn clean_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        clean(s);
    }
}

/// Like [`clean`], keeping the line breaks of multi-line text (tracebacks): each line
/// is sanitised on its own.
fn clean_lines(s: &mut String) {
    if !s.chars().any(crate::sanitize::needs_cleaning) {
        return;
    }
    *s = s
        .split('\n')
        .map(|line| for_terminal(line.trim_end_matches('\r')).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
}

/// Makes every string of a report that came from its CSV or TOML files (or their paths)
/// safe for a terminal or a CI log: escape sequences, control characters and bidi
/// overrides go (see [`for_terminal`]). Tracebacks and multi-line messages keep their
/// lines, each cleaned on its own; everything else becomes one line. The TUI applies it
/// as a report arrives, the text and Markdown renderers before writing.
pub fn sanitize_for_terminal(r: &mut Report) {
    let run = &mut r.run;
    for e in run.endpoints.iter_mut().chain(run.aggregate.iter_mut()) {
        clean(&mut e.method);
        clean(&mut e.name);
    }
    if let Some(h) = &mut run.history {
        for e in &mut h.endpoints {
            clean(&mut e.method);
            clean(&mut e.name);
        }
        h.notes.iter_mut().for_each(clean);
        h.warnings.iter_mut().for_each(clean);
    }
    for f in &mut run.failures {
        clean(&mut f.method);
        clean(&mut f.name);
        clean_lines(&mut f.error);
        clean_opt(&mut f.first_seen);
        clean_opt(&mut f.last_seen);
    }
    for c in &mut run.checks {
        clean(&mut c.group);
        clean(&mut c.name);
    }
    for x in &mut run.exceptions {
        clean_lines(&mut x.message);
        clean_lines(&mut x.traceback);
        clean(&mut x.nodes);
    }
    run.notes.iter_mut().for_each(clean);
    run.warnings.iter_mut().for_each(clean);
    r.warnings.iter_mut().for_each(clean);
    for f in &mut r.findings {
        clean(&mut f.endpoint);
        clean(&mut f.reason);
        clean(&mut f.unit);
    }
    for rec in &mut r.recommendations {
        clean_opt(&mut rec.endpoint);
        clean(&mut rec.action);
    }
    for t in &mut r.cache_ttls {
        clean(&mut t.endpoint);
        clean(&mut t.reason);
    }
    if let Some(t) = &mut r.targets {
        for o in &mut t.outcomes {
            clean(&mut o.endpoint);
            clean(&mut o.rule);
            clean(&mut o.detail);
        }
        t.warnings.iter_mut().for_each(clean);
    }
    if let Some(c) = &mut r.comparison {
        clean(&mut c.base_label);
        for e in &mut c.endpoints {
            clean(&mut e.endpoint);
        }
        c.added.iter_mut().for_each(clean);
        c.removed.iter_mut().for_each(clean);
    }
    r.verdict.reasons.iter_mut().for_each(clean);
}

/// The report in `format`. Text and Markdown are written from a sanitised copy, so no
/// byte of the input files reaches a terminal or CI log raw; JSON escapes them.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => render_text(report),
        Format::Json => render_json(report),
        Format::Markdown => render_markdown(report),
    }
}

/// The JSON document: the whole report plus the schema version, for scripts and CI.
#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a Report,
}

pub fn render_json(report: &Report) -> String {
    let text = serde_json::to_string_pretty(&JsonReport {
        schema_version: 1,
        report,
    })
    .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the report: {e}\"}}"));
    let mut text = escape_json_extras(text);
    text.push('\n');
    text
}

/// serde_json escapes C0 controls only; DEL, C1 controls (U+009B is a CSI), bidi
/// overrides and line separators are valid JSON but act on a terminal that shows the
/// file. They can only be inside strings, where `\uXXXX` means the same character.
fn escape_json_extras(text: String) -> String {
    let special = |c: char| matches!(c, '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}');
    if !text.chars().any(special) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if special(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A latency for a table cell: `-` when missing, whole milliseconds from 100 up.
pub fn ms(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn endpoint_row(e: &EndpointStats) -> Vec<String> {
    vec![
        e.label(),
        e.requests.to_string(),
        e.failures.to_string(),
        format!("{:.2}", e.error_pct),
        ms(e.p50_ms.or(e.median_ms)),
        ms(e.p95_ms),
        ms(e.p99_ms),
        ms(e.max_ms),
        format!("{:.1}", e.rps),
    ]
}

const ENDPOINT_COLUMNS: [&str; 9] = [
    "endpoint", "requests", "failures", "error %", "p50 ms", "p95 ms", "p99 ms", "max ms", "rps",
];

/// Columns padded to their widest cell; the first and last columns left-aligned when
/// `text_last` (prose), numbers right-aligned.
fn text_table(out: &mut String, header: &[&str], rows: &[Vec<String>], text_last: bool) {
    let last = header.len() - 1;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else if text_last && i == last {
                text.push_str("  ");
                text.push_str(cell);
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        let _ = writeln!(out, "  {}", text.trim_end());
    };
    line(out, &mut header.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

fn unix_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The report as plain text, safe for a terminal (see [`sanitize_for_terminal`]).
pub fn render_text(report: &Report) -> String {
    let mut clean = report.clone();
    sanitize_for_terminal(&mut clean);
    write_text(&clean)
}

fn write_text(report: &Report) -> String {
    let mut out = String::new();
    let run = &report.run;
    let verdict = if report.verdict.passed {
        "PASS"
    } else {
        "FAIL"
    };
    let _ = writeln!(out, "snaptop report: {verdict}");
    for reason in &report.verdict.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    if let Some(g) = run.generation {
        let _ = writeln!(out, "format: {g}");
    }
    for path in [
        &run.files.stats,
        &run.files.distribution,
        &run.files.history,
        &run.files.failures,
        &run.files.exceptions,
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(out, "file: {}", for_terminal(&path.display().to_string()));
    }

    if !run.endpoints.is_empty() {
        let _ = writeln!(out, "\nEndpoints");
        let mut rows: Vec<Vec<String>> = run.endpoints.iter().map(endpoint_row).collect();
        if let Some(total) = &run.aggregate {
            rows.push(endpoint_row(total));
        }
        text_table(&mut out, &ENDPOINT_COLUMNS, &rows, false);
    }

    let _ = writeln!(out, "\nFindings");
    if report.findings.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for f in &report.findings {
        let _ = writeln!(
            out,
            "  {:<3} {:<8} {:<11} {}: {}",
            f.id, f.severity, f.kind, f.endpoint, f.reason
        );
    }

    if let Some(targets) = &report.targets {
        let _ = writeln!(out, "\nTargets");
        for o in &targets.outcomes {
            let mark = if o.passed { "pass" } else { "FAIL" };
            let _ = writeln!(out, "  {mark}  {}: {} ({})", o.endpoint, o.rule, o.detail);
        }
        for w in &targets.warnings {
            let _ = writeln!(out, "  WARN  {w}");
        }
    }

    if !report.recommendations.is_empty() {
        let _ = writeln!(out, "\nRecommendations");
        for r in &report.recommendations {
            let because = if r.because_of.is_empty() {
                String::new()
            } else {
                format!(" [{}]", r.because_of.join(", "))
            };
            let _ = writeln!(
                out,
                "  {:<10}  {}{because}",
                r.horizon.to_string(),
                r.action
            );
        }
    }

    if !report.cache_ttls.is_empty() {
        let _ = writeln!(out, "\nCache TTL");
        let rows: Vec<Vec<String>> = report
            .cache_ttls
            .iter()
            .map(|t| {
                vec![
                    t.endpoint.clone(),
                    t.ttl_secs.map_or("no cache".into(), human_secs),
                    t.reason.clone(),
                ]
            })
            .collect();
        text_table(&mut out, &["endpoint", "ttl", "why"], &rows, true);
    }

    if let Some(history) = &run.history {
        let _ = writeln!(out, "\nOver time ({} history rows)", history.rows);
        if let (Some(first), Some(last)) = (history.first_unix, history.last_unix) {
            let _ = writeln!(
                out,
                "  {} to {} ({} s), peak users {}",
                unix_time(first),
                unix_time(last),
                last - first,
                history.peak_users.map_or("-".into(), |u| u.to_string())
            );
        }
        let rows: Vec<Vec<String>> = history
            .endpoints
            .iter()
            .map(|e| {
                vec![
                    e.label(),
                    ms(e.median_p95_ms),
                    ms(e.peak_p95_ms),
                    ms(e.median_p99_ms),
                    ms(e.peak_p99_ms),
                    format!("{:.1}", e.peak_rps),
                    e.degradation.as_ref().map_or("-".into(), |d| {
                        format!("+{}s ({:.1}x)", d.offset_secs, d.factor)
                    }),
                ]
            })
            .collect();
        text_table(
            &mut out,
            &[
                "endpoint", "med p95", "peak p95", "med p99", "peak p99", "peak rps", "degraded",
            ],
            &rows,
            false,
        );
    }

    if let Some(c) = &report.comparison {
        let _ = writeln!(
            out,
            "\nCompared with {}: {} regression(s), {} improvement(s)",
            c.base_label, c.regressions, c.improvements
        );
        for e in &c.endpoints {
            let changes: Vec<String> = e
                .deltas
                .iter()
                .filter(|d| d.change != Change::Unchanged)
                .map(|d| {
                    let word = if d.change == Change::Regression {
                        "worse"
                    } else {
                        "better"
                    };
                    format!("{} {} → {} ({word})", d.metric, ms(d.base), ms(d.current))
                })
                .collect();
            if !changes.is_empty() {
                let _ = writeln!(out, "  {}: {}", e.endpoint, changes.join(", "));
            }
        }
        for a in &c.added {
            let _ = writeln!(out, "  added: {a}");
        }
        for r in &c.removed {
            let _ = writeln!(out, "  removed: {r}");
        }
    }

    if !run.failures.is_empty() {
        let _ = writeln!(out, "\nFailures");
        for f in run.failures.iter().take(20) {
            // The error keeps its line breaks for the TUI; here it is one line.
            let _ = writeln!(
                out,
                "  {:>6}x  {}: {}",
                f.occurrences,
                super::model::endpoint_label(&f.method, &f.name),
                for_terminal(&f.error)
            );
        }
    }
    if !run.checks.is_empty() {
        let _ = writeln!(out, "\nChecks");
        let rows: Vec<Vec<String>> = run
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.path(),
                    c.passes.to_string(),
                    c.fails.to_string(),
                    format!("{:.2}", c.fail_pct()),
                ]
            })
            .collect();
        text_table(
            &mut out,
            &["check", "passes", "fails", "fail %"],
            &rows,
            false,
        );
    }
    if !run.exceptions.is_empty() {
        let _ = writeln!(out, "\nExceptions");
        for e in run.exceptions.iter().take(20) {
            let first_line = e.message.lines().next().unwrap_or_default();
            let _ = writeln!(out, "  {:>6}x  {first_line}", e.count);
        }
    }
    let notes = run
        .notes
        .iter()
        .chain(run.history.iter().flat_map(|h| h.notes.iter()));
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// Outside text made inert in Markdown: it can neither add cells to a table (`|`), nor
/// become a link, an image, an HTML comment or tag, code or emphasis, nor break a line.
/// Every ASCII punctuation character may be backslash-escaped in CommonMark.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '&' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The report as Markdown, safe for a terminal and inert as Markdown (see [`cell`]).
pub fn render_markdown(report: &Report) -> String {
    let mut clean = report.clone();
    sanitize_for_terminal(&mut clean);
    write_markdown(&clean)
}

fn write_markdown(report: &Report) -> String {
    let mut out = String::new();
    let run = &report.run;
    let verdict = if report.verdict.passed {
        "✅ PASS"
    } else {
        "❌ FAIL"
    };
    let _ = writeln!(out, "# Load test report: {verdict}\n");
    for reason in &report.verdict.reasons {
        let _ = writeln!(out, "- {}", cell(reason));
    }
    if let Some(g) = run.generation {
        let _ = writeln!(out, "\nFormat: {g}\n");
    }
    if !run.endpoints.is_empty() {
        let _ = writeln!(out, "## Endpoints\n");
        let _ = writeln!(out, "| {} |", ENDPOINT_COLUMNS.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(ENDPOINT_COLUMNS.len()));
        for e in run.endpoints.iter().chain(run.aggregate.iter()) {
            let row: Vec<String> = endpoint_row(e).iter().map(|c| cell(c)).collect();
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "\n> ⚠️ {}", cell(w));
    }
    let _ = writeln!(out, "\n## Findings\n");
    if report.findings.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(
            out,
            "| id | severity | kind | endpoint | reason |\n|---|---|---|---|---|"
        );
        for f in &report.findings {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.id,
                f.severity,
                f.kind,
                cell(&f.endpoint),
                cell(&f.reason)
            );
        }
    }
    if let Some(targets) = &report.targets {
        let _ = writeln!(
            out,
            "\n## Targets\n\n| result | endpoint | rule | actual |\n|---|---|---|---|"
        );
        for o in &targets.outcomes {
            let mark = if o.passed { "pass" } else { "**FAIL**" };
            let _ = writeln!(
                out,
                "| {mark} | {} | {} | {} |",
                cell(&o.endpoint),
                cell(&o.rule),
                cell(&o.detail)
            );
        }
        for w in &targets.warnings {
            let _ = writeln!(out, "\n> ⚠️ {}", cell(w));
        }
    }
    if !report.recommendations.is_empty() {
        let _ = writeln!(out, "\n## Recommendations\n");
        for r in &report.recommendations {
            let because = if r.because_of.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.because_of.join(", "))
            };
            let _ = writeln!(out, "- **{}**: {}{because}", r.horizon, cell(&r.action));
        }
    }
    if !report.cache_ttls.is_empty() {
        let _ = writeln!(
            out,
            "\n## Cache TTL\n\n| endpoint | ttl | why |\n|---|---|---|"
        );
        for t in &report.cache_ttls {
            let ttl = t.ttl_secs.map_or("no cache".into(), human_secs);
            let _ = writeln!(
                out,
                "| {} | {ttl} | {} |",
                cell(&t.endpoint),
                cell(&t.reason)
            );
        }
    }
    if let Some(c) = &report.comparison {
        let _ = writeln!(
            out,
            "\n## Compared with {}\n\n{} regression(s), {} improvement(s)\n\n| endpoint | metric | base | current | change |\n|---|---|---|---|---|",
            cell(&c.base_label),
            c.regressions,
            c.improvements
        );
        for e in &c.endpoints {
            for d in e.deltas.iter().filter(|d| d.change != Change::Unchanged) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:?} |",
                    cell(&e.endpoint),
                    d.metric,
                    ms(d.base),
                    ms(d.current),
                    d.change
                );
            }
        }
        for a in &c.added {
            let _ = writeln!(out, "\n- added: {}", cell(a));
        }
        for r in &c.removed {
            let _ = writeln!(out, "\n- removed: {}", cell(r));
        }
    }
    if !report.run.checks.is_empty() {
        let _ = writeln!(
            out,
            "\n## Checks\n\n| check | passes | fails | fail % |\n|---|---:|---:|---:|"
        );
        for c in &report.run.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} |",
                cell(&c.path()),
                c.passes,
                c.fails,
                c.fail_pct()
            );
        }
    }
    out
}
