//! The terminal: live lines on stderr while running (per phase for a single run of a cell, per
//! repetition when it repeats), then the results table on stdout (scenario rows × builder columns: the
//! eager-vs-lazy and version comparison view) and, below it, the reasons, flaky statistics and artifacts
//! of every cell that did not pass.

use std::fmt::Write as _;
use std::io::Write;

use comfy_table::{presets::UTF8_FULL, Table};

use super::compare;
use super::{build_label, issue_list, ordered, verdict_word, verdict_words};
use crate::events::{CellResult, RepetitionResult, RunReport};
use crate::events::{Event, EventKind};
use crate::judge::compare::Change;
use crate::judge::crosscheck::{self, Observed};
use crate::judge::Verdict;
use crate::observe::forensics::{short, CacheSummary};
use crate::observe::PhaseOutcome;
use crate::output::printable;

/// The terminal reporter: live lines to `err` while the run goes, the summary to `out` when it ends.
/// Everything goes through `printable`; what a closed stream cannot take (`bkcache run | head`) is
/// dropped, and the run goes on to remove what it created.
pub struct Terminal<O, E> {
    out: O,
    err: E,
}

impl Terminal<std::io::Stdout, std::io::Stderr> {
    /// The process's stdout and stderr.
    pub fn stdio() -> Self {
        Terminal { out: std::io::stdout(), err: std::io::stderr() }
    }
}

impl<O: Write, E: Write> Terminal<O, E> {
    pub fn new(out: O, err: E) -> Self {
        Terminal { out, err }
    }

    /// The streams, for a caller that wrote into buffers.
    pub fn into_inner(self) -> (O, E) {
        (self.out, self.err)
    }

    fn err(&mut self, text: String) {
        let _ = writeln!(self.err, "{}", printable(&text));
    }

    fn out(&mut self, text: String) {
        let _ = write!(self.out, "{}", printable(&text));
    }

    /// Consumes one event of the run.
    pub fn event(&mut self, event: Event<'_>) {
        match event.kind {
            EventKind::RunStarted { run_id, cells, repetitions } => {
                self.err(format!("run {run_id}: {cells} cells, {repetitions} repetitions"));
            }
            EventKind::ImageReady { image } => {
                let how = if image.built { "built" } else { "reused" };
                self.err(format!("BuildKit image {} {how}", image.tag));
            }
            EventKind::CellStarted { cell, index, total } => {
                let reps =
                    if cell.repetitions > 1 { format!(", {} repetitions", cell.repetitions) } else { String::new() };
                self.err(format!("[{}/{total}] {} (image {}{reps})", index + 1, cell.name(), cell.profile.image));
            }
            EventKind::PhaseFinished { cell, phase, .. } if cell.repetitions == 1 => {
                let secs = phase.duration_secs;
                let cell = cell.name();
                match &phase.outcome {
                    PhaseOutcome::Prune => self.err(format!("      {cell} {:<8} prune done {secs:.1}s", phase.phase)),
                    PhaseOutcome::Drift { base } => {
                        self.err(format!("      {cell} {:<8} base {base} pushed again {secs:.1}s", phase.phase))
                    }
                    PhaseOutcome::LayersDeleted { from, layers } => {
                        self.err(format!("      {cell} {:<8} {from}: {layers} layers deleted {secs:.1}s", phase.phase))
                    }
                    PhaseOutcome::Build { steps, failure, .. } => {
                        let steps = steps.iter().filter(|s| !s.is_internal());
                        let (total, cached) = steps.fold((0, 0), |(t, c), s| (t + 1, c + usize::from(s.cached)));
                        let status = if failure.is_none() { "ok" } else { "FAILED" };
                        self.err(format!(
                            "      {cell} {:<8} build {status} {secs:.1}s: {total} steps, {cached} cached",
                            phase.phase
                        ));
                    }
                }
            }
            EventKind::RepetitionFinished { cell, repetition } if cell.repetitions > 1 => {
                let v = repetition.judgement.verdict.as_str();
                self.err(format!(
                    "      {} #{}/{} => {v} ({:.1}s)",
                    cell.name(),
                    repetition.index + 1,
                    cell.repetitions,
                    repetition.duration.as_secs_f64()
                ));
            }
            EventKind::CellFinished { result } => {
                let issues = issue_list(result).map(|i| format!(" ({i})")).unwrap_or_default();
                self.err(format!(
                    "      {} => {}{issues} ({:.1}s)",
                    result.cell.name(),
                    verdict_words(result),
                    result.duration.as_secs_f64()
                ));
            }
            EventKind::RunFinished { report } => self.out(summary(report)),
            EventKind::RunInterrupted { signal, report } => {
                self.err(format!("\n{signal}: removing this run's builders; the report holds the cells that finished"));
                self.out(summary(report));
            }
            _ => {}
        }
    }
}

