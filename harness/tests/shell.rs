//! Every shell file — `ci/`, `.ci/run`, the evidence packs' prelude — and the `reproduce.sh` bkcache
//! writes for every corpus scenario pass shellcheck, which `ci/setup.sh` installs; a missing shellcheck
//! fails this test and says so (BKCACHE_SKIP_E2E=1 skips it loudly, like the end-to-end tests).

#[macro_use]
mod common;

use common::repo;

use std::path::{Path, PathBuf};
use std::process::Command;

use bkcache::evidence::script::{self, ScriptInputs};
use bkcache::plan::Filter;
use bkcache::session::{self, PlanOptions};

/// shellcheck's findings on `files` (`excluded` checks aside); `None` when they pass.
fn shellcheck(files: &[PathBuf], excluded: &[&str]) -> Option<String> {
    let mut command = Command::new("shellcheck");
    command.arg("--format=gcc").args(excluded.iter().map(|e| format!("--exclude={e}")));
    let output = match command.args(files).current_dir(repo()).output() {
        Ok(output) => output,
        Err(e) => panic!("shellcheck not runnable ({e}): run `bash ci/setup.sh` (ci/install-engine.sh installs it)"),
    };
    (!output.status.success()).then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn skipped() -> bool {
    let skip = std::env::var("BKCACHE_SKIP_E2E").as_deref() == Ok("1");
    if skip {
        eprintln!("SKIPPED: BKCACHE_SKIP_E2E=1 (shellcheck not run)");
    }
    skip
}

#[test]
fn the_projects_shell_files_pass_shellcheck_and_a_broken_one_does_not() {
    if skipped() {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("ci"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    files.extend([repo().join(".ci/run"), repo().join("harness/src/evidence/prelude.sh")]);
    assert!(files.len() > 10, "{files:?}");
    assert_eq!(shellcheck(&files, &[]), None);

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.sh");
    std::fs::write(&broken, "#!/bin/sh\ncd $1\nrm -rf $1/*\n").unwrap();
    let findings = shellcheck(&[broken], &[]).expect("shellcheck rejects unquoted expansions");
    assert!(findings.contains("SC2086"), "{findings}");
}

#[test]
fn every_reproduce_script_bkcache_writes_passes_shellcheck() {
    if skipped() {
        return;
    }
    let plan = session::plan(&PlanOptions {
        paths: vec![repo().join("scenarios"), repo().join("harness/tests/scenarios")],
        builders: Some(repo().join("scenarios/builders.toml")),
        filter: Filter { builders: vec!["newest-stargz".into()], ..Filter::default() },
        buildkit: Vec::new(),
        buildkit_source: Default::default(),
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scripts: Vec<PathBuf> = plan
        .cells
        .iter()
        .map(|cell| {
            let text = script::render(&ScriptInputs {
                cell,
                registry: "127.0.0.1:5000",
                dockerfile: "Dockerfile",
                context: "context",
                buildkitd_toml: "buildkitd.toml",
            });
            let path = dir.path().join(format!("{}.sh", cell.scenario.name.slug()));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    assert!(scripts.len() > 20, "{} scripts", scripts.len());
    // SC2317 ("unreachable"): the prelude's helpers a scenario's phases do not call (delete_layers, push_base)
    assert_eq!(shellcheck(&scripts, &["SC2317"]), None, "in {}", Path::new(dir.path()).display());
}
