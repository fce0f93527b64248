//! Did a lazy snapshotter really pull lazily? A stargz cell that mounted its bases eagerly would not
//! test what it claims. The evidence: buildkitd (debug log) says "prepared remote snapshot" each time
//! the stargz snapshotter mounts a remote layer instead of fetching it.

use serde::{Deserialize, Serialize};

pub const REMOTE_SNAPSHOT_MARK: &str = "prepared remote snapshot";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Laziness {
    /// How many times buildkitd mounted a layer remotely.
    pub remote_snapshots: usize,
    /// The first such log line.
    pub evidence: Option<String>,
}

impl Laziness {
    pub fn is_lazy(&self) -> bool {
        self.remote_snapshots > 0
    }
}

pub fn from_buildkitd_log(log: &str) -> Laziness {
    let mut lines = log.lines().filter(|l| l.contains(REMOTE_SNAPSHOT_MARK));
    let evidence = lines.next().map(|l| l.trim().to_owned());
    Laziness { remote_snapshots: evidence.iter().count() + lines.count(), evidence }
}
