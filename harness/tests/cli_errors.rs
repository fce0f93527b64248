//! Bad input gets a clear error naming the file, line and fix, and exit code 2, before any builder
//! exists. These run the real binary; none needs docker except where it says so.

#[macro_use]
mod common;

use common::repo;

use std::path::Path;
use std::process::Output;

fn bkcache(args: &[&str], dir: &Path) -> Output {
    common::bkcache().args(args).current_dir(dir).env_remove("RUST_LOG").output().expect("run bkcache")
}

/// A scenario file in a fresh directory beside a Dockerfile; returns its stderr for `bkcache list`.
fn list_error(scenario: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.path().join("bad.toml"), scenario).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["list", "bad.toml", "--builders", builders.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

const PHASE: &str = "[[phases]]\nkind = \"build\"\n";

#[test]
fn unknown_key_names_file_line_and_column() {
    let err = list_error(&format!("dockerfile = \"Dockerfile\"\n{PHASE}expect_cahced = []\n"));
    assert!(err.contains("bad.toml:4:1"), "{err}");
    assert!(err.contains("unknown field `expect_cahced`"), "{err}");
    assert!(err.contains("expect_cached"), "the error lists the known fields: {err}");
}

#[test]
fn wrong_type_names_file_line_and_column() {
    let err = list_error(&format!("dockerfile = \"Dockerfile\"\n{PHASE}build_args = \"BUST=1\"\n"));
    assert!(err.contains("bad.toml:4:14"), "{err}");
    assert!(err.contains("invalid type"), "{err}");
}

#[test]
fn missing_dockerfile_names_the_line_and_the_path_it_tried() {
    let err = list_error(&format!("dockerfile = \"nope.Dockerfile\"\n{PHASE}"));
    assert!(err.contains("bad.toml:1:14"), "{err}");
    assert!(err.contains("no such file") && err.contains("nope.Dockerfile"), "{err}");
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn unknown_builder_profile_lists_the_known_ones() {
    let err = list_error(&format!("dockerfile = \"Dockerfile\"\nbuilders = [\"v9-stargz\"]\n{PHASE}"));
    assert!(err.contains("bad.toml:2:13"), "{err}");
    assert!(err.contains("unknown builder profile `v9-stargz`"), "{err}");
    assert!(err.contains("newest-stargz"), "{err}");
}

#[test]
fn importing_a_cache_nobody_exported_is_an_error() {
    let err = list_error(&format!(
        "dockerfile = \"Dockerfile\"\n{PHASE}cache_from = [{{ type = \"local\", name = \"main\" }}]\n"
    ));
    assert!(err.contains("bad.toml:4:15"), "{err}");
    assert!(err.contains("no earlier phase exports"), "{err}");
}

#[test]
fn invalid_step_pattern_is_located() {
    let err = list_error(&format!("dockerfile = \"Dockerfile\"\n{PHASE}expect_ran = [{{ pattern = \"[oops\" }}]\n"));
    assert!(err.contains("bad.toml:4:"), "{err}");
    assert!(err.contains("invalid pattern"), "{err}");
}

#[test]
fn unknown_builder_on_the_command_line() {
    let out = bkcache(&["list", "--builder", "nope"], &repo());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("unknown builder profile `nope`") && err.contains("fix:"), "{err}");
}

#[test]
fn the_project_scenarios_plan_one_cell_per_builder() {
    let out = bkcache(&["list"], &repo());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let cells: Vec<&str> = stdout.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    let builders = ["v0.24-overlayfs", "v0.24-stargz", "newest-overlayfs", "newest-stargz"];
    // subfolders are part of the corpus, in path order (`cache-surprises/`, `forum/`, then
    // `issue-6893-family/` before `issue-6893.toml`, then `public-issues/`)
    let scenarios = [
        "base-drift",
        "cache-mount",
        "inline-cache-lazy",
        "inline-vs-max",
        "local-and-registry",
        "shared-run",
        "two-local-exports",
        "zstd-force-compression",
        "forum-rebuild",
        "content-restored",
        "mode-min",
        "registry-backend",
        "registry-estargz",
        "same-base",
        "seed-reproducer",
        "single-stage",
        "three-stage-chain",
        "issue-6893",
        "copy-link-chain",
        "inline-chain",
        "inline-edit-later",
        "inline-lost-file",
        "lost-cache-blob",
        "min-vs-max",
        "prune-until",
        "root-from-layer",
        "two-cache-from",
    ];
    let expected: Vec<String> = scenarios.iter().flat_map(|s| builders.map(|b| format!("{s}@{b}"))).collect();
    assert_eq!(cells, expected, "{stdout}");
    // #6893 is known on the stargz cells of cache-mount, content-restored, registry-backend,
    // registry-estargz, same-base, seed-reproducer, issue-6893, inline-vs-max, single-stage and min-vs-max,
    // and on v0.24.0's of inline-cache-lazy and local-and-registry
    assert_eq!(stdout.matches("moby/buildkit#6893").count(), 22, "{stdout}");
}

#[test]
fn docker_not_reachable_is_an_infrastructure_error_with_a_fix() {
    let out = common::bkcache()
        .args(["run", "--artifacts-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .current_dir(repo())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("docker engine not reachable at unix:///nonexistent/docker.sock"), "{err}");
    assert!(err.contains("fix: start it"), "{err}");
}

#[test]
fn prune_and_build_options_are_typed() {
    for (phase, at, problem) in [
        ("kind = \"prune\"\nfilter = [\"bogus\"]\n", "bad.toml:4:11", "`bogus` is not a prune filter"),
        ("kind = \"prune\"\nfilter = [\"until=1h,id=x\"]\n", "", "is not a prune filter"),
        ("kind = \"prune\"\nkeep_storage = \"lots\"\n", "bad.toml:4:16", "`lots` is not a storage size"),
        ("kind = \"prune\"\nplatform = \"linux/amd64\"\n", "bad.toml:2:1", "is a prune but sets build options"),
        ("kind = \"build\"\nfilter = [\"until=1h\"]\n", "bad.toml:2:1", "apply to prune phases only"),
        ("kind = \"build\"\nplatform = \"amd64\"\n", "bad.toml:4:12", "`amd64` is not a platform"),
        ("kind = \"build\"\nno_cache_filter = [\"a,b\"]\n", "bad.toml:4:20", "is not a stage name"),
    ] {
        let err = list_error(&format!("dockerfile = \"Dockerfile\"\n[[phases]]\n{phase}"));
        assert!(err.contains(at) && err.contains(problem), "{phase}: {err}");
    }
}

#[test]
fn known_issue_versions_are_semver_ranges() {
    let issue = "[[known_issues]]\nid = \"x#1\"\nversions = \"v0.25\"\n";
    let err = list_error(&format!("dockerfile = \"Dockerfile\"\n{issue}{PHASE}"));
    assert!(err.contains("bad.toml:4:12") && err.contains("`v0.25` is not a version range"), "{err}");
}

#[test]
fn known_issues_apply_by_version_range() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let issue = "[[known_issues]]\nid = \"x#1\"\nsnapshotter = \"stargz\"\nversions = \">=0.30.0\"\n";
    std::fs::write(dir.path().join("k.toml"), format!("dockerfile = \"Dockerfile\"\n{issue}{PHASE}")).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["list", "k.toml", "--builders", builders.to_str().unwrap()], dir.path());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let known: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("known issue: x#1"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // v0.24.0 is below the range, overlayfs is not the snapshotter: only newest-stargz (v0.33.1)
    assert_eq!(known, ["k@newest-stargz"], "{stdout}");
}

#[test]
fn a_known_issue_that_applies_to_no_profile_is_warned_about_where_it_is_declared() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let builders = repo().join("scenarios/builders.toml");
    for (scope, warned) in [
        // no release of the builders file is in the range; the typo of a range that meant <0.25.0
        ("snapshotter = \"stargz\"\nversions = \">=9.0.0\"\n", true),
        ("versions = \"<0.24.0\"\n", true),
        // a scenario that runs on overlayfs profiles only, with an issue scoped to stargz
        ("snapshotter = \"stargz\"\n", false),
        ("snapshotter = \"stargz\"\nversions = \">=0.30.0\"\n", false),
    ] {
        let text = format!("dockerfile = \"Dockerfile\"\n[[known_issues]]\nid = \"x#1\"\n{scope}{PHASE}");
        std::fs::write(dir.path().join("k.toml"), &text).unwrap();
        for command in ["lint", "list"] {
            let out = bkcache(&[command, "k.toml", "--builders", builders.to_str().unwrap()], dir.path());
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert_eq!(out.status.code(), Some(0), "a warning stops nothing: {stderr}");
            assert_eq!(
                stderr.contains("warning: k.toml:2:1: known issue `x#1` applies to no builder profile"),
                warned,
                "{scope}: {stderr}"
            );
            assert_eq!(stderr.contains("fix: correct its `versions`"), warned, "{stderr}");
        }
        let only_overlayfs =
            text.replacen("[[known_issues]]", "builders = [\"newest-overlayfs\"]\n[[known_issues]]", 1);
        std::fs::write(dir.path().join("k.toml"), only_overlayfs).unwrap();
        let out = bkcache(&["lint", "k.toml", "--builders", builders.to_str().unwrap()], dir.path());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("known issue `x#1` applies to no builder profile this scenario runs on"), "{stderr}");
    }
}

