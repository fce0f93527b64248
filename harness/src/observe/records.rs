//! Which Dockerfile step each cache record caches.
//!
//! Two facts make this exact rather than a guess:
//! - a build's rawjson lists every vertex with its `inputs` (vertex digests) in the op's input order,
//!   and a cache record lists, per op input, links to the records of its parents: the same graph;
//! - buildkitd's key plaintexts (`observe::keys`) say what each root record keys: a base's manifest
//!   digest, which the `FROM` vertex's name carries (`FROM base@sha256:...`).
//!
//! So records are aligned with vertices from the roots up: a root record of a base ↔ that base's
//! `FROM` vertex; a record whose every input links to the record of the vertex's matching input ↔
//! that vertex. Where several vertices fit (two steps on the same parent), the op decides: its kind
//! (exec ↔ RUN, file ↔ COPY/ADD/WORKDIR) and, for a RUN, its command with the environment
//! substituted against the step's name. What cannot be aligned: records of ops the build did not run
//! (another build's records in an imported cache, when the graphs differ below them), content keys
//! (file checksums: labelled as such), and everything when the builder recorded no key plaintexts
//! (BuildKit before v0.24.0) — then roots, and so everything above them, stay unmapped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::cache::CacheConfig;
use super::keys::{KeyTexts, OpKey};
use super::progress::Step;

/// A cache-key graph: the records of an exported cache, or of buildkitd's local key store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyGraph {
    pub nodes: Vec<KeyNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNode {
    pub digest: String,
    /// Per op input, the nodes it may have been keyed on (alternatives: a regular and a content key).
    pub inputs: Vec<Vec<usize>>,
}

impl From<&CacheConfig> for KeyGraph {
    fn from(config: &CacheConfig) -> Self {
        let nodes = config
            .records
            .iter()
            .map(|r| KeyNode {
                digest: r.digest.clone(),
                inputs: r.inputs.iter().map(|links| links.iter().map(|l| l.link).collect()).collect(),
            })
            .collect();
        KeyGraph { nodes }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: not buildkitd's /debug/cache/store JSON: {message}", path = .path.display())]
pub struct StoreReadError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Deserialize)]
struct StoreRecord {
    id: i64,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    parents: Vec<StoreLink>,
}

#[derive(Deserialize)]
struct StoreLink {
    input: usize,
    digest: String,
    target: i64,
}

/// Reads buildkitd's local key store as saved from `/debug/cache/store`: records by id, whose links
/// to parents carry the child's key digest.
pub fn read_store(path: &Path) -> Result<KeyGraph, StoreReadError> {
    let fail = |message: String| StoreReadError { path: path.to_owned(), message };
    let bytes = crate::safe_fs::read_regular(path, crate::safe_fs::DOCUMENT_LIMIT).map_err(|e| fail(e.to_string()))?;
    let records: Vec<StoreRecord> = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    let index: HashMap<i64, usize> = records.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let mut nodes = Vec::with_capacity(records.len());
    for r in &records {
        let digest = r.digest.clone().or_else(|| r.parents.first().map(|p| p.digest.clone())).unwrap_or_default();
        let width = r.parents.iter().map(|p| p.input + 1).max().unwrap_or(0);
        let mut inputs = vec![Vec::new(); width];
        for p in &r.parents {
            let target = *index
                .get(&p.target)
                .ok_or_else(|| fail(format!("record {} links to unknown record {}", r.id, p.target)))?;
            inputs[p.input].push(target);
        }
        nodes.push(KeyNode { digest, inputs });
    }
    Ok(KeyGraph { nodes })
}

