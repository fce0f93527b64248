//! BuildKit-semantics lint: expectations that cannot hold by design are rejected before any builder
//! exists, so they never show up as a "regression" on every builder.
//!
//! Rules (each finding names its rule, the expectation's file:line:col and a fix):
//! - `unknown-stage`: an expectation names a stage the Dockerfile lacks (or a stage label where the
//!   Dockerfile has one stage, or none where it has several); `--target` names no stage.
//! - `step-index`: `i/n` beyond the stage, `n` not the stage's step count, or step `i` is another instruction.
//! - `never-built`: the step's stage is not needed by the build's target, so BuildKit never builds it.
//! - `nothing-to-hit`: expected CACHED on a builder whose cache holds no step result (fresh, or after
//!   a prune without filters or with `type=regular` only) in a build that imports no cache.
//! - `min-mode-stage`: expected CACHED for a step outside the target's image chain when the builder's
//!   cache is empty and every imported cache was exported with mode=min, which exports only the layers of
//!   the exporting build's image (moby/buildkit#1742). Such a step can only show CACHED as an ancestor of
//!   a hit that BuildKit never loaded, which says nothing about the cache.
//! - `inline-stage`: the same for a build that imports only inline caches: an inline cache holds the
//!   records of the pushed image's layers only (BuildKit exports it as mode=min).
//! - `merged-step`: an exact step name BuildKit never shows: the step is the same instruction on the
//!   same parent as a step of another stage, so BuildKit builds it once under the other name
//!   (see [`Resolved::merged_steps`]).
//! - `target-limited`: expected CACHED, on an empty builder cache, for a step of a stage no imported
//!   cache can hold because the build that exported it did not build that stage (its `target` does not
//!   depend on it): BuildKit exports records of what the exporting build solved, whatever the mode.
//! - `contradiction`: one step both expected CACHED and expected to run in the same build.
//!
//! What an imported cache can hold is one model ([`Reach`]): the stages of the exporting build's target
//! closure for mode=max, of the target's image chain for mode=min and inline caches.
//!
//! Exact step names are checked by their `[stage i/n] KEYWORD` prefix; patterns by the steps they match
//! among the names predicted from the Dockerfile (a pattern that matches none is left to run time).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use super::model::*;
use crate::dockerfile::{Base, Dockerfile, MergedStep, PredictedStep, Resolved};
use crate::errors::{ConfigError, Location};

