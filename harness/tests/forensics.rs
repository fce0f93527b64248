//! Cache forensics on artifacts captured from real runs (`fixtures/forensics/README.md`): records
//! mapped to steps, why a step ran, cache diffs, cache audits, and malformed caches.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};

use bkcache::inspect::{self, RecordState};
use bkcache::observe::cache::{self, CacheFormat};
use bkcache::observe::forensics::{AbsenceWhy, CacheSummary, Miss, MissCause};
use bkcache::observe::{Observations, PhaseOutcome};

const STABLE: &str = "[build 2/3] RUN echo stable > /stable";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forensics").join(name)
}

fn observe(name: &str) -> Observations {
    inspect::observe_repetition(&fixture(name)).unwrap()
}

fn misses(o: &Observations, phase: &str) -> Vec<Miss> {
    let p = o.phases.iter().find(|p| p.phase == phase).unwrap();
    match &p.outcome {
        PhaseOutcome::Build { misses, .. } => misses.clone(),
        _ => panic!("{phase} is not a build"),
    }
}

fn cause(o: &Observations, step: &str) -> MissCause {
    misses(o, "import").into_iter().find(|m| m.step == step).unwrap_or_else(|| panic!("{step} did not run")).cause
}

fn labels(c: &CacheSummary) -> Vec<(String, usize)> {
    let mut l: Vec<_> = c.entries.iter().map(|e| (e.label.clone(), e.blobs.len())).collect();
    l.sort();
    l
}

#[test]
fn every_record_of_the_6893_export_is_mapped_to_its_step() {
    for cell in ["issue-6893-newest-stargz", "issue-6893-newest-overlayfs", "registry-backend-newest-stargz"] {
        let o = observe(cell);
        let cache = &o.caches[0];
        let steps: Vec<&str> = cache.entries.iter().filter(|e| e.is_step).map(|e| e.label.as_str()).collect();
        assert_eq!(steps.len(), 5, "{cell}: {:?}", labels(cache));
        assert!(steps.contains(&STABLE) && steps.contains(&"[build 3/3] RUN echo \"1\" > /bust"), "{steps:?}");
        assert!(steps.contains(&"[stage-1 2/2] COPY --from=build /stable /bust /"));
        assert_eq!(steps.iter().filter(|s| s.contains("] FROM ")).count(), 2);
        // the sixth is the COPY's content key
        assert!(cache.entries.iter().any(|e| !e.is_step && e.label.starts_with("content key")));
    }
}

#[test]
fn newest_stargz_lost_the_build_stage_layers_at_export() {
    for (cell, cache_name) in
        [("issue-6893-newest-stargz", "local:main"), ("registry-backend-newest-stargz", "registry:main")]
    {
        let o = observe(cell);
        match cause(&o, STABLE) {
            MissCause::NoLayers { cache, .. } => assert_eq!(cache, cache_name),
            other => panic!("{cell}: {other:?}"),
        }
        // the step above it ran, but with its key unchanged: that is no cause (BuildKit keys a step by its
        // inputs' keys, not by whether they ran); its own build arg is, as on the eager builder
        let bust = "[build 3/3] RUN echo \"2\" > /bust";
        match cause(&o, bust) {
            MissCause::KeyDiffers { cache, differences } => {
                assert_eq!(cache, cache_name);
                assert_eq!(differences, ["env `BUST` (a build arg or ENV): `1` → `2`"], "{cell}: as on overlayfs");
            }
            other => panic!("{cell}: {other:?}"),
        }
    }
}

#[test]
fn v0_24_stargz_exported_no_record_for_the_build_stage() {
    for cell in ["issue-6893-v0-24-stargz", "registry-backend-v0-24-stargz"] {
        let o = observe(cell);
        // the export build built the step and exported with mode=max: the record was dropped at export
        match cause(&o, STABLE) {
            MissCause::NoRecord { imported } => {
                assert!(
                    matches!(&imported[..], [a] if a.why == AbsenceWhy::Dropped { phase: "export".into() }),
                    "{imported:?}"
                );
                let text = MissCause::NoRecord { imported }.to_string();
                assert!(text.contains("with mode=max, which holds a record of every step its build solved"), "{text}");
            }
            other => panic!("{cell}: {other:?}"),
        }
        assert!(o.caches[0].entries_for(STABLE).next().is_none());
    }
}

