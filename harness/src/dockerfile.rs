//! What bkcache needs to know about a Dockerfile to reason like BuildKit's Dockerfile frontend: its
//! stages (named or not), the steps each stage has and how BuildKit names them, which stage a `FROM`,
//! `COPY --from` or `RUN --mount=from=` refers to, and so which stages a target builds.
//!
//! Parsing is `parse-dockerfile`'s; this module only adds BuildKit's rules (from
//! frontend/dockerfile/dockerfile2llb): a stage's steps are its `FROM` (unless `scratch` or another stage)
//! plus every ADD, COPY, RUN and WORKDIR; step names read `[<stage> <i>/<n>] <INSTRUCTION>`, where an
//! unnamed stage is `stage-<index>` and a single-stage build has no stage label; stage names are
//! case-insensitive; a stage the target does not depend on is never built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use parse_dockerfile::{Flag, Instruction};

use crate::errors::{ConfigError, Location};

/// An instruction that becomes a numbered step.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// `RUN`, `COPY`, `ADD` or `WORKDIR`.
    pub keyword: &'static str,
    /// The instruction as written (continuations joined, white space collapsed), variables unexpanded.
    pub text: String,
    /// Its `--from` sources (`COPY --from=`, `RUN --mount=...,from=`) as written.
    pub sources: Vec<String>,
    /// Every instruction of its stage after `FROM`, up to and including it, as written (comments
    /// left out): two steps with the same context on the same base are the same LLB op.
    pub context: String,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// Lowercased, as BuildKit compares them.
    pub name: Option<String>,
    /// The `FROM` argument as written (may hold `${ARG}`s).
    pub from: String,
    pub steps: Vec<StepSpec>,
    /// Where its `FROM` is.
    pub at: Location,
    /// `COPY --from=` and `RUN --mount=...,from=` values as written, with where they are.
    pub sources: Vec<(String, Location)>,
    /// `ADD` sources that are URLs or git repositories: BuildKit fetches them itself.
    pub remote_adds: Vec<(String, Location)>,
    /// What a `RUN` asks the build to be granted (`--network=host`, `--security=insecure`, a mount of a
    /// secret or SSH agent with `required=true`): bkcache grants none, so BuildKit refuses the build.
    pub grants: Vec<(String, Location)>,
}

#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub path: PathBuf,
    /// Global `ARG`s (before the first `FROM`) and their defaults.
    pub global_args: BTreeMap<String, Option<String>>,
    pub stages: Vec<Stage>,
    /// The `# syntax=` directive: BuildKit pulls that frontend image before anything else.
    pub syntax: Option<(String, Location)>,
}

/// What a stage is built on, once build args are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Image(String),
    Stage(usize),
}

