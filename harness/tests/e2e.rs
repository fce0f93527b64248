//! End-to-end: the real `bkcache` binary on real BuildKit (docker engine, buildx, buildkitd with the
//! stargz snapshotter, local registry), as `bash ci/setup.sh` prepares them.
//!
//! A missing environment fails these tests and names what is missing; they never skip themselves.
//! (Set BKCACHE_SKIP_E2E=1 to skip them on a machine without the set-up: they then say so loudly.)

#[macro_use]
mod common;

use std::path::PathBuf;

use common::{bkcache_ok, bkcache_run, builders_file, leftovers, variant};
use serde_json::Value;

fn steps_named<'a>(cell: &'a Value, phase: &str, matches: impl Fn(&str) -> bool) -> Vec<&'a Value> {
    cell["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == phase && matches(s["name"].as_str().unwrap()))
        .collect()
}

const STABLE: &str = "[build 2/3] RUN echo stable > /stable";

#[tokio::test]
async fn issue_6893_passes_on_overlayfs_and_reproduces_on_stargz() {
    require_environment!();
    let run = bkcache_run(&["scenarios/issue-6893.toml"], "e2e-6893");
    assert_eq!(run.code(), Some(0), "known failures do not fail the run");
    let cells = run.cells();
    assert_eq!(cells.len(), 4);

    for builder in ["v0.24-overlayfs", "newest-overlayfs"] {
        let cell = &cells[builder];
        assert_eq!(cell["verdict"], "pass", "{builder}: {cell:#}");
        let stable = steps_named(cell, "import", |n| n == STABLE);
        assert!(!stable.is_empty() && stable.iter().all(|s| s["cached"] == true), "{builder}: {stable:?}");
        let bust = steps_named(cell, "import", |n| n.starts_with("[build 3/3] RUN echo \"2\""));
        assert!(!bust.is_empty() && bust.iter().all(|s| s["cached"] == false), "{builder}: {bust:?}");
        assert!(cell["artifacts"].is_null(), "a passing cell keeps no artifacts");
    }
    for builder in ["v0.24-stargz", "newest-stargz"] {
        let cell = &cells[builder];
        assert_eq!(cell["verdict"], "known-failure", "{builder}: {cell:#}");
        assert_eq!(cell["known_issues"], serde_json::json!(["moby/buildkit#6893"]));
        let reasons = cell["reasons"].to_string();
        assert!(reasons.contains(STABLE) && reasons.contains("expected CACHED"), "{builder}: {reasons}");
        assert!(cell["laziness"]["remote_snapshots"].as_u64().unwrap() > 0, "{builder}: not lazy");
        let dir = PathBuf::from(cell["artifacts"].as_str().expect("a known failure keeps its artifacts"));
        for kept in ["import.rawjson", "export.rawjson", "buildkitd.log", "cache/main/index.json"] {
            assert!(dir.join(kept).exists(), "{builder}: {kept} not kept in {}", dir.display());
        }
        assert!(dir.starts_with(run.artifacts.path()));
    }

    // Why it ran, from the cache forensics: the record lost its layers (newest) or is missing (v0.24.0).
    let reasons = |b: &str| cells[b]["reasons"].to_string();
    assert!(
        reasons("newest-stargz").contains("but it ran: record present without layers in `local:main`"),
        "{}",
        reasons("newest-stargz")
    );
    assert!(
        reasons("v0.24-stargz").contains("but it ran: no record for it in the imported cache"),
        "{}",
        reasons("v0.24-stargz")
    );

    // The cache summaries: the build stage's records lose their layers (newest) or go missing (v0.24.0).
    let cache = |b: &str, key: &str| cells[b]["cache"][key].as_u64().unwrap_or_else(|| panic!("{b}: no cache.{key}"));
    assert_eq!(cache("newest-stargz", "records"), cache("newest-overlayfs", "records"));
    assert!(cache("newest-stargz", "records_without_layers") > cache("newest-overlayfs", "records_without_layers"));
    assert!(cache("v0.24-stargz", "records") < cache("v0.24-overlayfs", "records"));

    assert_eq!(leftovers("e2e-6893").await, Vec::<String>::new());
    let table = run.stdout();
    assert!(table.contains("known failure reproduced (moby/buildkit#6893)"), "{table}");
}

