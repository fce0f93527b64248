//! End-to-end, real BuildKit: what BuildKit does is judged (a build its solver fails is `fail`, or what
//! the scenario expects, or a known issue), repetitions agree (`3/3`) or not (`flaky`), and an
//! interrupted run still writes its reports with the finished cells intact, and one whose output nobody
//! reads finishes.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bkcache_run, builder_running, builders_file, leftovers, repo, run_test_scenario, slow_scenario, variant};
use serde_json::{json, Value};

fn by_scenario(run: &common::Run) -> std::collections::HashMap<String, Value> {
    run.report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["scenario"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

const PLACEHOLDER: &str = "# BUILD-FAILURE-EXPECTATION (the e2e variants replace this line)";

#[tokio::test]
async fn a_build_buildkit_fails_is_judged_by_what_the_scenario_expects() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    variant(dir.path(), "harness/tests/scenarios/build-failure.toml", "unexpected", |t| t);
    variant(dir.path(), "harness/tests/scenarios/build-failure.toml", "expected", |t| {
        t.replace(PLACEHOLDER, "expect_failure = { pattern = 'exit code: 3' }")
    });
    variant(dir.path(), "harness/tests/scenarios/build-failure.toml", "known", |t| {
        let issue = "[[known_issues]]\nid = \"example/solver#1\"\nsnapshotter = \"overlayfs\"\nfails_with = ['did not complete successfully: exit code: 3']\n\n";
        t.replacen("[[phases]]", &format!("{issue}[[phases]]"), 1)
    });
    let run = bkcache_run(
        &[dir.path().to_str().unwrap(), "--builders", &builders_file(), "--builder", "newest-overlayfs"],
        "e2e-failures",
    );
    assert_eq!(run.code(), Some(1), "a build BuildKit failed unexpectedly is a regression");
    let cells = by_scenario(&run);

    let unexpected = &cells["unexpected"];
    assert_eq!(unexpected["verdict"], "fail", "{unexpected:#}");
    assert_eq!(unexpected["errors"], json!([]), "not infrastructure: {unexpected:#}");
    let reason = &unexpected["reasons"][0];
    assert_eq!(reason["kind"], "build-failed");
    assert_eq!(reason["phase"], "import");
    assert!(reason["error"].as_str().unwrap().contains("did not complete successfully: exit code: 3"), "{reason:#}");
    assert!(run.stdout().contains("BuildKit failed the build: ERROR: failed to solve:"), "{}", run.stdout());

    assert_eq!(cells["expected"]["verdict"], "pass", "{:#}", cells["expected"]);
    assert_eq!(cells["known"]["verdict"], "known-failure", "{:#}", cells["known"]);
    assert_eq!(cells["known"]["known_issues"], json!(["example/solver#1"]));
    assert_eq!(leftovers("e2e-failures").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_build_buildkit_refuses_before_any_step_is_an_input_error() {
    require_environment!();
    let run = run_test_scenario("frontend-refused", &["newest-overlayfs"], "e2e-refused");
    assert_eq!(run.code(), Some(2), "an input BuildKit refuses tested nothing: {}", run.stdout());
    let cell = &by_scenario(&run)["frontend-refused"];
    assert_eq!(cell["verdict"], "error", "{cell:#}");
    let error = &cell["repetitions"][0]["errors"][0];
    assert_eq!(error["kind"], "frontend-refused", "{cell:#}");
    assert!(error["error"].as_str().unwrap().contains(r#"unsupported mount type "bogus""#), "{error:#}");
    assert!(run.stdout().contains("rule frontend-refused: phase `export`"), "{}", run.stdout());
    assert_eq!(leftovers("e2e-refused").await, Vec::<String>::new());
}

#[tokio::test]
async fn repeated_cells_that_agree_say_n_of_n() {
    require_environment!();
    let run = bkcache_run(
        &["scenarios/issue-6893.toml", "--builder", "newest-overlayfs", "--builder", "newest-stargz", "--repeat", "3"],
        "e2e-repeat",
    );
    assert_eq!(run.code(), Some(0));
    let cells = run.cells();
    for (builder, verdict) in [("newest-overlayfs", "pass"), ("newest-stargz", "known-failure")] {
        let cell = &cells[builder];
        assert_eq!(cell["verdict"], verdict, "{builder}: {cell:#}");
        assert_eq!(cell["pass_rate"]["finished"], 3);
        assert_eq!(cell["flaky"], false);
        let reps = cell["repetitions"].as_array().unwrap();
        assert_eq!(reps.len(), 3);
        assert!(reps.iter().all(|r| r["verdict"] == verdict), "{builder}: {reps:#?}");
    }
    let table = run.stdout();
    assert!(table.contains("PASS 3/3") && table.contains("known failure reproduced 3/3"), "{table}");
    // every repetition exported its own cache, in its own directory
    let dirs: Vec<&str> = cells["newest-stargz"]["repetitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["artifacts"].as_str().unwrap())
        .collect();
    assert_eq!(dirs.iter().collect::<std::collections::BTreeSet<_>>().len(), 3);
    assert!(dirs.iter().all(|d| Path::new(d).join("cache/main/index.json").exists()));
    assert_eq!(leftovers("e2e-repeat").await, Vec::<String>::new());
}

/// Inline cache: the export build pushes its image with the cache inline, the import build (after a
/// prune) takes it from that image. Real BuildKit v0.33.1 with stargz pushes the image without the
/// inline cache, which the scenario's known issue (scoped by snapshotter and version) explains.
#[tokio::test]
async fn an_inline_cache_in_the_pushed_image_is_imported() {
    require_environment!();
    let run = run_test_scenario("inline-cache", &["newest-overlayfs", "newest-stargz"], "e2e-inline");
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    let cells = run.cells();
    assert_eq!(cells["newest-overlayfs"]["verdict"], "pass", "{:#}", cells["newest-overlayfs"]);
    let lazy = &cells["newest-stargz"];
    assert_eq!(lazy["verdict"], "known-failure", "{lazy:#}");
    assert_eq!(lazy["known_issues"], json!(["bkcache/observed#inline-cache-lazy"]), "{lazy:#}");
    // the step that ran is explained by what the image carried: no inline cache at all
    let reasons = lazy["reasons"].to_string();
    assert!(
        reasons.contains("`inline:export` holds no record: the image was pushed without an inline cache"),
        "{reasons}"
    );
    // and the only trace BuildKit left of it, its log's warning
    assert!(reasons.contains("failed to match any cache with layers"), "{reasons}");
    assert_eq!(leftovers("e2e-inline").await, Vec::<String>::new());
}

/// A `COPY --from` is keyed by what it copies: after its source stage re-ran with another build arg,
/// the COPY of an unchanged file is CACHED and the COPY of a changed one runs, explained by the content
/// key (never by "the step it copies from ran"), read again from the kept artifacts by `bkcache explain`.
#[tokio::test]
async fn a_copy_is_keyed_by_what_it_copies_not_by_its_source_step() {
    require_environment!();
    let args = [
        "harness/tests/scenarios/content-keyed-copy.toml",
        "--builders",
        &builders_file(),
        "--builder",
        "newest-overlayfs",
        "--keep-artifacts",
    ];
    let run = bkcache_run(&args, "e2e-content-key");
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    let cell = &run.cells()["newest-overlayfs"];
    assert_eq!(cell["verdict"], "pass", "{cell:#}");
    let artifacts = cell["repetitions"][0]["artifacts"].as_str().unwrap();
    let explain = common::bkcache().args(["explain", artifacts]).output().unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert_eq!(explain.status.code(), Some(0), "{text}");
    let why = |step: &str| {
        let mut lines = text.lines().skip_while(|l| l.trim() != step);
        lines.next().unwrap_or_else(|| panic!("{step} is not explained: {text}"));
        lines.next().unwrap().trim().to_owned()
    };
    assert!(
        why("[stage-1 3/3] COPY --from=build /changing /changing")
            .contains("what it copies: the checksum of the files it selects changed (content key"),
        "{text}"
    );
    assert!(
        !text.contains("[stage-1 2/3] COPY --from=build /stable /stable\n"),
        "the unchanged COPY was CACHED: {text}"
    );
    assert!(why("[build 2/3] RUN echo \"2\" > /bust").contains("env `BUST` (a build arg or ENV): `1` → `2`"), "{text}");
    assert_eq!(leftovers("e2e-content-key").await, Vec::<String>::new());
}

/// The prune and build options reach buildx and do what BuildKit documents: a prune filtered by age or
/// bounded by size keeps the builder's cache (`RUN echo stable` stays CACHED), `no_cache_filter` re-runs
/// its stage, the builder's own `platform` keeps the cache. Were an option dropped, a phase would break.
/// A prune without `--all` (the build cache only) removes the step's record too.
#[tokio::test]
async fn prune_filters_keep_storage_no_cache_filter_and_platform_take_effect() {
    require_environment!();
    let run = run_test_scenario("build-options", &["newest-overlayfs", "newest-stargz"], "e2e-options");
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    for (builder, cell) in run.cells() {
        assert_eq!(cell["verdict"], "pass", "{builder}: {cell:#}");
        let stable = |phase: &str| {
            cell["repetitions"][0]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["phase"] == phase && s["name"] == "[build 2/2] RUN echo stable > /stable")
                .map(|s| s["cached"].clone())
        };
        assert_eq!(stable("after-filtered-prune"), Some(json!(true)), "{builder}");
        assert_eq!(stable("no-cache-stage"), Some(json!(false)), "{builder}");
        assert_eq!(stable("after-build-cache-prune"), Some(json!(false)), "{builder}");
    }
    assert_eq!(leftovers("e2e-options").await, Vec::<String>::new());
}

/// What a repetition observed, without what differs by design between any two (times, temporary names).
fn comparable(rep: &Value) -> Value {
    let mut steps: Vec<Value> = rep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap();
            let name = name.split_once(" from local:").map_or(name, |(head, _)| head);
            json!([s["phase"], name, s["cached"], s["error"]])
        })
        .collect();
    steps.sort_by_key(|s| s.to_string());
    // a layer blob's digest and compressed size change with every build (file times); the records and
    // their layer counts do not
    let mut caches = rep["caches"].clone();
    for cache in caches.as_array_mut().into_iter().flatten() {
        for entry in cache["entries"].as_array_mut().into_iter().flatten() {
            entry["blobs"] = json!(entry["blobs"].as_array().map_or(0, Vec::len));
            entry.as_object_mut().expect("an entry is an object").remove("bytes");
        }
    }
    json!({ "steps": steps, "caches": caches, "remote_snapshots": rep["laziness"]["remote_snapshots"] })
}

/// A builder reset between repetitions (host::builder) must observe exactly what a new one does:
/// each cell's first repetition runs on a new builder, the next ones on that builder reset.
#[tokio::test]
async fn a_reset_builder_observes_what_a_fresh_one_does() {
    require_environment!();
    let builders = ["newest-overlayfs", "newest-stargz", "v0.24-stargz"];
    let mut args = vec!["scenarios/issue-6893.toml", "--repeat", "3", "--jobs", "1", "--keep-artifacts"];
    args.extend(builders.iter().flat_map(|b| ["--builder", b]));
    let run = bkcache_run(&args, "e2e-reset");
    assert_eq!(run.code(), Some(0));
    let cells = run.cells();
    for builder in builders {
        let reps = cells[builder]["repetitions"].as_array().unwrap();
        let roots: Vec<String> = reps
            .iter()
            .map(|r| {
                let config = Path::new(r["artifacts"].as_str().unwrap()).join("buildkitd.toml");
                let config: toml::Table = std::fs::read_to_string(config).unwrap().parse().unwrap();
                config["root"].as_str().unwrap().to_owned()
            })
            .collect();
        let lives: Vec<String> = (1..=3).map(|l| format!("/var/lib/buildkit/life-{l}")).collect();
        assert_eq!(roots, lives, "{builder}: one builder, new then reset twice");
        let fresh = comparable(&reps[0]);
        assert!(!fresh["steps"].as_array().unwrap().is_empty(), "{builder}: {fresh:#}");
        for reset in &reps[1..] {
            assert_eq!(comparable(reset), fresh, "{builder}: a reset builder observed something else");
        }
    }
    let lazy = &cells["newest-stargz"]["repetitions"][0]["laziness"]["remote_snapshots"];
    assert!(lazy.as_u64().unwrap() > 0, "laziness is part of what must be equal: {lazy}");
    assert_eq!(leftovers("e2e-reset").await, Vec::<String>::new());
}

#[tokio::test]
async fn repetitions_that_disagree_are_flaky_with_their_rate() {
    require_environment!();
    let reports = tempfile::tempdir().unwrap();
    let junit = reports.path().join("junit.xml");
    let markdown = reports.path().join("report.md");
    let coin = repo().join("harness/tests/scenarios/coin.toml");
    let run = bkcache_run(
        &[
            coin.to_str().unwrap(),
            "--builders",
            &builders_file(),
            "--builder",
            "newest-overlayfs",
            "--junit",
            junit.to_str().unwrap(),
            "--markdown",
            markdown.to_str().unwrap(),
        ],
        "e2e-flaky",
    );
    let cell = &run.cells()["newest-overlayfs"];
    let reps = cell["repetitions"].as_array().unwrap();
    assert_eq!(reps.len(), 12, "the scenario says repeat = 12");
    let held = reps.iter().filter(|r| r["verdict"] == "pass").count();
    let broke = reps.iter().filter(|r| r["verdict"] == "fail").count();
    assert_eq!(held + broke, 12, "{reps:#?}");
    assert_eq!(cell["pass_rate"]["held"], held);
    // a fair coin: all 12 alike has probability 2/4096
    assert!(held > 0 && broke > 0, "the coin came out the same 12 times: {reps:#?}");
    assert_eq!(cell["verdict"], "flaky");
    assert_eq!(run.code(), Some(1), "flaky exits 1");
    assert_eq!(
        cell["broken"],
        json!([{ "expectation": "phase `second`: `[stage-1 2/2] COPY --from=coin /coin /coin` CACHED", "repetitions": broke }])
    );
    let stdout = run.stdout();
    assert!(stdout.contains(&format!("FLAKY {held}/12")), "{stdout}");
    assert!(stdout.contains(&format!("broke in {broke}/12")), "{stdout}");
    // artifacts: every broken repetition, and one that held to compare with
    let kept = reps.iter().filter(|r| r["artifacts"].is_string()).count();
    assert_eq!(kept, broke + 1);

    let junit = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(
        junit.matches("<flakyFailure").count(),
        broke - 1,
        "the representative broken repetition is the failure itself: {junit}"
    );
    assert!(junit.contains("<failure"), "{junit}");
    let markdown = std::fs::read_to_string(&markdown).unwrap();
    assert!(markdown.contains(&format!("**flaky {held}/12**")), "{markdown}");
    assert_eq!(leftovers("e2e-flaky").await, Vec::<String>::new());
}

#[tokio::test]
async fn an_interrupted_run_writes_its_reports_and_leaves_nothing() {
    require_environment!();
    let reports = tempfile::tempdir().unwrap();
    let (json_path, junit, markdown) =
        (reports.path().join("r.json"), reports.path().join("r.xml"), reports.path().join("r.md"));
    let mut child = common::bkcache()
        .args(["run", "scenarios/issue-6893.toml", "--repeat", "2", "--jobs", "1", "--run-id", "e2e-sigint"])
        .arg("--artifacts-dir")
        .arg(reports.path().join("artifacts"))
        .arg("--report-json")
        .arg(&json_path)
        .arg("--junit")
        .arg(&junit)
        .arg("--markdown")
        .arg(&markdown)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // interrupt as soon as the first cell finished (its `=>` line), while the second one runs
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "bkcache ended before a cell finished: {seen}");
        seen.push_str(&line);
        if line.contains("issue-6893@v0.24-overlayfs => ") {
            break;
        }
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("interrupted: removing this run's builders"), "{rest}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report["interrupted"], "interrupted");
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "every planned cell is in the report");
    assert_eq!(cells[0]["builder"], "v0.24-overlayfs");
    assert_eq!(cells[0]["verdict"], "pass", "the finished cell is intact: {:#}", cells[0]);
    assert_eq!(cells[0]["pass_rate"]["finished"], 2);
    for cell in &cells[1..] {
        assert_eq!(cell["verdict"], "interrupted", "{cell:#}");
    }
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 4, "{junit}");
    let markdown = std::fs::read_to_string(&markdown).unwrap();
    assert!(markdown.contains("INTERRUPTED after 0/2 repetitions"), "{markdown}");
    assert_eq!(leftovers("e2e-sigint").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_run_whose_output_nobody_reads_still_finishes_and_leaves_nothing() {
    require_environment!();
    let reports = tempfile::tempdir().unwrap();
    let json_path = reports.path().join("r.json");
    // as in `bkcache run ... 2>&1 | head -1`: stdout and stderr are pipes whose readers are gone
    let mut child = common::bkcache()
        .args(["run", "scenarios/issue-6893.toml", "--builder", "newest-overlayfs", "-vv", "--run-id", "e2e-closed"])
        .arg("--artifacts-dir")
        .arg(reports.path().join("artifacts"))
        .arg("--report-json")
        .arg(&json_path)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0), "a closed output stream stopped the run");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report["cells"][0]["verdict"], "pass", "{report:#}");
    assert_eq!(leftovers("e2e-closed").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_builder_that_dies_mid_build_is_infrastructure_not_a_regression() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    slow_scenario(dir.path(), 120);
    let report = dir.path().join("report.json");
    let mut child = common::bkcache()
        .args([
            "run",
            "slow.toml",
            "--builders",
            &builders_file(),
            "--builder",
            "newest-overlayfs",
            "--run-id",
            "e2e-dies",
        ])
        .arg("--report-json")
        .arg(&report)
        .arg("--artifacts-dir")
        .arg(dir.path().join("artifacts"))
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // kill the builder's container once its build runs the step
    let container =
        builder_running("e2e-dies", "sleep 300", &mut child).await.expect("bkcache ended before its build ran");
    assert!(Command::new("docker").args(["kill", &container]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let cell = &report["cells"][0];
    assert_eq!(cell["verdict"], "error", "{cell:#}");
    assert_eq!(cell["reasons"], json!([]), "{cell:#}");
    let error = &cell["errors"][0];
    assert_eq!(error["kind"], "infrastructure", "{cell:#}");
    assert!(
        error["failure"]["context"].as_str().unwrap().contains("the builder's container is no longer running"),
        "{error:#}"
    );
    // the failed cell's artifacts are complete although its builder died: the build's log, buildkitd's
    // log up to its death, what was observed
    let artifacts = Path::new(cell["repetitions"][0]["artifacts"].as_str().unwrap());
    for file in ["slow.rawjson", "buildkitd.log", "observations.json", "buildkitd.toml"] {
        assert!(artifacts.join(file).is_file(), "{file} missing from {}", artifacts.display());
    }
    assert_eq!(leftovers("e2e-dies").await, Vec::<String>::new());
}
