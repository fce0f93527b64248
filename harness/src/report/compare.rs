//! The comparisons a release tester and a patch reviewer read, found among a run's cells: each release
//! against the one before it (new failures, fixed, flaky, builds BuildKit failed) and each patch set
//! against its unpatched base (fixed, broke, unchanged). How one cell changed is
//! [`judge::compare`](crate::judge::compare)'s pure rule; this module only pairs the cells.

use crate::events::CellResult;
use crate::judge::compare::{behaviour, change, Behaviour, Change};
use crate::judge::Reason;

/// The unpatched release a cell ran on.
fn release(r: &CellResult) -> Option<semver::Version> {
    let spec = r.cell.profile.buildkit.as_ref().filter(|s| s.patches.is_empty())?;
    semver::Version::parse(spec.version.strip_prefix('v')?).ok()
}

/// Where a cell stands in a comparison: its scenario and snapshotter (the build is what varies).
pub fn place(r: &CellResult) -> (&str, &str) {
    (r.cell.scenario.name.as_str(), r.cell.profile.snapshotter.as_str())
}

fn same_place(a: &CellResult, b: &CellResult) -> bool {
    place(a) == place(b)
}

/// BuildKit failed one of the cell's builds (in the repetition that speaks for it).
pub fn build_failed(r: &CellResult) -> Option<&str> {
    r.judgement()?.reasons.iter().find_map(|reason| match reason {
        Reason::BuildFailed { error, .. } => Some(error.as_str()),
        _ => None,
    })
}

/// One release against the release before it in the run.
pub struct ReleaseDelta<'a> {
    pub version: String,
    /// The cells that ran on this release.
    pub cells: Vec<&'a CellResult>,
    pub previous: Option<String>,
    pub new_failures: Vec<&'a CellResult>,
    pub fixed: Vec<&'a CellResult>,
    pub flaky: Vec<&'a CellResult>,
    /// Cells whose build BuildKit failed, and whether the same cell built on the neighbouring releases
    /// (the ones that must stand out).
    pub build_failures: Vec<(&'a CellResult, bool)>,
}

/// The releases of a release-testing run in version order, each against the previous one; empty
/// unless the run has cells on two or more unpatched releases.
pub fn release_deltas(results: &[CellResult]) -> Vec<ReleaseDelta<'_>> {
    let mut versions: Vec<semver::Version> = results.iter().filter_map(release).collect();
    versions.sort();
    versions.dedup();
    if versions.len() < 2 {
        return Vec::new();
    }
    let on = |v: &semver::Version| -> Vec<&CellResult> {
        results.iter().filter(|r| release(r).as_ref() == Some(v)).collect()
    };
    let mut out = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let cells = on(version);
        let previous = i.checked_sub(1).map(|p| on(&versions[p])).unwrap_or_default();
        let next = versions.get(i + 1).map(&on).unwrap_or_default();
        let mut delta = ReleaseDelta {
            version: format!("v{version}"),
            cells: cells.clone(),
            previous: i.checked_sub(1).map(|p| format!("v{}", versions[p])),
            new_failures: Vec::new(),
            fixed: Vec::new(),
            flaky: Vec::new(),
            build_failures: Vec::new(),
        };
        for r in cells {
            let now = behaviour(&r.verdict);
            if now == Behaviour::Flaky {
                delta.flaky.push(r);
            }
            if let Some(before) = peer(&previous, r) {
                match change(behaviour(&before.verdict), now) {
                    Change::Broke => delta.new_failures.push(r),
                    Change::Fixed => delta.fixed.push(r),
                    Change::Unchanged | Change::Unknown => {}
                }
            }
            if build_failed(r).is_some() {
                let neighbours: Vec<&CellResult> = [peer(&previous, r), peer(&next, r)].into_iter().flatten().collect();
                let stands_out = !neighbours.is_empty() && neighbours.iter().all(|n| build_failed(n).is_none());
                delta.build_failures.push((r, stands_out));
            }
        }
        out.push(delta);
    }
    out
}

fn peer<'a>(cells: &[&'a CellResult], r: &CellResult) -> Option<&'a CellResult> {
    cells.iter().find(|p| same_place(p, r)).copied()
}

/// A patch set's cells against the same release and snapshotter without patches.
pub struct PatchImpact<'a> {
    /// The patched build (`v0.33.1 + a + b`).
    pub build: String,
    pub rows: Vec<ImpactRow<'a>>,
}

pub struct ImpactRow<'a> {
    pub base: &'a CellResult,
    pub patched: &'a CellResult,
    pub change: Change,
}

impl PatchImpact<'_> {
    pub fn count(&self, c: Change) -> usize {
        self.rows.iter().filter(|r| r.change == c).count()
    }
}

/// Every patch set of the run that has an unpatched base in it, in plan order.
pub fn patch_impacts(results: &[CellResult]) -> Vec<PatchImpact<'_>> {
    let mut out: Vec<PatchImpact<'_>> = Vec::new();
    for patched in results {
        let Some(spec) = patched.cell.profile.buildkit.as_ref().filter(|s| !s.patches.is_empty()) else { continue };
        let base = results.iter().find(|b| {
            same_place(b, patched)
                && b.cell.profile.buildkit.as_ref().is_some_and(|s| s.patches.is_empty() && s.version == spec.version)
        });
        let Some(base) = base else { continue };
        let row = ImpactRow { base, patched, change: change(behaviour(&base.verdict), behaviour(&patched.verdict)) };
        let build = super::build_label(&patched.cell.profile);
        match out.iter_mut().find(|p| p.build == build) {
            Some(p) => p.rows.push(row),
            None => out.push(PatchImpact { build, rows: vec![row] }),
        }
    }
    out
}
