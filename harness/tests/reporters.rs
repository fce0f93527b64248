//! The four reporters — terminal (live lines and summary), Markdown, JUnit, JSON — as snapshots of one
//! run made of observations captured from real runs (fixtures/README.md), judged as a run judges them:
//! issue-6893 on the four default profiles (pass and known failure), BuildKit's solver failing a build
//! (fail), a build BuildKit refused (error) and a coin toss that held once and broke once (flaky).
//! Durations are fixed so the snapshots are stable. `cargo insta review` updates them after a change
//! that is meant.

#[macro_use]
mod common;

use common::repo;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bkcache::events::{CellResult, Event, EventKind, RepetitionResult, RunReport};
use bkcache::judge;
use bkcache::observe::Observations;
use bkcache::plan::Cell;
use bkcache::report::{json, junit, markdown, terminal::Terminal};

fn observations(name: &str) -> Observations {
    let path = repo().join("harness/tests/fixtures/observations").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A cell's result from its repetitions' observations, judged and aggregated as a run does.
fn result(mut cell: Cell, repetitions: &[&str]) -> CellResult {
    cell.repetitions = repetitions.len() as u32;
    let repetitions: Vec<RepetitionResult> = repetitions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let observations = observations(name);
            RepetitionResult {
                index: i as u32,
                judgement: judge::judge(&cell, &observations),
                observations,
                artifacts: Some(PathBuf::from(format!("bkcache-artifacts/run/{}-r{}", cell.name(), i + 1))),
                duration: Duration::from_secs(3),
            }
        })
        .collect();
    let judgements: Vec<_> = repetitions.iter().map(|r| &r.judgement).collect();
    let verdict = judge::aggregate(cell.repetitions, &judgements);
    CellResult { cell, verdict, repetitions, duration: Duration::from_secs(3) }
}

fn run() -> RunReport {
    let mut cells = Vec::new();
    for (builder, fixture) in [
        ("v0.24-overlayfs", "issue-6893-v0-24-overlayfs"),
        ("v0.24-stargz", "issue-6893-v0-24-stargz"),
        ("newest-overlayfs", "issue-6893-newest-overlayfs"),
        ("newest-stargz", "issue-6893-newest-stargz"),
    ] {
        cells.push(result(common::planned_cell("scenarios/issue-6893.toml", builder), &[fixture]));
    }
    cells.push(result(
        common::planned_cell("harness/tests/scenarios/build-failure.toml", "newest-overlayfs"),
        &["build-failure"],
    ));
    cells.push(result(
        common::planned_cell("harness/tests/scenarios/frontend-refused.toml", "newest-overlayfs"),
        &["frontend-refused-newest-overlayfs"],
    ));
    cells.push(result(
        common::planned_cell("harness/tests/scenarios/coin.toml", "newest-overlayfs"),
        &["coin-held", "coin-broke"],
    ));
    RunReport {
        run_id: "snapshot".into(),
        docker_engine: "20.10.24+dfsg1 (API 1.41)".into(),
        images: Vec::new(),
        cells,
        interrupted: None,
        duration: Duration::from_secs(21),
    }
}

/// What the terminal shows for the run: each cell's live lines, then the summary.
fn shown(report: &RunReport) -> (String, String) {
    let mut terminal = Terminal::new(Vec::new(), Vec::new());
    let event = |kind| Event { at: SystemTime::UNIX_EPOCH, kind };
    let repetitions = report.cells.iter().map(|c| c.repetitions.len()).sum();
    terminal.event(event(EventKind::RunStarted { run_id: &report.run_id, cells: report.cells.len(), repetitions }));
    for (index, result) in report.cells.iter().enumerate() {
        let cell = &result.cell;
        terminal.event(event(EventKind::CellStarted { cell, index, total: report.cells.len() }));
        for repetition in &result.repetitions {
            for phase in &repetition.observations.phases {
                terminal.event(event(EventKind::PhaseFinished { cell, repetition: repetition.index, phase }));
            }
            terminal.event(event(EventKind::RepetitionFinished { cell, repetition }));
        }
        terminal.event(event(EventKind::CellFinished { result }));
    }
    terminal.event(event(EventKind::RunFinished { report }));
    let (out, err) = terminal.into_inner();
    (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[test]
fn terminal() {
    let (out, err) = shown(&run());
    insta::assert_snapshot!("terminal-live", err);
    insta::assert_snapshot!("terminal-summary", out);
}

#[test]
fn markdown() {
    insta::assert_snapshot!("markdown", markdown::render(&run()));
}

#[test]
fn junit() {
    insta::assert_snapshot!("junit", junit::render(&run()).unwrap());
}

#[test]
fn json() {
    let text = serde_json::to_string_pretty(&json::build(&run())).unwrap();
    insta::assert_snapshot!("json", text);
}

/// The JSON report's schema, published beside the reference (`docs/report.schema.json`).
fn published_schema() -> (PathBuf, serde_json::Value) {
    let path = repo().join("docs/report.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    (path, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The published schema is the one the report's types give (BKCACHE_UPDATE_SCHEMA=1 writes it anew).
#[test]
fn the_published_json_schema_is_the_reports_own() {
    let generated = serde_json::to_value(schemars::schema_for!(json::Report)).unwrap();
    let (path, published) = published_schema();
    if std::env::var("BKCACHE_UPDATE_SCHEMA").as_deref() == Ok("1") {
        std::fs::write(&path, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
        return;
    }
    assert!(
        published == generated,
        "{} is not the schema of the report's types: run BKCACHE_UPDATE_SCHEMA=1 cargo test --test reporters",
        path.display()
    );
}

#[test]
fn a_report_of_real_observations_validates_against_the_schema_and_a_broken_one_does_not() {
    let validator = jsonschema::validator_for(&published_schema().1).unwrap();
    let report = serde_json::to_value(json::build(&run())).unwrap();
    let errors: Vec<String> = validator.iter_errors(&report).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut broken = report.clone();
    broken["cells"][0]["verdict"] = "passed".into();
    broken["cells"][1]["reasons"][0]["kind"] = "step-vanished".into();
    assert_eq!(
        validator.iter_errors(&broken).count(),
        2,
        "{:#?}",
        validator.iter_errors(&broken).map(|e| e.to_string()).collect::<Vec<_>>()
    );
}
