//! Builder profiles (`scenarios/builders.toml`): which BuildKit image, which snapshotter, which extra
//! buildkitd flags and config. A profile is one column of the results table.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::buildkit_spec::{BuildkitSpec, Patch, Source};
use crate::buildkitd;
use crate::errors::ConfigError;
use crate::names::{Name, NameKind};
use crate::pins::Pins;
use crate::toml_file::TomlFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Snapshotter {
    Overlayfs,
    Stargz,
    Native,
}

impl Snapshotter {
    pub const ALL: [Snapshotter; 3] = [Snapshotter::Overlayfs, Snapshotter::Stargz, Snapshotter::Native];

    /// The snapshotter `text` names, as buildkitd spells it.
    pub fn parse(text: &str) -> Option<Snapshotter> {
        Snapshotter::ALL.into_iter().find(|s| s.as_str() == text)
    }

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
    profiles: indexmap::IndexMap<Spanned<String>, Spanned<ProfileDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileDoc {
    /// A BuildKit release (`v0.25.2`) or a pin (`$BUILDKIT_NEWEST`): the image is the one the set-up built.
    buildkit: Option<Spanned<String>>,
    /// Patches applied to that release, in order (paths relative to the builders file).
    #[serde(default)]
    patches: Vec<Spanned<String>>,
    /// Any image reference instead, e.g. `moby/buildkit:v0.25.2` for users with internet (with
    /// `allow_network = true` when it is not on loopback).
    image: Option<Spanned<String>>,
    /// The profile's image may be pulled from off this machine.
    #[serde(default)]
    allow_network: bool,
    snapshotter: Snapshotter,
    #[serde(default)]
    buildkitd_flags: Vec<Spanned<String>>,
    /// Extra buildkitd.toml, merged into what bkcache writes (state root, debug log, local registry).
    buildkitd_config: Option<Spanned<String>>,
    /// Free text for readers of the builders file.
    #[allow(dead_code)]
    description: Option<String>,
}

/// A resolved builder profile.
#[derive(Debug, Clone, PartialEq)]
pub struct BuilderProfile {
    pub name: Name,
    pub image: String,
    /// The release (and patches) bkcache builds the image from, when the profile names one.
    pub buildkit: Option<BuildkitSpec>,
    pub snapshotter: Snapshotter,
    pub buildkitd_flags: Vec<String>,
    /// The profile's own buildkitd.toml settings, checked (see `crate::buildkitd`).
    pub buildkitd_config: toml::Table,
}

impl BuilderProfile {
    /// Every buildkitd flag the builder is started with.
    pub fn all_buildkitd_flags(&self) -> Vec<String> {
        let mut flags = vec![format!("--oci-worker-snapshotter={}", self.snapshotter.as_str())];
        flags.extend(self.buildkitd_flags.iter().cloned());
        flags
    }

    /// Whether its buildkitd can record the plaintext of every cache key (`--save-cache-debug`, BuildKit
    /// v0.24.0 and later): what maps cache records to Dockerfile steps. Unknown for an image the profile
    /// names without a release, so not asked of it (an older buildkitd refuses the flag and never starts).
    pub fn records_cache_keys(&self) -> bool {
        let Some(spec) = &self.buildkit else { return false };
        semver::Version::parse(spec.version.trim_start_matches('v')).is_ok_and(|v| v >= semver::Version::new(0, 24, 0))
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
        let mut profiles: Vec<Arc<BuilderProfile>> = Vec::new();
        for (name, doc) in &file.doc.profiles {
            let profile = resolve(&file, dir, &pins, name, doc)?;
            if let Some(other) = profiles.iter().find(|p| p.name.slug() == profile.name.slug()) {
                return Err(file.invalid(
                    name,
                    format!(
                        "profiles `{}` and `{}` would share builders and registry refs (both become `{}`)",
                        other.name,
                        profile.name,
                        profile.name.slug()
                    ),
                    "rename one of them",
                ));
            }
            profiles.push(Arc::new(profile));
        }
        Ok(Profiles { pins, profiles })
    }

