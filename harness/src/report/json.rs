//! The machine-readable report (`--report-json`). Other tools read it: the shape is versioned by
//! `schema_version`, and fields are only ever added within a version.

use serde::Serialize;

use crate::buildkit_image::EnsuredImage;
use crate::cache::CacheSummary;
use crate::laziness::Laziness;
use crate::runner::CellResult;
use crate::verdict::Verdict;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Report<'a> {
    pub schema_version: u32,
    pub bkcache_version: &'static str,
    pub run_id: &'a str,
    pub docker_engine: &'a str,
    /// The BuildKit images bkcache made for this run: `built` false means an existing one was reused.
    pub images: &'a [EnsuredImage],
    pub cells: Vec<Cell<'a>>,
}

#[derive(Serialize)]
pub struct Cell<'a> {
    /// `scenario@builder`
    pub name: String,
    pub scenario: &'a str,
    pub builder: &'a str,
    pub verdict: Verdict,
    /// The known issue behind a `known-failure`, or that should have broken an `unexpected-pass`.
    pub known_issue: Option<&'a str>,
    pub reasons: &'a [String],
    pub steps: Vec<Step<'a>>,
    /// The last local cache export of the cell (the one later phases imported).
    pub cache: Option<&'a CacheSummary>,
    /// Every local cache export, in phase order.
    pub caches: &'a [CacheSummary],
    /// Lazy-pull evidence, on lazy snapshotters.
    pub laziness: Option<&'a Laziness>,
    pub buildkit: BuildKit<'a>,
    pub artifacts: Option<String>,
    pub duration_secs: f64,
}

#[derive(Serialize)]
pub struct Step<'a> {
    pub name: &'a str,
    pub phase: &'a str,
    pub cached: bool,
    pub error: Option<&'a str>,
}

#[derive(Serialize)]
pub struct BuildKit<'a> {
    pub image: &'a str,
    pub version: Option<&'a str>,
    pub patches: Vec<String>,
    pub snapshotter: &'static str,
    pub buildkitd_flags: Vec<String>,
}

pub fn build<'a>(run_id: &'a str, docker_engine: &'a str, images: &'a [EnsuredImage], results: &'a [CellResult]) -> Report<'a> {
    Report {
        schema_version: SCHEMA_VERSION,
        bkcache_version: env!("CARGO_PKG_VERSION"),
        run_id,
        docker_engine,
        images,
        cells: results.iter().map(cell).collect(),
    }
}

fn cell(r: &CellResult) -> Cell<'_> {
    let profile = &r.cell.profile;
    Cell {
        name: r.cell.name(),
        scenario: &r.cell.scenario.name,
        builder: &profile.name,
        verdict: r.judgement.verdict,
        known_issue: r.judgement.known_issue.as_deref(),
        reasons: &r.judgement.reasons,
        steps: r
            .steps
            .iter()
            .map(|s| Step { name: &s.step.name, phase: &s.phase, cached: s.step.cached, error: s.step.error.as_deref() })
            .collect(),
        cache: r.caches.last(),
        caches: &r.caches,
        laziness: r.laziness.as_ref(),
        buildkit: BuildKit {
            image: &profile.image,
            version: profile.buildkit.as_ref().map(|b| b.version.as_str()),
            patches: profile.buildkit.as_ref().map(|b| b.patch_names()).unwrap_or_default(),
            snapshotter: profile.snapshotter.as_str(),
            buildkitd_flags: profile.all_buildkitd_flags(),
        },
        artifacts: r.artifacts.as_ref().map(|p| p.display().to_string()),
        duration_secs: r.duration.as_secs_f64(),
    }
}
