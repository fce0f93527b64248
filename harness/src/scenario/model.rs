//! The typed scenario the rest of the pipeline works with: validated, paths resolved, no spans.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use regex::Regex;

use crate::errors::Location;
pub use crate::names::Name;

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

impl StepMatcher {
    /// Whether this matcher (a known issue's `breaks` entry) names the expectation `other`: the same
    /// matcher, or a pattern that matches an exact step name.
    pub fn covers(&self, other: &StepMatcher) -> bool {
        match (self, other) {
            (StepMatcher::Pattern(re), StepMatcher::Exact(name)) => re.is_match(name),
            _ => self == other,
        }
    }
}

impl PartialEq for StepMatcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StepMatcher::Exact(a), StepMatcher::Exact(b)) => normalize(a) == normalize(b),
            (StepMatcher::Pattern(a), StepMatcher::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
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

/// A value from a user's file and where it was written, so lint and reports can point at it.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub at: Location,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: Name,
    pub file: PathBuf,
    pub description: Option<String>,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    /// Builder profile names; `None` = every profile.
    pub builders: Option<Vec<Name>>,
    /// Build-arg name → base image (resolved when the cell runs: local bases live in the local registry).
    pub bases: BTreeMap<String, BaseImage>,
    pub known_issues: Vec<KnownIssue>,
    pub phases: Vec<Phase>,
    pub phase_timeout_secs: u64,
    /// How many times each cell runs, each time from a fresh builder (`--repeat` overrides it).
    pub repeat: u32,
    /// Builds may reach beyond the local registry (see `crate::network`).
    pub allow_network: bool,
}

