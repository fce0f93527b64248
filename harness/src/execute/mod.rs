//! Execute: one repetition of a cell on real BuildKit — a builder in a fresh builder's state, the
//! scenario's phases through the buildx CLI, the buildkitd log — leaving raw artifacts for `observe`.
//!
//! Each repetition gets a builder to itself (new, or reset: see [`crate::host::builder`]), its own work directory
//! (local caches) and its own registry refs.
//!
//! A build that fails is BuildKit's doing only if BuildKit could have done it: after a failed build the
//! machine is probed — the build reached the solver (some vertex was reported), the builder's container
//! runs and was never restarted, buildkitd answers (`buildctl debug workers`), the registry answers, the
//! work directory (where local caches are exported) takes a 1 MiB file. If
//! any probe fails, the failure is the machine's (`error`), with buildx's output as context; otherwise
//! it is an observation the judge weighs. After a build that failed unexpectedly the repetition stops:
//! later phases build on it.

pub mod bases;
pub mod layers;
pub mod phase;

use std::path::Path;

use crate::artifacts::{last_lines, RawBuild, RawPhase, RawRepetition};
use crate::errors::{InfraError, InfraFailure};
use crate::host::builder::Builder;
use crate::host::{docker, Machine};
use crate::observe::progress;
use crate::plan::Cell;
use crate::scenario::{BaseImage, Phase, PhaseAction, Scenario};

/// Where a repetition works: its directory and what names its builder and registry refs.
pub struct Workspace<'a> {
    pub dir: &'a Path,
    /// Unique per run, cell and repetition (`<run id>/<scenario>/<profile>/r<n>`): the registry path of
    /// its caches and pushed images.
    pub refs: String,
}

