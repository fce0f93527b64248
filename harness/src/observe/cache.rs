//! What an exported BuildKit cache holds, typed, from any backend.
//!
//! Every cache is read from an OCI layout directory: a local export (`--cache-to type=local`) is one;
//! a registry cache, or the image that carries an inline cache, is copied into one by `execute`
//! (documents only, no layer blobs). `index.json` → the top manifest, and then:
//! - a **cache index** (local and registry exports): an OCI index listing the layer blobs and the
//!   `application/vnd.buildkit.cacheconfig.v0` config;
//! - a **cache manifest** (`image-manifest=true`): an OCI manifest whose `config` is the cacheconfig;
//! - an **image** (inline cache): the image config's `moby.buildkit.cache.v0` holds the records, whose
//!   layer indexes are the image's layers.
//!
//! The cacheconfig (BuildKit's `cache/remotecache/v1/types`): `layers` (blob, parent layer index, -1
//! for none, annotations) and `records`: a cache key's `digest`, its `inputs` (one list per op input
//! of links to other records, with a selector), and its results — `layers` (top layer index) or
//! `chains` (layer indexes). A record with no result is a key with nothing to restore: the #6893
//! signature when it belongs to a step that must be CACHED. Every document's digest is parsed before it
//! names a file, and its content checked against it; no link is followed and no read is unbounded.

use std::path::{Path, PathBuf};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use crate::digest::{BlobDigest, DigestError};

pub const CACHECONFIG_MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";
/// The image config field an inline cache lives in.
pub const INLINE_CACHE_FIELD: &str = "moby.buildkit.cache.v0";

#[derive(Debug, thiserror::Error)]
pub enum CacheReadError {
    #[error("{path}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not the JSON expected", path = .path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: not an OCI document", path = .path.display())]
    Oci { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {message}", path = .path.display())]
    Layout { path: PathBuf, message: String },
    #[error("{path}: content does not match its digest {expected} (it hashes to {actual})", path = .path.display())]
    DigestMismatch { path: PathBuf, expected: String, actual: String },
}

/// The cacheconfig.v0 document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub layers: Vec<CacheLayer>,
    #[serde(default)]
    pub records: Vec<CacheRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheLayer {
    pub blob: String,
    /// The layer below this one, -1 for none (0 is written as absent).
    #[serde(default)]
    pub parent: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<LayerAnnotations>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayerAnnotations {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default, rename = "diffID")]
    pub diff_id: Option<String>,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRecord {
    pub digest: String,
    /// Results as the top layer of a chain.
    #[serde(default, rename = "layers")]
    pub results: Vec<CacheResult>,
    /// Results as explicit layer lists (inline caches whose layers are out of the image's order).
    #[serde(default)]
    pub chains: Vec<ChainedResult>,
    #[serde(default)]
    pub inputs: Vec<Vec<CacheInput>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheResult {
    pub layer: usize,
    #[serde(default, rename = "createdAt")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainedResult {
    pub layers: Vec<usize>,
    #[serde(default, rename = "createdAt")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheInput {
    #[serde(default)]
    pub selector: Option<String>,
    pub link: usize,
}

impl CacheRecord {
    /// Whether BuildKit could restore this record's result from the cache.
    pub fn has_layers(&self) -> bool {
        !self.results.is_empty() || !self.chains.is_empty()
    }
}

impl CacheConfig {
    /// Checks every index points inside the document.
    fn check(&self, path: &Path) -> Result<(), CacheReadError> {
        let bad = |message: String| Err(CacheReadError::Layout { path: path.to_owned(), message });
        let (layers, records) = (self.layers.len(), self.records.len());
        for (i, l) in self.layers.iter().enumerate() {
            if l.parent < -1 || l.parent >= layers as i64 {
                return bad(format!("layer {i} names parent {} of {layers} layers", l.parent));
            }
        }
        for (i, r) in self.records.iter().enumerate() {
            let result_layers = r.results.iter().map(|x| x.layer).chain(r.chains.iter().flat_map(|c| c.layers.clone()));
            if let Some(l) = result_layers.into_iter().find(|l| *l >= layers) {
                return bad(format!("record {i} names layer {l} of {layers}"));
            }
            if let Some(link) = r.inputs.iter().flatten().find(|x| x.link >= records) {
                return bad(format!("record {i} links to record {} of {records}", link.link));
            }
        }
        Ok(())
    }
}

/// How a cache was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CacheFormat {
    /// An OCI index of layers plus the cacheconfig (local and registry exports).
    Index,
    /// An OCI manifest whose config is the cacheconfig (`image-manifest=true`).
    Manifest,
    /// Records in an image config (`type=inline`).
    Inline,
    /// An image whose config has no inline cache: no records.
    ImageWithoutCache,
}

impl CacheFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheFormat::Index => "cache index",
            CacheFormat::Manifest => "cache manifest",
            CacheFormat::Inline => "inline in an image",
            CacheFormat::ImageWithoutCache => "an image without inline cache",
        }
    }
}

