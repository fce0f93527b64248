//! End-to-end, real BuildKit: runs that share a machine do not interfere, and nothing a run pushed or
//! created outlives it — not even when it is killed (`bkcache gc`).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::{bkcache_run, builders_file, environment_ready, leftovers, repo};
use serde_json::Value;

const REGISTRY_CONTAINER: &str = "bkcache-registry";

/// The digests of every blob the local registry stores.
fn registry_blobs() -> BTreeSet<String> {
    let out = Command::new("docker")
        .args(["exec", REGISTRY_CONTAINER, "find", "/var/lib/registry/docker/registry/v2/blobs", "-name", "data"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.rsplit('/').nth(1).map(str::to_owned)).collect()
}

/// The tags of every repository a run with this id pushed to.
fn run_tags(run_id: &str) -> Vec<String> {
    let catalog: Value = ureq_get("/v2/_catalog?n=1000");
    catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| r.split('/').nth(1) == Some(run_id))
        .flat_map(|repo| {
            let tags: Value = ureq_get(&format!("/v2/{repo}/tags/list"));
            tags["tags"].as_array().cloned().unwrap_or_default().into_iter().map(move |t| format!("{repo}:{t}"))
        })
        .collect()
}

fn ureq_get(path: &str) -> Value {
    let out = Command::new("curl").args(["-sf", &format!("http://127.0.0.1:5000{path}")]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `bkcache gc` until it could collect the registry (other tests' runs may be active meanwhile); what
/// every call printed.
fn gc_until_collected(artifacts: &std::path::Path, older_than_days: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let mut printed = String::new();
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_bkcache"))
            .args(["gc", "--older-than-days", older_than_days, "--artifacts-dir"])
            .arg(artifacts)
            .current_dir(repo())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        printed.push_str(&stdout);
        if stdout.contains("registry blobs collected") {
            return printed;
        }
        assert!(std::time::Instant::now() < deadline, "the registry was never free to collect: {printed}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A run deletes the registry caches it pushed; the garbage collection (by the last run to finish, or
/// `bkcache gc`) removes their blobs, so the registry holds no more blobs than before the runs.
#[tokio::test]
async fn a_runs_registry_caches_are_deleted_and_their_blobs_collected() {
    if !environment_ready().await {
        return;
    }
    let before = registry_blobs();
    for run_id in ["e2e-registry-1", "e2e-registry-2"] {
        let run = bkcache_run(
            &[
                "harness/tests/scenarios/registry-cache.toml",
                "--builders",
                &builders_file(),
                "--builder",
                "newest-overlayfs",
            ],
            run_id,
        );
        assert_eq!(run.code(), Some(0), "{}", run.stdout());
        assert_eq!(run_tags(run_id), Vec::<String>::new(), "the run deleted its refs");
        assert_eq!(leftovers(run_id).await, Vec::<String>::new());
    }
    gc_until_collected(&repo().join("bkcache-artifacts"), "7");
    let after = registry_blobs();
    let new: Vec<&String> = after.difference(&before).collect();
    assert!(new.is_empty(), "blobs the runs pushed are still stored: {new:?}");
}

/// A run killed before its clean-up (SIGKILL) leaves its builder and artifacts; `bkcache gc` removes
/// them, and nothing of a live run.
#[tokio::test]
async fn gc_removes_what_a_killed_run_left() {
    if !environment_ready().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "ARG BASE\nFROM ${BASE}\nRUN sleep 300\n").unwrap();
    std::fs::write(
        dir.path().join("slow.toml"),
        "dockerfile = \"Dockerfile\"\n[bases]\nBASE = { local = \"base-a\" }\n[[phases]]\nkind = \"build\"\n",
    )
    .unwrap();
    let artifacts = dir.path().join("artifacts");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bkcache"))
        .args(["run", "slow.toml", "--builders", &builders_file(), "--builder", "newest-overlayfs"])
        .args(["--run-id", "e2e-killed", "--artifacts-dir"])
        .arg(&artifacts)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // once its build runs the step, kill bkcache without a chance to clean up
    loop {
        assert!(child.try_wait().unwrap().is_none(), "bkcache ended before its build ran");
        let ps = Command::new("docker")
            .args(["ps", "--format", "{{.Names}}", "--filter", "name=buildx_buildkit_bkcache-e2e-killed."])
            .output()
            .unwrap();
        let name = String::from_utf8_lossy(&ps.stdout).trim().to_owned();
        if !name.is_empty() {
            let top = Command::new("docker").args(["top", &name]).output().unwrap();
            if String::from_utf8_lossy(&top.stdout).contains("sleep 300") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!leftovers("e2e-killed").await.is_empty(), "a killed run leaves its builder");
    assert!(artifacts.join("e2e-killed").exists());
    let stdout = gc_until_collected(&artifacts, "0");
    assert!(stdout.contains("removed builder bkcache-e2e-killed."), "{stdout}");
    assert_eq!(leftovers("e2e-killed").await, Vec::<String>::new());
    assert!(!artifacts.join("e2e-killed").exists(), "{stdout}");
}

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
