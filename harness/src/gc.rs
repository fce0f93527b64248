//! `bkcache gc`: what runs that no longer live left behind — a run killed before its clean-up (SIGKILL,
//! a crashed machine) leaves builders, their containers and volumes, registry refs and artifacts.
//!
//! gc runs as root on shared machines, so it deletes only what carries bkcache's mark, never by name
//! alone: a builder container whose environment holds its run's [`builder::ownership_mark`]; an
//! artifacts directory (a real one, not a link) holding a [`RUN_MARKER`](crate::artifacts::RUN_MARKER) file that names it; registry
//! repositories under bkcache's own prefixes. A run is dead when its lock can be taken in the lock
//! directory every bkcache process finds ([`locks::dir`]), so nothing of a live run is touched. It
//! refuses to look into `/`, the home directory or a repository's root, and says what it removes (or
//! would, with `dry_run`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::artifacts::carries_run_mark;
use crate::errors::{ConfigError, InfraError};
use crate::host::builder;
use crate::host::docker::Engine;
use crate::host::locks;
use crate::host::registry::Registry;
use crate::host::BuilderName;
use crate::session::Error;

/// What `bkcache gc` removed (or, dry, would remove), and what it left because it carries no mark.
#[derive(Debug, Default)]
pub struct Collected {
    pub builders: Vec<String>,
    pub repositories: Vec<String>,
    pub manifests: usize,
    pub artifact_dirs: Vec<PathBuf>,
    /// Names that look like bkcache's but carry no mark of it: not touched.
    pub unmarked: Vec<String>,
    /// Whether the registry's unreferenced blobs were collected (not while a run is active, not dry).
    pub registry_collected: bool,
}

/// Refuses artifacts directories whose sub-directories are the machine's or a project's own.
pub fn check_artifacts_dir(dir: &Path) -> Result<(), ConfigError> {
    let refuse = |why: &str| {
        Err(ConfigError::Usage {
            message: format!("--artifacts-dir {}: {why}; gc will not look for runs to delete there", dir.display()),
            fix: "name the directory runs were given as --artifacts-dir (default bkcache-artifacts)".into(),
        })
    };
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    if resolved.parent().is_none() {
        return refuse("is the root directory");
    }
    if std::env::var_os("HOME").is_some_and(|home| Path::new(&home) == resolved) {
        return refuse("is the home directory");
    }
    if let Some(found) = [".git", "Cargo.toml"].into_iter().find(|f| resolved.join(f).exists()) {
        return refuse(&format!("holds {found}: it is a repository"));
    }
    Ok(())
}

/// Removes the builders and registry refs of dead runs, and the marked artifact directories of dead
/// runs older than `older_than` (kept artifacts keep their registry refs until then).
pub async fn collect(
    engine: &Engine,
    registry: &Registry,
    artifacts_dir: &Path,
    older_than: Duration,
    dry_run: bool,
) -> Result<Collected, Error> {
    check_artifacts_dir(artifacts_dir)?;
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

    let names = engine.names_with_prefix(&BuilderName::any_container_prefix()).await?;
    let builders: Vec<BuilderName> = names.iter().filter_map(|n| BuilderName::parse(n)).collect();
    let containers: Vec<&String> = names.iter().filter(|n| builders.iter().any(|b| b.container() == **n)).collect();
    for container in &containers {
        let Some(builder) = BuilderName::parse(container) else { continue };
        if !is_dead(builder.run())? {
            continue;
        }
        let env = engine.container_env(container).await?.unwrap_or_default();
        if !env.contains(&builder::ownership_mark(builder.run())) {
            collected.unmarked.push(format!("container {container}"));
            continue;
        }
        if !dry_run {
            builder::remove(&builder.to_string(), engine).await?;
        }
        collected.builders.push(builder.to_string());
    }
    // a state volume whose container is gone carries no mark: left, and said
    for builder in builders.iter().filter(|b| names.contains(&b.volume()) && !names.contains(&b.container())) {
        collected.unmarked.push(format!("volume {} (its container is gone)", builder.volume()));
    }

    let stale = |dir: &Path| {
        let modified = std::fs::symlink_metadata(dir).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        modified.elapsed().unwrap_or_default() >= older_than
    };
    for (repo, run) in registry.run_repositories().await? {
        let artifacts = artifacts_dir.join(&run);
        if is_dead(&run)? && (!artifacts.exists() || stale(&artifacts)) {
            if !dry_run {
                collected.manifests += registry.delete_repository(&repo).await?;
            }
            collected.repositories.push(repo);
        }
    }
    if let Ok(entries) = std::fs::read_dir(artifacts_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let run = entry.file_name().to_string_lossy().into_owned();
            // file_type() does not follow a link: a link to a directory is not a run's directory
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir || crate::names::parse_run_id(&run).is_err() || !is_dead(&run)? || !stale(&path) {
                continue;
            }
            if !carries_run_mark(&path, &run) {
                collected.unmarked.push(format!("directory {}", path.display()));
                continue;
            }
            if !dry_run {
                std::fs::remove_dir_all(&path).map_err(InfraError::io(format!("removing {}", path.display())))?;
            }
            collected.artifact_dirs.push(path);
        }
    }

    if !dry_run {
        if let Some(_owned) = locks::try_own_registry()? {
            registry.collect_garbage(engine).await?;
            collected.registry_collected = true;
        }
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_home_and_repositories_are_refused() {
        assert!(check_artifacts_dir(Path::new("/")).is_err());
        let checkout = tempfile::tempdir().unwrap();
        std::fs::write(checkout.path().join("Cargo.toml"), "").unwrap();
        assert!(check_artifacts_dir(checkout.path()).unwrap_err().to_string().contains("Cargo.toml"));
        let plain = tempfile::tempdir().unwrap();
        check_artifacts_dir(plain.path()).unwrap();
    }
}
