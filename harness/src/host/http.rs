//! Blocking HTTP (ureq) for the local registry and buildkitd's debug address, run off the async threads.

use std::time::Duration;

use crate::errors::InfraError;
use crate::safe_fs::DOCUMENT_LIMIT;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(TIMEOUT).build()
}

pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, InfraError> + Send + 'static,
) -> Result<T, InfraError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| InfraError::io("an HTTP request")(std::io::Error::other(e)))?
}

/// The body of `response` (from `url`), at most `DOCUMENT_LIMIT` bytes: a server is not trusted to
/// end what it sends.
pub fn read_body(response: ureq::Response, url: &str) -> Result<Vec<u8>, InfraError> {
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(response.into_reader(), DOCUMENT_LIMIT + 1), &mut body)
        .map_err(InfraError::io(format!("reading {url}")))?;
    if body.len() as u64 > DOCUMENT_LIMIT {
        return Err(InfraError::Untrusted {
            source_name: url.to_owned(),
            problem: format!("more than {DOCUMENT_LIMIT} bytes"),
        });
    }
    Ok(body)
}