impl Dockerfile {
    pub fn load(path: &Path) -> Result<Dockerfile, ConfigError> {
        let text = crate::toml_file::read_input(path)?;
        Dockerfile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Dockerfile, ConfigError> {
        let parsed = parse_dockerfile::parse(text).map_err(|e| ConfigError::Parse {
            at: Location { path: path.to_owned(), line: e.line(), column: e.column() },
            message: format!("Dockerfile: {e}"),
        })?;
        let at = |offset: usize| Location::from_offset(path.to_owned(), text, offset);
        let global_args = parsed.global_args().flat_map(|arg| arg_pairs(&arg.arguments.value)).collect();
        let stages = parsed
            .stages()
            .enumerate()
            .map(|(index, stage)| {
                let mut steps = Vec::new();
                let mut sources = Vec::new();
                let mut remote_adds = Vec::new();
                let mut grants = Vec::new();
                let body = stage.from.as_.as_ref().map_or(stage.from.image.span.end, |(_, name)| name.span.end);
                for instruction in stage.instructions {
                    if let Instruction::Add(i) = instruction {
                        for src in &i.src {
                            if let parse_dockerfile::Source::Path(p) = src {
                                if is_remote_source(&p.value) {
                                    remote_adds.push((p.value.to_string(), at(p.span.start)));
                                }
                            }
                        }
                    }
                    if let Instruction::Run(i) = instruction {
                        grants.extend(i.options.iter().filter_map(grant_of).map(|g| (g, at(i.run.span.start))));
                    }
                    let (keyword, start, end, options): (_, _, _, &[Flag<'_>]) = match instruction {
                        Instruction::Run(i) => {
                            let end = match &i.arguments {
                                parse_dockerfile::Command::Exec(a) => a.span.end,
                                parse_dockerfile::Command::Shell(a) => a.span.end,
                                _ => i.run.span.end,
                            };
                            ("RUN", i.run.span.start, end, &i.options)
                        }
                        Instruction::Copy(i) => ("COPY", i.copy.span.start, i.dest.span.end, &i.options),
                        Instruction::Add(i) => ("ADD", i.add.span.start, i.dest.span.end, &i.options),
                        Instruction::Workdir(i) => ("WORKDIR", i.workdir.span.start, i.arguments.span.end, &[]),
                        _ => continue,
                    };
                    let step_sources: Vec<String> = options.iter().filter_map(source_of).collect();
                    sources.extend(step_sources.iter().map(|s| (s.clone(), at(start))));
                    steps.push(StepSpec {
                        keyword,
                        text: collapse(&text[start..end]),
                        sources: step_sources,
                        context: without_comments(&text[body..end]),
                    });
                }
                Stage {
                    index,
                    name: stage.from.as_.as_ref().map(|(_, name)| name.value.to_lowercase()),
                    from: stage.from.image.value.to_string(),
                    at: at(stage.from.image.span.start),
                    steps,
                    sources,
                    remote_adds,
                    grants,
                }
            })
            .collect();
        let syntax = parsed.parser_directives.syntax.as_ref().map(|d| (d.value.value.to_string(), at(d.span().start)));
        Ok(Dockerfile { path: path.to_owned(), global_args, stages, syntax })
    }

    /// The stages' relations once the build args are known.
    pub fn resolve(&self, build_args: &BTreeMap<String, String>) -> Resolved<'_> {
        // FROM sees only global ARGs: a build arg overrides a declared one's default.
        let vars: BTreeMap<&str, &str> = self
            .global_args
            .iter()
            .filter_map(|(k, default)| build_args.get(k).or(default.as_ref()).map(|v| (k.as_str(), v.as_str())))
            .collect();
        let expand = |s: &str| expand(s, &vars);
        let mut bases = Vec::new();
        let mut deps = Vec::new();
        let mut image_sources = Vec::new();
        for stage in &self.stages {
            let from = expand(&stage.from).to_lowercase();
            let earlier = &self.stages[..stage.index];
            let base = match earlier.iter().position(|s| s.name.as_deref() == Some(from.as_str())) {
                Some(i) => Base::Stage(i),
                None if from == "scratch" => Base::Scratch,
                None => Base::Image(from),
            };
            let mut stage_deps = BTreeSet::new();
            let mut images = Vec::new();
            for (source, at) in &stage.sources {
                match self.source_stage(stage.index, source, &vars) {
                    Some(i) => drop(stage_deps.insert(i)),
                    None => images.push((expand(source).to_lowercase(), at.clone())),
                }
            }
            if let Base::Stage(i) = base {
                stage_deps.insert(i);
            }
            bases.push(base);
            deps.push(stage_deps);
            image_sources.push(images);
        }
        let globals = vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Resolved { dockerfile: self, bases, deps, image_sources, vars: build_args.clone(), globals }
    }

    /// The earlier stage a `--from` value of stage `stage` names (by name or index), if it names one.
    fn source_stage(&self, stage: usize, source: &str, vars: &BTreeMap<&str, &str>) -> Option<usize> {
        let s = expand(source, vars).to_lowercase();
        let earlier = &self.stages[..stage];
        s.parse::<usize>()
            .ok()
            .filter(|i| *i < stage)
            .or_else(|| earlier.iter().position(|e| e.name.as_deref() == Some(s.as_str())))
    }
}

/// A Dockerfile with its stage graph resolved for one set of build args.
pub struct Resolved<'a> {
    pub dockerfile: &'a Dockerfile,
    pub bases: Vec<Base>,
    /// Per stage, the earlier stages it needs (its base stage and every `--from`).
    pub deps: Vec<BTreeSet<usize>>,
    /// Per stage, the `--from` values that name no earlier stage: images, expanded.
    pub image_sources: Vec<Vec<(String, Location)>>,
    vars: BTreeMap<String, String>,
    /// The global ARGs' values (what `FROM` and `--from` values expand with).
    globals: BTreeMap<String, String>,
}

/// A step BuildKit never shows: the same op as `shown`, which another stage has on the same parent.
#[derive(Debug, Clone)]
pub struct MergedStep {
    pub hidden: PredictedStep,
    pub shown: PredictedStep,
}

/// A step as BuildKit will name it (variables expanded as far as bkcache knows them).
#[derive(Debug, Clone)]
pub struct PredictedStep {
    pub stage: usize,
    pub keyword: &'static str,
    pub name: String,
}

