//! The command line: parses arguments, wires the layers together (scenario → plan → runner →
//! reporters), handles Ctrl-C, and maps the outcome to an exit code. No logic of its own.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use crate::buildkit_spec::{BuildkitSpec, Patch, Source};
use crate::errors::{ConfigError, InfraError};
use crate::events::RunReport;
use crate::host::docker::Engine;
use crate::host::registry::Registry;
use crate::images::buildkit;
use crate::inspect;
use crate::pins::Pins;
use crate::plan::Filter;
use crate::report;
use crate::scenario::MAX_REPEAT;
use crate::session::{self, Error, PlanOptions, Ran, RunOptions};

/// Exit codes (also in the README).
pub const EXIT_OK: i32 = 0;
pub const EXIT_REGRESSION: i32 = 1;
pub const EXIT_INFRA_OR_USAGE: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser)]
#[command(name = "bkcache", version, about = "Reproduce BuildKit cache regressions on real BuildKit")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (repeat for more); or set RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios on their builders and print the results table.
    Run(RunArgs),
    /// Validate and lint scenarios and builder profiles and list the cells a run would have (no docker).
    List(PlanArgs),
    /// Validate scenarios and builder profiles, and reject expectations BuildKit cannot meet by design
    /// (no docker needed).
    Lint(PlanArgs),
    /// BuildKit images made from the Go module.
    #[command(subcommand)]
    Buildkit(BuildkitCommand),
    /// Remove what runs that no longer run left behind: builders (containers, volumes), registry refs
    /// and, after some days, artifacts; then the registry's unreferenced blobs when no run is active.
    Gc(GcArgs),
    /// Why steps were not CACHED: a repetition's artifacts observed again — each exported cache's
    /// records mapped to the steps they cache, and each step of a cache-importing build that ran,
    /// explained.
    Explain(ExplainArgs),
    /// Run one of your own builds (`docker buildx build` arguments after `--`) and keep what `explain`
    /// needs: its rawjson steps, the caches it imports and exports, the builder's log. Capture the build
    /// that exported the cache, then the one that imported it, into the same DIR.
    Capture(CaptureArgs),
    /// What an exported cache holds, per step.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// The first BuildKit release (or commit) where a scenario's cell goes bad, by binary search between
    /// a good and a bad one; images are built on demand, versions that do not build are skipped.
    Bisect(BisectArgs),
    /// Run one cell (scenario × builder) and write a directory to attach to an upstream issue or PR:
    /// the scenario, Dockerfile and context, patches, buildkitd.toml, `reproduce.sh` (the exact buildx
    /// commands, judged the same way, no bkcache needed), the versions, the verdict of each repetition,
    /// the explanation and the cacheconfig records at stake. Exit code as for `run`.
    Evidence(EvidenceArgs),
    /// Reports built from result files.
    #[command(subcommand)]
    Report(ReportCommand),
    /// What `ci/setup.sh` asks of bkcache: images made from this machine's files, the local eStargz bases.
    #[command(subcommand)]
    Setup(SetupCommand),
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Import an image made from a minimal root filesystem (busybox and its applets) plus the given
    /// binaries with their libraries and files: no Dockerfile build, no pull.
    Image(SetupImageArgs),
    /// Push the local eStargz bases (base-a, base-b) to the local registry when it lacks them, built on a
    /// builder of the newest pinned BuildKit image, and check their layers carry the eStargz annotations.
    Bases(SetupBasesArgs),
}

#[derive(Args)]
struct SetupImageArgs {
    /// The image's tag.
    #[arg(long)]
    tag: String,
    /// `SRC:DEST`: the host binary SRC at DEST in the image, with the libraries it links (repeatable).
    #[arg(long = "binary", value_name = "SRC:DEST")]
    binaries: Vec<String>,
    /// `SRC:DEST`: the host file SRC at DEST in the image (repeatable).
    #[arg(long = "file", value_name = "SRC:DEST")]
    files: Vec<String>,
    /// An empty directory in the image (repeatable).
    #[arg(long = "dir", value_name = "DEST")]
    dirs: Vec<String>,
    /// A Dockerfile instruction for the image's config, e.g. `ENTRYPOINT ["/usr/bin/x"]` (repeatable).
    #[arg(long = "change")]
    changes: Vec<String>,
}

#[derive(Args)]
struct SetupBasesArgs {
    /// The pins file: the registry to push to, and BUILDKIT_NEWEST, whose image builds the bases.
    #[arg(long, default_value = "ci/versions.env")]
    pins: PathBuf,
    /// The BuildKit image of the builder that builds them [default: BUILDKIT_NEWEST's, under the pins'
    /// registry].
    #[arg(long)]
    image: Option<String>,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// One report from the result files of a run's shards (`bkcache run --results-dir`, or the cells
    /// test target's BKCACHE_RESULTS_DIR): the verdicts one run of all their cells would have given.
    /// Run it where the shards ran (scenario paths are re-read as recorded).
    Merge(MergeArgs),
}

#[derive(Args)]
struct MergeArgs {
    /// Directories of result files.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    #[command(flatten)]
    reports: ReportPaths,
}

