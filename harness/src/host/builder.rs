//! docker-container buildx builders owned by bkcache, and their reuse between repetitions. Every builder
//! a run creates is named `bkcache-<run id>.<n>.<profile slug>` and registered with the [`Janitor`] until
//! it is removed. Run ids have no `.`, so the prefix `bkcache-<run id>.` names this run's builders only
//! (`bkcache-a.` is no prefix of run `a-1`'s).
//!
//! A repetition must start from a state indistinguishable from a fresh builder. Creating one (buildx
//! create + bootstrap, later buildx rm) costs about as much CPU as a whole small build, so a builder that
//! finished a repetition cleanly is kept and **reset** for the next repetition on the same profile.
//! Handed back, its container is stopped (buildkitd exits, its lazy mounts go with its mount namespace)
//! and what buildkitd logged in that life is read (the container's log from the line where the life
//! began). Reset, the container starts again with a buildkitd.toml whose `root` is a new empty directory
//! of the state volume, the previous root is deleted, and buildkitd is asked until it answers. Nothing of
//! the previous life is visible to buildkitd: same image, flags and config, empty state, new process.
//! The config a life starts with is written by the exec that readied the life before (uploading a file
//! into a container costs dockerd a re-exec of itself, ~90 ms of CPU); only a builder's first reset
//! uploads it. That this is equivalent is checked, not assumed: the e2e test
//! `a_reset_builder_observes_what_a_fresh_one_does` compares every observation (steps, caches, laziness)
//! of a fresh and of reset builders; `--fresh-builders` turns reuse off.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use super::builder_name::container_of;
use super::builder_name::BuilderName;
use super::buildx::buildx;
use super::docker::Engine;
use crate::errors::InfraError;
use crate::names::Name;
use crate::profiles::BuilderProfile;

const CREATE_TIMEOUT: Duration = Duration::from_secs(180);
const REMOVE_TIMEOUT: Duration = Duration::from_secs(60);
const RESET_TIMEOUT: Duration = Duration::from_secs(60);
/// Creations of a builder whose debug port another process took first (see `keys::free_loopback_port`).
const CREATE_ATTEMPTS: u32 = 3;
/// What buildkitd logs when its debug address is taken.
const PORT_TAKEN: &str = "address already in use";
/// Where the docker-container driver mounts the builder's state volume, and where buildx puts the config.
const STATE_DIR: &str = "/var/lib/buildkit";
const CONFIG_DIR: &str = "/etc/buildkit";
const CONFIG_FILE: &str = "buildkitd.toml";

/// A running builder.
#[derive(Debug, Clone)]
pub struct Builder {
    pub name: String,
    /// What it was made from: only a repetition wanting the same kind reuses it.
    kind: Kind,
    /// How many times it was (re)started; each life has its own buildkitd root.
    life: u32,
    /// Lines of the container's log written before this life.
    log_lines_before: usize,
    /// buildkitd's debug address (`127.0.0.1:<port>`), when it records cache-key plaintexts.
    pub debug_addr: Option<String>,
    /// How often Docker had restarted the container when this life was handed out: a count above it
    /// later means buildkitd died in this life (one that failed to start and came back before it was
    /// handed out is not a death during a build).
    pub restarts_before: i64,
}

impl Builder {
    /// The container the docker-container driver runs buildkitd in.
    pub fn container(&self) -> String {
        container_of(&self.name)
    }

    /// What buildkitd has logged in this life so far; a next life's log starts after it.
    async fn take_log(&mut self, engine: &Engine) -> Result<String, InfraError> {
        let log = engine.container_logs(&self.container(), 0).await?;
        let lines: Vec<&str> = log.lines().collect();
        let this_life =
            lines.get(self.log_lines_before..).unwrap_or_default().iter().flat_map(|l| [*l, "\n"]).collect();
        self.log_lines_before = lines.len();
        Ok(this_life)
    }
}

/// Builders that can stand in for one another: made from the same profile and BuildKit image (the
/// helper profile that pushes bases has one name for every image).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    profile: Name,
    image: String,
}

impl Kind {
    fn of(profile: &BuilderProfile) -> Self {
        Kind { profile: profile.name.clone(), image: profile.image.clone() }
    }
}

/// A builder handed back to the [`Janitor`]: what its buildkitd logged in the life that ended, and
/// whether it could be kept or removed.
pub struct HandedBack {
    pub log: Result<String, InfraError>,
    pub outcome: Result<(), InfraError>,
}

fn root(life: u32) -> String {
    format!("{STATE_DIR}/life-{life}")
}

