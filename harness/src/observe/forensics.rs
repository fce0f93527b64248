//! Cache forensics: what each exported cache holds per step, and why a step of a build that imported
//! cache was not CACHED.
//!
//! A step that ran is explained by the first cause that holds, root-most first:
//! - (e) a step it depends on ran *because its key changed* (cause (c) below), so this step's key is new
//!   too — the explanation then belongs to that step. An ancestor that ran with its key unchanged (its
//!   record dropped, say) is no cause: BuildKit keys a step by its op and its inputs' keys, not by
//!   whether they ran (`solver/cachekey.go`), and a `COPY` by the checksum of what it copies
//!   (`solver/llbsolver/ops/file.go`, its `CacheMap` with `opsutils/contenthash.go`), which (c) compares;
//! - (a) no imported cache has a record for it, and per cache why: it holds none at all (an image
//!   pushed without its inline cache), its build never built the step (its target does not need it),
//!   a mode=min or inline export holds only the exported image's chain, or a mode=max export, whose
//!   build built the step, dropped it;
//! - (b) a record is there but has no layers: nothing to restore (dropped at export: moby/buildkit#6893);
//! - (c) a record with layers is there but this build keyed the step differently: the differing input
//!   named from the two keys' plaintexts (a build arg in the environment, the command, a base's manifest);
//! - (d) BuildKit found a record but failed to load it (a blob it could not fetch): its error, from the
//!   buildkitd log; or a record with layers and the same key is there, yet the step ran.
//!
//! A vertex digest (rawjson's `digest`, buildx's `#7 sha256:...`) names the step's LLB op in one build;
//! a cache key is computed from the op *and* its inputs' keys (and file checksums for COPY), and is what
//! a cache record is stored under. Two builds of an unchanged step have the same vertex digest but can
//! have different keys (a base moved), and the other way round.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::cache::{CacheFormat, CacheReadError, ExportedCache, LayerBlob};
use super::cache_loads::CacheLoadFailures;
use super::chain::{record_chains, LayerChain};
use super::keys::{differences, KeyTexts, OpKey};
use super::progress::Step;
use super::records::{align, label, KeyGraph};
use crate::scenario::ExportShape;

/// The report's view of one exported cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CacheSummary {
    /// The phase that exported it.
    pub phase: String,
    /// The cache as the scenario names it (`local:main`, `registry:main`, `inline:export`).
    #[serde(default)]
    pub cache: String,
    #[serde(default = "default_format")]
    pub format: CacheFormat,
    pub records: usize,
    pub layers: usize,
    pub records_with_layers: usize,
    /// Records that have no layer: the #6893 symptom when they belong to the build stage.
    pub records_without_layers: usize,
    pub records_without_layers_digests: Vec<String>,
    /// Every record, labelled with the step it caches.
    #[serde(default)]
    pub entries: Vec<RecordEntry>,
    /// Why the cache BuildKit wrote could not be read (an index naming a manifest it lacks...): what
    /// BuildKit did, so an observation, with no records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Records the export should carry a result for and does not (see `observe::audit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<super::audit::AuditFinding>,
}