#[derive(Args)]
struct BisectArgs {
    /// The scenario file (one scenario).
    scenario: PathBuf,
    /// A release (or, with --commits, a version or commit) where the cell is good.
    #[arg(long)]
    good: String,
    /// One where it is bad: a later one, to find the first bad release (or commit); an earlier release,
    /// to find the first good one again (the fix).
    #[arg(long)]
    bad: String,
    /// The snapshotter of the cell.
    #[arg(long, value_enum, default_value = "stargz")]
    snapshotter: crate::profiles::Snapshotter,
    /// Bisect these commits instead of the releases between: a file of hashes as `git rev-list
    /// --first-parent GOOD..BAD` prints them (newest first), each built as its Go pseudo-version.
    #[arg(long)]
    commits: Option<PathBuf>,
    /// Build every version from this clone of moby/buildkit (releases by tag, commits by hash, with
    /// its vendored modules) instead of the Go module proxy, which serves releases only.
    #[arg(long, value_name = "DIR")]
    git: Option<PathBuf>,
    /// Run the cell N times per version: bad when any repetition is bad.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_REPEAT as i64))]
    repeat: Option<u32>,
    /// What makes a version bad: `broke` (an expectation broke, known issues aside), `build-failure`
    /// (BuildKit failed a build), or `step:<text>` (an expectation on a step naming the text broke).
    #[arg(long, default_value = "broke", value_parser = crate::bisect::BadWhen::parse)]
    bad_when: crate::bisect::BadWhen,
    /// Builder profiles file (only its pins are used: the registry, the bases).
    #[arg(long, default_value = "scenarios/builders.toml")]
    builders: PathBuf,
    /// Where probes that do not pass keep their artifacts.
    #[arg(long, default_value = "bkcache-artifacts")]
    artifacts_dir: PathBuf,
    /// The run id probes are named after (`<id>-<n>`) [default: generated].
    #[arg(long, value_parser = crate::names::parse_run_id)]
    run_id: Option<String>,
}

#[derive(Args)]
struct EvidenceArgs {
    /// The scenario file (one scenario).
    scenario: PathBuf,
    /// The builder profile of the cell (with --buildkit: `<release>-<snapshotter>`).
    #[arg(long)]
    builder: String,
    /// Builder profiles file.
    #[arg(long, default_value = "scenarios/builders.toml")]
    builders: PathBuf,
    /// Run the cell on this BuildKit release instead of the builders file's profiles.
    #[arg(long)]
    buildkit: Option<String>,
    /// Repetitions [default: the scenario's `repeat`].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_REPEAT as i64))]
    repeat: Option<u32>,
    /// The directory to write (new or empty).
    #[arg(long)]
    out: PathBuf,
    /// The run id its builders are named after [default: generated].
    #[arg(long, value_parser = crate::names::parse_run_id)]
    run_id: Option<String>,
}

#[derive(Args)]
struct ExplainArgs {
    /// A repetition's artifacts directory (`<artifacts dir>/<run id>/<cell>-r<n>.*`).
    dir: PathBuf,
    /// Print JSON (the observations) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CaptureArgs {
    /// Where the captured builds go (created; each capture adds a phase).
    dir: PathBuf,
    /// This build's name in DIR [default: build-<n>].
    #[arg(long)]
    phase: Option<String>,
    /// buildkitd's debug address, reachable from here, when the builder runs with
    /// `--save-cache-debug --debugaddr=ADDR` (its key plaintexts map cache records to steps).
    #[arg(long, value_name = "HOST:PORT")]
    debug_addr: Option<String>,
    /// The build's time limit, in seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Read caches from registries (and a debug address) off loopback too; by default bkcache reads
    /// only from this machine.
    #[arg(long)]
    allow_network: bool,
    /// What follows `docker buildx build` (bkcache adds `--progress=rawjson`).
    #[arg(last = true, required = true, num_args = 1..)]
    build: Vec<String>,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Records (with the steps they cache), layers and blobs of one cache.
    Inspect(CacheInspectArgs),
    /// Per step: present in both, missing, without layers, or with other blobs.
    Diff(CacheDiffArgs),
    /// Records an exported cache should carry a result for and does not — a silently dropped export
    /// (moby/buildkit#6893): exit 1 when it finds any. A CI step after `docker buildx build --cache-to`.
    Audit(CacheAuditArgs),
}

#[derive(Args)]
struct CacheAuditArgs {
    /// A cache directory (a `--cache-to type=local` dest) or `<registry>/<repo>:<tag>`.
    source: String,
    /// How the cache was exported: a mode=min export leaves records below the image without results.
    #[arg(long, value_enum, default_value = "max")]
    mode: crate::scenario::CacheMode,
    /// The exporting build's key dump (buildkitd's `/debug/cache/all`, as `capture --debug-addr` keeps
    /// it: `<phase>.keys.json`): names what each flagged record caches.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// The exporting build's `--progress=rawjson` output (`<phase>.rawjson`): with `--keys`, names the
    /// Dockerfile step of each flagged record.
    #[arg(long, requires = "keys")]
    rawjson: Option<PathBuf>,
    /// The pins file naming the local registry.
    #[arg(long, default_value = "ci/versions.env")]
    pins: PathBuf,
}

