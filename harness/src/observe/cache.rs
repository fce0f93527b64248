//! What a local cache export (`--cache-to type=local,dest=DIR`) holds.
//!
//! `DIR/index.json` (OCI index) → the cache manifest: an OCI image index listing the layers plus the
//! config, or (with `image-manifest=true`) an OCI manifest whose `config` is the config → the
//! `application/vnd.buildkit.cacheconfig.v0` JSON with `layers` and `records`. moby/buildkit#6893 shows
//! here: build-stage records with no `layers` entry (or missing records), while the final COPY's record
//! keeps one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const CACHECONFIG_MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";

#[derive(Debug, thiserror::Error)]
pub enum CacheReadError {
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not the JSON expected: {source}", path = .path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {message}", path = .path.display())]
    Layout { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
}

#[derive(Deserialize)]
struct IndexOrManifest {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    config: Option<Descriptor>,
}

/// The cacheconfig.v0 document (only what the summary needs).
#[derive(Debug, Deserialize)]
pub struct CacheConfig {
    #[serde(default)]
    pub layers: Vec<CacheLayer>,
    #[serde(default)]
    pub records: Vec<CacheRecord>,
}

#[derive(Debug, Deserialize)]
pub struct CacheLayer {
    pub blob: String,
}

#[derive(Debug, Deserialize)]
pub struct CacheRecord {
    pub digest: String,
    #[serde(default)]
    pub layers: Vec<serde_json::Value>,
}

/// The report's view of one exported cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSummary {
    /// The phase that exported it.
    pub phase: String,
    pub records: usize,
    pub layers: usize,
    pub records_with_layers: usize,
    /// Records that have no layer: the #6893 symptom when they belong to the build stage.
    pub records_without_layers: usize,
    pub records_without_layers_digests: Vec<String>,
}

impl CacheConfig {
    pub fn summary(&self, phase: &str) -> CacheSummary {
        let without: Vec<String> =
            self.records.iter().filter(|r| r.layers.is_empty()).map(|r| r.digest.clone()).collect();
        CacheSummary {
            phase: phase.to_owned(),
            records: self.records.len(),
            layers: self.layers.len(),
            records_with_layers: self.records.len() - without.len(),
            records_without_layers: without.len(),
            records_without_layers_digests: without,
        }
    }
}

/// Reads the cacheconfig of a local cache export directory.
pub fn read_local(dir: &Path) -> Result<CacheConfig, CacheReadError> {
    let index: IndexOrManifest = read_json(&dir.join("index.json"))?;
    let top = index
        .manifests
        .first()
        .ok_or_else(|| CacheReadError::Layout { path: dir.join("index.json"), message: "lists no manifest".into() })?;
    let manifest_path = blob_path(dir, &top.digest)?;
    let manifest: IndexOrManifest = read_json(&manifest_path)?;
    let config = manifest
        .config
        .iter()
        .chain(manifest.manifests.iter())
        .find(|d| d.media_type == CACHECONFIG_MEDIA_TYPE)
        .ok_or_else(|| CacheReadError::Layout {
            path: manifest_path.clone(),
            message: format!("has no {CACHECONFIG_MEDIA_TYPE} descriptor"),
        })?;
    read_json(&blob_path(dir, &config.digest)?)
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, CacheReadError> {
    let (algo, hex) = digest.split_once(':').ok_or_else(|| CacheReadError::Layout {
        path: dir.to_owned(),
        message: format!("malformed digest `{digest}`"),
    })?;
    Ok(dir.join("blobs").join(algo).join(hex))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CacheReadError> {
    let text = std::fs::read(path).map_err(|source| CacheReadError::Io { path: path.to_owned(), source })?;
    serde_json::from_slice(&text).map_err(|source| CacheReadError::Json { path: path.to_owned(), source })
}
