//! Observe: what one repetition's raw artifacts say, as typed facts for the judge. Nothing here runs
//! anything; it reads what `execute` left (rawjson streams, exported caches, key dumps, the buildkitd
//! log).
//!
//! Observations serialize: each repetition's are kept as `observations.json` beside its artifacts, and
//! the judge's table tests read observations captured that way from real runs.

pub mod audit;
pub mod cache;
pub(crate) mod cache_loads;
pub(crate) mod chain;
pub mod crash;
pub mod forensics;
pub mod keys;
pub mod laziness;
pub mod progress;
pub(crate) mod records;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifacts::{dump_path, Effect, RawBuild, RawPhase, RawRepetition};
use crate::errors::InfraFailure;
use crate::scenario::ExportShape;
use cache_loads::CacheLoadFailures;
use forensics::{CacheSummary, Exporter, Miss, ReadCache};
use keys::KeyTexts;
use laziness::Laziness;
use progress::Step;

/// Everything one repetition of a cell showed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// The phases that ran, in order. A phase after an unexpected build failure or an infrastructure
    /// failure did not run and is absent.
    pub phases: Vec<PhaseObservation>,
    /// One summary per cache export of a build that succeeded, in phase order.
    pub caches: Vec<CacheSummary>,
    /// Lazy-pull evidence from the buildkitd log (every builder; judged on lazy snapshotters).
    pub laziness: Option<Laziness>,
    /// Why the repetition could not test what it claims, when the machine (not BuildKit) failed.
    pub infrastructure: Option<InfraFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseObservation {
    pub phase: String,
    pub duration_secs: f64,
    pub outcome: PhaseOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PhaseOutcome {
    /// A build BuildKit ran: its steps, when its solver failed it, BuildKit's error, and why each
    /// step that ran was not restored from the cache the build imported.
    Build {
        steps: Vec<Step>,
        failure: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        misses: Vec<Miss>,
        /// CACHED steps whose key-level facts would explain a miss (see `forensics::Explanation`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cached_despite: Vec<Miss>,
        /// The checked files of its output (`output = "local"`): path → sha256 of the content (a link:
        /// `symlink to <target>`), `None` when the output has no such file (or only through a link).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        files: BTreeMap<String, Option<String>>,
    },
    Prune,
    /// A declared base (its build argument) pushed again with other content.
    Drift {
        base: String,
    },
    /// Layer blobs (this many) deleted, from where `from` says (a declared base, a local cache).
    LayersDeleted {
        from: String,
        layers: usize,
    },
}

impl PhaseObservation {
    pub fn steps(&self) -> &[Step] {
        match &self.outcome {
            PhaseOutcome::Build { steps, .. } => steps,
            PhaseOutcome::Prune | PhaseOutcome::Drift { .. } | PhaseOutcome::LayersDeleted { .. } => &[],
        }
    }
}

/// Observes one repetition while it runs: each phase once, as it finishes (for the live events), and
/// the rest (caches, laziness, a phase cut short by an infrastructure failure) when it is over.
#[derive(Default)]
pub struct Observer {
    phases: Vec<PhaseObservation>,
}

impl Observer {
    /// Observes the phase that just finished (phases finish in order).
    pub fn phase(&mut self, raw: &RawPhase) -> &PhaseObservation {
        self.phases.push(phase(raw));
        self.phases.last().expect("just pushed")
    }

    /// Everything the repetition showed.
    pub fn finish(mut self, raw: &RawRepetition) -> Observations {
        let seen = self.phases.len().min(raw.phases.len());
        self.phases.extend(raw.phases[seen..].iter().map(phase));
        let mut infrastructure = raw.infrastructure.clone();
        let mut read: Vec<ReadCache> = Vec::new();
        let loads = CacheLoadFailures::from_buildkitd_log(raw.buildkitd_log.as_deref().unwrap_or_default());
        for (p, seen) in raw.phases.iter().zip(self.phases.iter_mut()) {
            let Some(build) = p.build.as_ref().filter(|b| b.succeeded) else { continue };
            if let Err(e) = forensics_of(p, build, seen, &mut read, &loads) {
                infrastructure.get_or_insert(e);
            }
        }
        Observations {
            phases: self.phases,
            caches: read.into_iter().map(|c| c.summary).collect(),
            laziness: raw.buildkitd_log.as_deref().map(laziness::from_buildkitd_log),
            infrastructure,
        }
    }
}

/// Reads what a succeeded build exported (into `read`) and explains its misses against what it imported.
fn forensics_of(
    p: &RawPhase,
    build: &RawBuild,
    seen: &mut PhaseObservation,
    read: &mut Vec<ReadCache>,
    loads: &CacheLoadFailures,
) -> Result<(), InfraFailure> {
    let PhaseOutcome::Build { steps, misses, cached_despite, .. } = &mut seen.outcome else { return Ok(()) };
    let failure = |what: &str, e: &(dyn std::error::Error + 'static)| {
        InfraFailure::new(format!("reading {what} of phase `{}`", p.phase), e)
    };
    let (keys, store) = match &build.key_dumps {
        Some(stem) => {
            let keys = KeyTexts::read(&dump_path(stem, "keys.json")).map_err(|e| failure("the cache keys", &e))?;
            let store =
                records::read_store(&dump_path(stem, "store.json")).map_err(|e| failure("the key store", &e))?;
            (keys, Some(store))
        }
        None => (KeyTexts::default(), None),
    };
    if !build.imports.is_empty() {
        // a cache no earlier phase exported (a capture of the importing build alone) is read as it was
        let mut unexported = Vec::new();
        for import in build.imports.iter().filter(|i| !read.iter().any(|c| c.summary.cache == i.name)) {
            let cache = cache::read_layout(&import.dir).map_err(|e| failure("an imported cache", &e))?;
            unexported.push(forensics::summarize("", &import.name, cache, &[], &KeyTexts::default()));
        }
        let imported: Vec<&ReadCache> = build
            .imports
            .iter()
            .filter_map(|i| read.iter().chain(&unexported).rev().find(|c| c.summary.cache == i.name))
            .collect();
        let explanation = forensics::explain(steps, &imported, &keys, store.as_ref(), loads);
        (*misses, *cached_despite) = (explanation.misses, explanation.cached_despite);
    }
    // what BuildKit wrote: a cache it wrote broken is an observation, not a fault of this machine
    for export in &build.exports {
        read.push(match cache::read_layout(&export.dir) {
            Ok(cache) => {
                let shape = match export.mode_max {
                    Some(true) => Some(ExportShape::Max),
                    Some(false) if export.name.starts_with("inline:") => Some(ExportShape::Inline),
                    Some(false) => Some(ExportShape::Min),
                    None => None,
                };
                // an export of unrecorded mode is held to what every shape holds
                let findings = audit::audit(&cache.config, shape.unwrap_or(ExportShape::Min));
                let solved = steps.iter().filter_map(|s| s.position().map(str::to_owned)).collect();
                let mut read = forensics::summarize(&p.phase, &export.name, cache, steps, &keys);
                read.summary.audit = findings;
                read.exporter = Some(Exporter { solved, shape });
                read
            }
            Err(e) => forensics::unreadable(&p.phase, &export.name, &e),
        });
    }
    Ok(())
}

fn phase(raw: &RawPhase) -> PhaseObservation {
    PhaseObservation {
        phase: raw.phase.clone(),
        duration_secs: raw.duration.as_secs_f64(),
        outcome: match (&raw.build, &raw.effect) {
            (Some(build), _) => build_outcome(build),
            (None, Some(Effect::Drifted { base })) => PhaseOutcome::Drift { base: base.clone() },
            (None, Some(Effect::LayersDeleted { from, layers })) => {
                PhaseOutcome::LayersDeleted { from: from.clone(), layers: *layers }
            }
            (None, None) => PhaseOutcome::Prune,
        },
    }
}

/// The largest output file a file check reads.
const OUTPUT_FILE_LIMIT: u64 = 1 << 30;

fn build_outcome(build: &RawBuild) -> PhaseOutcome {
    let progress = progress::parse(&build.rawjson, build.succeeded);
    let failure = (!build.succeeded).then(|| match &build.crash {
        Some(panic) => format!("buildkitd crashed: {panic}"),
        None => progress.failure_summary(&build.rawjson),
    });
    let files = match &build.output {
        Some(output) if build.succeeded => output
            .checked
            .iter()
            .map(|path| {
                // the output is what the build wrote: no link in it is followed, no file read without bound
                let entry = crate::safe_fs::read_under(&output.dir, path, OUTPUT_FILE_LIMIT).ok();
                let seen = entry.map(|entry| match entry {
                    crate::safe_fs::TreeEntry::File(bytes) => cache::sha256_digest(&bytes),
                    crate::safe_fs::TreeEntry::Link(target) => format!("symlink to {}", target.display()),
                });
                (path.clone(), seen)
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    PhaseOutcome::Build { steps: progress.steps, failure, misses: Vec::new(), cached_despite: Vec::new(), files }
}
