//! docker-container buildx builders owned by bkcache: created per cell, removed after it, and swept on
//! Ctrl-C. Every builder a run creates is named `bkcache-<run id>-<cell index>-<profile>` and registered
//! with the [`Janitor`] until it is removed.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::buildx::buildx;
use super::docker::Engine;
use crate::errors::InfraError;
use crate::plan::slug;
use crate::profiles::BuilderProfile;

const CREATE_TIMEOUT: Duration = Duration::from_secs(180);
const REMOVE_TIMEOUT: Duration = Duration::from_secs(60);

/// A running builder.
#[derive(Debug, Clone)]
pub struct Builder {
    pub name: String,
}

impl Builder {
    /// The container the docker-container driver runs buildkitd in.
    pub fn container(&self) -> String {
        format!("buildx_buildkit_{}0", self.name)
    }
}

/// The buildkitd.toml bkcache gives every builder: a debug log (laziness shows there) and the local
/// registry over plain http, then the profile's own config.
pub fn buildkitd_config(profile: &BuilderProfile, registry: &str) -> String {
    format!(
        "debug = true\n\n[registry.\"{registry}\"]\n  http = true\n  insecure = true\n\n{}\n",
        profile.buildkitd_config
    )
}

/// Tracks the builders a run has alive, so an interrupted run can remove them.
#[derive(Clone, Default)]
pub struct Janitor {
    live: Arc<Mutex<Vec<String>>>,
    prefix: String,
}

impl Janitor {
    pub fn new(run_id: &str) -> Self {
        Janitor { live: Arc::default(), prefix: format!("bkcache-{run_id}-") }
    }

    /// Unique per cell, so cells on the same profile can run at the same time.
    pub fn builder_name(&self, cell_index: usize, profile: &BuilderProfile) -> String {
        format!("{}{cell_index}-{}", self.prefix, slug(&profile.name))
    }

    /// Creates and boots a builder for `profile`; its buildkitd.toml is written into `work_dir`.
    pub async fn create(
        &self,
        cell_index: usize,
        profile: &BuilderProfile,
        registry: &str,
        work_dir: &Path,
    ) -> Result<Builder, InfraError> {
        let name = self.builder_name(cell_index, profile);
        let config = work_dir.join("buildkitd.toml");
        std::fs::write(&config, buildkitd_config(profile, registry))
            .map_err(InfraError::io(format!("writing {}", config.display())))?;
        self.live.lock().expect("janitor lock").push(name.clone());
        let args = vec![
            "create".into(),
            "--name".into(),
            name.clone(),
            "--driver".into(),
            "docker-container".into(),
            "--driver-opt".into(),
            "network=host".into(),
            "--driver-opt".into(),
            format!("image={}", profile.image),
            "--buildkitd-flags".into(),
            profile.all_buildkitd_flags().join(" "),
            "--buildkitd-config".into(),
            config.display().to_string(),
            "--bootstrap".into(),
        ];
        buildx(&args, CREATE_TIMEOUT).await?.require_success()?;
        Ok(Builder { name })
    }

    /// Removes a builder with its container and state volume.
    pub async fn remove(&self, name: &str, engine: &Engine) -> Result<(), InfraError> {
        let removed = buildx(&["rm".into(), "--force".into(), name.to_owned()], REMOVE_TIMEOUT)
            .await
            .and_then(|rm| rm.require_success());
        if removed.is_err() {
            // what buildx could not remove (or never registered), the engine API removes
            engine.remove_by_prefix(&format!("buildx_buildkit_{name}")).await?;
        }
        self.live.lock().expect("janitor lock").retain(|n| n != name);
        Ok(())
    }

    /// Removes every builder this run still has, then anything left under its prefix.
    pub async fn sweep(&self, engine: &Engine) -> Vec<InfraError> {
        let names: Vec<String> = self.live.lock().expect("janitor lock").clone();
        let mut errors = Vec::new();
        for name in names {
            if let Err(e) = self.remove(&name, engine).await {
                errors.push(e);
            }
        }
        if let Err(e) = engine.remove_by_prefix(&format!("buildx_buildkit_{}", self.prefix)).await {
            errors.push(e);
        }
        errors
    }
}
