//! `bkcache capture`: the artifacts of a user's own build, outside any scenario, in the form a
//! repetition leaves them, so `bkcache explain DIR` says why its steps were not CACHED.
//!
//! Each capture runs one `docker buildx build` (the user's arguments, plus `--progress=rawjson`) on the
//! user's builder and adds it to `DIR` as a phase: its rawjson stream; the documents of the caches it
//! imports (copied before the build) and exports (after it) — local directories, and registry refs
//! served over plain HTTP; the builder's log for the build's time when it is a docker-container builder
//! (with `debug = true` it holds the cache loads BuildKit failed); and, given `--debug-addr`, the
//! key plaintexts of a buildkitd started with `--save-cache-debug --debugaddr=ADDR`, which map cache
//! records to steps. Captures of two builds into one `DIR` (the exporting one, then the importing one)
//! let `explain` label the imported records with the steps of the build that exported them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::artifacts::{CacheArtifact, RawBuild, RawPhase, RawRepetition, RAW_FILE};
use crate::errors::InfraError;
use crate::host::buildx::buildx;
use crate::host::docker::Engine;
use crate::host::keys;
use crate::host::registry::Registry;
use crate::names::{Name, NameError, NameKind};
use crate::network::is_loopback_host;
use crate::observe::cache::copy_documents;
use crate::safe_fs::{read_regular, DOCUMENT_LIMIT};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}\n  fix: {fix}", fix = .0.fix())]
    PhaseName(#[from] NameError),
    #[error("{dir}: already holds a phase `{phase}`\n  fix: give this build another --phase", dir = .dir.display())]
    PhaseExists { dir: PathBuf, phase: String },
    #[error("`{arg}`: {problem}\n  fix: {fix}")]
    Argument { arg: String, problem: String, fix: String },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// What one capture did, for the user.
#[derive(Debug)]
pub struct Captured {
    pub phase: String,
    pub succeeded: bool,
    /// Caches it could not capture, and why.
    pub skipped: Vec<String>,
    pub builder_log: bool,
    pub key_dumps: bool,
}

/// A `--cache-from` / `--cache-to` value bkcache can copy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CacheLocation {
    Local(PathBuf),
    /// `host/repo:tag` in a registry served over plain HTTP.
    Registry {
        host: String,
        repo: String,
        tag: String,
    },
    /// Another backend, or a form bkcache does not copy: said so, not captured.
    Other(String),
}

impl CacheLocation {
    /// The name the cache is known by in the capture: the same location gets the same name in every
    /// phase, so an import is matched with the export that wrote it.
    fn name(&self) -> String {
        match self {
            CacheLocation::Local(path) => format!("local:{}", path.display()),
            CacheLocation::Registry { host, repo, tag } => format!("registry:{host}/{repo}:{tag}"),
            CacheLocation::Other(value) => value.clone(),
        }
    }
}

/// Parses a cache option's value, buildx's CSV form (`type=local,src=/c`, `type=registry,ref=r:t`).
fn cache_location(flag: &str, value: &str, export: bool) -> Result<CacheLocation, CaptureError> {
    let bad = |problem: &str| CaptureError::Argument {
        arg: format!("{flag} {value}"),
        problem: problem.to_owned(),
        fix: "write it as buildx does, e.g. `type=local,src=DIR` or `type=registry,ref=HOST/REPO:TAG`".into(),
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(value.as_bytes());
    let record = reader.records().next().ok_or_else(|| bad("is empty"))?.map_err(|e| bad(&e.to_string()))?;
    let mut attrs = std::collections::BTreeMap::new();
    for field in &record {
        match field.split_once('=') {
            Some((key, val)) => attrs.insert(key.trim().to_owned(), val.to_owned()),
            // buildx's shorthand: a bare ref means a registry cache
            None if record.len() == 1 => attrs.insert("ref".into(), field.to_owned()),
            None => return Err(bad(&format!("field `{field}` is not key=value"))),
        };
    }
    let kind = attrs.get("type").map(String::as_str).unwrap_or("registry");
    match kind {
        "local" => {
            let key = if export { "dest" } else { "src" };
            let dir = attrs.get(key).ok_or_else(|| bad(&format!("a local cache needs `{key}=DIR`")))?;
            Ok(CacheLocation::Local(PathBuf::from(dir)))
        }
        "registry" => {
            let reference = attrs.get("ref").ok_or_else(|| bad("a registry cache needs `ref=HOST/REPO:TAG`"))?;
            let (host, path) = reference.split_once('/').ok_or_else(|| bad("the ref names no registry host"))?;
            let (repo, tag) = path.rsplit_once(':').unwrap_or((path, "latest"));
            // the distribution grammar: both end up in URL paths
            let repo_ok = repo.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                    && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            });
            let tag_ok = tag.len() <= 128
                && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !repo_ok || !tag_ok {
                return Err(bad("the ref's repository or tag is not in the registry's grammar"));
            }
            Ok(CacheLocation::Registry { host: host.into(), repo: repo.into(), tag: tag.into() })
        }
        other => Ok(CacheLocation::Other(format!("{other}: {value}"))),
    }
}

