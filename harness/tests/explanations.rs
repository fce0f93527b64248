//! The explanations of a full corpus run on real BuildKit, recorded (`fixtures/corpus/README.md`): each
//! borne out by its own observation's key-level facts, and no cause a lazy cell claims shared by the eager
//! cell of the same scenario and BuildKit that CACHED the step.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use bkcache::judge::crosscheck::{self, Observed};
use bkcache::observe::forensics::MissCause;
use bkcache::observe::{Observations, PhaseOutcome};
use bkcache::plan::{Cell, Filter};
use bkcache::session::{self, PlanOptions};
use common::repo;
use serde::{Deserialize, Serialize};

const RECORDED: &str = "harness/tests/fixtures/corpus/observations.jsonl.gz";

/// One repetition of the recorded run.
#[derive(Serialize, Deserialize)]
struct Recorded {
    /// `scenario@builder`.
    cell: String,
    observations: Observations,
}

fn recorded() -> Vec<Recorded> {
    let file = std::fs::File::open(repo().join(RECORDED)).unwrap();
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// The corpus's cells as `scenarios/` plans them today, by name.
fn cells() -> HashMap<String, Cell> {
    let options = PlanOptions {
        paths: vec![repo().join("scenarios")],
        builders: Some(repo().join("scenarios/builders.toml")),
        filter: Filter::default(),
        buildkit: Vec::new(),
        buildkit_source: Default::default(),
    };
    session::plan(&options).unwrap().cells.into_iter().map(|c| (c.name(), c)).collect()
}

#[test]
fn every_explanation_of_the_corpus_is_borne_out_by_its_facts() {
    let recorded = recorded();
    let misses: usize = recorded
        .iter()
        .flat_map(|r| &r.observations.phases)
        .map(|p| match &p.outcome {
            PhaseOutcome::Build { misses, .. } => misses.len(),
            _ => 0,
        })
        .sum();
    assert!(misses > 100, "the recorded run explains {misses} steps");
    let found: Vec<String> = recorded
        .iter()
        .flat_map(|r| crosscheck::inconsistencies(&r.observations).into_iter().map(move |i| format!("{}: {i}", r.cell)))
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn no_cause_of_a_lazy_cell_is_shared_by_the_eager_cell_that_cached_the_step() {
    let (recorded, cells) = (recorded(), cells());
    let observed: Vec<Observed<'_>> =
        recorded.iter().filter_map(|r| cells.get(&r.cell).map(|c| Observed::of(c, &r.observations))).collect();
    assert_eq!(observed.len(), recorded.len(), "every recorded cell is still a cell of the corpus");
    let check = crosscheck::contradictions(&observed);
    assert!(check.checked > 50, "{} causes checked", check.checked);
    let found: Vec<String> = check.contradictions.iter().map(ToString::to_string).collect();
    assert_eq!(found, Vec::<String>::new());
}

/// The detector itself: the lazy cell's cause for the #6893 step, planted among the eager cell's facts
/// for the same step (which it CACHED), is a contradiction; on the lazy cell's own step it is none.
#[test]
fn a_cause_the_eager_cell_shares_on_a_step_it_cached_is_a_contradiction() {
    let (recorded, cells) = (recorded(), cells());
    let get = |name: &str| recorded.iter().find(|r| r.cell == name).unwrap().observations.clone();
    let (lazy, mut eager) = (get("issue-6893@newest-stargz"), get("issue-6893@newest-overlayfs"));
    let stable = "[build 2/3] RUN echo stable > /stable";
    let miss = lazy
        .phases
        .iter()
        .find_map(|p| match &p.outcome {
            PhaseOutcome::Build { misses, .. } => misses.iter().find(|m| m.step == stable).cloned(),
            _ => None,
        })
        .expect("the lazy cell ran the step");
    assert!(matches!(miss.cause, MissCause::NoLayers { .. }), "{miss:?}");
    let pair = |eager: &Observations| {
        let observed = [
            Observed::of(&cells["issue-6893@newest-stargz"], &lazy),
            Observed::of(&cells["issue-6893@newest-overlayfs"], eager),
        ];
        crosscheck::contradictions(&observed).contradictions
    };
    assert_eq!(pair(&eager), []);
    for p in &mut eager.phases {
        if let PhaseOutcome::Build { cached_despite, steps, .. } = &mut p.outcome {
            if steps.iter().any(|s| s.name == stable && s.cached) {
                cached_despite.push(miss.clone());
            }
        }
    }
    let found = pair(&eager);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].to_string().contains("but newest-overlayfs shares that and CACHED it"), "{}", found[0]);
}

/// The recording is of the corpus as it stands: every cell, one repetition each. After a change to the
/// corpus, record a full run again: `bkcache run scenarios/ --results-dir DIR`, then
/// `BKCACHE_RECORD_CORPUS=DIR cargo test --test explanations`.
#[test]
fn the_recording_covers_the_corpus() {
    if let Some(dir) = std::env::var_os("BKCACHE_RECORD_CORPUS").map(PathBuf::from) {
        record(&dir);
    }
    let mut recorded: Vec<String> = recorded().into_iter().map(|r| r.cell).collect();
    let mut planned: Vec<String> = cells().into_keys().collect();
    recorded.sort();
    planned.sort();
    assert_eq!(recorded, planned, "record a full corpus run again (see this test's comment)");
}

fn record(results: &std::path::Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(results).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let out = std::fs::File::create(repo().join(RECORDED)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::best());
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let recorded = Recorded {
            cell: result["cell"].as_str().unwrap().to_owned(),
            observations: serde_json::from_value(result["observations"].clone()).unwrap(),
        };
        writeln!(gz, "{}", serde_json::to_string(&recorded).unwrap()).unwrap();
    }
    gz.finish().unwrap();
}

/// The other detector: a cause its own observation does not bear out is named. The #6893 step's
/// "record without layers" pointed at the COPY's record (which has layers), and an ancestor blamed that
/// ran with its key unchanged.
#[test]
fn a_cause_its_own_facts_refute_is_an_inconsistency() {
    let recorded = recorded();
    let mut lazy = recorded.iter().find(|r| r.cell == "issue-6893@newest-stargz").unwrap().observations.clone();
    assert_eq!(crosscheck::inconsistencies(&lazy), []);
    let with_layers = lazy.caches[0].entries.iter().find(|e| !e.blobs.is_empty()).unwrap().digest.clone();
    for p in &mut lazy.phases {
        if let PhaseOutcome::Build { misses, .. } = &mut p.outcome {
            for m in misses.iter_mut() {
                match &mut m.cause {
                    MissCause::NoLayers { record, .. } => *record = with_layers.clone(),
                    MissCause::KeyDiffers { .. } => {
                        m.cause = MissCause::AncestorRan { ancestor: "[build 2/3] RUN echo stable > /stable".into() }
                    }
                    _ => {}
                }
            }
        }
    }
    let found: Vec<String> = crosscheck::inconsistencies(&lazy).iter().map(ToString::to_string).collect();
    assert!(found.iter().any(|i| i.contains(&format!("has no record {with_layers} without layers"))), "{found:#?}");
    assert!(found.iter().any(|i| i.contains("ran, but not because its own key changed")), "{found:#?}");
}
