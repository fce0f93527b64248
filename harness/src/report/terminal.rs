//! The terminal: live lines on stderr while running (per phase for a single run of a cell, per
//! repetition when it repeats), then the results table on stdout (scenario rows × builder columns: the
//! eager-vs-lazy and version comparison view) and, below it, the reasons, flaky statistics and artifacts
//! of every cell that did not pass.

use std::fmt::Write as _;

use comfy_table::{presets::UTF8_FULL, Table};

use super::{issue_list, ordered, verdict_words};
use crate::events::{Event, EventKind};
use crate::judge::Verdict;
use crate::observe::forensics::CacheSummary;
use crate::observe::PhaseOutcome;
use crate::plan::slug;
use crate::session::{CellResult, RepetitionResult, RunReport};

/// Prints live progress on stderr, and the summary on stdout when the run ends.
pub fn live(event: Event<'_>) {
    match event.kind {
        EventKind::RunStarted { run_id, cells, repetitions } => {
            eprintln!("run {run_id}: {cells} cells, {repetitions} repetitions");
        }
        EventKind::ImageReady { image } => {
            let how = if image.built { "built" } else { "reused" };
            eprintln!("BuildKit image {} {how}", image.tag);
        }
        EventKind::CellStarted { cell, index, total } => {
            let reps = if cell.repetitions > 1 { format!(", {} repetitions", cell.repetitions) } else { String::new() };
            eprintln!("[{}/{total}] {} (image {}{reps})", index + 1, cell.name(), cell.profile.image);
        }
        EventKind::PhaseFinished { cell, phase, .. } if cell.repetitions == 1 => {
            let secs = phase.duration_secs;
            let cell = cell.name();
            match &phase.outcome {
                PhaseOutcome::Prune => eprintln!("      {cell} {:<8} prune done {secs:.1}s", phase.phase),
                PhaseOutcome::Build { steps, failure, .. } => {
                    let steps = steps.iter().filter(|s| !s.is_internal());
                    let (total, cached) = steps.fold((0, 0), |(t, c), s| (t + 1, c + usize::from(s.cached)));
                    let status = if failure.is_none() { "ok" } else { "FAILED" };
                    eprintln!(
                        "      {cell} {:<8} build {status} {secs:.1}s: {total} steps, {cached} cached",
                        phase.phase
                    );
                }
            }
        }
        EventKind::RepetitionFinished { cell, repetition } if cell.repetitions > 1 => {
            let v = repetition.judgement.verdict.as_str();
            eprintln!(
                "      {} #{}/{} => {v} ({:.1}s)",
                cell.name(),
                repetition.index + 1,
                cell.repetitions,
                repetition.duration.as_secs_f64()
            );
        }
        EventKind::CellFinished { result } => {
            let issues = issue_list(result).map(|i| format!(" ({i})")).unwrap_or_default();
            eprintln!(
                "      {} => {}{issues} ({:.1}s)",
                result.cell.name(),
                verdict_words(result),
                result.duration.as_secs_f64()
            );
        }
        EventKind::RunFinished { report } => print!("{}", summary(report)),
        EventKind::RunInterrupted { signal, report } => {
            eprintln!("\n{signal}: removing this run's builders; the report holds the cells that finished");
            print!("{}", summary(report));
        }
        _ => {}
    }
}

fn cache_line(c: &CacheSummary) -> String {
    match &c.unreadable {
        Some(_) => format!("{} unreadable", c.cache),
        None => format!("{}/{} records w/ layers", c.records_with_layers, c.records),
    }
}

fn table_cell(r: &CellResult) -> String {
    let mut text = verdict_words(r);
    if let Some(issues) = issue_list(r) {
        let _ = write!(text, "\n{issues}");
    }
    let v = &r.verdict;
    let rep = |i: Option<u32>| i.and_then(|i| r.repetitions.get(i as usize));
    if let (true, Some(good), Some(bad)) = (v.flaky, rep(v.good), rep(v.bad)) {
        if let (Some(g), Some(b)) = (good.observations.caches.last(), bad.observations.caches.last()) {
            let _ = write!(text, "\ncache good: {}\ncache bad:  {}", cache_line(g), cache_line(b));
        }
    } else if let Some(c) = r.representative().and_then(|rep| rep.observations.caches.last()) {
        let _ = write!(text, "\ncache: {}", cache_line(c));
    }
    if r.cell.profile.snapshotter.is_lazy() {
        if let Some(l) = r.representative().and_then(|rep| rep.observations.laziness.as_ref()) {
            let _ = write!(text, "\nlazy: {} remote mounts", l.remote_snapshots);
        }
    }
    text
}

