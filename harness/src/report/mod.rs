//! Reporters: they consume the session's events (live lines, and the final [`RunReport`] a
//! `RunFinished` / `RunInterrupted` event carries) and never run anything themselves.

pub(crate) mod compare;
pub(crate) mod forensics;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod terminal;

use crate::events::{CellResult, RunReport};
use crate::judge::Verdict;
use crate::profiles::BuilderProfile;

/// Unique values in first-seen order: reports list scenarios, builders and issues in plan order.
pub(crate) fn ordered<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// A profile's BuildKit build (release + patch set): a row of the Markdown tables and the long layout.
pub(crate) fn build_label(profile: &BuilderProfile) -> String {
    match &profile.buildkit {
        Some(spec) if spec.patches.is_empty() => format!("{} (no patch)", spec.version),
        Some(spec) => format!("{} + {}", spec.version, spec.patch_names().join(" + ")),
        None => profile.image.clone(),
    }
}

/// The cell's verdict in words, with its repetition count when it ran more than once:
/// `PASS 20/20`, `flaky 8/10`, `known failure reproduced 20/20`.
pub(crate) fn verdict_words(r: &CellResult) -> String {
    let v = &r.verdict;
    let label = match v.verdict {
        Verdict::KnownFailure if v.flaky => {
            format!("known failure reproduced, flaky: reproduced {}/{}", v.finished - v.held, v.finished)
        }
        Verdict::KnownFailure => "known failure reproduced".to_owned(),
        Verdict::UnexpectedPass => "UNEXPECTED PASS: fixed?".to_owned(),
        Verdict::Flaky => format!("FLAKY {}", v.rate()),
        Verdict::Interrupted => format!("INTERRUPTED after {}/{} repetitions", v.finished, v.planned),
        other => other.as_str().to_uppercase(),
    };
    let counted = v.planned > 1 && !matches!(v.verdict, Verdict::Flaky | Verdict::Interrupted) && !v.flaky;
    if counted {
        format!("{label} {}/{}", v.finished, v.planned)
    } else {
        label
    }
}

/// A verdict in a word or two, for the compact table: `pass`, `FAIL`, `known`, `fixed?`, `flaky 3/5`.
pub(crate) fn verdict_word(r: &CellResult) -> String {
    match r.verdict.verdict {
        Verdict::Pass => "pass".into(),
        Verdict::Fail => "FAIL".into(),
        Verdict::KnownFailure => "known".into(),
        Verdict::UnexpectedPass => "fixed?".into(),
        Verdict::Flaky => format!("flaky {}", r.verdict.rate()),
        Verdict::Error => "ERROR".into(),
        Verdict::Interrupted => "interrupted".into(),
    }
}

/// The known issues behind a verdict, as `a, b`.
pub(crate) fn issue_list(r: &CellResult) -> Option<String> {
    let ids = &r.verdict.known_issues;
    (!ids.is_empty()).then(|| ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

/// The process exit code: 130 when interrupted; else 1 when some cell is `fail` or `flaky` (a
/// regression signal); else 2 when some cell could not be judged (`error`); else 0.
pub fn exit_code(report: &RunReport) -> i32 {
    let any = |v: Verdict| report.cells.iter().any(|r| r.verdict.verdict == v);
    if report.interrupted.is_some() {
        130
    } else if any(Verdict::Fail) || any(Verdict::Flaky) {
        1
    } else if any(Verdict::Error) {
        2
    } else {
        0
    }
}
