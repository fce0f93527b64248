//! Blocking HTTP (ureq) for the local registry and buildkitd's debug address, run off the async threads.

use std::time::Duration;

use crate::errors::InfraError;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(TIMEOUT).build()
}

pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, InfraError> + Send + 'static,
) -> Result<T, InfraError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| InfraError::io("an HTTP request")(std::io::Error::other(e)))?
}