#[tokio::test]
async fn a_broken_expectation_without_a_known_issue_is_a_regression() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    // drop the [[known_issues]] table: everything from it to the first phase
    let scenario = variant(dir.path(), "scenarios/issue-6893.toml", "variant", |t| {
        let (start, end) = (t.find("[[known_issues]]").unwrap(), t.find("[[phases]]").unwrap());
        format!("{}{}", &t[..start], &t[end..])
    });
    assert!(!std::fs::read_to_string(&scenario).unwrap().contains("known_issues"));
    let run = bkcache_run(
        &[scenario.to_str().unwrap(), "--builders", &builders_file(), "--builder", "newest-stargz"],
        "e2e-regression",
    );
    assert_eq!(run.code(), Some(1), "a regression exits 1");
    let cell = &run.cells()["newest-stargz"];
    assert_eq!(cell["verdict"], "fail");
    assert!(cell["reasons"].to_string().contains(STABLE));
    assert_eq!(leftovers("e2e-regression").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_known_issue_that_does_not_reproduce_is_flagged_as_fixed() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    let scenario = variant(dir.path(), "scenarios/issue-6893.toml", "variant", |t| {
        t.replace("snapshotter = \"stargz\"", "snapshotter = \"overlayfs\"")
    });
    let run = bkcache_run(
        &[scenario.to_str().unwrap(), "--builders", &builders_file(), "--builder", "newest-overlayfs"],
        "e2e-fixed",
    );
    assert_eq!(run.code(), Some(0));
    let cell = &run.cells()["newest-overlayfs"];
    assert_eq!(cell["verdict"], "unexpected-pass");
    assert!(run.stdout().contains("UNEXPECTED PASS: fixed? (moby/buildkit#6893)"), "{}", run.stdout());
}