impl Resolved<'_> {
    /// The stage a `--target` names (case-insensitive), or the last stage.
    pub fn target(&self, name: Option<&str>) -> Option<usize> {
        match name {
            None => self.dockerfile.stages.len().checked_sub(1),
            Some(n) => self.stage_named(n),
        }
    }

    pub fn stage_named(&self, name: &str) -> Option<usize> {
        let name = name.to_lowercase();
        self.dockerfile.stages.iter().position(|s| s.name.as_deref() == Some(name.as_str()))
    }

    /// The label BuildKit puts in step names: the stage's name, `stage-<i>` when unnamed, and none at
    /// all in a single-stage Dockerfile.
    pub fn label(&self, stage: usize) -> Option<String> {
        if self.dockerfile.stages.len() == 1 {
            return None;
        }
        let s = &self.dockerfile.stages[stage];
        Some(s.name.clone().unwrap_or_else(|| format!("stage-{stage}")))
    }

    /// The stage whose steps carry this label.
    pub fn stage_labelled(&self, label: Option<&str>) -> Option<usize> {
        (0..self.dockerfile.stages.len()).find(|i| self.label(*i).as_deref() == label)
    }

    /// How many numbered steps the stage has (the `n` of `i/n`).
    pub fn total(&self, stage: usize) -> usize {
        usize::from(matches!(self.bases[stage], Base::Image(_))) + self.dockerfile.stages[stage].steps.len()
    }

    /// The numbered steps of a stage, `FROM` first when it is one.
    pub fn steps(&self, stage: usize) -> Vec<PredictedStep> {
        let total = self.total(stage);
        let prefix = |i: usize| match self.label(stage) {
            Some(l) => format!("[{l} {i}/{total}]"),
            None => format!("[{i}/{total}]"),
        };
        let mut out = Vec::new();
        if let Base::Image(image) = &self.bases[stage] {
            out.push(PredictedStep { stage, keyword: "FROM", name: format!("{} FROM {image}", prefix(1)) });
        }
        let vars: BTreeMap<&str, &str> = self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for spec in &self.dockerfile.stages[stage].steps {
            let index = out.len() + 1;
            out.push(PredictedStep {
                stage,
                keyword: spec.keyword,
                name: format!("{} {}", prefix(index), expand(&spec.text, &vars)),
            });
        }
        out
    }

    /// Every stage a build of `target` builds: the target and, transitively, what it needs.
    pub fn closure(&self, target: usize) -> BTreeSet<usize> {
        self.walk(target, |s| self.deps[s].iter().copied().collect())
    }

    /// The stages whose layers end up in the target's image: the target and its `FROM` stages. This is
    /// what a `mode=min` cache export holds.
    pub fn image_chain(&self, target: usize) -> BTreeSet<usize> {
        self.walk(target, |s| match self.bases[s] {
            Base::Stage(parent) => vec![parent],
            _ => Vec::new(),
        })
    }

    fn walk(&self, start: usize, next: impl Fn(usize) -> Vec<usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::from([start]);
        let mut todo = vec![start];
        while let Some(s) = todo.pop() {
            for n in next(s) {
                if seen.insert(n) {
                    todo.push(n);
                }
            }
        }
        seen
    }

    /// Steps a build of `target` runs once for two stages, and the name BuildKit shows for them.
    ///
    /// The Dockerfile frontend gives each stage's instruction its own LLB vertex, but an identical op on
    /// an identical parent has the same digest, so the solver runs it once. Its name is the op's
    /// metadata, which `client/llb` merges per digest as it marshals the target's graph depth first,
    /// inputs before the op and a `COPY`'s destination before its source: the stage marshalled last
    /// names it (`mergeMetadata` in client/llb/state.go; measured on v0.24.0 and v0.33.1 with
    /// `harness/tests/scenarios/merged-steps.toml`: `[two 2/2]` shown for `[one 2/2]` too).
    pub fn merged_steps(&self, target: usize) -> Vec<MergedStep> {
        let mut order = Vec::new();
        self.marshal(target, &mut BTreeSet::new(), &mut order);
        // the last step marshalled with each identity names them all
        let mut shown: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for &(stage, i) in &order {
            shown.insert(self.identity(stage, i), (stage, i));
        }
        let steps: BTreeMap<usize, Vec<PredictedStep>> =
            order.iter().map(|(stage, _)| (*stage, self.steps(*stage))).collect();
        order
            .iter()
            .filter_map(|&(stage, i)| {
                let (s, j) = shown[&self.identity(stage, i)];
                (s != stage).then(|| MergedStep { hidden: steps[&stage][i].clone(), shown: steps[&s][j].clone() })
            })
            .collect()
    }

    /// Appends `stage`'s steps (by index into [`Resolved::steps`]) in the order `client/llb` marshals
    /// them, after those of the stages they need.
    fn marshal(&self, stage: usize, seen: &mut BTreeSet<usize>, order: &mut Vec<(usize, usize)>) {
        if !seen.insert(stage) {
            return;
        }
        let mut index = 0;
        match self.bases[stage] {
            Base::Stage(parent) => self.marshal(parent, seen, order),
            Base::Image(_) => {
                order.push((stage, 0));
                index = 1;
            }
            Base::Scratch => {}
        }
        let vars: BTreeMap<&str, &str> = self.globals.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for spec in &self.dockerfile.stages[stage].steps {
            for source in &spec.sources {
                if let Some(s) = self.dockerfile.source_stage(stage, source, &vars) {
                    self.marshal(s, seen, order);
                }
            }
            order.push((stage, index));
            index += 1;
        }
    }

    /// What makes step `i` of `stage` the op it is: its base and every instruction before it.
    fn identity(&self, stage: usize, i: usize) -> String {
        let base = match &self.bases[stage] {
            Base::Image(image) if i == 0 => return format!("FROM {image}"),
            Base::Image(image) => format!("FROM {image}"),
            Base::Scratch => "FROM scratch".to_owned(),
            Base::Stage(parent) => {
                let last = self.total(*parent).checked_sub(1);
                last.map_or_else(|| self.identity_of_empty(*parent), |l| self.identity(*parent, l))
            }
        };
        let offset = usize::from(matches!(self.bases[stage], Base::Image(_)));
        format!("{base}\n{}", self.dockerfile.stages[stage].steps[i - offset].context)
    }

    /// A stage without steps is its base.
    fn identity_of_empty(&self, stage: usize) -> String {
        match &self.bases[stage] {
            Base::Stage(parent) => match self.total(*parent).checked_sub(1) {
                Some(l) => self.identity(*parent, l),
                None => self.identity_of_empty(*parent),
            },
            _ => "FROM scratch".to_owned(),
        }
    }

    /// A stage as users read it in messages.
    pub fn describe(&self, stage: usize) -> String {
        self.label(stage).unwrap_or_else(|| "the only stage".to_owned())
    }
}

