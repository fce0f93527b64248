//! `--markdown FILE`: a table a maintainer can paste into a pull request. One table per scenario;
//! rows are BuildKit builds (release + patch set), columns are snapshotters, each cell the verdict and
//! how many exported cache records kept their layers.

use std::fmt::Write as _;

use super::compare;
use super::{build_label, issue_list, ordered, verdict_word, verdict_words};
use crate::events::{CellResult, RunReport};
use crate::judge::compare::Change;
use crate::judge::Verdict;

/// Text from a scenario or from BuildKit inside a table cell: a `|` would end the cell, a line break
/// the row.
fn table_text(text: &str) -> String {
    text.replace('|', "\\|").replace("\r\n", "<br>").replace('\n', "<br>")
}

fn cell_text(r: &CellResult) -> String {
    let words = match (r.verdict.verdict, issue_list(r).map(|k| table_text(&k))) {
        (Verdict::Pass, _) => verdict_words(r).to_lowercase(),
        (Verdict::Fail, _) => format!("**{}** (regression)", verdict_words(r)),
        (Verdict::Flaky, _) => format!("**flaky {}**", r.verdict.rate()),
        (Verdict::UnexpectedPass, Some(k)) => format!("**pass: fixed?** ({k})"),
        (_, Some(k)) => format!("{} ({k})", verdict_words(r)),
        (_, None) => verdict_words(r),
    };
    match r.representative().and_then(|rep| rep.observations.caches.last()) {
        Some(c) => format!("{words}<br>records with layers {}/{}", c.records_with_layers, c.records),
        None => words,
    }
}

