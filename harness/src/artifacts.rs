//! The contract between `execute` (and `capture`), which write a repetition's raw artifacts, and
//! `observe` / `inspect` / `gc`, which read them: `raw.json` and the files beside it (the rawjson
//! streams, the buildkitd log, the caches' layouts, the cache-key dumps), and the marker that makes an
//! artifacts directory a run's. Neither side imports the other; both import this.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::{InfraError, InfraFailure};

/// What one repetition left behind, before anyone interpreted it. Saved as `raw.json` in the
/// repetition's directory (the rawjson streams and the log beside it), so its artifacts can be observed
/// again later (`bkcache explain DIR`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RawRepetition {
    pub phases: Vec<RawPhase>,
    #[serde(skip)]
    pub buildkitd_log: Option<String>,
    pub infrastructure: Option<InfraFailure>,
}

/// The file [`RawRepetition`] is saved in.
pub const RAW_FILE: &str = "raw.json";

impl RawRepetition {
    /// Saves it into `dir`, paths relative to `dir`.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let mut json = serde_json::to_value(self).map_err(std::io::Error::other)?;
        rebase(&mut json, &format!("{}/", dir.display()), "");
        std::fs::write(dir.join(RAW_FILE), serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?)
    }

    /// Loads what [`RawRepetition::save`] saved in `dir`, with the rawjson streams and the log beside it.
    pub fn load(dir: &Path) -> Result<RawRepetition, InfraError> {
        let path = dir.join(RAW_FILE);
        let text = std::fs::read_to_string(&path).map_err(InfraError::io(format!("reading {}", path.display())))?;
        let mut json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| InfraError::io(format!("reading {}", path.display()))(std::io::Error::other(e)))?;
        rebase_relative(&mut json, dir);
        let mut raw: RawRepetition = serde_json::from_value(json)
            .map_err(|e| InfraError::io(format!("reading {}", path.display()))(std::io::Error::other(e)))?;
        for p in &mut raw.phases {
            if let Some(build) = &mut p.build {
                let rawjson = dir.join(format!("{}.rawjson", p.phase));
                build.rawjson = std::fs::read_to_string(&rawjson)
                    .map_err(InfraError::io(format!("reading {}", rawjson.display())))?;
            }
        }
        raw.buildkitd_log = std::fs::read_to_string(dir.join("buildkitd.log")).ok();
        Ok(raw)
    }
}

/// Rewrites every string starting with `from` to start with `to` instead.
fn rebase(json: &mut serde_json::Value, from: &str, to: &str) {
    match json {
        serde_json::Value::String(s) if s.starts_with(from) => *s = format!("{to}{}", &s[from.len()..]),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| rebase(v, from, to)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| rebase(v, from, to)),
        _ => {}
    }
}

/// Makes the saved paths (the `dir`, `key_dumps` fields) absolute under `dir`.
fn rebase_relative(json: &mut serde_json::Value, dir: &Path) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    ("dir" | "key_dumps", serde_json::Value::String(s)) => *s = dir.join(&*s).display().to_string(),
                    (_, v) => rebase_relative(v, dir),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| rebase_relative(v, dir)),
        _ => {}
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RawPhase {
    pub phase: String,
    pub duration: Duration,
    /// `None` for a phase that builds nothing.
    pub build: Option<RawBuild>,
    /// For a drift or delete-layers phase: what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
}

/// What a phase that builds nothing did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// A declared base (its build argument) pushed again under the same tag with other content.
    Drifted { base: String },
    /// Layer blobs deleted (this many), from where `from` says.
    LayersDeleted { from: String, layers: usize },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RawBuild {
    /// buildx's stderr with `--progress=rawjson` (saved as `<phase>.rawjson`).
    #[serde(skip)]
    pub rawjson: String,
    pub succeeded: bool,
    /// The caches this build exported, as OCI layouts (a local export, or a copy of what it pushed).
    pub exports: Vec<CacheArtifact>,
    /// The caches it imported: the layouts of earlier phases' exports.
    pub imports: Vec<CacheArtifact>,
    /// The stem of its cache-key dumps (`<stem>.keys.json`, `<stem>.store.json`: see [`crate::host::keys`]), when
    /// the builder records cache keys.
    pub key_dumps: Option<PathBuf>,
    /// Where the build wrote its files (`output = "local"`), and the paths in it the scenario checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<BuildOutput>,
    /// buildkitd's panic, when the build failed because buildkitd crashed (see `observe::crash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildOutput {
    pub dir: PathBuf,
    pub checked: Vec<String>,
}

/// A cache's documents on disk: `name` as the scenario says it (`local:main`, `inline:export`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheArtifact {
    pub name: String,
    pub dir: PathBuf,
    /// An export: `true` written with mode=max (every solved step with its result, which the cache audit
    /// holds it to), `false` with mode=min or inline. `None` for imports, captured caches and exports
    /// recorded before bkcache kept their mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_max: Option<bool>,
}

/// The dump `suffix` of the phase whose dumps have stem `stem` (a phase name may hold a `.`, which is
/// no file extension: `export.v2` → `export.v2.keys.json`).
pub fn dump_path(stem: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    name.into()
}

/// The last `n` non-empty lines of some output, for error messages.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The file a run writes into its artifacts directory, holding its run id: gc's proof the directory is
/// a run's.
pub const RUN_MARKER: &str = ".bkcache-run";

/// Marks `run_dir` as the artifacts directory of run `run_id`.
pub fn mark_run_dir(run_dir: &Path, run_id: &str) -> Result<(), InfraError> {
    let marker = run_dir.join(RUN_MARKER);
    std::fs::write(&marker, run_id).map_err(InfraError::io(format!("writing {}", marker.display())))
}

/// Whether `dir` holds a regular [`RUN_MARKER`] naming run `run`.
pub fn carries_run_mark(dir: &Path, run: &str) -> bool {
    crate::safe_fs::read_regular(&dir.join(RUN_MARKER), 64).is_ok_and(|text| text == run.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_marked_with_its_own_run_is_a_runs() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run-1");
        std::fs::create_dir(&dir).unwrap();
        assert!(!carries_run_mark(&dir, "run-1"));
        mark_run_dir(&dir, "run-2").unwrap();
        assert!(!carries_run_mark(&dir, "run-1"));
        mark_run_dir(&dir, "run-1").unwrap();
        assert!(carries_run_mark(&dir, "run-1"));
        // a marker that is a link to another run's marker is not one
        let other = root.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::remove_file(dir.join(RUN_MARKER)).unwrap();
        mark_run_dir(&other, "run-1").unwrap();
        std::os::unix::fs::symlink(other.join(RUN_MARKER), dir.join(RUN_MARKER)).unwrap();
        assert!(!carries_run_mark(&dir, "run-1"));
    }
}
