//! The scenario file format (TOML) and its validation into [`super::model::Scenario`].
//!
//! The document structs are flat (no serde enums) so that toml keeps spans: every unknown key, wrong
//! type or inconsistent field is reported as `file:line:column` with a fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::model::*;
use crate::dockerfile::Dockerfile;
use crate::errors::ConfigError;
use crate::names::NameKind;
use crate::profiles::{Profiles, Snapshotter};
use crate::toml_file::TomlFile;

const DEFAULT_PHASE_TIMEOUT_SECS: u64 = 600;
/// More repetitions than this is a typo, not a measurement.
pub const MAX_REPEAT: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioDoc {
    description: Option<String>,
    dockerfile: Spanned<String>,
    context: Option<Spanned<String>>,
    builders: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    bases: BTreeMap<String, Spanned<BaseDoc>>,
    #[serde(default)]
    known_issues: Vec<Spanned<KnownIssueDoc>>,
    phases: Spanned<Vec<Spanned<PhaseDoc>>>,
    phase_timeout_secs: Option<Spanned<u64>>,
    repeat: Option<Spanned<u32>>,
    /// Builds may reach beyond the local registry (remote bases, frontends, URLs).
    #[serde(default)]
    allow_network: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseDoc {
    local: Option<String>,
    image: Option<String>,
    /// A declared base: made from this local base, with `content`.
    from: Option<String>,
    content: Option<String>,
    estargz: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownIssueDoc {
    id: Spanned<String>,
    summary: Option<String>,
    #[serde(default)]
    builders: Vec<Spanned<String>>,
    snapshotter: Option<Spanned<String>>,
    #[serde(default)]
    breaks: Vec<StepMatcher>,
    #[serde(default)]
    fails_with: Vec<Spanned<String>>,
    #[serde(default)]
    breaks_files: Vec<String>,
    #[serde(default)]
    intermittent: bool,
    versions: Option<Spanned<String>>,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum PhaseKind {
    Build,
    Prune,
    Drift,
    #[serde(rename = "delete-layers")]
    DeleteLayers,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseDoc {
    kind: PhaseKind,
    name: Option<Spanned<String>>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    #[serde(default)]
    cache_to: Vec<Spanned<CacheDoc>>,
    #[serde(default)]
    cache_from: Vec<Spanned<CacheDoc>>,
    output: Option<OutputDoc>,
    target: Option<Spanned<String>>,
    #[serde(default)]
    expect_cached: Vec<Spanned<StepMatcher>>,
    #[serde(default)]
    expect_ran: Vec<Spanned<StepMatcher>>,
    expect_failure: Option<Spanned<FailureDoc>>,
    #[serde(default)]
    no_cache_filter: Vec<Spanned<String>>,
    platform: Option<Spanned<String>>,
    #[serde(default)]
    expect_files: Vec<Spanned<FileCheckDoc>>,
    all: Option<bool>,
    #[serde(default)]
    filter: Vec<Spanned<String>>,
    keep_storage: Option<Spanned<String>>,
    /// A drift or delete-layers phase: the declared base (its build argument); a drift's new content.
    base: Option<Spanned<String>>,
    content: Option<String>,
    /// A delete-layers phase: the local cache, and the path its deleted layers hold.
    cache: Option<Spanned<CacheDoc>>,
    holding: Option<Spanned<String>>,
}

impl PhaseDoc {
    /// Whether it sets anything only a build phase takes.
    fn sets_build_options(&self) -> bool {
        !self.build_args.is_empty()
            || !self.cache_to.is_empty()
            || !self.cache_from.is_empty()
            || self.output.is_some()
            || self.target.is_some()
            || !self.expect_cached.is_empty()
            || !self.expect_ran.is_empty()
            || self.expect_failure.is_some()
            || !self.no_cache_filter.is_empty()
            || self.platform.is_some()
            || !self.expect_files.is_empty()
    }

    /// Whether it sets anything only a prune phase takes.
    fn sets_prune_options(&self) -> bool {
        self.all.is_some() || !self.filter.is_empty() || self.keep_storage.is_some()
    }
}

/// `buildx prune --filter` keys (BuildKit's prune filters).
const PRUNE_FILTERS: &[&str] = &[
    "until",
    "unused-for",
    "id",
    "parent",
    "type",
    "description",
    "inuse",
    "mutable",
    "immutable",
    "shared",
    "private",
];

static KEEP_STORAGE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9]+(\.[0-9]+)?\s*(b|kb?|mb?|gb?|tb?|kib|mib|gib|tib)?$").expect("valid regex")
});
static PLATFORM: std::sync::LazyLock<Regex> =
    std::sync::LazyLock::new(|| Regex::new(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$").expect("valid regex"));

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCheckDoc {
    path: String,
    same_as: Option<String>,
    differs_from: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureDoc {
    pattern: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum OutputDoc {
    Cacheonly,
    Push,
    Local,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum CacheType {
    Local,
    Registry,
    Inline,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ModeDoc {
    Min,
    Max,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheDoc {
    #[serde(rename = "type")]
    kind: CacheType,
    name: Option<Spanned<String>>,
    mode: Option<ModeDoc>,
    #[serde(default)]
    attrs: BTreeMap<String, String>,
}

/// Cache attributes a scenario may set, with the values each takes. Everything that says where a cache
/// goes (`type`, `dest`, `src`, `ref`, `mode`...) is bkcache's: one run must never read or write another's.
const CACHE_ATTRS: &[(&str, &[&str])] = &[
    ("compression", &["uncompressed", "gzip", "zstd", "estargz"]),
    ("force-compression", &["true", "false"]),
    ("oci-mediatypes", &["true", "false"]),
    ("image-manifest", &["true", "false"]),
    ("ignore-error", &["true", "false"]),
];

impl CacheDoc {
    fn name(&self, file: &TomlFile<ScenarioDoc>, entry: &Spanned<CacheDoc>) -> Result<Name, ConfigError> {
        match &self.name {
            Some(n) => checked_name(file, NameKind::Cache, n),
            None => Ok(Name::parse(NameKind::Cache, "default").expect("a valid name")),
        }
        .map_err(|e| if self.name.is_some() { e } else { file.invalid(entry, e.to_string(), "") })
    }

    fn target(&self, name: Name) -> CacheRef {
        match self.kind {
            CacheType::Local => CacheRef::Local(name),
            CacheType::Registry => CacheRef::Registry(name),
            CacheType::Inline => CacheRef::Inline(name),
        }
    }

    fn check_attrs(&self, file: &TomlFile<ScenarioDoc>, entry: &Spanned<CacheDoc>) -> Result<(), ConfigError> {
        for (key, value) in &self.attrs {
            let Some((_, values)) = CACHE_ATTRS.iter().find(|(k, _)| k == key) else {
                let known = CACHE_ATTRS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                return Err(file.invalid(
                    entry,
                    format!("cache attribute `{key}` is not one a scenario may set"),
                    format!("bkcache sets where caches go (type, dest, src, ref, mode); attributes: {known}"),
                ));
            };
            if !values.contains(&value.as_str()) {
                return Err(file.invalid(
                    entry,
                    format!("cache attribute `{key}` cannot be `{value}`"),
                    format!("use one of: {}", values.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// An inline cache travels in the image the phase pushes, and is found again by that phase's name:
/// `cache_from = [{ type = "inline", name = "<phase>" }]`. BuildKit's inline export is always mode=min.
fn inline_export(
    file: &TomlFile<ScenarioDoc>,
    entry: &Spanned<CacheDoc>,
    phase: &Name,
    output: Option<OutputDoc>,
) -> Result<Name, ConfigError> {
    let doc = entry.get_ref();
    if !matches!(output, Some(OutputDoc::Push)) {
        return Err(file.invalid(
            entry,
            format!("phase `{phase}`: an inline cache travels in the pushed image"),
            "set output = \"push\" on this phase",
        ));
    }
    if matches!(doc.mode, Some(ModeDoc::Max)) || !doc.attrs.is_empty() {
        return Err(file.invalid(
            entry,
            "an inline cache takes no mode or attrs (BuildKit exports it as mode=min)",
            "remove `mode` and `attrs`, or export a local or registry cache with mode = \"max\"",
        ));
    }
    if let Some(n) = doc.name.as_ref().filter(|n| n.get_ref() != phase.as_str()) {
        return Err(file.invalid(
            n,
            format!("an inline cache is named after the phase that pushes it: `{phase}`"),
            "remove `name` (imports name the phase: cache_from = [{ type = \"inline\", name = \"<phase>\" }])",
        ));
    }
    Ok(phase.clone())
}

/// A name from the file, checked where it is written.
fn checked_name(file: &TomlFile<ScenarioDoc>, kind: NameKind, text: &Spanned<String>) -> Result<Name, ConfigError> {
    Name::parse(kind, text.get_ref()).map_err(|e| file.invalid(text, e.to_string(), e.fix()))
}

/// A build argument name, as the Dockerfile's `ARG` accepts it.
fn is_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A step matcher is written as a string (exact step name) or `{ pattern = "regex" }`.
impl<'de> Deserialize<'de> for StepMatcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MatcherVisitor;
        impl<'de> Visitor<'de> for MatcherVisitor {
            type Value = StepMatcher;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a step name such as "[build 2/3] RUN echo stable > /stable", or { pattern = "regex" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StepMatcher, E> {
                Ok(StepMatcher::Exact(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StepMatcher, A::Error> {
                let mut pattern = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "pattern" {
                        return Err(de::Error::unknown_field(&key, &["pattern"]));
                    }
                    pattern = Some(map.next_value::<String>()?);
                }
                let pattern = pattern.ok_or_else(|| de::Error::missing_field("pattern"))?;
                Regex::new(&pattern)
                    .map(StepMatcher::Pattern)
                    .map_err(|e| de::Error::custom(format!("invalid pattern: {e}")))
            }
        }
        d.deserialize_any(MatcherVisitor)
    }
}

/// Loads and validates one scenario file against the builder profiles, then lints it against its
/// Dockerfile (every finding at once).
pub fn load(path: &Path, profiles: &Profiles) -> Result<Scenario, ConfigError> {
    let file = TomlFile::<ScenarioDoc>::load(path)?;
    let scenario = validate(&file, profiles)?;
    let dockerfile = Dockerfile::load(&scenario.dockerfile)?;
    match super::lint::check(&scenario, &dockerfile).as_slice() {
        [] => Ok(scenario),
        [one] => Err(one.clone()),
        many => Err(ConfigError::Many(many.to_vec())),
    }
}

/// A regex from the file, located when it does not compile or matches every text (a pattern that
/// matches the empty string matches anywhere: it would explain every failure).
fn regex(file: &TomlFile<ScenarioDoc>, text: &Spanned<String>) -> Result<Regex, ConfigError> {
    let re = Regex::new(text.get_ref()).map_err(|e| {
        file.invalid(text, format!("invalid pattern: {e}"), "write a regular expression (Rust regex syntax)")
    })?;
    match re.is_match("") {
        true => Err(file.invalid(
            text,
            format!("pattern `{}` matches every text", text.get_ref()),
            "match words of the error BuildKit prints, e.g. \"failed to compute cache key\"",
        )),
        false => Ok(re),
    }
}

/// A step matcher must name something: no blank step name, no pattern that matches every step.
fn blank_matcher(matcher: &StepMatcher) -> Option<&'static str> {
    match matcher {
        StepMatcher::Exact(text) if text.trim().is_empty() => Some("a blank step name matches no step"),
        StepMatcher::Pattern(re) if re.is_match("") => Some("the pattern matches every step"),
        _ => None,
    }
}

/// Every step expectation and known-issue matcher names something, and every `breaks` entry of a known
/// issue explains at least one expectation of the scenario (an entry that explains none is a typo that
/// would turn the known failure into `FAIL`).
fn check_known_issue_matchers(
    file: &TomlFile<ScenarioDoc>,
    known_issues: &[KnownIssue],
    phases: &[Phase],
) -> Result<(), ConfigError> {
    let expectations: Vec<&Located<StepMatcher>> = phases
        .iter()
        .filter_map(|p| match &p.action {
            PhaseAction::Build(b) => Some(b.expect_cached.iter().chain(&b.expect_ran)),
            _ => None,
        })
        .flatten()
        .collect();
    for e in &expectations {
        if let Some(problem) = blank_matcher(&e.value) {
            return Err(ConfigError::Invalid {
                at: e.at.clone(),
                message: format!("expectation `{}`: {problem}", e.value),
                fix: "name a step as BuildKit prints it, e.g. \"[build 2/3] RUN echo stable > /stable\"".into(),
            });
        }
    }
    for (issue, doc) in known_issues.iter().zip(&file.doc.known_issues) {
        for matcher in &issue.breaks {
            let problem = blank_matcher(matcher).map(str::to_owned).or_else(|| {
                (!expectations.iter().any(|e| issue.explains_step(&e.value))).then(|| {
                    format!("`breaks` entry `{matcher}` matches no expect_cached or expect_ran of the scenario")
                })
            });
            if let Some(problem) = problem {
                return Err(file.invalid(
                    &doc.get_ref().id,
                    format!("known issue `{}`: {problem}", issue.id.0),
                    "name the expectations this bug breaks, exactly as the phases write them (or a pattern matching them)",
                ));
            }
        }
    }
    Ok(())
}

fn located<T: Clone>(file: &TomlFile<ScenarioDoc>, spanned: &Spanned<T>) -> Located<T> {
    Located { value: spanned.get_ref().clone(), at: file.at(spanned) }
}

fn validate(file: &TomlFile<ScenarioDoc>, profiles: &Profiles) -> Result<Scenario, ConfigError> {
    let doc = &file.doc;
    let stem = file.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = Name::parse(NameKind::Scenario, &stem).map_err(|e| ConfigError::Usage {
        message: format!("{}: {e}", file.path.display()),
        fix: format!("rename the file: {}", e.fix()),
    })?;
    let dir = crate::toml_file::dir_of(&file.path).to_owned();
    let dockerfile = existing_path(file, &dir, &doc.dockerfile, false)?;
    let context = match &doc.context {
        Some(c) => {
            let context = existing_path(file, &dir, c, true)?;
            check_context(file, &dir, c, &context)?;
            context
        }
        None => dockerfile.parent().unwrap_or(&dir).to_owned(),
    };

    let check = |name: &Spanned<String>| check_builder(file, profiles, name);
    let builders =
        doc.builders.as_ref().map(|list| list.iter().map(check).collect::<Result<Vec<_>, _>>()).transpose()?;
    let bases = doc
        .bases
        .iter()
        .map(|(arg, base)| Ok((arg.clone(), base_image(file, arg, base)?)))
        .collect::<Result<_, _>>()?;
    let known_issues =
        doc.known_issues.iter().map(|issue| known_issue(file, profiles, issue)).collect::<Result<Vec<_>, _>>()?;
    let phases = validate_phases(file, &bases)?;
    check_known_issue_matchers(file, &known_issues, &phases)?;
    let phase_timeout_secs = match &doc.phase_timeout_secs {
        Some(t) if *t.get_ref() == 0 => {
            return Err(file.invalid(
                t,
                "phase_timeout_secs must be at least 1",
                "give the seconds a phase may take, e.g. 600",
            ))
        }
        Some(t) => *t.get_ref(),
        None => DEFAULT_PHASE_TIMEOUT_SECS,
    };
    let repeat = match &doc.repeat {
        Some(r) if !(1..=MAX_REPEAT).contains(r.get_ref()) => {
            return Err(file.invalid(r, format!("repeat must be between 1 and {MAX_REPEAT}"), "e.g. repeat = 10"))
        }
        Some(r) => *r.get_ref(),
        None => 1,
    };
    Ok(Scenario {
        name,
        file: file.path.clone(),
        description: doc.description.clone(),
        dockerfile,
        context,
        builders,
        bases,
        known_issues,
        phases,
        phase_timeout_secs,
        repeat,
        allow_network: doc.allow_network,
    })
}

/// A builder profile the scenario names: one the builders file defines.
fn check_builder(
    file: &TomlFile<ScenarioDoc>,
    profiles: &Profiles,
    name: &Spanned<String>,
) -> Result<Name, ConfigError> {
    match profiles.get(name.get_ref()) {
        Some(profile) => Ok(profile.name.clone()),
        None => Err(file.invalid(
            name,
            format!("unknown builder profile `{}`", name.get_ref()),
            format!("use one of: {} (defined in the builders file)", profiles.names().join(", ")),
        )),
    }
}

/// The base build argument `arg` names: a local base, an image, or a base the scenario declares.
fn base_image(file: &TomlFile<ScenarioDoc>, arg: &str, base: &Spanned<BaseDoc>) -> Result<BaseImage, ConfigError> {
    if !is_arg_name(arg) {
        return Err(file.invalid(
            base,
            format!("`{arg}` is not a build argument name"),
            "use letters, digits and '_', as in the Dockerfile's ARG",
        ));
    }
    let doc = base.get_ref();
    if doc.from.is_none() && (doc.content.is_some() || doc.estargz.is_some()) {
        return Err(file.invalid(
            base,
            format!("base `{arg}`: `content` and `estargz` belong to a declared base"),
            r#"declare it with { from = "base-a", content = "v1" }, or drop them"#,
        ));
    }
    match (&doc.local, &doc.image, &doc.from) {
        (Some(local), None, None) => Ok(BaseImage::Local(
            Name::parse(NameKind::LocalBase, local).map_err(|e| file.invalid(base, e.to_string(), e.fix()))?,
        )),
        (None, None, Some(from)) => Ok(BaseImage::Declared(declared_base(file, arg, base, from)?)),
        (None, Some(image), None) => {
            let reference: oci_spec::distribution::Reference = image.parse().map_err(|e| {
                file.invalid(
                    base,
                    format!("base `{arg}`: `{image}` is not an image reference: {e}"),
                    "write a reference such as \"docker.io/library/alpine:3.20\"",
                )
            })?;
            Ok(BaseImage::Image(reference.whole()))
        }
        _ => Err(file.invalid(
            base,
            format!("base `{arg}` must set exactly one of `local`, `image` or `from`"),
            r#"write { local = "base-a" } for a base the set-up builds, { image = "docker.io/library/alpine:3.20" }, or { from = "base-a", content = "v1" } for one the scenario makes"#,
        )),
    }
}

/// A known issue: an id, a scope that says which builders it applies to, and what it explains.
fn known_issue(
    file: &TomlFile<ScenarioDoc>,
    profiles: &Profiles,
    issue: &Spanned<KnownIssueDoc>,
) -> Result<KnownIssue, ConfigError> {
    let k = issue.get_ref();
    if k.builders.is_empty() && k.snapshotter.is_none() && k.versions.is_none() {
        return Err(file.invalid(
            issue,
            format!("known issue `{}` says no builders it applies to", k.id.get_ref()),
            r#"add `builders = ["v0.24-stargz"]`, `snapshotter = "stargz"` or `versions = ">=0.25.0, <0.26.0"`"#,
        ));
    }
    let versions = k
        .versions
        .as_ref()
        .map(|v| {
            semver::VersionReq::parse(v.get_ref()).map_err(|e| {
                file.invalid(
                    v,
                    format!("`{}` is not a version range: {e}", v.get_ref()),
                    r#"write e.g. versions = ">=0.25.0, <0.26.0" (no `v`)"#,
                )
            })
        })
        .transpose()?;
    let snapshotter = k
        .snapshotter
        .as_ref()
        .map(|s| {
            Snapshotter::parse(s.get_ref()).ok_or_else(|| {
                let names: Vec<&str> = Snapshotter::ALL.iter().map(|s| s.as_str()).collect();
                file.invalid(s, format!("unknown snapshotter `{}`", s.get_ref()), format!("use {}", names.join(", ")))
            })
        })
        .transpose()?;
    if k.id.get_ref().trim().is_empty() {
        return Err(file.invalid(&k.id, "a known issue needs an id", r#"write e.g. id = "moby/buildkit#6893""#));
    }
    Ok(KnownIssue {
        id: KnownIssueId(k.id.get_ref().clone()),
        at: file.at(issue),
        summary: k.summary.clone(),
        builders: k.builders.iter().map(|b| check_builder(file, profiles, b)).collect::<Result<_, _>>()?,
        snapshotter,
        versions,
        breaks: k.breaks.clone(),
        fails_with: k.fails_with.iter().map(|p| regex(file, p)).collect::<Result<_, _>>()?,
        breaks_files: k.breaks_files.clone(),
        intermittent: k.intermittent,
    })
}

fn existing_path(
    file: &TomlFile<ScenarioDoc>,
    dir: &Path,
    rel: &Spanned<String>,
    want_dir: bool,
) -> Result<PathBuf, ConfigError> {
    let path = dir.join(rel.get_ref());
    let (want, other) = if want_dir { ("directory", "file") } else { ("file", "directory") };
    let problem = match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() == want_dir && (want_dir || m.is_file()) => return Ok(path),
        Ok(m) if m.is_dir() || m.is_file() => format!("{} is a {other}, not a {want}", path.display()),
        Ok(_) => format!("{} is not a regular {want}", path.display()),
        Err(_) => format!("no such {want}: {}", path.display()),
    };
    Err(file.invalid(rel, problem, format!("give the path of a {want}, relative to {}", dir.display())))
}

/// A build context is sent to BuildKit whole: it must be the scenario's own files (its directory or the
/// one above, where `dockerfiles/` sits beside `scenarios/`), never `/` or a home directory.
fn check_context(
    file: &TomlFile<ScenarioDoc>,
    dir: &Path,
    rel: &Spanned<String>,
    context: &Path,
) -> Result<(), ConfigError> {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    let dir = canonical(dir);
    let allowed = dir.parent().filter(|p| p.parent().is_some()).unwrap_or(&dir).to_owned();
    let context = canonical(context);
    if context.starts_with(&allowed) && context.parent().is_some() {
        Ok(())
    } else {
        Err(file.invalid(
            rel,
            format!(
                "build context {} is outside the scenario's files (BuildKit would be sent all of it)",
                context.display()
            ),
            format!("use a directory inside {}", allowed.display()),
        ))
    }
}

/// The most a declared base's content may hold: a marker, not a payload.
const MAX_BASE_CONTENT: usize = 4096;

/// `{ from = "base-a", content = "v1", estargz = true }` for build argument `arg`.
fn declared_base(
    file: &TomlFile<ScenarioDoc>,
    arg: &str,
    base: &Spanned<BaseDoc>,
    from: &str,
) -> Result<DeclaredBase, ConfigError> {
    let from = Name::parse(NameKind::LocalBase, from).map_err(|e| {
        file.invalid(base, format!("base `{arg}`: `from` names a base the set-up builds: {e}"), e.fix())
    })?;
    let content = base_content(file, base, arg, base.get_ref().content.as_deref())?;
    let tag = Name::parse(NameKind::LocalBase, &arg.to_ascii_lowercase().replace('_', "-")).map_err(|e| {
        file.invalid(base, format!("base `{arg}` cannot name a registry tag: {e}"), "rename the build argument")
    })?;
    Ok(DeclaredBase {
        tag,
        from: Box::new(BaseImage::Local(from)),
        content,
        estargz: base.get_ref().estargz.unwrap_or(true),
    })
}

fn base_content<T>(
    file: &TomlFile<ScenarioDoc>,
    at: &Spanned<T>,
    arg: &str,
    content: Option<&str>,
) -> Result<String, ConfigError> {
    match content {
        Some(c) if !c.is_empty() && c.len() <= MAX_BASE_CONTENT && !c.contains('\0') => Ok(c.to_owned()),
        Some(_) => Err(file.invalid(
            at,
            format!("base `{arg}`: `content` must be 1 to {MAX_BASE_CONTENT} bytes of text"),
            r#"write e.g. content = "v1""#,
        )),
        None => Err(file.invalid(at, format!("base `{arg}` needs `content`"), r#"write e.g. content = "v1""#)),
    }
}

fn validate_phases(
    file: &TomlFile<ScenarioDoc>,
    bases: &BTreeMap<String, BaseImage>,
) -> Result<Vec<Phase>, ConfigError> {
    let docs = file.doc.phases.get_ref();
    if docs.is_empty() {
        return Err(file.invalid(
            &file.doc.phases,
            "a scenario needs at least one phase",
            r#"add [[phases]] with kind = "build""#,
        ));
    }
    let mut names = BTreeSet::new();
    let mut exported: BTreeSet<CacheRef> = BTreeSet::new();
    let mut local_outputs: BTreeSet<Name> = BTreeSet::new();
    // each declared base's content as the phases so far left it
    let mut base_contents: BTreeMap<String, (DeclaredBase, String)> = bases
        .iter()
        .filter_map(|(arg, b)| match b {
            BaseImage::Declared(d) => Some((arg.clone(), (d.clone(), d.content.clone()))),
            _ => None,
        })
        .collect();
    let mut phases = Vec::new();
    for (i, spanned) in docs.iter().enumerate() {
        let p = spanned.get_ref();
        let name = phase_name(file, spanned, i, &mut names)?;
        let action = match p.kind {
            PhaseKind::Drift => drift(file, spanned, &name, &mut base_contents)?,
            PhaseKind::DeleteLayers => {
                PhaseAction::DeleteLayers(layer_deletion(file, spanned, &name, &base_contents, &exported)?)
            }
            PhaseKind::Prune => prune_phase(file, spanned, &name)?,
            PhaseKind::Build => build_phase(file, spanned, &name, &mut exported, &local_outputs)?,
        };
        if matches!(p.output, Some(OutputDoc::Local)) {
            local_outputs.insert(name.clone());
        }
        phases.push(Phase { name, action, at: file.at(spanned) });
    }
    Ok(phases)
}

/// The `i`th phase's name (given, or `<kind>-<i+1>`), once its fields are those of its kind and no
/// earlier phase has the name.
fn phase_name(
    file: &TomlFile<ScenarioDoc>,
    spanned: &Spanned<PhaseDoc>,
    i: usize,
    names: &mut BTreeSet<Name>,
) -> Result<Name, ConfigError> {
    let p = spanned.get_ref();
    let kind_name = match p.kind {
        PhaseKind::Build => "build",
        PhaseKind::Prune => "prune",
        PhaseKind::Drift => "drift",
        PhaseKind::DeleteLayers => "delete-layers",
    };
    let named = || p.name.as_ref().map_or(kind_name, |n| n.get_ref());
    let misplaced = [
        (p.kind != PhaseKind::DeleteLayers && (p.cache.is_some() || p.holding.is_some())).then_some((
            "`cache` and `holding` belong to a delete-layers phase",
            r#"make it kind = "delete-layers", or drop them"#,
        )),
        (!matches!(p.kind, PhaseKind::Drift | PhaseKind::DeleteLayers) && p.base.is_some()).then_some((
            "`base` belongs to a drift or delete-layers phase",
            r#"make it kind = "drift" or kind = "delete-layers", or drop it"#,
        )),
        (p.kind != PhaseKind::Drift && p.content.is_some())
            .then_some(("`content` belongs to a drift phase", r#"make it kind = "drift", or drop it"#)),
    ];
    if let Some((problem, fix)) = misplaced.into_iter().flatten().next() {
        return Err(file.invalid(spanned, format!("phase `{}`: {problem}", named()), fix));
    }
    let name = match &p.name {
        Some(n) => checked_name(file, NameKind::Phase, n)?,
        None => Name::parse(NameKind::Phase, &format!("{kind_name}-{}", i + 1)).expect("a valid name"),
    };
    if !names.insert(name.clone()) {
        let at = p.name.as_ref().map_or_else(|| file.at(spanned), |n| file.at(n));
        return Err(ConfigError::Invalid {
            at,
            message: format!("phase name `{name}` is used twice"),
            fix: "give each phase its own name".into(),
        });
    }
    Ok(name)
}

/// A prune phase: prune options only, each checked.
fn prune_phase(
    file: &TomlFile<ScenarioDoc>,
    spanned: &Spanned<PhaseDoc>,
    name: &Name,
) -> Result<PhaseAction, ConfigError> {
    let p = spanned.get_ref();
    if p.sets_build_options() {
        return Err(file.invalid(
            spanned,
            format!("phase `{name}` is a prune but sets build options or expectations"),
            "move build_args, cache_to, cache_from, output, target, no_cache_filter, platform and expect_* to a build phase",
        ));
    }
    for f in &p.filter {
        let plain = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@-".contains(c));
        let ok = f.get_ref().split_once('=').is_some_and(|(k, v)| PRUNE_FILTERS.contains(&k) && plain(v));
        if !ok {
            return Err(file.invalid(
                f,
                format!("`{}` is not a prune filter", f.get_ref()),
                format!("write KEY=VALUE with KEY one of: {}", PRUNE_FILTERS.join(", ")),
            ));
        }
    }
    if let Some(k) = p.keep_storage.as_ref().filter(|k| !KEEP_STORAGE.is_match(k.get_ref())) {
        return Err(file.invalid(
            k,
            format!("`{}` is not a storage size", k.get_ref()),
            "write e.g. keep_storage = \"512mb\" or \"2gb\"",
        ));
    }
    Ok(PhaseAction::Prune(Prune {
        all: p.all.unwrap_or(true),
        filters: p.filter.iter().map(|f| f.get_ref().clone()).collect(),
        keep_storage: p.keep_storage.as_ref().map(|k| k.get_ref().clone()),
    }))
}

/// A build phase: its options checked, its caches imported from earlier exports (and its exports added
/// to `exported`), its file checks against earlier local outputs.
fn build_phase(
    file: &TomlFile<ScenarioDoc>,
    spanned: &Spanned<PhaseDoc>,
    name: &Name,
    exported: &mut BTreeSet<CacheRef>,
    local_outputs: &BTreeSet<Name>,
) -> Result<PhaseAction, ConfigError> {
    let p = spanned.get_ref();
    if p.sets_prune_options() {
        return Err(file.invalid(
            spanned,
            format!("phase `{name}`: `all`, `filter` and `keep_storage` apply to prune phases only"),
            "remove them, or make the phase kind = \"prune\"",
        ));
    }
    if let Some(platform) = p.platform.as_ref().filter(|pl| !PLATFORM.is_match(pl.get_ref())) {
        return Err(file.invalid(
            platform,
            format!("`{}` is not a platform", platform.get_ref()),
            "write os/arch[/variant], e.g. platform = \"linux/amd64\"",
        ));
    }
    for stage in &p.no_cache_filter {
        if stage.get_ref().is_empty() || stage.get_ref().contains([',', '=', ' ']) {
            return Err(file.invalid(
                stage,
                format!("`{}` is not a stage name", stage.get_ref()),
                "name one stage per item",
            ));
        }
    }
    if let Some((key, _)) = p.build_args.iter().find(|(k, _)| !is_arg_name(k)) {
        return Err(file.invalid(
            spanned,
            format!("phase `{name}`: `{key}` is not a build argument name"),
            "use letters, digits and '_', as in the Dockerfile's ARG",
        ));
    }
    let cache_from = cache_imports(file, p, name, exported)?;
    let cache_to = cache_exports(file, p, name, exported)?;
    let expect_failure = match &p.expect_failure {
        Some(f) => Some(Located {
            value: Regex::new(&f.get_ref().pattern).map_err(|e| {
                file.invalid(f, format!("invalid pattern: {e}"), "write a regular expression (Rust regex syntax)")
            })?,
            at: file.at(f),
        }),
        None => None,
    };
    Ok(PhaseAction::Build(Box::new(BuildPhase {
        build_args: p.build_args.clone(),
        target: p.target.as_ref().map(|t| located(file, t)),
        cache_to,
        cache_from,
        output: match p.output {
            Some(OutputDoc::Push) => Output::Push,
            Some(OutputDoc::Local) => Output::Local,
            Some(OutputDoc::Cacheonly) | None => Output::CacheOnly,
        },
        expect_cached: p.expect_cached.iter().map(|m| located(file, m)).collect(),
        expect_ran: p.expect_ran.iter().map(|m| located(file, m)).collect(),
        expect_failure,
        no_cache_filter: p.no_cache_filter.iter().map(|s| located(file, s)).collect(),
        platform: p.platform.as_ref().map(|pl| pl.get_ref().clone()),
        expect_files: file_checks(file, name, p, local_outputs)?,
    })))
}

/// A build phase's `cache_from`: each a cache an earlier phase exported, named once.
fn cache_imports(
    file: &TomlFile<ScenarioDoc>,
    p: &PhaseDoc,
    name: &Name,
    exported: &BTreeSet<CacheRef>,
) -> Result<Vec<CacheRef>, ConfigError> {
    let mut cache_from: Vec<CacheRef> = Vec::new();
    for c in &p.cache_from {
        let cache_name = c.get_ref().name(file, c)?;
        let cache = c.get_ref().target(cache_name.clone());
        if cache_from.contains(&cache) {
            return Err(file.invalid(
                c,
                format!("phase `{name}` imports cache `{cache}` twice"),
                "name each cache once per phase",
            ));
        }
        if c.get_ref().mode.is_some() {
            return Err(file.invalid(c, "`mode` applies to cache_to only", "remove `mode` from cache_from"));
        }
        if !exported.contains(&cache) {
            return Err(file.invalid(
                c,
                format!("phase `{name}` imports cache `{cache}` that no earlier phase exports"),
                format!("export it first with cache_to = [{{ type = \"{}\", name = \"{cache_name}\" }}]", cache.kind()),
            ));
        }
        if !c.get_ref().attrs.is_empty() {
            return Err(file.invalid(c, "attributes apply to cache_to only", "remove `attrs` from cache_from"));
        }
        cache_from.push(cache);
    }
    Ok(cache_from)
}

/// A build phase's `cache_to`: each named once, its attributes checked; added to `exported`.
fn cache_exports(
    file: &TomlFile<ScenarioDoc>,
    p: &PhaseDoc,
    name: &Name,
    exported: &mut BTreeSet<CacheRef>,
) -> Result<Vec<CacheExport>, ConfigError> {
    let mut cache_to: Vec<CacheExport> = Vec::new();
    for c in &p.cache_to {
        let cache_name = match c.get_ref().kind {
            CacheType::Inline => inline_export(file, c, name, p.output)?,
            _ => c.get_ref().name(file, c)?,
        };
        c.get_ref().check_attrs(file, c)?;
        let target = c.get_ref().target(cache_name);
        if cache_to.iter().any(|e| e.target == target) {
            return Err(file.invalid(
                c,
                format!("phase `{name}` exports cache `{target}` twice (the second export would overwrite the first)"),
                "name each cache once per phase",
            ));
        }
        exported.insert(target.clone());
        let mode = match c.get_ref().mode {
            Some(ModeDoc::Max) => CacheMode::Max,
            Some(ModeDoc::Min) | None => CacheMode::Min,
        };
        cache_to.push(CacheExport { target, mode, attrs: c.get_ref().attrs.clone() });
    }
    Ok(cache_to)
}

/// A drift phase: a declared base pushed again, same tag, with content it has not had just before.
fn drift(
    file: &TomlFile<ScenarioDoc>,
    spanned: &Spanned<PhaseDoc>,
    name: &Name,
    base_contents: &mut BTreeMap<String, (DeclaredBase, String)>,
) -> Result<PhaseAction, ConfigError> {
    let (arg, declared) = phase_base(file, spanned, name, "drift", base_contents)?;
    let before = &base_contents[&arg].1;
    let content = base_content(file, spanned, &arg, spanned.get_ref().content.as_deref())?;
    if &content == before {
        return Err(file.invalid(
            spanned,
            format!("drift phase `{name}`: `{arg}` already has this content"),
            "give it other content, or the base does not move",
        ));
    }
    base_contents.insert(arg.clone(), (declared.clone(), content.clone()));
    Ok(PhaseAction::Drift { base: arg, declared, content })
}

/// A delete-layers phase: a declared base's layers (`base`), or those of a local cache exported earlier
/// that hold a path (`cache` and `holding`).
fn layer_deletion(
    file: &TomlFile<ScenarioDoc>,
    spanned: &Spanned<PhaseDoc>,
    name: &Name,
    base_contents: &BTreeMap<String, (DeclaredBase, String)>,
    exported: &BTreeSet<CacheRef>,
) -> Result<LayerDeletion, ConfigError> {
    let p = spanned.get_ref();
    let (cache, holding) = match (&p.base, &p.cache, &p.holding) {
        (Some(_), None, None) | (None, None, None) => {
            let (base, declared) = phase_base(file, spanned, name, "delete-layers", base_contents)?;
            return Ok(LayerDeletion::Base { base, declared });
        }
        (None, Some(cache), Some(holding)) => (cache, holding),
        (None, Some(_), None) => {
            return Err(file.invalid(
                spanned,
                format!("delete-layers phase `{name}` names a cache but not which of its layers to delete"),
                r#"add holding = "/path", a file the layers to delete hold"#,
            ))
        }
        (None, None, Some(_)) => {
            return Err(file.invalid(
                spanned,
                format!("delete-layers phase `{name}` says what its layers hold but not whose layers"),
                r#"add cache = { type = "local", name = "..." }, a cache an earlier phase exports"#,
            ))
        }
        _ => {
            return Err(file.invalid(
                spanned,
                format!("delete-layers phase `{name}`: delete a base's layers or a cache's, not both"),
                r#"keep either base = "APP_BASE", or cache = { type = "local", name = "..." } with holding"#,
            ))
        }
    };
    if p.sets_build_options() || p.sets_prune_options() {
        return Err(file.invalid(
            spanned,
            format!("phase `{name}` is a delete-layers but sets other options"),
            "a delete-layers phase of a cache takes only `cache` and `holding`",
        ));
    }
    let doc = cache.get_ref();
    let cache_name = doc.name(file, cache)?;
    if doc.kind != CacheType::Local || doc.mode.is_some() || !doc.attrs.is_empty() {
        return Err(file.invalid(
            cache,
            format!("delete-layers phase `{name}`: only a local cache's layers can be deleted"),
            r#"write cache = { type = "local", name = "..." }, a cache an earlier phase exports"#,
        ));
    }
    let key = doc.target(cache_name.clone());
    if !exported.contains(&key) {
        return Err(file.invalid(
            cache,
            format!("delete-layers phase `{name}`: no earlier phase exports cache `{key}`"),
            format!("export it first with cache_to = [{{ type = \"local\", name = \"{cache_name}\" }}]"),
        ));
    }
    if !is_plain_path(holding.get_ref()) {
        return Err(file.invalid(
            holding,
            format!("`{}` is not a path bkcache looks for in layers", holding.get_ref()),
            "write an absolute path of letters, digits, '/', '.', '_' and '-', e.g. holding = \"/artifact\"",
        ));
    }
    Ok(LayerDeletion::Cache { cache: cache_name, path: holding.get_ref().clone() })
}

/// The declared base a `kind` phase (drift, delete-layers) acts on: its build argument and declaration.
/// Such a phase takes no build or prune options.
fn phase_base(
    file: &TomlFile<ScenarioDoc>,
    spanned: &Spanned<PhaseDoc>,
    name: &Name,
    kind: &str,
    base_contents: &BTreeMap<String, (DeclaredBase, String)>,
) -> Result<(String, DeclaredBase), ConfigError> {
    let p = spanned.get_ref();
    if p.sets_build_options() || p.sets_prune_options() {
        let takes = if kind == "drift" { "`base` and `content`" } else { "`base`" };
        return Err(file.invalid(
            spanned,
            format!("phase `{name}` is a {kind} but sets build or prune options"),
            format!("a {kind} phase takes only {takes}"),
        ));
    }
    let Some(base) = &p.base else {
        return Err(file.invalid(
            spanned,
            format!("{kind} phase `{name}` needs `base`"),
            r#"write base = "APP_BASE", a declared base's build argument"#,
        ));
    };
    let arg = base.get_ref();
    let Some((declared, _)) = base_contents.get(arg) else {
        let declared: Vec<&String> = base_contents.keys().collect();
        return Err(file.invalid(
            base,
            format!("{kind} phase `{name}`: `{arg}` is not a declared base"),
            if declared.is_empty() {
                r#"declare one in [bases], e.g. APP_BASE = { from = "base-a", content = "v1" }"#.to_owned()
            } else {
                format!("use one of: {}", declared.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            },
        ));
    };
    Ok((arg.clone(), declared.clone()))
}

/// An absolute path of letters, digits, '/', '.', '_' and '-', without `.` or `..` parts: a file of a
/// build's output or of a layer.
fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && path.split('/').all(|part| part != ".." && part != ".")
        && path.chars().all(|ch| ch.is_ascii_alphanumeric() || "/._-".contains(ch))
}

/// A build's `expect_files`: absolute plain paths, compared with an earlier phase that kept its output,
/// from a phase that keeps its own.
fn file_checks(
    file: &TomlFile<ScenarioDoc>,
    name: &Name,
    p: &PhaseDoc,
    local_outputs: &BTreeSet<Name>,
) -> Result<Vec<Located<FileCheck>>, ConfigError> {
    let mut checks = Vec::new();
    for c in &p.expect_files {
        let doc = c.get_ref();
        if !is_plain_path(&doc.path) {
            return Err(file.invalid(
                c,
                format!("`{}` is not a file path bkcache checks", doc.path),
                "write an absolute path of letters, digits, '/', '.', '_' and '-', e.g. path = \"/unique\"",
            ));
        }
        let (other, same) = match (&doc.same_as, &doc.differs_from) {
            (Some(other), None) => (other, true),
            (None, Some(other)) => (other, false),
            _ => {
                return Err(file.invalid(
                    c,
                    "a file check needs one of `same_as` and `differs_from`",
                    "write { path = \"/unique\", same_as = \"export\" } (restored) or differs_from (ran again)",
                ))
            }
        };
        let Some(phase) = local_outputs.iter().find(|n| n.as_str() == other) else {
            return Err(file.invalid(
                c,
                format!("phase `{name}` compares {} with phase `{other}`, which is not an earlier build with output = \"local\"", doc.path),
                "name an earlier build phase and set output = \"local\" on it",
            ));
        };
        if !matches!(p.output, Some(OutputDoc::Local)) {
            return Err(file.invalid(
                c,
                format!("phase `{name}` checks files but does not keep its output"),
                "set output = \"local\" on this phase",
            ));
        }
        checks
            .push(Located { value: FileCheck { path: doc.path.clone(), same, phase: phase.clone() }, at: file.at(c) });
    }
    Ok(checks)
}
