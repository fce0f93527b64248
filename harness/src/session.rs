//! The library API every front end calls (the CLI, bisect, evidence, the cells test target): [`plan()`]
//! checks every input without docker; [`run_plan`] connects to the machine, prepares what
//! the cells need, runs them — each cell's repetitions through execute → observe → judge, then
//! [`judge::aggregate`] — emitting [`Event`]s, and cleans up on every way out, interrupts included.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};

use crate::artifacts::RawRepetition;
use crate::buildkit_spec::{EnsuredImage, Source};
use crate::errors::InfraFailure;
use crate::errors::{ConfigError, InfraError};
use crate::events::{CellResult, RepetitionResult, RunReport};
use crate::events::{Event, EventKind};
use crate::execute::{self, Progress, Workspace};
use crate::host::builder::Janitor;
use crate::host::docker::Engine;
use crate::host::locks::{self, Held};
use crate::host::registry::Registry;
use crate::host::Machine;
use crate::images::buildkit;
use crate::images::releases;
use crate::judge::{self, Judgement, Verdict};
use crate::observe::Observer;
use crate::plan::{self, Cell, Filter};
use crate::profiles::Profiles;
use crate::scenario::{self, BaseImage};

/// What stops a run before or outside any cell's verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Infra(#[from] InfraError),
    #[error(transparent)]
    BuildkitImage(#[from] crate::images::buildkit::BuildkitImageError),
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
}

/// What to run: scenario paths, the builders file, filters.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub paths: Vec<PathBuf>,
    /// Default: `builders.toml` beside the first scenario path.
    pub builders: Option<PathBuf>,
    pub filter: Filter,
    /// Release testing: these BuildKit releases with each snapshotter instead of the builders file.
    pub buildkit: Vec<String>,
    /// Where those releases' (or commits') source comes from.
    pub buildkit_source: Source,
}

/// The checked plan: profiles and the cells, every scenario linted.
pub struct Plan {
    pub profiles: Profiles,
    pub cells: Vec<Cell>,
    /// Findings that do not stop a run but likely mean a mistake (file:line:col and a fix each).
    pub warnings: Vec<ConfigError>,
}