/// Every lint finding of one scenario.
pub fn check(scenario: &Scenario, dockerfile: &Dockerfile) -> Vec<ConfigError> {
    let mut findings = Vec::new();
    if let Some((syntax, at)) = dockerfile.syntax.as_ref().filter(|_| !scenario.allow_network) {
        findings.push(off_loopback(
            at,
            format!("the `# syntax={syntax}` directive makes BuildKit pull that frontend image"),
        ));
    }
    // why the builder's cache holds no step result here, if it holds none
    let mut empty: Option<String> = Some("a fresh builder".into());
    let mut exported: BTreeMap<CacheRef, Reach> = BTreeMap::new();
    for phase in &scenario.phases {
        let build = match &phase.action {
            PhaseAction::Prune(prune) => {
                if prune.removes_every_step_result() {
                    let options = prune.options().join(" ");
                    empty = Some(if prune.empties_the_cache() {
                        format!("phase `{}` pruned it with `{options}`", phase.name)
                    } else {
                        format!("phase `{}` pruned it with `{options}`, which removes every step's result", phase.name)
                    });
                }
                continue;
            }
            // the builder's cache is as it was; what the base's move does to it is what a run measures
            PhaseAction::Drift { .. } | PhaseAction::DeleteLayers(_) => continue,
            PhaseAction::Build(build) => build,
        };
        let mut args: BTreeMap<String, String> = scenario
            .bases
            .iter()
            .map(|(k, b)| (k.clone(), b.reference("<registry>", &|tag| format!("<registry>/bkcache-base/<run>:{tag}"))))
            .collect();
        args.extend(build.build_args.clone());
        let resolved = dockerfile.resolve(&args);
        let target = match resolved.target(build.target.as_ref().map(|t| t.value.as_str())) {
            Some(t) => t,
            None => {
                let t = build.target.as_ref().expect("a Dockerfile has at least one stage");
                findings.push(finding(
                    &t.at,
                    "unknown-stage",
                    format!("target `{}` is not a stage of {}", t.value, dockerfile.path.display()),
                    stage_list(&resolved),
                ));
                continue;
            }
        };
        let mut no_cache = BTreeSet::new();
        for stage in &build.no_cache_filter {
            match resolved.target(Some(&stage.value)) {
                Some(s) => {
                    no_cache.insert(s);
                }
                None => findings.push(finding(
                    &stage.at,
                    "unknown-stage",
                    format!(
                        "no_cache_filter names `{}`, which is not a stage of {}",
                        stage.value,
                        dockerfile.path.display()
                    ),
                    stage_list(&resolved),
                )),
            }
        }
        let mut lint = PhaseLint { phase: phase.name.as_str(), resolved: &resolved, target, findings: Vec::new() };
        let merged = resolved.merged_steps(target);
        for (expectations, want_cached) in [(&build.expect_cached, true), (&build.expect_ran, false)] {
            for e in expectations {
                let Some(stages) = lint.stages_of(e) else { continue };
                lint.never_built(e, &stages);
                lint.merged_step(e, &merged);
                if want_cached {
                    lint.no_cache_stage(e, &stages, &no_cache);
                    if let Some(why) = &empty {
                        lint.cache_rules(e, &stages, why, &build.cache_from, &exported);
                    }
                }
            }
        }
        findings.append(&mut lint.findings);
        reach(scenario, phase, build, &resolved, target, &mut findings);
        contradictions(phase.name.as_str(), build, &resolved, &mut findings);
        for export in &build.cache_to {
            let shape = export.shape();
            let stages =
                if shape.holds_every_solved_step() { resolved.closure(target) } else { resolved.image_chain(target) };
            let reach = Reach { phase: phase.name.to_string(), shape, target: resolved.describe(target), stages };
            exported.insert(export.target.clone(), reach);
        }
        empty = None;
    }
    findings
}

/// What an exported cache can hold ([`ExportShape`] over the Dockerfile's stages): the stages the
/// exporting build solved (its target's closure) with mode=max; its target's image chain otherwise.
struct Reach {
    phase: String,
    shape: ExportShape,
    /// The exporting build's target, as the lint names stages.
    target: String,
    stages: BTreeSet<usize>,
}

/// `[<stage> <i>/<n>] <KEYWORD>` at the start of a step name (the stage absent in single-stage builds).
static STEP_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[\s*(?:([^\s\]]+)\s+)?(\d+)/(\d+)\]\s*(\S*)").expect("valid regex"));

struct PhaseLint<'a, 'r> {
    phase: &'a str,
    resolved: &'a Resolved<'r>,
    target: usize,
    findings: Vec<ConfigError>,
}

impl PhaseLint<'_, '_> {
    /// The stages an expectation is about; `None` when it cannot be told (a finding was made, or the
    /// name is not a numbered step, or a pattern matches no predicted step).
    fn stages_of(&mut self, e: &Located<StepMatcher>) -> Option<BTreeSet<usize>> {
        match &e.value {
            StepMatcher::Exact(name) => self.exact_stage(e, name).map(|s| BTreeSet::from([s])),
            StepMatcher::Pattern(re) => {
                let stages: BTreeSet<usize> =
                    self.all_steps().filter(|s| re.is_match(&s.name)).map(|s| s.stage).collect();
                (!stages.is_empty()).then_some(stages)
            }
        }
    }

