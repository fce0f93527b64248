//! `--markdown FILE`: a table a maintainer can paste into a pull request. One table per scenario;
//! rows are BuildKit builds (release + patch set), columns are snapshotters, each cell the verdict and
//! how many exported cache records kept their layers.

use std::fmt::Write as _;

use super::{issue_list, ordered, verdict_words};
use crate::judge::Verdict;
use crate::profiles::BuilderProfile;
use crate::session::{CellResult, RunReport};

/// The row a profile belongs to: its BuildKit build.
fn row_label(profile: &BuilderProfile) -> String {
    match &profile.buildkit {
        Some(spec) if spec.patches.is_empty() => format!("{} (no patch)", spec.version),
        Some(spec) => format!("{} + {}", spec.version, spec.patch_names().join(" + ")),
        None => profile.image.clone(),
    }
}

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
    let labels: Vec<(String, &CellResult)> = results.iter().map(|r| (row_label(&r.cell.profile), r)).collect();
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
    out
}
