//! `reproduce.sh` of an evidence pack: a cell's phases as plain `docker buildx` commands, judged from
//! `--progress plain` output by the rules `judge` applies, so the verdict can be had without bkcache.
//!
//! The commands are the ones bkcache runs, made by the same functions ([`phase::build_args`],
//! [`phase::prune_args`], [`builder::create_args`]) with placeholders for what differs per run (the work
//! directory, the builder name, registry refs), which the script fills in as shell variables.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::execute::bases;
use crate::execute::phase::{self, CellPaths};
use crate::host::builder;
use crate::plan::Cell;
use crate::scenario::{BaseImage, DeclaredBase, LayerDeletion, PhaseAction, Scenario, StepMatcher};

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

/// The variables and functions every script starts with (after REGISTRY, IMAGE and KNOWN_ISSUES).
pub const PRELUDE: &str = r#"set -u
PACK=$(cd "$(dirname "$0")" && pwd)
BUILDER=${BUILDER:-bkcache-evidence-$$}
RUN=${RUN:-evidence-$$}    # what it pushes is under bkcache-out/$RUN, bkcache-cache/$RUN (`bkcache gc` removes it)
WORK=$(mktemp -d)
LOGS=${LOGS:-$PACK/reproduce-logs}
held=0 broke=0 known=0 errors=0
trap 'docker buildx rm --force "$BUILDER" "$BUILDER-bases" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# The vertex ids (#N) of the steps of a plain-progress log whose name matches: `exact` (runs of white
# space count as one, as bkcache compares) or `re` (an extended regular expression). A vertex's first
# line is its name. (The pattern goes through the environment: `awk -v` would eat its backslashes.)
steps() {
  HOW=$2 WANT=$3 awk '
    function norm(s) { gsub(/[ \t]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s); return s }
    BEGIN { how = ENVIRON["HOW"]; want = ENVIRON["WANT"] }
    /^#[0-9]+ / && !($1 in seen) {
      seen[$1] = 1; name = substr($0, length($1) + 2)
      if ((how == "exact" && norm(name) == norm(want)) || (how == "re" && name ~ want)) print $1
    }' "$1"
}

# record held|broke KNOWN_ISSUE TEXT: counts one expectation, held, broken as the known issue, or broken.
record() {
  if [ "$1" = held ]; then
    held=$((held + 1)); echo "  held   $3"
  elif [ -n "$2" ]; then
    known=$((known + 1)); echo "  broke  $3 (known issue $2)"
  else
    broke=$((broke + 1)); echo "  BROKE  $3"
  fi
}

# expect PHASE cached|ran exact|re TEXT KNOWN_ISSUE: every matching step must be CACHED (or must run).
expect() {
  ids=$(steps "$LOGS/$1.log" "$3" "$4")
  if [ -z "$ids" ]; then
    errors=$((errors + 1)); echo "  ERROR  $1: no step matches $4"; return
  fi
  for id in $ids; do
    if grep -qx "$id CACHED" "$LOGS/$1.log"; then got=cached; else got=ran; fi
    if [ "$got" = "$2" ]; then record held "$5" "$1: $4 $got"; else record broke "$5" "$1: $4 $got, expected $2"; fi
  done
}

# expect_file PHASE same|differs OTHER_PHASE PATH KNOWN_ISSUE: PATH of PHASE's output against OTHER_PHASE's.
expect_file() {
  here="$WORK/out/$1$4" there="$WORK/out/$3$4"
  if [ ! -f "$there" ]; then
    errors=$((errors + 1)); echo "  ERROR  $1: the output of $3 has no $4"; return
  fi
  if [ ! -f "$here" ]; then record broke "$5" "$1: $4 is missing (the output of $3 has it)"; return; fi
  if cmp -s "$here" "$there"; then got=same said="the same bytes as in $3"; else got=differs said="other bytes than in $3"; fi
  if [ "$got" = "$2" ]; then record held "$5" "$1: $4 has $said"; else record broke "$5" "$1: $4 has $said"; fi
}