/// `ARG A=1 B` → (A, Some(1)), (B, None).
fn arg_pairs(arguments: &str) -> Vec<(String, Option<String>)> {
    arguments
        .split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.trim_matches('"').to_owned())),
            None => (kv.to_owned(), None),
        })
        .collect()
}

/// `--from=stage` of COPY/ADD, or the `from=` of a `RUN --mount`.
fn source_of(flag: &Flag<'_>) -> Option<String> {
    let value = flag.value.as_ref()?.value.as_ref();
    match flag.name.value.as_ref() {
        "from" => Some(value.to_owned()),
        "mount" => value.split(',').find_map(|kv| kv.strip_prefix("from=")).map(str::to_owned),
        _ => None,
    }
}

/// An `ADD` source BuildKit fetches itself: a URL or a git repository.
fn is_remote_source(src: &str) -> bool {
    ["http://", "https://", "git://", "git@", "ssh://"].iter().any(|p| src.starts_with(p))
}

/// What a `RUN` option asks to be granted (see [`Stage::grants`]).
fn grant_of(flag: &Flag<'_>) -> Option<String> {
    let value = flag.value.as_ref()?.value.as_ref();
    match flag.name.value.as_ref() {
        "network" if value == "host" => Some("--network=host (the network.host entitlement)".into()),
        "security" if value == "insecure" => Some("--security=insecure (the security.insecure entitlement)".into()),
        "mount" => {
            let fields: Vec<&str> = value.split(',').collect();
            let kind = fields.iter().find_map(|f| f.strip_prefix("type="))?;
            let required = fields.iter().any(|f| matches!(*f, "required" | "required=true"));
            matches!(kind, "secret" | "ssh")
                .then_some(required)
                .filter(|r| *r)
                .map(|_| format!("--mount=type={kind},required=true (no {kind} is passed to the build)"))
        }
        _ => None,
    }
}

/// Instructions as written, comment lines left out, white space collapsed.
fn without_comments(text: &str) -> String {
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    collapse(&kept.join("\n"))
}

