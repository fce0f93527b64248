//! Checks of the explanations themselves, over observations (pure):
//! - [`inconsistencies`]: a cause that the observation's own key-level facts do not bear out (a record
//!   said to have no layers that has some, an ancestor blamed that did not run with a changed key...);
//! - [`contradictions`]: a cause claimed on a lazy builder's cell that the eager cell of the same
//!   scenario, phase and BuildKit shares for the same step while that step was CACHED there. Such a cause
//!   cannot be why the lazy step ran: the eager builder hit despite it.

use std::collections::BTreeSet;
use std::fmt;

use crate::observe::forensics::{Miss, MissCause};
use crate::observe::{Observations, PhaseOutcome};
use crate::plan::Cell;

/// One repetition's observations, as the cross-check pairs cells.
pub struct Observed<'a> {
    pub scenario: &'a str,
    pub builder: &'a str,
    /// What runs BuildKit apart from the snapshotter (its image and other flags): an eager and a lazy
    /// cell with the same engine ran the same BuildKit.
    pub engine: String,
    pub lazy: bool,
    pub observations: &'a Observations,
}

impl<'a> Observed<'a> {
    /// A repetition of `cell`.
    pub fn of(cell: &'a Cell, observations: &'a Observations) -> Self {
        let profile = &cell.profile;
        Observed {
            scenario: cell.scenario.name.as_str(),
            builder: profile.name.as_str(),
            engine: format!("{} {}", profile.image, profile.buildkitd_flags.join(" ")),
            lazy: profile.snapshotter.is_lazy(),
            observations,
        }
    }
}

/// A lazy cell's cause that the eager cell shares on a step it CACHED.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Contradiction {
    pub scenario: String,
    pub phase: String,
    pub step: String,
    pub lazy: String,
    pub eager: String,
    pub cause: String,
}

impl fmt::Display for Contradiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} phase `{}`: `{}` ran on {} because {}, but {} shares that and CACHED it",
            self.scenario, self.phase, self.step, self.lazy, self.cause, self.eager
        )
    }
}

/// What the cross-check looked at, and what it found.
#[derive(Debug, Default)]
pub struct CrossCheck {
    /// Causes claimed on lazy cells that an eager cell of the same scenario and BuildKit could refute.
    pub checked: usize,
    pub contradictions: Vec<Contradiction>,
}

/// Every lazy cell's causes against every eager cell of the same scenario and engine.
pub fn contradictions(cells: &[Observed<'_>]) -> CrossCheck {
    let mut check = CrossCheck::default();
    let mut found = BTreeSet::new();
    for lazy in cells.iter().filter(|c| c.lazy) {
        let eager: Vec<&Observed<'_>> =
            cells.iter().filter(|c| !c.lazy && c.scenario == lazy.scenario && c.engine == lazy.engine).collect();
        if eager.is_empty() {
            continue;
        }
        for (phase, misses, _) in builds(lazy.observations) {
            for miss in misses.iter().filter(|m| refutable(&m.cause)) {
                check.checked += 1;
                for e in &eager {
                    let shared = builds(e.observations)
                        .filter(|(p, _, _)| *p == phase)
                        .flat_map(|(_, _, cached_despite)| cached_despite)
                        .any(|c| c.step == miss.step && shares(&c.cause, &miss.cause));
                    if shared {
                        found.insert(Contradiction {
                            scenario: lazy.scenario.to_owned(),
                            phase: phase.to_owned(),
                            step: miss.step.clone(),
                            lazy: lazy.builder.to_owned(),
                            eager: e.builder.to_owned(),
                            cause: miss.cause.to_string(),
                        });
                    }
                }
            }
        }
    }
    check.contradictions = found.into_iter().collect();
    check
}

/// Causes that, shared by a builder, would make it miss too. `not-used` (a record with layers under
/// this build's key) is what a hit looks like, and `unknown` claims nothing.
fn refutable(cause: &MissCause) -> bool {
    !matches!(cause, MissCause::NotUsed { .. } | MissCause::Unknown { .. })
}

/// Whether two cells' causes are the same fact. Record counts and digests differ between builders'
/// exports (a lazy export drops records): what is compared is what the cause says of the step.
fn shares(a: &MissCause, b: &MissCause) -> bool {
    match (a, b) {
        (MissCause::NoRecord { imported: x }, MissCause::NoRecord { imported: y }) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.cache == q.cache && p.why == q.why)
        }
        (MissCause::NoLayers { cache: x, .. }, MissCause::NoLayers { cache: y, .. }) => x == y,
        (MissCause::LoadFailed { .. }, MissCause::LoadFailed { .. }) => true,
        (x, y) => x == y,
    }
}

/// Each build phase: its name, the misses and the CACHED steps' facts.
fn builds(o: &Observations) -> impl Iterator<Item = (&str, &[Miss], &[Miss])> {
    o.phases.iter().filter_map(|p| match &p.outcome {
        PhaseOutcome::Build { misses, cached_despite, .. } => {
            Some((p.phase.as_str(), misses.as_slice(), cached_despite.as_slice()))
        }
        _ => None,
    })
}

/// A cause its own observation does not bear out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency {
    pub phase: String,
    pub step: String,
    pub cause: String,
    pub why: String,
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "phase `{}`: `{}`: \"{}\": {}", self.phase, self.step, self.cause, self.why)
    }
}

/// Every miss whose cause the same observation's facts contradict: the caches' records (as exported
/// before the phase), which steps ran, and the causes of those steps.
pub fn inconsistencies(o: &Observations) -> Vec<Inconsistency> {
    let mut out = Vec::new();
    for (phase, misses, _) in builds(o) {
        let earlier: Vec<&str> = o.phases.iter().take_while(|p| p.phase != phase).map(|p| p.phase.as_str()).collect();
        // the last export of a cache name by an earlier phase is what the build imported under that name
        let exported = |cache: &str| o.caches.iter().rfind(|c| c.cache == cache && earlier.contains(&c.phase.as_str()));
        for miss in misses {
            let why = match &miss.cause {
                MissCause::AncestorRan { ancestor } => match misses.iter().find(|m| &m.step == ancestor) {
                    None => Some(format!("`{ancestor}` did not run")),
                    Some(m) if !matches!(m.cause, MissCause::KeyDiffers { .. }) => {
                        Some(format!("`{ancestor}` ran, but not because its own key changed ({})", m.cause))
                    }
                    Some(_) => None,
                },
                MissCause::NoLayers { cache, record, .. } => match exported(cache) {
                    Some(c) if c.entries.iter().any(|e| &e.digest == record && e.blobs.is_empty()) => None,
                    Some(_) => Some(format!("`{cache}` has no record {record} without layers")),
                    None => None,
                },
                MissCause::NotUsed { cache, record } => match exported(cache) {
                    Some(c) if c.entries.iter().any(|e| &e.digest == record && !e.blobs.is_empty()) => None,
                    Some(_) => Some(format!("`{cache}` has no record {record} with layers")),
                    None => None,
                },
                MissCause::NoRecord { imported } => imported.iter().find_map(|a| {
                    let c = exported(&a.cache)?;
                    c.entries_for(&miss.step).next().map(|e| format!("`{}` has record {} for it", a.cache, e.digest))
                }),
                MissCause::KeyDiffers { differences, .. } if differences.is_empty() => {
                    Some("it names no difference".to_owned())
                }
                _ => None,
            };
            if let Some(why) = why {
                out.push(Inconsistency {
                    phase: phase.to_owned(),
                    step: miss.step.clone(),
                    cause: miss.cause.to_string(),
                    why,
                });
            }
        }
    }
    out
}
