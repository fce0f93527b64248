//! Judge: a pure function from a cell's scenario and one repetition's [`Observations`] to a verdict with
//! typed reasons; [`aggregate`] turns the repetitions' verdicts into the cell's.
//!
//! What BuildKit did is judged, whatever it was: a build its solver failed is a broken expectation (every
//! build is expected to succeed unless the phase says `expect_failure`), the regression signal. `error` is
//! kept for what could not test the cell: the machine failed (infrastructure), BuildKit refused the input
//! before any step ran, an expectation matched no step of a build that ran, or a lazy cell pulled its
//! bases eagerly. A known issue that applies to the
//! builder turns the broken expectations it names (steps via `breaks`, build failures via `fails_with`)
//! into `known-failure`, and their absence into `unexpected-pass` ("fixed?").

mod aggregate;
pub(crate) mod compare;
pub mod crosscheck;

pub use aggregate::{aggregate, BrokenCount, CellVerdict};

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::errors::InfraFailure;
use crate::observe::forensics::Miss;
use crate::observe::progress::Step;
use crate::observe::{Observations, PhaseOutcome};
use crate::plan::Cell;
use crate::scenario::{BuildPhase, KnownIssue, KnownIssueId, PhaseAction, StepMatcher};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    KnownFailure,
    UnexpectedPass,
    /// Repetitions disagreed and no known issue explains every broken one.
    Flaky,
    Error,
    /// The run was interrupted before every repetition of the cell finished.
    Interrupted,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::KnownFailure => "known-failure",
            Verdict::UnexpectedPass => "unexpected-pass",
            Verdict::Flaky => "flaky",
            Verdict::Error => "error",
            Verdict::Interrupted => "interrupted",
        }
    }

    /// Every expectation held in this repetition.
    pub fn held(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::UnexpectedPass)
    }
}

/// An expectation that broke: what BuildKit did against what the scenario said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// Expected CACHED, but the step ran; `why`: the cache forensics' explanation, when there is one.
    StepRan {
        phase: String,
        step: String,
        expected: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// Expected to run, but the step was CACHED.
    StepCached { phase: String, step: String, expected: String },
    /// BuildKit failed a build that was expected to succeed.
    BuildFailed { phase: String, error: String },
    /// The build was expected to fail (with an error matching `expected_error`) but succeeded.
    BuildSucceeded { phase: String, expected_error: String },
    /// The build failed, but not with the expected error.
    OtherFailure { phase: String, expected_error: String, error: String },
    /// A file of the build's output was expected to be the same bytes as in an earlier build's (restored
    /// from the cache) or other bytes (made again), and was not.
    FileContent { phase: String, path: String, other_phase: String, expected_same: bool },
    /// A file the earlier build's output had is missing from this build's.
    FileMissing { phase: String, path: String, other_phase: String, expected_same: bool },
}

impl Reason {
    /// The expectation it broke, independent of which step broke it: what flaky statistics count.
    pub fn expectation(&self) -> Expectation {
        match self {
            Reason::StepRan { phase, expected, .. } => {
                Expectation::Cached { phase: phase.clone(), step: expected.clone() }
            }
            Reason::StepCached { phase, expected, .. } => {
                Expectation::Runs { phase: phase.clone(), step: expected.clone() }
            }
            Reason::BuildFailed { phase, .. } => Expectation::Succeeds { phase: phase.clone() },
            Reason::BuildSucceeded { phase, expected_error } | Reason::OtherFailure { phase, expected_error, .. } => {
                Expectation::FailsWith { phase: phase.clone(), error: expected_error.clone() }
            }
            Reason::FileContent { phase, path, other_phase, expected_same }
            | Reason::FileMissing { phase, path, other_phase, expected_same } => Expectation::File {
                phase: phase.clone(),
                path: path.clone(),
                other_phase: other_phase.clone(),
                same: *expected_same,
            },
        }
    }
}

