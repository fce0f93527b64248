//! The judge as a table: real observations (captured from real runs, see fixtures/README.md) judged
//! against scenarios and variants of them. Covers every verdict, every error cause, two known issues,
//! and the aggregation of repetitions (flaky).

#[macro_use]
mod common;

use common::repo;

use std::path::Path;

use bkcache::judge::{self, ErrorCause, Judgement, Reason, Verdict};
use bkcache::observe::Observations;
use bkcache::plan::{Cell, Filter};
use bkcache::scenario::{PhaseAction, StepMatcher};
use bkcache::session::{self, PlanOptions};

fn observations(name: &str) -> Observations {
    let path = repo().join("harness/tests/fixtures/observations").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A scenario (repo-relative), rewritten by `edit`, planned on one builder of scenarios/builders.toml.
fn cell(scenario: &str, builder: &str, edit: impl Fn(String) -> String) -> Cell {
    let source = repo().join(scenario);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&source).unwrap();
    let dockerfile_dir = source.parent().unwrap().display().to_string();
    // make the Dockerfile path absolute so the copy can live elsewhere
    let text = text
        .lines()
        .map(|l| match l.strip_prefix("dockerfile = \"") {
            Some(rest) => format!("dockerfile = \"{}/{rest}", dockerfile_dir),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join(Path::new(scenario).file_name().unwrap());
    std::fs::write(&path, edit(text)).unwrap();
    let options = PlanOptions {
        paths: vec![path],
        builders: Some(repo().join("scenarios/builders.toml")),
        filter: Filter { builders: vec![builder.into()], ..Filter::default() },
        buildkit: Vec::new(),
        buildkit_source: Default::default(),
    };
    let plan = session::plan(&options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.cells.len(), 1);
    plan.cells.into_iter().next().unwrap()
}

const SCENARIO_6893: &str = "scenarios/issue-6893.toml";
const FAILURE: &str = "harness/tests/scenarios/build-failure.toml";
const COIN: &str = "harness/tests/scenarios/coin.toml";
const STABLE: &str = "[build 2/3] RUN echo stable > /stable";

fn same(t: String) -> String {
    t
}

fn without_known_issue(t: String) -> String {
    let (start, end) = (t.find("[[known_issues]]").unwrap(), t.find("[[phases]]").unwrap());
    format!("{}{}", &t[..start], &t[end..])
}

fn expectation(line: &'static str) -> impl Fn(String) -> String {
    move |t: String| t.replace("# BUILD-FAILURE-EXPECTATION (the e2e variants replace this line)", line)
}

fn ids(j: &Judgement) -> Vec<&str> {
    j.known_issues.iter().map(|k| k.0.as_str()).collect()
}

#[test]
fn real_6893_cells_judge_as_measured() {
    let pass =
        judge::judge(&cell(SCENARIO_6893, "newest-overlayfs", same), &observations("issue-6893-newest-overlayfs"));
    assert_eq!((pass.verdict, pass.reasons.len(), pass.errors.len()), (Verdict::Pass, 0, 0), "{pass:#?}");
    let v024 = judge::judge(&cell(SCENARIO_6893, "v0.24-overlayfs", same), &observations("issue-6893-v0-24-overlayfs"));
    assert_eq!(v024.verdict, Verdict::Pass);

    for (builder, fixture) in
        [("newest-stargz", "issue-6893-newest-stargz"), ("v0.24-stargz", "issue-6893-v0-24-stargz")]
    {
        let j = judge::judge(&cell(SCENARIO_6893, builder, same), &observations(fixture));
        assert_eq!(j.verdict, Verdict::KnownFailure, "{builder}: {j:#?}");
        assert_eq!(ids(&j), ["moby/buildkit#6893"]);
        assert_eq!(
            j.reasons,
            [Reason::StepRan { phase: "import".into(), step: STABLE.into(), expected: STABLE.into(), why: None }],
            "{builder}"
        );
    }
}

#[test]
fn a_broken_expectation_no_known_issue_explains_is_a_regression() {
    let j = judge::judge(
        &cell(SCENARIO_6893, "newest-stargz", without_known_issue),
        &observations("issue-6893-newest-stargz"),
    );
    assert_eq!(j.verdict, Verdict::Fail);
    assert!(j.known_issues.is_empty());
}

#[test]
fn a_known_issue_that_did_not_reproduce_is_an_unexpected_pass() {
    let on_overlayfs = |t: String| t.replace("snapshotter = \"stargz\"", "snapshotter = \"overlayfs\"");
    let j = judge::judge(
        &cell(SCENARIO_6893, "newest-overlayfs", on_overlayfs),
        &observations("issue-6893-newest-overlayfs"),
    );
    assert_eq!(j.verdict, Verdict::UnexpectedPass);
    assert_eq!(ids(&j), ["moby/buildkit#6893"]);
}

#[test]
fn every_error_cause() {
    // infrastructure: the builder could not be created (its image does not exist)
    let j = judge::judge(&cell(SCENARIO_6893, "newest-overlayfs", same), &observations("builder-not-created"));
    assert_eq!(j.verdict, Verdict::Error);
    assert!(
        matches!(&j.errors[..], [ErrorCause::Infrastructure { failure }] if failure.context == "creating the builder" && failure.error.contains("no-such-tag")),
        "{j:#?}"
    );

    // a matcher that matches no step of a build that ran (only run time can tell)
    let typo = |t: String| {
        t.replace(
            "expect_cached = [\"[build 2/3] RUN echo stable > /stable\"]",
            "expect_cached = [\"[build 2/3] RUN echo stabel > /stable\"]",
        )
    };
    let j = judge::judge(
        &cell(SCENARIO_6893, "newest-overlayfs", |t| typo(without_known_issue(t))),
        &observations("issue-6893-newest-overlayfs"),
    );
    assert_eq!(j.verdict, Verdict::Error);
    assert!(
        matches!(&j.errors[..], [ErrorCause::NoStepMatches { seen, .. }] if seen.iter().any(|s| s == STABLE)),
        "{j:#?}"
    );
    assert!(j.errors[0].to_string().starts_with("rule no-step-matches: phase `import`"), "{}", j.errors[0]);

    // a lazy builder whose buildkitd never mounted a remote layer (here: an eager run's log)
    let j = judge::judge(&cell(SCENARIO_6893, "newest-stargz", same), &observations("issue-6893-newest-overlayfs"));
    assert_eq!(j.verdict, Verdict::Error);
    assert!(matches!(&j.errors[..], [ErrorCause::NotLazy { builder, .. }] if builder == "newest-stargz"), "{j:#?}");
}

#[test]
fn buildkit_failing_a_build_is_judged_not_infrastructure() {
    let failed = observations("build-failure");
    let j = judge::judge(&cell(FAILURE, "newest-overlayfs", same), &failed);
    assert_eq!(j.verdict, Verdict::Fail, "{j:#?}");
    assert!(
        matches!(&j.reasons[..], [Reason::BuildFailed { phase, error }] if phase == "import" && error.contains("exit code: 3")),
        "{j:#?}"
    );
    assert!(j.errors.is_empty());

    let expected = judge::judge(
        &cell(FAILURE, "newest-overlayfs", expectation("expect_failure = { pattern = 'exit code: 3' }")),
        &failed,
    );
    assert_eq!(expected.verdict, Verdict::Pass, "{expected:#?}");

    let other = judge::judge(
        &cell(FAILURE, "newest-overlayfs", expectation("expect_failure = { pattern = 'exit code: 4' }")),
        &failed,
    );
    assert!(
        matches!(&other.reasons[..], [Reason::OtherFailure { error, .. }] if error.contains("exit code: 3")),
        "{other:#?}"
    );
    assert_eq!(other.verdict, Verdict::Fail);

    // expected to fail, but BuildKit built it
    let succeeded = |t: String| {
        t.replace(
            "build_args = { BUST = \"2\" }",
            "build_args = { BUST = \"2\" }\nexpect_failure = { pattern = 'no space left' }",
        )
    };
    let j =
        judge::judge(&cell(SCENARIO_6893, "newest-overlayfs", succeeded), &observations("issue-6893-newest-overlayfs"));
    assert_eq!(j.verdict, Verdict::Fail);
    assert!(matches!(&j.reasons[..], [Reason::BuildSucceeded { phase, .. }] if phase == "import"), "{j:#?}");
}

const REFUSED: &str = "harness/tests/scenarios/frontend-refused.toml";

#[test]
fn a_build_refused_before_any_step_is_an_input_error_not_a_regression() {
    let refused = observations("frontend-refused-newest-overlayfs");
    let j = judge::judge(&cell(REFUSED, "newest-overlayfs", same), &refused);
    assert_eq!(j.verdict, Verdict::Error, "{j:#?}");
    assert!(
        matches!(&j.errors[..], [ErrorCause::FrontendRefused { phase, error }]
            if phase == "export" && error.contains(r#"unsupported mount type "bogus""#)),
        "{j:#?}"
    );
    assert!(j.reasons.is_empty(), "nothing was tested, nothing broke: {j:#?}");
    assert!(j.errors[0].to_string().starts_with("rule frontend-refused: phase `export`"), "{}", j.errors[0]);

    // a known issue naming the refusal does not make it a known failure: the input is at fault
    let known = |t: String| {
        let issue = "[[known_issues]]\nid = \"example/frontend#1\"\nsnapshotter = \"overlayfs\"\nfails_with = ['unsupported mount type']\n\n";
        t.replacen("[[phases]]", &format!("{issue}[[phases]]"), 1)
    };
    assert_eq!(judge::judge(&cell(REFUSED, "newest-overlayfs", known), &refused).verdict, Verdict::Error);

    // a phase that expects the refusal observed what it expects; one that expects another failure did not
    // test it either
    let expecting = |pattern: &'static str| {
        move |t: String| t.replace("expect_ran = ", &format!("expect_failure = {{ pattern = '{pattern}' }}\n# "))
    };
    let j = judge::judge(&cell(REFUSED, "newest-overlayfs", expecting("unsupported mount type")), &refused);
    assert_eq!(j.verdict, Verdict::Pass, "{j:#?}");
    let j = judge::judge(&cell(REFUSED, "newest-overlayfs", expecting("exit code: 3")), &refused);
    assert!(matches!(&j.errors[..], [ErrorCause::FrontendRefused { .. }]), "{j:#?}");

    // on a lazy builder the refusal is the one thing said: it pulled nothing, lazily or not
    let j = judge::judge(&cell(REFUSED, "v0.24-stargz", same), &observations("frontend-refused-v0-24-stargz"));
    assert!(matches!(&j.errors[..], [ErrorCause::FrontendRefused { .. }]), "{j:#?}");

    // the solver failing a step after the same frontend loads is still judged (build-failure's fixture)
    let j = judge::judge(&cell(FAILURE, "newest-overlayfs", same), &observations("build-failure"));
    assert_eq!(j.verdict, Verdict::Fail, "{j:#?}");
}

#[test]
fn a_step_buildkit_merged_with_another_stages_is_named_in_the_error() {
    // captured: `[one 2/2]` and `[two 2/2]` run the same instruction on the same base; BuildKit showed `[two 2/2]`
    let observed = observations("merged-steps-newest-overlayfs");
    let cell = cell("harness/tests/scenarios/merged-steps.toml", "newest-overlayfs", same);
    assert_eq!(judge::judge(&cell, &observed).verdict, Verdict::Pass);
    // the lint refuses the other name; one it let through (a Dockerfile it reads otherwise) is still named
    let j = judge::judge(&expecting_ran(cell.clone(), "[one 2/2] RUN echo same > /same"), &observed);
    assert_eq!(j.verdict, Verdict::Error);
    match &j.errors[..] {
        [e @ ErrorCause::NoStepMatches { merged_with: Some(merged), .. }] => {
            assert_eq!(merged, "[two 2/2] RUN echo same > /same");
            assert!(e.to_string().contains("BuildKit built it once with `[two 2/2] RUN echo same > /same`"), "{e}");
        }
        other => panic!("{other:#?}"),
    }
    // a name that is nobody's stays a plain no-step-matches
    let j = judge::judge(&expecting_ran(cell, "[one 2/2] RUN echo sam > /same"), &observed);
    assert!(matches!(&j.errors[..], [ErrorCause::NoStepMatches { merged_with: None, .. }]), "{j:#?}");
}

/// The cell with every `expect_ran` entry replaced by `step`, past the lint.
fn expecting_ran(mut cell: Cell, step: &str) -> Cell {
    for phase in &mut std::sync::Arc::make_mut(&mut cell.scenario).phases {
        if let PhaseAction::Build(build) = &mut phase.action {
            for e in &mut build.expect_ran {
                e.value = StepMatcher::Exact(step.into());
            }
        }
    }
    cell
}

/// Two known issues on one cell: each explains what it names, and only that.
/// A known issue that breaks `step` (an expectation of the scenario: a `breaks` entry that names none
/// is refused at load) and one that explains build failures, both on overlayfs.
fn two_issues(step: &'static str) -> impl Fn(String) -> String {
    move |t: String| {
        let issues = format!(
            r#"
[[known_issues]]
id = "example/steps#1"
snapshotter = "overlayfs"
breaks = ['{step}']

[[known_issues]]
id = "example/solver#2"
snapshotter = "overlayfs"
fails_with = ['exit code: \d+']
"#
        );
        let at = t.find("[[phases]]").unwrap();
        format!("{}{issues}\n{}", &t[..at], &t[at..])
    }
}

const BEFORE: &str = r#"[2/3] RUN echo "before the failure" > /before"#;

#[test]
fn two_known_issues_each_explain_what_they_name() {
    let ran_before = |t: String| expectation("expect_ran = ['[2/3] RUN echo \"before the failure\" > /before']")(t);
    let j = judge::judge(
        &cell(FAILURE, "newest-overlayfs", |t| two_issues(BEFORE)(ran_before(t))),
        &observations("build-failure"),
    );
    assert_eq!(j.verdict, Verdict::KnownFailure, "{j:#?}");
    assert_eq!(ids(&j), ["example/solver#2"], "the failure is the solver issue's, not the step issue's");

    // on stargz neither applies (both are scoped to overlayfs): the same kind of break is a regression
    let j = judge::judge(
        &cell(SCENARIO_6893, "newest-stargz", |t| two_issues(STABLE)(without_known_issue(t))),
        &observations("issue-6893-newest-stargz"),
    );
    assert_eq!(j.verdict, Verdict::Fail, "{j:#?}");

    // a step the step issue names, on a builder it applies to: explained by it alone
    let on_overlayfs_obs = observations("issue-6893-newest-stargz");
    let j = judge::judge(
        &cell(SCENARIO_6893, "newest-overlayfs", |t| two_issues(STABLE)(without_known_issue(t))),
        &strip_laziness(on_overlayfs_obs),
    );
    assert_eq!(j.verdict, Verdict::KnownFailure, "{j:#?}");
    assert_eq!(ids(&j), ["example/steps#1"]);
}

/// The same observations, seen as from an eager builder (laziness is only judged on lazy ones).
fn strip_laziness(mut o: Observations) -> Observations {
    o.laziness = None;
    o
}

#[test]
fn flaky_aggregation_over_a_held_and_a_broken_repetition_of_one_real_cell() {
    let coin = cell(COIN, "newest-overlayfs", same);
    let held = judge::judge(&coin, &observations("coin-held"));
    let broke = judge::judge(&coin, &observations("coin-broke"));
    assert_eq!((held.verdict, broke.verdict), (Verdict::Pass, Verdict::Fail), "{held:#?} {broke:#?}");

    let v = judge::aggregate(3, &[&held, &broke, &held]);
    assert_eq!((v.verdict, v.flaky, v.rate()), (Verdict::Flaky, true, "2/3".to_owned()));
    assert_eq!((v.good, v.bad), (Some(0), Some(1)));
    assert_eq!(v.broken.len(), 1);
    assert_eq!(v.broken[0].repetitions, 1);
    let expected = judge::Expectation::Cached {
        phase: "second".into(),
        step: "[stage-1 2/2] COPY --from=coin /coin /coin".into(),
    };
    assert_eq!(v.broken[0].expectation, expected);
    assert_eq!(expected.to_string(), "phase `second`: `[stage-1 2/2] COPY --from=coin /coin /coin` CACHED");

    let all = judge::aggregate(3, &[&held, &held, &held]);
    assert_eq!((all.verdict, all.flaky, all.rate()), (Verdict::Pass, false, "3/3".to_owned()));
    let none = judge::aggregate(2, &[&broke, &broke]);
    assert_eq!((none.verdict, none.flaky, none.rate()), (Verdict::Fail, false, "0/2".to_owned()));

    // a known issue that explains every broken repetition: known-failure, flaky noted
    let known = |t: String| {
        let at = t.find("[[phases]]").unwrap();
        let issue = "[[known_issues]]\nid = \"example/coin#3\"\nsnapshotter = \"overlayfs\"\nbreaks = [\"[stage-1 2/2] COPY --from=coin /coin /coin\"]\n\n";
        format!("{}{issue}{}", &t[..at], &t[at..])
    };
    let coin_known = cell(COIN, "newest-overlayfs", known);
    let (held, broke) =
        (judge::judge(&coin_known, &observations("coin-held")), judge::judge(&coin_known, &observations("coin-broke")));
    assert_eq!((held.verdict, broke.verdict), (Verdict::UnexpectedPass, Verdict::KnownFailure));
    let v = judge::aggregate(2, &[&held, &broke]);
    assert_eq!((v.verdict, v.flaky), (Verdict::KnownFailure, true));
    assert_eq!(v.known_issues.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(), ["example/coin#3"]);

    // the same known issue declared intermittent: a repetition where it does not show is a pass
    let intermittent = |t: String| {
        known(t).replace("snapshotter = \"overlayfs\"\n", "snapshotter = \"overlayfs\"\nintermittent = true\n")
    };
    let coin_sometimes = cell(COIN, "newest-overlayfs", intermittent);
    let (held, broke) = (
        judge::judge(&coin_sometimes, &observations("coin-held")),
        judge::judge(&coin_sometimes, &observations("coin-broke")),
    );
    assert_eq!((held.verdict, broke.verdict), (Verdict::Pass, Verdict::KnownFailure));
    assert!(held.known_issues.is_empty());
    let v = judge::aggregate(2, &[&held, &broke]);
    assert_eq!((v.verdict, v.flaky, v.rate()), (Verdict::KnownFailure, true, "1/2".to_owned()));
    assert_eq!(judge::aggregate(2, &[&held, &held]).verdict, Verdict::Pass);

    // a repetition that could not test makes the cell an error; unfinished repetitions, interrupted
    let error = judge::judge(&coin, &observations("builder-not-created"));
    assert_eq!(judge::aggregate(2, &[&held, &error]).verdict, Verdict::Error);
    assert_eq!(judge::aggregate(3, &[&held]).verdict, Verdict::Interrupted);
}

const CONTENT: &str = "scenarios/issue-6893-family/content-restored.toml";

#[test]
fn file_checks_judge_the_bytes_a_real_import_build_wrote() {
    // overlayfs restored /unique (the export's bytes) and made /bust again
    let j = judge::judge(&cell(CONTENT, "newest-overlayfs", same), &observations("content-restored-newest-overlayfs"));
    assert_eq!((j.verdict, j.reasons.len(), j.errors.len()), (Verdict::Pass, 0, 0), "{j:#?}");

    // stargz ran the step again (#6893): other bytes, explained by the known issue's breaks_files
    let stargz = observations("content-restored-newest-stargz");
    let file_broke = Reason::FileContent {
        phase: "import".into(),
        path: "/unique".into(),
        other_phase: "export".into(),
        expected_same: true,
    };
    let j = judge::judge(&cell(CONTENT, "newest-stargz", same), &stargz);
    assert_eq!(j.verdict, Verdict::KnownFailure, "{j:#?}");
    assert!(j.reasons.contains(&file_broke), "{j:#?}");

    // without breaks_files the known issue explains the step but not the content: a regression
    let steps_only = |t: String| t.replace("breaks_files = [\"/unique\"]\n", "");
    let j = judge::judge(&cell(CONTENT, "newest-stargz", steps_only), &stargz);
    assert_eq!(j.verdict, Verdict::Fail, "{j:#?}");

    // expecting the restored file to differ breaks on the builder that restored it
    let inverted = |t: String| t.replace("{ path = \"/unique\", same_as", "{ path = \"/unique\", differs_from");
    let j =
        judge::judge(&cell(CONTENT, "newest-overlayfs", inverted), &observations("content-restored-newest-overlayfs"));
    assert_eq!(j.verdict, Verdict::Fail);
    assert_eq!(
        j.reasons,
        [Reason::FileContent {
            phase: "import".into(),
            path: "/unique".into(),
            other_phase: "export".into(),
            expected_same: false
        }]
    );

    // a file the export's output had and the import's lacks broke the check (the real observation with
    // the import's /unique taken out)
    let mut lost = observations("content-restored-newest-overlayfs");
    let import = lost.phases.iter_mut().find(|p| p.phase == "import").unwrap();
    if let bkcache::observe::PhaseOutcome::Build { files, .. } = &mut import.outcome {
        files.insert("/unique".into(), None);
    }
    let j = judge::judge(&cell(CONTENT, "newest-overlayfs", same), &lost);
    assert_eq!(j.verdict, Verdict::Fail, "{j:#?}");
    assert!(matches!(&j.reasons[..], [Reason::FileMissing { path, .. }] if path == "/unique"), "{j:#?}");

    // a path the earlier output does not hold cannot be judged: error, naming the rule
    let missing = |t: String| t.replace("{ path = \"/bust\"", "{ path = \"/nope\"");
    let j =
        judge::judge(&cell(CONTENT, "newest-overlayfs", missing), &observations("content-restored-newest-overlayfs"));
    assert_eq!(j.verdict, Verdict::Error);
    assert!(matches!(&j.errors[..], [ErrorCause::NoFile { path, .. }] if path == "/nope"), "{j:#?}");
}

#[test]
fn a_cache_that_lost_a_blob_is_judged_from_what_the_carrying_build_did() {
    const LOST: &str = "scenarios/public-issues/lost-cache-blob.toml";
    let fixed = observations("lost-cache-blob-newest-overlayfs");
    let j = judge::judge(&cell(LOST, "newest-overlayfs", same), &fixed);
    assert_eq!(j.verdict, Verdict::Pass, "{j:#?}");

    // v0.25.0 (#6261): BuildKit fails the build that carries the cache on, a regression
    let j = judge::judge(&cell(LOST, "newest-overlayfs", same), &observations("lost-cache-blob-v0-25-0-overlayfs"));
    assert_eq!(j.verdict, Verdict::Fail, "{j:#?}");
    assert!(
        matches!(&j.reasons[..], [Reason::BuildFailed { phase, error }] if phase == "carry" && error.contains("failed to load result from remote")),
        "{j:#?}"
    );

    // a delete-layers phase that found nothing to delete tested nothing: error, naming the rule
    let mut nothing = fixed;
    for p in &mut nothing.phases {
        if let bkcache::observe::PhaseOutcome::LayersDeleted { layers, .. } = &mut p.outcome {
            *layers = 0;
        }
    }
    let j = judge::judge(&cell(LOST, "newest-overlayfs", same), &nothing);
    assert_eq!(j.verdict, Verdict::Error, "{j:#?}");
    assert!(matches!(&j.errors[..], [ErrorCause::NoLayer { phase, .. }] if phase == "lose-blob"), "{j:#?}");
}
