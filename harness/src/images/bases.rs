//! Base images bkcache makes and pushes itself: the local eStargz bases the set-up provides
//! (`{ local = "base-a" }` in a scenario) and a scenario's declared bases (each repetition's, see
//! `execute::bases`). One way to push a base for both, and for the evidence script.

use std::path::Path;
use std::time::Duration;

use crate::errors::InfraError;
use crate::host::buildx::buildx;
use crate::host::registry::Registry;
use crate::host::Machine;
use crate::names::{Name, NameKind};
use crate::profiles::{BuilderProfile, Snapshotter};
use crate::scenario::BaseImage;

/// The local bases the set-up pushes, as `<registry>/bkcache/<name>:esgz`.
pub const LOCAL_BASES: [&str; 2] = ["base-a", "base-b"];

/// The annotations the stargz snapshotter needs on a layer to mount it lazily.
const ESTARGZ_ANNOTATIONS: [&str; 2] =
    ["containerd.io/snapshot/stargz/toc.digest", "io.containers.estargz.uncompressed-size"];

/// How much payload a local base carries beyond busybox (4 files of 1 MiB): something for a lazy pull
/// to skip.
const PAYLOAD_FILES: usize = 4;

pub const PUSH_TIMEOUT: Duration = Duration::from_secs(300);

/// The `docker buildx` arguments that build the context `dir` and push it as `reference`, its layers
/// eStargz when asked; one image manifest, without the provenance attestation that would make it an
/// index (a delete-layers phase reads the image's layers from it).
pub fn push_args(builder: &str, reference: &str, estargz: bool, dir: &str) -> Vec<String> {
    let mut output = format!("type=image,name={reference},push=true,registry.insecure=true");
    if estargz {
        output.push_str(",compression=estargz,force-compression=true,oci-mediatypes=true");
    }
    ["build", "--builder", builder, "--progress", "plain", "--provenance=false", "--output", &output, dir]
        .map(str::to_owned)
        .to_vec()
}

/// The profile of a builder that only pushes bases: `image` with the eager snapshotter and no flags.
pub fn pushing_profile(image: &str) -> BuilderProfile {
    BuilderProfile {
        name: Name::parse(NameKind::Profile, "bases").expect("a valid name"),
        image: image.to_owned(),
        buildkit: None,
        snapshotter: Snapshotter::Overlayfs,
        buildkitd_flags: Vec::new(),
        buildkitd_config: toml::Table::new(),
    }
}

/// Whether the registry has `reference` with every layer eStargz (annotated for lazy pulling).
pub async fn is_estargz(registry: &Registry, reference: &str) -> Result<bool, InfraError> {
    let Some(manifest) = registry.image_manifest(reference).await? else { return Ok(false) };
    let annotated = |layer: &oci_spec::image::Descriptor| {
        let annotations = layer.annotations().clone().unwrap_or_default();
        ESTARGZ_ANNOTATIONS.iter().all(|key| annotations.contains_key(*key))
    };
    Ok(!manifest.layers().is_empty() && manifest.layers().iter().all(annotated))
}

/// Makes sure the registry has every local base as eStargz, building the missing ones on a builder of
/// `buildkit_image` that is removed afterwards. Returns each base's reference and whether it was built.
pub async fn ensure_local(machine: &Machine, buildkit_image: &str) -> Result<Vec<(String, bool)>, InfraError> {
    let registry = &machine.registry;
    let mut todo = Vec::new();
    let mut done = Vec::new();
    for name in LOCAL_BASES {
        let reference =
            BaseImage::local_reference(&registry.addr, &Name::parse(NameKind::LocalBase, name).expect("valid"));
        match is_estargz(registry, &reference).await? {
            true => done.push((reference, false)),
            false => todo.push((name, reference)),
        }
    }
    if todo.is_empty() {
        return Ok(done);
    }
    // pushing: `gc` must not collect the registry's unreferenced blobs under the push
    let _pushing = crate::host::locks::share_registry().await?;
    let work = tempfile::tempdir().map_err(InfraError::io("creating a build directory"))?;
    let profile = pushing_profile(buildkit_image);
    let builder = machine.janitor.acquire(&profile, &registry.addr, work.path(), &machine.engine).await?;
    let pushed = async {
        for (name, reference) in &todo {
            let context = work.path().join(name);
            write_context(name, &context).await?;
            let args = push_args(&builder.name, reference, true, &context.display().to_string());
            buildx(&args, PUSH_TIMEOUT).await?.require_success()?;
            if !is_estargz(registry, reference).await? {
                let reason = "pushed without eStargz layer annotations".into();
                return Err(InfraError::RegistryImage { image: reference.clone(), reason });
            }
            done.push((reference.clone(), true));
        }
        Ok(())
    }
    .await;
    let removed = machine.janitor.release(builder, false, &machine.engine).await.outcome;
    pushed.and(removed).map(|()| done)
}

/// A local base's build context in `dir`: `FROM scratch` with a root filesystem of busybox, a marker
/// naming the base and its payload (random, so no two bases share a layer).
async fn write_context(name: &str, dir: &Path) -> Result<(), InfraError> {
    let mut rootfs = super::rootfs::Rootfs::new().file("etc/bkcache-base", format!("{name}\n"));
    for i in 1..=PAYLOAD_FILES {
        let mut payload = vec![0u8; 1 << 20];
        fastrand::fill(&mut payload);
        rootfs = rootfs.file(&format!("opt/{name}/blob{i}"), payload);
    }
    let tar = rootfs.tar().await?;
    let io = |what: &str| InfraError::io(format!("writing the context of base {name}: {what}"));
    tar::Archive::new(&tar[..]).unpack(dir.join("rootfs")).map_err(io("its root filesystem"))?;
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").map_err(io("Dockerfile"))
}