#[derive(Args)]
struct CacheSource {
    /// Which exported cache of a repetition (e.g. `local:main`) [default: its first].
    #[arg(long)]
    cache: Option<String>,
    /// The pins file naming the local registry.
    #[arg(long, default_value = "ci/versions.env")]
    pins: PathBuf,
}

#[derive(Args)]
struct CacheInspectArgs {
    /// A repetition's artifacts directory, a cache directory (OCI layout) or `<registry>/<repo>:<tag>`.
    source: String,
    #[command(flatten)]
    from: CacheSource,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CacheDiffArgs {
    /// The first cache (as for `cache inspect`).
    a: String,
    /// The second cache.
    b: String,
    #[command(flatten)]
    from: CacheSource,
    /// Also list the steps both caches hold alike.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct GcArgs {
    /// Where runs kept their artifacts.
    #[arg(long, default_value = "bkcache-artifacts")]
    artifacts_dir: PathBuf,
    /// Remove a dead run's artifacts (and the registry refs kept with them) once this many days old.
    #[arg(long, default_value_t = 7)]
    older_than_days: u64,
    /// The pins file naming the local registry and its container.
    #[arg(long, default_value = "ci/versions.env")]
    pins: PathBuf,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum BuildkitCommand {
    /// Build (or reuse) the image of a BuildKit release plus patches; prints its tag.
    Build(BuildkitBuildArgs),
    /// The releases the Go module proxy lists, whether each builds here (as learnt from building its
    /// image or from `--check`), and whether its image exists.
    Releases(ReleasesArgs),
}

#[derive(Args)]
struct ReleasesArgs {
    /// Which releases: a range such as ">=0.24.0, <0.27.0", or releases `v0.24.0,v0.25.0`
    /// [default: from BUILDKIT_BASELINE on].
    releases: Option<String>,
    /// Find out for the releases not known yet whether their dependencies are served (downloads the
    /// packages the build needs; compiles nothing).
    #[arg(long)]
    check: bool,
    /// The pins file (BUILDKIT_BASELINE, the registry images are named under).
    #[arg(long, default_value = "ci/versions.env")]
    pins: PathBuf,
}

#[derive(Args)]
struct BuildkitBuildArgs {
    /// A release of github.com/moby/buildkit, e.g. v0.33.1 (with --git, a commit too).
    #[arg(long)]
    version: String,
    /// Build from this clone of moby/buildkit instead of the Go module proxy.
    #[arg(long, value_name = "DIR")]
    git: Option<PathBuf>,
    /// A patch to apply, in order (repeatable).
    #[arg(long = "patch")]
    patches: Vec<PathBuf>,
    /// The pins file naming the local registry the image is named under.
    #[arg(long, default_value = "ci/versions.env")]
    pins: PathBuf,
}

#[derive(Args)]
struct PlanArgs {
    /// Scenario files or directories of them.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Builder profiles file [default: builders.toml beside the first scenario path].
    #[arg(long)]
    builders: Option<PathBuf>,
    /// Only these builder profiles (repeatable).
    #[arg(long = "builder")]
    only_builders: Vec<String>,
    /// Only these scenarios, by name (repeatable).
    #[arg(long = "scenario")]
    only_scenarios: Vec<String>,
    /// Release testing: run every scenario on these BuildKit releases (built from the Go module on
    /// demand) with each snapshotter, instead of the builders file's profiles: `v0.24.0,v0.25.0`, or
    /// a range of the releases the Go module proxy lists (`">=0.24.0, <0.27.0"`).
    #[arg(long, value_name = "RELEASES")]
    buildkit: Option<String>,
    /// Run each cell N times, each from a fresh builder's state (overrides the scenarios' `repeat`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_REPEAT as i64))]
    repeat: Option<u32>,
}

/// The report files to write.
#[derive(Args)]
struct ReportPaths {
    /// Write the JSON report here.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Write a Markdown table (rows: BuildKit builds, columns: snapshotters) here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write a JUnit XML report (one test case per cell) here.
    #[arg(long)]
    junit: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    reports: ReportPaths,
    /// Also write one result file per cell and repetition here, for `bkcache report merge`.
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// How many repetitions run at once, each on its own builder [default: one more than the CPUs].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,
    /// Where cells that do not pass keep their rawjson logs, buildkitd log and exported caches.
    #[arg(long, default_value = "bkcache-artifacts")]
    artifacts_dir: PathBuf,
    /// Keep the artifacts of passing cells too (to compare them with failing ones).
    #[arg(long)]
    keep_artifacts: bool,
    /// Create a new builder for every repetition instead of resetting one that finished a repetition
    /// (stopped, given an empty state root, restarted: equivalent, and cheaper).
    #[arg(long)]
    fresh_builders: bool,
    /// Name this run (lowercase letters, digits, '-'): builders are `bkcache-<run id>.<n>.<profile>` and
    /// artifacts go to `<artifacts dir>/<run id>/` [default: derived from the time and process id].
    #[arg(long, value_parser = crate::names::parse_run_id)]
    run_id: Option<String>,
}

pub async fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let outcome = match cli.command {
        Command::List(args) => list(&args).await,
        Command::Lint(args) => lint(&args).await,
        Command::Run(args) => run(&args).await,
        Command::Buildkit(BuildkitCommand::Build(args)) => buildkit_build(&args).await,
        Command::Buildkit(BuildkitCommand::Releases(args)) => buildkit_releases(&args).await,
        Command::Gc(args) => gc(&args).await,
        Command::Explain(args) => explain(&args),
        Command::Capture(args) => capture(&args).await,
        Command::Cache(CacheCommand::Inspect(args)) => cache_inspect(&args).await,
        Command::Cache(CacheCommand::Diff(args)) => cache_diff(&args).await,
        Command::Cache(CacheCommand::Audit(args)) => cache_audit(&args).await,
        Command::Report(ReportCommand::Merge(args)) => report_merge(&args),
        Command::Bisect(args) => bisect(&args).await,
        Command::Evidence(args) => evidence(&args).await,
        Command::Setup(SetupCommand::Image(args)) => setup_image(&args).await,
        Command::Setup(SetupCommand::Bases(args)) => setup_bases(&args).await,
    };
    outcome.unwrap_or_else(|e| {
        errln!("error: {}", crate::errors::with_sources(&e));
        EXIT_INFRA_OR_USAGE
    })
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "bkcache=info",
        _ => "bkcache=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    // a closed stderr is no reason to stop (see `output`): tracing's own complaint would panic
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false).init();
}

