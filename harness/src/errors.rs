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
    #[error("{path}: cannot read", path = .path.display())]
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
    #[error("docker engine not reachable at {endpoint}\n  fix: start it with `bash ci/setup.sh` (starts dockerd) or `dockerd &`")]
    DockerUnreachable {
        endpoint: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker engine error while {action}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("registry {addr} not reachable\n  fix: `bash ci/setup.sh` starts it (container bkcache-registry)")]
    RegistryUnreachable {
        addr: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("image {image} in the local registry: {reason}")]
    RegistryImage { image: String, reason: String },
    #[error("base image {image} is not in the registry\n  fix: `bash ci/setup.sh` builds and pushes the local eStargz bases")]
    BaseMissing { image: String },
    #[error("`{command}` failed (exit {status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("`{command}` timed out after {seconds}s")]
    Timeout { command: String, seconds: u64 },
    #[error("{action}")]
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

/// An error and the chain of its sources, each said once, as one message: the first line of each
/// joined with `: `, and what follows the top error's first line (its `fix:`) at the end.
pub fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    let top = error.to_string();
    let (head, tail) = top.split_once('\n').map_or((top.as_str(), ""), |(h, t)| (h, t));
    let mut text = head.to_owned();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    if !tail.is_empty() {
        text.push('\n');
        text.push_str(tail);
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_each_of_its_sources_once_and_its_fix_last() {
        let io = InfraError::io("writing /x")(std::io::Error::other("No space left on device"));
        assert_eq!(with_sources(&io), "writing /x: No space left on device");
        let read =
            ConfigError::Read { path: "/s.toml".into(), source: std::sync::Arc::new(std::io::Error::other("denied")) };
        assert_eq!(with_sources(&read), "/s.toml: cannot read: denied");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let docker = InfraError::DockerUnreachable {
            endpoint: "unix:///x.sock".into(),
            source: bollard::errors::Error::IOError { err: refused },
        };
        let text = with_sources(&docker);
        assert!(text.starts_with("docker engine not reachable at unix:///x.sock: "), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(text.ends_with("or `dockerd &`") && text.lines().count() == 2, "{text}");
    }
}