/// The user's build arguments, checked: their cache locations and builder.
#[derive(Debug)]
struct BuildArgs {
    imports: Vec<CacheLocation>,
    exports: Vec<CacheLocation>,
    builder: Option<String>,
}

fn parse_args(args: &[String]) -> Result<BuildArgs, CaptureError> {
    let mut parsed = BuildArgs { imports: Vec::new(), exports: Vec::new(), builder: None };
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (args[i].as_str(), None),
        };
        let takes_value = matches!(flag, "--cache-from" | "--cache-to" | "--builder" | "--progress");
        let value = match (takes_value, inline) {
            (false, _) => None,
            (true, Some(v)) => Some(v),
            (true, None) => {
                i += 1;
                Some(args.get(i).cloned().ok_or_else(|| CaptureError::Argument {
                    arg: flag.to_owned(),
                    problem: "has no value".into(),
                    fix: format!("give it one: `{flag} VALUE`"),
                })?)
            }
        };
        match (flag, value) {
            ("--cache-from", Some(v)) => parsed.imports.push(cache_location(flag, &v, false)?),
            ("--cache-to", Some(v)) => parsed.exports.push(cache_location(flag, &v, true)?),
            ("--builder", Some(v)) => parsed.builder = Some(v),
            ("--progress", Some(v)) if v != "rawjson" => {
                return Err(CaptureError::Argument {
                    arg: format!("--progress {v}"),
                    problem: "bkcache reads the build's steps from --progress=rawjson".into(),
                    fix: "leave --progress out: bkcache adds --progress=rawjson".into(),
                })
            }
            _ => {}
        }
        i += 1;
    }
    Ok(parsed)
}

/// `--debug-addr`: a `host:port` the debug endpoints' URLs are built from, on loopback unless allowed.
fn check_debug_addr(addr: &str, allow_network: bool) -> Result<(), CaptureError> {
    if !allow_network && !is_loopback_host(addr) {
        return Err(CaptureError::Argument {
            arg: format!("--debug-addr {addr}"),
            problem: "is not on this machine".into(),
            fix: "give a loopback address (buildkitd on the host network listens there), or pass --allow-network"
                .into(),
        });
    }
    let fits = addr.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok_and(|p| p > 0)
            && !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
    });
    match fits {
        true => Ok(()),
        false => Err(CaptureError::Argument {
            arg: format!("--debug-addr {addr}"),
            problem: "is not a host:port".into(),
            fix: "give the address buildkitd's --debugaddr listens on, e.g. 127.0.0.1:6060".into(),
        }),
    }
}

/// Copies the documents of the OCI layout at `src` (index, manifests, configs; no layers) to `dst`:
/// regular files only, no link followed, each verified against the digest that names it.
fn copy_layout(src: &Path, dst: &Path) -> Result<(), InfraError> {
    let read = |path: PathBuf| {
        read_regular(&path, DOCUMENT_LIMIT).map_err(InfraError::io(format!("reading {}", path.display())))
    };
    let blobs = dst.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(InfraError::io(format!("creating {}", blobs.display())))?;
    let index = read(src.join("index.json"))?;
    std::fs::write(dst.join("index.json"), &index).map_err(InfraError::io(format!("writing {}", dst.display())))?;
    copy_documents(
        index,
        |child| read(child.digest.blob_path(src)),
        |digest, body| {
            let path = digest.blob_path(dst);
            std::fs::write(&path, body).map_err(InfraError::io(format!("writing {}", path.display())))
        },
    )
    .map_err(|e| e.into_infra(&src.display().to_string()))
}