# build PHASE EXPECTED_ERROR KNOWN_ERROR BUILDX_ARGS...: 0 built, 1 failed as expected (the step
# expectations of a failed build cannot be judged), 2 failed otherwise (nothing after it can run).
build() {
  phase=$1 want=$2 explained=$3; shift 3
  echo "phase $phase: docker buildx build"
  if docker buildx "$@" > "$LOGS/$phase.log" 2>&1; then
    if [ -n "$want" ]; then
      broke=$((broke + 1)); echo "  BROKE  $phase: built, expected to fail with /$want/"
    fi
    return 0
  fi
  error=$(grep -E 'ERROR|failed to solve' "$LOGS/$phase.log" | tail -n 1)
  if [ -n "$want" ] && grep -qE "$want" "$LOGS/$phase.log"; then
    held=$((held + 1)); echo "  held   $phase: failed as expected: $error"; return 1
  elif [ -n "$want" ]; then
    broke=$((broke + 1)); echo "  BROKE  $phase: failed otherwise than /$want/: $error"; return 1
  elif [ -n "$explained" ] && grep -qE "$explained" "$LOGS/$phase.log"; then
    known=$((known + 1)); echo "  broke  $phase: BuildKit failed the build (known issue): $error"
  else
    broke=$((broke + 1)); echo "  BROKE  $phase: BuildKit failed the build: $error"
  fi
  return 2
}

# push_base TAG CONTENT DOCKERFILE BUILDX_ARGS...: a declared base's context, built and pushed on the
# helper builder ($BUILDER-bases), never on the builder under test.
push_base() {
  mkdir -p "$WORK/bases/$1"
  printf '%s' "$2" > "$WORK/bases/$1/content"
  printf '%s' "$3" > "$WORK/bases/$1/Dockerfile"
  log="$LOGS/base-$1.log"; shift 3
  docker buildx "$@" >> "$log" 2>&1 || { errors=$((errors + 1)); echo "  ERROR  cannot push the base: see $log"; finish; }
}

# delete_layers REF: deletes the layer blobs of the image REF ($REGISTRY/REPOSITORY:TAG) from its
# repository, as bkcache's delete-layers phase does; its manifest and config stay.
delete_layers() {
  path=${1#"$REGISTRY"/}; url="http://$REGISTRY/v2/${path%:*}"
  manifest=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "$url/manifests/${path##*:}") || { errors=$((errors + 1)); echo "  ERROR  cannot read the manifest of $1"; finish; }
  for digest in $(printf '%s' "$manifest" | tr -d ' \n' | sed 's/.*"layers":\[//' | grep -o '"digest":"sha256:[0-9a-f]*"' | cut -d'"' -f4); do
    curl -fsS -X DELETE "$url/blobs/$digest" >/dev/null || { errors=$((errors + 1)); echo "  ERROR  cannot delete $digest of $1"; finish; }
  done
}

# delete_cache_layers DIR PATH: deletes the layer blobs of the local cache DIR that hold PATH (gzip or
# plain tars), as bkcache's delete-layers phase of a cache does; none is an error, as there.
delete_cache_layers() {
  n=0 rel=${2#/}
  for blob in "$1"/blobs/sha256/*; do
    if { tar tzf "$blob" 2>/dev/null || tar tf "$blob" 2>/dev/null; } | sed 's#^\./##; s#/$##' | grep -qxF "$rel"; then
      rm -f "$blob"; n=$((n + 1))
    fi
  done
  [ "$n" -gt 0 ] || { errors=$((errors + 1)); echo "  ERROR  no layer of $1 holds $2"; finish; }
}

finish() {
  if [ "$errors" -gt 0 ]; then verdict=error code=2
  elif [ "$broke" -gt 0 ]; then verdict=fail code=1
  elif [ "$known" -gt 0 ]; then verdict=known-failure code=0
  elif [ -n "$KNOWN_ISSUES" ]; then verdict=unexpected-pass code=0
  else verdict=pass code=0
  fi
  echo "verdict: $verdict ($held held, $broke broke, $known broke as known issues${KNOWN_ISSUES:+: $KNOWN_ISSUES}); logs in $LOGS"
  exit "$code"
}

mkdir -p "$LOGS"
"#;

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

/// The whole script.
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
        let helper = bases::helper_profile(profile);
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
        match &phase.action {
            PhaseAction::Drift { base, declared, content } => {
                let _ = writeln!(out, "echo \"phase {}: the base {base} moves\"", phase.name);
                out.push_str(&push_base(declared, content, &paths));
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
            PhaseAction::Build(build) => {
                let args = phase::build_args(&phase.name, build, &scenario, &var("BUILDER"), &paths, "plain");
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
            }
        }
    }
    out.push_str("\nfinish\n");
    out
}

/// The line that pushes declared base `d` with `content`, as the repetition's helper builder does.
fn push_base(d: &DeclaredBase, content: &str, paths: &CellPaths<'_>) -> String {
    let dir = format!("{}/bases/{}", var("WORK"), d.tag);
    let reference = paths.declared_ref(d);
    let args = bases::push_args(&format!("{}-bases", var("BUILDER")), &reference, d.estargz, &dir);
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