#[test]
fn an_inline_cache_needs_a_push_no_mode_and_is_named_after_its_phase() {
    for (phase, at, problem) in [
        ("cache_to = [{ type = \"inline\" }]\n", "bad.toml:4:13", "an inline cache travels in the pushed image"),
        (
            "output = \"push\"\ncache_to = [{ type = \"inline\", mode = \"max\" }]\n",
            "bad.toml:5:13",
            "takes no mode or attrs",
        ),
        (
            "name = \"export\"\noutput = \"push\"\ncache_to = [{ type = \"inline\", name = \"other\" }]\n",
            "bad.toml:6:39",
            "named after the phase that pushes it: `export`",
        ),
    ] {
        let err = list_error(&format!("dockerfile = \"Dockerfile\"\n{PHASE}{phase}"));
        assert!(err.contains(at) && err.contains(problem), "{phase}: {err}");
    }
    let importing = "[[phases]]\nkind = \"build\"\ncache_from = [{ type = \"inline\", name = \"export\" }]\n";
    let err = list_error(&format!("dockerfile = \"Dockerfile\"\n{importing}"));
    assert!(err.contains("imports cache `inline:export` that no earlier phase exports"), "{err}");
}

#[test]
fn cache_inspect_of_a_directory_needs_no_pins_file() {
    // from a directory without ci/versions.env: a local cache is read without the registry's name
    let elsewhere = tempfile::tempdir().unwrap();
    let cache = repo().join("harness/tests/fixtures/forensics/issue-6893-newest-stargz/cache/main");
    let out = bkcache(&["cache", "inspect", cache.to_str().unwrap()], elsewhere.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 records, 1 with layers"), "{out:?}");
    let out = bkcache(&["cache", "inspect", elsewhere.path().to_str().unwrap()], elsewhere.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("holds neither a repetition's artifacts") && err.contains("fix:"), "{err}");
}

#[test]
fn report_merge_refuses_what_is_not_one_runs_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = bkcache(&["report", "merge", dir.path().to_str().unwrap()], &repo());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no result files"), "{out:?}");
    std::fs::write(dir.path().join("x.json"), "{}").unwrap();
    let out = bkcache(&["report", "merge", dir.path().to_str().unwrap()], &repo());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("x.json: not a bkcache result file") && err.contains("fix:"), "{err}");
}