/// Copies the cache at `location` into `dir`; `Ok(Some(why))` when it cannot be captured.
async fn copy_cache(location: &CacheLocation, dir: &Path, allow_network: bool) -> Result<Option<String>, InfraError> {
    match location {
        CacheLocation::Registry { host, .. } if !allow_network && !is_loopback_host(host) => Ok(Some(format!(
            "{}: not on this machine; bkcache reads only loopback registries unless given --allow-network",
            location.name()
        ))),
        CacheLocation::Local(src) if !src.join("index.json").is_file() => {
            Ok(Some(format!("{}: no index.json (nothing there yet)", src.display())))
        }
        CacheLocation::Local(src) => copy_layout(src, dir).map(|()| None),
        CacheLocation::Registry { host, repo, tag } => {
            let registry = Registry { addr: host.clone(), container: String::new() };
            match registry.fetch_layout(repo, tag, dir).await {
                Ok(()) => Ok(None),
                Err(e) => Ok(Some(format!(
                    "{}: {} (bkcache reads registries over plain HTTP)",
                    location.name(),
                    crate::errors::with_sources(&e)
                ))),
            }
        }
        CacheLocation::Other(what) => Ok(Some(format!("{what}: bkcache copies local and registry caches only"))),
    }
}

/// Where each cache of `locations` is copied to in the capture.
fn places(dir: &Path, phase: &str, direction: &str, locations: &[CacheLocation]) -> Vec<(CacheLocation, PathBuf)> {
    let place = |i: usize| dir.join("caches").join(format!("{phase}-{direction}-{i}"));
    locations.iter().enumerate().map(|(i, l)| (l.clone(), place(i))).collect()
}

/// Copies each cache to its place; those that cannot be captured are said in `skipped`.
async fn copy_caches(
    places: &[(CacheLocation, PathBuf)],
    allow_network: bool,
    skipped: &mut Vec<String>,
) -> Result<Vec<CacheArtifact>, InfraError> {
    let mut artifacts = Vec::new();
    for (location, cache_dir) in places {
        match copy_cache(location, cache_dir, allow_network).await? {
            None => artifacts.push(CacheArtifact { name: location.name(), dir: cache_dir.clone(), mode_max: None }),
            Some(why) => skipped.push(why),
        }
    }
    Ok(artifacts)
}

/// Runs one build of the user's (`args`: what follows `docker buildx build`) and adds it to `dir` as
/// phase `phase` (default `build-<n>`).
pub async fn capture(
    dir: &Path,
    phase: Option<&str>,
    debug_addr: Option<&str>,
    args: &[String],
    timeout: Duration,
    allow_network: bool,
) -> Result<Captured, CaptureError> {
    let parsed = parse_args(args)?;
    let phase = phase.map(|p| Name::parse(NameKind::Phase, p)).transpose()?;
    if let Some(addr) = debug_addr {
        check_debug_addr(addr, allow_network)?;
    }
    std::fs::create_dir_all(dir).map_err(InfraError::io(format!("creating {}", dir.display())))?;
    let mut raw = match dir.join(RAW_FILE).is_file() {
        true => RawRepetition::load(dir)?,
        false => RawRepetition::default(),
    };
    let phase = phase.map_or_else(|| format!("build-{}", raw.phases.len() + 1), |p| p.to_string());
    if raw.phases.iter().any(|p| p.phase == phase) {
        return Err(CaptureError::PhaseExists { dir: dir.to_owned(), phase });
    }
    let mut skipped = Vec::new();
    let imports = places(dir, &phase, "from", &parsed.imports);
    let exports = places(dir, &phase, "to", &parsed.exports);
    let imported = copy_caches(&imports, allow_network, &mut skipped).await?;

    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok().and_then(|d| i32::try_from(d.as_secs()).ok());
    let start = Instant::now();
    let mut command: Vec<String> = vec!["build".into(), "--progress=rawjson".into()];
    command.extend(args.iter().cloned());
    let build = buildx(&command, timeout).await?;
    let duration = start.elapsed();
    let exported = if build.success { copy_caches(&exports, allow_network, &mut skipped).await? } else { Vec::new() };

    let key_dumps = match debug_addr.filter(|_| build.success) {
        Some(addr) => {
            keys::save(addr, dir, &phase).await?;
            Some(dir.join(&phase))
        }
        None => None,
    };
    let builder_log = append_builder_log(dir, parsed.builder.as_deref(), since).await?;
    let rawjson_path = dir.join(format!("{phase}.rawjson"));
    std::fs::write(&rawjson_path, &build.stderr)
        .map_err(InfraError::io(format!("writing {}", rawjson_path.display())))?;
    raw.phases.push(RawPhase {
        phase: phase.clone(),
        duration,
        build: Some(RawBuild {
            rawjson: build.stderr,
            succeeded: build.success,
            exports: exported,
            imports: imported,
            key_dumps: key_dumps.clone(),
            output: None,
            crash: None,
        }),
        effect: None,
    });
    raw.save(dir).map_err(InfraError::io(format!("writing {}", dir.join(RAW_FILE).display())))?;
    Ok(Captured { phase, succeeded: build.success, skipped, builder_log, key_dumps: key_dumps.is_some() })
}

