//! The detail of one cell: every part with when it was fetched, why what is unknown is
//! unknown, the deployment history and the shipped tickets.

use ratatui::text::{Line, Span};

use super::super::View;
use super::super::text::{self, fit};
use super::super::theme::Role;
use super::log::wrap_indented;
use super::matrix::version_text;
use crate::engine::model::{Cell, Part};

/// The lines of the detail of `cell` (None: the last snapshot has no such cell), wrapped
/// to `width`.
pub fn lines(cell: Option<&Cell>, width: usize, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let muted = t.style(Role::Muted);
    let short = |s: &str| s.chars().take(10).collect::<String>();
    let mut lines: Vec<Line> = Vec::new();
    let Some(cell) = cell else {
        lines.push(Line::styled(
            "No data for this cell in the last snapshot.",
            muted,
        ));
        return lines;
    };
    let label = |l: &str| Span::styled(format!("{l:<10}"), muted);
    // When each part was fetched, where they differ from the run.
    let as_of = |part: Part| -> Vec<Span<'static>> {
        match cell.stale.get(&part) {
            Some(at) => vec![Span::styled(
                format!(
                    "  (from an earlier run: {}, {})",
                    text::date_clock(at.0, view.offset),
                    text::ago(text::between(at.0, view.now))
                ),
                t.style(Role::MatrixStale),
            )],
            None => vec![],
        }
    };
    let mut deployed = vec![
        label("deployed"),
        Span::styled(
            version_text(cell).unwrap_or_else(|| "nothing".into()),
            t.style(Role::Title),
        ),
    ];
    if let Some(at) = cell.deployed_at {
        deployed.push(Span::raw(format!(
            " since {} ({})",
            text::date_clock(at, view.offset),
            text::ago(text::between(at, view.now))
        )));
    }
    deployed.extend(as_of(Part::Deployment));
    lines.push(Line::from(deployed));
    if let Some(tag) = &cell.tag
        && (cell.resolved.is_some() || version_text(cell).as_deref() != Some(tag.as_str()))
    {
        lines.push(Line::from(vec![label("image"), Span::raw(tag.clone())]));
    }
    if let Some(r) = &cell.resolved {
        let via = match r.via.as_str() {
            "newTag" => "its newTag",
            "replaced tag" => "the tag it replaced",
            "registry" => "the image's revision label",
            other => other,
        };
        lines.push(Line::from(vec![
            label("pinned"),
            Span::raw(format!("digest of {} (from {via})", r.tag)),
        ]));
    }
    if let Some(why) = &cell.unresolved {
        let mut first = true;
        for chunk in wrap_indented(10, why, width) {
            lines.push(Line::from(vec![
                if first {
                    label("unknown")
                } else {
                    Span::raw(" ".repeat(10))
                },
                Span::styled(chunk, t.style(Role::SeverityWarn)),
            ]));
            first = false;
        }
    }
    lines.push(Line::from(vec![
        label("commits"),
        Span::raw(format!(
            "gitops {} · source {}",
            cell.deploy_commit
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "–".into()),
            cell.source_commit
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "not resolved".into())
        )),
    ]));
    let mut build = vec![label("build")];
    match &cell.build {
        None => build.push(Span::styled("no build data", muted)),
        Some(b) => {
            build.push(Span::raw(format!(
                "#{} ",
                b.number.as_deref().unwrap_or("?")
            )));
            build.push(Span::styled(
                b.status.clone().unwrap_or_else(|| "UNKNOWN".into()),
                t.build(b.status.as_deref()),
            ));
            if let Some(state) = b.state.as_deref().filter(|s| *s != "finished") {
                build.push(Span::raw(format!(" ({state})")));
            }
            if let Some(at) = b.finished_at {
                build.push(Span::styled(
                    format!(" finished {}", text::date_clock(at, view.offset)),
                    muted,
                ));
            }
        }
    }
    build.extend(as_of(Part::Build));
    lines.push(Line::from(build));
    let health = if cell.health.is_empty() {
        "no metrics".to_string()
    } else {
        cell.health
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    v.map(text::figure).unwrap_or_else(|| "no data".into())
                )
            })
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let mut health_line = vec![label("health"), Span::raw(health)];
    health_line.extend(as_of(Part::Health));
    lines.push(Line::from(health_line));
    if let Some(url) = cell.build.as_ref().and_then(|b| b.web_url.clone()) {
        lines.push(Line::from(vec![
            label("link"),
            Span::styled(
                fit(&url, width.saturating_sub(10)).into_owned(),
                t.style(Role::Key),
            ),
            Span::styled(
                format!(
                    "  ({} opens it)",
                    view.keys.first(crate::app::action::Action::Browse)
                ),
                muted,
            ),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("Deployment history ({}, newest first)", cell.events.len()),
        t.style(Role::Header),
    ));
    if cell.events.is_empty() {
        lines.push(Line::styled("  no deployments in the window", muted));
    }
    for e in cell.events.iter().rev() {
        let shown = |v: &Option<String>| match v.as_deref() {
            Some(v) => version_text(&Cell {
                tag: Some(v.to_string()),
                ..Cell::default()
            })
            .unwrap_or_default(),
            None => "∅".into(),
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {}  ", text::date_clock(e.at, view.offset)),
                muted,
            ),
            Span::raw(format!("{} → {}", shown(&e.from), shown(&e.to))),
            Span::styled(format!("  {}", short(&e.commit)), muted),
        ]));
    }
    lines.push(Line::raw(""));
    let mut header = vec![Span::styled(
        match &cell.tickets {
            Some(list) => format!("Shipped tickets ({})", list.len()),
            None => "Shipped tickets (unknown)".to_string(),
        },
        t.style(Role::Header),
    )];
    header.extend(as_of(Part::Tickets));
    lines.push(Line::from(header));
    match &cell.tickets {
        None => {
            let why = format!(
                "unknown: {}",
                cell.unresolved.as_deref().unwrap_or("not resolved")
            );
            for chunk in wrap_indented(2, &why, width) {
                lines.push(Line::styled(format!("  {chunk}"), muted));
            }
        }
        Some(list) if list.is_empty() => lines.push(Line::styled(
            "  none found in the shipped pull requests",
            muted,
        )),
        Some(_) => {}
    }
    for tk in cell.tickets.iter().flatten() {
        let status = match (tk.status.as_deref(), tk.in_jira) {
            (Some(s), _) => s,
            (None, Some(false)) => "not in Jira",
            (None, _) => "?",
        };
        let summary = tk.summary.clone().unwrap_or_default();
        let prefix = 2 + 13 + 14;
        let mut first = true;
        for chunk in wrap_indented(prefix, &summary, width)
            .into_iter()
            .chain(summary.is_empty().then(String::new))
        {
            if first {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {:<12} ", tk.key), t.style(Role::Title)),
                    Span::styled(format!("{:<14}", fit(status, 13)), muted),
                    Span::raw(chunk),
                ]));
                first = false;
            } else {
                lines.push(Line::from(vec![
                    Span::raw(" ".repeat(prefix)),
                    Span::raw(chunk),
                ]));
            }
        }
    }
    lines
}
