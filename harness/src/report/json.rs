//! The machine-readable report (`--report-json`). Other tools read it: the shape is versioned by
//! `schema_version` (2: repetitions, pass rate, typed reasons and errors, `known_issues` as a list), and
//! fields are only ever added within a version.

use serde::Serialize;

use crate::buildkit_spec::EnsuredImage;
use crate::events::{CellResult, RepetitionResult, RunReport};
use crate::judge::{BrokenCount, ErrorCause, Reason, Verdict};
use crate::observe::forensics::CacheSummary;
use crate::observe::laziness::Laziness;
use crate::scenario::KnownIssueId;

pub const SCHEMA_VERSION: u32 = 2;

#[derive(Serialize, schemars::JsonSchema)]
pub struct Report<'a> {
    pub schema_version: u32,
    pub bkcache_version: &'static str,
    pub run_id: &'a str,
    pub docker_engine: &'a str,
    /// `null`, or the signal that stopped the run (cells that did not finish are `interrupted`).
    pub interrupted: Option<&'static str>,
    pub duration_secs: f64,
    /// The BuildKit images this run needed: `built` false means an existing one was reused.
    pub images: &'a [EnsuredImage],
    pub cells: Vec<Cell<'a>>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Cell<'a> {
    /// `scenario@builder`
    pub name: String,
    pub scenario: &'a str,
    pub builder: &'a str,
    pub verdict: Verdict,
    /// The known issues behind a `known-failure`, or that should have broken an `unexpected-pass`.
    pub known_issues: &'a [KnownIssueId],
    pub pass_rate: PassRate,
    /// Whether repetitions disagreed.
    pub flaky: bool,
    /// How many repetitions broke each expectation.
    pub broken: &'a [BrokenCount],
    /// The representative repetition's (a broken one if any, else the first) reasons, errors, steps,
    /// caches and artifacts, for one-line views.
    pub reasons: Vec<Explained<'a, Reason>>,
    pub errors: Vec<Explained<'a, ErrorCause>>,
    pub steps: Vec<Step<'a>>,
    /// The representative repetition's last local cache export.
    pub cache: Option<&'a CacheSummary>,
    pub caches: &'a [CacheSummary],
    /// Lazy-pull evidence, on lazy snapshotters.
    pub laziness: Option<&'a Laziness>,
    pub artifacts: Option<String>,
    pub repetitions: Vec<Repetition<'a>>,
    pub buildkit: BuildKit<'a>,
    pub duration_secs: f64,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct PassRate {
    /// Repetitions in which every expectation held.
    pub held: u32,
    pub finished: u32,
    pub planned: u32,
    pub rate: f64,
}

/// A typed reason or error with its sentence.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Explained<'a, T: Serialize> {
    #[serde(flatten)]
    pub value: &'a T,
    pub text: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Repetition<'a> {
    /// 1-based, as printed.
    pub repetition: u32,
    pub verdict: Verdict,
    pub known_issues: &'a [KnownIssueId],
    pub reasons: Vec<Explained<'a, Reason>>,
    pub errors: Vec<Explained<'a, ErrorCause>>,
    pub steps: Vec<Step<'a>>,
    pub caches: &'a [CacheSummary],
    pub laziness: Option<&'a Laziness>,
    pub artifacts: Option<String>,
    pub duration_secs: f64,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Step<'a> {
    pub name: &'a str,
    pub phase: &'a str,
    pub cached: bool,
    pub error: Option<&'a str>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct BuildKit<'a> {
    pub image: &'a str,
    pub version: Option<&'a str>,
    pub patches: Vec<String>,
    pub snapshotter: &'static str,
    pub buildkitd_flags: Vec<String>,
}

pub fn build(report: &RunReport) -> Report<'_> {
    Report {
        schema_version: SCHEMA_VERSION,
        bkcache_version: env!("CARGO_PKG_VERSION"),
        run_id: &report.run_id,
        docker_engine: &report.docker_engine,
        interrupted: report.interrupted,
        duration_secs: report.duration.as_secs_f64(),
        images: &report.images,
        cells: report.cells.iter().map(cell).collect(),
    }
}

fn explained<T: Serialize + std::fmt::Display>(items: &[T]) -> Vec<Explained<'_, T>> {
    items.iter().map(|value| Explained { value, text: value.to_string() }).collect()
}

fn steps(rep: &RepetitionResult) -> Vec<Step<'_>> {
    rep.observations
        .phases
        .iter()
        .flat_map(|p| {
            p.steps().iter().map(move |s| Step {
                name: &s.name,
                phase: &p.phase,
                cached: s.cached,
                error: s.error.as_deref(),
            })
        })
        .collect()
}

fn repetition(rep: &RepetitionResult) -> Repetition<'_> {
    Repetition {
        repetition: rep.index + 1,
        verdict: rep.judgement.verdict,
        known_issues: &rep.judgement.known_issues,
        reasons: explained(&rep.judgement.reasons),
        errors: explained(&rep.judgement.errors),
        steps: steps(rep),
        caches: &rep.observations.caches,
        laziness: rep.observations.laziness.as_ref(),
        artifacts: rep.artifacts.as_ref().map(|p| p.display().to_string()),
        duration_secs: rep.duration.as_secs_f64(),
    }
}

fn cell(r: &CellResult) -> Cell<'_> {
    let profile = &r.cell.profile;
    let v = &r.verdict;
    let rep = r.representative();
    Cell {
        name: r.cell.name(),
        scenario: r.cell.scenario.name.as_str(),
        builder: profile.name.as_str(),
        verdict: v.verdict,
        known_issues: &v.known_issues,
        pass_rate: PassRate {
            held: v.held,
            finished: v.finished,
            planned: v.planned,
            rate: if v.finished == 0 { 0.0 } else { f64::from(v.held) / f64::from(v.finished) },
        },
        flaky: v.flaky,
        broken: &v.broken,
        reasons: rep.map(|r| explained(&r.judgement.reasons)).unwrap_or_default(),
        errors: rep.map(|r| explained(&r.judgement.errors)).unwrap_or_default(),
        steps: rep.map(steps).unwrap_or_default(),
        cache: rep.and_then(|r| r.observations.caches.last()),
        caches: rep.map_or(&[][..], |r| &r.observations.caches),
        laziness: rep.and_then(|r| r.observations.laziness.as_ref()).filter(|_| profile.snapshotter.is_lazy()),
        artifacts: rep.and_then(|r| r.artifacts.as_ref()).map(|p| p.display().to_string()),
        repetitions: r.repetitions.iter().map(repetition).collect(),
        buildkit: BuildKit {
            image: &profile.image,
            version: profile.buildkit.as_ref().map(|b| b.version.as_str()),
            patches: profile.buildkit.as_ref().map(|b| b.patch_names()).unwrap_or_default(),
            snapshotter: profile.snapshotter.as_str(),
            buildkitd_flags: profile.all_buildkitd_flags(),
        },
        duration_secs: r.duration.as_secs_f64(),
    }
}
