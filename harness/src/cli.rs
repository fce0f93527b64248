//! The command line: parses arguments, wires the layers together (scenario → plan → runner →
//! reporters), handles Ctrl-C, and maps the outcome to an exit code. No logic of its own.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use crate::buildkit_image::{self, BuildkitSpec, Patch};
use crate::builder::Janitor;
use crate::pins::Pins;
use crate::docker::Engine;
use crate::errors::{ConfigError, Error, InfraError};
use crate::plan::{self, Cell, Filter};
use crate::profiles::Profiles;
use crate::registry::Registry;
use crate::report;
use crate::runner::{self, RunContext};
use crate::scenario;

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
    /// Validate scenarios and builder profiles and list the cells a run would have (no docker needed).
    List(PlanArgs),
    /// BuildKit images made from the Go module.
    #[command(subcommand)]
    Buildkit(BuildkitCommand),
}

#[derive(Subcommand)]
enum BuildkitCommand {
    /// Build (or reuse) the image of a BuildKit release plus patches; prints its tag.
    Build(BuildkitBuildArgs),
}

#[derive(Args)]
struct BuildkitBuildArgs {
    /// A release of github.com/moby/buildkit, e.g. v0.33.1.
    #[arg(long)]
    version: String,
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
    /// Release testing: run every scenario on this BuildKit release (built from the Go module on
    /// demand) with each snapshotter, instead of the builders file's profiles.
    #[arg(long, value_name = "VERSION")]
    buildkit: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Write the JSON report here.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Write a Markdown table (rows: BuildKit builds, columns: snapshotters) here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write a JUnit XML report (one test case per cell) here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// How many cells run at once, each on its own builder [default: the number of CPUs].
    #[arg(long)]
    jobs: Option<usize>,
    /// Where cells that do not pass keep their rawjson logs, buildkitd log and exported caches.
    #[arg(long, default_value = "bkcache-artifacts")]
    artifacts_dir: PathBuf,
    /// Keep the artifacts of passing cells too (to compare them with failing ones).
    #[arg(long)]
    keep_artifacts: bool,
    /// Name this run (lowercase letters, digits, '-'): builders are `bkcache-<run id>-<profile>` and
    /// artifacts go to `<artifacts dir>/<run id>/` [default: derived from the time and process id].
    #[arg(long, value_parser = parse_run_id)]
    run_id: Option<String>,
}

fn parse_run_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1 to 40 lowercase letters, digits or '-'".into())
    }
}

pub async fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let outcome = match cli.command {
        Command::List(args) => list(&args),
        Command::Run(args) => run(&args).await,
        Command::Buildkit(BuildkitCommand::Build(args)) => buildkit_build(&args).await,
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e}");
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
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn load_plan(args: &PlanArgs) -> Result<(Profiles, Vec<Cell>), ConfigError> {
    let builders = args.builders.clone().unwrap_or_else(|| scenario::default_builders_file(&args.paths));
    let profiles = Profiles::load(&builders)?;
    let files = scenario::discover(&args.paths)?;
    if files.is_empty() {
        return Err(ConfigError::Usage {
            message: format!("no scenario files in {:?}", args.paths),
            fix: "pass scenario .toml files or a directory holding them".into(),
        });
    }
    let scenarios = scenario::load_all(&files, &profiles)?;
    let profiles = match &args.buildkit {
        Some(version) => profiles.for_release(version),
        None => profiles,
    };
    let filter = Filter {
        builders: args.only_builders.clone(),
        scenarios: args.only_scenarios.clone(),
        ignore_scenario_builders: args.buildkit.is_some(),
    };
    let cells = plan::plan(scenarios, &profiles, &filter)?;
    Ok((profiles, cells))
}

