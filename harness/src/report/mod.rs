//! Reporters: they consume the runner's events and results, and never run anything themselves.

pub mod json;
pub mod junit;
pub mod markdown;
pub mod terminal;

use crate::runner::CellResult;
use crate::verdict::Verdict;

/// Unique values in first-seen order: reports list scenarios, builders and issues in plan order.
pub(crate) fn ordered<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The process exit code for a finished run: 1 when an expectation broke with no known issue to explain
/// it (a regression), else 2 when some cell could not be judged (infrastructure), else 0.
pub fn exit_code(results: &[CellResult]) -> i32 {
    let any = |v: Verdict| results.iter().any(|r| r.judgement.verdict == v);
    if any(Verdict::Fail) {
        1
    } else if any(Verdict::Error) {
        2
    } else {
        0
    }
}