/// The final table and the details of every cell that did not pass.
pub fn summary(report: &RunReport) -> String {
    let results = &report.cells;
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
    for r in results.iter().filter(|r| r.verdict.verdict != Verdict::Pass) {
        details(&mut out, r);
    }
    let issues = ordered(results.iter().flat_map(|r| r.cell.known_issues.iter().map(|k| k.id.0.as_str())));
    for id in issues {
        // builders when one scenario names the issue; cells (`scenario@builder`) when several do
        let scenarios = ordered(
            results
                .iter()
                .filter(|r| r.cell.known_issues.iter().any(|k| k.id.0 == id))
                .map(|r| r.cell.scenario.name.as_str()),
        );
        let on = |v: Verdict| -> Vec<String> {
            results
                .iter()
                .filter(|r| r.verdict.verdict == v && r.verdict.known_issues.iter().any(|k| k.0 == id))
                .map(|r| if scenarios.len() > 1 { r.cell.name() } else { r.cell.profile.name.to_string() })
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
    let count = |v: Verdict| results.iter().filter(|r| r.verdict.verdict == v).count();
    let repetitions: usize = results.iter().map(|r| r.repetitions.len()).sum();
    let _ = writeln!(
        out,
        "\n{} cells ({repetitions} repetitions, {:.0}s): {} pass, {} fail, {} known-failure, {} unexpected-pass, {} flaky, {} error, {} interrupted",
        results.len(),
        report.duration.as_secs_f64(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::KnownFailure),
        count(Verdict::UnexpectedPass),
        count(Verdict::Flaky),
        count(Verdict::Error),
        count(Verdict::Interrupted)
    );
    out
}

fn details(out: &mut String, r: &CellResult) {
    let issues = issue_list(r).map(|i| format!(" ({i})")).unwrap_or_default();
    let _ = writeln!(out, "\n{}: {}{issues}", r.cell.name(), verdict_words(r));
    let v = &r.verdict;
    if v.planned > 1 {
        let _ = writeln!(out, "  every expectation held in {} of {} repetitions", v.held, v.finished);
        for b in &v.broken {
            let _ = writeln!(out, "  broke in {}/{}: {}", b.repetitions, v.finished, b.expectation);
        }
    }
    if let Some(rep) = r.representative() {
        let label = if v.planned > 1 { format!(" (repetition #{})", rep.index + 1) } else { String::new() };
        for reason in &rep.judgement.reasons {
            let _ = writeln!(out, "  - {reason}{label}");
        }
        for error in &rep.judgement.errors {
            let _ = writeln!(out, "  - {error}{label}");
        }
    }
    if v.flaky {
        for (what, i) in [("good", v.good), ("bad", v.bad)] {
            if let Some(rep) = i.and_then(|i| r.repetitions.get(i as usize)) {
                let _ = writeln!(out, "  {what} #{}: {}", rep.index + 1, cache_summaries(rep));
            }
        }
    }
    let kept: Vec<&RepetitionResult> = r.repetitions.iter().filter(|rep| rep.artifacts.is_some()).collect();
    let dir = |rep: &RepetitionResult| rep.artifacts.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    match kept.as_slice() {
        [] => {}
        [only] if v.planned == 1 => {
            let _ = writeln!(out, "  artifacts: {}", dir(only));
        }
        few if few.len() <= 2 => {
            for rep in few {
                let _ =
                    writeln!(out, "  artifacts #{} ({}): {}", rep.index + 1, rep.judgement.verdict.as_str(), dir(rep));
            }
        }
        many => {
            let parent = many[0]
                .artifacts
                .as_ref()
                .and_then(|p| p.parent())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let numbers: Vec<String> = many.iter().map(|rep| format!("#{}", rep.index + 1)).collect();
            let cell = slug(&r.cell.name());
            let _ = writeln!(
                out,
                "  artifacts of {} repetitions ({}): {parent}/{cell}-r<n>.*",
                many.len(),
                numbers.join(" ")
            );
        }
    }
}

fn cache_summaries(rep: &RepetitionResult) -> String {
    if rep.observations.caches.is_empty() {
        return "no cache exported".into();
    }
    rep.observations
        .caches
        .iter()
        .map(|c| format!("cache `{}`: {}", c.phase, cache_line(c)))
        .collect::<Vec<_>>()
        .join("; ")
}
