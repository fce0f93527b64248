//! End-to-end, real BuildKit: runs that share a machine do not interfere; nothing a run pushed or
//! created outlives it — not even when it is killed (`bkcache gc`); and faults of the machine (registry
//! stopped, answering 500 or too slowly, a full disk, a phase timeout, an unreachable Go module proxy)
//! are `error`, exit 2, never a verdict on BuildKit. The registries and fault proxies these tests own run
//! through testcontainers, so each test has its own.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::{builder_running, builders_file, leftovers, repo, run_test_scenario, slow_scenario};
use serde_json::Value;
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

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
        let out = common::bkcache()
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
    require_environment!();
    let before = registry_blobs();
    for run_id in ["e2e-registry-1", "e2e-registry-2"] {
        let run = run_test_scenario("registry-cache", &["newest-overlayfs"], run_id);
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
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    slow_scenario(dir.path(), 600);
    let artifacts = dir.path().join("artifacts");
    let mut child = common::bkcache()
        .args(["run", "slow.toml", "--builders", &builders_file(), "--builder", "newest-overlayfs"])
        .args(["--run-id", "e2e-killed", "--artifacts-dir"])
        .arg(&artifacts)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // once its build runs the step, kill bkcache without a chance to clean up
    builder_running("e2e-killed", "sleep 300", &mut child).await.expect("bkcache ended before its build ran");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!leftovers("e2e-killed").await.is_empty(), "a killed run leaves its builder");
    assert!(artifacts.join("e2e-killed").exists());
    let stdout = gc_until_collected(&artifacts, "0");
    assert!(stdout.contains("removed builder bkcache-e2e-killed."), "{stdout}");
    assert_eq!(leftovers("e2e-killed").await, Vec::<String>::new());
    assert!(!artifacts.join("e2e-killed").exists(), "{stdout}");
}

