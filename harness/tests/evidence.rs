//! The evidence pack's `reproduce.sh` without docker: it is valid sh, carries the commands bkcache runs,
//! and its shell functions judge real `--progress plain` logs (fixtures/README.md) as the judge does.

#[macro_use]
mod common;

use common::repo;

use std::path::Path;
use std::process::Command;

use bkcache::evidence::script::{self, ScriptInputs, PRELUDE};
use bkcache::plan::Cell;

fn cell(builder: &str) -> Cell {
    common::planned_cell("scenarios/issue-6893.toml", builder)
}

fn render(cell: &Cell) -> String {
    script::render(&ScriptInputs {
        cell,
        registry: "127.0.0.1:5000",
        dockerfile: "Dockerfile",
        context: "context",
        buildkitd_toml: "buildkitd.toml",
    })
}

#[test]
fn the_script_is_valid_sh_with_the_commands_bkcache_runs() {
    let text = render(&cell("newest-stargz"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reproduce.sh");
    std::fs::write(&path, &text).unwrap();
    let check = Command::new("sh").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "{}\n{text}", String::from_utf8_lossy(&check.stderr));
    let line = |start: &str| text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("{start}\n{text}"));
    assert_eq!(line("IMAGE="), "IMAGE=${IMAGE:-127.0.0.1:5000/bkcache/buildkit:v0.33.1}");
    assert!(line("KNOWN_ISSUES=").starts_with("KNOWN_ISSUES='moby/buildkit#6893'"));
    assert!(line("docker buildx create").contains(
        "--driver-opt image=\"${IMAGE}\" --buildkitd-flags --oci-worker-snapshotter=stargz \
         --buildkitd-config \"${PACK}\"/buildkitd.toml --bootstrap"
    ));
    // the export build exactly as bkcache runs it, with --progress plain and the run's paths as variables
    assert_eq!(
        line("build export"),
        "build export '' '' build --builder \"${BUILDER}\" --progress plain --file \"${PACK}\"/Dockerfile \
         --build-arg BASE_BUILD=\"${REGISTRY}\"/bkcache/base-a:esgz --build-arg BASE_FINAL=\"${REGISTRY}\"/bkcache/base-b:esgz \
         --build-arg BUST=1 --cache-to type=local,dest=\"${WORK}\"/cache/main,mode=max --output type=cacheonly \"${PACK}\"/context"
    );
    assert_eq!(line("docker buildx prune"), "docker buildx prune --builder \"${BUILDER}\" --force --all > \"$LOGS/prune.log\" 2>&1 || { errors=1; echo \"  ERROR  prune: prune failed\"; finish; }");
    // each expectation names the known issue that explains it on this builder, or none
    assert!(
        text.contains("    expect import cached exact '[build 2/3] RUN echo stable > /stable' 'moby/buildkit#6893'\n")
    );
    assert!(text.contains("    expect import ran re '^\\[build 3/3\\] RUN echo \".*\" > /bust$' ''\n"));
    // no known issue on overlayfs
    assert!(render(&cell("newest-overlayfs")).contains("KNOWN_ISSUES=''"));
}

/// Runs the script's functions over a fixture directory of plain logs; (exit code, output).
fn judge_logs(logs: &Path, known_issues: &str, calls: &str) -> (i32, String) {
    let text = format!("KNOWN_ISSUES='{known_issues}'\n{PRELUDE}\n{calls}\nfinish\n");
    let out = Command::new("sh").arg("-c").arg(text).env("LOGS", logs).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_script_judges_real_plain_logs_as_bkcache_does() {
    let fixtures = repo().join("harness/tests/fixtures/plain");
    let stable = "expect import cached exact '[build 2/3]   RUN echo stable > /stable'";
    let bust = "expect import ran re '^\\[build 3/3\\] RUN echo \".*\" > /bust$' ''";
    let calls = |known: &str| format!("{stable} '{known}'\n{bust}");

    let (code, out) = judge_logs(&fixtures.join("newest-overlayfs"), "", &calls(""));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  held   import: [build 2/3]   RUN echo stable > /stable cached"), "{out}");
    assert!(out.contains("verdict: pass (2 held, 0 broke, 0 broke as known issues)"), "{out}");

    let (code, out) = judge_logs(&fixtures.join("newest-stargz"), "", &calls(""));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  BROKE  import: [build 2/3]   RUN echo stable > /stable ran, expected cached"), "{out}");
    assert!(out.contains("verdict: fail (1 held, 1 broke, 0 broke as known issues)"), "{out}");

    let known = "moby/buildkit#6893";
    let (code, out) = judge_logs(&fixtures.join("newest-stargz"), known, &calls(known));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verdict: known-failure (1 held, 0 broke, 1 broke as known issues: moby/buildkit#6893)"),
        "{out}"
    );

    // a known issue that does not break anything here: the cell passing is news
    let (code, out) = judge_logs(&fixtures.join("newest-overlayfs"), known, &calls(known));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: unexpected-pass"), "{out}");

    // a matcher that matches no step cannot be judged
    let (code, out) = judge_logs(&fixtures.join("newest-overlayfs"), "", "expect import cached exact 'RUN nothing' ''");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("ERROR  import: no step matches RUN nothing"), "{out}");
}

#[test]
fn file_checks_in_the_script_compare_the_two_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    for (phase, unique, bust) in [("export", "a", "1"), ("import", "a", "2")] {
        std::fs::create_dir_all(work.join("out").join(phase)).unwrap();
        std::fs::write(work.join("out").join(phase).join("unique"), unique).unwrap();
        std::fs::write(work.join("out").join(phase).join("bust"), bust).unwrap();
    }
    let calls = "expect_file import same export /unique ''\nexpect_file import differs export /bust ''";
    // WORK is the script's own temporary directory (removed on exit): point the checks at the fixture
    // outputs instead, and keep them
    let run = |calls: &str| {
        let text = format!(
            "KNOWN_ISSUES=''\n{PRELUDE}\ntrap - EXIT\nrm -rf \"$WORK\"\nWORK={}\n{calls}\nfinish\n",
            work.display()
        );
        let out = Command::new("sh").arg("-c").arg(text).env("LOGS", work.join("logs")).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = run(calls);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("held   import: /unique has the same bytes as in export"), "{out}");
    assert!(out.contains("held   import: /bust has other bytes than in export"), "{out}");
    let (code, out) = run("expect_file import same export /bust ''");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKE  import: /bust has other bytes than in export"), "{out}");
    let (code, out) = run("expect_file import same export /nope ''");
    assert_eq!(code, 2, "{out}");
    std::fs::write(work.join("out/export/only-before"), "x").unwrap();
    let (code, out) = run("expect_file import same export /only-before ''");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKE  import: /only-before is missing (the output of export has it)"), "{out}");
}
