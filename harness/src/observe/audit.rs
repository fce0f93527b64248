//! `bkcache cache audit`: records an exported cache should carry a result for and does not — what a
//! silently dropped export looks like from outside, with no key dump needed. Two signatures, both read
//! from the cacheconfig's record graph:
//!
//! - **result-dropped**: a record with inputs (a step keyed on other records: an exec or file op) and
//!   no result, in a mode=max export. BuildKit's mode=max exporter writes every solved step with the
//!   result it can be restored from (`solver/exporter.go`); such a record is a step whose result was
//!   left out, so a build importing the cache runs it again (moby/buildkit#6893 on v0.25+, "present
//!   without layers"). A mode=min export legitimately writes the records below the image's chain
//!   without results, so the rule does not apply there.
//! - **inputs-dropped**: a record with a result and no inputs. Only source records (an image, the
//!   build context) have no inputs, and BuildKit exports those without a result; a result record cut off
//!   from its inputs can match no key of a later build (the v0.24 chain corruption behind
//!   moby/buildkit#6893 and #6261).
//!
//! Measured on this project's corpus (2026-12-06, FINDINGS.md): no finding on an eager (overlayfs)
//! builder's export but the scenario that deletes a cache blob on purpose; findings on the lazy
//! (stargz) exports where #6893 reproduces.

use serde::{Deserialize, Serialize};

use super::cache::CacheConfig;
use crate::scenario::CacheMode;

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

/// The records of `config` that carry one of the signatures; `mode` is how the cache was exported.
pub fn audit(config: &CacheConfig, mode: CacheMode) -> Vec<AuditFinding> {
    let mut findings = Vec::new();
    for record in &config.records {
        let has_inputs = record.inputs.iter().any(|links| !links.is_empty());
        let rule = match (has_inputs, record.has_layers()) {
            (true, false) if mode == CacheMode::Max => AuditRule::ResultDropped,
            (false, true) => AuditRule::InputsDropped,
            _ => continue,
        };
        findings.push(AuditFinding { rule, record: record.digest.clone() });
    }
    findings
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
        assert_eq!(rules(&audit(&config("newest-overlayfs"), CacheMode::Max)), []);
        assert_eq!(rules(&audit(&config("v0-24-overlayfs"), CacheMode::Max)), []);
        // v0.33.1 stargz: the build stage's two RUN records written without their results
        assert_eq!(
            rules(&audit(&config("newest-stargz"), CacheMode::Max)),
            [("result-dropped", "2a5a141244dc"), ("result-dropped", "e9c84e6e33a9")]
        );
        // v0.24.0 stargz: the final COPY's result cut off from its inputs (the build stage's records gone)
        assert_eq!(rules(&audit(&config("v0-24-stargz"), CacheMode::Max)), [("inputs-dropped", "1c4c3e821b90")]);
        // the same record graph exported with mode=min leaves records below the image without results
        assert_eq!(rules(&audit(&config("newest-stargz"), CacheMode::Min)), []);
    }
}