impl PlanArgs {
    /// The plan options, with `--buildkit` resolved (a range asks the Go module proxy).
    async fn options(&self) -> Result<PlanOptions, Error> {
        let buildkit = match &self.buildkit {
            Some(text) => {
                let resolved = session::releases(text).await?;
                for (version, reason) in &resolved.skipped {
                    errln!("skipping BuildKit {version}: it does not build here: {reason}");
                }
                if resolved.versions.is_empty() {
                    return Err(ConfigError::Usage {
                        message: format!("--buildkit {text}: no release that builds here matches"),
                        fix: "see `bkcache buildkit releases`".into(),
                    }
                    .into());
                }
                resolved.versions
            }
            None => Vec::new(),
        };
        Ok(PlanOptions {
            paths: self.paths.clone(),
            builders: self.builders.clone(),
            filter: Filter {
                builders: self.only_builders.clone(),
                scenarios: self.only_scenarios.clone(),
                ignore_scenario_builders: false,
                repeat: self.repeat,
            },
            buildkit,
            buildkit_source: Source::ModuleProxy,
        })
    }
}

/// Plans, printing the plan's warnings (to stderr: they do not stop anything).
fn plan_with_warnings(options: &PlanOptions) -> Result<session::Plan, Error> {
    let plan = session::plan(options)?;
    for warning in &plan.warnings {
        errln!("warning: {warning}");
    }
    Ok(plan)
}

async fn list(args: &PlanArgs) -> Result<i32, Error> {
    let plan = plan_with_warnings(&args.options().await?)?;
    for cell in &plan.cells {
        let known: Vec<String> = cell.known_issues.iter().map(|k| k.id.to_string()).collect();
        let known = if known.is_empty() { String::new() } else { format!("  known issue: {}", known.join(", ")) };
        let reps = if cell.repetitions > 1 { format!("  x{}", cell.repetitions) } else { String::new() };
        outln!(
            "{}  image {}  snapshotter {}{reps}{known}",
            cell.name(),
            cell.profile.image,
            cell.profile.snapshotter.as_str()
        );
    }
    Ok(EXIT_OK)
}

async fn lint(args: &PlanArgs) -> Result<i32, Error> {
    let plan = plan_with_warnings(&args.options().await?)?;
    let scenarios = report::ordered(plan.cells.iter().map(|c| c.scenario.name.as_str()));
    let warnings = match plan.warnings.len() {
        0 => String::new(),
        n => format!(", {n} warning{}", if n == 1 { "" } else { "s" }),
    };
    outln!("{} scenarios, {} cells: no lint findings{warnings}", scenarios.len(), plan.cells.len());
    Ok(EXIT_OK)
}

async fn buildkit_build(args: &BuildkitBuildArgs) -> Result<i32, Error> {
    let pins = Pins::load(&args.pins)?;
    let source = git_source(args.git.as_deref())?;
    let version = match (crate::profiles::buildkit_version(&args.version), &source) {
        (Ok(version), _) => version,
        (Err(_), Source::Git(repo)) => crate::images::releases::git_version(repo, &args.version).await?,
        (Err(problem), Source::ModuleProxy) => {
            return Err(ConfigError::Usage {
                message: format!("--version: {problem}"),
                fix: "give a BuildKit release such as v0.33.1 (or a commit, with --git DIR)".into(),
            }
            .into())
        }
    };
    let patches = args.patches.iter().map(|p| Patch::read(p)).collect::<Result<_, _>>()?;
    let spec = BuildkitSpec { version, source, patches };
    let engine = Engine::connect().await?;
    let image = buildkit::ensure(&engine, &spec, pins.registry()).await?;
    outln!("{} ({})", image.tag, if image.built { "built" } else { "reused" });
    Ok(EXIT_OK)
}