impl Scenario {
    /// The paths the file checks read from `phase`'s output: its own checks' and those that compare
    /// with it.
    pub fn checked_files(&self, phase: &Name) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        for p in &self.phases {
            let PhaseAction::Build(b) = &p.action else { continue };
            for check in b.expect_files.iter().map(|c| &c.value) {
                if (&p.name == phase || &check.phase == phase) && !paths.contains(&check.path) {
                    paths.push(check.path.clone());
                }
            }
        }
        paths
    }

    /// Whether some phase pushes to the registry (an image, or a registry cache): only then has a run
    /// registry refs to delete.
    pub fn pushes_to_registry(&self) -> bool {
        self.phases.iter().any(|p| match &p.action {
            PhaseAction::Build(b) => {
                b.output == Output::Push || b.cache_to.iter().any(|c| matches!(c.target, CacheRef::Registry(_)))
            }
            PhaseAction::Prune(_) | PhaseAction::Drift { .. } | PhaseAction::DeleteLayers(_) => false,
        }) || self.bases.values().any(|b| matches!(b, BaseImage::Declared(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// One of the eStargz bases the set-up builds: `<registry>/bkcache/<name>:esgz`.
    Local(Name),
    /// Any reference, for users who can reach public registries.
    Image(String),
    /// A base the scenario makes: each repetition pushes it to a ref of its own, and a drift phase
    /// pushes it again, same tag, other content.
    Declared(DeclaredBase),
}

/// `{ from = "base-a", content = "v1", estargz = true }`: the image `from` plus `/bkcache-base-content`
/// holding `content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredBase {
    /// Its tag in the repetition's registry path (from the build argument's name).
    pub tag: Name,
    /// A local base or an image, never another declared one.
    pub from: Box<BaseImage>,
    pub content: String,
    /// Push its layers as eStargz (lazily pullable), as the set-up's bases are.
    pub estargz: bool,
}

/// The file a declared base's content is written to.
pub const BASE_CONTENT_PATH: &str = "/bkcache-base-content";

impl BaseImage {
    /// Its reference; a declared base's is its repetition's (`declared` gives it from the tag).
    pub fn reference(&self, registry: &str, declared: &dyn Fn(&Name) -> String) -> String {
        match self {
            BaseImage::Local(name) => Self::local_reference(registry, name),
            BaseImage::Image(r) => r.clone(),
            BaseImage::Declared(base) => declared(&base.tag),
        }
    }

    /// Where the set-up pushes local base `name`.
    pub fn local_reference(registry: &str, name: &Name) -> String {
        format!("{registry}/bkcache/{name}:esgz")
    }

    /// The local base it is or it is made from, which the set-up must have pushed.
    pub fn local(&self) -> Option<&Name> {
        match self {
            BaseImage::Local(name) => Some(name),
            BaseImage::Image(_) => None,
            BaseImage::Declared(base) => base.from.local(),
        }
    }
}

/// The id of a known issue, e.g. `moby/buildkit#6893`: a type, so reports list ids, never parse them.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct KnownIssueId(pub String);

impl fmt::Display for KnownIssueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bug known to break this scenario on some builders: a failure there is "known failure reproduced",
/// a pass there is "fixed?".
#[derive(Debug, Clone)]
pub struct KnownIssue {
    pub id: KnownIssueId,
    /// Where the scenario file declares it.
    pub at: crate::errors::Location,
    pub summary: Option<String>,
    pub builders: Vec<Name>,
    pub snapshotter: Option<crate::profiles::Snapshotter>,
    /// BuildKit releases it affects (`>=0.25.0, <0.26.0`); `None` = every release.
    pub versions: Option<semver::VersionReq>,
    /// The step expectations this bug breaks; a failure of any other expectation is still a regression.
    /// Empty (and no `fails_with`) = any broken expectation is explained by it.
    pub breaks: Vec<StepMatcher>,
    /// BuildKit errors this bug makes a build fail with (patterns on the error text).
    pub fails_with: Vec<Regex>,
    /// The paths whose file checks this bug breaks (the content of a step it makes run again).
    pub breaks_files: Vec<String>,
    /// It shows in some runs only (the scenario's header gives the measured rate): a repetition where it
    /// does not is a pass, not "fixed?", and a cell that saw both is a known failure, flaky.
    pub intermittent: bool,
}

impl KnownIssue {
    /// Whether it is expected on `profile`: a profile it names or one with its snapshotter (either, when
    /// neither is given) and, when it says `versions`, a profile whose BuildKit release is among them (a
    /// profile given by `image` has no known release and is never in a version range). A pre-release (an
    /// rc, or a commit's Go pseudo-version) counts as the release it leads to
    /// (`v0.24.0-rc2.0.20250916172213-b9322799388c` as 0.24.0): semver would keep every pre-release out
    /// of a range such as `<0.25.0`.
    pub fn applies_to(&self, profile: &crate::profiles::BuilderProfile) -> bool {
        let scoped = !self.builders.is_empty() || self.snapshotter.is_some();
        let named = self.builders.contains(&profile.name) || self.snapshotter == Some(profile.snapshotter) || !scoped;
        let in_versions = match &self.versions {
            None => true,
            Some(req) => profile
                .buildkit
                .as_ref()
                .and_then(|b| semver::Version::parse(b.version.trim_start_matches('v')).ok())
                .is_some_and(|v| req.matches(&semver::Version::new(v.major, v.minor, v.patch))),
        };
        named && in_versions
    }

    /// Whether this bug explains a step expectation that broke.
    pub fn explains_step(&self, broken: &StepMatcher) -> bool {
        self.explains_anything() || self.breaks.iter().any(|m| m.covers(broken))
    }

    /// Whether this bug explains a build failing with `error`.
    pub fn explains_failure(&self, error: &str) -> bool {
        self.explains_anything() || self.fails_with.iter().any(|re| re.is_match(error))
    }

    /// Whether this bug explains a file check of `path` that broke.
    pub fn explains_file(&self, path: &str) -> bool {
        self.explains_anything() || self.breaks_files.iter().any(|p| p == path)
    }

    /// A known issue naming no steps, failures or files explains any broken expectation.
    pub fn explains_anything(&self) -> bool {
        self.breaks.is_empty() && self.fails_with.is_empty() && self.breaks_files.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: Name,
    pub action: PhaseAction,
    pub at: Location,
}

#[derive(Debug, Clone)]
pub enum PhaseAction {
    Build(Box<BuildPhase>),
    Prune(Prune),
    /// Pushes a declared base (build argument `base`) again under the same tag with this content: the
    /// base moved on.
    Drift {
        base: String,
        declared: DeclaredBase,
        content: String,
    },
    /// Deletes layer blobs a later build may need: it must then get them elsewhere, or do without.
    DeleteLayers(LayerDeletion),
}

/// Which layer blobs a delete-layers phase deletes.
#[derive(Debug, Clone)]
pub enum LayerDeletion {
    /// A declared base's (build argument `base`), from its repository; its manifest and config stay,
    /// so `FROM` still resolves, but what a build needs of its files must come from a cache.
    Base { base: String, declared: DeclaredBase },
    /// The layers of a local cache an earlier phase exported that hold `path` (absolute): the cache's
    /// records still name blobs its directory lost (moby/buildkit#6261).
    Cache { cache: Name, path: String },
}

impl fmt::Display for LayerDeletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerDeletion::Base { base, .. } => write!(f, "base {base}"),
            LayerDeletion::Cache { cache, path } => write!(f, "cache local:{cache}, layers holding {path}"),
        }
    }
}

