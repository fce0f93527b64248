//! Running one phase of a cell on its builder: a build (with cache export/import) or a prune.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::artifacts::{BuildOutput, CacheArtifact, Effect, RawBuild, RawPhase};
use crate::errors::InfraError;
use crate::host::builder::Builder;
use crate::host::buildx::{buildx, option_value};
use crate::host::registry::{Registry, RepositoryKind};
use crate::names::Name;
use crate::scenario::{
    BaseImage, BuildPhase, CacheExport, CacheMode, CacheRef, DeclaredBase, LayerDeletion, Output, Phase, PhaseAction,
    Prune, Scenario,
};

/// Where a cell's phases put their files and caches.
pub struct CellPaths<'a> {
    pub dir: &'a Path,
    /// Unique per run, cell and repetition: the registry path of caches and pushed images.
    pub refs: &'a str,
    pub registry: &'a str,
}

impl CellPaths<'_> {
    pub fn local_cache_dir(&self, name: &Name) -> PathBuf {
        self.dir.join("cache").join(name.as_str())
    }

    fn registry_ref(&self, kind: RepositoryKind, name: &Name) -> String {
        format!("{}/{}:{name}", self.registry, self.repository(kind))
    }

    fn repository(&self, kind: RepositoryKind) -> String {
        format!("{}/{}", kind.prefix(), self.refs)
    }

    /// Where the documents of a cache are read from: a local export's own directory, or the copy of a
    /// registry cache (or of the image that carries an inline cache) fetched after the export.
    pub fn cache_artifact(&self, target: &CacheRef) -> CacheArtifact {
        let dir = match target {
            CacheRef::Local(name) => self.local_cache_dir(name),
            CacheRef::Registry(name) => self.dir.join("fetched").join(format!("cache-{name}")),
            CacheRef::Inline(phase) => self.dir.join("fetched").join(format!("image-{phase}")),
        };
        CacheArtifact { name: target.to_string(), dir, mode_max: None }
    }

    /// Copies what a build just pushed for `target` into [`CellPaths::cache_artifact`]'s directory.
    async fn fetch(&self, target: &CacheRef, registry: &Registry) -> Result<(), InfraError> {
        let (repo, tag) = match target {
            CacheRef::Local(_) => return Ok(()),
            CacheRef::Registry(name) => (self.repository(RepositoryKind::Cache), name),
            CacheRef::Inline(phase) => (self.repository(RepositoryKind::Out), phase),
        };
        registry.fetch_layout(&repo, tag.as_str(), &self.cache_artifact(target).dir).await
    }

    fn cache_location(&self, target: &CacheRef, importing: bool) -> String {
        match target {
            CacheRef::Local(name) => {
                let key = if importing { "src" } else { "dest" };
                option_value(&[("type", "local"), (key, &self.local_cache_dir(name).display().to_string())])
            }
            CacheRef::Registry(name) => {
                format!("type=registry,ref={},registry.insecure=true", self.registry_ref(RepositoryKind::Cache, name))
            }
            CacheRef::Inline(_) if !importing => "type=inline".into(),
            CacheRef::Inline(phase) => {
                format!("type=registry,ref={},registry.insecure=true", self.registry_ref(RepositoryKind::Out, phase))
            }
        }
    }

    /// Where a build with `output = "local"` writes its files.
    pub fn output_dir(&self, phase: &Name) -> PathBuf {
        self.dir.join("out").join(phase.as_str())
    }

    /// A base's reference: a declared base's is this repetition's own.
    pub fn base_ref(&self, base: &BaseImage) -> String {
        base.reference(self.registry, &|tag| self.registry_ref(RepositoryKind::Base, tag))
    }

    /// Where this repetition pushes a declared base.
    pub fn declared_ref(&self, base: &DeclaredBase) -> String {
        self.registry_ref(RepositoryKind::Base, &base.tag)
    }

    pub fn rawjson_path(&self, phase: &Name) -> PathBuf {
        self.dir.join(format!("{phase}.rawjson"))
    }
}

