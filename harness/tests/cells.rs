//! Every cell of the scenarios as a test named `scenario@profile`, for cargo-nextest: its parallelism,
//! timeouts, retries, JUnit, `--partition` shards and `cargo nextest archive`. Not in the project's
//! default test run (`.config/nextest.toml`); run it with `cargo nextest run --test cells
//! --ignore-default-filter`. Each test runs its cell through the library API `bkcache run` uses, writes
//! one result file per repetition for `bkcache report merge`, and passes when `bkcache run` of that
//! cell would exit 0 (known failures pass).
//!
//! Chosen by environment variables (paths relative to the workspace root):
//! `BKCACHE_SCENARIOS` (space-separated paths, default `scenarios`), `BKCACHE_BUILDERS` (builders file),
//! `BKCACHE_BUILDER` / `BKCACHE_SCENARIO` (comma-separated filters), `BKCACHE_BUILDKIT` (releases or a range,
//! as `bkcache run --buildkit`), `BKCACHE_REPEAT`, `BKCACHE_RESULTS_DIR` (default
//! `target/bkcache-results`), `BKCACHE_ARTIFACTS_DIR` (default `target/bkcache-artifacts`).

use std::path::{Path, PathBuf};

use bkcache::plan::Filter;
use bkcache::report;
use bkcache::results::{self, PlanRecord};
use bkcache::session::{self, Plan, PlanOptions, Ran, RunOptions};
use libtest_mimic::{Arguments, Failed, Trial};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn list(name: &str) -> Vec<String> {
    env(name).map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()).unwrap_or_default()
}

fn plan_options() -> Result<PlanOptions, String> {
    let buildkit = match env("BKCACHE_BUILDKIT") {
        Some(text) => {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(bkcache::session::releases(&text)).map_err(|e| e.to_string())?.versions
        }
        None => Vec::new(),
    };
    let repeat = match env("BKCACHE_REPEAT") {
        Some(n) => Some(n.parse().map_err(|e| format!("BKCACHE_REPEAT `{n}`: {e}"))?),
        None => None,
    };
    Ok(PlanOptions {
        paths: env("BKCACHE_SCENARIOS").unwrap_or_else(|| "scenarios".into()).split(' ').map(PathBuf::from).collect(),
        builders: env("BKCACHE_BUILDERS").map(PathBuf::from),
        filter: Filter {
            builders: list("BKCACHE_BUILDER"),
            scenarios: list("BKCACHE_SCENARIO"),
            repeat,
            ..Filter::default()
        },
        buildkit,
        buildkit_source: Default::default(),
    })
}

/// Runs `plan` (one cell) as `bkcache run` would, and writes its result files.
fn run_cell(options: &PlanOptions, plan: Plan) -> Result<(), Failed> {
    let run = RunOptions {
        run_id: format!("cells-{}", std::process::id()),
        artifacts_dir: PathBuf::from(env("BKCACHE_ARTIFACTS_DIR").unwrap_or_else(|| "target/bkcache-artifacts".into())),
        keep_all_artifacts: false,
        jobs: 1,
        fresh_builders: false,
    };
    let results_dir = PathBuf::from(env("BKCACHE_RESULTS_DIR").unwrap_or_else(|| "target/bkcache-results".into()));
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut terminal = report::terminal::Terminal::stdio();
        let completed = session::run_plan(plan, run, bkcache::cli::interrupted(), |e| terminal.event(e)).await;
        for e in &completed.clean_up {
            eprintln!("warning: clean-up: {}", bkcache::errors::with_sources(e));
        }
        let outcome = match completed.outcome {
            Ok(Ran::Report(report)) => results::write(&results_dir, &PlanRecord::of(options), &report)
                .map_err(|e| e.to_string())
                .and_then(|()| match report::exit_code(&report) {
                    0 => Ok(()),
                    _ => Err(report::terminal::summary(&report)),
                }),
            Ok(Ran::InterruptedPreparing(signal)) => Err(format!("{signal} while preparing the run")),
            Err(e) => Err(bkcache::errors::with_sources(&e)),
        };
        outcome.map_err(Failed::from)
    })
}

fn main() {
    let args = Arguments::from_args();
    // scenario and result paths are relative to the workspace root, wherever the runner starts us;
    // nextest sets CARGO_MANIFEST_DIR at run time too (remapped when an archive runs elsewhere)
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    std::env::set_current_dir(Path::new(&manifest_dir).join("..")).expect("the workspace root");
    let trials = match plan_options().and_then(|o| session::plan(&o).map(|p| (o, p)).map_err(|e| e.to_string())) {
        Ok((options, plan)) => plan
            .cells
            .iter()
            .map(|cell| {
                let (options, profiles, cell) = (options.clone(), plan.profiles.clone(), cell.clone());
                Trial::test(cell.name(), move || {
                    run_cell(&options, Plan { profiles, cells: vec![cell], warnings: Vec::new() })
                })
            })
            .collect(),
        // a plan that does not load is one failing test that says why, not an empty list
        Err(e) => vec![Trial::test("plan", move || Err(Failed::from(e.clone())))],
    };
    libtest_mimic::run(&args, trials).exit();
}