    fn all_steps(&self) -> impl Iterator<Item = PredictedStep> + '_ {
        (0..self.resolved.dockerfile.stages.len()).flat_map(|s| self.resolved.steps(s))
    }

    fn exact_stage(&mut self, e: &Located<StepMatcher>, name: &str) -> Option<usize> {
        let caps = STEP_PREFIX.captures(name)?;
        let label = caps.get(1).map(|m| m.as_str());
        let (i, n): (usize, usize) = (caps[2].parse().ok()?, caps[3].parse().ok()?);
        let keyword = caps[4].to_uppercase();
        let r = self.resolved;
        let Some(stage) = r.stage_labelled(label) else {
            let message = match label {
                Some(l) => format!("phase `{}`: `{name}` names stage `{l}`, which {} lacks", self.phase, r.dockerfile.path.display()),
                None => format!("phase `{}`: `{name}` names no stage, but {} has several: BuildKit prefixes each step with its stage", self.phase, r.dockerfile.path.display()),
            };
            self.push(e, "unknown-stage", message, stage_list(r));
            return None;
        };
        let steps = r.steps(stage);
        let listing = || {
            format!(
                "the steps of {} are: {}",
                r.describe(stage),
                steps.iter().map(|s| format!("`{}`", s.name)).collect::<Vec<_>>().join(", ")
            )
        };
        if i == 0 || i > steps.len() || n != steps.len() {
            let message = format!(
                "phase `{}`: `{name}`: {} has {} steps, so no step is `{i}/{n}`",
                self.phase,
                r.describe(stage),
                steps.len()
            );
            self.push(e, "step-index", message, listing());
            return None;
        }
        let actual = &steps[i - 1];
        // a `COPY --link` (or `ADD --link`) step has a second vertex, `LINK COPY ...`: the merge of the
        // copied layer onto the layers below it
        let linked = keyword == "LINK" && matches!(actual.keyword, "COPY" | "ADD") && actual.name.contains("--link");
        if !keyword.is_empty() && keyword != actual.keyword && !linked {
            let message = format!(
                "phase `{}`: `{name}`: step {i} of {} is a {} step, not {keyword}",
                self.phase,
                r.describe(stage),
                actual.keyword
            );
            self.push(e, "step-index", message, listing());
            return None;
        }
        Some(stage)
    }

    fn never_built(&mut self, e: &Located<StepMatcher>, stages: &BTreeSet<usize>) {
        let built = self.resolved.closure(self.target);
        if stages.is_disjoint(&built) {
            let r = self.resolved;
            let message = format!(
                "phase `{}`: `{}` is in stage {}, which the target {} does not depend on: BuildKit never builds it",
                self.phase,
                e.value,
                names(r, stages),
                r.describe(self.target)
            );
            self.push(
                e,
                "never-built",
                message,
                "expect a step of a stage the target needs, or set the phase's `target`".into(),
            );
        }
    }

    /// An exact name of a step BuildKit shows under another stage's name.
    fn merged_step(&mut self, e: &Located<StepMatcher>, merged: &[MergedStep]) {
        let StepMatcher::Exact(name) = &e.value else { return };
        let Some(m) = merged.iter().find(|m| e.value.matches(&m.hidden.name)) else { return };
        let message = format!(
            "phase `{}`: `{name}` is the same instruction on the same parent as `{}`: BuildKit builds it once and shows it only as `{}`",
            self.phase, m.shown.name, m.shown.name
        );
        self.push(e, "merged-step", message, format!("name the step `{}`", m.shown.name));
    }

    /// `--no-cache-filter` makes BuildKit build these stages without any cache: never CACHED.
    fn no_cache_stage(&mut self, e: &Located<StepMatcher>, stages: &BTreeSet<usize>, no_cache: &BTreeSet<usize>) {
        if !stages.is_empty() && stages.is_subset(no_cache) {
            let message = format!(
                "phase `{}`: `{}` is in stage {}, which the phase's no_cache_filter builds without cache: it is never CACHED",
                self.phase,
                e.value,
                names(self.resolved, stages)
            );
            self.push(
                e,
                "no-cache-stage",
                message,
                "expect it in expect_ran, or take the stage out of no_cache_filter".into(),
            );
        }
    }

    fn cache_rules(
        &mut self,
        e: &Located<StepMatcher>,
        stages: &BTreeSet<usize>,
        empty: &str,
        imports: &[CacheRef],
        exported: &BTreeMap<CacheRef, Reach>,
    ) {
        if imports.is_empty() {
            let message = format!(
                "phase `{}`: expects `{}` CACHED, but the builder's cache holds no step result here ({empty}) and the build imports no cache",
                self.phase, e.value
            );
            self.push(
                e,
                "nothing-to-hit",
                message,
                "import a cache the scenario exported (cache_from), or move the expectation to expect_ran".into(),
            );
            return;
        }
        let reaches: Vec<(&CacheRef, &Reach)> =
            imports.iter().filter_map(|c| exported.get(c).map(|r| (c, r))).collect();
        let reachable: BTreeSet<usize> = reaches.iter().flat_map(|(_, r)| r.stages.iter().copied()).collect();
        if reaches.is_empty() || !stages.is_disjoint(&reachable) {
            return;
        }
        let r = self.resolved;
        // every import holds its image's chain only: an inline cache, or mode=min
        if reaches.iter().all(|(_, reach)| !reach.shape.holds_every_solved_step()) {
            let (rule, what, fix) = if reaches.iter().all(|(_, reach)| reach.shape == ExportShape::Inline) {
                (
                    "inline-stage",
                    "is an inline cache, which holds only the records of the pushed image's layers",
                    "export a registry or local cache with mode = \"max\" beside the inline one, and import it",
                )
            } else {
                (
                    "min-mode-stage",
                    "was exported with mode=min, which holds only the exporting build's image layers",
                    "export with mode = \"max\" to cache every stage (moby/buildkit#1742)",
                )
            };
            let message = format!(
                "phase `{}`: expects `{}` CACHED, but every cache it imports {what} (stage {}), not stage {}",
                self.phase,
                e.value,
                names(r, &reachable),
                names(r, stages)
            );
            self.push(e, rule, message, fix.into());
            return;
        }
        let shapes: Vec<String> = reaches
            .iter()
            .map(|(cache, reach)| {
                format!(
                    "`{cache}` (phase `{}`, target `{}`, {}: stage {})",
                    reach.phase,
                    reach.target,
                    reach.shape.describe(),
                    names(r, &reach.stages)
                )
            })
            .collect();
        let message = format!(
            "phase `{}`: expects `{}` CACHED, but no cache it imports can hold stage {}: {}",
            self.phase,
            e.value,
            names(r, stages),
            shapes.join("; ")
        );
        let fix = "export from a build whose target depends on that stage, or move the expectation to expect_ran";
        self.push(e, "target-limited", message, fix.into());
    }

    fn push(&mut self, e: &Located<StepMatcher>, rule: &str, message: String, fix: String) {
        self.findings.push(finding(&e.at, rule, message, fix));
    }
}