/// Runs one phase. A build that fails is recorded (what it means is for the probe and the judge); a
/// prune that fails, a buildx that cannot start, or a timeout is an infrastructure error.
pub async fn run(
    phase: &Phase,
    scenario: &Scenario,
    builder: &Builder,
    bases: &mut super::bases::Helper<'_>,
    registry: &Registry,
    paths: &CellPaths<'_>,
) -> Result<RawPhase, InfraError> {
    let started = Instant::now();
    let timeout = Duration::from_secs(scenario.phase_timeout_secs);
    let (build, effect) = match &phase.action {
        PhaseAction::Drift { base, declared, content } => {
            bases
                .push(declared, content, &paths.declared_ref(declared), &paths.base_ref(&declared.from), paths.dir)
                .await?;
            (None, Some(Effect::Drifted { base: base.clone() }))
        }
        PhaseAction::DeleteLayers(deletion) => {
            let layers = match deletion {
                LayerDeletion::Base { declared, .. } => registry.delete_layers(&paths.declared_ref(declared)).await?,
                LayerDeletion::Cache { cache, path } => {
                    super::layers::delete_holding(&paths.local_cache_dir(cache), path)?
                }
            };
            (None, Some(Effect::LayersDeleted { from: deletion.to_string(), layers }))
        }
        PhaseAction::Prune(prune) => {
            buildx(&prune_args(prune, &builder.name), timeout).await?.require_success()?;
            (None, None)
        }
        PhaseAction::Build(build) => {
            let args = build_args(&phase.name, build, scenario, &builder.name, paths, "rawjson");
            let run = buildx(&args, timeout).await?;
            let rawjson = paths.rawjson_path(&phase.name);
            std::fs::write(&rawjson, &run.stderr).map_err(InfraError::io(format!("writing {}", rawjson.display())))?;
            let mut key_dumps = None;
            if run.success {
                for export in &build.cache_to {
                    paths.fetch(&export.target, registry).await?;
                }
                if let Some(addr) = &builder.debug_addr {
                    crate::host::keys::save(addr, paths.dir, phase.name.as_str()).await?;
                    key_dumps = Some(paths.dir.join(phase.name.as_str()));
                }
            }
            let raw = RawBuild {
                succeeded: run.success,
                rawjson: run.stderr,
                exports: build
                    .cache_to
                    .iter()
                    .map(|c| CacheArtifact {
                        mode_max: Some(c.mode == CacheMode::Max),
                        ..paths.cache_artifact(&c.target)
                    })
                    .collect(),
                imports: build.cache_from.iter().map(|c| paths.cache_artifact(c)).collect(),
                key_dumps,
                crash: None,
                output: (build.output == Output::Local).then(|| BuildOutput {
                    dir: paths.output_dir(&phase.name),
                    checked: scenario.checked_files(&phase.name),
                }),
            };
            (Some(raw), None)
        }
    };
    Ok(RawPhase { phase: phase.name.to_string(), duration: started.elapsed(), build, effect })
}

/// The `docker buildx` arguments of a prune phase.
pub fn prune_args(prune: &Prune, builder: &str) -> Vec<String> {
    let mut args = vec!["prune".into(), "--builder".into(), builder.to_owned(), "--force".into()];
    args.extend(prune.options());
    args
}

/// The `docker buildx` arguments of a build phase, printing its progress as `progress` (bkcache reads
/// `rawjson`; a person reads `plain`).
pub fn build_args(
    phase_name: &Name,
    build: &BuildPhase,
    scenario: &Scenario,
    builder: &str,
    paths: &CellPaths<'_>,
    progress: &str,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "build".into(),
        "--builder".into(),
        builder.to_owned(),
        "--progress".into(),
        progress.to_owned(),
        "--file".into(),
        scenario.dockerfile.display().to_string(),
    ];
    let mut build_args: BTreeMap<String, String> =
        scenario.bases.iter().map(|(arg, base)| (arg.clone(), paths.base_ref(base))).collect();
    build_args.extend(build.build_args.clone());
    for (k, v) in build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    for export in &build.cache_to {
        args.extend(["--cache-to".into(), cache_to_spec(export, paths)]);
    }
    for import in &build.cache_from {
        args.extend(["--cache-from".into(), paths.cache_location(import, true)]);
    }
    if let Some(target) = &build.target {
        args.extend(["--target".into(), target.value.clone()]);
    }
    if !build.no_cache_filter.is_empty() {
        let stages: Vec<&str> = build.no_cache_filter.iter().map(|s| s.value.as_str()).collect();
        args.extend(["--no-cache-filter".into(), stages.join(",")]);
    }
    if let Some(platform) = &build.platform {
        args.extend(["--platform".into(), platform.clone()]);
    }
    let output = match build.output {
        Output::CacheOnly => "type=cacheonly".to_owned(),
        Output::Push => {
            format!(
                "type=image,name={},push=true,registry.insecure=true",
                paths.registry_ref(RepositoryKind::Out, phase_name)
            )
        }
        Output::Local => {
            option_value(&[("type", "local"), ("dest", &paths.output_dir(phase_name).display().to_string())])
        }
    };
    args.extend(["--output".into(), output, scenario.context.display().to_string()]);
    args
}

fn cache_to_spec(export: &CacheExport, paths: &CellPaths<'_>) -> String {
    let mode = match export.mode {
        CacheMode::Min => "min",
        CacheMode::Max => "max",
    };
    let location = paths.cache_location(&export.target, false);
    // BuildKit's inline export has no mode (it is always min)
    let mut spec = match export.target {
        CacheRef::Inline(_) => location,
        _ => format!("{location},mode={mode}"),
    };
    for (k, v) in &export.attrs {
        spec.push_str(&format!(",{k}={v}"));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_args_carry_every_option() {
        let all = Prune { all: true, filters: vec!["until=24h".into()], keep_storage: Some("1gb".into()) };
        assert_eq!(
            prune_args(&all, "b").join(" "),
            "prune --builder b --force --all --filter until=24h --keep-storage 1gb"
        );
        // the build cache only: no --all
        assert_eq!(prune_args(&Prune::default(), "b").join(" "), "prune --builder b --force");
    }
}
