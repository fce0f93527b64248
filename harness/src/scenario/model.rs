//! The typed scenario the rest of the pipeline works with: validated, paths resolved, no spans.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use regex::Regex;

/// Matches a step (a BuildKit vertex name such as `[build 2/3] RUN echo stable > /stable`) by its text:
/// stage, index and instruction, never by vertex digest. Runs of white space count as one space, since
/// BuildKit pads the step index when a stage has ten or more steps.
#[derive(Debug, Clone)]
pub enum StepMatcher {
    Exact(String),
    Pattern(Regex),
}

impl StepMatcher {
    pub fn matches(&self, step_name: &str) -> bool {
        match self {
            StepMatcher::Exact(want) => normalize(want) == normalize(step_name),
            StepMatcher::Pattern(re) => re.is_match(step_name),
        }
    }
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for StepMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepMatcher::Exact(s) => f.write_str(s),
            StepMatcher::Pattern(re) => write!(f, "/{}/", re.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    /// Builder profile names; `None` = every profile.
    pub builders: Option<Vec<String>>,
    /// Build-arg name → base image (resolved when the cell runs: local bases live in the local registry).
    pub bases: BTreeMap<String, BaseImage>,
    pub known_issues: Vec<KnownIssue>,
    pub phases: Vec<Phase>,
    pub phase_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// One of the eStargz bases the set-up builds: `<registry>/bkcache/<name>:esgz`.
    Local(String),
    /// Any reference, for users who can reach public registries.
    Image(String),
}

impl BaseImage {
    pub fn reference(&self, registry: &str) -> String {
        match self {
            BaseImage::Local(name) => format!("{registry}/bkcache/{name}:esgz"),
            BaseImage::Image(r) => r.clone(),
        }
    }
}

/// A bug known to break this scenario on some builders: a failure there is "known failure reproduced",
/// a pass there is "fixed?".
#[derive(Debug, Clone)]
pub struct KnownIssue {
    pub id: String,
    pub summary: Option<String>,
    pub builders: Vec<String>,
    pub snapshotter: Option<String>,
    /// The expectations this bug breaks; a failure of any other expectation is still a regression.
    /// Empty = any failed expectation is explained by it.
    pub breaks: Vec<StepMatcher>,
}

impl KnownIssue {
    pub fn applies_to(&self, profile: &crate::profiles::BuilderProfile) -> bool {
        self.builders.contains(&profile.name)
            || self.snapshotter.as_deref() == Some(profile.snapshotter.as_str())
    }

    pub fn explains(&self, broken: &StepMatcher) -> bool {
        self.breaks.is_empty() || self.breaks.iter().any(|m| m.to_string() == broken.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub action: PhaseAction,
}

#[derive(Debug, Clone)]
pub enum PhaseAction {
    Build(BuildPhase),
    Prune { all: bool },
}

#[derive(Debug, Clone, Default)]
pub struct BuildPhase {
    pub build_args: BTreeMap<String, String>,
    pub cache_to: Vec<CacheExport>,
    pub cache_from: Vec<CacheRef>,
    pub output: Output,
    pub expect_cached: Vec<StepMatcher>,
    pub expect_ran: Vec<StepMatcher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Keep only the cache (`--output type=cacheonly`).
    #[default]
    CacheOnly,
    /// Push the image to the local registry.
    Push,
}

/// Where a cache lives. bkcache owns the location: a directory in the cell's work dir, or a ref in the
/// local registry unique to the run and cell, so no run imports another run's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRef {
    Local(String),
    Registry(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    Min,
    Max,
}

#[derive(Debug, Clone)]
pub struct CacheExport {
    pub target: CacheRef,
    pub mode: CacheMode,
    /// Extra attributes passed through, e.g. `image-manifest = "true"`.
    pub attrs: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matchers_ignore_index_padding() {
        let m = StepMatcher::Exact("[build 2/12] RUN make".into());
        assert!(m.matches("[build  2/12] RUN make"));
        assert!(!m.matches("[build 3/12] RUN make"));
    }

    #[test]
    fn pattern_matchers_match_expanded_build_args() {
        let m = StepMatcher::Pattern(Regex::new(r#"^\[build 3/3\] RUN echo ".*" > /bust$"#).unwrap());
        assert!(m.matches(r#"[build 3/3] RUN echo "2" > /bust"#));
        assert!(!m.matches(r#"[build 2/3] RUN echo "2" > /bust"#));
    }
}
