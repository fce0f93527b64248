//! Cache-key plaintexts from buildkitd's debug address. Started with `--save-cache-debug`, buildkitd
//! keeps the text every cache-key digest was computed from (an op's definition, a base's manifest
//! digest, file checksums) in `<root>/cache-debug.db`, and serves it on `--debugaddr`:
//! `/debug/cache/all` (every digest with its plaintext) and `/debug/cache/store` (the local cache-key
//! graph: what this build's steps were keyed by). bkcache saves both after each build; `observe` maps
//! cache records to Dockerfile steps with them, and compares two builds' keys of a step.

use std::path::Path;

use super::http::{agent, blocking, read_body};
use crate::artifacts::dump_path;
use crate::errors::InfraError;

/// The endpoints saved, with the file suffix each is saved under.
pub const DUMPS: [(&str, &str); 2] = [("/debug/cache/all", "keys.json"), ("/debug/cache/store", "store.json")];

/// Saves what `addr` (buildkitd's debug address) serves into `<dir>/<stem>.<suffix>` for each of [`DUMPS`].
pub async fn save(addr: &str, dir: &Path, stem: &str) -> Result<(), InfraError> {
    for (endpoint, suffix) in DUMPS {
        let url = format!("http://{addr}{endpoint}");
        let path = dump_path(&dir.join(stem), suffix);
        blocking(move || {
            let response = agent().get(&url).set("Accept", "application/json").call().map_err(|e| {
                InfraError::Command { command: format!("GET {url}"), status: "failed".into(), stderr: e.to_string() }
            })?;
            let body = read_body(response, &url)?;
            std::fs::write(&path, body).map_err(InfraError::io(format!("writing {}", path.display())))
        })
        .await?;
    }
    Ok(())
}

/// Where the kernel takes the source ports of outgoing connections (and `bind` to port 0) from.
const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// The lowest port a builder's debug address gets.
const LOWEST_DEBUG_PORT: u16 = 10_000;

/// A loopback port nobody listens on now, for a builder's debug address (builders use host networking).
/// It is picked at random below the kernel's ephemeral range, checked free by binding it: a port from
/// that range can be taken between this pick and buildkitd's bind by the source port of any outgoing
/// connection (a CI run saw buildkitd fail to bind such a port five times), and a random pick keeps
/// parallel runs, each in its own process, from choosing the same one.
pub fn free_loopback_port() -> Result<u16, InfraError> {
    let below = ephemeral_low(&std::fs::read_to_string(EPHEMERAL_RANGE).unwrap_or_default());
    let range = LOWEST_DEBUG_PORT..below.max(LOWEST_DEBUG_PORT + 1_000);
    let mut last = None;
    for _ in 0..100 {
        let port = fastrand::u16(range.clone());
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(InfraError::io("finding a free port below the ephemeral range")(last.expect("100 tries")))
}

/// The lower end of `ip_local_port_range` (`32768\t60999`), or Linux's default when unreadable.
fn ephemeral_low(range: &str) -> u16 {
    range.split_whitespace().next().and_then(|low| low.parse().ok()).unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_name_with_a_dot_keeps_it_in_its_dump_names() {
        assert_eq!(dump_path(Path::new("/r/export.v2"), "keys.json"), Path::new("/r/export.v2.keys.json"));
    }

    #[test]
    fn debug_ports_come_from_below_the_ephemeral_range() {
        assert_eq!(ephemeral_low("32768\t60999\n"), 32768);
        assert_eq!(ephemeral_low("1024 65535"), 1024);
        assert_eq!(ephemeral_low(""), 32768);
        let low = ephemeral_low(&std::fs::read_to_string(EPHEMERAL_RANGE).unwrap());
        for _ in 0..20 {
            let port = free_loopback_port().unwrap();
            assert!((LOWEST_DEBUG_PORT..low.max(LOWEST_DEBUG_PORT + 1_000)).contains(&port), "{port}");
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        }
    }
}