/// Joins line continuations and collapses white space, as step names show instructions.
fn collapse(text: &str) -> String {
    text.replace("\\\n", " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `$VAR`, `${VAR}` and `${VAR:-default}` expanded with `vars`; unknown variables stay as written.
fn expand(text: &str, vars: &BTreeMap<&str, &str>) -> String {
    shellexpand::env_with_context_no_errors(text, |name: &str| vars.get(name).copied()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Dockerfile {
        Dockerfile::parse(Path::new("Dockerfile"), text).unwrap()
    }

    const ISSUE_6893: &str = "ARG BASE_BUILD\nARG BASE_FINAL\nFROM ${BASE_BUILD} AS build\nRUN echo stable > /stable\nARG BUST\nRUN echo \"$BUST\" > /bust\n\nFROM ${BASE_FINAL}\nCOPY --from=build /stable /bust /\n";

    #[test]
    fn names_steps_like_buildkit() {
        let df = parse(ISSUE_6893);
        let args = BTreeMap::from([
            ("BASE_BUILD".into(), "reg/a:esgz".into()),
            ("BASE_FINAL".into(), "reg/b:esgz".into()),
            ("BUST".into(), "2".into()),
        ]);
        let r = df.resolve(&args);
        let names: Vec<String> = (0..2).flat_map(|s| r.steps(s)).map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "[build 1/3] FROM reg/a:esgz",
                "[build 2/3] RUN echo stable > /stable",
                "[build 3/3] RUN echo \"2\" > /bust",
                "[stage-1 1/2] FROM reg/b:esgz",
                "[stage-1 2/2] COPY --from=build /stable /bust /",
            ]
        );
        assert_eq!(r.closure(1), BTreeSet::from([0, 1]));
        assert_eq!(r.image_chain(1), BTreeSet::from([1]));
    }

    #[test]
    fn a_stage_on_another_stage_has_no_from_step_and_carries_its_chain() {
        let df = parse("FROM scratch AS a\nCOPY x /x\nFROM a AS b\nRUN true\nFROM busybox AS unused\nRUN false\n");
        let r = df.resolve(&BTreeMap::new());
        assert_eq!(r.bases, [Base::Scratch, Base::Stage(0), Base::Image("busybox".into())]);
        assert_eq!(r.total(0), 1);
        assert_eq!(r.steps(1)[0].name, "[b 1/1] RUN true");
        assert_eq!(r.image_chain(1), BTreeSet::from([0, 1]));
        assert_eq!(r.closure(r.target(Some("B")).unwrap()), BTreeSet::from([0, 1]));
        assert!(!r.closure(1).contains(&2), "the unused stage is never built");
    }

    #[test]
    fn mounts_and_numeric_from_are_dependencies() {
        let df = parse("FROM busybox\nRUN true\nFROM busybox AS two\nRUN --mount=type=bind,from=0,target=/x true\nFROM busybox\nCOPY --from=1 /a /a\n");
        let r = df.resolve(&BTreeMap::new());
        assert_eq!(r.closure(2), BTreeSet::from([0, 1, 2]));
        assert_eq!(r.label(0).as_deref(), Some("stage-0"));
    }

    #[test]
    fn a_single_stage_build_has_no_label() {
        let df = parse("FROM busybox\nWORKDIR /w\nRUN a \\\n  b\n");
        let r = df.resolve(&BTreeMap::new());
        let names: Vec<String> = r.steps(0).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["[1/3] FROM busybox", "[2/3] WORKDIR /w", "[3/3] RUN a b"]);
    }

    #[test]
    fn identical_ops_on_identical_parents_are_shown_under_the_last_marshalled_stage() {
        let text = "FROM img AS one\nENV A=1\nRUN same\nFROM img AS two\nENV A=1\n# a comment\nRUN same\nFROM img AS three\nENV A=2\nRUN same\nFROM one AS four\nRUN more\nFROM scratch\nCOPY --from=two /x /x\nCOPY --from=one /x /y\nCOPY --from=three /x /z\nCOPY --from=four /x /w\n";
        let df = parse(text);
        let r = df.resolve(&BTreeMap::new());
        let merged: Vec<(String, String)> =
            r.merged_steps(r.target(None).unwrap()).into_iter().map(|m| (m.hidden.name, m.shown.name)).collect();
        assert_eq!(
            merged,
            [
                ("[two 1/2] FROM img".into(), "[three 1/2] FROM img".into()),
                ("[two 2/2] RUN same".into(), "[one 2/2] RUN same".into()),
                ("[one 1/2] FROM img".into(), "[three 1/2] FROM img".into()),
            ],
            "`three` sets another ENV, so its RUN is its own; `four` builds on `one`'s chain"
        );
        // a stage the target does not build merges with nothing
        assert!(r.merged_steps(r.target(Some("one")).unwrap()).is_empty());
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = Dockerfile::parse(Path::new("D"), "FROM busybox\nFOO bar\n").unwrap_err().to_string();
        assert!(err.starts_with("D:2:"), "{err}");
    }
}
