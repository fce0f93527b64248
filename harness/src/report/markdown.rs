//! `--markdown FILE`: a table a maintainer can paste into a pull request. One table per scenario;
//! rows are BuildKit builds (release + patch set), columns are snapshotters, each cell the verdict and
//! how many exported cache records kept their layers.

use std::fmt::Write as _;

use super::compare;
use super::{build_label, issue_list, ordered, ordered_owned, verdict_word, verdict_words};
use crate::judge::compare::Change;
use crate::judge::Verdict;
use crate::session::{CellResult, RunReport};

fn cell_text(r: &CellResult) -> String {
    let words = match (r.verdict.verdict, issue_list(r)) {
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
            let _ = writeln!(out, "- `{}`: {}", r.cell.name(), texts.join("; "));
        }
        out.push('\n');
    }
    release_report(&mut out, results);
    patch_impact(&mut out, results);
    out
}

fn place(r: &CellResult) -> String {
    format!("`{}` {}", r.cell.scenario.name, r.cell.profile.snapshotter.as_str())
}

/// The first broken expectation or error, for one-line lists.
fn first_reason(r: &CellResult) -> String {
    let Some(j) = r.judgement() else { return String::new() };
    j.reasons.first().map(ToString::to_string).or_else(|| j.errors.first().map(ToString::to_string)).unwrap_or_default()
}

/// Scenario × snapshotter rows, one column per release, then each release against the one before it.
fn release_report(out: &mut String, results: &[CellResult]) {
    let deltas = compare::release_deltas(results);
    if deltas.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Release report\n");
    let _ = writeln!(
        out,
        "| scenario | snapshotter | {} |",
        deltas.iter().map(|d| d.version.as_str()).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(deltas.len()));
    let places = ordered_owned(
        results.iter().map(|r| format!("{}\u{0}{}", r.cell.scenario.name, r.cell.profile.snapshotter.as_str())),
    );
    for key in &places {
        let (scenario, snapshotter) = key.split_once('\u{0}').expect("joined above");
        let texts: Vec<String> = deltas
            .iter()
            .map(|d| {
                results
                    .iter()
                    .find(|r| {
                        r.cell.scenario.name == scenario
                            && r.cell.profile.snapshotter.as_str() == snapshotter
                            && r.cell
                                .profile
                                .buildkit
                                .as_ref()
                                .is_some_and(|s| s.patches.is_empty() && s.version == d.version)
                    })
                    .map_or_else(
                        || "-".to_owned(),
                        |r| {
                            let word = verdict_word(r);
                            if compare::build_failed(r).is_some() {
                                format!("**{word}: build failed**")
                            } else {
                                word
                            }
                        },
                    )
            })
            .collect();
        let _ = writeln!(out, "| {scenario} | {snapshotter} | {} |", texts.join(" | "));
    }
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
    let _ = writeln!(
        out,
        "| scenario | snapshotter | {} |",
        impacts.iter().map(|p| p.build.as_str()).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(impacts.len()));
    let places = ordered_owned(impacts.iter().flat_map(|p| p.rows.iter().map(|row| place(row.base))));
    for key in &places {
        let texts: Vec<String> = impacts
            .iter()
            .map(|p| {
                p.rows.iter().find(|row| place(row.base) == *key).map_or_else(
                    || "-".to_owned(),
                    |row| match row.change {
                        Change::Unchanged => format!("unchanged ({})", verdict_word(row.patched)),
                        c => format!("**{}** ({} → {})", c.as_str(), verdict_word(row.base), verdict_word(row.patched)),
                    },
                )
            })
            .collect();
        let (scenario, snapshotter) = key.rsplit_once(' ').expect("place has a snapshotter");
        let _ = writeln!(out, "| {} | {snapshotter} | {} |", scenario.trim_matches('`'), texts.join(" | "));
    }
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
