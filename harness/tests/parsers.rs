//! The rawjson, cacheconfig and buildkitd-log parsers on fixtures captured from real runs
//! (see fixtures/README.md).

use std::path::PathBuf;

use bkcache::observe::{cache, forensics, keys, laziness, progress};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn step<'a>(p: &'a progress::Progress, name: &str) -> &'a progress::Step {
    p.steps.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step {name:?} in {:#?}", p.steps))
}

const STABLE: &str = "[build 2/3] RUN echo stable > /stable";

#[test]
fn overlayfs_import_build_has_the_stable_step_cached_and_the_bust_step_run() {
    let p = progress::parse(&read("newest-overlayfs/import.rawjson"), true);
    assert!(step(&p, STABLE).cached);
    let bust = step(&p, r#"[build 3/3] RUN echo "2" > /bust"#);
    assert!(!bust.cached && bust.completed);
}

#[test]
fn stargz_import_build_reran_the_stable_step() {
    for profile in ["newest-stargz", "v0-24-stargz"] {
        let p = progress::parse(&read(&format!("{profile}/import.rawjson")), true);
        let stable = step(&p, STABLE);
        assert!(!stable.cached && stable.completed, "{profile}: {stable:?}");
    }
}

#[test]
fn export_build_caches_nothing() {
    let p = progress::parse(&read("v0-24-overlayfs/export.rawjson"), true);
    assert!(p.steps.iter().all(|s| !s.cached), "{:#?}", p.steps);
    assert!(p.messages.is_empty(), "every line of a rawjson stream is JSON: {:?}", p.messages);
}

#[test]
fn vertices_are_merged_by_digest_in_order_of_first_appearance() {
    let text = read("newest-overlayfs/import.rawjson");
    let mut digests: Vec<String> = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for vertex in v["vertexes"].as_array().into_iter().flatten() {
            let d = vertex["digest"].as_str().unwrap().to_owned();
            if !digests.contains(&d) {
                digests.push(d);
            }
        }
    }
    let p = progress::parse(&text, true);
    assert!(digests.len() > 1);
    assert_eq!(p.steps.iter().map(|s| s.digest.clone()).collect::<Vec<_>>(), digests);
}

#[test]
fn failed_build_marks_the_failing_step_and_caches_nothing() {
    let p = progress::parse(&read("failed-build/broken.rawjson"), false);
    // single-stage build: BuildKit drops the stage name
    let broken = step(&p, "[3/3] RUN echo boom && exit 3");
    assert!(broken.error.as_deref().is_some_and(|e| e.contains("exit code: 3")), "{broken:?}");
    assert!(p.steps.iter().all(|s| !s.cached));
    assert!(p.messages.iter().any(|m| m.starts_with("ERROR: failed to solve")), "{:?}", p.messages);
}

#[test]
fn cached_with_an_error_is_not_cached() {
    // moby/buildkit#5644: a vertex skipped after an error can be reported cached.
    let stream = r#"{"vertexes":[{"digest":"sha256:a","name":"[2/2] RUN x","cached":true}]}
{"vertexes":[{"digest":"sha256:a","name":"[2/2] RUN x","error":"canceled"}]}
{"vertexes":[{"digest":"sha256:b","name":"[1/2] FROM y","cached":true}]}"#;
    let ok = progress::parse(stream, true);
    assert!(!ok.steps[0].cached);
    assert!(ok.steps[1].cached);
    assert!(progress::parse(stream, false).steps.iter().all(|s| !s.cached));
}

fn summary(profile: &str) -> forensics::CacheSummary {
    let cache = cache::read_layout(&fixture(&format!("{profile}/cache"))).unwrap();
    forensics::summarize("export", "local:main", cache, &[], &keys::KeyTexts::default()).summary
}

#[test]
fn cache_summaries_show_the_6893_symptom_on_stargz() {
    let overlay = summary("newest-overlayfs");
    let stargz = summary("newest-stargz");
    assert_eq!((overlay.records, overlay.records_with_layers), (6, 3));
    // same records, but the build stage's lost their layers
    assert_eq!((stargz.records, stargz.records_with_layers), (6, 1));
    assert_eq!(stargz.records_without_layers_digests.len(), 5);
}

#[test]
fn cache_summaries_show_missing_records_on_v0_24_stargz() {
    let overlay = summary("v0-24-overlayfs");
    let stargz = summary("v0-24-stargz");
    assert_eq!((overlay.records, overlay.records_with_layers), (8, 3));
    assert_eq!((stargz.records, stargz.records_with_layers), (4, 1));
}

#[test]
fn cache_summary_counts_every_layer() {
    let cache = cache::read_layout(&fixture("newest-overlayfs/cache")).unwrap();
    assert_eq!(summary("newest-overlayfs").layers, cache.config.layers.len());
    assert!(cache.config.layers.iter().all(|l| l.blob.starts_with("sha256:")));
}

#[test]
fn cache_read_names_what_is_missing() {
    let err = cache::read_layout(&fixture("failed-build")).unwrap_err();
    let err = bkcache::errors::with_sources(&err);
    assert!(err.contains("index.json"), "{err}");
}

#[test]
fn laziness_is_seen_on_stargz_logs_only() {
    for (profile, lazy) in [("newest-stargz", true), ("v0-24-stargz", true), ("newest-overlayfs", false)] {
        let l = laziness::from_buildkitd_log(&read(&format!("{profile}/buildkitd.log")));
        assert_eq!(l.is_lazy(), lazy, "{profile}: {l:?}");
        assert_eq!(l.evidence.is_some(), lazy);
    }
    assert_eq!(laziness::from_buildkitd_log(&read("newest-stargz/buildkitd.log")).remote_snapshots, 4);
}