/// `SRC:DEST` of `--binary` / `--file`.
fn source_and_dest<'a>(flag: &str, value: &'a str) -> Result<(&'a Path, &'a str), ConfigError> {
    match value.split_once(':') {
        Some((src, dest)) if !src.is_empty() && dest.starts_with('/') => Ok((Path::new(src), dest)),
        _ => Err(ConfigError::Usage {
            message: format!("{flag} {value}: not SRC:DEST"),
            fix: format!("give the host path and the absolute path in the image, e.g. {flag} /usr/bin/x:/usr/bin/x"),
        }),
    }
}

async fn setup_image(args: &SetupImageArgs) -> Result<i32, Error> {
    let mut rootfs = crate::images::rootfs::Rootfs::new();
    for dir in &args.dirs {
        rootfs = rootfs.dir(dir);
    }
    for value in &args.binaries {
        let (src, dest) = source_and_dest("--binary", value)?;
        rootfs = rootfs.binary(src, dest);
    }
    for value in &args.files {
        let (src, dest) = source_and_dest("--file", value)?;
        let content = crate::safe_fs::read_regular(src, crate::safe_fs::DOCUMENT_LIMIT)
            .map_err(InfraError::io(format!("reading {}", src.display())))?;
        rootfs = rootfs.file(dest, content);
    }
    let engine = Engine::connect().await?;
    engine.import_image(&args.tag, rootfs.tar().await?, args.changes.clone()).await?;
    outln!("{}", args.tag);
    Ok(EXIT_OK)
}

async fn setup_bases(args: &SetupBasesArgs) -> Result<i32, Error> {
    let pins = Pins::load(&args.pins)?;
    let image = match &args.image {
        Some(image) => image.clone(),
        None => {
            let newest = pins.get("BUILDKIT_NEWEST").ok_or_else(|| ConfigError::Usage {
                message: format!("{} sets no BUILDKIT_NEWEST", args.pins.display()),
                fix: "pin the newest BuildKit release there, e.g. BUILDKIT_NEWEST=v0.33.1, or give --image".into(),
            })?;
            BuildkitSpec::release(newest.to_owned()).tag(pins.registry())
        }
    };
    // the bases' builder belongs to a run of its own, alive (so `gc` leaves it) while this holds
    let run_id = format!("setup-{}", std::process::id());
    let _alive = crate::host::locks::hold_run(&run_id)?;
    let machine = crate::host::Machine {
        engine: Engine::connect().await?,
        registry: Registry::new(&pins),
        janitor: crate::host::builder::Janitor::new(&run_id, false),
    };
    let ensured = crate::images::bases::ensure_local(&machine, &image).await;
    // what a failure left of the bases' builder
    for e in machine.janitor.sweep(&machine.engine).await {
        errln!("warning: clean-up: {}", crate::errors::with_sources(&e));
    }
    for (reference, built) in ensured? {
        outln!("{reference} ({})", if built { "built" } else { "present" });
    }
    Ok(EXIT_OK)
}

async fn evidence(args: &EvidenceArgs) -> Result<i32, Error> {
    let options = crate::evidence::EvidenceOptions {
        scenario: args.scenario.clone(),
        builders: Some(args.builders.clone()),
        builder: args.builder.clone(),
        buildkit: args.buildkit.clone(),
        repeat: args.repeat,
        out: args.out.clone(),
        run: RunOptions {
            run_id: args.run_id.clone().unwrap_or_else(default_run_id),
            artifacts_dir: args.out.clone(),
            keep_all_artifacts: true,
            jobs: 1,
            fresh_builders: false,
        },
    };
    let report = crate::evidence::evidence(&options, interrupted()).await?;
    out!("{}", report::terminal::summary(&report));
    outln!("evidence: {} (README.md, reproduce.sh)", args.out.display());
    Ok(report::exit_code(&report))
}

/// `--git DIR`: a git repository, checked before anything runs.
fn git_source(dir: Option<&Path>) -> Result<Source, Error> {
    let Some(dir) = dir else { return Ok(Source::ModuleProxy) };
    let is_repo = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--git-dir"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !is_repo {
        return Err(ConfigError::Usage {
            message: format!("--git {}: not a git repository", dir.display()),
            fix: "give a clone of https://github.com/moby/buildkit (bare or not) with its tags".into(),
        }
        .into());
    }
    Ok(Source::Git(dir.to_owned()))
}

