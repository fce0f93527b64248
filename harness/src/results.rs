//! Per-repetition result files, and one report merged from many of them.
//!
//! A run split across processes or machines (the `cells` test target under nextest, one cell per test,
//! sharded with `--partition`) writes one file per cell and repetition: the repetition's observations,
//! with what it takes to plan the run again (scenario paths, builders file, filters, release). Merging
//! re-plans the run, takes each cell's repetitions from the files, and judges and aggregates them with
//! the same pure functions a single `bkcache run` uses — so the merged report is the one that run would
//! have written, verdict for verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::buildkit_spec::{EnsuredImage, Source};
use crate::errors::{ConfigError, InfraError};
use crate::events::{CellResult, RepetitionResult, RunReport};
use crate::judge;
use crate::observe::Observations;
use crate::plan::Filter;
use crate::session::Error;
use crate::session::{self, PlanOptions};

/// The file format's version: a merge refuses files of another.
const FORMAT: u32 = 2;

/// How a run was planned, as a result file keeps it (paths as given, relative to where the run ran).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub paths: Vec<PathBuf>,
    pub builders: Option<PathBuf>,
    pub scenarios: Vec<String>,
    pub profiles: Vec<String>,
    pub repeat: Option<u32>,
    /// The releases of a release-testing run (resolved: a range is recorded as the releases it meant).
    pub buildkit: Vec<String>,
}

impl PlanRecord {
    pub fn of(options: &PlanOptions) -> Self {
        PlanRecord {
            paths: options.paths.clone(),
            builders: options.builders.clone(),
            scenarios: options.filter.scenarios.clone(),
            profiles: options.filter.builders.clone(),
            repeat: options.filter.repeat,
            buildkit: options.buildkit.clone(),
        }
    }

    fn options(&self) -> PlanOptions {
        PlanOptions {
            paths: self.paths.clone(),
            builders: self.builders.clone(),
            filter: Filter {
                builders: self.profiles.clone(),
                scenarios: self.scenarios.clone(),
                repeat: self.repeat,
                ..Filter::default()
            },
            buildkit: self.buildkit.clone(),
            // the source only matters to building images, which a merge never does
            buildkit_source: Source::ModuleProxy,
        }
    }
}

/// One repetition of one cell, as a file.
#[derive(Debug, Serialize, Deserialize)]
pub struct RepetitionFile {
    pub format: u32,
    pub plan: PlanRecord,
    /// `scenario@profile`.
    pub cell: String,
    /// 0-based.
    pub repetition: u32,
    pub run_id: String,
    pub docker_engine: String,
    pub images: Vec<EnsuredImage>,
    pub observations: Observations,
    pub artifacts: Option<PathBuf>,
    pub duration_secs: f64,
}

/// Writes `<dir>/<cell>.r<n>.json` for every finished repetition of `report`.
pub fn write(dir: &Path, plan: &PlanRecord, report: &RunReport) -> Result<(), InfraError> {
    std::fs::create_dir_all(dir).map_err(InfraError::io(format!("creating {}", dir.display())))?;
    for cell in &report.cells {
        for r in &cell.repetitions {
            let file = RepetitionFile {
                format: FORMAT,
                plan: plan.clone(),
                cell: cell.cell.name(),
                repetition: r.index,
                run_id: report.run_id.clone(),
                docker_engine: report.docker_engine.clone(),
                images: report.images.clone(),
                observations: r.observations.clone(),
                artifacts: r.artifacts.clone(),
                duration_secs: r.duration.as_secs_f64(),
            };
            let path = dir.join(format!("{}.r{}.json", cell.cell.id().slug(), r.index + 1));
            let json = serde_json::to_string_pretty(&file).expect("result files serialize");
            std::fs::write(&path, json).map_err(InfraError::io(format!("writing {}", path.display())))?;
        }
    }
    Ok(())
}