/// `bkcache gc` deletes only what carries bkcache's mark, and nothing of a live run: pointed at a
/// `/`-like tree (system directories, a directory named like a dead run but unmarked, a link to a marked
/// directory) it removes nothing; at a checkout it refuses to look; with another `BKCACHE_LOCK_DIR` in
/// its environment (which once made every run look dead) it still sees the live run; and the live run
/// then finishes, its builder and registry ref intact until its own clean-up.
#[tokio::test]
async fn gc_deletes_only_what_is_bkcaches_and_nothing_of_a_live_run() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "ARG BASE\nFROM ${BASE}\nRUN sleep 15\n").unwrap();
    std::fs::write(
        dir.path().join("live.toml"),
        "dockerfile = \"Dockerfile\"\n[bases]\nBASE = { local = \"base-a\" }\n[[phases]]\nname = \"export\"\nkind = \"build\"\n\
         cache_to = [{ type = \"registry\", name = \"main\", mode = \"max\" }]\n",
    )
    .unwrap();
    let artifacts = dir.path().join("artifacts");
    let mut child = common::bkcache()
        .args(["run", "live.toml", "--builders", &builders_file(), "--builder", "newest-overlayfs"])
        .args(["--run-id", "e2e-live-gc", "--artifacts-dir"])
        .arg(&artifacts)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    builder_running("e2e-live-gc", "sleep 15", &mut child).await.expect("bkcache ended before its build ran");

    // a tree like `/`: nothing in it carries bkcache's mark
    let root = dir.path().join("root");
    for d in ["etc", "usr", "bin", "e2e-dead-run", "e2e-other/sub"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("e2e-other/.bkcache-run"), "e2e-someone-else").unwrap();
    let marked = dir.path().join("marked");
    std::fs::create_dir_all(&marked).unwrap();
    std::fs::write(marked.join(".bkcache-run"), "e2e-linked").unwrap();
    std::os::unix::fs::symlink(&marked, root.join("e2e-linked")).unwrap();
    let gc = |artifacts_dir: &std::path::Path, env: Option<(&str, &str)>| {
        let mut command = common::bkcache();
        command.args(["gc", "--older-than-days", "0", "--artifacts-dir"]).arg(artifacts_dir).current_dir(repo());
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let out = gc(&root, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for d in ["etc", "usr", "bin", "e2e-dead-run", "e2e-other/sub", "e2e-linked"] {
        assert!(std::fs::symlink_metadata(root.join(d)).is_ok(), "gc removed {d}: {stdout}");
    }
    assert!(marked.join(".bkcache-run").exists(), "{stdout}");
    assert!(stdout.contains("left directory") && stdout.contains("e2e-dead-run"), "{stdout}");

    // a checkout, and `/` itself: refused before anything is looked at
    for refused in [repo(), std::path::PathBuf::from("/")] {
        let out = gc(&refused, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", refused.display());
        assert!(stderr.contains("will not look for runs to delete"), "{stderr}");
    }

    // another lock directory in the environment changes nothing: the live run stays alive
    let out = gc(&artifacts, Some(("BKCACHE_LOCK_DIR", "/tmp/bkcache-e2e-other-locks")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("e2e-live-gc"), "gc touched the live run: {stdout}");
    assert!(!leftovers("e2e-live-gc").await.is_empty(), "the live run's builder is gone");
    assert!(artifacts.join("e2e-live-gc/.bkcache-run").exists());

    let finished = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&finished.stdout);
    assert_eq!(finished.status.code(), Some(0), "the live run did not finish cleanly: {report}");
    assert!(report.contains("1 pass"), "{report}");
    assert_eq!(leftovers("e2e-live-gc").await, Vec::<String>::new());
    assert_eq!(run_tags("e2e-live-gc"), Vec::<String>::new(), "the run deleted its refs itself");
}

/// Run `a` and run `a-1` at once: when `a` finishes first, its clean-up must not touch `a-1`'s
/// builders (the sweep once went by the prefix `bkcache-a-`, which `a-1`'s builders also have). The
/// long run uses a new builder per repetition, so a builder removed under it fails the run instead of
/// being replaced quietly.
#[tokio::test]
async fn two_runs_at_once_do_not_remove_each_others_builders() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    let start = |run_id: &str, repeat: &str, extra: &[&str]| {
        let report = dir.path().join(format!("{run_id}.json"));
        let child = common::bkcache()
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

// ---- faults: whatever the machine does wrong is `error` (exit 2), never a verdict on BuildKit ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A registry of the test's own (testcontainers: host network, removed when dropped).
async fn own_registry() -> (ContainerAsync<GenericImage>, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let (name, tag) = common::REGISTRY_IMAGE.split_once(':').unwrap();
    let container = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_stderr("listening on"))
        .with_network("host")
        .with_env_var("REGISTRY_HTTP_ADDR", &addr)
        .start()
        .await
        .expect("the test's registry starts");
    (container, addr)
}

/// The fault proxy in front of `upstream`: `fault` after `after` faithful requests.
async fn fault_proxy(upstream: &str, fault: &str, after: u32, delay_ms: u32) -> (ContainerAsync<GenericImage>, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let image = common::faultproxy_image();
    let (name, tag) = image.split_once(':').unwrap();
    let container = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_stderr("faultproxy listening"))
        .with_network("host")
        .with_env_var("LISTEN", &addr)
        .with_env_var("UPSTREAM", format!("http://{upstream}"))
        .with_env_var("FAULT", fault)
        .with_env_var("AFTER", after.to_string())
        .with_env_var("DELAY_MS", delay_ms.to_string())
        .start()
        .await
        .expect("the fault proxy starts");
    (container, addr)
}

/// A scratch project whose registry (caches) is `registry`, while BuildKit's image and the base come
/// from the set-up's registry: one build phase exporting a registry cache after `RUN sleep 2`.
fn registry_fault_project(registry: &str, registry_container: &str, timeout_secs: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pins = bkcache::pins::Pins::load(&repo().join("ci/versions.env")).unwrap();
    let main = pins.registry();
    let newest = pins.get("BUILDKIT_NEWEST").unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    write("versions.env", format!("REGISTRY_ADDR={registry}\nREGISTRY_CONTAINER={registry_container}\n"));
    write(
        "builders.toml",
        format!(
            "pins = \"versions.env\"\n[profiles.p]\nimage = \"{main}/bkcache/buildkit:{newest}\"\nsnapshotter = \"overlayfs\"\n\
             buildkitd_config = '''\n[registry.\"{main}\"]\n  http = true\n  insecure = true\n'''\n"
        ),
    );
    write("Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN sleep 2 && head -c 64 /dev/urandom > /unique\n".into());
    write(
        "fault.toml",
        format!(
            "dockerfile = \"Dockerfile\"\nphase_timeout_secs = {timeout_secs}\n[bases]\nBASE = {{ image = \"{main}/bkcache/base-a:esgz\" }}\n\
             [[phases]]\nname = \"export\"\nkind = \"build\"\ncache_to = [{{ type = \"registry\", name = \"main\", mode = \"max\" }}]\n"
        ),
    );
    dir
}

/// Runs `fault.toml` of `dir` as run `run_id`, calling `during` once the build runs its step.
async fn run_with_fault<F: std::future::Future<Output = ()>>(
    dir: &std::path::Path,
    run_id: &str,
    during: F,
) -> (i32, Value) {
    let report = dir.join("report.json");
    let mut child = common::bkcache()
        .args(["run", "fault.toml", "--builders", "builders.toml", "--run-id", run_id, "--report-json"])
        .arg(&report)
        .arg("--artifacts-dir")
        .arg(dir.join("artifacts"))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if builder_running(run_id, "sleep", &mut child).await.is_some() {
        during.await;
    }
    let out = child.wait_with_output().unwrap();
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report = std::fs::read_to_string(&report).map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report)
}