fn default_format() -> CacheFormat {
    CacheFormat::Index
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecordEntry {
    /// The step it caches, or what it is when it caches none (see `observe::records::label`).
    pub label: String,
    /// Whether `label` is a step of the exporting build.
    pub is_step: bool,
    pub digest: String,
    /// The layer blobs of its result, bottom first; empty: nothing to restore.
    #[schemars(with = "Vec<String>")]
    pub blobs: LayerChain,
    /// Their compressed size, as the cache's descriptors give it.
    #[serde(default)]
    pub bytes: u64,
    /// How many of them are eStargz (a lazy snapshotter can mount them without fetching them).
    #[serde(default)]
    pub estargz: usize,
}

impl CacheSummary {
    /// The entries of the records that cache `step`.
    pub fn entries_for<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a RecordEntry> {
        self.entries.iter().filter(move |e| e.is_step && e.label == step)
    }
}

/// One cache as read, with what it takes to explain a later build's misses.
pub struct ReadCache {
    pub summary: CacheSummary,
    pub cache: ExportedCache,
    pub graph: KeyGraph,
    /// The build of this run that exported it; `None` for a cache read as it was (a capture's import).
    pub exporter: Option<Exporter>,
}

/// What the build that exported a cache solved, and how it exported: what says why a record is absent.
#[derive(Debug, Clone)]
pub struct Exporter {
    /// The positions (`build 2/3`) of the steps it showed, CACHED or run: every step it solved.
    pub solved: Vec<String>,
    /// `None` for artifacts recorded before bkcache kept an export's mode.
    pub shape: Option<ExportShape>,
}

/// Summarizes a cache that `steps`' build exported.
pub fn summarize(phase: &str, name: &str, cache: ExportedCache, steps: &[Step], keys: &KeyTexts) -> ReadCache {
    let graph = KeyGraph::from(&cache.config);
    let aligned = align(&graph, steps, keys);
    let described: HashMap<&str, &LayerBlob> = cache.blobs.iter().map(|b| (b.digest.as_str(), b)).collect();
    let layer_blobs: Vec<Option<&LayerBlob>> =
        cache.config.layers.iter().map(|l| described.get(l.blob.as_str()).copied()).collect();
    let chains = record_chains(&cache.config, &layer_blobs);
    let entries: Vec<RecordEntry> = cache
        .config
        .records
        .iter()
        .zip(chains)
        .enumerate()
        .map(|(n, (r, blobs))| RecordEntry {
            label: label(&graph, &aligned, steps, keys, n),
            is_step: aligned[n].is_some(),
            digest: r.digest.clone(),
            bytes: blobs.bytes(),
            estargz: blobs.estargz(),
            blobs,
        })
        .collect();
    let without: Vec<String> =
        cache.config.records.iter().filter(|r| !r.has_layers()).map(|r| r.digest.clone()).collect();
    let summary = CacheSummary {
        phase: phase.to_owned(),
        cache: name.to_owned(),
        format: cache.format,
        records: cache.config.records.len(),
        layers: cache.config.layers.len(),
        records_with_layers: cache.config.records.len() - without.len(),
        records_without_layers: without.len(),
        records_without_layers_digests: without,
        entries,
        unreadable: None,
        audit: Vec::new(),
    };
    ReadCache { summary, cache, graph, exporter: None }
}

/// A cache BuildKit exported that cannot be read: no records, and why.
pub fn unreadable(phase: &str, name: &str, error: &CacheReadError) -> ReadCache {
    let cache = ExportedCache { format: CacheFormat::Index, config: Default::default(), blobs: Vec::new() };
    let mut read = summarize(phase, name, cache, &[], &KeyTexts::default());
    read.summary.unreadable = Some(crate::errors::with_sources(error));
    read
}

/// Why a step of a build that imported cache ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Miss {
    pub step: String,
    pub cause: MissCause,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MissCause {
    /// (e) It depends on a step that ran because its key changed.
    AncestorRan { ancestor: String },
    /// (a) No imported cache has a record for it, and why, per cache.
    NoRecord { imported: Vec<Absence> },
    /// (b) A record without layers: dropped at export, or, off the image's chain of a mode=min or inline
    /// export, left without by design (`off_chain`).
    NoLayers {
        cache: String,
        record: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        off_chain: bool,
    },
    /// (c) A record with layers under another key.
    KeyDiffers { cache: String, differences: Vec<String> },
    /// (d) A record BuildKit failed to load (its error, from the buildkitd log).
    LoadFailed { error: String },
    /// (d) A record with layers under the same key, unused, and no failed load logged.
    NotUsed { cache: String, record: String },
    /// Cache records could not be mapped to steps (no key plaintexts), so only (a)/(b) by name apply.
    Unknown { why: String },
}

impl fmt::Display for MissCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissCause::AncestorRan { ancestor } => {
                write!(f, "it ran because `{ancestor}`, which it depends on, ran with a changed cache key")
            }
            MissCause::NoRecord { imported } if imported.is_empty() => write!(f, "no record for it: the build imports no cache"),
            MissCause::NoRecord { imported } => write!(
                f,
                "no record for it in the imported cache: {}",
                imported.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ),
            MissCause::NoLayers { cache, record, off_chain: false } => write!(
                f,
                "record present without layers in `{cache}` ({}): there was nothing to restore (dropped at export)",
                short(record)
            ),
            MissCause::NoLayers { cache, record, off_chain: true } => write!(
                f,
                "record present without layers in `{cache}` ({}): a mode=min or inline export keeps results only for the exported image's chain, and this step is off it (by design, moby/buildkit#1742)",
                short(record)
            ),
            MissCause::KeyDiffers { cache, differences } => write!(
                f,
                "a record for it is in `{cache}`, but under another cache key than this build's: {}",
                differences.join("; ")
            ),
            MissCause::LoadFailed { error } => write!(
                f,
                "BuildKit found a record for it in the imported cache but failed to load it, and ran the step instead (buildkitd log): {error}"
            ),
            MissCause::NotUsed { cache, record } => write!(
                f,
                "a record with layers and this build's key is in `{cache}` ({}), yet the step ran and buildkitd logged no failed load: BuildKit did not use it",
                short(record)
            ),
            MissCause::Unknown { why } => write!(f, "cannot tell: {why}"),
        }
    }
}