async fn bisect(args: &BisectArgs) -> Result<i32, Error> {
    let commits = match &args.commits {
        Some(path) => crate::toml_file::read_input(path)?
            .lines()
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect(),
        None => Vec::new(),
    };
    let options = crate::bisect::BisectOptions {
        scenario: args.scenario.clone(),
        builders: Some(args.builders.clone()),
        snapshotter: args.snapshotter,
        good: args.good.clone(),
        bad: args.bad.clone(),
        commits,
        source: git_source(args.git.as_deref())?,
        repeat: args.repeat,
        bad_when: args.bad_when.clone(),
        run: RunOptions {
            run_id: args.run_id.clone().unwrap_or_else(default_run_id),
            artifacts_dir: args.artifacts_dir.clone(),
            keep_all_artifacts: false,
            jobs: 1,
            fresh_builders: false,
        },
    };
    let started = std::time::Instant::now();
    let outcome = crate::bisect::bisect(&options, interrupted, |step| {
        let probe = step.probe.to_string();
        outln!("{:<42} {:<5} {:<40} {:.0}s", step.version, probe, step.verdict, step.duration.as_secs_f64());
    })
    .await?;
    let took = started.elapsed().as_secs_f64();
    let (new, old) = match outcome.direction {
        crate::bisect::Direction::Regression => ("bad", "good"),
        crate::bisect::Direction::Fix => ("good", "bad"),
    };
    if outcome.untestable.is_empty() {
        outln!("first {new}: {} (last {old}: {}); {took:.0}s", outcome.first_new, outcome.last_old);
    } else {
        outln!(
            "first {new}: one of {}, {} (untestable between them; last {old}: {}); {took:.0}s",
            outcome.untestable.join(", "),
            outcome.first_new,
            outcome.last_old
        );
    }
    Ok(EXIT_OK)
}

async fn buildkit_releases(args: &ReleasesArgs) -> Result<i32, Error> {
    use crate::images::releases::{self, BuildStatuses, Selection};
    let pins = Pins::load(&args.pins)?;
    let text = match &args.releases {
        Some(text) => text.clone(),
        None => format!(">={}", pins.get("BUILDKIT_BASELINE").unwrap_or("v0.24.0").trim_start_matches('v')),
    };
    let selection = Selection::parse(&text)?;
    let versions: Vec<String> = match &selection {
        Selection::Versions(v) => v.clone(),
        // every listed one, those known not to build included: this command says why they do not
        Selection::Range(req) => {
            releases::listed().await?.iter().filter(|v| req.matches(v)).map(|v| format!("v{v}")).collect()
        }
    };
    let mut known = BuildStatuses::load();
    // the image column needs the engine; without it the rest is still worth printing
    let engine = Engine::connect().await.ok();
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["release", "image", "builds here"]);
    for version in &versions {
        if args.check && known.get(version).is_none() {
            errln!("checking {version} ...");
            known.record(version, releases::check(version).await)?;
        }
        let spec = BuildkitSpec::release(version.clone());
        let image = match &engine {
            Some(engine) if engine.has_image(&spec.tag(pins.registry())).await? => "present",
            Some(_) => "-",
            None => "?",
        };
        let builds = match known.get(version) {
            Some(s) if s.builds => format!("yes ({})", s.how),
            Some(s) => format!("no ({}): {}", s.how, s.reason.lines().last().unwrap_or_default()),
            None if image == "present" => "yes (its image is here)".to_owned(),
            None => "not known (--check finds out)".to_owned(),
        };
        table.add_row([version.as_str(), image, &builds]);
    }
    outln!("{table}");
    if engine.is_none() {
        outln!("(image: ? = the docker engine is not reachable)");
    }
    Ok(EXIT_OK)
}

async fn capture(args: &CaptureArgs) -> Result<i32, Error> {
    let timeout = std::time::Duration::from_secs(args.timeout);
    let done = crate::capture::capture(
        &args.dir,
        args.phase.as_deref(),
        args.debug_addr.as_deref(),
        &args.build,
        timeout,
        args.allow_network,
    )
    .await?;
    let outcome = if done.succeeded { "succeeded" } else { "failed (BuildKit's error is in its rawjson)" };
    outln!("captured phase `{}` into {}: the build {outcome}", done.phase, args.dir.display());
    for why in &done.skipped {
        outln!("  cache not captured: {why}");
    }
    if !done.builder_log {
        outln!("  no builder log: not a docker-container builder (failed cache loads cannot be named)");
    }
    if !done.key_dumps {
        outln!("  no key plaintexts (--debug-addr): records cannot be mapped to steps");
    }
    outln!("then: bkcache explain {}", args.dir.display());
    Ok(if done.succeeded { EXIT_OK } else { EXIT_REGRESSION })
}

fn explain(args: &ExplainArgs) -> Result<i32, Error> {
    let observed = inspect::observe_repetition(&args.dir)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&observed).expect("observations serialize"));
    } else {
        out!("{}", report::forensics::explanation(&observed));
    }
    Ok(EXIT_OK)
}

impl CacheSource {
    async fn load(&self, source: &str) -> Result<crate::observe::forensics::CacheSummary, Error> {
        // the pins file names the registry: a directory needs neither, so `cache inspect DIR` works anywhere
        let registry = || Ok(Registry::new(&Pins::load(&self.pins)?));
        Ok(inspect::load_cache(source, self.cache.as_deref(), registry).await?)
    }
}

async fn cache_inspect(args: &CacheInspectArgs) -> Result<i32, Error> {
    let summary = args.from.load(&args.source).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary).expect("a summary serializes"));
    } else {
        out!("{}", report::forensics::cache(&summary));
    }
    Ok(EXIT_OK)
}