#[test]
fn capture_refuses_a_progress_mode_it_cannot_read_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let out = bkcache(&["capture", "out", "--", "--progress", "plain", "."], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("--progress plain") && err.contains("fix: leave --progress out"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing was captured");
}

#[test]
fn evidence_refuses_a_pack_directory_that_is_not_empty_and_more_than_one_cell() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let scenario = repo().join("scenarios/issue-6893.toml");
    let args = |builder: &str, out: &Path| {
        let s = [scenario.to_str().unwrap(), "--builder", builder, "--out", out.to_str().unwrap()];
        bkcache(&[&["evidence"], &s[..]].concat(), &repo())
    };
    let out = args("newest-stargz", dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty") && err.contains("give a new directory"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(), "mine");
    let fresh = dir.path().join("pack");
    let out = args("no-such-profile", &fresh);
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.exists(), "nothing written for a plan that is refused");
}

#[test]
fn a_git_source_that_is_not_a_repository_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = bkcache(&["buildkit", "build", "--version", "051818cf3", "--git", dir.path().to_str().unwrap()], &repo());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a git repository") && err.contains("moby/buildkit"), "{err}");
    // a commit without --git: the Go module proxy needs a release
    let out = bkcache(&["buildkit", "build", "--version", "051818cf3"], &repo());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("with --git DIR"));
}