/// Why one imported cache has no record for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    pub cache: String,
    pub records: usize,
    pub why: AbsenceWhy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AbsenceWhy {
    /// BuildKit wrote a cache it cannot have meant: no record at all (an image pushed without its
    /// inline cache when `image_without_inline_cache`).
    Empty {
        image_without_inline_cache: bool,
        /// buildkitd logged that it found no cache record for the image's layers (and so left the
        /// inline cache out).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unmatched_logged: bool,
    },
    /// The build that exported it never solved the step (its target does not need the step's stage).
    NotSolved {
        phase: String,
    },
    /// The exporting build solved it, but a mode=min or inline export holds only the records of the
    /// exported image's chain: outside that chain (or dropped).
    ImageChainOnly {
        phase: String,
        shape: String,
    },
    /// The exporting build solved it and exported with mode=max, which holds every record it solved:
    /// dropped at export.
    Dropped {
        phase: String,
    },
    /// Not exported by this run (a capture's import): what its build solved is unknown.
    Unknown,
    Unreadable {
        error: String,
    },
}

impl fmt::Display for Absence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cache, records) = (&self.cache, self.records);
        match &self.why {
            AbsenceWhy::Empty { image_without_inline_cache: true, unmatched_logged } => {
                write!(
                    f,
                    "`{cache}` holds no record: the image was pushed without an inline cache (its config has no `moby.buildkit.cache.v0`)"
                )?;
                if *unmatched_logged {
                    write!(f, ", and buildkitd logged \"failed to match any cache with layers\" exporting it: it found no record for the image's layers (docs/findings/inline-cache-lazy.md)")?;
                }
                Ok(())
            }
            AbsenceWhy::Empty { image_without_inline_cache: false, .. } => write!(f, "`{cache}` holds no record at all"),
            AbsenceWhy::NotSolved { phase } => write!(
                f,
                "`{cache}` ({records} records) was exported by phase `{phase}`, whose build never built this step (its target does not need it)"
            ),
            AbsenceWhy::ImageChainOnly { phase, shape } => write!(
                f,
                "`{cache}` ({records} records) was exported by phase `{phase}` as {shape}, which holds only the records of the exported image's layers: this step is outside them (or was dropped)"
            ),
            AbsenceWhy::Dropped { phase } => write!(
                f,
                "`{cache}` ({records} records) was exported by phase `{phase}` with mode=max, which holds a record of every step its build solved, and that build solved this one: dropped at export"
            ),
            AbsenceWhy::Unknown => write!(
                f,
                "`{cache}` ({records} records) was not exported by this run: which build wrote it, and what it solved, is unknown"
            ),
            AbsenceWhy::Unreadable { error } => write!(f, "`{cache}` is unreadable: {error}"),
        }
    }
}

/// Why `cache` has no record for `step`.
fn absence(cache: &ReadCache, step: &Step, loads: &CacheLoadFailures) -> Absence {
    let summary = &cache.summary;
    let why = match (&summary.unreadable, &cache.exporter) {
        (Some(error), _) => AbsenceWhy::Unreadable { error: error.clone() },
        _ if summary.records == 0 => {
            let image_without_inline_cache = summary.format == CacheFormat::ImageWithoutCache;
            AbsenceWhy::Empty {
                image_without_inline_cache,
                unmatched_logged: image_without_inline_cache && loads.inline_cache_unmatched,
            }
        }
        (None, None) => AbsenceWhy::Unknown,
        (None, Some(exporter)) => {
            let phase = summary.phase.clone();
            let solved = step.position().is_some_and(|p| exporter.solved.iter().any(|s| s == p));
            match exporter.shape {
                _ if !solved => AbsenceWhy::NotSolved { phase },
                None => AbsenceWhy::Unknown,
                Some(shape) if shape.holds_every_solved_step() => AbsenceWhy::Dropped { phase },
                Some(shape) => AbsenceWhy::ImageChainOnly { phase, shape: shape.describe().into() },
            }
        }
    };
    Absence { cache: summary.cache.clone(), records: summary.records, why }
}

