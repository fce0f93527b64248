//! Bases a scenario declares (`{ from = "base-a", content = "v1" }`): each repetition pushes them to refs
//! of its own before its first phase, and a drift phase pushes one again under the same tag with other
//! content — the base moved on, as a team's base image does between two CI builds.
//!
//! They are built on a helper builder of the repetition, never on the cell's own: the cell's builder
//! must start from a fresh builder's state, and a base build would leave records and pulled layers in it.

use std::path::Path;
use std::sync::Arc;

use crate::errors::InfraError;
use crate::host::builder::Builder;
use crate::host::buildx::buildx;
use crate::host::Machine;
use crate::images::bases::{push_args, pushing_profile, PUSH_TIMEOUT};
use crate::profiles::BuilderProfile;
use crate::scenario::{DeclaredBase, BASE_CONTENT_PATH};

/// The Dockerfile of a declared base, FROM the image it is made from.
pub fn dockerfile(from: &str) -> String {
    format!("FROM {from}\nCOPY content {BASE_CONTENT_PATH}\n")
}

/// A repetition's helper builder, created on first use and handed back with [`Helper::release`].
pub struct Helper<'a> {
    machine: &'a Machine,
    profile: Arc<BuilderProfile>,
    builder: Option<Builder>,
}

impl<'a> Helper<'a> {
    pub fn new(machine: &'a Machine, cell_profile: &BuilderProfile) -> Self {
        Helper { machine, profile: Arc::new(pushing_profile(&cell_profile.image)), builder: None }
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
