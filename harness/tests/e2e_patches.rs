//! End-to-end: BuildKit images built from a release plus patches, and the #6893 patch matrix, on real
//! BuildKit. Same environment rules as e2e.rs.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};

use bkcache::buildkit_spec::{BuildkitSpec, Patch};
use bkcache::profiles::Profiles;
use common::{bkcache_run, leftovers, repo};
use serde_json::Value;

fn verdicts(run: &common::Run) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = run
        .cells()
        .into_iter()
        .map(|(builder, cell)| (builder, cell["verdict"].as_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

fn images(run: &common::Run) -> Vec<(String, bool)> {
    run.report["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            (
                i["patches"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect::<Vec<_>>().join("+"),
                i["built"] == true,
            )
        })
        .collect()
}

#[tokio::test]
async fn patch_matrix_verdicts_as_measured_and_images_reused() {
    require_environment!();
    let matrix = repo().join("scenarios/patch-matrix/builders.toml").display().to_string();
    let out = tempfile::tempdir().unwrap();
    let (md, junit) = (out.path().join("m.md"), out.path().join("j.xml"));
    let run = bkcache_run(
        &[
            "scenarios/issue-6893.toml",
            "--builders",
            &matrix,
            "--jobs",
            "4",
            "--markdown",
            md.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        "e2e-matrix",
    );
    assert_eq!(run.code(), Some(0));
    let expected: Vec<(String, String)> = [
        ("all-three-overlayfs", "pass"),
        ("all-three-stargz", "unexpected-pass"),
        ("main-remote-first-overlayfs", "pass"),
        ("main-remote-first-stargz", "known-failure"),
        ("none-overlayfs", "pass"),
        ("none-stargz", "known-failure"),
        ("reroot+main-remote-first-overlayfs", "pass"),
        ("reroot+main-remote-first-stargz", "unexpected-pass"),
        ("reroot-overlayfs", "pass"),
        ("reroot-stargz", "known-failure"),
    ]
    .iter()
    .map(|(b, v)| (b.to_string(), v.to_string()))
    .collect();
    assert_eq!(verdicts(&run), expected);
    // the one-line fix alone gives a record back, but not the one the import needs
    let cells = run.cells();
    let with_layers = |b: &str| cells[b]["cache"]["records_with_layers"].as_u64().unwrap();
    assert!(with_layers("reroot-stargz") > with_layers("none-stargz"));
    assert_eq!(with_layers("reroot+main-remote-first-stargz"), with_layers("none-overlayfs"));
    for (builder, cell) in &cells {
        let patches = cell["buildkit"]["patches"].as_array().unwrap().len();
        let expected = match builder.split('-').next().unwrap() {
            "none" => 0,
            "reroot" | "main" => 1,
            "reroot+main" => 2,
            _ => 3,
        };
        assert_eq!(patches, expected, "{builder}");
    }

    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(markdown.contains("| BuildKit | overlayfs | stargz |"), "{markdown}");
    assert!(markdown.contains("| v0.33.1 + exporter-reroot-cache-opts + exporter-main-remote-first | pass<br>records with layers 3/6 | **pass: fixed?** (moby/buildkit#6893)"), "{markdown}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 10, "{xml}");
    assert!(xml.contains(r#"skipped="3""#) && xml.contains(r#"failures="0""#), "{xml}");
    assert_eq!(leftovers("e2e-matrix").await, Vec::<String>::new());

    // unchanged versions and patches: nothing is rebuilt, and the report says so
    let again = bkcache_run(
        &[
            "scenarios/issue-6893.toml",
            "--builders",
            &matrix,
            "--builder",
            "none-overlayfs",
            "--builder",
            "all-three-overlayfs",
        ],
        "e2e-matrix-again",
    );
    assert_eq!(again.code(), Some(0));
    assert_eq!(
        images(&again),
        [
            ("".to_owned(), false),
            ("exporter-reroot-cache-opts+exporter-main-remote-first+chains-addresult-dedupe".to_owned(), false)
        ]
    );
}

/// The matrix's builders file and patches, copied so a test may change a patch.
fn copy_matrix(dir: &Path) -> PathBuf {
    let patches = dir.join("patches");
    std::fs::create_dir_all(&patches).unwrap();
    for entry in std::fs::read_dir(repo().join("patches")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), patches.join(entry.file_name())).unwrap();
    }
    let builders = std::fs::read_to_string(repo().join("scenarios/patch-matrix/builders.toml"))
        .unwrap()
        .replace("../../patches/", "patches/")
        .replace("\"../../ci/versions.env\"", &format!("{:?}", repo().join("ci/versions.env").display().to_string()));
    let path = dir.join("builders.toml");
    std::fs::write(&path, builders).unwrap();
    path
}

async fn remove_image(tag: &str) {
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let _ = docker.remove_image(tag, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
}

#[tokio::test]
async fn a_changed_patch_rebuilds_exactly_the_images_that_use_it() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    let builders = copy_matrix(dir.path());
    // change the patch only the all-three set uses (a header line: git apply ignores it, the hash does not)
    let dedupe = dir.path().join("patches/chains-addresult-dedupe.patch");
    let nonce = format!("test run {:?}\n", std::time::SystemTime::now());
    std::fs::write(&dedupe, nonce + &std::fs::read_to_string(&dedupe).unwrap()).unwrap();
    let profiles = Profiles::load(&builders).unwrap();
    let changed_tag = profiles.get("all-three-stargz").unwrap().image.clone();
    // the unchanged patch set's image exists before the run (built here on a fresh machine)
    let reroot = profiles.get("reroot-overlayfs").unwrap().buildkit.clone().unwrap();
    let engine = bkcache::host::docker::Engine::connect().await.unwrap();
    bkcache::images::buildkit::ensure(&engine, &reroot, profiles.pins.registry()).await.unwrap();

    let run = bkcache_run(
        &[
            "scenarios/issue-6893.toml",
            "--builders",
            builders.to_str().unwrap(),
            "--builder",
            "reroot-overlayfs",
            "--builder",
            "all-three-stargz",
        ],
        "e2e-changed-patch",
    );
    remove_image(&changed_tag).await;
    assert_eq!(run.code(), Some(0));
    assert_eq!(
        images(&run),
        [
            ("exporter-reroot-cache-opts".to_owned(), false),
            ("exporter-reroot-cache-opts+exporter-main-remote-first+chains-addresult-dedupe".to_owned(), true)
        ]
    );
    // the freshly built patched image was the one the cell ran on
    let cell = &run.cells()["all-three-stargz"];
    assert_eq!(cell["buildkit"]["image"], Value::String(changed_tag));
    assert_eq!(cell["verdict"], "unexpected-pass");
}

#[tokio::test]
async fn a_broken_patch_is_a_clear_error_and_leaves_no_image() {
    require_environment!();
    let dir = tempfile::tempdir().unwrap();
    let builders = copy_matrix(dir.path());
    let broken = dir.path().join("patches/exporter-reroot-cache-opts.patch");
    let text = std::fs::read_to_string(&broken).unwrap().replace(" \tv := e.record\n", " \tv := e.recordThatIsNot\n");
    std::fs::write(&broken, text).unwrap();
    let spec = BuildkitSpec {
        version: "v0.33.1".into(),
        source: Default::default(),
        patches: vec![Patch::read(&broken).unwrap()],
    };
    let tag = spec.tag("127.0.0.1:5000");

    let out = common::bkcache()
        .args(["buildkit", "build", "--version", "v0.33.1", "--patch"])
        .arg(&broken)
        .current_dir(repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("patch {} does not apply to BuildKit v0.33.1", broken.display())), "{stderr}");
    assert!(stderr.contains("patch failed: solver/exporter.go:145"), "names file and hunk: {stderr}");
    assert!(stderr.contains("no image was built"), "{stderr}");

    // the same patch in a profile stops the run before any builder exists
    let run = bkcache_run(
        &["scenarios/issue-6893.toml", "--builders", builders.to_str().unwrap(), "--builder", "reroot-stargz"],
        "e2e-broken-patch",
    );
    assert_eq!(run.code(), Some(2));
    assert_eq!(leftovers("e2e-broken-patch").await, Vec::<String>::new());
    let engine = bkcache::host::docker::Engine::connect().await.unwrap();
    assert!(!engine.has_image(&tag).await.unwrap(), "a half-built image {tag} was left");
}
