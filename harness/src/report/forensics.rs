//! Text for `bkcache explain` and `bkcache cache inspect|diff`.

use std::fmt::Write as _;

use crate::inspect::StepDiff;
use crate::observe::forensics::{short, CacheSummary};
use crate::observe::{Observations, PhaseOutcome};

/// One cache: its records, each with the step it caches and its layers.
pub fn cache(summary: &CacheSummary) -> String {
    let mut out = String::new();
    if let Some(error) = &summary.unreadable {
        let _ = writeln!(
            out,
            "{} (exported by phase `{}`): BuildKit wrote it unreadable: {error}",
            summary.cache, summary.phase
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{} ({}{}): {} records, {} with layers; {} layers",
        summary.cache,
        summary.format.as_str(),
        if summary.phase.is_empty() { String::new() } else { format!(", exported by phase `{}`", summary.phase) },
        summary.records,
        summary.records_with_layers,
        summary.layers
    );
    for e in &summary.entries {
        let layers = match e.blobs.len() {
            0 => "no layers".to_owned(),
            n => format!(
                "{n} layer(s), {}{}, top {}",
                human_bytes(e.bytes),
                if e.estargz > 0 { format!(", {} eStargz", e.estargz) } else { String::new() },
                short(e.blobs.top().expect("n > 0"))
            ),
        };
        let _ = writeln!(out, "  {}  {:<70}  {layers}", short(&e.digest), e.label);
    }
    out
}

/// `5.0 MiB`, `129 B`.
fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// Per step, how two caches hold it (only the differences unless `all`).
pub fn diff(a_name: &str, b_name: &str, diffs: &[StepDiff], all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {a_name}\nB: {b_name}");
    let mut differing = 0;
    for d in diffs {
        let (a, b) = (d.a.describe(&d.b), d.b.describe(&d.a));
        if d.a == d.b && !all {
            continue;
        }
        differing += usize::from(d.a != d.b);
        let _ = writeln!(out, "  {:<60}  A: {a:<26}  B: {b}", d.step);
    }
    let _ = writeln!(out, "{differing} of {} step(s) differ", diffs.len());
    out
}

/// A repetition re-observed: each exported cache, and why each step of a cache-importing build ran.
pub fn explanation(observed: &Observations) -> String {
    let mut out = String::new();
    if let Some(failure) = &observed.infrastructure {
        let _ = writeln!(out, "infrastructure failure: {failure}");
    }
    for c in &observed.caches {
        out.push_str(&cache(c));
    }
    for p in &observed.phases {
        let PhaseOutcome::Build { misses, steps, .. } = &p.outcome else { continue };
        if misses.is_empty() {
            continue;
        }
        let cached = steps.iter().filter(|s| s.cached && !s.is_internal()).count();
        let _ = writeln!(out, "phase `{}`: {} step(s) ran, {cached} CACHED", p.phase, misses.len());
        for m in misses {
            let _ = writeln!(out, "  {}\n    {}", m.step, m.cause);
        }
    }
    out
}
