//! What a builder profile may pass to buildkitd, and the one buildkitd.toml bkcache writes.
//!
//! bkcache owns some of buildkitd's settings: the snapshotter (the profile's `snapshotter`), the state
//! root (builders are reset by pointing it at an empty directory), the debug log (laziness is read from
//! it), cache-key recording and the debug address it is read from (`--save-cache-debug`,
//! `--debugaddr`) and the local registry's table (plain http). A profile may add anything else, but it is parsed
//! and checked first: flags one per item, listen addresses only on loopback or a unix socket (builders
//! use host networking, so `tcp://0.0.0.0` would publish an unauthenticated BuildKit API), and the
//! config as TOML merged into bkcache's — never appended as text, where a bare key would land inside
//! bkcache's registry table.

/// Why a profile's buildkitd flag or config is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildkitdError {
    #[error("`{0}` is not one flag")]
    NotOneFlag(String),
    #[error("`{flag}` is set by bkcache ({why})")]
    Owned { flag: String, why: &'static str },
    #[error("`{0}` takes a value")]
    NeedsValue(String),
    #[error("`{address}` listens beyond this machine (builders use host networking)")]
    PublicAddress { address: String },
    #[error("not TOML: {message} (line {line} of the config)")]
    NotToml { message: String, line: usize },
    #[error("`{0}` is not a buildkitd.toml setting")]
    UnknownKey(String),
    #[error("`{key}` is set by bkcache ({why})")]
    OwnedKey { key: String, why: &'static str },
    #[error("`{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
}

impl BuildkitdError {
    pub fn fix(&self) -> String {
        match self {
            BuildkitdError::NotOneFlag(_) => "write one flag per item, as --name or --name=value".into(),
            BuildkitdError::Owned { flag, .. } if flag.starts_with("--oci-worker-snapshotter") => {
                "set the profile's `snapshotter` instead".into()
            }
            BuildkitdError::Owned { .. } | BuildkitdError::OwnedKey { .. } => "remove it".into(),
            BuildkitdError::NeedsValue(flag) => format!("write {flag}=VALUE in one item"),
            BuildkitdError::PublicAddress { .. } => "listen on unix:///run/buildkit/... or tcp://127.0.0.1:PORT".into(),
            BuildkitdError::NotToml { .. } => "write buildkitd.toml settings as TOML".into(),
            BuildkitdError::UnknownKey(_) => format!("use buildkitd.toml's own keys: {}", KNOWN_KEYS.join(", ")),
            BuildkitdError::WrongType { .. } => "see buildkitd.toml's documentation".into(),
        }
    }
}

/// buildkitd.toml's top-level keys (BuildKit's `cmd/buildkitd/config`).
const KNOWN_KEYS: &[&str] = &[
    "debug",
    "trace",
    "root",
    "insecure-entitlements",
    "entitlements",
    "log",
    "dns",
    "grpc",
    "otel",
    "worker",
    "registry",
    "frontend",
    "system",
    "history",
    "cdi",
    "provenance",
];

/// Flags that take a value, so `--flag value` split over two items would swallow the next flag.
const VALUE_FLAGS: &[&str] =
    &["--addr", "--group", "--allow-insecure-entitlement", "--tlscert", "--tlskey", "--tlscacert"];

pub fn check_flag(flag: &str) -> Result<(), BuildkitdError> {
    let one_flag = flag.starts_with("--")
        && flag.len() > 2
        && !flag.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '`' | '$'));
    if !one_flag {
        return Err(BuildkitdError::NotOneFlag(flag.to_owned()));
    }
    let (name, value) = match flag.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (flag, None),
    };
    let owned = |why| Err(BuildkitdError::Owned { flag: flag.to_owned(), why });
    match name {
        "--oci-worker-snapshotter" => return owned("from the profile's `snapshotter`"),
        "--root" => return owned("builders are reset by giving them a new state root"),
        "--config" => return owned("use the profile's `buildkitd_config`"),
        "--save-cache-debug" | "--debugaddr" => return owned("cache keys are read from buildkitd's debug address"),
        _ => {}
    }
    let takes_value =
        VALUE_FLAGS.contains(&name) || name.starts_with("--oci-worker-") || name.starts_with("--containerd-worker-");
    if takes_value && value.is_none_or(str::is_empty) && !is_boolean_worker_flag(name) {
        return Err(BuildkitdError::NeedsValue(name.to_owned()));
    }
    if name == "--addr" {
        check_listen(value.unwrap_or_default())?;
    }
    Ok(())
}

/// Worker flags that are switches (`--oci-worker-gc`, `--oci-worker-net`... take values; these do not).
fn is_boolean_worker_flag(name: &str) -> bool {
    matches!(name, "--oci-worker-gc" | "--oci-worker-rootless" | "--oci-worker-no-process-sandbox")
}

/// A listen address: a unix socket, or tcp on loopback.
fn check_listen(address: &str) -> Result<(), BuildkitdError> {
    if address.starts_with("unix://") {
        return Ok(());
    }
    let host = address.strip_prefix("tcp://").map(|rest| match rest.rsplit_once(':') {
        Some((host, _port)) => host,
        None => rest,
    });
    match host {
        Some("127.0.0.1" | "localhost" | "[::1]") => Ok(()),
        _ => Err(BuildkitdError::PublicAddress { address: address.to_owned() }),
    }
}