/// Reads every result file in `dirs` and builds the report one run of all their cells would have.
pub fn merge(dirs: &[PathBuf]) -> Result<RunReport, Error> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(InfraError::io(format!("reading {}", dir.display())))?;
        for entry in entries {
            let path = entry.map_err(InfraError::io(format!("reading {}", dir.display())))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                paths.push(path);
            }
        }
    }
    // the order of a directory's entries is the file system's: the merge must not depend on it
    paths.sort();
    let mut files: Vec<RepetitionFile> = Vec::new();
    let mut seen: BTreeMap<(String, u32), PathBuf> = BTreeMap::new();
    for path in paths {
        let file = read(&path)?;
        if let Some(other) = seen.insert((file.cell.clone(), file.repetition), path.clone()) {
            return Err(usage(
                format!(
                    "{} and {} both hold repetition {} of `{}`",
                    other.display(),
                    path.display(),
                    file.repetition + 1,
                    file.cell
                ),
                "merge the result directories of one run, each shard once",
            ));
        }
        files.push(file);
    }
    let Some(first) = files.first() else {
        return Err(usage(
            format!("no result files (*.json) in {}", join(dirs)),
            "pass the directories the shards wrote",
        ));
    };
    let plan_record = first.plan.clone();
    if let Some(other) = files.iter().find(|f| f.plan != plan_record) {
        return Err(usage(
            format!("the result files come from different plans: {:?} and {:?}", plan_record, other.plan),
            "merge the shards of one run: same scenario paths, builders file, filters and release",
        ));
    }
    let plan = session::plan(&plan_record.options())?;
    let mut by_cell: BTreeMap<String, Vec<RepetitionFile>> = BTreeMap::new();
    let mut images: Vec<EnsuredImage> = Vec::new();
    let mut run_ids: Vec<String> = Vec::new();
    let docker_engine = first.docker_engine.clone();
    for f in files {
        for image in &f.images {
            if !images.iter().any(|i| i.tag == image.tag) {
                images.push(image.clone());
            }
        }
        if !run_ids.contains(&f.run_id) {
            run_ids.push(f.run_id.clone());
        }
        by_cell.entry(f.cell.clone()).or_default().push(f);
    }
    let missing: Vec<String> = plan.cells.iter().map(|c| c.name()).filter(|n| !by_cell.contains_key(n)).collect();
    if !missing.is_empty() {
        return Err(usage(
            format!("no results for {} planned cell(s): {}", missing.len(), missing.join(", ")),
            "merge the result directories of every shard (a shard that did not finish must run again)",
        ));
    }
    let mut cells = Vec::new();
    for cell in plan.cells {
        let files = by_cell.remove(&cell.name()).unwrap_or_default();
        if let Some(f) = files.iter().find(|f| f.repetition >= cell.repetitions) {
            return Err(usage(
                format!(
                    "a result of repetition {} of `{}`, planned {} times",
                    f.repetition + 1,
                    f.cell,
                    cell.repetitions
                ),
                "merge the result directories of one run",
            ));
        }
        let mut repetitions: Vec<RepetitionResult> = files
            .into_iter()
            .map(|f| RepetitionResult {
                index: f.repetition,
                judgement: judge::judge(&cell, &f.observations),
                observations: f.observations,
                artifacts: f.artifacts,
                duration: Duration::from_secs_f64(f.duration_secs),
            })
            .collect();
        repetitions.sort_by_key(|r| r.index);
        let judgements: Vec<&judge::Judgement> = repetitions.iter().map(|r| &r.judgement).collect();
        let verdict = judge::aggregate(cell.repetitions, &judgements);
        let duration = repetitions.iter().map(|r| r.duration).sum();
        cells.push(CellResult { cell, verdict, repetitions, duration });
    }
    if let Some(stray) = by_cell.keys().next() {
        return Err(usage(
            format!("results for `{stray}`, which the recorded plan does not have"),
            "merge from the directory the shards ran in, with the same scenario files",
        ));
    }
    let duration = cells.iter().map(|c: &CellResult| c.duration).sum();
    Ok(RunReport { run_id: run_ids.join("+"), docker_engine, images, cells, interrupted: None, duration })
}

/// The longest a repetition's recorded duration may be (a week): anything else is not a real run's.
const MAX_DURATION_SECS: f64 = 7.0 * 24.0 * 3600.0;

fn read(path: &Path) -> Result<RepetitionFile, Error> {
    let bytes = crate::safe_fs::read_regular(path, crate::safe_fs::DOCUMENT_LIMIT)
        .map_err(InfraError::io(format!("reading {}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let file: RepetitionFile = serde_json::from_str(&text).map_err(|e| {
        usage(format!("{}: not a bkcache result file: {e}", path.display()), "pass only result directories")
    })?;
    if file.format != FORMAT {
        return Err(usage(
            format!("{}: result format {} (this bkcache reads {FORMAT})", path.display(), file.format),
            "merge with the bkcache that wrote the files",
        ));
    }
    if !(0.0..=MAX_DURATION_SECS).contains(&file.duration_secs) {
        return Err(usage(
            format!("{}: duration_secs {} is not a repetition's duration", path.display(), file.duration_secs),
            "pass result files bkcache wrote, unedited",
        ));
    }
    Ok(file)
}

fn usage(message: String, fix: &str) -> Error {
    ConfigError::Usage { message, fix: fix.to_owned() }.into()
}

fn join(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}