fn cache_line(c: &CacheSummary) -> String {
    match &c.unreadable {
        Some(_) => format!("{} unreadable", c.cache),
        None if c.audit.is_empty() => format!("{}/{} records w/ layers", c.records_with_layers, c.records),
        None => format!("{}/{} records w/ layers, audit: {}", c.records_with_layers, c.records, c.audit.len()),
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

/// The terminal width the results table must fit in.
pub const WIDTH: usize = 100;

fn width(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Scenario rows × builder columns, each cell rendered by `render`.
fn matrix(results: &[CellResult], header: impl Fn(&str) -> String, render: impl Fn(&CellResult) -> String) -> String {
    let builders = ordered(results.iter().map(|r| r.cell.profile.name.as_str()));
    let scenarios = ordered(results.iter().map(|r| r.cell.scenario.name.as_str()));
    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    table.set_header(std::iter::once("scenario".to_owned()).chain(builders.iter().map(|b| header(b))));
    for s in &scenarios {
        let row = builders.iter().map(|b| {
            results
                .iter()
                .find(|r| r.cell.scenario.name == *s && r.cell.profile.name == *b)
                .map_or_else(|| "-".to_owned(), &render)
        });
        table.add_row(std::iter::once(s.to_string()).chain(row));
    }
    format!("{table}\n")
}

/// Per scenario, BuildKit builds × snapshotters: as many builds as a release matrix has, in 100 columns.
fn long_layout(results: &[CellResult]) -> String {
    let mut out = String::new();
    for s in ordered(results.iter().map(|r| r.cell.scenario.name.as_str())) {
        let cells: Vec<&CellResult> = results.iter().filter(|r| r.cell.scenario.name == s).collect();
        let builds = ordered(cells.iter().map(|r| build_label(&r.cell.profile)));
        let snapshotters = ordered(cells.iter().map(|r| r.cell.profile.snapshotter.as_str()));
        let mut table = Table::new();
        table.load_preset(UTF8_FULL);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic).set_width(WIDTH as u16);
        table.set_header(std::iter::once(s).chain(snapshotters.iter().copied()));
        for build in &builds {
            let row = snapshotters.iter().map(|snap| {
                cells
                    .iter()
                    .find(|r| build_label(&r.cell.profile) == *build && r.cell.profile.snapshotter.as_str() == *snap)
                    .map_or_else(
                        || "-".to_owned(),
                        |r| {
                            let issues = issue_list(r).map(|i| format!(" ({i})")).unwrap_or_default();
                            format!("{}{issues}", verdict_words(r))
                        },
                    )
            });
            table.add_row(std::iter::once(build.clone()).chain(row));
        }
        let _ = writeln!(out, "{table}");
    }
    out
}

/// The results table that fits in [`WIDTH`] columns: the full one (verdict, cache, laziness per cell);
/// else verdicts in a word under wrapped builder names; else, for big matrices, one table per scenario.
pub fn results_table(results: &[CellResult]) -> String {
    let full = matrix(results, str::to_owned, table_cell);
    if width(&full) <= WIDTH {
        return full;
    }
    // `v0.24.0-overlayfs` over two lines: `v0.24.0` / `overlayfs`
    let compact =
        matrix(results, |b| b.rsplit_once('-').map_or(b.to_owned(), |(l, r)| format!("{l}\n{r}")), verdict_word);
    if width(&compact) <= WIDTH {
        return format!("{compact}(known = known failure reproduced, fixed? = unexpected pass; details below)\n");
    }
    long_layout(results)
}

/// The final table and the details of every cell that did not pass.
pub fn summary(report: &RunReport) -> String {
    let results = &report.cells;
    let mut out = results_table(results);
    comparisons(&mut out, results);
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
    explanations_checked(&mut out, results);
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

/// The explanations checked against their own facts and, lazy against eager, against each other
/// (`judge::crosscheck`): a line when there is something to check, and every finding.
fn explanations_checked(out: &mut String, results: &[CellResult]) {
    let observed: Vec<Observed<'_>> =
        results.iter().flat_map(|r| r.repetitions.iter().map(|rep| Observed::of(&r.cell, &rep.observations))).collect();
    for o in &observed {
        for i in crosscheck::inconsistencies(o.observations) {
            let _ = writeln!(out, "  !! explanation not borne out by its facts: {}@{} {i}", o.scenario, o.builder);
        }
    }
    let check = crosscheck::contradictions(&observed);
    if check.checked > 0 {
        let _ = writeln!(
            out,
            "eager/lazy cross-check: {} cause(s) of lazy cells' misses held against the eager cells of the same scenario and BuildKit: {} contradiction(s)",
            check.checked,
            check.contradictions.len()
        );
        for c in &check.contradictions {
            let _ = writeln!(out, "  !! {c}");
        }
    }
}

/// Each release against the previous one and each patch set against its base, a line each.
fn comparisons(out: &mut String, results: &[CellResult]) {
    let cells = |list: &[&CellResult]| -> String {
        let names: Vec<String> =
            list.iter().map(|r| format!("{} {}", r.cell.scenario.name, r.cell.profile.snapshotter.as_str())).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    for d in compare::release_deltas(results) {
        if let Some(prev) = &d.previous {
            let _ = writeln!(
                out,
                "{} against {prev}: new failures: {}; fixed: {}; flaky: {}",
                d.version,
                cells(&d.new_failures),
                cells(&d.fixed),
                cells(&d.flaky)
            );
        }
        for (r, _) in d.build_failures.iter().filter(|(_, stands_out)| *stands_out) {
            let _ = writeln!(
                out,
                "  !! {}: BuildKit failed a build of {} {} that the neighbouring releases built",
                d.version,
                r.cell.scenario.name,
                r.cell.profile.snapshotter.as_str()
            );
        }
    }
    for p in compare::patch_impacts(results) {
        let _ = writeln!(
            out,
            "patch set {}: fixed {}, broke {}, unchanged {}, unknown {}",
            p.build,
            p.count(Change::Fixed),
            p.count(Change::Broke),
            p.count(Change::Unchanged),
            p.count(Change::Unknown)
        );
    }
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
        for cache in rep.observations.caches.iter().filter(|c| !c.audit.is_empty()) {
            let records: Vec<String> =
                cache.audit.iter().map(|f| format!("{} {}", f.rule.as_str(), short(&f.record))).collect();
            let _ =
                writeln!(out, "  cache audit of `{}` (phase `{}`): {}", cache.cache, cache.phase, records.join(", "));
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
            let cell = r.cell.id().slug();
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
