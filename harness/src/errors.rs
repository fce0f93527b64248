//! Every error bkcache reports is a type here. Two families, two exit codes' worth of meaning:
//! [`ConfigError`] (the user's input is wrong: says where and how to fix it) and [`InfraError`]
//! (the machine could not run the check). Neither is ever a regression: that is a verdict, not an error.

use std::fmt;
use std::path::PathBuf;

/// A place in a user's file, printed as `path:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Turns a byte offset into `text` into a 1-based line and column.
    pub fn from_offset(path: PathBuf, text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        Location { path, line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// The scenario files, builder profiles, pins or command line are wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::sync::Arc<std::io::Error> },
    #[error("{at}: {message}")]
    Parse { at: Location, message: String },
    #[error("{at}: {message}\n  fix: {fix}")]
    Invalid { at: Location, message: String, fix: String },
    #[error("{message}\n  fix: {fix}")]
    Usage { message: String, fix: String },
    /// Several findings at once (lint reports every mistake of a scenario, not only the first).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    pub fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
        move |source| ConfigError::Read { path: path.to_owned(), source: std::sync::Arc::new(source) }
    }
}

/// The machine could not carry out a run: docker down, image missing, registry unreachable, timeouts.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("docker engine not reachable at {endpoint}: {reason}\n  fix: start it with `bash ci/setup.sh` (starts dockerd) or `dockerd &`")]
    DockerUnreachable { endpoint: String, reason: String },
    #[error("docker engine error while {action}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "registry {addr} not reachable: {reason}\n  fix: `bash ci/setup.sh` starts it (container bkcache-registry)"
    )]
    RegistryUnreachable { addr: String, reason: String },
    #[error("image {image} in the local registry: {reason}")]
    RegistryImage { image: String, reason: String },
    #[error("base image {image} is not in the registry\n  fix: `bash ci/setup.sh` builds and pushes the local eStargz bases")]
    BaseMissing { image: String },
    #[error("`{command}` failed (exit {status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("`{command}` timed out after {seconds}s")]
    Timeout { command: String, seconds: u64 },
    #[error("{action}: {source}")]
    Io { action: String, source: std::io::Error },
    #[error(
        "another bkcache run with id `{run_id}` is running on this machine\n  fix: give this run another --run-id"
    )]
    RunIdInUse { run_id: String },
    #[error("registry garbage collection in container {container} failed: {detail}")]
    RegistryGc { container: String, detail: String },
    /// Data from outside (a registry, a cache directory) that bkcache refuses to act on.
    #[error("{source_name}: refused: {problem}")]
    Untrusted { source_name: String, problem: String },
    #[error("builder {builder} could not be reset: {reason}")]
    BuilderReset { builder: String, reason: String },
    #[error("the machine failed while probing BuildKit {version}: {failure}")]
    Probe { version: String, failure: String },
}

impl InfraError {
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> InfraError {
        let action = action.into();
        move |source| InfraError::Io { action, source }
    }
}

/// An infrastructure failure: what bkcache was doing, the error, and the chain of its sources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct InfraFailure {
    pub context: String,
    pub error: String,
    pub sources: Vec<String>,
}

impl InfraFailure {
    pub fn new(context: impl Into<String>, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut sources = Vec::new();
        let mut next = error.source();
        while let Some(e) = next {
            sources.push(e.to_string());
            next = e.source();
        }
        InfraFailure { context: context.into(), error: error.to_string(), sources }
    }
}

impl std::fmt::Display for InfraFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.context, self.error)?;
        for s in &self.sources {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}