#[tokio::test]
async fn file_checks_compare_the_bytes_the_builds_wrote() {
    require_environment!();
    // measured (FINDINGS.md): overlayfs restores /unique; stargz runs its step again (#6893), other bytes
    let run = bkcache_run(
        &[
            "scenarios/issue-6893-family/content-restored.toml",
            "--builders",
            &builders_file(),
            "--builder",
            "newest-overlayfs",
            "--builder",
            "newest-stargz",
        ],
        "e2e-files",
    );
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    let cells = run.cells();
    assert_eq!(cells["newest-overlayfs"]["verdict"], "pass");
    let stargz = &cells["newest-stargz"];
    assert_eq!(stargz["verdict"], "known-failure");
    let reasons = stargz["reasons"].to_string();
    assert!(reasons.contains("file-content") && reasons.contains("/unique"), "{reasons}");
    assert_eq!(leftovers("e2e-files").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_declared_base_that_drifts_reaches_the_next_build() {
    require_environment!();
    // measured (FINDINGS.md): after the base moves, its steps run again with the new content, on every builder
    let run = bkcache_run(
        &["scenarios/cache-surprises/base-drift.toml", "--builders", &builders_file(), "--builder", "newest-stargz"],
        "e2e-drift",
    );
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    let cell = &run.cells()["newest-stargz"];
    assert_eq!(cell["verdict"], "pass", "{cell}");
    let live = String::from_utf8_lossy(&run.output.stderr);
    assert!(live.contains("base-moves base APP_BASE pushed again"), "{live}");
    // the builder under test, its helper for the bases, and the pushed refs: all gone
    assert_eq!(leftovers("e2e-drift").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_base_whose_layers_the_registry_lost_comes_only_from_the_cache() {
    require_environment!();
    // measured (FINDINGS.md, moby/buildkit#1906): the unchanged step is CACHED without the registry's layers,
    // the changed one needs the base itself, which the cache does not hold
    let run = bkcache_run(
        &[
            "scenarios/public-issues/root-from-layer.toml",
            "--builders",
            &builders_file(),
            "--builder",
            "newest-overlayfs",
        ],
        "e2e-delete-layers",
    );
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    let cell = &run.cells()["newest-overlayfs"];
    assert_eq!(cell["verdict"], "pass", "{cell}");
    let live = String::from_utf8_lossy(&run.output.stderr);
    assert!(live.contains("delete-layers-2 base BASE: 2 layers deleted"), "{live}");
    let failed: Vec<&str> = cell["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "changed")
        .filter_map(|s| s["error"].as_str())
        .collect();
    assert!(failed.iter().any(|e| e.contains("not found")), "{cell}");
    assert_eq!(leftovers("e2e-delete-layers").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_cache_that_lost_a_layer_blob_is_carried_on_by_the_newest_release() {
    require_environment!();
    // measured (FINDINGS.md, moby/buildkit#6261): the build stage's layer is deleted from the cache
    // directory; v0.33.1 imports it, exports a second cache, and that one restores the COPY
    let run = bkcache_run(
        &[
            "scenarios/public-issues/lost-cache-blob.toml",
            "--builders",
            &builders_file(),
            "--builder",
            "newest-overlayfs",
        ],
        "e2e-lost-blob",
    );
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    assert_eq!(run.cells()["newest-overlayfs"]["verdict"], "pass");
    let live = String::from_utf8_lossy(&run.output.stderr);
    assert!(live.contains("lose-blob cache local:first, layers holding /artifact: 1 layers deleted"), "{live}");
    assert_eq!(leftovers("e2e-lost-blob").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_base_image_is_an_infrastructure_error_before_any_builder() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    let scenario = variant(dir.path(), "scenarios/issue-6893.toml", "variant", |t| {
        t.replace("local = \"base-b\"", "local = \"no-such-base\"")
    });
    let run = bkcache_run(&[scenario.to_str().unwrap(), "--builders", &builders_file()], "e2e-nobase");
    assert_eq!(run.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("base image 127.0.0.1:5000/bkcache/no-such-base:esgz is not in the registry"), "{stderr}");
    assert!(stderr.contains("fix:"), "{stderr}");
    assert_eq!(leftovers("e2e-nobase").await, Vec::<String>::new());
}

/// The registry backend shows the same, and `bkcache cache diff` of the stargz and overlayfs exports
/// lists the build stage's records that lost their layers, by step.
#[tokio::test]
async fn forensics_name_the_step_that_lost_its_layers_with_the_registry_backend() {
    require_environment!();
    let run = bkcache_run(
        &[
            "scenarios/issue-6893-family/registry-backend.toml",
            "--builders",
            &builders_file(),
            "--builder",
            "newest-stargz",
            "--builder",
            "newest-overlayfs",
            "--builder",
            "v0.24-stargz",
            "--keep-artifacts",
        ],
        "e2e-forensics",
    );
    assert_eq!(run.code(), Some(0));
    let cells = run.cells();
    let reasons = cells["newest-stargz"]["reasons"].to_string();
    assert!(reasons.contains("record present without layers in `registry:main`"), "{reasons}");
    // v0.24.0 wrote no record for the step at all, though its mode=max export's build built it
    let reasons = cells["v0.24-stargz"]["reasons"].to_string();
    assert!(reasons.contains("no record for it in the imported cache: `registry:main`"), "{reasons}");
    assert!(reasons.contains("dropped at export"), "{reasons}");
    let dir = |b: &str| cells[b]["artifacts"].as_str().unwrap().to_owned();
    let text = bkcache_ok(["cache", "diff", &dir("newest-stargz"), &dir("newest-overlayfs")]);
    let lost: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("A: present, no layers") && l.contains("B: ") && l.contains("layer(s)"))
        .map(|l| l.split("  A:").next().unwrap().trim())
        .collect();
    assert_eq!(lost, [r#"[build 3/3] RUN echo "1" > /bust"#, STABLE], "{text}");
    assert_eq!(leftovers("e2e-forensics").await, Vec::<String>::new());
}

/// The forum scenario: a proxy-only change stays CACHED; `bkcache explain` names the build arg that changed.
#[tokio::test]
async fn explain_names_the_build_arg_that_changed_a_steps_key() {
    require_environment!();
    let run = bkcache_run(
        &[
            "scenarios/forum/forum-rebuild.toml",
            "--builders",
            &builders_file(),
            "--builder",
            "newest-overlayfs",
            "--keep-artifacts",
        ],
        "e2e-explain",
    );
    assert_eq!(run.code(), Some(0));
    let cells = run.cells();
    assert_eq!(cells["newest-overlayfs"]["verdict"], "pass", "{:#}", cells["newest-overlayfs"]);
    let dir = cells["newest-overlayfs"]["artifacts"].as_str().unwrap().to_owned();
    let text = bkcache_ok(["explain", &dir]);
    assert!(text.contains("phase `tree-changed`: 1 step(s) ran"), "{text}");
    assert!(text.contains("env `GIT_TREE` (a build arg or ENV): `a` → `b`"), "{text}");
    assert!(!text.contains("phase `proxy-changed`"), "the proxy-only build ran nothing: {text}");
    assert_eq!(leftovers("e2e-explain").await, Vec::<String>::new());
}

/// A docker-container builder a test made by hand, as a user would; removed when dropped.
struct UsersBuilder(String);

impl Drop for UsersBuilder {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["buildx", "rm", "-f", &self.0]).output();
    }
}

#[tokio::test]
async fn capture_explains_a_users_own_builds_on_their_builder() {
    require_environment!();
    let profiles = bkcache::profiles::Profiles::load(&common::repo().join("scenarios/builders.toml")).unwrap();
    let image = &profiles.profiles.iter().find(|p| p.name == "newest-overlayfs").unwrap().image;
    let registry = profiles.pins.registry().to_owned();
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nARG GIT_TREE\nRUN echo \"deps for $GIT_TREE\" > /deps\nRUN echo app > /app\n",
    )
    .unwrap();
    let config = work.path().join("buildkitd.toml");
    std::fs::write(&config, format!("debug = true\n[registry.\"{registry}\"]\n  http = true\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let debug_addr = format!("127.0.0.1:{port}");
    let builder = UsersBuilder(format!("users-builder-{}", std::process::id()));
    let created = std::process::Command::new("docker")
        .args(["buildx", "create", "--name", &builder.0, "--driver", "docker-container", "--bootstrap"])
        .args(["--driver-opt", "network=host", "--driver-opt", &format!("image={image}")])
        .args(["--buildkitd-flags", &format!("--save-cache-debug --debugaddr={debug_addr}")])
        .arg("--buildkitd-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let out = work.path().join("captured");
    let cache = work.path().join("cache").display().to_string();
    let (out_dir, ctx_dir) = (out.display().to_string(), ctx.display().to_string());
    let capture = |tree: &str, cache_flag: &str, cache_value: String| {
        let base = format!("BASE={registry}/bkcache/base-a:esgz");
        let tree = format!("GIT_TREE={tree}");
        bkcache_ok([
            "capture",
            &out_dir,
            "--debug-addr",
            &debug_addr,
            "--",
            "--builder",
            &builder.0,
            "--build-arg",
            &base,
            "--build-arg",
            &tree,
            cache_flag,
            &cache_value,
            "--output",
            "type=cacheonly",
            &ctx_dir,
        ]);
    };
    capture("a", "--cache-to", format!("type=local,dest={cache},mode=max"));
    let pruned =
        std::process::Command::new("docker").args(["buildx", "prune", "-af", "--builder", &builder.0]).output();
    assert!(pruned.unwrap().status.success());
    capture("b", "--cache-from", format!("type=local,src={cache}"));

    let text = bkcache_ok(["explain", &out_dir]);
    // the export's records carry its steps; the import's misses are named, root first
    assert!(text.contains(r#"[2/3] RUN echo "deps for a" > /deps"#), "{text}");
    assert!(text.contains("phase `build-2`: 2 step(s) ran, 0 CACHED"), "{text}");
    assert!(text.contains("env `GIT_TREE` (a build arg or ENV): `a` → `b`"), "{text}");
    assert!(text.contains(r#"it ran because `[2/3] RUN echo "deps for b" > /deps`"#), "{text}");
}

/// `(scenario@builder, verdict)` of every cell of a JSON report, sorted.
fn verdicts(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!("{}@{}", c["scenario"].as_str().unwrap(), c["builder"].as_str().unwrap()),
                c["verdict"].to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn cells_sharded_by_nextest_and_merged_give_the_verdicts_of_one_run() {
    require_environment!();
    const SCENARIOS: &str = "issue-6893,mode-min";
    let work = tempfile::tempdir().unwrap();
    let artifacts = work.path().join("artifacts");
    let results = |k: u32| work.path().join(format!("shard-{k}")).display().to_string();
    for shard in [1, 2] {
        let mut nextest = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // the inner nextest is a run of its own, not a test of this one: without the variables nextest and
        // cargo set for this test (ring's build script reruns when CARGO_MANIFEST_DIR changes, and the inner
        // cargo would then rebuild, relinking the test binaries this run starts others from)
        let own = |k: &str| k.starts_with("NEXTEST") || (k.starts_with("CARGO_") && k != "CARGO_HOME");
        for (key, _) in std::env::vars().filter(|(k, _)| own(k)) {
            nextest.env_remove(key);
        }
        let output = nextest
            .args(["nextest", "run", "--locked", "--profile", "cells", "--partition", &format!("count:{shard}/2")])
            .env("BKCACHE_SCENARIO", SCENARIOS)
            .env("BKCACHE_RESULTS_DIR", results(shard))
            .env("BKCACHE_ARTIFACTS_DIR", &artifacts)
            .current_dir(common::repo())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "shard {shard}:\n{stderr}");
        assert!(stderr.contains("4 tests run: 4 passed"), "shard {shard}: each shard runs half the 8 cells:\n{stderr}");
    }
    let merged_json = work.path().join("merged.json");
    bkcache_ok(["report", "merge", &results(1), &results(2), "--report-json", &merged_json.display().to_string()]);
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&merged_json).unwrap()).unwrap();

    let single = bkcache_run(&["scenarios", "--scenario", "issue-6893", "--scenario", "mode-min"], "e2e-cells");
    assert_eq!(single.code(), Some(0));
    let expected = verdicts(&single.report);
    assert_eq!(expected.len(), 8);
    assert_eq!(verdicts(&merged), expected);
    assert_eq!(leftovers("e2e-cells").await, Vec::<String>::new());
    // the shards' builders are gone too (their run ids are `cells-<pid>`)
    let ls = std::process::Command::new("docker").args(["buildx", "ls"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("bkcache-cells-"));
}
