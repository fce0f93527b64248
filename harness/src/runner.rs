//! Running the plan: a preflight that checks every input before any builder exists, then each cell
//! through its phases. The runner only emits [`Event`]s and returns [`CellResult`]s; reporters
//! consume them.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt, TryStreamExt};

use crate::buildkit_image::{self, BuildkitImageError, EnsuredImage};
use crate::builder::Janitor;
use crate::cache::{self, CacheSummary};
use crate::docker::Engine;
use crate::errors::InfraError;
use crate::laziness::{self, Laziness};
use crate::phase::{self, CellPaths, PhaseRecord, PhaseRecordKind};
use crate::plan::{slug, Cell};
use crate::progress::Step;
use crate::registry::Registry;
use crate::scenario::BaseImage;
use crate::verdict::{self, Judgement, Observed};

/// What a run needs from the machine.
pub struct RunContext {
    pub engine: Engine,
    pub registry: Registry,
    pub janitor: Janitor,
    pub run_id: String,
    /// Cells work here; a cell that does not pass leaves its directory as its artifacts.
    pub run_dir: PathBuf,
    /// Keep the artifacts of passing cells too.
    pub keep_all_artifacts: bool,
}

pub enum Event<'a> {
    ImageReady { image: &'a EnsuredImage },
    CellStarted { cell: &'a Cell, index: usize, total: usize },
    PhaseFinished { cell: &'a Cell, record: &'a PhaseRecord },
    CellFinished { result: &'a CellResult },
}

/// One step as one phase of a cell saw it.
#[derive(Debug, Clone)]
pub struct PhaseStep {
    pub phase: String,
    pub step: Step,
}

#[derive(Debug, Clone)]
pub struct CellResult {
    pub cell: Cell,
    pub judgement: Judgement,
    pub steps: Vec<PhaseStep>,
    /// One summary per local cache export, in phase order.
    pub caches: Vec<CacheSummary>,
    pub laziness: Option<Laziness>,
    /// Where the cell's rawjson logs, buildkitd log and exported caches were kept.
    pub artifacts: Option<PathBuf>,
    pub duration: Duration,
}

/// Builds the BuildKit images the cells need that the engine does not have yet, each distinct image once.
pub async fn ensure_images(
    ctx: &RunContext,
    cells: &[Cell],
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Vec<EnsuredImage>, BuildkitImageError> {
    let mut seen = BTreeSet::new();
    let mut images = Vec::new();
    for spec in cells.iter().filter_map(|c| c.profile.buildkit.as_ref()) {
        if seen.insert(spec.tag(&ctx.registry.addr)) {
            let image = buildkit_image::ensure(&ctx.engine, spec, &ctx.registry.addr).await?;
            on_event(Event::ImageReady { image: &image });
            images.push(image);
        }
    }
    Ok(images)
}

/// Checks everything else the cells need exists, so a missing input fails the run before any builder
/// is created: the registry answers, local bases are pushed.
pub async fn preflight(ctx: &RunContext, cells: &[Cell]) -> Result<(), InfraError> {
    ctx.registry.ping().await?;
    let bases: BTreeSet<String> = cells
        .iter()
        .flat_map(|c| c.scenario.bases.values())
        .filter(|b| matches!(b, BaseImage::Local(_)))
        .map(|b| b.reference(&ctx.registry.addr))
        .collect();
    for base in bases {
        if !ctx.registry.has_image(&base).await? {
            return Err(InfraError::BaseMissing { image: base });
        }
    }
    Ok(())
}

/// Runs the cells, up to `jobs` at a time (each on its own builder). Only a run-level failure (no work
/// directory) is an `Err`; every cell-level problem is in that cell's verdict. Results are in plan order.
pub async fn run_cells(
    ctx: &RunContext,
    cells: &[Cell],
    jobs: usize,
    on_event: impl FnMut(Event<'_>),
) -> Result<Vec<CellResult>, InfraError> {
    let on_event = RefCell::new(on_event);
    let emit = &|event: Event<'_>| (on_event.borrow_mut())(event);
    let total = cells.len();
    let mut results: Vec<(usize, CellResult)> = stream::iter(cells.iter().enumerate())
        .map(|(index, cell)| async move {
            emit(Event::CellStarted { cell, index, total });
            let result = run_cell(ctx, index, cell, emit).await?;
            emit(Event::CellFinished { result: &result });
            Ok::<_, InfraError>((index, result))
        })
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

async fn run_cell(ctx: &RunContext, index: usize, cell: &Cell, on_event: &impl Fn(Event<'_>)) -> Result<CellResult, InfraError> {
    let started = Instant::now();
    let cell_slug = slug(&cell.name());
    let dir = tempfile::Builder::new()
        .prefix(&format!("{cell_slug}."))
        .tempdir_in(&ctx.run_dir)
        .map_err(InfraError::io(format!("creating a work directory in {}", ctx.run_dir.display())))?;
    let registry_slug = format!("{}-{cell_slug}", ctx.run_id);
    let paths = CellPaths { dir: dir.path(), slug: &registry_slug, registry: &ctx.registry.addr };

    let mut records = Vec::new();
    let mut infra_error: Option<String> = None;
    let mut laziness = None;
    match ctx.janitor.create(index, &cell.profile, &ctx.registry.addr, dir.path()).await {
        Err(e) => infra_error = Some(format!("creating the builder: {e}")),
        Ok(builder) => {
            for phase in &cell.scenario.phases {
                match phase::run(phase, &cell.scenario, &builder, &paths).await {
                    Ok(record) => {
                        on_event(Event::PhaseFinished { cell, record: &record });
                        records.push(record);
                    }
                    Err(e) => {
                        infra_error = Some(format!("phase `{}`: {e}", phase.name));
                        break;
                    }
                }
            }
            match ctx.engine.container_logs(&builder.container()).await {
                Ok(log) => {
                    laziness = Some(laziness::from_buildkitd_log(&log));
                    let _ = std::fs::write(dir.path().join("buildkitd.log"), log);
                }
                Err(e) => {
                    infra_error.get_or_insert(format!("reading the buildkitd log: {e}"));
                }
            }
            if let Err(e) = ctx.janitor.remove(&builder.name, &ctx.engine).await {
                infra_error.get_or_insert(format!("removing the builder: {e}"));
            }
        }
    }

    let mut caches = Vec::new();
    for record in &records {
        let PhaseRecordKind::Build(build) = &record.kind else { continue };
        if !build.succeeded {
            continue;
        }
        for export in &build.local_exports {
            match cache::read_local(export) {
                Ok(config) => caches.push(config.summary(&record.phase)),
                Err(e) => {
                    infra_error.get_or_insert(format!("reading the cache exported by phase `{}`: {e}", record.phase));
                }
            }
        }
    }

    let observed = Observed { records: &records, laziness: laziness.as_ref(), infra_error };
    let judgement = verdict::judge(cell, &observed);
    let steps = records
        .iter()
        .filter_map(|r| match &r.kind {
            PhaseRecordKind::Build(b) => Some((r, b)),
            PhaseRecordKind::Prune => None,
        })
        .flat_map(|(r, b)| b.progress.steps.iter().map(|s| PhaseStep { phase: r.phase.clone(), step: s.clone() }))
        .collect();
    let artifacts = (ctx.keep_all_artifacts || judgement.verdict.keeps_artifacts()).then(|| dir.keep());
    Ok(CellResult {
        cell: cell.clone(),
        judgement,
        steps,
        caches,
        laziness: laziness.filter(|_| cell.profile.snapshotter.is_lazy()),
        artifacts,
        duration: started.elapsed(),
    })
}