/// One expectation of a scenario's phase, as flaky statistics count it (shown as a sentence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// A step (as the scenario matches it) comes out CACHED.
    Cached { phase: String, step: String },
    /// A step runs.
    Runs { phase: String, step: String },
    /// The build succeeds.
    Succeeds { phase: String },
    /// The build fails with an error matching the pattern.
    FailsWith { phase: String, error: String },
    /// A file of the build's output is (or is not) the same as in another phase's.
    File { phase: String, path: String, other_phase: String, same: bool },
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Cached { phase, step } => write!(f, "phase `{phase}`: `{step}` CACHED"),
            Expectation::Runs { phase, step } => write!(f, "phase `{phase}`: `{step}` runs"),
            Expectation::Succeeds { phase } => write!(f, "phase `{phase}`: the build succeeds"),
            Expectation::FailsWith { phase, error } => write!(f, "phase `{phase}`: the build fails with /{error}/"),
            Expectation::File { phase, path, other_phase, same } => {
                let relation = if *same { "same as" } else { "differs from" };
                write!(f, "phase `{phase}`: {path} {relation} in `{other_phase}`")
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::StepRan { phase, step, why, .. } => {
                write!(f, "phase `{phase}`: expected CACHED: `{step}`, but it ran")?;
                match why {
                    Some(why) => write!(f, ": {why}"),
                    None => Ok(()),
                }
            }
            Reason::StepCached { phase, step, .. } => {
                write!(f, "phase `{phase}`: expected to run: `{step}`, but it was CACHED")
            }
            Reason::BuildFailed { phase, error } => write!(f, "phase `{phase}`: BuildKit failed the build: {error}"),
            Reason::BuildSucceeded { phase, expected_error } => {
                write!(f, "phase `{phase}`: expected the build to fail with /{expected_error}/, but it succeeded")
            }
            Reason::OtherFailure { phase, expected_error, error } => {
                write!(
                    f,
                    "phase `{phase}`: expected the build to fail with /{expected_error}/, but it failed with: {error}"
                )
            }
            Reason::FileContent { phase, path, other_phase, expected_same: true } => write!(
                f,
                "phase `{phase}`: expected {path} to be the bytes phase `{other_phase}` made (restored from the cache), but it has other content (made again)"
            ),
            Reason::FileContent { phase, path, other_phase, expected_same: false } => write!(
                f,
                "phase `{phase}`: expected {path} to be made again, but it is the bytes phase `{other_phase}` made"
            ),
            Reason::FileMissing { phase, path, other_phase, .. } => write!(
                f,
                "phase `{phase}`: {path}, which the output of phase `{other_phase}` has, is missing from this build's output"
            ),
        }
    }
}

/// Why a repetition could not test what it claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ErrorCause {
    /// The machine failed: docker, buildx, the builder, the registry, a timeout.
    Infrastructure { failure: InfraFailure },
    /// A rule only run time can check: an expectation matched no step of a build that ran.
    NoStepMatches {
        phase: String,
        expected: String,
        seen: Vec<String>,
        /// The step BuildKit shows instead when the expected one is the same instruction, on the same
        /// parent, as a step of another stage: it builds the identical op once, under one of the names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merged_with: Option<String>,
    },
    /// A lazy snapshotter that never mounted a remote layer: the cell did not test lazy pulling.
    NotLazy { builder: String, snapshotter: String },
    /// A file check whose file the earlier output it compares with lacks.
    NoFile { phase: String, path: String, missing_in: String },
    /// A delete-layers phase that found no layer to delete: what follows it tests nothing.
    NoLayer { phase: String, from: String },
    /// BuildKit refused the build before any step of it ran (its Dockerfile frontend, or the bases'
    /// metadata): the input is at fault, not the cache, and nothing was tested.
    FrontendRefused { phase: String, error: String },
}