/// What a repetition reports while it runs.
pub enum Progress<'a> {
    PhaseStarted(&'a Phase),
    PhaseFinished(&'a RawPhase),
}

/// Runs every phase of `cell` once, on a builder of its own that is handed back afterwards.
pub async fn run_repetition(
    machine: &Machine,
    cell: &Cell,
    ws: &Workspace<'_>,
    on_progress: &dyn Fn(Progress<'_>),
) -> RawRepetition {
    let mut raw = RawRepetition::default();
    let builder = match machine.janitor.acquire(&cell.profile, &machine.registry.addr, ws.dir, &machine.engine).await {
        Ok(b) => b,
        Err(e) => {
            raw.infrastructure = Some(InfraFailure::new("creating the builder", &e));
            return raw;
        }
    };
    let paths = phase::CellPaths { dir: ws.dir, refs: &ws.refs, registry: &machine.registry.addr };
    let mut helper = bases::Helper::new(machine, &cell.profile);
    let mut crashed = false;
    if let Err(e) = push_declared_bases(&cell.scenario, &mut helper, &paths).await {
        raw.infrastructure = Some(InfraFailure::new("pushing the scenario's declared bases", &e));
    }
    let phases = if raw.infrastructure.is_some() { &[][..] } else { &cell.scenario.phases[..] };
    for phase in phases {
        on_progress(Progress::PhaseStarted(phase));
        let mut record = match phase::run(phase, &cell.scenario, &builder, &mut helper, &machine.registry, &paths).await
        {
            Ok(r) => r,
            Err(e) => {
                raw.infrastructure = Some(InfraFailure::new(format!("phase `{}`", phase.name), &e));
                break;
            }
        };
        if let Some(build) = record.build.as_mut().filter(|b| !b.succeeded) {
            match probe(machine, &builder, phase.name.as_str(), build, ws.dir).await {
                Some(Failure::Machine(why)) => {
                    raw.infrastructure = Some(why);
                    raw.phases.push(record);
                    break;
                }
                Some(Failure::Crash(panic)) => build.crash = Some(panic),
                None => {}
            }
        }
        let failed = record.build.as_ref().filter(|b| !b.succeeded);
        crashed |= failed.is_some_and(|b| b.crash.is_some());
        let stop = failed.is_some()
            && (crashed || !matches!(&phase.action, PhaseAction::Build(b) if b.expect_failure.is_some()));
        on_progress(Progress::PhaseFinished(&record));
        raw.phases.push(record);
        if stop {
            break;
        }
    }
    // a builder whose buildkitd crashed is not reset for another repetition: it is removed
    let clean = raw.infrastructure.is_none() && !crashed;
    let handed_back = machine.janitor.release(builder, clean, &machine.engine).await;
    match handed_back.log {
        Ok(log) => {
            let _ = std::fs::write(ws.dir.join("buildkitd.log"), &log);
            raw.buildkitd_log = Some(log);
        }
        Err(e) => {
            raw.infrastructure.get_or_insert_with(|| InfraFailure::new("reading the buildkitd log", &e));
        }
    }
    if let Err(e) = handed_back.outcome {
        raw.infrastructure.get_or_insert_with(|| InfraFailure::new("removing the builder", &e));
    }
    if let Err(e) = helper.release().await {
        raw.infrastructure.get_or_insert_with(|| InfraFailure::new("removing the bases builder", &e));
    }
    raw
}

/// Pushes every declared base with its first content, to the repetition's refs.
async fn push_declared_bases(
    scenario: &Scenario,
    helper: &mut bases::Helper<'_>,
    paths: &phase::CellPaths<'_>,
) -> Result<(), InfraError> {
    for base in scenario.bases.values() {
        if let BaseImage::Declared(declared) = base {
            let (reference, from) = (paths.declared_ref(declared), paths.base_ref(&declared.from));
            helper.push(declared, &declared.content, &reference, &from, paths.dir).await?;
        }
    }
    Ok(())
}

/// Why a build failed, when BuildKit's solver is not the whole answer.
enum Failure {
    /// The machine failed it: the repetition tests nothing.
    Machine(InfraFailure),
    /// buildkitd crashed (its panic): BuildKit's doing, judged like any failed build.
    Crash(String),
}

/// Whether the machine, or a crash of buildkitd, rather than BuildKit's solver, explains a failed build.
async fn probe(
    machine: &Machine,
    builder: &Builder,
    phase: &str,
    build: &RawBuild,
    work_dir: &Path,
) -> Option<Failure> {
    let context = format!("phase `{phase}`: the build failed and");
    let buildx_said = || InfraError::Command {
        command: "docker buildx build".into(),
        status: "failed".into(),
        stderr: last_lines(&build.rawjson, 6),
    };
    if !progress::parse(&build.rawjson, false).reached_solver() {
        return Some(Failure::Machine(InfraFailure::new(
            format!("{context} never reached BuildKit's solver"),
            &buildx_said(),
        )));
    }
    let container = builder.container();
    let dead = match machine.engine.container_state(&container).await {
        Ok(state) => buildkitd_death(state, builder.restarts_before),
        Err(e) => {
            return Some(Failure::Machine(InfraFailure::new(
                format!("{context} the builder could not be inspected"),
                &e,
            )))
        }
    };
    // the state lags behind a process that was just killed: ask buildkitd itself; an exec refused because the
    // container stopped in between says the same as a buildkitd that does not answer
    let gone = "the builder's container is no longer running (buildkitd does not answer)";
    let dead = match dead {
        Some(what) => Some(what),
        None => match machine.engine.exec_succeeds(&container, &["buildctl", "debug", "workers"]).await {
            Ok(true) => None,
            Ok(false) => Some(gone),
            Err(e) => match machine.engine.container_state(&container).await {
                Ok(Some(state)) if state.running => {
                    let why = InfraFailure::new(format!("{context} the builder could not be asked"), &e);
                    return Some(Failure::Machine(why));
                }
                _ => Some(gone),
            },
        },
    };
    if let Some(what) = dead {
        // a buildkitd that panicked crashed by itself; one killed from outside leaves no panic
        let log = machine.engine.container_logs(&container, 0).await.unwrap_or_default();
        return Some(match crate::observe::crash::panic_of(&log) {
            Some(panic) => Failure::Crash(panic),
            None => Failure::Machine(InfraFailure::new(format!("{context} {what}"), &buildx_said())),
        });
    }
    if let Err(e) = machine.registry.ping().await {
        return Some(Failure::Machine(InfraFailure::new(format!("{context} the registry does not answer"), &e)));
    }
    if let Err(e) = has_room(work_dir) {
        return Some(Failure::Machine(InfraFailure::new(format!("{context} its work directory has no room"), &e)));
    }
    None
}

/// What the builder's container says about its buildkitd after a failed build, if it died: gone, or
/// restarted by Docker more often than when the builder was handed out.
fn buildkitd_death(state: Option<docker::ContainerState>, restarts_before: i64) -> Option<&'static str> {
    match state {
        Some(state) if state.running && state.restarts == restarts_before => None,
        Some(state) if state.running => Some("buildkitd died during the build (Docker restarted its container)"),
        _ => Some("the builder's container is no longer running"),
    }
}

/// Whether `dir` takes a 1 MiB file (a full disk fails exports to it, which is not BuildKit's doing).
fn has_room(dir: &Path) -> Result<(), InfraError> {
    let probe = dir.join(".bkcache-room-probe");
    let written = std::fs::write(&probe, vec![0u8; 1 << 20]).and_then(|()| std::fs::File::open(&probe)?.sync_all());
    let _ = std::fs::remove_file(&probe);
    written.map_err(InfraError::io(format!("writing a 1 MiB file into {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::docker::ContainerState;
    use super::*;

    #[test]
    fn buildkitd_died_only_when_restarted_after_the_builder_was_handed_out() {
        let state = |running, restarts| Some(ContainerState { running, restarts });
        // a buildkitd that failed to bind its debug port 5 times came back before the builder was handed out
        assert_eq!(buildkitd_death(state(true, 5), 5), None);
        assert_eq!(buildkitd_death(state(true, 0), 0), None);
        assert!(buildkitd_death(state(true, 6), 5).unwrap().contains("died during the build"));
        assert!(buildkitd_death(state(true, 1), 0).unwrap().contains("died during the build"));
        assert!(buildkitd_death(state(false, 5), 5).unwrap().contains("no longer running"));
        assert!(buildkitd_death(None, 0).unwrap().contains("no longer running"));
    }
}