/// The buildkitd.toml of a builder of `profile` in its `life`th life.
pub fn buildkitd_config(profile: &BuilderProfile, registry: &str, life: u32) -> String {
    crate::buildkitd::config(&profile.buildkitd_config, registry, &root(life))
}

/// Tracks the builders a run has alive, so an interrupted run can remove them, and keeps the idle ones
/// a later repetition will reuse.
#[derive(Clone, Default)]
pub struct Janitor {
    live: Arc<Mutex<Vec<String>>>,
    idle: Arc<Mutex<Vec<Builder>>>,
    /// Acquisitions still to come, for the kinds whose demand the run announced (see [`Janitor::expect`]).
    wanted: Arc<Mutex<HashMap<Kind, usize>>>,
    created: Arc<AtomicUsize>,
    run: String,
    reuse: bool,
}

impl Janitor {
    /// `reuse`: reset builders between repetitions instead of creating one per repetition.
    pub fn new(run_id: &str, reuse: bool) -> Self {
        Janitor { run: run_id.to_owned(), reuse, ..Default::default() }
    }

    /// Announces that `acquisitions` more builders of `profile` will be acquired. A builder of a kind
    /// whose announced acquisitions the idle ones already cover is removed when handed back, while other
    /// repetitions still run, instead of idling until the run's sweep; a kind never announced is kept.
    pub fn expect(&self, profile: &BuilderProfile, acquisitions: usize) {
        *self.wanted.lock().expect("janitor lock").entry(Kind::of(profile)).or_default() += acquisitions;
    }

    /// Whether a later acquisition will want one more idle builder of `kind`.
    fn wants_another(&self, kind: &Kind) -> bool {
        let idle = self.idle.lock().expect("janitor lock").iter().filter(|b| &b.kind == kind).count();
        self.wanted.lock().expect("janitor lock").get(kind).is_none_or(|&wanted| wanted > idle)
    }

    /// Counts an acquisition of `kind` and takes an idle builder of that kind, if there is one.
    fn take_idle(&self, kind: &Kind) -> Option<Builder> {
        if let Some(wanted) = self.wanted.lock().expect("janitor lock").get_mut(kind) {
            *wanted = wanted.saturating_sub(1);
        }
        let mut idle = self.idle.lock().expect("janitor lock");
        idle.iter().position(|b| &b.kind == kind).map(|i| idle.swap_remove(i))
    }

    fn builder_name(&self, n: usize, profile: &Name) -> String {
        BuilderName::new(&self.run, n, &profile.slug()).to_string()
    }

    /// A builder for `profile` in the state of a fresh one: an idle builder of that profile reset, or a
    /// new one. Its buildkitd.toml is written into `work_dir`.
    pub async fn acquire(
        &self,
        profile: &BuilderProfile,
        registry: &str,
        work_dir: &Path,
        engine: &Engine,
    ) -> Result<Builder, InfraError> {
        if let Some(builder) = self.take_idle(&Kind::of(profile)) {
            let config = buildkitd_config(profile, registry, builder.life + 1);
            write_config(work_dir, &config)?;
            let next = buildkitd_config(profile, registry, builder.life + 2);
            match reset(builder.clone(), &config, &next, engine).await {
                Ok(builder) => return Ok(builder),
                // a reset is only a shortcut: a builder that cannot be reset is replaced
                Err(e) => {
                    tracing::warn!(builder = %builder.name, error = %e, "reset failed; creating a new builder");
                    self.remove(&builder.name, engine).await?;
                }
            }
        }
        self.create(profile, registry, work_dir, engine).await
    }

    /// Hands a builder back after a repetition. It is kept for the next one when `clean` (the repetition
    /// saw no infrastructure failure), reuse is on and a later repetition wants it: stopped first, so that
    /// buildkitd's last lines are read with this life's. Otherwise, or when it cannot be stopped or its log
    /// read, or Docker restarted its buildkitd in this life (which then started with the next life's
    /// config), it is removed.
    pub async fn release(&self, mut builder: Builder, clean: bool, engine: &Engine) -> HandedBack {
        let container = builder.container();
        let keep = self.reuse && clean && self.wants_another(&builder.kind);
        let stopped = match keep {
            true => engine.stop_container(&container).await,
            false => Ok(()),
        };
        let log = builder.take_log(engine).await;
        if let Err(e) = &stopped {
            tracing::warn!(builder = %builder.name, error = %e, "could not stop the builder to keep it; removing it");
        }
        let restarted = || async { restarts(&container, engine).await.map_or(true, |n| n != builder.restarts_before) };
        // another release may have covered the demand while this one stopped its builder
        if keep && stopped.is_ok() && log.is_ok() && !restarted().await && self.wants_another(&builder.kind) {
            self.idle.lock().expect("janitor lock").push(builder);
            return HandedBack { log, outcome: Ok(()) };
        }
        HandedBack { log, outcome: self.remove(&builder.name, engine).await }
    }