impl fmt::Display for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCause::Infrastructure { failure } => write!(f, "infrastructure: {failure}"),
            ErrorCause::NoStepMatches { phase, expected, merged_with: Some(merged), .. } => write!(
                f,
                "rule no-step-matches: phase `{phase}`: no step matches `{expected}`: BuildKit built it once with `{merged}` (an identical instruction on the same parent in another stage) and shows that name; fix the scenario's step name to it"
            ),
            ErrorCause::NoStepMatches { phase, expected, seen, merged_with: None } => write!(
                f,
                "rule no-step-matches: phase `{phase}`: no step matches `{expected}` (steps seen: {}); fix the scenario's step name",
                seen.join(" | ")
            ),
            ErrorCause::NoFile { phase, path, missing_in } => write!(
                f,
                "rule no-file: phase `{phase}` compares {path} with the output of phase `{missing_in}`, which has no such file; fix the scenario's path"
            ),
            ErrorCause::NoLayer { phase, from } => write!(
                f,
                "rule no-layer: phase `{phase}` found no layer to delete ({from}); fix the scenario's path (or the cache never held that layer)"
            ),
            ErrorCause::FrontendRefused { phase, error } => write!(
                f,
                "rule frontend-refused: phase `{phase}`: BuildKit refused the build before any step ran, so nothing was tested: {error}; fix the Dockerfile (or run it on a BuildKit whose frontend accepts it)"
            ),
            ErrorCause::NotLazy { builder, snapshotter } => write!(
                f,
                "rule lazy-pull: builder `{builder}` uses the {snapshotter} snapshotter but buildkitd never logged \"{}\": the bases were not pulled lazily, so this cell does not test lazy pulling",
                crate::observe::laziness::REMOTE_SNAPSHOT_MARK
            ),
        }
    }
}

/// The verdict of one repetition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The expectations that broke.
    pub reasons: Vec<Reason>,
    /// Why the repetition is an `error`.
    pub errors: Vec<ErrorCause>,
    /// The known issues that explain a `known-failure`, or that should have broken an `unexpected-pass`.
    pub known_issues: Vec<KnownIssueId>,
}

impl Judgement {
    fn new(verdict: Verdict, reasons: Vec<Reason>, errors: Vec<ErrorCause>, known_issues: Vec<KnownIssueId>) -> Self {
        Judgement { verdict, reasons, errors, known_issues }
    }
}

/// A broken expectation with what a known issue would have to name to explain it.
struct Broken<'a> {
    reason: Reason,
    matcher: Option<&'a StepMatcher>,
}

impl Broken<'_> {
    fn explained_by(&self, issue: &KnownIssue) -> bool {
        match (&self.reason, self.matcher) {
            (Reason::StepRan { .. } | Reason::StepCached { .. }, Some(m)) => issue.explains_step(m),
            (Reason::BuildFailed { error, .. } | Reason::OtherFailure { error, .. }, _) => {
                issue.explains_failure(error)
            }
            (Reason::FileContent { path, .. } | Reason::FileMissing { path, .. }, _) => issue.explains_file(path),
            _ => issue.explains_anything(),
        }
    }
}

/// Whether a failed build stopped before any step of it ran: every vertex it reported is one of the
/// frontend's own `[internal]` loads (the build definition, `.dockerignore`, a base's metadata). A cache
/// import (`importing cache manifest ...`) or any Dockerfile step is the solver's, an observation.
fn refused_before_any_step(steps: &[Step]) -> bool {
    steps.iter().all(|s| s.name.starts_with("[internal]"))
}

/// What a repetition's checks found: broken expectations, and why it could not test some.
#[derive(Default)]
struct Findings<'a> {
    broken: Vec<Broken<'a>>,
    errors: Vec<ErrorCause>,
}

impl<'a> Findings<'a> {
    fn broke(&mut self, reason: Reason, matcher: Option<&'a StepMatcher>) {
        self.broken.push(Broken { reason, matcher });
    }
}

