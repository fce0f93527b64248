//! Cache-key plaintexts from buildkitd's debug address. Started with `--save-cache-debug`, buildkitd
//! keeps the text every cache-key digest was computed from (an op's definition, a base's manifest
//! digest, file checksums) in `<root>/cache-debug.db`, and serves it on `--debugaddr`:
//! `/debug/cache/all` (every digest with its plaintext) and `/debug/cache/store` (the local cache-key
//! graph: what this build's steps were keyed by). bkcache saves both after each build; `observe` maps
//! cache records to Dockerfile steps with them, and compares two builds' keys of a step.

use std::path::Path;

use super::http::{agent, blocking};
use crate::errors::InfraError;

/// The endpoints saved, with the file suffix each is saved under.
pub const DUMPS: [(&str, &str); 2] = [("/debug/cache/all", "keys.json"), ("/debug/cache/store", "store.json")];

/// Saves what `addr` (buildkitd's debug address) serves into `<dir>/<stem>.<suffix>` for each of [`DUMPS`].
pub async fn save(addr: &str, dir: &Path, stem: &str) -> Result<(), InfraError> {
    for (endpoint, suffix) in DUMPS {
        let url = format!("http://{addr}{endpoint}");
        let path = dir.join(format!("{stem}.{suffix}"));
        blocking(move || {
            let response = agent().get(&url).set("Accept", "application/json").call().map_err(|e| {
                InfraError::Command { command: format!("GET {url}"), status: "failed".into(), stderr: e.to_string() }
            })?;
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
                .map_err(InfraError::io(format!("reading {url}")))?;
            std::fs::write(&path, body).map_err(InfraError::io(format!("writing {}", path.display())))
        })
        .await?;
    }
    Ok(())
}

/// A loopback port nobody listens on now, for a builder's debug address (builders use host networking).
pub fn free_loopback_port() -> Result<u16, InfraError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(InfraError::io("finding a free port"))?;
    listener.local_addr().map(|a| a.port()).map_err(InfraError::io("finding a free port"))
}
