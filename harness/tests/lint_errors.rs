//! `bkcache lint` (also run by `list` and `run`): one test per rule. Each writes a scenario with one
//! semantic mistake beside a multi-stage Dockerfile, and checks the finding names the rule, the file,
//! line and column, and a fix, with exit code 2. `run` is checked with docker unreachable: the lint
//! finding, not the docker error, proves no builder was created.

#[macro_use]
mod common;

use common::repo;

use std::process::Output;

const DOCKERFILE: &str = "\
FROM 127.0.0.1:5000/bkcache/base-a:esgz AS build
RUN echo stable > /stable
RUN echo built > /built

FROM 127.0.0.1:5000/bkcache/base-a:esgz AS unused
RUN echo never

FROM 127.0.0.1:5000/bkcache/base-b:esgz
COPY --from=build /stable /stable
";

fn bkcache(args: &[&str], dir: &std::path::Path) -> Output {
    common::bkcache()
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run bkcache")
}

/// Phases that export (max unless `mode` says), prune, and import with `expect` in the import build.
fn scenario(mode: &str, import: &str, expect: &str) -> String {
    format!(
        "dockerfile = \"Dockerfile\"\n\n[[phases]]\nname = \"export\"\nkind = \"build\"\ncache_to = [{{ type = \"local\", name = \"main\", mode = \"{mode}\" }}]\n\n[[phases]]\nkind = \"prune\"\n\n[[phases]]\nname = \"import\"\nkind = \"build\"\n{import}\n{expect}\n"
    )
}

const IMPORT: &str = "cache_from = [{ type = \"local\", name = \"main\" }]";

/// Runs `lint`, `list` and `run` on the scenario; all must reject it the same way. Returns the message.
fn rejected(text: &str, rule: &str, line: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let mut first = None;
    for command in ["lint", "list", "run"] {
        let out = bkcache(&[command, "bad.toml", "--builders", builders.to_str().unwrap()], dir.path());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(err.contains(&format!("lint[{rule}]")), "{command}: {err}");
        assert!(err.contains(&format!("bad.toml:{line}:")), "{command}: expected line {line}: {err}");
        assert!(err.contains("fix:"), "{command}: {err}");
        assert!(!err.contains("docker engine"), "{command} reached docker: {err}");
        first.get_or_insert(err);
    }
    first.unwrap()
}

#[test]
fn unknown_stage() {
    let err = rejected(
        &scenario("max", IMPORT, "expect_cached = [\"[bulid 2/3] RUN echo stable > /stable\"]"),
        "unknown-stage",
        15,
    );
    assert!(err.contains("names stage `bulid`") && err.contains("`build`, `unused`, `stage-2`"), "{err}");
}

#[test]
fn unknown_target() {
    let err = rejected(&scenario("max", &format!("{IMPORT}\ntarget = \"nope\""), ""), "unknown-stage", 15);
    assert!(err.contains("target `nope` is not a stage"), "{err}");
}

#[test]
fn step_index_beyond_the_stage() {
    let err = rejected(
        &scenario("max", IMPORT, "expect_cached = [\"[build 4/3] RUN echo stable > /stable\"]"),
        "step-index",
        15,
    );
    assert!(err.contains("has 3 steps") && err.contains("`[build 2/3] RUN echo stable > /stable`"), "{err}");
}

#[test]
fn step_index_naming_another_instruction() {
    let err =
        rejected(&scenario("max", IMPORT, "expect_cached = [\"[stage-2 2/2] RUN cp /stable /x\"]"), "step-index", 15);
    assert!(err.contains("step 2 of stage-2 is a COPY step, not RUN"), "{err}");
}

#[test]
fn a_link_vertex_needs_a_copy_with_link() {
    // `[stage-2 2/2] COPY --from=build ...` has no --link: BuildKit makes no LINK vertex for it
    let err = rejected(
        &scenario("max", IMPORT, "expect_ran = [\"[stage-2 2/2] LINK COPY --from=build /stable /stable\"]"),
        "step-index",
        15,
    );
    assert!(err.contains("step 2 of stage-2 is a COPY step, not LINK"), "{err}");
}

#[test]
fn never_built_stage() {
    let err = rejected(&scenario("max", IMPORT, "expect_ran = [\"[unused 2/2] RUN echo never\"]"), "never-built", 15);
    assert!(err.contains("stage `unused`, which the target stage-2 does not depend on"), "{err}");
}

#[test]
fn never_built_by_pattern() {
    let err = rejected(&scenario("max", IMPORT, "expect_ran = [{ pattern = 'echo never' }]"), "never-built", 15);
    assert!(err.contains("`unused`"), "{err}");
}

