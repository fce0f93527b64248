//! Property tests: no input bkcache reads from a file makes it panic — scenario files, cache documents
//! (index, manifests, cacheconfig) and result files. Each property starts from a real input (a corpus
//! scenario, a cache a real run exported, a result file's shape) and mutates it, and also tries
//! arbitrary text; whatever comes out must be an `Ok` or a typed error. The number of cases per
//! property is bounded (`PROPTEST_CASES`, default 256) so CI stays fast.

#[macro_use]
mod common;

use common::repo;

use std::path::Path;

use bkcache::observe::cache::{child_documents, read_layout};
use bkcache::profiles::Profiles;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A text with one byte range replaced: the mutations a hand edit or a corrupted file makes.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    (0..base.len(), 0..40usize, ".{0,40}").prop_map(move |(at, len, with)| {
        let mut at = at;
        while !base.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + len).min(base.len());
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{}{}", &base[..at], with, &base[end..])
    })
}

const SCENARIO: &str = include_str!("../../scenarios/issue-6893.toml");
const DOCKERFILE: &str = include_str!("../../dockerfiles/issue-6893.Dockerfile");

fn profiles() -> Profiles {
    Profiles::load(&repo().join("scenarios/builders.toml")).unwrap()
}

fn load_scenario(text: &str, dockerfile: &str) {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(scenarios.join("../dockerfiles")).unwrap();
    std::fs::write(dir.path().join("dockerfiles/issue-6893.Dockerfile"), dockerfile).unwrap();
    std::fs::write(scenarios.join("s.toml"), text).unwrap();
    let _ = bkcache::scenario::load(&scenarios.join("s.toml"), &profiles());
}

/// A cache layout (index.json → index → cacheconfig) with `config` as the cacheconfig's bytes.
fn layout(dir: &Path, config: &[u8], index_edit: &dyn Fn(String) -> String) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = bkcache::digest::BlobDigest::of(bytes);
        std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
        (digest.to_string(), bytes.len())
    };
    let (config_digest, config_size) = put(config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"{config_digest}","size":{config_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = put(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{manifest_digest}","size":{manifest_size}}}]}}"#
    );
    std::fs::write(dir.join("index.json"), index_edit(index)).unwrap();
}

const CACHECONFIG: &str = r#"{"layers":[{"blob":"sha256:1111111111111111111111111111111111111111111111111111111111111111","parent":-1},{"blob":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}],"records":[{"digest":"sha256:aa","layers":[{"layer":1,"createdAt":"2026-01-01T00:00:00Z"}],"inputs":[]},{"digest":"sha256:bb","inputs":[[{"selector":"x","link":0}]]}]}"#;

const RESULT: &str = r#"{"format":2,"plan":{"paths":["scenarios/issue-6893.toml"],"builders":null,"scenarios":[],"profiles":["newest-overlayfs"],"repeat":null,"buildkit":[]},"cell":"issue-6893@newest-overlayfs","repetition":0,"run_id":"r","docker_engine":"","images":[],"observations":{"phases":[]},"artifacts":null,"duration_secs":1.5}"#;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scenario_files_never_panic(text in mutated(SCENARIO)) {
        load_scenario(&text, DOCKERFILE);
    }

    #[test]
    fn dockerfiles_never_panic(text in mutated(DOCKERFILE)) {
        load_scenario(SCENARIO, &text);
    }

    #[test]
    fn arbitrary_scenario_text_never_panics(text in "\\PC{0,300}") {
        load_scenario(&text, DOCKERFILE);
    }

    #[test]
    fn cacheconfigs_never_panic(config in mutated(CACHECONFIG)) {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path(), config.as_bytes(), &|i| i);
        let _ = read_layout(dir.path());
    }

    #[test]
    fn indexes_never_panic(edit in (0..400usize, 0..60usize, "[a-z0-9:/.{}\\[\\]\",-]{0,30}")) {
        let dir = tempfile::tempdir().unwrap();
        let (at, len, with) = edit;
        layout(dir.path(), CACHECONFIG.as_bytes(), &move |index: String| {
            let at = at.min(index.len());
            let end = (at + len).min(index.len());
            format!("{}{}{}", &index[..at], with, &index[end..])
        });
        let _ = read_layout(dir.path());
    }

    #[test]
    fn documents_never_panic_and_name_only_parsed_digests(doc in "\\PC{0,200}") {
        if let Ok(children) = child_documents(doc.as_bytes()) {
            for c in children {
                prop_assert!(!c.digest.hex().contains(['/', '.']));
            }
        }
    }

    #[test]
    fn result_files_never_panic(text in mutated(RESULT)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), &text).unwrap();
        let cwd = repo();
        let _guard = CWD.lock().unwrap();
        std::env::set_current_dir(&cwd).unwrap();
        let _ = bkcache::results::merge(&[dir.path().to_owned()]);
    }
}

/// Result files name their scenarios relative to where the run ran (the repository root).
static CWD: std::sync::Mutex<()> = std::sync::Mutex::new(());
