//! `reproduce.sh` of an evidence pack: a cell's phases as plain `docker buildx` commands, judged from
//! `--progress plain` output by the rules `judge` applies, so the verdict can be had without bkcache.
//!
//! The commands are the ones bkcache runs, made by the same functions (`phase::build_args`,
//! `phase::prune_args`, `builder::create_args`) with placeholders for what differs per run (the work
//! directory, the builder name, registry refs), which the script fills in as shell variables.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::execute::bases;
use crate::execute::phase::{self, CellPaths};
use crate::host::builder;
use crate::plan::Cell;
use crate::scenario::{BaseImage, BuildPhase, DeclaredBase, LayerDeletion, Phase, PhaseAction, Scenario, StepMatcher};

/// Marks a placeholder inside an argument: `\u{1}WORK\u{1}` becomes `"${WORK}"`.
const MARK: char = '\u{1}';

fn var(name: &str) -> String {
    format!("{MARK}{name}{MARK}")
}

/// One shell word: literal parts single-quoted (bare when nothing in them is special), placeholders as
/// double-quoted variables.
pub fn shell_word(arg: &str) -> String {
    let bare = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_./:=,+-@%".contains(c));
    let mut out = String::new();
    for (i, part) in arg.split(MARK).enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "\"${{{part}}}\"");
        } else if bare(part) {
            out.push_str(part);
        } else if !part.is_empty() {
            let _ = write!(out, "'{}'", part.replace('\'', r"'\''"));
        }
    }
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

fn command(args: &[String]) -> String {
    args.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" ")
}

/// A matcher as the script's `steps` function takes it: how, then the text.
fn matcher_words(m: &StepMatcher) -> String {
    match m {
        StepMatcher::Exact(text) => format!("exact {}", shell_word(text)),
        StepMatcher::Pattern(re) => format!("re {}", shell_word(re.as_str())),
    }
}

/// The variables and functions every script starts with (after REGISTRY, IMAGE and KNOWN_ISSUES), in a
/// file of its own so shellcheck reads it.
pub const PRELUDE: &str = include_str!("prelude.sh");

/// What the script needs to know besides the cell.
pub struct ScriptInputs<'a> {
    pub cell: &'a Cell,
    /// The local registry buildkitd.toml trusts over plain HTTP, where the bases are.
    pub registry: &'a str,
    /// How the pack names its files: the Dockerfile, the context and buildkitd.toml.
    pub dockerfile: &'a str,
    pub context: &'a str,
    pub buildkitd_toml: &'a str,
}

/// The whole script: a header, the builders, the declared bases, then each phase.
pub fn render(inputs: &ScriptInputs<'_>) -> String {
    let cell = inputs.cell;
    let profile = &cell.profile;
    let mut out = String::from("#!/bin/sh\n");
    let _ = writeln!(
        out,
        "# Scenario `{}` on builder `{}` ({}, {} snapshotter), without bkcache.",
        cell.scenario.name,
        profile.name,
        crate::report::build_label(profile),
        profile.snapshotter.as_str()
    );
    out.push_str(
        "# Runs its phases with docker buildx alone and judges each expectation from `--progress plain`\n\
         # output, then prints the verdict; exit 0 pass / known-failure / unexpected-pass, 1 fail, 2 error.\n\
         # Needs docker with buildx, the registry below holding the scenario's bases, and the BuildKit\n\
         # image IMAGE (see README.md). Unlike bkcache it does not check that a lazy snapshotter pulled\n\
         # the bases lazily.\n",
    );
    let _ = writeln!(out, "REGISTRY={}    # the registry buildkitd.toml trusts over HTTP", inputs.registry);
    let _ = writeln!(out, "IMAGE=${{IMAGE:-{}}}", profile.image);
    let mut ids: Vec<String> = Vec::new();
    for k in cell.known_issues.iter().filter(|k| !k.intermittent) {
        if !ids.contains(&k.id.to_string()) {
            ids.push(k.id.to_string());
        }
    }
    let _ = writeln!(
        out,
        "KNOWN_ISSUES={}    # the known issues that must show on this builder (intermittent ones aside)",
        shell_word(&ids.join(", "))
    );
    out.push_str(PRELUDE);
    let config = format!("{}/{}", var("PACK"), inputs.buildkitd_toml);
    let create = builder::create_args(&var("BUILDER"), &var("IMAGE"), &profile.all_buildkitd_flags(), &config);
    let _ = writeln!(out, "\necho \"creating builder $BUILDER ($IMAGE)\"");
    let _ = writeln!(
        out,
        "docker buildx {} > \"$LOGS/create.log\" 2>&1 || {{ errors=1; echo \"  ERROR  cannot create the builder: see $LOGS/create.log\"; finish; }}",
        command(&create)
    );
    let scenario = Scenario {
        dockerfile: PathBuf::from(format!("{}/{}", var("PACK"), inputs.dockerfile)),
        context: PathBuf::from(format!("{}/{}", var("PACK"), inputs.context)),
        ..(*cell.scenario).clone()
    };
    let work = PathBuf::from(var("WORK"));
    let paths = CellPaths { dir: &work, refs: &var("RUN"), registry: &var("REGISTRY") };
    let declared: Vec<&DeclaredBase> = scenario
        .bases
        .values()
        .filter_map(|b| match b {
            BaseImage::Declared(d) => Some(d),
            _ => None,
        })
        .collect();
    if !declared.is_empty() {
        let helper = crate::images::bases::pushing_profile(&profile.image);
        let bases_builder = format!("{}-bases", var("BUILDER"));
        let create = builder::create_args(&bases_builder, &var("IMAGE"), &helper.all_buildkitd_flags(), &config);
        let _ = writeln!(out, "\necho \"creating the bases builder $BUILDER-bases\"");
        let _ = writeln!(
            out,
            "docker buildx {} > \"$LOGS/create-bases.log\" 2>&1 || {{ errors=1; echo \"  ERROR  cannot create the bases builder\"; finish; }}",
            command(&create)
        );
        for d in &declared {
            out.push_str(&push_base(d, &d.content, &paths));
        }
    }
    for phase in &scenario.phases {
        out.push('\n');
        out.push_str(&match &phase.action {
            PhaseAction::Build(build) => build_lines(cell, &scenario, phase, build, &paths),
            _ => other_phase_lines(phase, &paths),
        });
    }
    out.push_str("\nfinish\n");
    out
}

