//! Judging a cell: its expectations against what real BuildKit did.
//!
//! `fail` is reserved for a broken expectation, the regression signal. Anything that keeps the cell
//! from testing what it claims (an infrastructure error, a failed build, a matcher that matches no
//! step, a "lazy" cell that pulled eagerly) is `error`. A known issue turns its own broken expectations
//! into `known-failure`, and its absence into `unexpected-pass` ("fixed?").

use serde::Serialize;

use crate::laziness::Laziness;
use crate::phase::{PhaseRecord, PhaseRecordKind};
use crate::plan::Cell;
use crate::progress::Step;
use crate::scenario::{PhaseAction, StepMatcher};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    KnownFailure,
    UnexpectedPass,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::KnownFailure => "known-failure",
            Verdict::UnexpectedPass => "unexpected-pass",
            Verdict::Error => "error",
        }
    }

    /// Whether the cell's artifacts are worth keeping.
    pub fn keeps_artifacts(self) -> bool {
        !matches!(self, Verdict::Pass)
    }
}

#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// The known issue that explains a known failure, or that did not reproduce.
    pub known_issue: Option<String>,
}

/// What the cell observed; `infra_error` is set when the cell could not run to the end.
pub struct Observed<'a> {
    pub records: &'a [PhaseRecord],
    pub laziness: Option<&'a Laziness>,
    pub infra_error: Option<String>,
}

pub fn judge(cell: &Cell, observed: &Observed<'_>) -> Judgement {
    let error = |reasons: Vec<String>| Judgement { verdict: Verdict::Error, reasons, known_issue: None };
    if let Some(e) = &observed.infra_error {
        return error(vec![format!("infrastructure: {e}")]);
    }

    let mut problems = Vec::new();
    let mut broken: Vec<(StepMatcher, String)> = Vec::new();
    for phase in &cell.scenario.phases {
        let PhaseAction::Build(build) = &phase.action else { continue };
        let Some(record) = observed.records.iter().find(|r| r.phase == phase.name) else {
            problems.push(format!("phase `{}` did not run", phase.name));
            continue;
        };
        let PhaseRecordKind::Build(b) = &record.kind else { continue };
        if !b.succeeded {
            problems.push(format!(
                "phase `{}`: the build failed: {}",
                phase.name,
                b.failure.as_deref().unwrap_or("(no message)")
            ));
            continue;
        }
        let checks = build.expect_cached.iter().map(|m| (m, true)).chain(build.expect_ran.iter().map(|m| (m, false)));
        for (matcher, want_cached) in checks {
            let matching: Vec<&Step> = b.progress.steps.iter().filter(|s| matcher.matches(&s.name)).collect();
            if matching.is_empty() {
                let seen: Vec<&str> = b.progress.steps.iter().filter(|s| !s.is_internal()).map(|s| s.name.as_str()).collect();
                problems.push(format!(
                    "phase `{}`: no step matches `{matcher}` (steps seen: {}); fix the scenario's step name",
                    phase.name,
                    seen.join(" | ")
                ));
                continue;
            }
            for step in matching.into_iter().filter(|s| s.cached != want_cached) {
                let reason = if want_cached {
                    format!("phase `{}`: expected CACHED: `{}`, but it ran", phase.name, step.name)
                } else {
                    format!("phase `{}`: expected to run: `{}`, but it was CACHED", phase.name, step.name)
                };
                broken.push((matcher.clone(), reason));
            }
        }
    }
    if cell.profile.snapshotter.is_lazy() && !observed.laziness.is_some_and(Laziness::is_lazy) {
        problems.push(format!(
            "builder `{}` uses the {} snapshotter but buildkitd never logged \"{}\": the bases were not pulled lazily, so this cell does not test lazy pulling",
            cell.profile.name,
            cell.profile.snapshotter.as_str(),
            crate::laziness::REMOTE_SNAPSHOT_MARK
        ));
    }
    if !problems.is_empty() {
        problems.extend(broken.into_iter().map(|(_, r)| r));
        return error(problems);
    }

    let reasons: Vec<String> = broken.iter().map(|(_, r)| r.clone()).collect();
    let explaining = cell
        .known_issues
        .iter()
        .find(|k| broken.iter().all(|(m, _)| k.explains(m)));
    match (broken.is_empty(), explaining) {
        (true, _) if !cell.known_issues.is_empty() => {
            let ids: Vec<&str> = cell.known_issues.iter().map(|k| k.id.as_str()).collect();
            Judgement {
                verdict: Verdict::UnexpectedPass,
                reasons: vec![format!(
                    "fixed? every expectation held, but known issue {} should break this cell",
                    ids.join(", ")
                )],
                known_issue: Some(ids.join(", ")),
            }
        }
        (true, _) => Judgement { verdict: Verdict::Pass, reasons, known_issue: None },
        (false, Some(k)) => Judgement { verdict: Verdict::KnownFailure, reasons, known_issue: Some(k.id.clone()) },
        (false, None) => Judgement { verdict: Verdict::Fail, reasons, known_issue: None },
    }
}