/// Loads and lints every scenario and profile and plans the cells; needs no docker.
pub fn plan(options: &PlanOptions) -> Result<Plan, ConfigError> {
    let builders = options.builders.clone().unwrap_or_else(|| scenario::default_builders_file(&options.paths));
    let files = scenario::discover(&options.paths)?;
    if files.is_empty() {
        return Err(ConfigError::Usage {
            message: format!(
                "no scenario files in {}",
                options.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
            fix: "pass scenario .toml files or a directory holding them".into(),
        });
    }
    let profiles = Profiles::load(&builders)?;
    let scenarios = scenario::load_all(&files, &profiles)?;
    let warnings = scenarios.iter().flat_map(|s| scenario::unmatched_known_issues(s, &profiles, &builders)).collect();
    let profiles = if options.buildkit.is_empty() {
        profiles
    } else {
        profiles.for_releases(&options.buildkit, &options.buildkit_source)?
    };
    let filter = Filter { ignore_scenario_builders: !options.buildkit.is_empty(), ..options.filter.clone() };
    let cells = plan::plan(scenarios, &profiles, &filter)?;
    Ok(Plan { profiles, cells, warnings })
}

/// The releases `--buildkit` names (`v0.24.0,v0.25.0` or a range such as `>=0.24.0`); a range leaves
/// out the releases known not to build here, and says which (`skipped`).
pub async fn releases(text: &str) -> Result<releases::Resolved, Error> {
    let selection = releases::Selection::parse(text)?;
    Ok(releases::resolve(&selection, &releases::BuildStatuses::load()).await?)
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    /// Cells keep their artifacts under `<artifacts_dir>/<run id>/`.
    pub artifacts_dir: PathBuf,
    pub keep_all_artifacts: bool,
    /// Repetitions at once, each on its own builder.
    pub jobs: usize,
    /// A new builder for every repetition instead of resetting one that finished a repetition cleanly.
    pub fresh_builders: bool,
}

/// BuildKit images built at once: a Go build uses every core, so two overlap one's module downloads and
/// linking with the other's compiling and no more. The same image is never built twice at once, even by
/// two runs (`locks::own_image`).
const IMAGE_BUILDS: usize = 2;

/// How a whole run ended.
#[derive(Debug)]
pub enum Ran {
    /// The cells ran: all of them, or until a signal (see [`RunReport::interrupted`]).
    Report(RunReport),
    /// A signal came while BuildKit images were being made, before any cell ran.
    InterruptedPreparing(&'static str),
}

/// A run's outcome, and what its clean-up could not remove (for the caller to warn about).
#[derive(Debug)]
pub struct Completed {
    pub outcome: Result<Ran, Error>,
    pub clean_up: Vec<InfraError>,
}

/// A whole run, the one way front ends drive one: connect, prepare (images, bases), run the cells, and
/// clean up on every way out — finished, failed, or interrupted while preparing or running.
pub async fn run_plan(
    plan: Plan,
    options: RunOptions,
    interrupt: impl Future<Output = &'static str>,
    mut on_event: impl FnMut(Event<'_>),
) -> Completed {
    let mut session = match Session::connect(plan, options).await {
        Ok(session) => session,
        Err(e) => return Completed { outcome: Err(e), clean_up: Vec::new() },
    };
    let mut interrupt = std::pin::pin!(interrupt);
    let prepared = tokio::select! {
        prepared = session.prepare(&mut on_event) => prepared.map(|()| None),
        signal = &mut interrupt => Ok(Some(signal)),
    };
    let outcome = match prepared {
        Ok(None) => Ok(Ran::Report(session.run(interrupt, &mut on_event).await)),
        Ok(Some(signal)) => Ok(Ran::InterruptedPreparing(signal)),
        Err(e) => Err(e),
    };
    Completed { outcome, clean_up: session.clean_up().await }
}

struct Session {
    machine: Machine,
    /// Marks this run alive for `bkcache gc` and keeps its id from a second live run.
    _alive: Held,
    /// Shared while the run may push; released at clean-up, when the last run collects the registry.
    registry_share: std::sync::Mutex<Option<Held>>,
    /// Registry paths (`<run>/<scenario>/<profile>/r<n>`) of repetitions whose artifacts are kept: their
    /// registry caches and images stay beside them.
    kept_refs: RefCell<BTreeSet<String>>,
    cells: Vec<Cell>,
    run_dir: PathBuf,
    artifacts_dir: PathBuf,
    options: RunOptions,
    images: Vec<EnsuredImage>,
}

impl Session {
    /// Connects to the docker engine and makes the run's artifacts directory.
    async fn connect(plan: Plan, options: RunOptions) -> Result<Session, Error> {
        let alive = locks::hold_run(&options.run_id)?;
        let engine = Engine::connect().await?;
        let run_dir = options.artifacts_dir.join(&options.run_id);
        std::fs::create_dir_all(&run_dir).map_err(InfraError::io(format!("creating {}", run_dir.display())))?;
        crate::artifacts::mark_run_dir(&run_dir, &options.run_id)?;
        let machine = Machine {
            engine,
            registry: Registry::new(&plan.profiles.pins),
            janitor: Janitor::new(&options.run_id, !options.fresh_builders),
        };
        Ok(Session {
            machine,
            _alive: alive,
            registry_share: std::sync::Mutex::new(Some(locks::share_registry().await?)),
            kept_refs: RefCell::default(),
            cells: plan.cells,
            run_dir,
            artifacts_dir: options.artifacts_dir.clone(),
            options,
            images: Vec::new(),
        })
    }

    /// Builds the BuildKit images the cells need (each distinct image once) and checks the registry and
    /// the local bases, so nothing missing is found after a builder exists.
    async fn prepare(&mut self, mut on_event: impl FnMut(Event<'_>)) -> Result<(), Error> {
        let mut seen = BTreeSet::new();
        let registry = self.machine.registry.addr.clone();
        let specs: Vec<_> = self
            .cells
            .iter()
            .filter_map(|c| c.profile.buildkit.as_ref())
            .filter(|spec| seen.insert(spec.tag(&registry)))
            .collect();
        let engine = &self.machine.engine;
        let mut builds = stream::iter(specs.into_iter().map(|spec| buildkit::ensure(engine, spec, &registry)))
            .buffered(IMAGE_BUILDS);
        while let Some(image) = builds.next().await {
            let image = image?;
            on_event(EventKind::ImageReady { image: &image }.now());
            self.images.push(image);
        }
        self.machine.registry.ping().await?;
        let bases: BTreeSet<String> = self
            .cells
            .iter()
            .flat_map(|c| c.scenario.bases.values())
            .filter_map(BaseImage::local)
            .map(|name| BaseImage::local_reference(&registry, name))
            .collect();
        for base in bases {
            if !self.machine.registry.has_image(&base).await? {
                return Err(InfraError::BaseMissing { image: base }.into());
            }
        }
        Ok(())
    }

    /// Runs every repetition of every cell, `jobs` at a time, until done or `interrupt` resolves (with
    /// the signal's name). Never fails: what went wrong is in the cells' verdicts.
    async fn run(&self, interrupt: impl Future<Output = &'static str>, on_event: impl FnMut(Event<'_>)) -> RunReport {
        let started = Instant::now();
        let on_event = RefCell::new(on_event);
        let emit = |kind: EventKind<'_>| (on_event.borrow_mut())(kind.now());
        let units: Vec<(usize, u32)> =
            self.cells.iter().enumerate().flat_map(|(i, c)| (0..c.repetitions).map(move |r| (i, r))).collect();
        for cell in &self.cells {
            self.machine.janitor.expect(&cell.profile, cell.repetitions as usize);
        }
        emit(EventKind::RunStarted { run_id: &self.options.run_id, cells: self.cells.len(), repetitions: units.len() });
        let state = RefCell::new(RunState::new(&self.cells));
        let work = stream::iter(units)
            .map(|(cell_index, repetition)| self.run_unit(cell_index, repetition, &state, &emit))
            .buffer_unordered(self.options.jobs.max(1))
            .collect::<Vec<()>>();
        let interrupted = tokio::select! {
            _ = work => None,
            signal = interrupt => Some(signal),
        };
        let mut state = state.into_inner();
        let cells: Vec<CellResult> = (0..self.cells.len())
            .map(|i| match state.done[i].take() {
                Some(done) => done,
                None => self.finish_cell(i, std::mem::take(&mut state.repetitions[i]), state.started_at[i]),
            })
            .collect();
        let report = RunReport {
            run_id: self.options.run_id.clone(),
            docker_engine: format!("{} (API {})", self.machine.engine.version, self.machine.engine.api_version),
            images: self.images.clone(),
            cells,
            interrupted,
            duration: started.elapsed(),
        };
        match interrupted {
            Some(signal) => emit(EventKind::RunInterrupted { signal, report: &report }),
            None => emit(EventKind::RunFinished { report: &report }),
        }
        report
    }

    async fn run_unit(
        &self,
        cell_index: usize,
        repetition: u32,
        state: &RefCell<RunState>,
        emit: &dyn Fn(EventKind<'_>),
    ) {
        let cell = &self.cells[cell_index];
        let first = state.borrow_mut().start(cell_index);
        if first {
            emit(EventKind::CellStarted { cell, index: cell_index, total: self.cells.len() });
        }
        emit(EventKind::RepetitionStarted { cell, repetition });
        let started = Instant::now();
        let cell_slug = cell.id().slug();
        let dir =
            tempfile::Builder::new().prefix(&format!("{cell_slug}-r{}.", repetition + 1)).tempdir_in(&self.run_dir);
        let observer = RefCell::new(Observer::default());
        let raw = match &dir {
            Err(e) => RawRepetition {
                infrastructure: Some(InfraFailure::new("creating the repetition's work directory", e)),
                ..Default::default()
            },
            Ok(dir) => {
                let ws = Workspace { dir: dir.path(), refs: self.refs(cell, repetition) };
                let on_progress = |p: Progress<'_>| match p {
                    Progress::PhaseStarted(phase) => {
                        emit(EventKind::PhaseStarted { cell, repetition, phase: phase.name.as_str() })
                    }
                    Progress::PhaseFinished(raw) => {
                        let mut observer = observer.borrow_mut();
                        emit(EventKind::PhaseFinished { cell, repetition, phase: observer.phase(raw) })
                    }
                };
                execute::run_repetition(&self.machine, cell, &ws, &on_progress).await
            }
        };
        let observations = observer.into_inner().finish(&raw);
        let dir = dir.ok();
        if let Some(dir) = &dir {
            let _ = raw.save(dir.path());
            if let Ok(json) = serde_json::to_string_pretty(&observations) {
                let _ = std::fs::write(dir.path().join("observations.json"), json);
            }
        }
        let judgement = judge::judge(cell, &observations);
        let result = RepetitionResult {
            index: repetition,
            judgement,
            observations,
            artifacts: None,
            duration: started.elapsed(),
        };
        emit(EventKind::RepetitionFinished { cell, repetition: &result });
        let finished = state.borrow_mut().finish(cell_index, result, dir);
        if let Some(repetitions) = finished {
            let started_at = state.borrow().started_at[cell_index];
            let done = self.finish_cell(cell_index, repetitions, started_at);
            emit(EventKind::CellFinished { result: &done });
            state.borrow_mut().done[cell_index] = Some(done);
        }
    }

    /// The registry path of a repetition's caches and pushed images.
    fn refs(&self, cell: &Cell, repetition: u32) -> String {
        format!(
            "{}/{}/{}/r{}",
            self.options.run_id,
            cell.scenario.name.slug(),
            cell.profile.name.slug(),
            repetition + 1
        )
    }

    /// Aggregates a cell's repetitions and decides which artifacts to keep: none for a cell that passed
    /// (unless asked), every repetition that did not pass, and a passing one of a flaky cell to compare.
    fn finish_cell(&self, index: usize, mut repetitions: Vec<Finished>, started_at: Option<Instant>) -> CellResult {
        let cell = self.cells[index].clone();
        repetitions.sort_by_key(|f| f.result.index);
        let judgements: Vec<&Judgement> = repetitions.iter().map(|f| &f.result.judgement).collect();
        let verdict = judge::aggregate(cell.repetitions, &judgements);
        let results = repetitions
            .into_iter()
            .enumerate()
            .map(|(i, Finished { mut result, dir })| {
                let rep_verdict = result.judgement.verdict;
                let keep = self.options.keep_all_artifacts
                    || (verdict.verdict != Verdict::Pass && rep_verdict != Verdict::Pass)
                    || (verdict.flaky && verdict.good == Some(i as u32));
                result.artifacts = dir.filter(|_| keep).map(|d| d.keep());
                if result.artifacts.is_some() {
                    self.kept_refs.borrow_mut().insert(self.refs(&cell, result.index));
                }
                result
            })
            .collect();
        CellResult { cell, verdict, repetitions: results, duration: started_at.map_or(Duration::ZERO, |s| s.elapsed()) }
    }

    /// Removes every builder of this run still alive, the registry refs it pushed (but those of kept
    /// artifacts), the run's directories when they hold nothing, and — when it deleted refs and no other
    /// run is active — the registry's unreferenced blobs.
    async fn clean_up(&self) -> Vec<InfraError> {
        let mut errors = self.machine.janitor.sweep(&self.machine.engine).await;
        let deleted = self.delete_refs().await.unwrap_or_else(|e| {
            errors.push(e);
            0
        });
        self.registry_share.lock().expect("registry lock").take();
        match locks::try_own_registry() {
            Ok(Some(_owned)) if deleted > 0 => {
                if let Err(e) = self.machine.registry.collect_garbage(&self.machine.engine).await {
                    errors.push(e);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!("another run uses the registry; it collects garbage when it ends"),
            Err(e) => errors.push(e),
        }
        let _ = std::fs::remove_dir(&self.run_dir);
        let _ = std::fs::remove_dir(&self.artifacts_dir);
        errors
    }

    /// Deletes the manifests this run pushed, but those of repetitions whose artifacts are kept; how many.
    async fn delete_refs(&self) -> Result<usize, InfraError> {
        if !self.cells.iter().any(|c| c.scenario.pushes_to_registry()) {
            return Ok(0);
        }
        let kept = self.kept_refs.borrow().clone();
        let mut deleted = 0;
        for (repo, run) in self.machine.registry.run_repositories().await? {
            let path = repo.split_once('/').map_or("", |(_, p)| p);
            if run == self.options.run_id && !kept.contains(path) {
                deleted += self.machine.registry.delete_repository(&repo).await?;
            }
        }
        Ok(deleted)
    }
}

struct Finished {
    result: RepetitionResult,
    dir: Option<tempfile::TempDir>,
}

/// Per cell: whether it started, the repetitions that finished, and the result once all did.
struct RunState {
    planned: Vec<u32>,
    started_at: Vec<Option<Instant>>,
    repetitions: Vec<Vec<Finished>>,
    done: Vec<Option<CellResult>>,
}

impl RunState {
    fn new(cells: &[Cell]) -> Self {
        RunState {
            planned: cells.iter().map(|c| c.repetitions).collect(),
            started_at: vec![None; cells.len()],
            repetitions: cells.iter().map(|_| Vec::new()).collect(),
            done: vec![None; cells.len()],
        }
    }

    /// Marks the cell started; true the first time.
    fn start(&mut self, cell: usize) -> bool {
        let first = self.started_at[cell].is_none();
        self.started_at[cell].get_or_insert_with(Instant::now);
        first
    }

    /// Records a finished repetition; returns the cell's repetitions once all of them finished.
    fn finish(
        &mut self,
        cell: usize,
        result: RepetitionResult,
        dir: Option<tempfile::TempDir>,
    ) -> Option<Vec<Finished>> {
        self.repetitions[cell].push(Finished { result, dir });
        (self.repetitions[cell].len() as u32 == self.planned[cell]).then(|| std::mem::take(&mut self.repetitions[cell]))
    }
}
