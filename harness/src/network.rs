//! The network policy: bkcache's builds and reads stay on loopback (this project's machines reach no
//! registry, and a harness run as root must not fetch from wherever a document or a Dockerfile says)
//! unless a scenario, profile or command opts in with `allow_network`. This module says what is on
//! loopback; the lint rules that apply it to Dockerfiles and profiles live with the lint.

/// Whether `host` (`name`, `name:port`, `[v6]:port`) is this machine's loopback: `localhost`,
/// `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(v6, _)| v6),
        // a bare IPv6 address has several colons and no port
        None if host.matches(':').count() > 1 => host,
        None => host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The registry host of an image reference, as docker resolves it: the first path component when it
/// has a `.` or `:` or is `localhost`, otherwise Docker Hub.
pub fn registry_host(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Whether pulling `reference` stays on this machine.
pub fn is_loopback_reference(reference: &str) -> bool {
    is_loopback_host(registry_host(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_8_localhost_and_v6_one() {
        for local in ["127.0.0.1:5000", "127.9.9.9", "localhost:5000", "LOCALHOST", "[::1]:5000", "::1"] {
            assert!(is_loopback_host(local), "{local}");
        }
        for remote in ["10.0.0.1:5000", "docker.io", "127.0.0.1.nip.io:5000", "[::2]:5000", "localhost.evil"] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
    }

    #[test]
    fn references_resolve_as_docker_does() {
        assert!(is_loopback_reference("127.0.0.1:5000/bkcache/buildkit:v0.24.0"));
        assert!(is_loopback_reference("localhost/x"));
        for remote in ["moby/buildkit:v0.24.0", "alpine", "ghcr.io/x/y", "registry:5000/x"] {
            assert!(!is_loopback_reference(remote), "{remote}");
        }
    }
}
