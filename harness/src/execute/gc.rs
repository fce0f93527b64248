//! `bkcache gc`: what runs that no longer live left behind — a run killed before its clean-up (SIGKILL,
//! a crashed machine) leaves builders, their containers and volumes, registry refs and artifacts. A run
//! is dead when its lock can be taken (see [`super::locks`]); nothing of a live run is touched.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::builder::{self, CONTAINER_PREFIX};
use super::buildx::buildx;
use super::docker::Engine;
use super::locks;
use super::registry::Registry;
use crate::errors::InfraError;

/// What `bkcache gc` removed.
#[derive(Debug, Default)]
pub struct Collected {
    pub builders: Vec<String>,
    pub manifests: usize,
    pub artifact_dirs: Vec<std::path::PathBuf>,
    /// Whether the registry's unreferenced blobs were collected (not while a run is active).
    pub registry_collected: bool,
}

/// Removes the builders and registry refs of dead runs, and the artifact directories of dead runs
/// older than `older_than` (kept artifacts keep their registry refs until then).
pub async fn collect(
    engine: &Engine,
    registry: &Registry,
    artifacts_dir: &Path,
    older_than: Duration,
) -> Result<Collected, InfraError> {
    let mut collected = Collected::default();
    let mut alive: BTreeMap<String, bool> = BTreeMap::new();
    let mut is_dead = |run: &str| -> Result<bool, InfraError> {
        if let Some(a) = alive.get(run) {
            return Ok(!a);
        }
        let a = locks::run_alive(run)?;
        alive.insert(run.to_owned(), a);
        Ok(!a)
    };

    let mut builders: Vec<String> = engine
        .names_with_prefix(&format!("{CONTAINER_PREFIX}bkcache-"))
        .await?
        .iter()
        .filter_map(|n| builder::builder_of(n).map(str::to_owned))
        .collect();
    let ls = buildx(&["ls".into(), "--format".into(), "{{.Name}}".into()], Duration::from_secs(60)).await?;
    builders.extend(ls.require_success()?.stdout.lines().map(|l| l.trim().to_owned()));
    builders.sort();
    builders.dedup();
    for name in builders {
        let Some(run) = builder::run_of(&name) else { continue };
        if is_dead(run)? {
            builder::remove(&name, engine).await?;
            collected.builders.push(name);
        }
    }

    let stale = |dir: &Path| {
        let modified = std::fs::metadata(dir).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        modified.elapsed().unwrap_or_default() >= older_than
    };
    for (repo, run) in registry.run_repositories().await? {
        let artifacts = artifacts_dir.join(&run);
        if is_dead(&run)? && (!artifacts.exists() || stale(&artifacts)) {
            collected.manifests += registry.delete_repository(&repo).await?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(artifacts_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let run = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && crate::names::parse_run_id(&run).is_ok() && is_dead(&run)? && stale(&path) {
                std::fs::remove_dir_all(&path).map_err(InfraError::io(format!("removing {}", path.display())))?;
                collected.artifact_dirs.push(path);
            }
        }
    }

    if let Some(_owned) = locks::try_own_registry()? {
        registry.collect_garbage(engine).await?;
        collected.registry_collected = true;
    }
    Ok(collected)
}
