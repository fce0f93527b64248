//! The terminal: a live line per cell and phase on stderr while running, then the results table on
//! stdout (scenario rows × builder columns: the eager-vs-lazy and version comparison view) and, below
//! it, the reasons and artifacts of every cell that did not pass.

use std::fmt::Write as _;

use comfy_table::{presets::UTF8_FULL, Table};

use super::ordered;
use crate::phase::PhaseRecordKind;
use crate::runner::{CellResult, Event};
use crate::verdict::Verdict;

pub fn live(event: Event<'_>) {
    match event {
        Event::ImageReady { image } => {
            let how = if image.built { "built" } else { "reused" };
            eprintln!("BuildKit image {} {how}", image.tag);
        }
        Event::CellStarted { cell, index, total } => {
            eprintln!("[{}/{total}] {} (image {})", index + 1, cell.name(), cell.profile.image);
        }
        Event::PhaseFinished { cell, record } => {
            let secs = record.duration.as_secs_f64();
            let cell = cell.name();
            match &record.kind {
                PhaseRecordKind::Prune => eprintln!("      {cell} {:<8} prune done {secs:.1}s", record.phase),
                PhaseRecordKind::Build(b) => {
                    let steps = b.progress.steps.iter().filter(|s| !s.is_internal());
                    let (total, cached) = steps.fold((0, 0), |(t, c), s| (t + 1, c + usize::from(s.cached)));
                    let status = if b.succeeded { "ok" } else { "FAILED" };
                    eprintln!("      {cell} {:<8} build {status} {secs:.1}s: {total} steps, {cached} cached", record.phase);
                }
            }
        }
        Event::CellFinished { result } => {
            eprintln!("      {} => {} ({:.1}s)", result.cell.name(), verdict_text(result), result.duration.as_secs_f64());
        }
    }
}

/// The verdict in words, and the known issue it concerns.
fn verdict_label(r: &CellResult) -> (String, Option<&str>) {
    let issue = r.judgement.known_issue.as_deref();
    match r.judgement.verdict {
        Verdict::KnownFailure => ("known failure reproduced".into(), issue),
        Verdict::UnexpectedPass => ("UNEXPECTED PASS: fixed?".into(), issue),
        v => (v.as_str().to_uppercase(), None),
    }
}

fn verdict_text(r: &CellResult) -> String {
    match verdict_label(r) {
        (label, Some(issue)) => format!("{label} ({issue})"),
        (label, None) => label,
    }
}

fn table_cell(r: &CellResult) -> String {
    let mut text = match verdict_label(r) {
        (label, Some(issue)) => format!("{label}\n{issue}"),
        (label, None) => label,
    };
    if let Some(c) = r.caches.last() {
        let _ = write!(text, "\ncache: {}/{} records w/ layers", c.records_with_layers, c.records);
    }
    if let Some(l) = &r.laziness {
        let _ = write!(text, "\nlazy: {} remote mounts", l.remote_snapshots);
    }
    text
}

/// The final table and the details of every cell that did not pass.
pub fn summary(results: &[CellResult]) -> String {
    let builders = ordered(results.iter().map(|r| r.cell.profile.name.as_str()));
    let scenarios = ordered(results.iter().map(|r| r.cell.scenario.name.as_str()));
    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    table.set_header(std::iter::once("scenario").chain(builders.iter().copied()));
    for s in &scenarios {
        let row = builders.iter().map(|b| {
            results
                .iter()
                .find(|r| r.cell.scenario.name == *s && r.cell.profile.name == *b)
                .map_or_else(|| "-".to_owned(), table_cell)
        });
        table.add_row(std::iter::once(s.to_string()).chain(row));
    }
    let mut out = format!("{table}\n");
    for r in results.iter().filter(|r| r.judgement.verdict != Verdict::Pass) {
        let _ = writeln!(out, "\n{}: {}", r.cell.name(), verdict_text(r));
        for reason in &r.judgement.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
        if let Some(dir) = &r.artifacts {
            let _ = writeln!(out, "  artifacts: {}", dir.display());
        }
    }
    let issues = ordered(results.iter().flat_map(|r| r.cell.known_issues.iter().map(|k| k.id.as_str())));
    for id in issues {
        let on = |v: Verdict| -> Vec<&str> {
            results
                .iter()
                .filter(|r| r.judgement.verdict == v && r.judgement.known_issue.as_deref().is_some_and(|k| k.contains(id)))
                .map(|r| r.cell.profile.name.as_str())
                .collect()
        };
        let (reproduced, fixed) = (on(Verdict::KnownFailure), on(Verdict::UnexpectedPass));
        let _ = write!(out, "\nknown issue {id}:");
        if !reproduced.is_empty() {
            let _ = write!(out, " still reproduces on {};", reproduced.join(", "));
        }
        if !fixed.is_empty() {
            let _ = write!(out, " did NOT reproduce (fixed?) on {};", fixed.join(", "));
        }
        out.push('\n');
    }
    let count = |v: Verdict| results.iter().filter(|r| r.judgement.verdict == v).count();
    let _ = writeln!(
        out,
        "\n{} cells: {} pass, {} fail, {} known-failure, {} unexpected-pass, {} error",
        results.len(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::KnownFailure),
        count(Verdict::UnexpectedPass),
        count(Verdict::Error)
    );
    out
}