/// A layer blob as the cache's manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Carries eStargz's TOC annotation: a lazy snapshotter can mount it without fetching it.
    pub estargz: bool,
}

/// One cache, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedCache {
    pub format: CacheFormat,
    pub config: CacheConfig,
    pub blobs: Vec<LayerBlob>,
}

const ESTARGZ_TOC: &str = "containerd.io/snapshot/stargz/toc.digest";

/// A document another one names: a manifest or index (followed further down) or a config blob (an
/// image config or a cacheconfig). Layers are not documents: they say nothing of what a cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildDocument {
    pub digest: BlobDigest,
    /// The size its descriptor declares (0 when absent).
    pub size: u64,
    pub is_manifest: bool,
}

/// A document's outline: its `config` and `manifests` descriptors, nothing else parsed (a cache index
/// can list thousands of layers).
#[derive(Deserialize, Default)]
struct Outline {
    #[serde(default)]
    config: Option<OutlineDescriptor>,
    #[serde(default)]
    manifests: Vec<OutlineDescriptor>,
}

#[derive(Deserialize)]
struct OutlineDescriptor {
    #[serde(default, rename = "mediaType")]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: Option<u64>,
}

impl Outline {
    fn lists_cacheconfig(&self) -> bool {
        self.manifests.iter().any(|d| d.media_type == CACHECONFIG_MEDIA_TYPE)
    }
}

/// The documents `document` (an index or a manifest) names, in order, their digests parsed. A document
/// that does not parse names none: the reader of the copy reports it, naming the file.
pub fn child_documents(document: &[u8]) -> Result<Vec<ChildDocument>, DigestError> {
    let outline: Outline = serde_json::from_slice(document).unwrap_or_default();
    let mut children = Vec::new();
    for child in outline.manifests.into_iter().chain(outline.config) {
        let media_type = &child.media_type;
        let is_manifest = media_type.contains("manifest") || media_type.contains("index");
        if is_manifest || media_type.contains("config") {
            let digest = BlobDigest::parse(&child.digest)?;
            children.push(ChildDocument { digest, size: child.size.unwrap_or_default(), is_manifest });
        }
    }
    Ok(children)
}

/// Why a layout's documents could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum CopyDocumentsError<E> {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("names more than {MAX_DOCUMENTS} documents: not a BuildKit cache or image")]
    TooMany,
    #[error(transparent)]
    Source(E),
}

/// The most documents one cache or image names (an index of platforms, each a manifest and a config).
pub const MAX_DOCUMENTS: usize = 1024;

/// Copies the documents under `top` (its bytes): each child is `get` by its parsed digest, verified
/// against that digest and its declared size, then `put`; manifests are followed down. Each document is
/// copied once, whatever lists it twice or in a loop.
pub fn copy_documents<E>(
    top: Vec<u8>,
    mut get: impl FnMut(&ChildDocument) -> Result<Vec<u8>, E>,
    mut put: impl FnMut(&BlobDigest, &[u8]) -> Result<(), E>,
) -> Result<(), CopyDocumentsError<E>> {
    let mut seen = std::collections::HashSet::new();
    let mut pending = vec![top];
    while let Some(document) = pending.pop() {
        for child in child_documents(&document)? {
            if !seen.insert(child.digest.clone()) {
                continue;
            }
            if seen.len() > MAX_DOCUMENTS {
                return Err(CopyDocumentsError::TooMany);
            }
            let body = get(&child).map_err(CopyDocumentsError::Source)?;
            child.digest.verify(&body, (child.size > 0).then_some(child.size))?;
            put(&child.digest, &body).map_err(CopyDocumentsError::Source)?;
            if child.is_manifest {
                pending.push(body);
            }
        }
    }
    Ok(())
}