/// A digest's first 12 hex digits, as people quote them.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Why the steps of a build that imported cache ran, and what the same key-level facts say of the
/// steps that were CACHED.
#[derive(Debug, Default)]
pub struct Explanation {
    /// Every non-`FROM` step that ran, with its cause.
    pub misses: Vec<Miss>,
    /// Every CACHED step for which the facts would explain a miss (anything but a record with layers
    /// under this build's key): either BuildKit hit a record the imported caches do not show (the
    /// builder's own cache), or a fact is wrong. What the eager/lazy cross-check holds a lazy cell's
    /// causes against.
    pub cached_despite: Vec<Miss>,
}

/// Explains every non-`FROM` step of a build, given the caches it imported (their records labelled by
/// the builds that exported them), the key plaintexts, the build's own key store and the loads
/// buildkitd logged as failed.
pub fn explain(
    steps: &[Step],
    imported: &[&ReadCache],
    keys: &KeyTexts,
    own: Option<&KeyGraph>,
    loads: &CacheLoadFailures,
) -> Explanation {
    let by_digest: std::collections::HashMap<&str, &Step> = steps.iter().map(|s| (s.digest.as_str(), s)).collect();
    let explained = |s: &Step| !s.is_internal() && !s.is_from();
    let ran = |s: &Step| !s.cached && explained(s);
    let own_aligned = own.map(|g| (g, align(g, steps, keys)));
    let imported: Vec<(&ReadCache, Vec<Option<usize>>)> =
        imported.iter().map(|c| (*c, align(&c.graph, steps, keys))).collect();
    // each step's own cause first: whether an ancestor that ran explains a step depends on the ancestor's
    let own: HashMap<&str, MissCause> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| explained(s))
        .map(|(index, step)| {
            let cause = match loads.of(&step.name).filter(|_| !step.cached) {
                Some(error) => MissCause::LoadFailed { error: error.to_owned() },
                None => own_cause(step, index, &imported, keys, own_aligned.as_ref(), loads),
            };
            (step.digest.as_str(), cause)
        })
        .collect();
    let mut explanation = Explanation::default();
    for step in steps.iter().filter(|s| explained(s)) {
        // BuildKit keys a step by its op and its inputs' keys, not by whether they ran: an ancestor that
        // ran explains this step only when its own key changed (the root-most such ancestor)
        // (and what a COPY copies from is keyed by content: only its destination's key carries over)
        let (mut changed, mut ran_too) = (None, None);
        let mut frontier: Vec<&Step> = vec![step];
        while let Some(s) = frontier.pop() {
            let keyed_inputs = if s.is_content_keyed() { &s.inputs[..s.inputs.len().min(1)] } else { &s.inputs[..] };
            for parent in keyed_inputs.iter().filter_map(|d| by_digest.get(d.as_str())).filter(|p| ran(p)) {
                ran_too = Some(parent.name.clone());
                if matches!(own.get(parent.digest.as_str()), Some(MissCause::KeyDiffers { .. })) {
                    changed = Some(parent.name.clone());
                }
                frontier.push(parent);
            }
        }
        let cause = match (changed, own[step.digest.as_str()].clone(), ran_too) {
            (Some(ancestor), _, _) => MissCause::AncestorRan { ancestor },
            (None, MissCause::Unknown { why }, Some(ancestor)) => MissCause::Unknown {
                why: format!(
                    "{why}; `{ancestor}`, which it depends on, ran too, which changes this step's key only if that step's own key changed (or, for a COPY, what it copies)"
                ),
            },
            (None, cause, _) => cause,
        };
        let miss = Miss { step: step.name.clone(), cause };
        if !step.cached {
            explanation.misses.push(miss);
        } else if !matches!(miss.cause, MissCause::NotUsed { .. } | MissCause::Unknown { .. }) {
            explanation.cached_despite.push(miss);
        }
    }
    explanation
}