#[test]
fn file_checks_are_located_and_need_kept_outputs() {
    let export = "[[phases]]\nname = \"export\"\nkind = \"build\"\n";
    let import = "[[phases]]\nname = \"import\"\nkind = \"build\"\n";
    for (export_output, import_output, check, want) in [
        (
            "output = \"local\"\n",
            "output = \"local\"\n",
            "{ path = \"unique\", same_as = \"export\" }",
            "bad.toml:10:17: `unique` is not a file path",
        ),
        (
            "output = \"local\"\n",
            "output = \"local\"\n",
            "{ path = \"/a/../b\", same_as = \"export\" }",
            "`/a/../b` is not a file path",
        ),
        (
            "output = \"local\"\n",
            "output = \"local\"\n",
            "{ path = \"/u\" }",
            "needs one of `same_as` and `differs_from`",
        ),
        (
            "output = \"local\"\n",
            "output = \"local\"\n",
            "{ path = \"/u\", same_as = \"export\", differs_from = \"export\" }",
            "needs one of `same_as` and `differs_from`",
        ),
        (
            "",
            "output = \"local\"\n",
            "{ path = \"/u\", same_as = \"export\" }",
            "not an earlier build with output = \"local\"",
        ),
        (
            "output = \"local\"\n",
            "output = \"local\"\n",
            "{ path = \"/u\", same_as = \"import\" }",
            "not an earlier build",
        ),
        (
            "output = \"local\"\n",
            "",
            "{ path = \"/u\", differs_from = \"export\" }",
            "checks files but does not keep its output",
        ),
    ] {
        let text = format!(
            "dockerfile = \"Dockerfile\"\n{export}{export_output}{import}{import_output}expect_files = [{check}]\n"
        );
        let err = list_error(&text);
        assert!(err.contains(want), "{text}\n{err}");
        assert!(err.contains("fix:"), "{err}");
    }
}