/// Reads the cache in the OCI layout at `dir`.
pub fn read_layout(dir: &Path) -> Result<ExportedCache, CacheReadError> {
    let index_path = dir.join("index.json");
    let index: ImageIndex = parse_oci(&index_path, &read(&index_path)?)?;
    let top = index
        .manifests()
        .first()
        .ok_or_else(|| CacheReadError::Layout { path: index_path.clone(), message: "lists no manifest".into() })?;
    let (top_path, top_bytes) = read_blob(dir, top)?;
    let mut document: Outline =
        serde_json::from_slice(&top_bytes).map_err(|source| CacheReadError::Json { path: top_path.clone(), source })?;
    let (mut document_path, mut document_bytes) = (top_path, top_bytes);
    // an image index (inline cache of a multi-platform push): follow its first image manifest
    if document.config.is_none() && !document.lists_cacheconfig() {
        let index: ImageIndex = parse_oci(&document_path, &document_bytes)?;
        let first = index.manifests().first().ok_or_else(|| CacheReadError::Layout {
            path: document_path.clone(),
            message: format!("lists neither layers with a {CACHECONFIG_MEDIA_TYPE} nor a manifest"),
        })?;
        (document_path, document_bytes) = read_blob(dir, first)?;
        document = serde_json::from_slice(&document_bytes)
            .map_err(|source| CacheReadError::Json { path: document_path.clone(), source })?;
    }
    if document.lists_cacheconfig() {
        let index: ImageIndex = parse_oci(&document_path, &document_bytes)?;
        let (config_descriptor, layers): (Vec<&Descriptor>, Vec<&Descriptor>) =
            index.manifests().iter().partition(|d| d.media_type().to_string() == CACHECONFIG_MEDIA_TYPE);
        let config = read_cacheconfig(dir, config_descriptor[0])?;
        return Ok(ExportedCache { format: CacheFormat::Index, config, blobs: layers.into_iter().map(blob).collect() });
    }
    let manifest: ImageManifest = parse_oci(&document_path, &document_bytes)?;
    let blobs: Vec<LayerBlob> = manifest.layers().iter().map(blob).collect();
    if manifest.config().media_type().to_string() == CACHECONFIG_MEDIA_TYPE {
        let config = read_cacheconfig(dir, manifest.config())?;
        return Ok(ExportedCache { format: CacheFormat::Manifest, config, blobs });
    }
    let (config_path, config_bytes) = read_blob(dir, manifest.config())?;
    let image: serde_json::Value = serde_json::from_slice(&config_bytes)
        .map_err(|source| CacheReadError::Json { path: config_path.clone(), source })?;
    if image.get("rootfs").is_none() {
        return Err(CacheReadError::Layout {
            path: config_path,
            message: format!(
                "the manifest's config ({}) is neither a {CACHECONFIG_MEDIA_TYPE} nor an image config",
                manifest.config().media_type()
            ),
        });
    }
    // an image pushed without its inline cache holds no records: what BuildKit did, not a read error
    let Some(inline) = image.get(INLINE_CACHE_FIELD) else {
        return Ok(ExportedCache { format: CacheFormat::ImageWithoutCache, config: CacheConfig::default(), blobs });
    };
    // Go marshals the records' JSON bytes as base64
    let records_json = inline.as_str().and_then(|b64| BASE64_STANDARD.decode(b64).ok()).ok_or_else(|| {
        CacheReadError::Layout { path: config_path.clone(), message: format!("`{INLINE_CACHE_FIELD}` is not base64") }
    })?;
    let records: Vec<CacheRecord> = serde_json::from_slice(&records_json)
        .map_err(|source| CacheReadError::Json { path: config_path.clone(), source })?;
    let layers = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| CacheLayer { blob: b.digest.clone(), parent: i as i64 - 1, annotations: None })
        .collect();
    let config = CacheConfig { layers, records };
    config.check(&config_path)?;
    Ok(ExportedCache { format: CacheFormat::Inline, config, blobs })
}

fn blob(d: &Descriptor) -> LayerBlob {
    LayerBlob {
        digest: d.digest().to_string(),
        media_type: d.media_type().to_string(),
        size: d.size(),
        estargz: d.annotations().as_ref().is_some_and(|a| a.contains_key(ESTARGZ_TOC)),
    }
}

fn read_cacheconfig(dir: &Path, descriptor: &Descriptor) -> Result<CacheConfig, CacheReadError> {
    let (path, bytes) = read_blob(dir, descriptor)?;
    let config: CacheConfig =
        serde_json::from_slice(&bytes).map_err(|source| CacheReadError::Json { path: path.clone(), source })?;
    config.check(&path)?;
    Ok(config)
}