async fn cache_diff(args: &CacheDiffArgs) -> Result<i32, Error> {
    let (a, b) = (args.from.load(&args.a).await?, args.from.load(&args.b).await?);
    out!("{}", report::forensics::diff(&args.a, &args.b, &inspect::diff(&a, &b), args.all));
    Ok(EXIT_OK)
}

async fn cache_audit(args: &CacheAuditArgs) -> Result<i32, Error> {
    let registry = || Pins::load(&args.pins).map(|pins| Registry::new(&pins));
    let exported = inspect::load_exported(&args.source, registry).await?;
    let records = exported.config.records.len();
    let findings = inspect::audit(exported, args.mode, args.keys.as_deref(), args.rawjson.as_deref())?;
    for f in &findings {
        let label = f.label.as_deref().map(|l| format!("  {l}")).unwrap_or_default();
        outln!("{}: record {}{label}", f.finding.rule.as_str(), f.finding.record);
    }
    outln!("{}: {records} records, {} findings", args.source, findings.len());
    Ok(if findings.is_empty() { EXIT_OK } else { EXIT_REGRESSION })
}

async fn gc(args: &GcArgs) -> Result<i32, Error> {
    crate::gc::check_artifacts_dir(&args.artifacts_dir)?;
    let pins = Pins::load(&args.pins)?;
    let engine = Engine::connect().await?;
    let registry = crate::host::registry::Registry::new(&pins);
    let older_than = std::time::Duration::from_secs(args.older_than_days.saturating_mul(24 * 3600));
    let collected = crate::gc::collect(&engine, &registry, &args.artifacts_dir, older_than, args.dry_run).await?;
    let verb = if args.dry_run { "would remove" } else { "removed" };
    for builder in &collected.builders {
        outln!("{verb} builder {builder}");
    }
    for repo in &collected.repositories {
        outln!("{verb} registry repository {repo}");
    }
    for dir in &collected.artifact_dirs {
        outln!("{verb} artifacts {}", dir.display());
    }
    for what in &collected.unmarked {
        outln!("left {what}: named like bkcache's, but without bkcache's mark");
    }
    let blobs = match (args.dry_run, collected.registry_collected) {
        (true, _) => "not collected (dry run)",
        (false, true) => "collected",
        (false, false) => "not collected (a run is active)",
    };
    outln!(
        "{} builders, {} registry repositories ({} manifests), {} artifact directories of dead runs {verb_past}; registry blobs {blobs}",
        collected.builders.len(),
        collected.repositories.len(),
        collected.manifests,
        collected.artifact_dirs.len(),
        verb_past = if args.dry_run { "to remove" } else { "removed" },
    );
    Ok(EXIT_OK)
}

fn report_merge(args: &MergeArgs) -> Result<i32, Error> {
    let report = crate::results::merge(&args.dirs)?;
    let results: Vec<PathBuf> = args
        .dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .collect();
    let mut reports = ReportFiles::open(&args.reports, &report.run_id, &results)?;
    reports.write(&report)?;
    out!("{}", report::terminal::summary(&report));
    Ok(report::exit_code(&report))
}

async fn run(args: &RunArgs) -> Result<i32, Error> {
    let plan_options = args.plan.options().await?;
    let plan = plan_with_warnings(&plan_options)?;
    let run_id = args.run_id.clone().unwrap_or_else(default_run_id);
    // every report file is opened before any builder exists: one that cannot be written is found now
    let mut inputs: Vec<PathBuf> =
        plan.cells.iter().flat_map(|c| [c.scenario.file.clone(), c.scenario.dockerfile.clone()]).collect();
    inputs.extend(
        plan_options.builders.clone().or_else(|| Some(crate::scenario::default_builders_file(&plan_options.paths))),
    );
    let mut reports = ReportFiles::open(&args.reports, &run_id, &inputs)?;
    let plan_record = crate::results::PlanRecord::of(&plan_options);
    let options = RunOptions {
        run_id,
        artifacts_dir: args.artifacts_dir.clone(),
        keep_all_artifacts: args.keep_artifacts,
        fresh_builders: args.fresh_builders,
        jobs: args.jobs.map_or_else(default_jobs, usize::from),
    };
    let mut terminal = report::terminal::Terminal::stdio();
    let completed = session::run_plan(plan, options, interrupted(), |e| terminal.event(e)).await;
    // on every way out (finished, failed, interrupted) the run removed its builders: what it could not is said
    for e in &completed.clean_up {
        errln!("warning: clean-up: {}", crate::errors::with_sources(e));
    }
    match completed.outcome {
        Ok(Ran::Report(report)) => {
            let results = match &args.results_dir {
                Some(dir) => crate::results::write(dir, &plan_record, &report).map_err(Error::from),
                None => Ok(()),
            };
            results.and_then(|()| reports.write(&report)).map(|()| report::exit_code(&report))
        }
        Ok(Ran::InterruptedPreparing(signal)) => {
            errln!("\n{signal} while preparing the run");
            reports.discard();
            Ok(EXIT_INTERRUPTED)
        }
        Err(e) => {
            reports.discard();
            Err(e)
        }
    }
}