/// For each node of `graph`, the index in `steps` of the vertex it keys, when it can be told.
pub fn align(graph: &KeyGraph, steps: &[Step], keys: &KeyTexts) -> Vec<Option<usize>> {
    let by_digest: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.digest.as_str(), i)).collect();
    let mut aligned: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    for (n, node) in graph.nodes.iter().enumerate().filter(|(_, n)| n.inputs.is_empty()) {
        aligned[n] = match keys.op(&node.digest) {
            Some(OpKey::Image { manifest }) => {
                steps.iter().position(|s| s.is_from() && s.name.contains(&format!("@{manifest}")))
            }
            Some(OpKey::Local { source }) if source.contains("context") => {
                steps.iter().position(|s| s.name == "[internal] load build context")
            }
            _ => None,
        };
    }
    // strict: every input aligned with the vertex's; then loose, for records whose parents are missing
    // from the cache or unaligned (a dropped chain): the inputs that are aligned agree, and the op
    // decides alone — its kind, and for a RUN its command
    loop {
        let strict = align_pass(graph, steps, keys, &by_digest, &mut aligned, false);
        if !strict && !align_pass(graph, steps, keys, &by_digest, &mut aligned, true) {
            return aligned;
        }
    }
}

/// One pass over the unaligned nodes; whether it aligned any.
fn align_pass(
    graph: &KeyGraph,
    steps: &[Step],
    keys: &KeyTexts,
    by_digest: &HashMap<&str, usize>,
    aligned: &mut [Option<usize>],
    loose: bool,
) -> bool {
    let mut changed = false;
    for (n, node) in graph.nodes.iter().enumerate() {
        if aligned[n].is_some() || (node.inputs.is_empty() && !loose) {
            continue;
        }
        let op = keys.op(&node.digest);
        if loose && op.as_ref().is_none_or(|op| op.keywords().is_empty() || op.keywords() == ["FROM"]) {
            continue;
        }
        let fits = |s: &Step| {
            if node.inputs.is_empty() {
                return !s.inputs.is_empty();
            }
            s.inputs.len() == node.inputs.len()
                && s.inputs.iter().zip(&node.inputs).all(|(vertex, links)| {
                    let want = by_digest.get(vertex.as_str()).copied();
                    let any_aligned = links.iter().any(|l| aligned[*l].is_some());
                    (want.is_some() && links.iter().any(|l| aligned[*l] == want)) || (loose && !any_aligned)
                })
        };
        let mut candidates: Vec<usize> = (0..steps.len()).filter(|i| fits(&steps[*i])).collect();
        if let Some(op) = &op {
            if candidates.len() > 1 || loose {
                candidates.retain(|i| op.keywords().iter().any(|k| steps[*i].instruction().starts_with(k)));
            }
            if let Some(command) = op.expanded_command().filter(|_| candidates.len() > 1 || loose) {
                candidates.retain(|i| steps[*i].instruction().strip_prefix("RUN ") == Some(command.as_str()));
            }
        }
        if let [only] = candidates[..] {
            aligned[n] = Some(only);
            changed = true;
        }
    }
    changed
}

/// What a record caches, in words: the step's name, or why it has none.
pub fn label(graph: &KeyGraph, aligned: &[Option<usize>], steps: &[Step], keys: &KeyTexts, node: usize) -> String {
    if let Some(step) = aligned[node] {
        return steps[step].name.clone();
    }
    // with no steps to fit (a key dump read alone) there is nothing to say of them
    let unfit = |why: &str| if steps.is_empty() { String::new() } else { format!(" ({why})") };
    match keys.op(&graph.nodes[node].digest) {
        Some(OpKey::Content) => "content key (checksums of the files a COPY selected)".into(),
        Some(OpKey::Image { manifest }) => format!("base image {manifest}{}", unfit("no FROM of this build")),
        Some(OpKey::Local { source }) => format!("local source {source}"),
        Some(op @ OpKey::Exec { .. }) => format!(
            "RUN {}{}",
            op.expanded_command().unwrap_or_default(),
            unfit("no step of this build fits: its parents differ")
        ),
        Some(OpKey::File { actions }) => {
            format!("file op {}{}", actions.join("; "), unfit("no step of this build fits"))
        }
        Some(OpKey::Other { kind }) if kind.starts_with("source") => {
            "a source (base image?) whose identifier buildkitd did not record".into()
        }
        Some(OpKey::Other { kind }) => format!("{kind} op{}", unfit("no step of this build fits")),
        None if keys.is_empty() => "unmapped (the builder recorded no key plaintexts)".into(),
        None => "unmapped (no key plaintext)".into(),
    }
}