/// A blob's bytes, checked against the descriptor's digest (which names the file only once parsed).
fn read_blob(dir: &Path, descriptor: &Descriptor) -> Result<(PathBuf, Vec<u8>), CacheReadError> {
    let text = descriptor.digest().to_string();
    let digest = BlobDigest::parse(&text)
        .map_err(|e| CacheReadError::Layout { path: dir.join("index.json"), message: format!("a descriptor's {e}") })?;
    let path = digest.blob_path(dir);
    let bytes = read(&path)?;
    if let Err(DigestError::Mismatch { actual, .. }) = digest.verify(&bytes, None) {
        return Err(CacheReadError::DigestMismatch { path, expected: text, actual: actual.to_string() });
    }
    Ok((path, bytes))
}

/// `sha256:<hex>` of `bytes`: how OCI names content.
pub fn sha256_digest(bytes: &[u8]) -> String {
    BlobDigest::of(bytes).to_string()
}

fn read(path: &Path) -> Result<Vec<u8>, CacheReadError> {
    crate::safe_fs::read_regular(path, crate::safe_fs::DOCUMENT_LIMIT)
        .map_err(|source| CacheReadError::Io { path: path.to_owned(), source })
}

/// An OCI document, with oci-spec's types (parsed from the bytes at once: a cache index can list
/// thousands of layers).
fn parse_oci<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, CacheReadError> {
    serde_json::from_slice(bytes).map_err(|source| CacheReadError::Oci { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(children: &[(&str, usize)]) -> Vec<u8> {
        let manifests: Vec<String> = children
            .iter()
            .map(|(digest, size)| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{size}}}"#
                )
            })
            .collect();
        format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, manifests.join(",")).into_bytes()
    }

    /// Copies from an in-memory store; what was put, in order.
    fn copy(top: Vec<u8>, store: &[Vec<u8>]) -> Result<Vec<String>, CopyDocumentsError<String>> {
        let mut put = Vec::new();
        copy_documents(
            top,
            |child| {
                let found = store.iter().find(|body| sha256_digest(body) == child.digest.to_string());
                found.cloned().ok_or_else(|| format!("no {}", child.digest))
            },
            |digest, _| {
                put.push(digest.to_string());
                Ok(())
            },
        )?;
        Ok(put)
    }

    #[test]
    fn documents_are_copied_once_verified_and_bounded() {
        let leaf = br#"{"schemaVersion":2}"#.to_vec();
        let leaf_digest = sha256_digest(&leaf);
        // listed three times, by the top and by a manifest below it: copied once each
        let middle = index(&[(&leaf_digest, leaf.len()), (&leaf_digest, leaf.len())]);
        let middle_digest = sha256_digest(&middle);
        let top = index(&[(&middle_digest, middle.len()), (&leaf_digest, leaf.len())]);
        let store = [leaf.clone(), middle.clone()];
        assert_eq!(copy(top, &store).unwrap(), [middle_digest.clone(), leaf_digest.clone()]);

        // a declared size that is not the content's, a digest that names a path, content that is not its digest
        let wrong_size = index(&[(&leaf_digest, leaf.len() + 1)]);
        assert!(matches!(copy(wrong_size, &store), Err(CopyDocumentsError::Digest(_))));
        let climbing = index(&[("sha256:../../../etc/passwd", 2)]);
        assert!(matches!(copy(climbing, &store), Err(CopyDocumentsError::Digest(_))));
        let liar = index(&[(&format!("sha256:{}", "a".repeat(64)), leaf.len())]);
        let mut lying_store = |_: &ChildDocument| Ok::<_, String>(leaf.clone());
        let lied = copy_documents(liar, &mut lying_store, |_, _| Ok(()));
        assert!(matches!(lied, Err(CopyDocumentsError::Digest(_))), "{lied:?}");

        // more distinct documents than any cache has: refused, after copying no more than the limit
        let many: Vec<Vec<u8>> = (0..=MAX_DOCUMENTS).map(|i| format!(r#"{{"n":{i}}}"#).into_bytes()).collect();
        let digests: Vec<String> = many.iter().map(|b| sha256_digest(b)).collect();
        let wide = index(&digests.iter().zip(&many).map(|(d, b)| (d.as_str(), b.len())).collect::<Vec<_>>());
        let mut copied = 0;
        let by_digest: std::collections::HashMap<&str, &Vec<u8>> =
            digests.iter().map(String::as_str).zip(&many).collect();
        let result = copy_documents(
            wide,
            |child| Ok::<_, String>(by_digest[child.digest.to_string().as_str()].clone()),
            |_, _| {
                copied += 1;
                Ok(())
            },
        );
        assert!(matches!(result, Err(CopyDocumentsError::TooMany)), "{result:?}");
        assert_eq!(copied, MAX_DOCUMENTS);
    }
}
