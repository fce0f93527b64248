//! The evidence pack's README.md: pure text from what the run measured.

use std::fmt::Write as _;

use super::Stake;
use crate::events::{CellResult, RunReport};

pub struct ReadmeInputs<'a> {
    pub report: &'a RunReport,
    pub result: &'a CellResult,
    /// `bkcache explain` of the repetition that speaks for the cell.
    pub explanation: Option<&'a str>,
    pub stakes: &'a [Stake],
    pub script: &'a str,
    /// Where the repetitions' artifacts are.
    pub repetitions: &'a std::path::Path,
}

pub fn render(inputs: &ReadmeInputs<'_>) -> String {
    let (report, r) = (inputs.report, inputs.result);
    let cell = &r.cell;
    let profile = &cell.profile;
    let mut out = String::new();
    let _ = writeln!(out, "# `{}` on `{}`: {}\n", cell.scenario.name, profile.name, crate::report::verdict_words(r));
    if let Some(description) = &cell.scenario.description {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| BuildKit | {} |", crate::report::build_label(profile));
    let _ = writeln!(out, "| image | `{}` |", profile.image);
    let _ = writeln!(out, "| snapshotter | {} |", profile.snapshotter.as_str());
    let _ = writeln!(out, "| buildkitd flags | `{}` |", profile.all_buildkitd_flags().join(" "));
    let _ = writeln!(out, "| docker engine | {} |", report.docker_engine);
    let issues: Vec<String> = cell.known_issues.iter().map(|k| k.id.to_string()).collect();
    if !issues.is_empty() {
        let _ = writeln!(out, "| known issues on this builder | {} |", issues.join(", "));
    }
    let _ = writeln!(
        out,
        "| measured | {} repetition(s) in {:.0}s by bkcache |\n",
        r.repetitions.len(),
        r.duration.as_secs_f64()
    );

    let _ = writeln!(out, "## Repetitions\n\n| # | verdict | what broke | time | artifacts |\n|---|---|---|---|---|");
    for rep in &r.repetitions {
        let broke: Vec<String> = rep.judgement.reasons.iter().map(|x| x.to_string().replace('|', "\\|")).collect();
        let errors: Vec<String> = rep.judgement.errors.iter().map(|x| x.to_string().replace('|', "\\|")).collect();
        let what = [broke, errors].concat().join("<br>");
        let dir = rep
            .artifacts
            .as_ref()
            .and_then(|p| Some(format!("`repetitions/{}`", p.strip_prefix(inputs.repetitions).ok()?.display())))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0}s | {dir} |",
            rep.index + 1,
            rep.judgement.verdict.as_str(),
            if what.is_empty() { "-".into() } else { what },
            rep.duration.as_secs_f64()
        );
    }

    if !inputs.stakes.is_empty() {
        let _ = writeln!(out, "\n## Cache records at stake\n");
        for stake in inputs.stakes {
            let _ = writeln!(out, "**`{}`** ran in phase `{}`.", stake.step, stake.phase);
            if let Some(why) = &stake.why {
                let _ = writeln!(out, " Why: {why}.");
            }
            for (cache, records) in &stake.caches {
                if records.is_empty() {
                    let _ = writeln!(out, "\n- `{cache}` has no record for this step.");
                    continue;
                }
                let _ = writeln!(out, "\n- `{cache}`: its record(s) for this step, from the cacheconfig:\n");
                let json = serde_json::to_string_pretty(records).expect("records serialize");
                let _ = writeln!(out, "```json\n{json}\n```");
            }
            out.push('\n');
        }
        let _ = writeln!(out, "Each imported cache's whole cacheconfig is in `caches/`.");
    }

    if let Some(text) = inputs.explanation.filter(|t| !t.trim().is_empty()) {
        let _ = writeln!(out, "\n## Explanation (`bkcache explain` of the repetition shown first above)\n");
        let _ = writeln!(out, "```text\n{}```", text);
    }

    let _ = writeln!(out, "\n## Reproduce without bkcache\n");
    let grouped = grouped_steps(r);
    if !grouped.is_empty() {
        let _ = writeln!(
            out,
            "**Caveat.** BuildKit reports these steps as two vertices, the copy and its `LINK` merge, in one \
             progress group; `--progress plain` shows the group as one step, so the script judges a copy whose \
             merge ran as run, where bkcache (rawjson, per vertex) reports the copy CACHED:\n"
        );
        for step in grouped {
            let _ = writeln!(out, "- `{step}`");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "```sh\nsh {}            # or IMAGE=<another build of the same BuildKit> sh {}\n```\n",
        inputs.script, inputs.script
    );
    let _ = writeln!(
        out,
        "It creates a docker-container builder from `IMAGE` with `buildkitd.toml` and the flags above, runs \
         the phases of `scenario.toml` with the exact `docker buildx` commands bkcache ran (the Dockerfile \
         and `context/` of this directory), judges each expectation from `--progress plain` output (a step \
         is CACHED when its vertex says `CACHED`), prints the verdict and removes the builder. It needs the \
         registry the script names, holding the scenario's base images (`bkcache`'s set-up makes them), \
         and the BuildKit image:"
    );
    match &profile.buildkit {
        Some(spec) => {
            let mut command = format!("bkcache buildkit build --version {}", spec.version);
            for patch in &spec.patches {
                let _ = write!(command, " --patch patches/{}.patch", patch.name());
            }
            let _ = writeln!(out, "\n```sh\n{command}\n```");
        }
        None => {
            let _ = writeln!(out, "\n`{}` (the profile names this image).", profile.image);
        }
    }
    out
}

/// The `LINK` merge vertices (`COPY --link`) the run saw: plain progress shows each with its copy.
fn grouped_steps(r: &CellResult) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for phase in r.repetitions.iter().flat_map(|rep| rep.observations.phases.iter()) {
        for step in phase.steps().iter().filter(|s| s.name.contains("] LINK ")) {
            if !names.contains(&step.name) {
                names.push(step.name.clone());
            }
        }
    }
    names
}