/// Judges one repetition of `cell` from what it observed.
pub fn judge(cell: &Cell, observed: &Observations) -> Judgement {
    if let Some(failure) = &observed.infrastructure {
        let errors = vec![ErrorCause::Infrastructure { failure: failure.clone() }];
        return Judgement::new(Verdict::Error, Vec::new(), errors, Vec::new());
    }
    let mut found = Findings::default();
    for p in &observed.phases {
        if let PhaseOutcome::LayersDeleted { from, layers: 0 } = &p.outcome {
            found.errors.push(ErrorCause::NoLayer { phase: p.phase.clone(), from: from.clone() });
        }
    }
    for phase in &cell.scenario.phases {
        let PhaseAction::Build(build) = &phase.action else { continue };
        // absent: an earlier build failed unexpectedly, and this phase built on it
        let Some(seen) = observed.phases.iter().find(|p| p.phase == phase.name.as_str()) else { continue };
        let PhaseOutcome::Build { steps, failure, misses, files, .. } = &seen.outcome else { continue };
        let name = phase.name.to_string();
        if build_outcome(&name, build, steps, failure.as_deref(), &mut found) {
            check_steps(&name, build, steps, misses, &mut found);
            check_files(&name, build, files, observed, &mut found);
        }
    }
    check_laziness(cell, observed, &mut found.errors);
    verdict(cell, found)
}

/// Judges whether the build failed as the phase expects; whether its steps can be judged (a failed
/// build caches nothing).
fn build_outcome(
    name: &str,
    build: &BuildPhase,
    steps: &[Step],
    failure: Option<&str>,
    found: &mut Findings<'_>,
) -> bool {
    let expected = build.expect_failure.as_ref().map(|want| &want.value);
    if let Some(error) = failure.filter(|_| refused_before_any_step(steps)) {
        if !expected.is_some_and(|want| want.is_match(error)) {
            found.errors.push(ErrorCause::FrontendRefused { phase: name.to_owned(), error: error.to_owned() });
            return false;
        }
    }
    let (phase, error) = (name.to_owned(), failure.map(str::to_owned));
    match (error, expected) {
        (Some(error), None) => found.broke(Reason::BuildFailed { phase, error }, None),
        (Some(error), Some(want)) if !want.is_match(&error) => {
            found.broke(Reason::OtherFailure { phase, expected_error: want.to_string(), error }, None)
        }
        (Some(_), Some(_)) => {}
        (None, Some(want)) => {
            found.broke(Reason::BuildSucceeded { phase, expected_error: want.to_string() }, None);
            return true;
        }
        (None, None) => return true,
    }
    false
}

/// Judges the phase's `expect_cached` and `expect_ran` against the steps of its build.
fn check_steps<'a>(name: &str, build: &'a BuildPhase, steps: &[Step], misses: &[Miss], found: &mut Findings<'a>) {
    let checks =
        build.expect_cached.iter().map(|m| (&m.value, true)).chain(build.expect_ran.iter().map(|m| (&m.value, false)));
    for (matcher, want_cached) in checks {
        let matching: Vec<_> = steps.iter().filter(|s| matcher.matches(&s.name)).collect();
        if matching.is_empty() {
            let seen = steps.iter().filter(|s| !s.is_internal()).map(|s| s.name.clone()).collect();
            let merged_with = merged_step(matcher, steps);
            let (phase, expected) = (name.to_owned(), matcher.to_string());
            found.errors.push(ErrorCause::NoStepMatches { phase, expected, seen, merged_with });
            continue;
        }
        for step in matching.into_iter().filter(|s| s.cached != want_cached) {
            let (phase, step, expected) = (name.to_owned(), step.name.clone(), matcher.to_string());
            let reason = if want_cached {
                let why = misses.iter().find(|m| m.step == step).map(|m| m.cause.to_string());
                Reason::StepRan { phase, step, expected, why }
            } else {
                Reason::StepCached { phase, step, expected }
            };
            found.broke(reason, Some(matcher));
        }
    }
}

/// The step an exact expectation names under another stage's label: the same step index and instruction
/// (`[one 2/2] RUN x` seen as `[two 2/3] RUN x`), which is how BuildKit shows an op two stages share.
fn merged_step(matcher: &StepMatcher, steps: &[Step]) -> Option<String> {
    let StepMatcher::Exact(expected) = matcher else { return None };
    let position_and_instruction = |name: &str| {
        let (label, instruction) = name.strip_prefix('[')?.split_once("] ")?;
        let position = label.rsplit(' ').next()?.split('/').next()?.to_owned();
        Some((position, instruction.split_whitespace().collect::<Vec<_>>().join(" ")))
    };
    let wanted = position_and_instruction(expected)?;
    steps
        .iter()
        .filter(|s| !s.is_internal())
        .find(|s| position_and_instruction(&s.name).as_ref() == Some(&wanted))
        .map(|s| s.name.clone())
}

