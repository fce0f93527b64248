//! A cell's verdict from its repetitions' verdicts.
//!
//! All repetitions agree → that verdict (N/N). They disagree → `flaky`, unless a known issue explains
//! every broken repetition (then `known-failure`, with the reproduction rate noted). A repetition that
//! could not test (`error`) makes the cell `error`; a cell whose repetitions did not all finish is
//! `interrupted`.

use serde::Serialize;

use super::{Expectation, Judgement, Verdict};
use crate::scenario::KnownIssueId;

/// The cell's verdict over its repetitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellVerdict {
    pub verdict: Verdict,
    pub planned: u32,
    /// Repetitions that finished.
    pub finished: u32,
    /// Repetitions in which every expectation held (the pass rate is `held / finished`).
    pub held: u32,
    /// Whether repetitions disagreed.
    pub flaky: bool,
    /// How often each expectation broke, by expectation, in first-broken order.
    pub broken: Vec<BrokenCount>,
    pub known_issues: Vec<KnownIssueId>,
    /// Indices of a repetition where every expectation held and of one where one broke: the pair to
    /// compare when the cell is flaky.
    pub good: Option<u32>,
    pub bad: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BrokenCount {
    /// In reports, the expectation's sentence.
    #[serde(serialize_with = "as_sentence")]
    #[schemars(with = "String")]
    pub expectation: Expectation,
    pub repetitions: u32,
}

fn as_sentence<S: serde::Serializer>(expectation: &Expectation, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(expectation)
}

impl CellVerdict {
    /// `3/3`, `8/10`: repetitions where every expectation held, of those that finished.
    pub fn rate(&self) -> String {
        format!("{}/{}", self.held, self.finished)
    }

    /// The repetition that speaks for the cell: a broken one if any, else the first.
    pub fn representative(&self) -> Option<u32> {
        self.bad.or(self.good).or((self.finished > 0).then_some(0))
    }
}

/// Aggregates the judgements of the repetitions that finished (in repetition order).
pub fn aggregate(planned: u32, judgements: &[&Judgement]) -> CellVerdict {
    let finished = judgements.len() as u32;
    let held = judgements.iter().filter(|j| j.verdict.held()).count() as u32;
    let index_of = |pred: &dyn Fn(&Judgement) -> bool| judgements.iter().position(|j| pred(j)).map(|i| i as u32);
    let good = index_of(&|j| j.verdict.held());
    let bad = index_of(&|j| matches!(j.verdict, Verdict::Fail | Verdict::KnownFailure | Verdict::Error));

    let mut counts: Vec<BrokenCount> = Vec::new();
    for j in judgements {
        let mut seen_here: Vec<Expectation> = Vec::new();
        for e in j.reasons.iter().map(|r| r.expectation()) {
            if seen_here.contains(&e) {
                continue;
            }
            match counts.iter_mut().find(|c| c.expectation == e) {
                Some(c) => c.repetitions += 1,
                None => counts.push(BrokenCount { expectation: e.clone(), repetitions: 1 }),
            }
            seen_here.push(e);
        }
    }

    let mut known_issues: Vec<KnownIssueId> = Vec::new();
    for id in judgements.iter().flat_map(|j| j.known_issues.iter()) {
        if !known_issues.contains(id) {
            known_issues.push(id.clone());
        }
    }

    let verdicts: Vec<Verdict> = judgements.iter().map(|j| j.verdict).collect();
    let any = |v: Verdict| verdicts.contains(&v);
    let flaky = !verdicts.is_empty() && !verdicts.iter().all(|v| *v == verdicts[0]);
    let verdict = if finished < planned {
        Verdict::Interrupted
    } else if any(Verdict::Error) {
        Verdict::Error
    } else if !flaky {
        verdicts[0]
    } else if any(Verdict::KnownFailure) && !any(Verdict::Fail) {
        Verdict::KnownFailure
    } else {
        Verdict::Flaky
    };
    CellVerdict { verdict, planned, finished, held, flaky, broken: counts, known_issues, good, bad }
}