#[test]
fn overlayfs_reran_only_the_step_whose_build_arg_changed_and_names_it() {
    let o = observe("issue-6893-newest-overlayfs");
    let ran: Vec<String> = misses(&o, "import").into_iter().map(|m| m.step).collect();
    assert!(!ran.contains(&STABLE.to_owned()), "{ran:?}");
    match cause(&o, "[build 3/3] RUN echo \"2\" > /bust") {
        MissCause::KeyDiffers { differences, .. } => {
            assert_eq!(differences, ["env `BUST` (a build arg or ENV): `1` → `2`"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_reason_of_a_broken_expectation_carries_the_explanation() {
    let o = observe("issue-6893-newest-stargz");
    let text = cause(&o, STABLE).to_string();
    assert!(text.starts_with("record present without layers in `local:main`"), "{text}");
}

#[test]
fn inline_caches_are_read_from_the_pushed_image() {
    let good = observe("inline-cache-newest-overlayfs");
    assert_eq!(good.caches[0].format, CacheFormat::Inline);
    assert_eq!(good.caches[0].entries_for("[2/3] RUN echo stable > /stable").next().map(|e| e.blobs.len()), Some(2));
    // v0.33.1 with stargz pushed the image without its inline cache: an empty cache, not a read error
    let bad = observe("inline-cache-newest-stargz");
    assert!(bad.infrastructure.is_none());
    assert_eq!(bad.caches[0].records, 0);
    assert_eq!(bad.caches[0].format, CacheFormat::ImageWithoutCache);
    // explained as such: the image carries no inline cache, not "the step was not exported"
    let text = cause(&bad, "[2/3] RUN echo stable > /stable").to_string();
    assert_eq!(
        text,
        "no record for it in the imported cache: `inline:export` holds no record: the image was pushed without an inline cache (its config has no `moby.buildkit.cache.v0`)"
    );
}

#[test]
fn a_record_whose_blob_is_gone_is_explained_by_buildkits_failed_load() {
    // the layer blob of the stable step was deleted from the local cache between export and import:
    // BuildKit found the record, failed to load it, and ran the step, with the build succeeding
    let o = observe("missing-blob-newest-overlayfs");
    match cause(&o, STABLE) {
        MissCause::LoadFailed { error } => assert!(
            error
                .contains("content sha256:88461ebbf847339503e21dd8977de5eced5b69328e67111063bed63b89a1c6bf: not found"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    // the cache still lists the deleted blob in a record's layers: read alone, it looks whole
    let deleted = "sha256:88461ebbf847339503e21dd8977de5eced5b69328e67111063bed63b89a1c6bf";
    assert!(o.caches[0].entries.iter().any(|e| e.blobs.blobs().contains(&deleted)));
}

fn summary(cell: &str) -> CacheSummary {
    observe(cell).caches.remove(0)
}

#[test]
fn cache_diff_of_stargz_and_overlayfs_lists_the_records_without_layers_by_step() {
    let diffs = inspect::diff(&summary("issue-6893-newest-stargz"), &summary("issue-6893-newest-overlayfs"));
    let lost: Vec<&str> = diffs
        .iter()
        .filter(|d| d.a == RecordState::WithoutLayers && matches!(d.b, RecordState::WithLayers { .. }))
        .map(|d| d.step.as_str())
        .collect();
    assert_eq!(lost, [r#"[build 3/3] RUN echo "1" > /bust"#, STABLE]);
    // the same records on both sides: nothing missing either way
    assert!(diffs.iter().all(|d| d.a != RecordState::Missing && d.b != RecordState::Missing), "{diffs:?}");
}

/// A copy of a fixture's cache directory to break.
fn broken_copy(edit: impl FnOnce(&Path)) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("issue-6893-newest-overlayfs/cache/main");
    let dst = tmp.path().join("cache");
    std::fs::create_dir_all(dst.join("blobs/sha256")).unwrap();
    std::fs::copy(src.join("index.json"), dst.join("index.json")).unwrap();
    for f in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dst.join("blobs/sha256").join(f.file_name())).unwrap();
    }
    edit(&dst);
    let err = bkcache::errors::with_sources(&cache::read_layout(&dst).unwrap_err());
    (tmp, err)
}

/// The cacheconfig blob of the copy, and the manifest naming it.
fn config_and_manifest(dir: &Path) -> (PathBuf, PathBuf) {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    let manifest_path = dir.join("blobs/sha256").join(&manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    (dir.join("blobs/sha256").join(config), manifest_path)
}

#[test]
fn malformed_caches_are_errors_naming_the_file() {
    let (_t, err) = broken_copy(|d| {
        let text = std::fs::read(d.join("index.json")).unwrap();
        std::fs::write(d.join("index.json"), &text[..text.len() / 2]).unwrap();
    });
    assert!(err.contains("index.json") && err.contains("not an OCI document"), "truncated: {err}");

    let (_t, err) = broken_copy(|d| std::fs::remove_file(config_and_manifest(d).0).unwrap());
    assert!(err.contains("blobs/sha256/") && err.contains("No such file"), "missing blob: {err}");

    let (_t, err) = broken_copy(|d| {
        let path = config_and_manifest(d).0;
        let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        std::fs::write(&path, text.replacen("\"records\"", "\"recordz\"", 1)).unwrap();
    });
    assert!(err.contains("does not match its digest"), "bad digest: {err}");

    // well-formed documents with the wrong content: re-hashed so only the content is wrong
    let rewrite = |d: &Path, from: &str, to: &str| {
        let (config, manifest_path) = config_and_manifest(d);
        let text = String::from_utf8(std::fs::read(&config).unwrap()).unwrap().replacen(from, to, 1);
        let digest = sha256(text.as_bytes());
        std::fs::write(d.join("blobs/sha256").join(&digest), &text).unwrap();
        let old = config.file_name().unwrap().to_str().unwrap().to_owned();
        let manifest = String::from_utf8(std::fs::read(&manifest_path).unwrap()).unwrap().replace(&old, &digest);
        let manifest = manifest.replace(
            &format!("\"size\":{}", std::fs::metadata(&config).unwrap().len()),
            &format!("\"size\":{}", text.len()),
        );
        let manifest_digest = sha256(manifest.as_bytes());
        std::fs::write(d.join("blobs/sha256").join(&manifest_digest), &manifest).unwrap();
        let old_manifest = manifest_path.file_name().unwrap().to_str().unwrap().to_owned();
        let index = std::fs::read_to_string(d.join("index.json")).unwrap().replace(&old_manifest, &manifest_digest);
        std::fs::write(d.join("index.json"), index).unwrap();
    };
    let (_t, err) = broken_copy(|d| rewrite(d, "\"records\"", "\"recordz\""));
    assert!(err.contains("unknown field `recordz`") && err.contains("blobs/sha256/"), "unknown field: {err}");
    let (_t, err) = broken_copy(|d| rewrite(d, "\"link\":", "\"link\":9"));
    assert!(err.contains("links to record"), "dangling link: {err}");

    let (_t, err) = broken_copy(|d| {
        let (_, manifest_path) = config_and_manifest(d);
        let manifest = std::fs::read_to_string(&manifest_path)
            .unwrap()
            .replace(cache::CACHECONFIG_MEDIA_TYPE, "application/vnd.oci.image.config.v1+json");
        let digest = sha256(manifest.as_bytes());
        std::fs::write(d.join("blobs/sha256").join(&digest), &manifest).unwrap();
        let old = manifest_path.file_name().unwrap().to_str().unwrap().to_owned();
        let index = std::fs::read_to_string(d.join("index.json")).unwrap().replace(&old, &digest);
        std::fs::write(d.join("index.json"), index).unwrap();
    });
    assert!(err.contains("blobs/sha256/"), "wrong media type: {err}");
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies a fixture repetition (files and directories) into a temporary directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    fn copy(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            let to = dst.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &to);
            } else {
                std::fs::copy(entry.path(), &to).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy(&fixture(name), tmp.path());
    tmp
}

#[test]
fn a_cache_buildkit_wrote_unreadable_is_an_observation_not_an_infrastructure_failure() {
    // as two local exports in one build leave the first: index.json naming a manifest it lacks
    let dir = copy_fixture("issue-6893-newest-overlayfs");
    let blobs = dir.path().join("cache/main/blobs/sha256");
    let index = std::fs::read_to_string(dir.path().join("cache/main/index.json")).unwrap();
    let top = index.split("sha256:").nth(1).unwrap()[..64].to_owned();
    std::fs::remove_file(blobs.join(&top)).unwrap();
    let o = inspect::observe_repetition(dir.path()).unwrap();
    assert_eq!(o.infrastructure, None);
    assert!(o.caches[0].unreadable.as_deref().is_some_and(|e| e.contains(&top)), "{:?}", o.caches[0]);
    // the step that ran in the real build is now explained by the unreadable cache
    match cause(&o, r#"[build 3/3] RUN echo "2" > /bust"#) {
        MissCause::NoRecord { imported } => {
            assert_eq!(imported[0].cache, "local:main");
            assert!(
                matches!(&imported[0].why, AbsenceWhy::Unreadable { error } if error.contains(&top)),
                "{imported:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// `cache audit` on the issue-6893 exports captured from real runs: the eager export passes, the lazy
/// one is flagged (exit 1) with the two build-stage records written without their results.
#[test]
fn cache_audit_flags_the_records_a_lazy_export_dropped() {
    let audit = |fixture: &str, extra: &[&str]| {
        let dir = common::repo().join("harness/tests/fixtures").join(fixture).join("cache");
        let out = common::bkcache().args(["cache", "audit"]).arg(&dir).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, text) = audit("newest-overlayfs", &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.ends_with("6 records, 0 findings\n"), "{text}");
    let (code, text) = audit("newest-stargz", &[]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.matches("result-dropped: record sha256:").count(), 2, "{text}");
    assert!(text.contains("sha256:2a5a141244dc") && text.contains("sha256:e9c84e6e33a9"), "{text}");
    let (code, text) = audit("newest-stargz", &["--mode", "min"]);
    assert_eq!(code, Some(0), "a mode=min export leaves records below the image without results: {text}");
}

/// With the exporting build's key dump (and its progress), each flagged record is named by what it
/// caches: the #6893 signature mapped to the build stage's steps.
#[test]
fn cache_audit_names_the_steps_of_the_records_it_flags() {
    let cell = fixture("issue-6893-newest-stargz");
    let audit = |extra: &[&str]| {
        let out = common::bkcache()
            .args(["cache", "audit"])
            .arg(cell.join("cache/main"))
            .arg("--keys")
            .arg(cell.join("export.keys.json"))
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stdout).unwrap()
    };
    let rawjson = cell.join("export.rawjson");
    let text = audit(&["--rawjson", rawjson.to_str().unwrap()]);
    assert!(text.contains("result-dropped: record sha256:e9c84e6e33a9a474946cae33059714115b910f9b73185fdc2ceb02976646701d  [build 2/3] RUN echo stable > /stable\n"), "{text}");
    assert!(text.contains("  [build 3/3] RUN echo \"1\" > /bust\n"), "{text}");
    // the key dump alone says which op: the command
    let text = audit(&[]);
    assert!(text.contains("  RUN echo stable > /stable\n"), "{text}");
}