/// Judges the phase's `expect_files` against the outputs of this build and of the phase each names.
fn check_files(
    name: &str,
    build: &BuildPhase,
    files: &BTreeMap<String, Option<String>>,
    observed: &Observations,
    found: &mut Findings<'_>,
) {
    for check in build.expect_files.iter().map(|c| &c.value) {
        let other = observed.phases.iter().find(|p| p.phase == check.phase.as_str()).and_then(|p| match &p.outcome {
            PhaseOutcome::Build { files, .. } => files.get(&check.path).cloned().flatten(),
            PhaseOutcome::Prune | PhaseOutcome::Drift { .. } | PhaseOutcome::LayersDeleted { .. } => None,
        });
        let here = files.get(&check.path).cloned().flatten();
        let Some(other) = &other else {
            let (phase, path, missing_in) = (name.to_owned(), check.path.clone(), check.phase.to_string());
            found.errors.push(ErrorCause::NoFile { phase, path, missing_in });
            continue;
        };
        // a file the earlier output had and this one lacks breaks the check either way
        if here.as_ref().is_none_or(|here| (here == other) != check.same) {
            let (phase, path, other_phase, expected_same) =
                (name.to_owned(), check.path.clone(), check.phase.to_string(), check.same);
            let reason = match here {
                None => Reason::FileMissing { phase, path, other_phase, expected_same },
                Some(_) => Reason::FileContent { phase, path, other_phase, expected_same },
            };
            found.broke(reason, None);
        }
    }
}

/// A lazy builder must have mounted some layer remotely, or the cell did not test lazy pulling. A
/// refused build pulled nothing, lazily or not: the refusal is then the one thing to say.
fn check_laziness(cell: &Cell, observed: &Observations, errors: &mut Vec<ErrorCause>) {
    let profile = &cell.profile;
    let refused = errors.iter().any(|e| matches!(e, ErrorCause::FrontendRefused { .. }));
    if !refused && profile.snapshotter.is_lazy() && !observed.laziness.as_ref().is_some_and(|l| l.is_lazy()) {
        errors.push(ErrorCause::NotLazy {
            builder: profile.name.to_string(),
            snapshotter: profile.snapshotter.as_str().to_owned(),
        });
    }
}

/// The verdict from what the checks found: `error` when something could not be tested, else every
/// broken expectation must be explained by a known issue that applies here.
fn verdict(cell: &Cell, found: Findings<'_>) -> Judgement {
    let Findings { broken, errors } = found;
    let reasons: Vec<Reason> = broken.iter().map(|b| b.reason.clone()).collect();
    if !errors.is_empty() {
        return Judgement::new(Verdict::Error, reasons, errors, Vec::new());
    }
    if broken.is_empty() {
        // an intermittent bug not showing in one repetition is no news; any other is "fixed?"
        let mut expected: Vec<KnownIssueId> = Vec::new();
        for k in cell.known_issues.iter().filter(|k| !k.intermittent) {
            if !expected.contains(&k.id) {
                expected.push(k.id.clone());
            }
        }
        return match expected.is_empty() {
            true => Judgement::new(Verdict::Pass, reasons, errors, Vec::new()),
            false => Judgement::new(Verdict::UnexpectedPass, reasons, errors, expected),
        };
    }
    let mut explaining: Vec<KnownIssueId> = Vec::new();
    for b in &broken {
        match cell.known_issues.iter().find(|k| b.explained_by(k)) {
            Some(k) if !explaining.contains(&k.id) => explaining.push(k.id.clone()),
            Some(_) => {}
            None => return Judgement::new(Verdict::Fail, reasons, errors, Vec::new()),
        }
    }
    Judgement::new(Verdict::KnownFailure, reasons, errors, explaining)
}
