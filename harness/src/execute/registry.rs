//! The local registry (distribution, on loopback): is it up, does it hold an image.

use std::time::Duration;

use crate::errors::InfraError;

#[derive(Debug, Clone)]
pub struct Registry {
    pub addr: String,
}

const TIMEOUT: Duration = Duration::from_secs(10);
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl Registry {
    pub fn new(addr: &str) -> Self {
        Registry { addr: addr.to_owned() }
    }

    /// Checks the registry answers its API root.
    pub async fn ping(&self) -> Result<(), InfraError> {
        let url = format!("http://{}/v2/", self.addr);
        let addr = self.addr.clone();
        blocking(move || match agent().get(&url).call() {
            Ok(_) => Ok(()),
            Err(e) => Err(InfraError::RegistryUnreachable { addr, reason: e.to_string() }),
        })
        .await
    }

    /// Whether `reference` (`<this registry>/repo:tag`) has a manifest here.
    pub async fn has_image(&self, reference: &str) -> Result<bool, InfraError> {
        let Some(path) = reference.strip_prefix(&format!("{}/", self.addr)) else {
            return Ok(false);
        };
        let (repo, tag) = path.rsplit_once(':').unwrap_or((path, "latest"));
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.addr);
        let addr = self.addr.clone();
        blocking(move || match agent().head(&url).set("Accept", MANIFEST_TYPES).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(InfraError::RegistryUnreachable { addr, reason: e.to_string() }),
        })
        .await
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(TIMEOUT).build()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, InfraError> + Send + 'static,
) -> Result<T, InfraError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| InfraError::io("registry request")(std::io::Error::other(e)))?
}
