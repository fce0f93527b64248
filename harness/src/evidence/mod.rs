//! `bkcache evidence`: a directory to attach to an upstream issue or PR. It runs one cell (all of its
//! repetitions, artifacts kept), then writes beside them what a BuildKit maintainer needs without
//! bkcache: the scenario, its Dockerfile and context, the patches and buildkitd.toml, `reproduce.sh`
//! (the exact buildx commands, judged the same way), and a README with the versions, the verdict of
//! each repetition, why the steps missed, and the cacheconfig records at stake.

pub(crate) mod readme;
pub mod script;

use std::path::{Path, PathBuf};

use crate::errors::{ConfigError, InfraError};
use crate::events::{CellResult, RunReport};
use crate::execute::phase::CellPaths;
use crate::observe::cache::{read_layout, CacheRecord};
use crate::plan::Filter;
use crate::safe_fs::copy_tree;
use crate::scenario::{CacheRef, PhaseAction};
use crate::session::{self, Error, PlanOptions, Ran, RunOptions};

pub struct EvidenceOptions {
    pub scenario: PathBuf,
    pub builders: Option<PathBuf>,
    /// The builder profile of the cell.
    pub builder: String,
    /// Run it on this release (profiles `<release>-<snapshotter>`) instead of the builders file's.
    pub buildkit: Option<String>,
    pub repeat: Option<u32>,
    pub out: PathBuf,
    pub run: RunOptions,
}

const DOCKERFILE: &str = "Dockerfile";
const CONTEXT: &str = "context";
const BUILDKITD_TOML: &str = "buildkitd.toml";
const SCRIPT: &str = "reproduce.sh";

/// Plans the cell (refusing anything but one), runs it and writes the pack into `out`, which must not
/// exist or be empty: nothing is overwritten.
pub async fn evidence(
    options: &EvidenceOptions,
    interrupt: impl std::future::Future<Output = &'static str>,
) -> Result<RunReport, Error> {
    let usage = |message: String, fix: &str| -> Error { ConfigError::Usage { message, fix: fix.into() }.into() };
    let out = &options.out;
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(usage(format!("--out {}: not empty", out.display()), "give a new directory"));
    }
    let buildkit = match &options.buildkit {
        Some(text) => session::releases(text).await?.versions,
        None => Vec::new(),
    };
    let plan = session::plan(&PlanOptions {
        paths: vec![options.scenario.clone()],
        builders: options.builders.clone(),
        filter: Filter { builders: vec![options.builder.clone()], repeat: options.repeat, ..Filter::default() },
        buildkit,
        buildkit_source: Default::default(),
    })?;
    if plan.cells.len() != 1 {
        return Err(usage(
            format!("{} with --builder {} is {} cells", options.scenario.display(), options.builder, plan.cells.len()),
            "name one scenario file and one builder profile (see `bkcache list`)",
        ));
    }
    let registry = plan.profiles.pins.registry().to_owned();
    std::fs::create_dir_all(out).map_err(InfraError::io(format!("creating {}", out.display())))?;
    // every repetition's artifacts stay in the pack: `repetitions/<run id>/<cell>-r<n>.*`
    let run = RunOptions { artifacts_dir: out.join("repetitions"), keep_all_artifacts: true, ..options.run.clone() };
    let completed = session::run_plan(plan, run, interrupt, |_| {}).await;
    for e in &completed.clean_up {
        errln!("warning: clean-up: {}", crate::errors::with_sources(e));
    }
    let report = match completed.outcome? {
        Ran::Report(report) => report,
        Ran::InterruptedPreparing(signal) => {
            return Err(ConfigError::Usage {
                message: format!("{signal} while preparing the run: no pack written"),
                fix: "run it again".into(),
            }
            .into())
        }
    };
    write_pack(&report, &registry, out)?;
    Ok(report)
}

