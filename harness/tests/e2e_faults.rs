//! End-to-end, real BuildKit: runs that share a machine do not interfere.

mod common;

use std::process::{Command, Stdio};

use common::{environment_ready, leftovers, repo};
use serde_json::Value;

/// Run `a` and run `a-1` at once: when `a` finishes first, its clean-up must not touch `a-1`'s
/// builders (the sweep once went by the prefix `bkcache-a-`, which `a-1`'s builders also have). The
/// long run uses a new builder per repetition, so a builder removed under it fails the run instead of
/// being replaced quietly.
#[tokio::test]
async fn two_runs_at_once_do_not_remove_each_others_builders() {
    if !environment_ready().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = |run_id: &str, repeat: &str, extra: &[&str]| {
        let report = dir.path().join(format!("{run_id}.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_bkcache"))
            .args(["run", "scenarios/issue-6893.toml", "--builder", "newest-overlayfs", "--jobs", "1"])
            .args(["--repeat", repeat, "--run-id", run_id, "--report-json"])
            .arg(&report)
            .args(extra)
            .arg("--artifacts-dir")
            .arg(dir.path().join("artifacts"))
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (child, report)
    };
    let (long, long_report) = start("e2e-conc-1", "4", &["--fresh-builders"]);
    let (short, short_report) = start("e2e-conc", "1", &[]);
    for (child, report, reps) in [(short, short_report, 1), (long, long_report, 4)] {
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{text}");
        let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        let cell = &report["cells"][0];
        assert_eq!(cell["verdict"], "pass", "{cell:#}");
        assert_eq!(cell["pass_rate"]["finished"], reps, "{cell:#}");
    }
    assert_eq!(leftovers("e2e-conc").await, Vec::<String>::new());
    assert_eq!(leftovers("e2e-conc-1").await, Vec::<String>::new());
}
