//! A report as plain text, JSON or Markdown.

use std::fmt::Write as _;

use serde::Serialize;

use super::analysis::human_secs;
use super::model::{Change, EndpointStats, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Markdown,
}

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
    let mut text = serde_json::to_string_pretty(&JsonReport {
        schema_version: 1,
        report,
    })
    .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the report: {e}\"}}"));
    text.push('\n');
    text
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

pub fn render_text(report: &Report) -> String {
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
        let _ = writeln!(out, "file: {}", path.display());
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
            let _ = writeln!(
                out,
                "  {:>6}x  {}: {}",
                f.occurrences,
                super::model::endpoint_label(&f.method, &f.name),
                f.error
            );
        }
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
    out
}

/// Escapes a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn render_markdown(report: &Report) -> String {
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
                "| {mark} | {} | `{}` | {} |",
                cell(&o.endpoint),
                o.rule,
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
    out
}