fn write_pack(report: &RunReport, registry: &str, out: &Path) -> Result<(), Error> {
    let result = &report.cells[0];
    let cell = &result.cell;
    let scenario = &cell.scenario;
    // a pack goes into public issues: links are copied as links, never as what they point to
    let copy = |from: &Path, to: &str| -> Result<(), InfraError> {
        copy_tree(from, &out.join(to)).map_err(InfraError::io(format!("copying {}", from.display())))
    };
    copy(&scenario.file, "scenario.toml")?;
    copy(&scenario.dockerfile, DOCKERFILE)?;
    copy_tree(&scenario.context, &out.join(CONTEXT))
        .map_err(InfraError::io(format!("copying {}", scenario.context.display())))?;
    if let Some(spec) = cell.profile.buildkit.as_ref().filter(|s| !s.patches.is_empty()) {
        std::fs::create_dir_all(out.join("patches")).map_err(InfraError::io("creating patches/"))?;
        for patch in &spec.patches {
            std::fs::write(out.join("patches").join(format!("{}.patch", patch.name())), &patch.content)
                .map_err(InfraError::io(format!("writing the patch {}", patch.name())))?;
        }
    }
    let toml = crate::host::builder::buildkitd_config(&cell.profile, registry, 1);
    std::fs::write(out.join(BUILDKITD_TOML), toml).map_err(InfraError::io("writing buildkitd.toml"))?;
    let script = script::render(&script::ScriptInputs {
        cell,
        registry,
        dockerfile: DOCKERFILE,
        context: CONTEXT,
        buildkitd_toml: BUILDKITD_TOML,
    });
    write_executable(&out.join(SCRIPT), &script).map_err(InfraError::io("writing reproduce.sh"))?;
    let representative = result.representative().and_then(|r| Some((r, r.artifacts.clone()?)));
    let stakes = match &representative {
        Some((r, dir)) => at_stake(result, r, dir, out)?,
        None => Vec::new(),
    };
    let explanation = representative.map(|(r, _)| crate::report::forensics::explanation(&r.observations));
    let text = readme::render(&readme::ReadmeInputs {
        report,
        result,
        explanation: explanation.as_deref(),
        stakes: &stakes,
        script: SCRIPT,
        repetitions: &out.join("repetitions"),
    });
    std::fs::write(out.join("README.md"), text).map_err(InfraError::io("writing README.md"))?;
    Ok(())
}

/// A step whose expectation broke, with what the caches its build imported hold for it.
pub struct Stake {
    pub phase: String,
    pub step: String,
    /// Why it ran, as the forensics say.
    pub why: Option<String>,
    /// Per imported cache: its name, and its records for the step (none: the cache has no record).
    pub caches: Vec<(String, Vec<CacheRecord>)>,
}

/// The broken step expectations of the repetition and the cacheconfig records behind them. Each
/// imported cache's whole cacheconfig is also written to `caches/`.
fn at_stake(
    result: &CellResult,
    repetition: &crate::events::RepetitionResult,
    dir: &Path,
    out: &Path,
) -> Result<Vec<Stake>, Error> {
    use crate::judge::Reason;
    let scenario = &result.cell.scenario;
    let paths = CellPaths { dir, refs: "", registry: "" };
    let caches_dir = out.join("caches");
    let mut stakes = Vec::new();
    for reason in &repetition.judgement.reasons {
        let Reason::StepRan { phase, step, why, .. } = reason else { continue };
        let imports: Vec<&CacheRef> = scenario
            .phases
            .iter()
            .filter(|p| p.name.as_str() == phase)
            .filter_map(|p| match &p.action {
                PhaseAction::Build(b) => Some(b.cache_from.iter()),
                PhaseAction::Prune(_) | PhaseAction::Drift { .. } | PhaseAction::DeleteLayers(_) => None,
            })
            .flatten()
            .collect();
        let mut caches = Vec::new();
        for target in imports {
            let summary = repetition.observations.caches.iter().find(|c| c.cache == target.to_string());
            let digests: Vec<&str> =
                summary.map(|s| s.entries_for(step).map(|e| e.digest.as_str()).collect()).unwrap_or_default();
            let Ok(cache) = read_layout(&paths.cache_artifact(target).dir) else { continue };
            std::fs::create_dir_all(&caches_dir).map_err(InfraError::io("creating caches/"))?;
            let file = caches_dir.join(format!("{}.cacheconfig.json", target.to_string().replace(':', "-")));
            let json = serde_json::to_string_pretty(&cache.config).expect("a cacheconfig serializes");
            std::fs::write(&file, json).map_err(InfraError::io(format!("writing {}", file.display())))?;
            let records =
                cache.config.records.iter().filter(|r| digests.contains(&r.digest.as_str())).cloned().collect();
            caches.push((target.to_string(), records));
        }
        stakes.push(Stake { phase: phase.clone(), step: step.clone(), why: why.clone(), caches });
    }
    Ok(stakes)
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