pub fn render(report: &RunReport) -> String {
    let results = &report.cells;
    let mut out = String::new();
    let labels: Vec<(String, &CellResult)> = results.iter().map(|r| (build_label(&r.cell.profile), r)).collect();
    for scenario in ordered(results.iter().map(|r| r.cell.scenario.name.as_str())) {
        let cells: Vec<&(String, &CellResult)> =
            labels.iter().filter(|(_, r)| r.cell.scenario.name == scenario).collect();
        let rows = ordered(cells.iter().map(|(l, _)| l.as_str()));
        let columns = ordered(cells.iter().map(|(_, r)| r.cell.profile.snapshotter.as_str()));
        let _ = writeln!(out, "### {scenario}\n");
        let _ = writeln!(out, "| BuildKit | {} |", columns.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
        for row in rows {
            let texts: Vec<String> = columns
                .iter()
                .map(|col| {
                    cells
                        .iter()
                        .find(|(l, r)| l == row && r.cell.profile.snapshotter.as_str() == *col)
                        .map_or_else(|| "-".to_owned(), |(_, r)| cell_text(r))
                })
                .collect();
            let _ = writeln!(out, "| {row} | {} |", texts.join(" | "));
        }
        out.push('\n');
        for (_, r) in cells.iter().filter(|(_, r)| r.verdict.verdict != Verdict::Pass) {
            let Some(j) = r.judgement() else { continue };
            let texts: Vec<String> =
                j.reasons.iter().map(ToString::to_string).chain(j.errors.iter().map(ToString::to_string)).collect();
            let _ = writeln!(out, "- `{}`: {}", r.cell.name(), texts.join("; ").replace('\n', " "));
        }
        out.push('\n');
    }
    release_report(&mut out, results);
    patch_impact(&mut out, results);
    crate::output::printable(&out).into_owned()
}

/// `scenario` snapshotter, for lists.
fn place(r: &CellResult) -> String {
    let (scenario, snapshotter) = compare::place(r);
    format!("`{scenario}` {snapshotter}")
}

/// The first broken expectation or error, for one-line lists.
fn first_reason(r: &CellResult) -> String {
    let Some(j) = r.judgement() else { return String::new() };
    j.reasons.first().map(ToString::to_string).or_else(|| j.errors.first().map(ToString::to_string)).unwrap_or_default()
}

/// A comparison table: one row per scenario and snapshotter, one column per build; `cell` renders the
/// entry of a row's place in a column (`None`: that build has no such cell).
fn comparison_table<C>(
    out: &mut String,
    places: Vec<(&str, &str)>,
    columns: &[C],
    title: impl Fn(&C) -> &str,
    cell: impl Fn(&C, (&str, &str)) -> Option<String>,
) {
    let titles: Vec<&str> = columns.iter().map(&title).collect();
    let _ = writeln!(out, "| scenario | snapshotter | {} |", titles.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(columns.len()));
    for place in places {
        let texts: Vec<String> = columns.iter().map(|c| cell(c, place).unwrap_or_else(|| "-".to_owned())).collect();
        let _ = writeln!(out, "| {} | {} | {} |", place.0, place.1, texts.join(" | "));
    }
}

/// Scenario × snapshotter rows, one column per release, then each release against the one before it.
fn release_report(out: &mut String, results: &[CellResult]) {
    let deltas = compare::release_deltas(results);
    if deltas.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Release report\n");
    let places = ordered(results.iter().map(compare::place));
    comparison_table(
        out,
        places,
        &deltas,
        |d| d.version.as_str(),
        |d, place| {
            let r = d.cells.iter().find(|r| compare::place(r) == place)?;
            let word = verdict_word(r);
            Some(if compare::build_failed(r).is_some() { format!("**{word}: build failed**") } else { word })
        },
    );
    out.push('\n');
    for d in &deltas {
        match &d.previous {
            Some(prev) => {
                let _ = writeln!(out, "### {} (against {prev})\n", d.version);
            }
            None => {
                let _ = writeln!(out, "### {} (the oldest release of the run)\n", d.version);
            }
        }
        let list = |cells: &[&CellResult], with_reason: bool| -> String {
            if cells.is_empty() {
                return "none".to_owned();
            }
            cells
                .iter()
                .map(|r| if with_reason { format!("{} ({})", place(r), first_reason(r)) } else { place(r) })
                .collect::<Vec<_>>()
                .join("; ")
        };
        if d.previous.is_some() {
            let _ = writeln!(out, "- new failures: {}", list(&d.new_failures, true));
            let _ = writeln!(out, "- fixed since: {}", list(&d.fixed, false));
        }
        let _ = writeln!(out, "- flaky: {}", list(&d.flaky, false));
        for (r, stands_out) in &d.build_failures {
            let error = compare::build_failed(r).unwrap_or_default();
            if *stands_out {
                let _ = writeln!(
                    out,
                    "- **BuildKit failed a build of {} where the neighbouring releases built it**: {error}",
                    place(r)
                );
            } else {
                let _ = writeln!(out, "- BuildKit failed a build of {}: {error}", place(r));
            }
        }
        out.push('\n');
    }
}

/// Each patch set against the same release and snapshotter without patches: fixed, broke, unchanged.
fn patch_impact(out: &mut String, results: &[CellResult]) {
    let impacts = compare::patch_impacts(results);
    if impacts.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Patch impact\n");
    let _ = writeln!(
        out,
        "Each patch set against its unpatched base (same release, same snapshotter); known issues aside.\n"
    );
    let places = ordered(impacts.iter().flat_map(|p| p.rows.iter().map(|row| compare::place(row.base))));
    comparison_table(
        out,
        places,
        &impacts,
        |p| p.build.as_str(),
        |p, place| {
            let row = p.rows.iter().find(|row| compare::place(row.base) == place)?;
            Some(match row.change {
                Change::Unchanged => format!("unchanged ({})", verdict_word(row.patched)),
                c => format!("**{}** ({} → {})", c.as_str(), verdict_word(row.base), verdict_word(row.patched)),
            })
        },
    );
    let totals: Vec<String> = impacts
        .iter()
        .map(|p| {
            format!(
                "fixed {}, broke {}, unchanged {}{}",
                p.count(Change::Fixed),
                p.count(Change::Broke),
                p.count(Change::Unchanged),
                match p.count(Change::Unknown) {
                    0 => String::new(),
                    n => format!(", unknown {n}"),
                }
            )
        })
        .collect();
    let _ = writeln!(out, "| **total** | | {} |\n", totals.join(" | "));
}
