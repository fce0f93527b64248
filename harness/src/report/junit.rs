//! `--junit FILE`: one test suite per scenario, one test case per cell (via quick-junit), so CI
//! dashboards show each cell. A known failure is reported as skipped (like an expected failure), an
//! unexpected pass as a success whose output says "fixed?".

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::runner::CellResult;
use crate::verdict::Verdict;

pub fn render(run_id: &str, results: &[CellResult]) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new(format!("bkcache run {run_id}"));
    let mut suites: Vec<TestSuite> = Vec::new();
    for r in results {
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
    report.add_test_suites(suites);
    report.to_string()
}

fn test_case(r: &CellResult) -> TestCase {
    let reasons = r.judgement.reasons.join("\n");
    let known = r.judgement.known_issue.clone().unwrap_or_default();
    let status = match r.judgement.verdict {
        Verdict::Pass | Verdict::UnexpectedPass => TestCaseStatus::success(),
        Verdict::KnownFailure => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("known failure reproduced ({known})")).set_description(reasons.clone());
            s
        }
        Verdict::Fail | Verdict::Error => {
            let kind = if r.judgement.verdict == Verdict::Fail { NonSuccessKind::Failure } else { NonSuccessKind::Error };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(r.judgement.reasons.first().cloned().unwrap_or_default()).set_description(reasons.clone());
            s
        }
    };
    let mut case = TestCase::new(r.cell.profile.name.as_str(), status);
    case.set_classname(r.cell.scenario.name.as_str()).set_time(r.duration);
    let profile = &r.cell.profile;
    let mut properties = vec![
        ("verdict", r.judgement.verdict.as_str().to_owned()),
        ("image", profile.image.clone()),
        ("snapshotter", profile.snapshotter.as_str().to_owned()),
    ];
    if let Some(spec) = &profile.buildkit {
        properties.push(("buildkit", spec.version.clone()));
        properties.push(("patches", spec.patch_names().join(",")));
    }
    if let Some(c) = r.caches.last() {
        properties.push(("records_with_layers", format!("{}/{}", c.records_with_layers, c.records)));
    }
    for (k, v) in properties {
        case.add_property(Property::new(k, v));
    }
    if r.judgement.verdict == Verdict::UnexpectedPass {
        case.set_system_out(format!("UNEXPECTED PASS: fixed? ({known})"));
    }
    if let Some(dir) = &r.artifacts {
        case.set_system_err(format!("artifacts: {}", dir.display()));
    }
    case
}
