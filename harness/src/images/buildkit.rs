//! BuildKit images made here, from the `github.com/moby/buildkit` Go module at a release (or a local
//! clone of moby/buildkit at a release or commit) plus optional patches: static buildkitd and buildctl,
//! runc, busybox. No registry is needed to make one.
//!
//! The tag is derived from the version and the patches' content
//! (`<registry>/bkcache/buildkit:v0.33.1` or `...:v0.33.1-p<hash>`), so unchanged inputs are never
//! rebuilt and a changed patch always is. Nothing is imported until every step succeeded: a patch that
//! does not apply leaves no half-built image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::releases::{self, BuildStatus};
use crate::buildkit_spec::{BuildkitSpec, EnsuredImage, Patch, Source};
use crate::errors::InfraError;
use crate::host::docker::Engine;

pub const LABEL_VERSION: &str = "io.bkcache.buildkit.version";
pub const LABEL_PATCHES: &str = "io.bkcache.buildkit.patches";

#[derive(Debug, thiserror::Error)]
pub enum BuildkitImageError {
    #[error("the Go module proxy does not serve github.com/moby/buildkit@{version}: {detail}\n  fix: pick a release `go list -m -versions github.com/moby/buildkit` lists")]
    ModuleUnavailable { version: String, detail: String },
    #[error("{repo} has no `{rev}` for BuildKit {version}: {detail}\n  fix: fetch moby/buildkit's history into that clone (`git fetch --tags`)", repo = .repo.display())]
    NotInClone { repo: PathBuf, version: String, rev: String, detail: String },
    #[error("patch {patch} does not apply to BuildKit {version}:\n{detail}\n  fix: rebase the patch on {version} (no image was built)", patch = .patch.display())]
    PatchDoesNotApply { patch: PathBuf, version: String, detail: String },
    #[error("building BuildKit {version} failed: {detail}")]
    GoBuild { version: String, detail: String },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Makes sure the image for `spec` exists in the local engine, building it when it does not.
pub async fn ensure(engine: &Engine, spec: &BuildkitSpec, registry: &str) -> Result<EnsuredImage, BuildkitImageError> {
    let tag = spec.tag(registry);
    // another bkcache process may be building this very tag: wait for it instead of building it twice
    let _building = crate::host::locks::own_image(&tag).await?;
    if engine.has_image(&tag).await? {
        return Ok(EnsuredImage { tag, version: spec.version.clone(), patches: spec.patch_names(), built: false });
    }
    tracing::info!(%tag, patches = ?spec.patch_names(), "building BuildKit image");
    let work = tempfile::tempdir().map_err(InfraError::io("creating a build directory"))?;
    let src = work.path().join("src");
    let built = async {
        match &spec.source {
            Source::ModuleProxy => {
                let module = module_dir(&spec.version).await?;
                writable_copy(&module, &src)
                    .await
                    .map_err(|detail| BuildkitImageError::GoBuild { version: spec.version.clone(), detail })?;
            }
            Source::Git(repo) => git_export(repo, &spec.version, &src).await?,
        }
        for patch in &spec.patches {
            apply(&src, patch, &spec.version).await?;
        }
        go_build(&src, &work.path().join("bin"), spec).await
    };
    let built = built.await;
    // what an unpatched build from the proxy teaches about the release (a patch's failure says nothing)
    if spec.patches.is_empty() && spec.source == Source::ModuleProxy {
        match &built {
            Ok(()) => releases::BuildStatuses::record_quietly(&spec.version, BuildStatus::new(true, "", "image")),
            Err(e @ (BuildkitImageError::ModuleUnavailable { .. } | BuildkitImageError::GoBuild { .. })) => {
                releases::BuildStatuses::record_quietly(
                    &spec.version,
                    BuildStatus::new(false, crate::errors::with_sources(e), "image"),
                )
            }
            Err(_) => {}
        }
    }
    built?;
    let bin = work.path().join("bin");
    let rootfs = rootfs_tar(&bin).await?;
    let mut labels = BTreeMap::from([(LABEL_VERSION, spec.version.clone())]);
    labels.insert(LABEL_PATCHES, spec.patch_names().join(","));
    let mut changes = vec![r#"ENTRYPOINT ["buildkitd"]"#.to_owned(), "VOLUME /var/lib/buildkit".to_owned()];
    changes.extend(labels.iter().map(|(k, v)| format!("LABEL {k}=\"{v}\"")));
    engine.import_image(&tag, rootfs, changes).await?;
    Ok(EnsuredImage { tag, version: spec.version.clone(), patches: spec.patch_names(), built: true })
}

/// Runs a command; on failure returns what it printed.
async fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().await.map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{what}: {}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout)))
    }
}

/// A writable copy of the module source: the module cache is read-only, and patches change the source.
pub(crate) async fn writable_copy(module: &Path, src: &Path) -> Result<(), String> {
    run(Command::new("cp").arg("-r").arg(module).arg(src), "copying the module source").await?;
    run(Command::new("chmod").args(["-R", "u+w"]).arg(src), "making the source writable").await.map(|_| ())
}

/// The build tags of a static buildkitd.
pub(crate) const GO_TAGS: &str = "osusergo netgo static_build";

/// `go` in a copy of the module source, set up as the image build runs it: static, with the source's
/// own `vendor/` when it has one, else modules resolved through the proxy.
pub(crate) fn go_in(src: &Path) -> Command {
    let mut cmd = Command::new("go");
    cmd.current_dir(src).env("CGO_ENABLED", "0").env("GOFLAGS", module_mode(src));
    cmd
}