/// One step both expected CACHED and expected to run.
fn contradictions(phase: &str, build: &BuildPhase, resolved: &Resolved<'_>, findings: &mut Vec<ConfigError>) {
    let predicted: Vec<String> =
        (0..resolved.dockerfile.stages.len()).flat_map(|s| resolved.steps(s)).map(|s| s.name).collect();
    for ran in &build.expect_ran {
        for cached in &build.expect_cached {
            let both = match (&cached.value, &ran.value) {
                (StepMatcher::Exact(_), StepMatcher::Exact(b)) | (StepMatcher::Pattern(_), StepMatcher::Exact(b)) => {
                    cached.value.matches(b)
                }
                (StepMatcher::Exact(a), StepMatcher::Pattern(_)) => ran.value.matches(a),
                (StepMatcher::Pattern(_), StepMatcher::Pattern(_)) => {
                    predicted.iter().any(|n| cached.value.matches(n) && ran.value.matches(n))
                }
            };
            if both {
                findings.push(finding(
                    &ran.at,
                    "contradiction",
                    format!(
                        "phase `{phase}`: `{}` is expected to run, and `{}` (line {}) expects the same step CACHED",
                        ran.value, cached.value, cached.at.line
                    ),
                    "keep one expectation per step".into(),
                ));
            }
        }
    }
}

/// `off-loopback`: something the build would fetch from off this machine.
fn off_loopback(at: &Location, what: String) -> ConfigError {
    finding(
        at,
        "off-loopback",
        format!("{what}: builds reach only the local registry"),
        "use a local base (`bases = { X = { local = \"base-a\" } }`) or the Dockerfile's built-in frontend; \
         a scenario meant for a machine with network access says `allow_network = true`"
            .into(),
    )
}