/// Appends what the builder's buildkitd logged since `since` (unix seconds; all of it when unknown) to `<dir>/buildkitd.log`,
/// when it is a docker-container builder; whether it was.
async fn append_builder_log(dir: &Path, builder: Option<&str>, since: Option<i32>) -> Result<bool, InfraError> {
    let mut args = vec!["inspect".to_owned()];
    args.extend(builder.map(|b| format!("--builder={b}")));
    let inspect = buildx(&args, Duration::from_secs(60)).await?.require_success()?;
    let field = |key: &str| {
        inspect.stdout.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned())).unwrap_or_default()
    };
    if field("Driver:") != "docker-container" {
        return Ok(false);
    }
    // a docker-container builder's first node is `<builder>0`, in container `buildx_buildkit_<node>`
    let container = crate::host::builder::container_of(&field("Name:"));
    let log = Engine::connect().await?.container_logs(&container, since.unwrap_or_default()).await?;
    let path = dir.join("buildkitd.log");
    let mut previous = std::fs::read_to_string(&path).unwrap_or_default();
    previous.push_str(&log);
    std::fs::write(&path, previous).map_err(InfraError::io(format!("writing {}", path.display())))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn cache_options_are_read_as_buildx_writes_them() {
        let parsed = parse_args(&args(
            "--cache-from type=local,src=/c/a --cache-to=type=registry,ref=127.0.0.1:5000/ci/app:cache,mode=max --builder ci -t x .",
        ))
        .unwrap();
        assert_eq!(parsed.imports, [CacheLocation::Local("/c/a".into())]);
        assert_eq!(
            parsed.exports,
            [CacheLocation::Registry { host: "127.0.0.1:5000".into(), repo: "ci/app".into(), tag: "cache".into() }]
        );
        assert_eq!(parsed.builder.as_deref(), Some("ci"));
        // a bare ref is a registry cache; other backends are named, not copied
        let other = parse_args(&args("--cache-from myreg.example/app:cache --cache-to type=gha,mode=max .")).unwrap();
        assert_eq!(
            other.imports,
            [CacheLocation::Registry { host: "myreg.example".into(), repo: "app".into(), tag: "cache".into() }]
        );
        assert!(matches!(&other.exports[0], CacheLocation::Other(v) if v.starts_with("gha")));
    }

    #[test]
    fn debug_addresses_are_host_and_port() {
        assert!(check_debug_addr("10.0.0.1:6060", false).is_err());
        assert!(check_debug_addr("10.0.0.1:6060", true).is_ok());
        for good in ["127.0.0.1:6060", "localhost:6060", "[::1]:6060"] {
            assert!(check_debug_addr(good, false).is_ok(), "{good}");
        }
        for bad in ["127.0.0.1", "127.0.0.1:0", "h/x:6060", ":6060", "127.0.0.1:6060/debug"] {
            assert!(check_debug_addr(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments_bkcache_cannot_capture_from_are_refused_with_a_fix() {
        for bad in [
            "--progress plain .",
            "--cache-from type=local .",
            "--cache-to type=local,src=/x .",
            "--cache-from",
            "--cache-from 127.0.0.1:5000/../../v2/x:t .",
            "--cache-from type=registry,ref=127.0.0.1:5000/app:t/../x .",
        ] {
            let e = parse_args(&args(bad)).unwrap_err();
            assert!(matches!(e, CaptureError::Argument { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("fix:"), "{e}");
        }
    }
}
