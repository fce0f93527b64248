//! Comparing one cell's verdicts across BuildKit builds (a release and the one before it; a patch set
//! and its unpatched base). Comparisons ask whether BuildKit's behaviour changed, not whether it was
//! expected: a known failure is a failure here, an unexpected pass a pass.

use serde::Serialize;

use super::{CellVerdict, Verdict};

/// What a cell showed of BuildKit, known issues aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Every expectation held in every repetition.
    Held,
    /// An expectation broke in every repetition.
    Broke,
    /// Some repetitions held, some broke.
    Flaky,
    /// The cell could not test (`error`, `interrupted`).
    Untested,
}

pub fn behaviour(v: &CellVerdict) -> Behaviour {
    match v.verdict {
        Verdict::Pass | Verdict::UnexpectedPass => Behaviour::Held,
        Verdict::Flaky => Behaviour::Flaky,
        Verdict::Fail | Verdict::KnownFailure if v.flaky => Behaviour::Flaky,
        Verdict::Fail | Verdict::KnownFailure => Behaviour::Broke,
        Verdict::Error | Verdict::Interrupted => Behaviour::Untested,
    }
}

/// How a cell changed from one build to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// It broke (or was flaky) before and holds now.
    Fixed,
    /// It held before and breaks (or is flaky) now.
    Broke,
    Unchanged,
    /// One side could not test: nothing can be said.
    Unknown,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Fixed => "fixed",
            Change::Broke => "broke",
            Change::Unchanged => "unchanged",
            Change::Unknown => "unknown",
        }
    }
}

pub fn change(before: Behaviour, after: Behaviour) -> Change {
    use Behaviour::*;
    match (before, after) {
        (Untested, _) | (_, Untested) => Change::Unknown,
        (Broke | Flaky, Held) => Change::Fixed,
        (Held, Broke | Flaky) => Change::Broke,
        _ => Change::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(verdict: Verdict, flaky: bool) -> CellVerdict {
        CellVerdict {
            verdict,
            planned: 3,
            finished: 3,
            held: if flaky { 1 } else { 0 },
            flaky,
            broken: Vec::new(),
            known_issues: Vec::new(),
            good: None,
            bad: None,
        }
    }

    #[test]
    fn behaviour_ignores_known_issues_and_keeps_flakiness() {
        let table = [
            (Verdict::Pass, false, Behaviour::Held),
            (Verdict::UnexpectedPass, false, Behaviour::Held),
            (Verdict::Fail, false, Behaviour::Broke),
            (Verdict::KnownFailure, false, Behaviour::Broke),
            (Verdict::KnownFailure, true, Behaviour::Flaky),
            (Verdict::Flaky, true, Behaviour::Flaky),
            (Verdict::Error, false, Behaviour::Untested),
            (Verdict::Interrupted, false, Behaviour::Untested),
        ];
        for (v, flaky, want) in table {
            assert_eq!(behaviour(&verdict(v, flaky)), want, "{v:?} flaky={flaky}");
        }
    }

    #[test]
    fn changes_between_builds() {
        use Behaviour::*;
        let table = [
            (Held, Held, Change::Unchanged),
            (Broke, Broke, Change::Unchanged),
            (Flaky, Broke, Change::Unchanged),
            (Broke, Held, Change::Fixed),
            (Flaky, Held, Change::Fixed),
            (Held, Broke, Change::Broke),
            (Held, Flaky, Change::Broke),
            (Untested, Held, Change::Unknown),
            (Broke, Untested, Change::Unknown),
        ];
        for (before, after, want) in table {
            assert_eq!(change(before, after), want, "{before:?} -> {after:?}");
        }
    }
}