#[test]
fn expected_cached_after_a_prune_with_nothing_imported() {
    let err = rejected(
        &scenario("max", "", "expect_cached = [\"[build 2/3] RUN echo stable > /stable\"]"),
        "nothing-to-hit",
        15,
    );
    assert!(err.contains("imports no cache"), "{err}");
}

#[test]
fn expected_cached_from_a_min_mode_cache_outside_the_targets_image() {
    let err = rejected(
        &scenario("min", IMPORT, "expect_cached = [\"[build 2/3] RUN echo stable > /stable\"]"),
        "min-mode-stage",
        15,
    );
    assert!(err.contains("mode=min") && err.contains("(stage `stage-2`), not stage `build`"), "{err}");
    assert!(err.contains("mode = \"max\""), "{err}");
}

#[test]
fn expected_cached_from_a_cache_whose_build_never_built_the_stage() {
    // mode=max, but the exporting build's target is `build`: its cache holds no record of the final stage
    let text = scenario("max", IMPORT, "expect_cached = [\"[stage-2 2/2] COPY --from=build /stable /stable\"]")
        .replacen("cache_to = [", "target = \"build\"\ncache_to = [", 1);
    let err = rejected(&text, "target-limited", 16);
    assert!(err.contains("no cache it imports can hold stage `stage-2`"), "{err}");
    assert!(err.contains("`local:main` (phase `export`, target `build`, mode=max: stage `build`)"), "{err}");

    // the same import after an export of the whole build is fine
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    let whole = scenario("max", IMPORT, "expect_cached = [\"[stage-2 2/2] COPY --from=build /stable /stable\"]");
    std::fs::write(dir.path().join("ok.toml"), whole).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["lint", "ok.toml", "--builders", builders.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn one_step_both_cached_and_run() {
    let expect =
        "expect_cached = [\"[build 2/3] RUN echo stable > /stable\"]\nexpect_ran = [{ pattern = 'RUN echo stable' }]";
    let err = rejected(&scenario("max", IMPORT, expect), "contradiction", 16);
    assert!(err.contains("expects the same step CACHED"), "{err}");
}

#[test]
fn a_min_mode_cache_still_serves_the_targets_own_steps() {
    // the final stage's COPY is in the exported image: expecting it CACHED is legitimate
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    let text = scenario("min", IMPORT, "expect_cached = [\"[stage-2 2/2] COPY --from=build /stable /stable\"]");
    std::fs::write(dir.path().join("ok.toml"), text).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["lint", "ok.toml", "--builders", builders.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn expected_cached_in_a_stage_built_without_cache() {
    let err = rejected(
        &scenario(
            "max",
            &format!("{IMPORT}\nno_cache_filter = [\"build\"]"),
            "expect_cached = [\"[build 2/3] RUN echo stable > /stable\"]",
        ),
        "no-cache-stage",
        16,
    );
    assert!(err.contains("builds without cache: it is never CACHED"), "{err}");
}

#[test]
fn no_cache_filter_naming_no_stage() {
    let err = rejected(&scenario("max", &format!("{IMPORT}\nno_cache_filter = [\"bulid\"]"), ""), "unknown-stage", 15);
    assert!(err.contains("no_cache_filter names `bulid`"), "{err}");
}

#[test]
fn expected_cached_after_a_prune_of_every_step_result() {
    // measured: `prune --all --filter type=regular` removes every step's result, as `--all` does
    let text = scenario("max", "", "expect_cached = [\"[build 2/3] RUN echo stable > /stable\"]")
        .replace("kind = \"prune\"\n", "kind = \"prune\"\nfilter = [\"type=regular\"]\n");
    let err = rejected(&text, "nothing-to-hit", 16);
    assert!(err.contains("with `--all --filter type=regular`, which removes every step's result"), "{err}");
}

#[test]
fn expected_cached_from_an_inline_cache_outside_the_pushed_image() {
    let text = "dockerfile = \"Dockerfile\"\n\n[[phases]]\nname = \"export\"\nkind = \"build\"\noutput = \"push\"\ncache_to = [{ type = \"inline\" }]\n\n[[phases]]\nkind = \"prune\"\n\n[[phases]]\nname = \"import\"\nkind = \"build\"\ncache_from = [{ type = \"inline\", name = \"export\" }]\nexpect_cached = [\"[build 2/3] RUN echo stable > /stable\"]\n";
    let err = rejected(text, "inline-stage", 16);
    assert!(
        err.contains("holds only the records of the pushed image's layers (stage `stage-2`), not stage `build`"),
        "{err}"
    );
}

#[test]
fn a_step_buildkit_shows_under_another_stages_name() {
    // measured on v0.24.0 and v0.33.1: the stage the final stage copies from last names the shared op
    let dockerfile = format!(
        "{LOCAL} AS one\nRUN echo same > /same\n{LOCAL} AS two\nRUN echo same > /same\n{LOCAL}\nCOPY --from=one /same /a\nCOPY --from=two /same /b\n"
    );
    let expect = |step: &str| {
        format!("dockerfile = \"Dockerfile\"\n[[phases]]\nname = \"b\"\nkind = \"build\"\nexpect_ran = [\"{step}\"]\n")
    };
    let (code, err) = lint_with("run", &dockerfile, &expect("[one 2/2] RUN echo same > /same"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:5:") && err.contains("lint[merged-step]"), "{err}");
    assert!(err.contains("fix: name the step `[two 2/2] RUN echo same > /same`"), "{err}");
    assert!(!err.contains("docker engine"), "{err}");
    // so is a FROM every stage shares, and the name BuildKit shows lints clean
    let (_, err) = lint_with("lint", &dockerfile, &expect("[one 1/2] FROM 127.0.0.1:5000/bkcache/base-a:esgz"));
    assert!(err.contains("only as `[two 1/2] FROM 127.0.0.1:5000/bkcache/base-a:esgz`"), "{err}");
    let (code, err) = lint_with("lint", &dockerfile, &expect("[two 2/2] RUN echo same > /same"));
    assert_eq!(code, Some(0), "{err}");
    // copying from `two` first makes `one` the last marshalled (measured the same way)
    let swapped = dockerfile
        .replace("--from=one /same /a\nCOPY --from=two /same /b", "--from=two /same /b\nCOPY --from=one /same /a");
    let (code, err) = lint_with("lint", &swapped, &expect("[one 2/2] RUN echo same > /same"));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_filtered_prune_keeps_the_cache_to_hit() {
    // `until=24h` removes only old records, so the builder's own cache can still serve the step
    let text = scenario("max", "", "expect_cached = [\"[build 2/3] RUN echo stable > /stable\"]")
        .replace("kind = \"prune\"\n", "kind = \"prune\"\nfilter = [\"until=24h\"]\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.path().join("ok.toml"), text).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["lint", "ok.toml", "--builders", builders.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_finding_is_reported_at_once() {
    let expect =
        "expect_cached = [\"[bulid 2/3] RUN echo stable > /stable\"]\nexpect_ran = [\"[unused 2/2] RUN echo never\"]";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.path().join("bad.toml"), scenario("max", IMPORT, expect)).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["lint", "bad.toml", "--builders", builders.to_str().unwrap()], dir.path());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("lint[unknown-stage]") && err.contains("lint[never-built]"), "{err}");
}

#[test]
fn the_project_scenarios_lint_clean() {
    let out = bkcache(&["lint", "scenarios/"], &repo());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bkcache(&["lint", "harness/tests/scenarios/", "--builders", "scenarios/builders.toml"], &repo());
    assert_eq!(out.status.code(), Some(0), "test scenarios: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_report_path_that_cannot_be_written_is_an_error_before_docker() {
    let out = bkcache(&["run", "scenarios/", "--report-json", "/nonexistent-dir/report.json"], &repo());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write the report --report-json /nonexistent-dir/report.json"), "{err}");
    assert!(!err.contains("docker engine"), "{err}");
}

#[test]
fn repeat_and_jobs_are_checked() {
    for args in [["--repeat", "0"], ["--jobs", "0"]] {
        let out = bkcache(&["run", "scenarios/", args[0], args[1]], &repo());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.path().join("bad.toml"), format!("repeat = 0\n{}", scenario("max", IMPORT, ""))).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&["lint", "bad.toml", "--builders", builders.to_str().unwrap()], dir.path());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml:1:10") && err.contains("repeat must be between 1 and 1000"), "{err}");
}

/// `bkcache <command>` on `scenario` (as `bad.toml`) beside `dockerfile`: its exit code and stderr.
fn lint_with(command: &str, dockerfile: &str, scenario: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.path().join("bad.toml"), scenario).unwrap();
    let builders = repo().join("scenarios/builders.toml");
    let out = bkcache(&[command, "bad.toml", "--builders", builders.to_str().unwrap()], dir.path());
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `scenario` beside `dockerfile`: exit 2, the rule, the Dockerfile's line:col, a fix, no docker.
fn rejected_dockerfile(dockerfile: &str, scenario: &str, rule: &str, at: &str) -> String {
    let (code, err) = lint_with("run", dockerfile, scenario);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("lint[{rule}]")), "{err}");
    assert!(err.contains(&format!("Dockerfile:{at}:")), "expected Dockerfile:{at}: {err}");
    assert!(err.contains("fix:") && !err.contains("docker engine"), "{err}");
    err
}

const LOCAL: &str = "FROM 127.0.0.1:5000/bkcache/base-a:esgz";

#[test]
fn builds_stay_on_loopback_unless_the_scenario_allows_network() {
    let plain = scenario("max", IMPORT, "");
    for (dockerfile, at, what) in [
        ("# syntax=docker/dockerfile:1\nFROM 127.0.0.1:5000/bkcache/base-a:esgz\n", "1:3", "syntax"),
        ("FROM alpine\nRUN true\n", "1:6", "`FROM alpine` pulls from docker.io"),
        ("ARG B=ghcr.io/x/y\nFROM ${B}\n", "2:6", "pulls from ghcr.io"),
        (&format!("{LOCAL}\nCOPY --from=busybox:1 /bin/sh /sh\n"), "2:1", "`--from=busybox:1` is an image"),
        (&format!("{LOCAL}\nRUN --mount=from=nginx,target=/n true\n"), "2:1", "`--from=nginx` is an image"),
        (&format!("{LOCAL}\nADD https://example.com/x /x\n"), "2:5", "`ADD https://example.com/x` fetches"),
        (&format!("{LOCAL}\nADD git@github.com:moby/buildkit.git /src\n"), "2:5", "fetches from the network"),
    ] {
        let err = rejected_dockerfile(dockerfile, &plain, "off-loopback", at);
        assert!(err.contains(what), "{what}: {err}");
        // opting in lifts the rule (the lint then has nothing to say)
        let (code, err) = lint_with("lint", dockerfile, &format!("allow_network = true\n{plain}"));
        assert_eq!(code, Some(0), "{what}: {err}");
    }
    let syntax_arg =
        scenario("max", &format!("{IMPORT}\nbuild_args = {{ BUILDKIT_SYNTAX = \"docker/dockerfile:1\" }}"), "");
    let (code, err) = lint_with("lint", &format!("{LOCAL}\n"), &syntax_arg);
    assert!(code == Some(2) && err.contains("BUILDKIT_SYNTAX") && err.contains("bad.toml:"), "{err}");
}

#[test]
fn a_remote_profile_image_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), format!("{LOCAL}\n")).unwrap();
    std::fs::write(dir.path().join("s.toml"), scenario("max", IMPORT, "")).unwrap();
    let pins = repo().join("ci/versions.env");
    std::fs::write(
        dir.path().join("builders.toml"),
        format!("pins = {:?}\n[profiles.hub]\nimage = \"moby/buildkit:v0.25.2\"\nsnapshotter = \"overlayfs\"\n", pins),
    )
    .unwrap();
    let out = bkcache(&["lint", "s.toml", "--builders", "builders.toml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("builders.toml:3:9") && err.contains("off-loopback") && err.contains("docker.io"), "{err}");
}

#[test]
fn input_errors_buildkit_would_refuse_are_not_regressions() {
    let plain = scenario("max", IMPORT, "");
    for (dockerfile, at, what) in [
        ("ARG UNSET\nFROM ${UNSET}\nRUN true\n", "2:6", "names a build argument nothing sets"),
        (&format!("{LOCAL}\nRUN --network=host true\n"), "2:1", "network.host"),
        (&format!("{LOCAL}\nRUN --security=insecure true\n"), "2:1", "security.insecure"),
        (&format!("{LOCAL}\nRUN --mount=type=secret,id=k,required=true cat /run/secrets/k\n"), "2:1", "type=secret"),
        (&format!("{LOCAL}\nRUN --mount=type=ssh,required true\n"), "2:1", "type=ssh"),
    ] {
        let err = rejected_dockerfile(dockerfile, &plain, "input-error", at);
        assert!(err.contains(what), "{what}: {err}");
    }
    // an optional secret is simply absent: no finding
    let (code, err) = lint_with("lint", &format!("{LOCAL}\nRUN --mount=type=secret,id=k true\n"), &plain);
    assert_eq!(code, Some(0), "{err}");
    // a platform the local bases lack
    let arm = scenario("max", &format!("{IMPORT}\nplatform = \"linux/s390x\""), "");
    let (code, err) =
        lint_with("lint", "ARG BASE\nFROM ${BASE}\n", &format!("{arm}\n[bases]\nBASE = {{ local = \"base-a\" }}\n"));
    assert!(code == Some(2) && err.contains("input-error") && err.contains("linux/s390x"), "{err}");
}