/// Parses and checks a profile's `buildkitd_config`.
pub fn check_config(text: &str, registry: &str) -> Result<toml::Table, BuildkitdError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| BuildkitdError::NotToml {
        message: e.message().trim().to_owned(),
        line: e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1),
    })?;
    for (key, value) in &table {
        match key.as_str() {
            "root" => {
                return Err(BuildkitdError::OwnedKey {
                    key: key.clone(),
                    why: "builders are reset by giving them a new state root",
                })
            }
            "debug" => {
                return Err(BuildkitdError::OwnedKey {
                    key: key.clone(),
                    why: "always on: laziness is read from the debug log",
                })
            }
            "registry" => {
                let hosts = value
                    .as_table()
                    .ok_or(BuildkitdError::WrongType { key: key.clone(), expected: "a table of registry hosts" })?;
                if hosts.contains_key(registry) {
                    return Err(BuildkitdError::OwnedKey {
                        key: format!("registry.\"{registry}\""),
                        why: "the local registry bkcache uses",
                    });
                }
            }
            "grpc" => {
                let grpc =
                    value.as_table().ok_or(BuildkitdError::WrongType { key: key.clone(), expected: "a table" })?;
                let addresses = grpc.get("address").map(|a| a.as_array().map(Vec::as_slice));
                for address in addresses
                    .unwrap_or(Some(&[]))
                    .ok_or(BuildkitdError::WrongType { key: "grpc.address".into(), expected: "a list of addresses" })?
                {
                    check_listen(address.as_str().unwrap_or_default())?;
                }
                if let Some(debug) = grpc.get("debugAddress") {
                    check_listen(debug.as_str().unwrap_or_default())?;
                }
            }
            known if KNOWN_KEYS.contains(&known) => {}
            unknown => return Err(BuildkitdError::UnknownKey(unknown.to_owned())),
        }
    }
    Ok(table)
}

/// The buildkitd.toml of a builder: its state root, the debug log, the local registry over plain http,
/// and the profile's checked settings merged in.
pub fn config(profile: &toml::Table, registry: &str, root: &str) -> String {
    let mut table = toml::Table::new();
    table.insert("root".into(), root.into());
    table.insert("debug".into(), true.into());
    let mut local = toml::Table::new();
    local.insert("http".into(), true.into());
    local.insert("insecure".into(), true.into());
    let mut registries = toml::Table::new();
    registries.insert(registry.into(), local.into());
    for (key, value) in profile {
        match (key.as_str(), value) {
            ("registry", toml::Value::Table(hosts)) => registries.extend(hosts.clone()),
            _ => {
                table.insert(key.clone(), value.clone());
            }
        }
    }
    table.insert("registry".into(), registries.into());
    toml::to_string(&table).expect("a TOML table serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = "127.0.0.1:5000";

    #[test]
    fn flags_are_one_item_each_and_listen_locally() {
        for ok in ["--oci-worker-gc", "--addr=unix:///run/x.sock", "--addr=tcp://127.0.0.1:6060", "--trace"] {
            assert_eq!(check_flag(ok), Ok(()), "{ok}");
        }
        for (bad, expected) in [
            ("--addr tcp://0.0.0.0:1234", "is not one flag"),
            ("--addr=tcp://0.0.0.0:1234", "listens beyond"),
            ("--addr=0.0.0.0:6060", "listens beyond"),
            ("--debugaddr=127.0.0.1:6060", "set by bkcache"),
            ("--save-cache-debug", "set by bkcache"),
            ("--addr", "takes a value"),
            ("--oci-worker-snapshotter=native", "set by bkcache"),
            ("--root=/tmp", "set by bkcache"),
            ("--config=/x", "set by bkcache"),
            ("addr", "is not one flag"),
            ("--x=$(id)", "is not one flag"),
        ] {
            let err = check_flag(bad).unwrap_err();
            assert!(err.to_string().contains(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn config_is_toml_without_what_bkcache_owns() {
        assert!(check_config("[worker.oci]\n  gc = false\n[registry.\"docker.io\"]\n  mirrors = [\"m\"]\n", REGISTRY)
            .is_ok());
        for (bad, expected) in [
            ("[registry.\"x\"\nhttp = true", "not TOML"),
            ("root = \"/tmp\"", "set by bkcache"),
            ("debug = false", "set by bkcache"),
            ("[registry.\"127.0.0.1:5000\"]\n  ca = [\"/etc/shadow\"]", "set by bkcache"),
            ("ca = [\"/etc/shadow\"]", "not a buildkitd.toml setting"),
            ("[grpc]\n  address = [\"tcp://0.0.0.0:1234\"]", "listens beyond"),
            ("registry = 1", "must be a table"),
        ] {
            let err = check_config(bad, REGISTRY).unwrap_err();
            assert!(err.to_string().contains(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn the_written_config_merges_the_profiles_registries_beside_the_local_one() {
        let profile =
            check_config("[registry.\"docker.io\"]\n  mirrors = [\"m\"]\n[worker.oci]\n  gc = false\n", REGISTRY)
                .unwrap();
        let written: toml::Table = toml::from_str(&config(&profile, REGISTRY, "/var/lib/buildkit/life-2")).unwrap();
        assert_eq!(written["root"].as_str(), Some("/var/lib/buildkit/life-2"));
        assert_eq!(written["debug"].as_bool(), Some(true));
        assert_eq!(written["registry"][REGISTRY]["http"].as_bool(), Some(true));
        assert_eq!(written["registry"]["docker.io"]["mirrors"][0].as_str(), Some("m"));
        assert_eq!(written["worker"]["oci"]["gc"].as_bool(), Some(false));
    }
}