/// `-mod=vendor` when `src` carries its dependencies' packages (a git export of a release that vendors
/// them), else `-mod=mod`. A module from the proxy of such a release keeps `vendor/modules.txt` but not
/// the packages (module zips leave vendored packages out), so the file alone does not make a vendor tree.
fn module_mode(src: &Path) -> &'static str {
    let vendor = src.join("vendor");
    let packages = std::fs::read_dir(&vendor).is_ok_and(|entries| entries.flatten().any(|e| e.path().is_dir()));
    match packages && vendor.join("modules.txt").is_file() {
        true => "-mod=vendor",
        false => "-mod=mod",
    }
}

/// The tree of `version` in a moby/buildkit clone, written to `src`: the commit a pseudo-version names,
/// else the release tag.
async fn git_export(repo: &Path, version: &str, src: &Path) -> Result<(), BuildkitImageError> {
    let rev = releases::pseudo_version_commit(version).unwrap_or(version).to_owned();
    let missing = |detail: String| BuildkitImageError::NotInClone {
        repo: repo.to_owned(),
        version: version.to_owned(),
        rev: rev.clone(),
        detail: detail.trim().to_owned(),
    };
    let tree = format!("{rev}^{{tree}}");
    run(Command::new("git").arg("-C").arg(repo).args(["rev-parse", "--verify", "--quiet", &tree]), "git rev-parse")
        .await
        .map_err(missing)?;
    tokio::fs::create_dir_all(src).await.map_err(InfraError::io("creating the source directory"))?;
    let tar = src.with_extension("tar");
    let mut archive = Command::new("git");
    archive.arg("-C").arg(repo).args(["archive", "--format=tar", "-o"]).arg(&tar).arg(&tree);
    run(&mut archive, "git archive").await.map_err(missing)?;
    run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(src), "unpacking the git archive")
        .await
        .map_err(|detail| BuildkitImageError::GoBuild { version: version.to_owned(), detail })?;
    tokio::fs::remove_file(&tar).await.map_err(InfraError::io("removing the git archive"))?;
    Ok(())
}

pub(crate) async fn module_dir(version: &str) -> Result<PathBuf, BuildkitImageError> {
    let unavailable = |detail: String| BuildkitImageError::ModuleUnavailable { version: version.to_owned(), detail };
    let json = run(
        Command::new("go").args(["mod", "download", "-json", &format!("github.com/moby/buildkit@{version}")]),
        "go mod download",
    )
    .await
    .map_err(unavailable)?;
    let info: serde_json::Value = serde_json::from_str(&json).map_err(|e| unavailable(e.to_string()))?;
    info["Dir"].as_str().map(PathBuf::from).ok_or_else(|| unavailable(json.clone()))
}

/// `git apply --check` first, so a patch that does not apply says which file and hunk, then applies.
async fn apply(src: &Path, patch: &Patch, version: &str) -> Result<(), BuildkitImageError> {
    let fail = |detail: String| BuildkitImageError::PatchDoesNotApply {
        patch: patch.path.clone(),
        version: version.to_owned(),
        detail,
    };
    let path = patch.path.canonicalize().map_err(|e| fail(e.to_string()))?;
    for check in [true, false] {
        let mut cmd = Command::new("git");
        cmd.current_dir(src).args(["apply", "--verbose"]);
        if check {
            cmd.arg("--check");
        }
        run(cmd.arg(&path), "git apply")
            .await
            .map_err(|d| fail(d.trim_start_matches("git apply: ").trim().to_owned()))?;
    }
    Ok(())
}

async fn go_build(src: &Path, bin: &Path, spec: &BuildkitSpec) -> Result<(), BuildkitImageError> {
    let version = if spec.patches.is_empty() {
        spec.version.clone()
    } else {
        format!("{}+{}", spec.version, spec.patch_names().join("+"))
    };
    let ldflags = format!(
        "-s -w -X github.com/moby/buildkit/version.Version={version} -X github.com/moby/buildkit/version.Revision=bkcache -extldflags -static"
    );
    let mut cmd = go_in(src);
    cmd.args(["build", "-trimpath", "-tags", GO_TAGS, "-ldflags", &ldflags, "-o"])
        .arg(format!("{}/", bin.display()))
        .args(["./cmd/buildkitd", "./cmd/buildctl"]);
    run(&mut cmd, "go build").await.map(|_| ()).map_err(|detail| BuildkitImageError::GoBuild {
        version: spec.version.clone(),
        detail: crate::artifacts::last_lines(&detail, 15),
    })
}

/// runc, the OCI worker's executor: the one host binary a BuildKit image needs besides its own.
const RUNC: &str = "/usr/sbin/runc";

/// The image's root filesystem: buildkitd, buildctl and runc with busybox (see [`super::rootfs`]).
async fn rootfs_tar(bin: &Path) -> Result<bytes::Bytes, InfraError> {
    super::rootfs::Rootfs::new()
        .dir("etc/buildkit")
        .dir("var/lib/buildkit")
        .binary(&bin.join("buildkitd"), "usr/bin/buildkitd")
        .binary(&bin.join("buildctl"), "usr/bin/buildctl")
        .binary(Path::new(RUNC), "usr/bin/runc")
        .tar()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tree_with_vendored_packages_builds_from_vendor() {
        let src = tempfile::tempdir().unwrap();
        assert_eq!(module_mode(src.path()), "-mod=mod", "no vendor directory");
        std::fs::create_dir(src.path().join("vendor")).unwrap();
        std::fs::write(src.path().join("vendor/modules.txt"), "# github.com/x/y v1.0.0\n").unwrap();
        assert_eq!(module_mode(src.path()), "-mod=mod", "a module from the proxy keeps only modules.txt");
        std::fs::create_dir_all(src.path().join("vendor/github.com/x/y")).unwrap();
        assert_eq!(module_mode(src.path()), "-mod=vendor", "a git export carries the packages");
    }
}