/// A phase that builds nothing: a base that moves, layers deleted, a prune.
fn other_phase_lines(phase: &Phase, paths: &CellPaths<'_>) -> String {
    let mut out = String::new();
    match &phase.action {
        PhaseAction::Drift { base, declared, content } => {
            let _ = writeln!(out, "echo \"phase {}: the base {base} moves\"", phase.name);
            out.push_str(&push_base(declared, content, paths));
        }
        PhaseAction::DeleteLayers(deletion) => {
            let _ = writeln!(out, "echo \"phase {}: delete the layers of {deletion}\"", phase.name);
            let _ = match deletion {
                LayerDeletion::Base { declared, .. } => {
                    writeln!(out, "delete_layers {}", shell_word(&paths.declared_ref(declared)))
                }
                LayerDeletion::Cache { cache, path } => writeln!(
                    out,
                    "delete_cache_layers {} {}",
                    shell_word(&paths.local_cache_dir(cache).display().to_string()),
                    shell_word(path)
                ),
            };
        }
        PhaseAction::Prune(prune) => {
            let _ = writeln!(out, "echo \"phase {}: docker buildx prune\"", phase.name);
            let _ = writeln!(
                out,
                "docker buildx {} > \"$LOGS/{name}.log\" 2>&1 || {{ errors=1; echo \"  ERROR  {name}: prune failed\"; finish; }}",
                command(&phase::prune_args(prune, &var("BUILDER"))),
                name = phase.name
            );
        }
        PhaseAction::Build(_) => {}
    }
    out
}

/// A build phase: the build, then each expectation judged from its log (when it built).
fn build_lines(cell: &Cell, scenario: &Scenario, phase: &Phase, build: &BuildPhase, paths: &CellPaths<'_>) -> String {
    let mut out = String::new();
    let args = phase::build_args(&phase.name, build, scenario, &var("BUILDER"), paths, "plain");
    let want = build.expect_failure.as_ref().map(|w| w.value.as_str().to_owned()).unwrap_or_default();
    let _ = writeln!(
        out,
        "build {} {} {} {}",
        phase.name,
        shell_word(&want),
        shell_word(&known_failure_pattern(cell)),
        command(&args)
    );
    let _ = writeln!(out, "case $? in\n  0)");
    let checks = build
        .expect_cached
        .iter()
        .map(|m| (&m.value, "cached"))
        .chain(build.expect_ran.iter().map(|m| (&m.value, "ran")));
    for (matcher, want) in checks {
        let known = cell.known_issues.iter().find(|k| k.explains_step(matcher));
        let _ = writeln!(
            out,
            "    expect {} {want} {} {}",
            phase.name,
            matcher_words(matcher),
            shell_word(&known.map(|k| k.id.to_string()).unwrap_or_default())
        );
    }
    for check in build.expect_files.iter().map(|c| &c.value) {
        let known = cell.known_issues.iter().find(|k| k.explains_file(&check.path));
        let _ = writeln!(
            out,
            "    expect_file {} {} {} {} {}",
            phase.name,
            if check.same { "same" } else { "differs" },
            check.phase,
            shell_word(&check.path),
            shell_word(&known.map(|k| k.id.to_string()).unwrap_or_default())
        );
    }
    let _ = writeln!(out, "    ;;");
    let _ = writeln!(out, "  2) finish ;;\nesac");
    out
}

/// The line that pushes declared base `d` with `content`, as the repetition's helper builder does.
fn push_base(d: &DeclaredBase, content: &str, paths: &CellPaths<'_>) -> String {
    let dir = format!("{}/bases/{}", var("WORK"), d.tag);
    let reference = paths.declared_ref(d);
    let args = crate::images::bases::push_args(&format!("{}-bases", var("BUILDER")), &reference, d.estargz, &dir);
    let dockerfile = bases::dockerfile(&paths.base_ref(&d.from));
    format!("push_base {} {} {} {}\n", d.tag, shell_word(content), shell_word(&dockerfile), command(&args))
}

/// The errors (an extended regular expression) the known issues on this builder explain a build
/// failing with; empty when they explain none.
fn known_failure_pattern(cell: &Cell) -> String {
    if cell.known_issues.iter().any(|k| k.explains_anything()) {
        return ".".into();
    }
    let patterns: Vec<String> =
        cell.known_issues.iter().flat_map(|k| k.fails_with.iter()).map(|re| format!("({})", re.as_str())).collect();
    patterns.join("|")
}