/// A path as it will be opened: its directory resolved (the file may not exist yet).
fn resolved(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_owned());
    match std::fs::canonicalize(path) {
        Ok(existing) => existing,
        Err(_) => dir.join(path.file_name().unwrap_or_default()),
    }
}

/// Two reports in one file would overwrite each other; a report over an input (a scenario, its
/// Dockerfile, the builders file, a result file) would destroy it.
fn check_report_paths(args: &ReportPaths, inputs: &[PathBuf]) -> Result<(), ConfigError> {
    let reports: Vec<(&str, &PathBuf)> =
        [("--report-json", &args.report_json), ("--markdown", &args.markdown), ("--junit", &args.junit)]
            .into_iter()
            .filter_map(|(flag, p)| p.as_ref().map(|p| (flag, p)))
            .collect();
    let inputs: Vec<PathBuf> = inputs.iter().map(|p| resolved(p)).collect();
    for (i, (flag, path)) in reports.iter().enumerate() {
        let at = resolved(path);
        if let Some((other, _)) = reports[..i].iter().find(|(_, p)| resolved(p) == at) {
            return Err(ConfigError::Usage {
                message: format!("{other} and {flag} name one file, {}", path.display()),
                fix: "give each report its own file".into(),
            });
        }
        if inputs.iter().any(|input| at == *input || input.starts_with(&at)) {
            return Err(ConfigError::Usage {
                message: format!(
                    "{flag} {} is an input of this run: writing the report would destroy it",
                    path.display()
                ),
                fix: "write reports to new files (e.g. under target/)".into(),
            });
        }
    }
    Ok(())
}

/// The report files a run was asked for, opened (created) before the run starts.
struct ReportFiles {
    json: Option<(PathBuf, File)>,
    markdown: Option<(PathBuf, File)>,
    junit: Option<(PathBuf, File)>,
}

impl ReportFiles {
    /// Creates the report files and writes into each a valid report of a run that has not finished, so
    /// a run killed outright (SIGKILL) leaves reports that say so rather than empty files.
    fn open(args: &ReportPaths, run_id: &str, inputs: &[PathBuf]) -> Result<Self, Error> {
        check_report_paths(args, inputs)?;
        let open = |path: &Option<PathBuf>, flag: &str| -> Result<Option<(PathBuf, File)>, ConfigError> {
            path.as_ref()
                .map(|p| {
                    File::create(p).map(|f| (p.clone(), f)).map_err(|e| ConfigError::Usage {
                        message: format!("cannot write the report {flag} {}: {e}", p.display()),
                        fix: "give a path in a directory that exists and is writable".into(),
                    })
                })
                .transpose()
        };
        let mut files = ReportFiles {
            json: open(&args.report_json, "--report-json")?,
            markdown: open(&args.markdown, "--markdown")?,
            junit: open(&args.junit, "--junit")?,
        };
        files.write(&RunReport {
            run_id: run_id.to_owned(),
            docker_engine: String::new(),
            images: Vec::new(),
            cells: Vec::new(),
            interrupted: Some("not finished: running, or killed"),
            duration: std::time::Duration::ZERO,
        })?;
        Ok(files)
    }

    /// Removes the files opened for a run that ended before it ran any cell: no report, no empty file.
    fn discard(&mut self) {
        for (path, _) in [self.json.take(), self.markdown.take(), self.junit.take()].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }

    fn write(&mut self, report: &RunReport) -> Result<(), Error> {
        let serialize =
            |what: &str, e: String| InfraError::io(format!("serializing the {what} report"))(std::io::Error::other(e));
        if let Some((path, file)) = &mut self.json {
            let text = serde_json::to_string_pretty(&report::json::build(report))
                .map_err(|e| serialize("JSON", e.to_string()))?;
            write_to(path, file, &(text + "\n"))?;
        }
        if let Some((path, file)) = &mut self.markdown {
            write_to(path, file, &report::markdown::render(report))?;
        }
        if let Some((path, file)) = &mut self.junit {
            let text = report::junit::render(report).map_err(|e| serialize("JUnit", e.to_string()))?;
            write_to(path, file, &text)?;
        }
        Ok(())
    }
}

/// Replaces the file's content with `text`.
fn write_to(path: &Path, file: &mut File, text: &str) -> Result<(), InfraError> {
    file.set_len(0)
        .and_then(|()| std::io::Seek::rewind(file))
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(InfraError::io(format!("writing {}", path.display())))
}

/// Resolves on Ctrl-C or SIGTERM, naming which.
pub async fn interrupted() -> &'static str {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => "terminated",
    }
}

/// Unique enough per run on one machine, and readable in builder and directory names.
/// One repetition more than the CPUs: a repetition also waits on the engine (its builder stopped and
/// started, a layer pulled), and a spare one fills those gaps. On 2 cores, `--repeat 20` of issue-6893 took
/// 28-30 s at 3 jobs against 30-31 s at 2, where 9 of the 2 cores' CPU-seconds went idle.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) + 1
}

fn default_run_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("{secs:x}{:x}", std::process::id())
}