/// `docker buildx prune --force`, with its options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prune {
    /// `--all`: also the cache of images still referenced (default true).
    pub all: bool,
    /// `--filter` values (`until=48h`, `type=regular`...): only matching records are removed.
    pub filters: Vec<String>,
    /// `--keep-storage`: prune only down to this much storage (e.g. `1gb`).
    pub keep_storage: Option<String>,
}

impl Prune {
    /// Whether it removes every record, leaving the builder's cache as empty as a new builder's.
    pub fn empties_the_cache(&self) -> bool {
        self.all && self.filters.is_empty() && self.keep_storage.is_none()
    }

    /// Whether it removes every step's result, so no step of a later build can be CACHED from the
    /// builder's own cache: step results are BuildKit's `regular` records, which a prune without
    /// `--all` removes too (measured: `build-options.toml`), as does `--all --filter type=regular`
    /// (measured on v0.33.1, overlayfs and stargz, 2026-12-06). A prune that filters by age, id or size
    /// may keep any of them.
    pub fn removes_every_step_result(&self) -> bool {
        self.keep_storage.is_none() && self.filters.iter().all(|f| f == "type=regular")
    }

    /// Its `buildx prune` options.
    pub fn options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if self.all {
            options.push("--all".into());
        }
        for filter in &self.filters {
            options.extend(["--filter".into(), filter.clone()]);
        }
        if let Some(keep) = &self.keep_storage {
            options.extend(["--keep-storage".into(), keep.clone()]);
        }
        options
    }
}

#[derive(Debug, Clone, Default)]
pub struct BuildPhase {
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build; `None` = the last stage.
    pub target: Option<Located<String>>,
    pub cache_to: Vec<CacheExport>,
    pub cache_from: Vec<CacheRef>,
    pub output: Output,
    pub expect_cached: Vec<Located<StepMatcher>>,
    pub expect_ran: Vec<Located<StepMatcher>>,
    /// The build is expected to fail with an error matching this; `None` = expected to succeed.
    pub expect_failure: Option<Located<Regex>>,
    /// `--no-cache-filter`: stages built without using any cache.
    pub no_cache_filter: Vec<Located<String>>,
    /// `--platform` (`os/arch[/variant]`); `None` = the builder's own.
    pub platform: Option<String>,
    /// Files of this build's output compared with an earlier build's: content restored from the cache
    /// must be the same bytes, a step that ran again makes new ones.
    pub expect_files: Vec<Located<FileCheck>>,
}

/// `{ path = "/unique", same_as = "export" }` or `{ path = ..., differs_from = ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// Absolute, inside the build's output.
    pub path: String,
    pub same: bool,
    /// An earlier build phase with `output = "local"`.
    pub phase: Name,
}