#[test]
fn declared_bases_drift_and_delete_layers_phases_are_checked() {
    let base = "[bases]\nAPP = { from = \"base-a\", content = \"v1\" }\n";
    let build = "[[phases]]\nname = \"b\"\nkind = \"build\"\n";
    for (bases, phases, want) in [
        ("[bases]\nAPP = { from = \"base-a\" }\n", build.to_owned(), "base `APP` needs `content`"),
        ("[bases]\nAPP = { local = \"base-a\", content = \"v1\" }\n", build.to_owned(), "belong to a declared base"),
        (
            "[bases]\nAPP = { from = \"../x\", content = \"v1\" }\n",
            build.to_owned(),
            "`from` names a base the set-up builds",
        ),
        (
            "[bases]\nAPP = { local = \"base-a\", from = \"base-a\", content = \"v1\" }\n",
            build.to_owned(),
            "exactly one of `local`, `image` or `from`",
        ),
        (base, format!("{build}[[phases]]\nkind = \"drift\"\ncontent = \"v2\"\n"), "needs `base`"),
        (
            base,
            format!("{build}[[phases]]\nkind = \"drift\"\nbase = \"OTHER\"\ncontent = \"v2\"\n"),
            "`OTHER` is not a declared base",
        ),
        (
            base,
            format!("{build}[[phases]]\nkind = \"drift\"\nbase = \"APP\"\ncontent = \"v1\"\n"),
            "already has this content",
        ),
        (
            base,
            format!("{build}[[phases]]\nkind = \"drift\"\nbase = \"APP\"\ncontent = \"v2\"\nall = true\n"),
            "a drift but sets build or prune options",
        ),
        (base, "[[phases]]\nkind = \"build\"\nbase = \"APP\"\n".to_owned(), "belongs to a drift or delete-layers"),
        (
            base,
            format!("{build}[[phases]]\nkind = \"delete-layers\"\n"),
            "delete-layers phase `delete-layers-2` needs `base`",
        ),
        (
            base,
            format!("{build}[[phases]]\nkind = \"delete-layers\"\nbase = \"OTHER\"\n"),
            "`OTHER` is not a declared base",
        ),
        (
            base,
            format!("{build}[[phases]]\nkind = \"delete-layers\"\nbase = \"APP\"\ncontent = \"v2\"\n"),
            "`content` belongs to a drift phase",
        ),
        (
            base,
            format!("{build}[[phases]]\nkind = \"delete-layers\"\nbase = \"APP\"\nbuild_args = {{ X = \"1\" }}\n"),
            "is a delete-layers but sets build or prune options",
        ),
    ] {
        let text = format!("dockerfile = \"Dockerfile\"\n{bases}{phases}");
        let err = list_error(&text);
        assert!(err.contains(want), "{text}\n{err}");
        assert!(err.contains("bad.toml:") && err.contains("fix:"), "{err}");
    }
    // a cache's layers: a local cache exported earlier, and a plain path
    let export = "[[phases]]\nname = \"b\"\nkind = \"build\"\ncache_to = [{ type = \"local\", name = \"c\" }]\n";
    let delete =
        |cache: &str, rest: &str| format!("{export}[[phases]]\nkind = \"delete-layers\"\ncache = {cache}\n{rest}");
    let local = "{ type = \"local\", name = \"c\" }";
    for (phases, want) in [
        (delete(local, ""), "names a cache but not which of its layers to delete"),
        (
            format!("{export}[[phases]]\nkind = \"delete-layers\"\nholding = \"/a\"\n"),
            "says what its layers hold but not whose layers",
        ),
        (delete(local, "holding = \"/a\"\nbase = \"APP\"\n"), "a base's layers or a cache's, not both"),
        (
            delete("{ type = \"local\", name = \"other\" }", "holding = \"/a\"\n"),
            "no earlier phase exports cache `local:other`",
        ),
        (
            delete("{ type = \"registry\", name = \"c\" }", "holding = \"/a\"\n"),
            "only a local cache's layers can be deleted",
        ),
        (delete(local, "holding = \"a/../b\"\n"), "`a/../b` is not a path bkcache looks for in layers"),
        (delete(local, "holding = \"/a\"\nall = true\n"), "is a delete-layers but sets other options"),
        (format!("{export}[[phases]]\nkind = \"build\"\nholding = \"/a\"\n"), "belong to a delete-layers phase"),
    ] {
        let text =
            format!("dockerfile = \"Dockerfile\"\n[bases]\nAPP = {{ from = \"base-a\", content = \"v1\" }}\n{phases}");
        let err = list_error(&text);
        assert!(err.contains(want), "{text}\n{err}");
        assert!(err.contains("bad.toml:") && err.contains("fix:"), "{err}");
    }
    // drifting twice, back and forth, is a base that moved twice
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "ARG APP\nFROM ${APP}\n").unwrap();
    let drift = |c: &str| format!("[[phases]]\nkind = \"drift\"\nbase = \"APP\"\ncontent = \"{c}\"\n");
    let text = format!(
        "dockerfile = \"Dockerfile\"\n{base}{build}{}{}{build2}",
        drift("v2"),
        drift("v1"),
        build2 = build.replace("\"b\"", "\"c\"")
    );
    std::fs::write(dir.path().join("ok.toml"), text).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["list", "ok.toml", "--builders", builders.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
