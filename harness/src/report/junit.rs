//! `--junit FILE`: one test suite per scenario, one test case per cell (via quick-junit), so CI
//! dashboards show each cell. A known failure is reported as skipped (like an expected failure), an
//! unexpected pass as a success whose output says "fixed?". A cell that ran several times is written the
//! way nextest writes a test it retried: a flaky cell is a failure whose broken repetitions are
//! `<flakyFailure>` entries, a cell whose repetitions all held but one errored keeps the others as reruns.

use quick_junit::{FlakyOrRerun, NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{issue_list, verdict_words};
use crate::events::{CellResult, RunReport};
use crate::judge::Verdict;

pub fn render(report: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut junit = Report::new(format!("bkcache run {}", report.run_id));
    let mut suites: Vec<TestSuite> = Vec::new();
    for r in &report.cells {
        let scenario = &r.cell.scenario.name;
        let index = match suites.iter().position(|s| s.name.as_str() == scenario.as_str()) {
            Some(i) => i,
            None => {
                suites.push(TestSuite::new(scenario.as_str()));
                suites.len() - 1
            }
        };
        suites[index].add_test_case(test_case(r));
    }
    junit.add_test_suites(suites);
    // XML 1.0 has no place for control characters a scenario or a build log may hold
    junit.to_string().map(|xml| crate::output::printable(&xml).into_owned())
}

fn reasons(r: &CellResult) -> String {
    let Some(j) = r.judgement() else { return String::new() };
    j.reasons
        .iter()
        .map(ToString::to_string)
        .chain(j.errors.iter().map(ToString::to_string))
        .collect::<Vec<_>>()
        .join("\n")
}

fn test_case(r: &CellResult) -> TestCase {
    let words = verdict_words(r);
    let known = issue_list(r).unwrap_or_default();
    let mut status = match r.verdict.verdict {
        Verdict::Pass | Verdict::UnexpectedPass => TestCaseStatus::success(),
        Verdict::KnownFailure => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("{words} ({known})")).set_description(reasons(r));
            s
        }
        Verdict::Fail | Verdict::Flaky | Verdict::Error | Verdict::Interrupted => {
            let kind = if matches!(r.verdict.verdict, Verdict::Fail | Verdict::Flaky) {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(words.clone()).set_description(reasons(r));
            s.set_rerun_kind(FlakyOrRerun::Flaky);
            s
        }
    };
    if r.repetitions.len() > 1 {
        // every repetition but the representative one, as nextest lists the other attempts
        let shown = r.verdict.representative();
        for rep in r.repetitions.iter().filter(|rep| Some(rep.index) != shown && !rep.judgement.verdict.held()) {
            let kind =
                if rep.judgement.verdict == Verdict::Error { NonSuccessKind::Error } else { NonSuccessKind::Failure };
            let mut rerun = TestRerun::new(kind);
            let text: Vec<String> = rep
                .judgement
                .reasons
                .iter()
                .map(ToString::to_string)
                .chain(rep.judgement.errors.iter().map(ToString::to_string))
                .collect();
            rerun
                .set_message(format!("repetition #{}: {}", rep.index + 1, rep.judgement.verdict.as_str()))
                .set_description(text.join("\n"))
                .set_time(rep.duration);
            status.add_rerun(rerun);
        }
    }
    let mut case = TestCase::new(r.cell.profile.name.as_str(), status);
    case.set_classname(r.cell.scenario.name.as_str()).set_time(r.duration);
    let profile = &r.cell.profile;
    let v = &r.verdict;
    let mut properties = vec![
        ("verdict", v.verdict.as_str().to_owned()),
        ("repetitions", v.rate()),
        ("image", profile.image.clone()),
        ("snapshotter", profile.snapshotter.as_str().to_owned()),
    ];
    if let Some(spec) = &profile.buildkit {
        properties.push(("buildkit", spec.version.clone()));
        properties.push(("patches", spec.patch_names().join(",")));
    }
    if let Some(c) = r.representative().and_then(|rep| rep.observations.caches.last()) {
        properties.push(("records_with_layers", format!("{}/{}", c.records_with_layers, c.records)));
    }
    for (k, v) in properties {
        case.add_property(Property::new(k, v));
    }
    if v.verdict == Verdict::UnexpectedPass {
        case.set_system_out(format!("UNEXPECTED PASS: fixed? ({known})"));
    }
    let kept: Vec<String> =
        r.repetitions.iter().filter_map(|rep| rep.artifacts.as_ref()).map(|p| p.display().to_string()).collect();
    if !kept.is_empty() {
        case.set_system_err(format!("artifacts: {}", kept.join(" ")));
    }
    case
}