impl fmt::Display for FileCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let relation = if self.same { "same as" } else { "differs from" };
        write!(f, "{} {relation} in phase `{}`", self.path, self.phase)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Keep only the cache (`--output type=cacheonly`).
    #[default]
    CacheOnly,
    /// Push the image to the local registry.
    Push,
    /// Write the build's files into the cell's directory (`--output type=local`), for file checks.
    Local,
}

/// Where a cache lives. bkcache owns the location: a directory in the cell's work dir, or a ref in the
/// local registry unique to the run and cell, so no run imports another run's cache.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheRef {
    Local(Name),
    Registry(Name),
    /// The inline cache in the image phase `<name>` pushed.
    Inline(Name),
}

impl CacheRef {
    /// Its `type`, as scenarios write it.
    pub fn kind(&self) -> &'static str {
        match self {
            CacheRef::Local(_) => "local",
            CacheRef::Registry(_) => "registry",
            CacheRef::Inline(_) => "inline",
        }
    }
}

impl fmt::Display for CacheRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheRef::Local(name) => write!(f, "local:{name}"),
            CacheRef::Registry(name) => write!(f, "registry:{name}"),
            CacheRef::Inline(phase) => write!(f, "inline:{phase}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

impl CacheExport {
    pub fn shape(&self) -> ExportShape {
        match (&self.target, self.mode) {
            (CacheRef::Inline(_), _) => ExportShape::Inline,
            (_, CacheMode::Max) => ExportShape::Max,
            (_, CacheMode::Min) => ExportShape::Min,
        }
    }
}

/// Which records an exported cache holds by design: the one model the lint (over a Dockerfile's
/// stages), the explanations and the cache audit (over the records) share. BuildKit's mode=max exporter
/// writes a record with its result for every step the exporting build solved; mode=min, and an inline
/// cache (always mode=min), the results of the exported image's chain only, the steps below it as
/// results-less records at most (`solver/exporter.go`, `cache/remotecache/v1/cachestorage.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportShape {
    Max,
    Min,
    Inline,
}

impl ExportShape {
    /// Whether it holds every step the exporting build solved (else only those of its image's chain).
    pub fn holds_every_solved_step(self) -> bool {
        self == ExportShape::Max
    }

    pub fn describe(self) -> &'static str {
        match self {
            ExportShape::Max => "mode=max",
            ExportShape::Min => "mode=min",
            ExportShape::Inline => "an inline cache",
        }
    }
}

impl From<CacheMode> for ExportShape {
    fn from(mode: CacheMode) -> Self {
        match mode {
            CacheMode::Max => ExportShape::Max,
            CacheMode::Min => ExportShape::Min,
        }
    }
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

    #[test]
    fn a_commit_is_in_the_version_ranges_of_the_release_it_leads_to() {
        let issue = |versions: &str| KnownIssue {
            id: KnownIssueId("x".into()),
            at: crate::errors::Location { path: "x.toml".into(), line: 1, column: 1 },
            summary: None,
            builders: Vec::new(),
            snapshotter: None,
            versions: Some(semver::VersionReq::parse(versions).unwrap()),
            breaks: Vec::new(),
            fails_with: Vec::new(),
            breaks_files: Vec::new(),
            intermittent: false,
        };
        let profile = |version: &str| crate::profiles::BuilderProfile {
            name: Name::parse(crate::names::NameKind::Profile, "p").unwrap(),
            image: "i".into(),
            buildkit: Some(crate::buildkit_spec::BuildkitSpec {
                version: version.into(),
                source: Default::default(),
                patches: Vec::new(),
            }),
            snapshotter: crate::profiles::Snapshotter::Overlayfs,
            buildkitd_flags: Vec::new(),
            buildkitd_config: toml::Table::new(),
        };
        let commit = profile("v0.24.0-rc2.0.20250916172213-b9322799388c");
        assert!(issue("<0.25.0").applies_to(&commit));
        assert!(!issue(">=0.25.0").applies_to(&commit));
        assert!(issue(">=0.25.0, <0.26.0").applies_to(&profile("v0.25.0-rc1")));
        assert!(!issue("<0.25.0").applies_to(&profile("v0.25.1")));
    }
}
