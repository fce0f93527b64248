//! The library side of `bkcache explain` and `bkcache cache inspect|diff`: caches and repetitions
//! loaded from where they are — a repetition's artifacts directory (re-observed from its `raw.json`,
//! so records carry their steps), a cache's OCI layout directory, or a ref in the local registry.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::artifacts::{RawRepetition, RAW_FILE};
use crate::errors::InfraError;
use crate::host::registry::Registry;
use crate::observe::audit::AuditFinding;
use crate::observe::chain::LayerChain;
use crate::observe::forensics::{self, CacheSummary, RecordEntry};
use crate::observe::keys::KeyTexts;
use crate::observe::{cache, Observations, Observer};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Infra(#[from] InfraError),
    #[error(transparent)]
    Cache(#[from] cache::CacheReadError),
    #[error(transparent)]
    Config(#[from] crate::errors::ConfigError),
    #[error("{0}: no exported cache named `{1}` (it has: {2})")]
    NoSuchCache(String, String, String),
    #[error("{0}: the repetition exported no cache")]
    NoCache(String),
    #[error("reading the key dump {0}")]
    Keys(#[from] crate::observe::keys::KeysReadError),
    #[error("reading the build's progress {path}", path = .path.display())]
    Progress { path: PathBuf, source: std::io::Error },
    #[error(
        "`{0}` is neither a repetition's artifacts directory ({RAW_FILE}), a cache directory (index.json) nor a ref in the local registry {1}\n  fix: pass bkcache-artifacts/<run>/<cell>-r<n>.*, a --cache-to type=local dest, or {1}/<repo>:<tag>"
    )]
    Unknown(String, String),
    #[error(
        "directory `{0}` holds neither a repetition's artifacts ({RAW_FILE}) nor a cache (index.json)\n  fix: pass bkcache-artifacts/<run>/<cell>-r<n>.* or a --cache-to type=local dest"
    )]
    NotACache(String),
}

/// A finding of the cache audit with what its record caches: a step of the exporting build when its
/// progress is given, what the op is when only its key dump is, nothing when neither is.
pub struct LabelledFinding {
    pub finding: AuditFinding,
    pub label: Option<String>,
}

/// Audits an exported cache; `keys` (buildkitd's `/debug/cache/all` after the exporting build) and
/// `rawjson` (that build's `--progress=rawjson`) map the flagged records to what they cache.
pub fn audit(
    exported: cache::ExportedCache,
    mode: crate::scenario::CacheMode,
    keys: Option<&Path>,
    rawjson: Option<&Path>,
) -> Result<Vec<LabelledFinding>, InspectError> {
    let findings = crate::observe::audit::audit(&exported.config, mode.into());
    let texts = keys.map(KeyTexts::read).transpose()?;
    let steps = match rawjson {
        Some(path) => {
            let bytes = crate::safe_fs::read_regular(path, crate::safe_fs::DOCUMENT_LIMIT)
                .map_err(|source| InspectError::Progress { path: path.to_owned(), source })?;
            crate::observe::progress::parse(&String::from_utf8_lossy(&bytes), true).steps
        }
        None => Vec::new(),
    };
    let labelled = texts.is_some() || !steps.is_empty();
    let summary = forensics::summarize("", "", exported, &steps, &texts.unwrap_or_default()).summary;
    Ok(findings
        .into_iter()
        .map(|finding| {
            let label = labelled
                .then(|| summary.entries.iter().find(|e| e.digest == finding.record).map(|e| e.label.clone()))
                .flatten();
            LabelledFinding { finding, label }
        })
        .collect())
}

/// Observes a repetition's artifacts directory again.
pub fn observe_repetition(dir: &Path) -> Result<Observations, InspectError> {
    let raw = RawRepetition::load(dir)?;
    Ok(Observer::default().finish(&raw))
}