    async fn create(
        &self,
        profile: &BuilderProfile,
        registry: &str,
        work_dir: &Path,
        engine: &Engine,
    ) -> Result<Builder, InfraError> {
        let name = self.builder_name(self.created.fetch_add(1, Ordering::Relaxed), &profile.name);
        let config = write_config(work_dir, &buildkitd_config(profile, registry, 1))?;
        self.live.lock().expect("janitor lock").push(name.clone());
        let mut attempt = 1;
        loop {
            let mut flags = profile.all_buildkitd_flags();
            let debug_addr = match profile.records_cache_keys() {
                true => Some(format!("127.0.0.1:{}", super::keys::free_loopback_port()?)),
                false => None,
            };
            if let Some(addr) = &debug_addr {
                flags.extend(["--save-cache-debug".into(), format!("--debugaddr={addr}")]);
            }
            let args = create_args(&name, &profile.image, &flags, &config.display().to_string());
            let created = buildx(&args, CREATE_TIMEOUT).await.and_then(|out| out.require_success());
            if let Err(e) = created {
                // the debug port, free when picked, was bound by someone else before buildkitd bound it
                let log = engine.container_logs(&container_of(&name), 0).await.unwrap_or_default();
                if debug_addr.is_none() || attempt == CREATE_ATTEMPTS || !log.contains(PORT_TAKEN) {
                    return Err(e);
                }
                tracing::warn!(builder = %name, attempt, "buildkitd's debug port was taken; creating it again");
                remove(&name, engine).await?;
                attempt += 1;
                continue;
            }
            let restarts_before = restarts(&container_of(&name), engine).await?;
            return Ok(Builder {
                name,
                kind: Kind::of(profile),
                life: 1,
                log_lines_before: 0,
                debug_addr,
                restarts_before,
            });
        }
    }

    /// Removes a builder with its container and state volume.
    pub async fn remove(&self, name: &str, engine: &Engine) -> Result<(), InfraError> {
        remove(name, engine).await?;
        self.live.lock().expect("janitor lock").retain(|n| n != name);
        Ok(())
    }

    /// Removes every builder this run still has, all at once, then anything left under its prefix.
    pub async fn sweep(&self, engine: &Engine) -> Vec<InfraError> {
        self.idle.lock().expect("janitor lock").clear();
        let names: Vec<String> = self.live.lock().expect("janitor lock").clone();
        let removals = futures_util::future::join_all(names.iter().map(|name| self.remove(name, engine))).await;
        let mut errors: Vec<InfraError> = removals.into_iter().filter_map(Result::err).collect();
        if let Err(e) = engine.remove_by_prefix(&BuilderName::container_prefix(&self.run)).await {
            errors.push(e);
        }
        errors
    }
}

/// The `docker buildx` arguments that create a builder: the docker-container driver on the host network
/// (so buildkitd reaches the local registry at 127.0.0.1), running `image` with these flags and config.
pub fn create_args(name: &str, image: &str, flags: &[String], config: &str) -> Vec<String> {
    let mut args: Vec<String> =
        ["create", "--name", name, "--driver", "docker-container", "--driver-opt", "network=host"]
            .map(str::to_owned)
            .to_vec();
    args.extend(["--driver-opt".into(), format!("image={image}")]);
    if let Some(name) = BuilderName::parse(name) {
        args.extend(["--driver-opt".into(), format!("env.{}", ownership_mark(name.run()))]);
    }
    args.extend(["--buildkitd-flags".into(), flags.join(" ")]);
    args.extend(["--buildkitd-config".into(), config.to_owned(), "--bootstrap".into()]);
    args
}

/// Removes builder `name`: its buildx registration, container and state volume.
pub async fn remove(name: &str, engine: &Engine) -> Result<(), InfraError> {
    let removed = buildx(&["rm".into(), "--force".into(), name.to_owned()], REMOVE_TIMEOUT)
        .await
        .and_then(|rm| rm.require_success());
    if removed.is_err() {
        // what buildx could not remove (or never registered), the engine API removes: these names only
        let container = container_of(name);
        engine.remove_container_and_volume(&container, &format!("{container}_state")).await?;
    }
    Ok(())
}

/// The environment entry that marks a builder container as made by run `run_id` (a driver option of
/// every builder bkcache creates): `bkcache gc` removes only containers that carry their run's mark.
pub fn ownership_mark(run_id: &str) -> String {
    format!("{OWNER_ENV}={run_id}")
}

