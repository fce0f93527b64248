//! Bases a scenario declares (`{ from = "base-a", content = "v1" }`): each repetition pushes them to refs
//! of its own before its first phase, and a drift phase pushes one again under the same tag with other
//! content — the base moved on, as a team's base image does between two CI builds.
//!
//! They are built on a helper builder of the repetition, never on the cell's own: the cell's builder
//! must start from a fresh builder's state, and a base build would leave records and pulled layers in it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::errors::InfraError;
use crate::host::builder::Builder;
use crate::host::buildx::buildx;
use crate::host::Machine;
use crate::names::{Name, NameKind};
use crate::profiles::{BuilderProfile, Snapshotter};
use crate::scenario::{DeclaredBase, BASE_CONTENT_PATH};

const PUSH_TIMEOUT: Duration = Duration::from_secs(300);

/// The Dockerfile of a declared base, FROM the image it is made from.
pub fn dockerfile(from: &str) -> String {
    format!("FROM {from}\nCOPY content {BASE_CONTENT_PATH}\n")
}

/// The `docker buildx` arguments that build the context `dir` (see [`dockerfile`]) and push it as
/// `reference`, its new layers eStargz when asked; one image manifest, without the provenance
/// attestation that would make it an index (a delete-layers phase reads the image's layers from it).
pub fn push_args(builder: &str, reference: &str, estargz: bool, dir: &str) -> Vec<String> {
    let mut output = format!("type=image,name={reference},push=true,registry.insecure=true");
    if estargz {
        output.push_str(",compression=estargz,force-compression=true,oci-mediatypes=true");
    }
    ["build", "--builder", builder, "--progress", "plain", "--provenance=false", "--output", &output, dir]
        .map(str::to_owned)
        .to_vec()
}

/// The helper builder's profile: the cell's BuildKit image with the eager snapshotter and no flags.
pub fn helper_profile(cell_profile: &BuilderProfile) -> BuilderProfile {
    BuilderProfile {
        name: Name::parse(NameKind::Profile, "bases").expect("a valid name"),
        image: cell_profile.image.clone(),
        buildkit: None,
        snapshotter: Snapshotter::Overlayfs,
        buildkitd_flags: Vec::new(),
        buildkitd_config: toml::Table::new(),
    }
}

/// A repetition's helper builder, created on first use and handed back with [`Helper::release`].
pub struct Helper<'a> {
    machine: &'a Machine,
    profile: Arc<BuilderProfile>,
    builder: Option<Builder>,
}

impl<'a> Helper<'a> {
    pub fn new(machine: &'a Machine, cell_profile: &BuilderProfile) -> Self {
        Helper { machine, profile: Arc::new(helper_profile(cell_profile)), builder: None }
    }

    /// Pushes `base` with `content` to `reference`; `from` is the reference of the image it is made from;
    /// `dir` a directory of the repetition for the build context.
    pub async fn push(
        &mut self,
        base: &DeclaredBase,
        content: &str,
        reference: &str,
        from: &str,
        dir: &Path,
    ) -> Result<(), InfraError> {
        let builder = match &self.builder {
            Some(b) => b.name.clone(),
            None => {
                let config_dir = dir.join("bases");
                std::fs::create_dir_all(&config_dir).map_err(InfraError::io("creating the bases directory"))?;
                let machine = self.machine;
                let b = machine
                    .janitor
                    .acquire(&self.profile, &machine.registry.addr, &config_dir, &machine.engine)
                    .await?;
                let name = b.name.clone();
                self.builder = Some(b);
                name
            }
        };
        let context = dir.join("bases").join(base.tag.as_str());
        let io = |what: &str| InfraError::io(format!("writing the context of base `{}`: {what}", base.tag));
        std::fs::create_dir_all(&context).map_err(io("directory"))?;
        std::fs::write(context.join("Dockerfile"), dockerfile(from)).map_err(io("Dockerfile"))?;
        std::fs::write(context.join("content"), content).map_err(io("content"))?;
        let args = push_args(&builder, reference, base.estargz, &context.display().to_string());
        buildx(&args, PUSH_TIMEOUT).await?.require_success()?;
        Ok(())
    }

    pub async fn release(self) -> Result<(), InfraError> {
        match self.builder {
            Some(b) => self.machine.janitor.release(b, true, &self.machine.engine).await.outcome,
            None => Ok(()),
        }
    }
}