fn list(args: &PlanArgs) -> Result<i32, Error> {
    let (_, cells) = load_plan(args)?;
    for cell in &cells {
        let known: Vec<&str> = cell.known_issues.iter().map(|k| k.id.as_str()).collect();
        let known = if known.is_empty() { String::new() } else { format!("  known issue: {}", known.join(", ")) };
        println!("{}  image {}  snapshotter {}{known}", cell.name(), cell.profile.image, cell.profile.snapshotter.as_str());
    }
    Ok(EXIT_OK)
}

async fn buildkit_build(args: &BuildkitBuildArgs) -> Result<i32, Error> {
    let pins = Pins::load(&args.pins)?;
    let patches = args
        .patches
        .iter()
        .map(|p| {
            Patch::read(p).map_err(|source| ConfigError::Read { path: p.clone(), source })
        })
        .collect::<Result<_, _>>()?;
    let spec = BuildkitSpec { version: args.version.clone(), patches };
    let engine = Engine::connect().await?;
    let image = buildkit_image::ensure(&engine, &spec, pins.registry()).await?;
    println!("{} ({})", image.tag, if image.built { "built" } else { "reused" });
    Ok(EXIT_OK)
}

async fn run(args: &RunArgs) -> Result<i32, Error> {
    let (profiles, cells) = load_plan(&args.plan)?;
    let engine = Engine::connect().await?;
    let run_id = args.run_id.clone().unwrap_or_else(default_run_id);
    let run_dir = args.artifacts_dir.join(&run_id);
    std::fs::create_dir_all(&run_dir).map_err(InfraError::io(format!("creating {}", run_dir.display())))?;
    let ctx = RunContext {
        engine,
        registry: Registry::new(profiles.pins.registry()),
        janitor: Janitor::new(&run_id),
        run_id,
        run_dir,
        keep_all_artifacts: args.keep_artifacts,
    };
    let outcome = tokio::select! {
        outcome = execute(&ctx, &cells, args) => outcome,
        signal = interrupted() => {
            eprintln!("\n{signal}: removing this run's builders");
            Ok(EXIT_INTERRUPTED)
        }
    };
    // On every way out (finished, failed, interrupted): no builder of this run is left behind.
    for e in ctx.janitor.sweep(&ctx.engine).await {
        eprintln!("warning: clean-up: {e}");
    }
    // An empty run directory (every cell passed) is not worth keeping.
    let _ = std::fs::remove_dir(&ctx.run_dir);
    let _ = std::fs::remove_dir(&args.artifacts_dir);
    outcome
}

async fn execute(ctx: &RunContext, cells: &[Cell], args: &RunArgs) -> Result<i32, Error> {
    let images = runner::ensure_images(ctx, cells, report::terminal::live).await?;
    runner::preflight(ctx, cells).await?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let results = runner::run_cells(ctx, cells, jobs, report::terminal::live).await?;
    print!("{}", report::terminal::summary(&results));
    let engine = format!("{} (API {})", ctx.engine.version, ctx.engine.api_version);
    let mut files: Vec<(&PathBuf, String)> = Vec::new();
    if let Some(path) = &args.report_json {
        let text = serde_json::to_string_pretty(&report::json::build(&ctx.run_id, &engine, &images, &results))
            .map_err(|e| InfraError::io("serializing the JSON report")(std::io::Error::other(e)))?;
        files.push((path, text + "\n"));
    }
    if let Some(path) = &args.markdown {
        files.push((path, report::markdown::render(&results)));
    }
    if let Some(path) = &args.junit {
        let text = report::junit::render(&ctx.run_id, &results)
            .map_err(|e| InfraError::io("serializing the JUnit report")(std::io::Error::other(e)))?;
        files.push((path, text));
    }
    for (path, text) in files {
        std::fs::write(path, text).map_err(InfraError::io(format!("writing {}", path.display())))?;
    }
    Ok(report::exit_code(&results))
}

/// Resolves on Ctrl-C or SIGTERM, naming which.
async fn interrupted() -> &'static str {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => "terminated",
    }
}

/// Unique enough per run on one machine, and readable in builder and directory names.
fn default_run_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("{secs:x}{:x}", std::process::id())
}
