//! Builder profiles (`scenarios/builders.toml`): which BuildKit image, which snapshotter, which extra
//! buildkitd flags and config. A profile is one column of the results table.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::errors::ConfigError;
use crate::execute::buildkit_image::{BuildkitSpec, Patch};
use crate::pins::Pins;
use crate::toml_file::TomlFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Snapshotter {
    Overlayfs,
    Stargz,
    Native,
}

impl Snapshotter {
    pub fn as_str(self) -> &'static str {
        match self {
            Snapshotter::Overlayfs => "overlayfs",
            Snapshotter::Stargz => "stargz",
            Snapshotter::Native => "native",
        }
    }

    /// Lazy snapshotters mount remote layers on demand; a cell on one must prove it really did.
    pub fn is_lazy(self) -> bool {
        self == Snapshotter::Stargz
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildersDoc {
    /// Path of the pins file, relative to the builders file.
    pins: Option<String>,
    /// In file order: the order of the results table's columns.
    profiles: indexmap::IndexMap<String, ProfileDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileDoc {
    /// A BuildKit release (`v0.25.2`) or a pin (`$BUILDKIT_NEWEST`): the image is the one the set-up built.
    buildkit: Option<Spanned<String>>,
    /// Patches applied to that release, in order (paths relative to the builders file).
    #[serde(default)]
    patches: Vec<Spanned<String>>,
    /// Any image reference instead, e.g. `moby/buildkit:v0.25.2` for users with internet.
    image: Option<Spanned<String>>,
    snapshotter: Snapshotter,
    #[serde(default)]
    buildkitd_flags: Vec<String>,
    /// Extra buildkitd.toml text, appended to what bkcache writes (debug log, local registry over http).
    #[serde(default)]
    buildkitd_config: String,
    /// Free text for readers of the builders file.
    #[allow(dead_code)]
    description: Option<String>,
}

/// A resolved builder profile.
#[derive(Debug, Clone, PartialEq)]
pub struct BuilderProfile {
    pub name: String,
    pub image: String,
    /// The release (and patches) bkcache builds the image from, when the profile names one.
    pub buildkit: Option<BuildkitSpec>,
    pub snapshotter: Snapshotter,
    pub buildkitd_flags: Vec<String>,
    pub buildkitd_config: String,
}

impl BuilderProfile {
    /// Every buildkitd flag the builder is started with.
    pub fn all_buildkitd_flags(&self) -> Vec<String> {
        let mut flags = vec![format!("--oci-worker-snapshotter={}", self.snapshotter.as_str())];
        flags.extend(self.buildkitd_flags.iter().cloned());
        flags
    }
}

/// All profiles of one builders file, plus the pins they were resolved with.
#[derive(Debug, Clone)]
pub struct Profiles {
    pub pins: Pins,
    pub profiles: Vec<Arc<BuilderProfile>>,
}

impl Profiles {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = TomlFile::<BuildersDoc>::load(path)?;
        let dir = crate::toml_file::dir_of(path);
        let pins = Pins::load(&dir.join(file.doc.pins.as_deref().unwrap_or("../ci/versions.env")))?;
        let profiles = file
            .doc
            .profiles
            .iter()
            .map(|(name, doc)| resolve(&file, dir, &pins, name, doc).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Profiles { pins, profiles })
    }

    /// The profiles for testing one release: `<version>-<snapshotter>` for the eager and the lazy
    /// snapshotter, images built from the Go module on demand.
    pub fn for_release(&self, version: &str) -> Profiles {
        let spec = BuildkitSpec { version: version.to_owned(), patches: Vec::new() };
        let profiles = [Snapshotter::Overlayfs, Snapshotter::Stargz]
            .into_iter()
            .map(|snapshotter| {
                Arc::new(BuilderProfile {
                    name: format!("{version}-{}", snapshotter.as_str()),
                    image: spec.tag(self.pins.registry()),
                    buildkit: Some(spec.clone()),
                    snapshotter,
                    buildkitd_flags: Vec::new(),
                    buildkitd_config: String::new(),
                })
            })
            .collect();
        Profiles { pins: self.pins.clone(), profiles }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<BuilderProfile>> {
        self.profiles.iter().find(|p| p.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.name.as_str()).collect()
    }
}

fn resolve(
    file: &TomlFile<BuildersDoc>,
    dir: &Path,
    pins: &Pins,
    name: &str,
    doc: &ProfileDoc,
) -> Result<BuilderProfile, ConfigError> {
    let (image, buildkit) = match (&doc.buildkit, &doc.image) {
        (Some(version), None) => {
            let version_text = match version.get_ref().strip_prefix('$') {
                Some(pin) => pins.get(pin).map(str::to_owned).ok_or_else(|| {
                    file.invalid(
                        version,
                        format!("profile `{name}`: no pin `{pin}` in {}", pins.path.display()),
                        format!("use one of: {}", pins.keys().collect::<Vec<_>>().join(", ")),
                    )
                })?,
                None => version.get_ref().clone(),
            };
            let patches = doc
                .patches
                .iter()
                .map(|p| {
                    Patch::read(&dir.join(p.get_ref())).map_err(|e| {
                        file.invalid(
                            p,
                            format!("profile `{name}`: cannot read patch {}: {e}", p.get_ref()),
                            "give a patch file path relative to the builders file",
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            let spec = BuildkitSpec { version: version_text, patches };
            (spec.tag(pins.registry()), Some(spec))
        }
        (None, Some(image)) if doc.patches.is_empty() => (image.get_ref().clone(), None),
        (None, Some(image)) => {
            return Err(file.invalid(
                image,
                format!("profile `{name}`: patches apply to `buildkit` releases only"),
                "use `buildkit = \"vX.Y.Z\"` with `patches`",
            ))
        }
        (Some(v), Some(_)) => {
            return Err(file.invalid(
                v,
                format!("profile `{name}` sets both `buildkit` and `image`"),
                "keep one: `buildkit` for images the set-up builds, `image` for any other reference",
            ))
        }
        (None, None) => {
            return Err(ConfigError::Usage {
                message: format!("{}: profile `{name}` names no BuildKit", file.path.display()),
                fix: "add `buildkit = \"v0.25.2\"` (or a pin such as \"$BUILDKIT_NEWEST\") or `image = \"...\"`".into(),
            })
        }
    };
    Ok(BuilderProfile {
        name: name.to_owned(),
        image,
        buildkit,
        snapshotter: doc.snapshotter,
        buildkitd_flags: doc.buildkitd_flags.clone(),
        buildkitd_config: doc.buildkitd_config.clone(),
    })
}