fn own_cause(
    step: &Step,
    index: usize,
    imported: &[(&ReadCache, Vec<Option<usize>>)],
    keys: &KeyTexts,
    own: Option<&(&KeyGraph, Vec<Option<usize>>)>,
    loads: &CacheLoadFailures,
) -> MissCause {
    if imported.is_empty() {
        return MissCause::NoRecord { imported: Vec::new() };
    }
    // records for the step: aligned with this build's graph, or labelled with its name by the export
    let mut found: Vec<(&ReadCache, usize)> = Vec::new();
    for (cache, aligned) in imported {
        for (n, entry) in cache.summary.entries.iter().enumerate() {
            if aligned[n] == Some(index) || entry.is_step && entry.label == step.name {
                found.push((cache, n));
            }
        }
    }
    if found.is_empty() {
        if keys.is_empty() && imported.iter().all(|(c, _)| c.summary.entries.iter().all(|e| !e.is_step)) {
            return MissCause::Unknown { why: "the builder recorded no key plaintexts to map records to steps".into() };
        }
        return MissCause::NoRecord { imported: imported.iter().map(|(c, _)| absence(c, step, loads)).collect() };
    }
    // the record to compare with: one with layers if any, else the first
    let (cache, n) = *found.iter().find(|(c, n)| c.cache.config.records[*n].has_layers()).unwrap_or(&found[0]);
    let record = &cache.graph.nodes[n];
    let has_layers = cache.cache.config.records[n].has_layers();
    let own_node = own.and_then(|(graph, aligned)| aligned.iter().position(|a| *a == Some(index)).map(|m| (graph, m)));
    // a record under another key would not have been hit, layers or not: the key is the cause
    let differences = own_node.map(|(own_graph, m)| key_differences(&cache.graph, n, own_graph, m, keys));
    match (differences, has_layers) {
        (Some(differences), _) if !differences.is_empty() => {
            MissCause::KeyDiffers { cache: cache.summary.cache.clone(), differences }
        }
        (_, false) => {
            let by_design = cache.exporter.as_ref().and_then(|e| e.shape).is_some_and(|s| !s.holds_every_solved_step());
            let off_chain = by_design && !super::audit::image_chain(&cache.cache.config).contains(&n);
            MissCause::NoLayers { cache: cache.summary.cache.clone(), record: record.digest.clone(), off_chain }
        }
        (None, true) => MissCause::Unknown { why: "this build's own key for the step was not recorded".into() },
        (Some(_), true) => MissCause::NotUsed { cache: cache.summary.cache.clone(), record: record.digest.clone() },
    }
}

/// Where two keys of one step differ: the op itself, else the first input chain that differs.
fn key_differences(a: &KeyGraph, n: usize, b: &KeyGraph, m: usize, keys: &KeyTexts) -> Vec<String> {
    let (x, y) = (&a.nodes[n], &b.nodes[m]);
    if x.digest != y.digest {
        return match (keys.op(&x.digest), keys.op(&y.digest)) {
            (Some(OpKey::Content), Some(OpKey::Content)) => vec![format!(
                "what it copies: the checksum of the files it selects changed (content key {} → {})",
                short(&x.digest),
                short(&y.digest)
            )],
            (Some(p), Some(q)) => differences(&p, &q),
            _ => vec![format!("op key {} → {}", short(&x.digest), short(&y.digest))],
        };
    }
    // a record exported without the links to its inputs matches no build's key (cache audit: inputs-dropped)
    let lost =
        x.inputs.len() < y.inputs.len() || x.inputs.iter().zip(&y.inputs).any(|(l, m)| l.is_empty() && !m.is_empty());
    if lost {
        return vec![format!(
            "the record {} was exported without its links to the steps below it (cache audit: inputs-dropped), so no build's key can match it",
            short(&x.digest)
        )];
    }
    for (links_x, links_y) in x.inputs.iter().zip(&y.inputs) {
        let same = links_x.iter().any(|i| links_y.iter().any(|j| same_key(a, *i, b, *j)));
        if same {
            continue;
        }
        // an input keyed by content (a COPY's source) differs by its content key, whatever else it links
        let content = |graph: &KeyGraph, links: &[usize]| {
            links.iter().copied().find(|n| keys.op(&graph.nodes[*n].digest) == Some(OpKey::Content))
        };
        let pair = match (content(a, links_x), content(b, links_y)) {
            (Some(i), Some(j)) => Some((i, j)),
            _ => links_x.first().copied().zip(links_y.first().copied()),
        };
        if let Some((i, j)) = pair {
            return key_differences(a, i, b, j, keys);
        }
    }
    Vec::new()
}

/// Whether two nodes key the same thing: the same digest on the same inputs, all the way down.
fn same_key(a: &KeyGraph, n: usize, b: &KeyGraph, m: usize) -> bool {
    let (x, y) = (&a.nodes[n], &b.nodes[m]);
    x.digest == y.digest
        && x.inputs.len() == y.inputs.len()
        && x.inputs.iter().zip(&y.inputs).all(|(lx, ly)| lx.iter().any(|i| ly.iter().any(|j| same_key(a, *i, b, *j))))
}