fn assert_infrastructure(code: i32, report: &Value, context: &str) {
    let cell = &report["cells"][0];
    assert_eq!(code, 2, "{cell:#}");
    assert_eq!(cell["verdict"], "error", "{cell:#}");
    let error = &cell["errors"][0];
    assert_eq!(error["kind"], "infrastructure", "{cell:#}");
    assert!(error["text"].as_str().unwrap().contains(context), "expected {context:?}: {cell:#}");
}

#[tokio::test]
async fn a_registry_that_stops_mid_phase_is_infrastructure() {
    require_environment!();
    let (registry, addr) = own_registry().await;
    let dir = registry_fault_project(&addr, registry.id(), 120);
    let (code, report) = run_with_fault(dir.path(), "e2e-fault-stop", async { registry.stop().await.unwrap() }).await;
    assert_infrastructure(code, &report, "the registry does not answer");
    assert_eq!(leftovers("e2e-fault-stop").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_registry_answering_500_is_infrastructure() {
    require_environment!();
    let (registry, upstream) = own_registry().await;
    // the run's first request (its check that the registry answers) goes through; then every one fails
    let (_proxy, addr) = fault_proxy(&upstream, "500", 1, 0).await;
    let dir = registry_fault_project(&addr, registry.id(), 120);
    let (code, report) = run_with_fault(dir.path(), "e2e-fault-500", async {}).await;
    assert_infrastructure(code, &report, "the registry does not answer");
    assert_eq!(leftovers("e2e-fault-500").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_registry_too_slow_for_the_phase_timeout_is_infrastructure() {
    require_environment!();
    let (registry, upstream) = own_registry().await;
    let (_proxy, addr) = fault_proxy(&upstream, "slow", 1, 5000).await;
    let dir = registry_fault_project(&addr, registry.id(), 8);
    let (code, report) = run_with_fault(dir.path(), "e2e-fault-slow", async {}).await;
    assert_infrastructure(code, &report, "timed out after 8s");
    assert_eq!(leftovers("e2e-fault-slow").await, Vec::<String>::new());
}

/// Umounts a tmpfs when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_artifacts_disk_is_infrastructure() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    std::fs::create_dir(&artifacts).unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&artifacts).status().unwrap();
    assert!(mounted.success(), "mounting a 1 MiB tmpfs (the tests run as root)");
    let _tmpfs = Tmpfs(artifacts.clone());
    // the cell exports a local cache of several MiB into the 1 MiB directory
    let run = common::bkcache()
        .args([
            "run",
            "scenarios/issue-6893.toml",
            "--builder",
            "newest-overlayfs",
            "--run-id",
            "e2e-fault-disk",
            "--report-json",
        ])
        .arg(dir.path().join("report.json"))
        .arg("--artifacts-dir")
        .arg(&artifacts)
        .current_dir(repo())
        .output()
        .unwrap();
    eprintln!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    let cell = &report["cells"][0];
    assert_eq!(run.status.code(), Some(2), "{cell:#}");
    assert_eq!(cell["verdict"], "error", "{cell:#}");
    assert_eq!(cell["reasons"], serde_json::json!([]), "not judged as BuildKit's doing: {cell:#}");
    assert_eq!(leftovers("e2e-fault-disk").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_phase_over_its_timeout_is_infrastructure_and_leaves_nothing() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    slow_scenario(dir.path(), 3);
    let report = dir.path().join("report.json");
    let out = common::bkcache()
        .args(["run", "slow.toml", "--builders", &builders_file(), "--builder", "newest-overlayfs"])
        .args(["--run-id", "e2e-fault-timeout", "--report-json"])
        .arg(&report)
        .arg("--artifacts-dir")
        .arg(dir.path().join("artifacts"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_infrastructure(out.status.code().unwrap_or(-1), &report, "timed out after 3s");
    assert_eq!(leftovers("e2e-fault-timeout").await, Vec::<String>::new());
}

#[tokio::test]
async fn an_unreachable_go_module_proxy_fails_an_image_build_as_infrastructure() {
    require_environment!();
    let modcache = tempfile::tempdir().unwrap();
    let out = common::bkcache()
        .args(["buildkit", "build", "--version", "v0.22.0"])
        .current_dir(repo())
        // nothing cached, and the proxy refuses connections
        .env("GOMODCACHE", modcache.path())
        .env("GOPROXY", format!("http://127.0.0.1:{}", free_port()))
        .env("GOFLAGS", "-mod=mod")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("v0.22.0") && err.contains("connection refused"), "{err}");
    let images =
        Command::new("docker").args(["images", "-q", "127.0.0.1:5000/bkcache/buildkit:v0.22.0"]).output().unwrap();
    assert!(images.stdout.is_empty(), "no image was made");
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(modcache.path()).status();
}

/// Two processes that need the same BuildKit image at once build it once: the second waits on the
/// image's lock and reuses what the first built. (The patch adds a file no Go package reads, so the Go
/// build is a cache hit and the test stays short; its content is unique, so the tag is new every time.)
#[tokio::test]
async fn two_processes_needing_one_new_image_build_it_once() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("built by the e2e test {} at {:?}\n", std::process::id(), std::time::SystemTime::now());
    let patch = format!(
        "diff --git a/BKCACHE-E2E b/BKCACHE-E2E\nnew file mode 100644\n--- /dev/null\n+++ b/BKCACHE-E2E\n@@ -0,0 +1 @@\n+{marker}"
    );
    let patch_path = dir.path().join("e2e-marker.patch");
    std::fs::write(&patch_path, patch).unwrap();
    let pins = bkcache::pins::Pins::load(&repo().join("ci/versions.env")).unwrap();
    let version = pins.get("BUILDKIT_NEWEST").unwrap().to_owned();
    let build = || {
        common::bkcache()
            .args(["buildkit", "build", "--version", &version, "--patch"])
            .arg(&patch_path)
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (build(), build());
    let outputs: Vec<String> = [first, second]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect();
    let tag = outputs[0].split_whitespace().next().unwrap().to_owned();
    let _ = Command::new("docker").args(["image", "rm", &tag]).output();
    let mut outcomes: Vec<&str> =
        outputs.iter().map(|o| if o.ends_with("(built)") { "built" } else { "reused" }).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["built", "reused"], "{outputs:?}");
    assert!(outputs.iter().all(|o| o.starts_with(&tag)), "{outputs:?}");
}

/// The set-up's local eStargz bases, pushed by `bkcache setup bases` into a registry of the test's own:
/// both built and checked for eStargz annotations, the builder that built them removed; a second run
/// finds them and builds nothing.
#[tokio::test]
async fn setup_pushes_the_estargz_bases_a_registry_lacks_and_only_those() {
    require_environment!();
    let (_registry, addr) = own_registry().await;
    let pins = bkcache::pins::Pins::load(&repo().join("ci/versions.env")).unwrap();
    let image = format!("{}/bkcache/buildkit:{}", pins.registry(), pins.get("BUILDKIT_NEWEST").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let test_pins = dir.path().join("versions.env");
    std::fs::write(&test_pins, format!("REGISTRY_ADDR={addr}\nREGISTRY_CONTAINER=none\n")).unwrap();
    let setup = || {
        let out =
            common::bkcache().args(["setup", "bases", "--image", &image, "--pins"]).arg(&test_pins).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = setup();
    let registry = bkcache::host::registry::Registry { addr: addr.clone(), container: String::new() };
    for base in bkcache::images::bases::LOCAL_BASES {
        let reference = format!("{addr}/bkcache/{base}:esgz");
        assert!(first.contains(&format!("{reference} (built)")), "{first}");
        assert!(bkcache::images::bases::is_estargz(&registry, &reference).await.unwrap(), "{reference}");
    }
    let second = setup();
    assert_eq!(second.matches("(present)").count(), 2, "{second}");
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let options = bollard::query_parameters::ListContainersOptions { all: true, ..Default::default() };
    let left: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .filter(|n| n.contains("bkcache-setup-"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "the bases' builder is removed");
}