/// A cache by where it is: `DIR` (a repetition: its first export, or `cache` by name), a layout
/// directory, or `<registry>/<repo>:<tag>` (`registry` is asked for only then).
pub async fn load_cache(
    source: &str,
    cache_name: Option<&str>,
    registry: impl FnOnce() -> Result<Registry, crate::errors::ConfigError>,
) -> Result<CacheSummary, InspectError> {
    let path = PathBuf::from(source);
    if path.join(RAW_FILE).is_file() {
        let observed = observe_repetition(&path)?;
        let names = || observed.caches.iter().map(|c| c.cache.clone()).collect::<Vec<_>>().join(", ");
        return match cache_name {
            Some(name) => observed
                .caches
                .iter()
                .find(|c| c.cache == name)
                .cloned()
                .ok_or_else(|| InspectError::NoSuchCache(source.into(), name.into(), names())),
            None => observed.caches.first().cloned().ok_or_else(|| InspectError::NoCache(source.into())),
        };
    }
    Ok(unlabelled(source, load_exported(source, registry).await?))
}

/// The cache in a layout directory (a `--cache-to type=local` dest) or at `<registry>/<repo>:<tag>`
/// (`registry` is asked for only then), as exported.
pub async fn load_exported(
    source: &str,
    registry: impl FnOnce() -> Result<Registry, crate::errors::ConfigError>,
) -> Result<cache::ExportedCache, InspectError> {
    let path = PathBuf::from(source);
    if path.join("index.json").is_file() {
        return Ok(cache::read_layout(&path)?);
    }
    if path.is_dir() {
        return Err(InspectError::NotACache(source.into()));
    }
    let registry = registry()?;
    let Some((repo, tag)) = source.strip_prefix(&format!("{}/", registry.addr)).and_then(|r| r.rsplit_once(':')) else {
        return Err(InspectError::Unknown(source.into(), registry.addr.clone()));
    };
    let dir = tempfile::tempdir().map_err(InfraError::io("creating a temporary directory"))?;
    registry.fetch_layout(repo, tag, dir.path()).await?;
    Ok(cache::read_layout(dir.path())?)
}

fn unlabelled(source: &str, exported: cache::ExportedCache) -> CacheSummary {
    forensics::summarize("", source, exported, &[], &KeyTexts::default()).summary
}

/// How a step's records compare between two caches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepDiff {
    /// The step (or, for records no step was mapped to, the label and the record digest).
    pub step: String,
    pub a: RecordState,
    pub b: RecordState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordState {
    Missing,
    WithoutLayers,
    WithLayers { blobs: LayerChain },
}

impl RecordState {
    fn of(entries: &[&RecordEntry]) -> RecordState {
        match entries.iter().find(|e| !e.blobs.is_empty()) {
            Some(e) => RecordState::WithLayers { blobs: e.blobs.clone() },
            None if entries.is_empty() => RecordState::Missing,
            None => RecordState::WithoutLayers,
        }
    }

    pub fn describe(&self, other: &RecordState) -> String {
        match (self, other) {
            (RecordState::Missing, _) => "missing".into(),
            (RecordState::WithoutLayers, _) => "present, no layers".into(),
            (RecordState::WithLayers { blobs }, RecordState::WithLayers { blobs: theirs }) if blobs != theirs => {
                format!("{} layer(s), other blobs", blobs.len())
            }
            (RecordState::WithLayers { blobs }, _) => format!("{} layer(s)", blobs.len()),
        }
    }
}

/// Per step (in `a`'s order, then `b`'s), how the two caches hold it.
pub fn diff(a: &CacheSummary, b: &CacheSummary) -> Vec<StepDiff> {
    let key = |e: &RecordEntry| if e.is_step { e.label.clone() } else { format!("{} ({})", e.label, e.digest) };
    let mut keys: Vec<String> = Vec::new();
    for e in a.entries.iter().chain(&b.entries) {
        let k = key(e);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|k| {
            let of = |s: &CacheSummary| RecordState::of(&s.entries.iter().filter(|e| key(e) == k).collect::<Vec<_>>());
            StepDiff { a: of(a), b: of(b), step: k }
        })
        .collect()
}
