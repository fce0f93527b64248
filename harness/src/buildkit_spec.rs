//! What a builder profile names about BuildKit — a release or commit, where its source comes from, the
//! patches on top — and the image that was made for it. The contract between `profiles` (which reads
//! it from builders files) and `images` (which builds it): neither imports the other.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What to build: a release (or a commit's pseudo-version), where its source comes from, and the
/// patches to apply on top, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildkitSpec {
    pub version: String,
    pub source: Source,
    pub patches: Vec<Patch>,
}

/// Where a version's source comes from. Both give the same tree for a version, so the image tag does
/// not say which was used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Source {
    /// `go mod download github.com/moby/buildkit@<version>`; dependencies from the proxy too.
    #[default]
    ModuleProxy,
    /// A clone of moby/buildkit (a git directory): `git archive` of the release tag or of the commit a
    /// pseudo-version names, built with its own `vendor/`, so no proxy is needed at all. This is how
    /// commits are built where the proxy serves releases only.
    Git(PathBuf),
}

impl BuildkitSpec {
    /// A release with nothing on top, from the Go module proxy.
    pub fn release(version: String) -> BuildkitSpec {
        BuildkitSpec { version, source: Source::ModuleProxy, patches: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub path: PathBuf,
    pub content: Vec<u8>,
}

impl Patch {
    pub fn read(path: &Path) -> Result<Patch, crate::errors::ConfigError> {
        Ok(Patch { path: path.to_owned(), content: crate::toml_file::read_input_bytes(path)? })
    }

    /// The patch's name: its file name without `.patch`.
    pub fn name(&self) -> String {
        let stem = self.path.file_stem().unwrap_or(self.path.as_os_str());
        stem.to_string_lossy().into_owned()
    }
}

impl BuildkitSpec {
    pub fn tag(&self, registry: &str) -> String {
        if self.patches.is_empty() {
            return format!("{registry}/bkcache/buildkit:{}", self.version);
        }
        let mut hash = Sha256::new();
        for p in &self.patches {
            hash.update((p.content.len() as u64).to_le_bytes());
            hash.update(&p.content);
        }
        let hex: String = hash.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("{registry}/bkcache/buildkit:{}-p{hex}", self.version)
    }

    pub fn patch_names(&self) -> Vec<String> {
        self.patches.iter().map(Patch::name).collect()
    }
}

/// The image that was asked for, and whether it had to be built.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct EnsuredImage {
    pub tag: String,
    pub version: String,
    pub patches: Vec<String>,
    pub built: bool,
}