    /// The profiles for testing releases: `<version>-<snapshotter>` for each release with the eager and
    /// the lazy snapshotter, images built from the Go module on demand.
    pub fn for_releases(&self, versions: &[String], source: &Source) -> Result<Profiles, ConfigError> {
        let mut profiles = Vec::new();
        for version in versions {
            let checked = buildkit_version(version).and_then(|v| {
                // the longest profile name this makes: `<version>-overlayfs`
                Name::parse(NameKind::Profile, &format!("{v}-overlayfs")).map(|_| v).map_err(|e| e.to_string())
            });
            let version = checked.map_err(|problem| ConfigError::Usage {
                message: format!("--buildkit {version}: {problem}"),
                fix: "give a BuildKit release such as v0.25.2".into(),
            })?;
            let spec = BuildkitSpec { version: version.clone(), source: source.clone(), patches: Vec::new() };
            for snapshotter in [Snapshotter::Overlayfs, Snapshotter::Stargz] {
                let name = Name::parse(NameKind::Profile, &format!("{version}-{}", snapshotter.as_str()))
                    .expect("checked above");
                profiles.push(Arc::new(BuilderProfile {
                    name,
                    image: spec.tag(self.pins.registry()),
                    buildkit: Some(spec.clone()),
                    snapshotter,
                    buildkitd_flags: Vec::new(),
                    buildkitd_config: toml::Table::new(),
                }));
            }
        }
        Ok(Profiles { pins: self.pins.clone(), profiles })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<BuilderProfile>> {
        self.profiles.iter().find(|p| p.name.as_str() == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.name.as_str()).collect()
    }
}

/// A BuildKit release as bkcache builds it: `v` and a semantic version (a Go module version, so
/// pseudo-versions of commits are fine too). Not `latest`: a moving name would be built once and reused
/// forever under that tag.
pub fn buildkit_version(text: &str) -> Result<String, String> {
    let bare = text.strip_prefix('v').ok_or_else(|| format!("`{text}` is not a release (it must start with `v`)"))?;
    semver::Version::parse(bare).map_err(|e| format!("`{text}` is not a release: {e}"))?;
    Ok(text.to_owned())
}

fn resolve(
    file: &TomlFile<BuildersDoc>,
    dir: &Path,
    pins: &Pins,
    name: &Spanned<String>,
    doc: &Spanned<ProfileDoc>,
) -> Result<BuilderProfile, ConfigError> {
    let profile_name =
        Name::parse(NameKind::Profile, name.get_ref()).map_err(|e| file.invalid(name, e.to_string(), e.fix()))?;
    let name = name.get_ref();
    let doc = doc.get_ref();
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
            let version_text = buildkit_version(&version_text).map_err(|problem| {
                file.invalid(
                    version,
                    format!("profile `{name}`: {problem}"),
                    "give a release such as \"v0.25.2\" or a pin such as \"$BUILDKIT_NEWEST\"",
                )
            })?;
            let patches = doc
                .patches
                .iter()
                .map(|p| {
                    Patch::read(&dir.join(p.get_ref())).map_err(|e| {
                        file.invalid(
                            p,
                            format!(
                                "profile `{name}`: cannot read patch {}: {}",
                                p.get_ref(),
                                crate::errors::with_sources(&e)
                            ),
                            "give a patch file path relative to the builders file",
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            let spec = BuildkitSpec { version: version_text, source: Source::ModuleProxy, patches };
            (spec.tag(pins.registry()), Some(spec))
        }
        (None, Some(image)) if doc.patches.is_empty() => {
            let reference: oci_spec::distribution::Reference = image.get_ref().parse().map_err(|e| {
                file.invalid(
                    image,
                    format!("profile `{name}`: `{}` is not an image reference: {e}", image.get_ref()),
                    "write a reference such as \"moby/buildkit:v0.25.2\"",
                )
            })?;
            if !doc.allow_network && !crate::network::is_loopback_reference(&reference.whole()) {
                return Err(file.invalid(
                    image,
                    format!(
                        "lint[off-loopback]: profile `{name}`: `{}` is pulled from {}: builders use images on this machine",
                        image.get_ref(),
                        reference.resolve_registry()
                    ),
                    "name a BuildKit release (`buildkit = \"v0.25.2\"`: the set-up builds it into the local registry), \
                     or add `allow_network = true` on a machine that reaches that registry",
                ));
            }
            (reference.whole(), None)
        }
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
    let buildkitd_flags = doc
        .buildkitd_flags
        .iter()
        .map(|flag| {
            buildkitd::check_flag(flag.get_ref())
                .map(|()| flag.get_ref().clone())
                .map_err(|e| file.invalid(flag, format!("profile `{name}`: {e}"), e.fix()))
        })
        .collect::<Result<_, _>>()?;
    let buildkitd_config = match &doc.buildkitd_config {
        Some(text) => buildkitd::check_config(text.get_ref(), pins.registry())
            .map_err(|e| file.invalid(text, format!("profile `{name}`: buildkitd_config: {e}"), e.fix()))?,
        None => toml::Table::new(),
    };
    Ok(BuilderProfile {
        name: profile_name,
        image,
        buildkit,
        snapshotter: doc.snapshotter,
        buildkitd_flags,
        buildkitd_config,
    })
}
