//! `bkcache cache audit`: records an exported cache should carry a result for and does not — what a
//! silently dropped export looks like from outside, with no key dump needed. Two signatures, both read
//! from the cacheconfig's record graph:
//!
//! - **result-dropped**: a record with inputs (a step keyed on other records: an exec or file op) and
//!   no result, where the export holds results for it. BuildKit's mode=max exporter writes every solved
//!   step with the result it can be restored from (`solver/exporter.go`); mode=min (and inline) only
//!   the exported image's chain: the top record and its ancestors through each op's first input (an
//!   exec's root filesystem, a copy's destination), whose layers the image is made of. Such a record is
//!   a step whose result was left out, so a build importing the cache runs it again
//!   (moby/buildkit#6893 on v0.25+, "present without layers"). Records of a mode=min export off that
//!   chain are written without results by design.
//! - **inputs-dropped**: a record with a result and no inputs. Only source records (an image, the
//!   build context) have no inputs, and BuildKit exports those without a result; a result record cut off
//!   from its inputs can match no key of a later build (the v0.24 chain corruption behind
//!   moby/buildkit#6893 and #6261).
//!
//! Measured on this project's corpus (FINDINGS.md): no finding on an eager (overlayfs) builder's export
//! but the one a scenario deletes a blob from on purpose; a finding on every lazy (stargz) cell where
//! #6893 reproduces.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::cache::CacheConfig;
use crate::scenario::ExportShape;

/// Which signature a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuditRule {
    ResultDropped,
    InputsDropped,
}

impl AuditRule {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditRule::ResultDropped => "result-dropped",
            AuditRule::InputsDropped => "inputs-dropped",
        }
    }
}

/// One record the audit flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditFinding {
    pub rule: AuditRule,
    /// The record's digest.
    pub record: String,
}

/// The records of `config` that carry one of the signatures, for an export of this shape.
pub fn audit(config: &CacheConfig, shape: ExportShape) -> Vec<AuditFinding> {
    let holds_results =
        if shape.holds_every_solved_step() { (0..config.records.len()).collect() } else { image_chain(config) };
    let mut findings = Vec::new();
    for (n, record) in config.records.iter().enumerate() {
        let has_inputs = record.inputs.iter().any(|links| !links.is_empty());
        let rule = match (has_inputs, record.has_layers()) {
            (true, false) if holds_results.contains(&n) => AuditRule::ResultDropped,
            (false, true) => AuditRule::InputsDropped,
            _ => continue,
        };
        findings.push(AuditFinding { rule, record: record.digest.clone() });
    }
    findings
}

/// The records of the exported image's chain: each top record (one no other record links to) and its
/// ancestors through the first input.
pub fn image_chain(config: &CacheConfig) -> BTreeSet<usize> {
    let linked: BTreeSet<usize> =
        config.records.iter().flat_map(|r| r.inputs.iter().flatten().map(|i| i.link)).collect();
    let mut chain = BTreeSet::new();
    for top in (0..config.records.len()).filter(|n| !linked.contains(n)) {
        let mut next = Some(top);
        while let Some(n) = next.filter(|n| chain.insert(*n)) {
            next = config.records[n].inputs.first().and_then(|links| links.first()).map(|i| i.link);
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(fixture: &str) -> CacheConfig {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture).join("cache");
        super::super::cache::read_layout(&dir).unwrap().config
    }

    fn rules(findings: &[AuditFinding]) -> Vec<(&str, &str)> {
        findings.iter().map(|f| (f.rule.as_str(), &f.record[7..19])).collect()
    }

    /// The issue-6893 exports captured from real runs (fixtures/README.md).
    #[test]
    fn the_6893_exports_of_lazy_builders_are_flagged_and_the_eager_ones_are_not() {
        assert_eq!(rules(&audit(&config("newest-overlayfs"), ExportShape::Max)), []);
        assert_eq!(rules(&audit(&config("v0-24-overlayfs"), ExportShape::Max)), []);
        // v0.33.1 stargz: the build stage's two RUN records written without their results
        assert_eq!(
            rules(&audit(&config("newest-stargz"), ExportShape::Max)),
            [("result-dropped", "2a5a141244dc"), ("result-dropped", "e9c84e6e33a9")]
        );
        // v0.24.0 stargz: the final COPY's result cut off from its inputs (the build stage's records gone)
        assert_eq!(rules(&audit(&config("v0-24-stargz"), ExportShape::Max)), [("inputs-dropped", "1c4c3e821b90")]);
        // the same record graph exported with mode=min leaves records below the image without results
        assert_eq!(rules(&audit(&config("newest-stargz"), ExportShape::Min)), []);
    }

    /// min-vs-max's mode=min export on v0.33.1 stargz: the final stage's deps and BUST records, in the
    /// image's chain below the COPY, written without results; the build stage's RUN, off the chain, is not
    /// flagged. (The same cell's eager export gave the deps step CACHED from that cache.)
    #[test]
    fn a_min_export_is_held_to_its_images_chain() {
        let config = config("min-vs-max-newest-stargz");
        assert_eq!(
            rules(&audit(&config, ExportShape::Min)),
            [("result-dropped", "2a5a141244dc"), ("result-dropped", "3309efcecf1d")]
        );
        let chain: Vec<&str> = image_chain(&config).iter().map(|n| &config.records[*n].digest[7..19]).collect();
        assert_eq!(chain.len(), 4, "the COPY, BUST, deps and the base: {chain:?}");
        assert!(!chain.contains(&"83e63fe3c9ee"), "the build stage's RUN is off the chain");
    }
}
