//! Helpers shared by the end-to-end test binaries: the environment check (fails, naming what is
//! missing; never skips unless BKCACHE_SKIP_E2E=1 says so), running the real binary, and finding what
//! a run left behind.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use bkcache::host::docker::Engine;
use bkcache::host::registry::Registry;
use bkcache::profiles::Profiles;
use serde_json::Value;

/// The local registry image `ci/start-registry.sh` makes; the fault tests run their own from it.
pub const REGISTRY_IMAGE: &str = "bkcache/registry:debian";

/// The fault proxy image `ci/build-faultproxy.sh` makes: tagged with its source's hash.
pub fn faultproxy_image() -> String {
    use sha2::Digest;
    let source = std::fs::read(repo().join("ci/faultproxy/main.go")).unwrap();
    let hash: String = sha2::Sha256::digest(source).iter().map(|b| format!("{b:02x}")).collect();
    format!("bkcache/faultproxy:{}", &hash[..12])
}

/// Skips the calling end-to-end test when the environment is missing and the user asked to skip
/// (BKCACHE_SKIP_E2E=1); fails it, naming what is missing, otherwise.
#[allow(unused_macros)] // each test binary uses its own subset
macro_rules! require_environment {
    () => {
        if !crate::common::environment_ready().await {
            return;
        }
    };
}

/// The bkcache binary under test, as a command (no RUST_LOG from the caller's environment).
pub fn bkcache() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bkcache"));
    command.env_remove("RUST_LOG");
    command
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The one cell of `scenario` (repo-relative) on `builder` of the project's builders file, planned from
/// the repository's files.
pub fn planned_cell(scenario: &str, builder: &str) -> bkcache::plan::Cell {
    let plan = bkcache::session::plan(&bkcache::session::PlanOptions {
        paths: vec![repo().join(scenario)],
        builders: Some(repo().join("scenarios/builders.toml")),
        filter: bkcache::plan::Filter { builders: vec![builder.into()], ..Default::default() },
        buildkit: Vec::new(),
        buildkit_source: Default::default(),
    })
    .unwrap();
    plan.cells.into_iter().next().unwrap()
}

/// The project's builders file, as an absolute path (for scenarios written elsewhere).
pub fn builders_file() -> String {
    repo().join("scenarios/builders.toml").display().to_string()
}