/// The platform the local bases are built for: this machine's.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// The rules of what a build may reach and be granted, for the stages `target` builds:
/// - `off-loopback`: a remote `FROM` (literal or through an ARG), a `COPY --from`/`RUN --mount=from=`
///   image, an `ADD` of a URL or git source, a `BUILDKIT_SYNTAX` build arg (and the `# syntax` directive,
///   checked once per Dockerfile) — unless the scenario says `allow_network = true`;
/// - `input-error`: what BuildKit refuses for the input's sake, never a regression: a `FROM` whose ARG
///   nothing sets, a `platform` the local bases do not provide, a `RUN` that needs an entitlement or a
///   secret/SSH agent the harness never grants.
fn reach(
    scenario: &Scenario,
    phase: &Phase,
    build: &BuildPhase,
    resolved: &Resolved<'_>,
    target: usize,
    findings: &mut Vec<ConfigError>,
) {
    let local =
        |reference: &str| reference.starts_with("<registry>/") || crate::network::is_loopback_reference(reference);
    let closure = resolved.closure(target);
    if !scenario.allow_network && build.build_args.contains_key("BUILDKIT_SYNTAX") {
        findings
            .push(off_loopback(&phase.at, format!("phase `{}` sets BUILDKIT_SYNTAX, a frontend image", phase.name)));
    }
    for &i in &closure {
        let stage = &resolved.dockerfile.stages[i];
        match &resolved.bases[i] {
            Base::Image(from) if from.contains('$') || from.is_empty() => findings.push(finding(
                &stage.at,
                "input-error",
                format!(
                    "phase `{}`: `FROM {}` names a build argument nothing sets (BuildKit refuses a blank base name)",
                    phase.name, stage.from
                ),
                "give the ARG a default, a `bases` entry or a build_args value".into(),
            )),
            Base::Image(from) if !scenario.allow_network && !local(from) => findings.push(off_loopback(
                &stage.at,
                format!("`FROM {from}` pulls from {}", crate::network::registry_host(from)),
            )),
            _ => {}
        }
        for (image, at) in resolved.image_sources[i].iter().filter(|_| !scenario.allow_network) {
            if !local(image) {
                findings.push(off_loopback(
                    at,
                    format!("`--from={image}` is an image, pulled from {}", crate::network::registry_host(image)),
                ));
            }
        }
        if !scenario.allow_network {
            for (url, at) in &stage.remote_adds {
                findings.push(off_loopback(at, format!("`ADD {url}` fetches from the network")));
            }
        }
        for (grant, at) in &stage.grants {
            findings.push(finding(
                at,
                "input-error",
                format!(
                    "phase `{}`: a RUN asks for {grant}; the harness grants none, so BuildKit refuses the build",
                    phase.name
                ),
                "leave the option out: a scenario tests the cache, not entitlements".into(),
            ));
        }
    }
    let on_local_bases =
        closure.iter().any(|&i| matches!(&resolved.bases[i], Base::Image(from) if from.starts_with("<registry>/")));
    if let Some(platform) = build.platform.as_ref().filter(|p| on_local_bases && **p != host_platform()) {
        findings.push(finding(
            &phase.at,
            "input-error",
            format!("phase `{}` builds for {platform}; the local bases provide {} only", phase.name, host_platform()),
            format!("leave `platform` out, or set it to {}", host_platform()),
        ));
    }
}

fn finding(at: &Location, rule: &str, message: String, fix: String) -> ConfigError {
    ConfigError::Invalid { at: at.clone(), message: format!("lint[{rule}]: {message}"), fix }
}

fn stage_list(r: &Resolved<'_>) -> String {
    let labels: Vec<String> =
        (0..r.dockerfile.stages.len()).filter_map(|s| r.label(s)).map(|l| format!("`{l}`")).collect();
    if labels.is_empty() {
        "the Dockerfile has one stage: its steps are named `[i/n] ...` without a stage".into()
    } else {
        format!("the stages are: {}", labels.join(", "))
    }
}

fn names(r: &Resolved<'_>, stages: &BTreeSet<usize>) -> String {
    stages.iter().map(|s| format!("`{}`", r.describe(*s))).collect::<Vec<_>>().join(", ")
}