const OWNER_ENV: &str = "BKCACHE_RUN";

fn write_config(work_dir: &Path, config: &str) -> Result<std::path::PathBuf, InfraError> {
    let path = work_dir.join("buildkitd.toml");
    std::fs::write(&path, config).map_err(InfraError::io(format!("writing {}", path.display())))?;
    Ok(path)
}

/// Gives `builder`, stopped when it was handed back, its next life with `config`, and writes `next`, the
/// config of the life after: see the module documentation.
async fn reset(mut builder: Builder, config: &str, next: &str, engine: &Engine) -> Result<Builder, InfraError> {
    let container = builder.container();
    // after its first life, the exec that readied the previous one wrote it
    if builder.life == 1 {
        engine.upload_file(&container, CONFIG_DIR, CONFIG_FILE, config.as_bytes()).await?;
    }
    engine.start_container(&container).await?;
    let previous = root(builder.life);
    builder.life += 1;
    // one exec deletes the previous root, asks buildkitd until it answers and then writes the next life's
    // config (only once buildkitd answers has it surely read this one: written earlier, it raced buildkitd's
    // start, which then took the next life's root): every exec costs dockerd, containerd and runc CPU,
    // which an exec per question spent beside the other repetitions
    let wait = format!(
        "rm -rf {previous} && until buildctl debug workers >/dev/null 2>&1; do sleep 0.05; done && \
         printf '%s' {next} > {CONFIG_DIR}/{CONFIG_FILE}",
        next = single_quoted(next)
    );
    let failed = |reason: String| InfraError::BuilderReset { builder: builder.name.clone(), reason };
    match tokio::time::timeout(RESET_TIMEOUT, engine.exec_succeeds(&container, &["sh", "-c", &wait])).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(match engine.container_state(&container).await?.is_some_and(|s| s.running) {
                true => failed(format!("could not delete {previous} or write the next life's config")),
                false => failed("its container stopped".into()),
            })
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(failed(format!("buildkitd did not answer within {}s of its restart", RESET_TIMEOUT.as_secs())))
        }
    }
    builder.restarts_before = restarts(&container, engine).await?;
    Ok(builder)
}

/// `text` as one word of a POSIX shell command.
fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// How often Docker has restarted a builder's container so far.
async fn restarts(container: &str, engine: &Engine) -> Result<i64, InfraError> {
    Ok(engine.container_state(container).await?.map(|s| s.restarts).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_builder(janitor: &Janitor, kind: &Kind) {
        let name = janitor.builder_name(janitor.created.fetch_add(1, Ordering::Relaxed), &kind.profile);
        let builder =
            Builder { name, kind: kind.clone(), life: 1, log_lines_before: 0, debug_addr: None, restarts_before: 0 };
        janitor.idle.lock().unwrap().push(builder);
    }

    #[test]
    fn a_builder_is_kept_only_while_a_later_acquisition_wants_it() {
        let profile = |name: &str, image: &str| BuilderProfile {
            name: Name::parse(crate::names::NameKind::Profile, name).unwrap(),
            image: image.into(),
            buildkit: None,
            snapshotter: crate::profiles::Snapshotter::Stargz,
            buildkitd_flags: Vec::new(),
            buildkitd_config: toml::Table::new(),
        };
        let (p, other_image, unannounced) = (profile("p", "a"), profile("p", "b"), profile("q", "a"));
        let janitor = Janitor::new("a", true);
        janitor.expect(&p, 4);
        let kind = Kind::of(&p);
        // three jobs acquire at once; one acquisition is still to come
        for _ in 0..3 {
            assert!(janitor.take_idle(&kind).is_none());
        }
        assert!(janitor.wants_another(&kind), "the fourth repetition wants the first builder handed back");
        idle_builder(&janitor, &kind);
        assert!(!janitor.wants_another(&kind), "the idle builder covers the last acquisition");
        assert!(janitor.take_idle(&Kind::of(&other_image)).is_none(), "another image's builder is no stand-in");
        assert!(janitor.take_idle(&kind).is_some());
        assert!(!janitor.wants_another(&kind), "no acquisition is left");
        assert!(janitor.wants_another(&Kind::of(&unannounced)), "a kind whose demand is unknown is kept");
    }

    #[test]
    fn a_single_quoted_config_reaches_the_shell_byte_for_byte() {
        let config =
            "root = \"/var/lib/buildkit/life-2\"\n[registry.\"x\"]\nmirrors = ['it''s', \"$HOME `id` \\\\\"]\n";
        let script = format!("printf '%s' {}", single_quoted(config));
        let out = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), config);
    }
}