/// Writes `<dir>/<name>.toml`: the repo's scenario `source` rewritten by `edit`, with its Dockerfile path
/// made absolute so the copy works from anywhere.
pub fn variant(dir: &std::path::Path, source: &str, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let source = repo().join(source);
    let text = std::fs::read_to_string(&source).unwrap();
    let text = text.replace("dockerfile = \"", &format!("dockerfile = \"{}/", source.parent().unwrap().display()));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// Checks the set-up is there; `false` only when the user asked to skip.
pub async fn environment_ready() -> bool {
    let mut missing = Vec::new();
    let profiles = Profiles::load(&repo().join("scenarios/builders.toml")).expect("builders.toml loads");
    match Engine::connect().await {
        Err(e) => missing.push(format!("docker engine: {e}")),
        Ok(engine) => {
            for p in &profiles.profiles {
                if !engine.has_image(&p.image).await.unwrap_or(false) {
                    missing.push(format!("BuildKit image {} (profile {})", p.image, p.name));
                }
            }
        }
    }
    let registry = Registry::new(&profiles.pins);
    match registry.ping().await {
        Err(e) => missing.push(format!("registry: {e}")),
        Ok(()) => {
            for base in ["base-a", "base-b"] {
                let image = format!("{}/bkcache/{base}:esgz", registry.addr);
                if !registry.has_image(&image).await.unwrap_or(false) {
                    missing.push(format!("eStargz base {image}"));
                }
            }
        }
    }
    for image in [REGISTRY_IMAGE.to_owned(), faultproxy_image()] {
        let inspect = Command::new("docker").args(["image", "inspect", &image]).output();
        if !inspect.is_ok_and(|o| o.status.success()) {
            missing.push(format!("image {image} (the fault tests' own registries and proxies: ci/test.sh builds it)"));
        }
    }
    let buildx = Command::new("docker").args(["buildx", "version"]).output();
    if !buildx.is_ok_and(|o| o.status.success()) {
        missing.push("docker buildx (the CLI plugin)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let list = missing.join("\n  - ");
    if std::env::var("BKCACHE_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED (BKCACHE_SKIP_E2E=1): end-to-end environment missing:\n  - {list}");
        return false;
    }
    panic!("end-to-end environment missing (run `bash ci/test.sh`, or `bash ci/setup.sh` and the ci/ scripts it names):\n  - {list}");
}

pub struct Run {
    pub output: Output,
    pub report: Value,
    pub artifacts: tempfile::TempDir,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn cells(&self) -> HashMap<String, Value> {
        self.report["cells"]
            .as_array()
            .expect("cells array")
            .iter()
            .map(|c| (c["builder"].as_str().unwrap().to_owned(), c.clone()))
            .collect()
    }
}

/// Runs the real binary from the repository root with `args`; its stdout, after asserting it succeeded.
pub fn bkcache_ok<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let output = bkcache().args(args).current_dir(repo()).output().expect("run bkcache");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn bkcache_run(args: &[&str], run_id: &str) -> Run {
    let artifacts = tempfile::tempdir().unwrap();
    let report = artifacts.path().join("report.json");
    let output = bkcache()
        .arg("run")
        .args(args)
        .args(["--run-id", run_id, "--report-json"])
        .arg(&report)
        .arg("--artifacts-dir")
        .arg(artifacts.path())
        .current_dir(repo())
        .output()
        .expect("run bkcache");
    eprintln!("{}\n{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout));
    let report = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).expect("report is JSON"))
        .unwrap_or(Value::Null);
    if !report.is_null() {
        assert_follows_the_schema(&report);
    }
    Run { output, report, artifacts }
}

/// Every report a real run writes follows the published schema (docs/report.schema.json).
pub fn assert_follows_the_schema(report: &Value) {
    let text = std::fs::read_to_string(repo().join("docs/report.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap();
    let errors: Vec<String> = validator.iter_errors(report).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "the report breaks docs/report.schema.json: {errors:#?}");
}

/// Runs `harness/tests/scenarios/<name>.toml` on these profiles of the project's builders file.
pub fn run_test_scenario(name: &str, builders: &[&str], run_id: &str) -> Run {
    let scenario = format!("harness/tests/scenarios/{name}.toml");
    let builders_file = builders_file();
    let mut args = vec![scenario.as_str(), "--builders", builders_file.as_str()];
    args.extend(builders.iter().flat_map(|b| ["--builder", *b]));
    bkcache_run(&args, run_id)
}

/// What this run left: containers and volumes named after its builders, and buildx builders.
pub async fn leftovers(run_id: &str) -> Vec<String> {
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let prefix = bkcache::host::BuilderName::run_prefix(run_id);
    let mut left: Vec<String> = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions { all: true, ..Default::default() }))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .filter(|n| n.contains(&prefix))
        .collect();
    let volumes = docker.list_volumes(None::<bollard::query_parameters::ListVolumesOptions>).await.unwrap();
    left.extend(volumes.volumes.unwrap_or_default().into_iter().map(|v| v.name).filter(|n| n.contains(&prefix)));
    let ls = Command::new("docker").args(["buildx", "ls"]).output().unwrap();
    left.extend(String::from_utf8_lossy(&ls.stdout).lines().filter(|l| l.contains(&prefix)).map(str::to_owned));
    left
}

/// Writes `<dir>/slow.toml` and its Dockerfile: one build phase running `RUN sleep 300` on base-a, with
/// this phase timeout.
pub fn slow_scenario(dir: &std::path::Path, timeout_secs: u32) {
    std::fs::write(dir.join("Dockerfile"), "ARG BASE\nFROM ${BASE}\nRUN sleep 300\n").unwrap();
    let scenario = format!(
        "dockerfile = \"Dockerfile\"\nphase_timeout_secs = {timeout_secs}\n[bases]\nBASE = {{ local = \"base-a\" }}\n\
         [[phases]]\nname = \"slow\"\nkind = \"build\"\n"
    );
    std::fs::write(dir.join("slow.toml"), scenario).unwrap();
}

/// Waits (polling `docker ps` and `docker top`) until a builder of run `run_id` runs a process whose
/// command line contains `step`, and returns its container; `None` if `child` ended first.
pub async fn builder_running(run_id: &str, step: &str, child: &mut std::process::Child) -> Option<String> {
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        let filter = format!("name={}", bkcache::host::BuilderName::container_prefix(run_id));
        let ps = Command::new("docker").args(["ps", "--format", "{{.Names}}", "--filter", &filter]).output().unwrap();
        let name = String::from_utf8_lossy(&ps.stdout).trim().to_owned();
        if !name.is_empty() {
            let top = Command::new("docker").args(["top", &name]).output().unwrap();
            if String::from_utf8_lossy(&top.stdout).contains(step) {
                return Some(name);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
