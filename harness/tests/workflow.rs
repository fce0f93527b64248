//! The GitHub Actions workflow users copy (`ci/github/bkcache.yml`) is checked by actionlint, which
//! `ci/test.sh` installs (ci/install-actionlint.sh); a missing actionlint fails this test and says so (BKCACHE_SKIP_E2E=1 skips it
//! loudly, like the end-to-end tests).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workflow() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/github/bkcache.yml")
}

/// actionlint's findings on `path`; `None` when it passed.
fn actionlint(path: &Path) -> Option<String> {
    let output = match Command::new("actionlint").arg("-no-color").arg(path).output() {
        Ok(output) => output,
        Err(e) => panic!("actionlint not runnable ({e}): run `bash ci/install-actionlint.sh` (ci/test.sh does)"),
    };
    (!output.status.success()).then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn the_workflow_passes_actionlint_and_a_broken_copy_does_not() {
    if std::env::var("BKCACHE_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED: BKCACHE_SKIP_E2E=1 (actionlint not run on ci/github/bkcache.yml)");
        return;
    }
    assert_eq!(actionlint(&workflow()), None);
    // the check is real: a job that needs a job the workflow lacks, and an unknown matrix key, are caught
    let text = std::fs::read_to_string(workflow()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("bkcache.yml");
    std::fs::write(
        &broken,
        text.replace("needs: build", "needs: compile").replace("matrix.shard }}/4", "matrix.part }}/4"),
    )
    .unwrap();
    let findings = actionlint(&broken).expect("actionlint rejects the broken copy");
    assert!(findings.contains("compile"), "{findings}");
    assert!(findings.contains("part"), "{findings}");
}
