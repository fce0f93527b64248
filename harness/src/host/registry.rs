//! The local registry (distribution, on loopback): is it up, does it hold an image, and deleting the refs
//! a run pushed (its registry caches and images) so the registry does not grow run after run.

use oci_spec::image::ImageManifest;

use super::http::{agent, blocking, read_body};
use crate::digest::BlobDigest;
use crate::errors::InfraError;
use crate::observe::cache::{copy_documents, CopyDocumentsError};

#[derive(Debug, Clone)]
pub struct Registry {
    pub addr: String,
    /// The container serving it, where garbage collection runs.
    pub container: String,
}

const IMAGE_MANIFEST_TYPES: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl Registry {
    pub fn new(pins: &crate::pins::Pins) -> Self {
        Registry { addr: pins.registry().to_owned(), container: pins.registry_container().to_owned() }
    }

    /// Checks the registry answers its API root.
    pub async fn ping(&self) -> Result<(), InfraError> {
        let url = format!("http://{}/v2/", self.addr);
        let addr = self.addr.clone();
        blocking(move || match agent().get(&url).call() {
            Ok(_) => Ok(()),
            Err(e) => Err(InfraError::RegistryUnreachable { addr, source: Box::new(e) }),
        })
        .await
    }

    /// `reference`'s repository and tag, when it is `<this registry>/repo[:tag]`.
    fn repository_and_tag<'r>(&self, reference: &'r str) -> Option<(&'r str, &'r str)> {
        let path = reference.strip_prefix(&format!("{}/", self.addr))?;
        Some(path.rsplit_once(':').unwrap_or((path, "latest")))
    }

    /// Whether `reference` (`<this registry>/repo:tag`) has a manifest here.
    pub async fn has_image(&self, reference: &str) -> Result<bool, InfraError> {
        let Some((repo, tag)) = self.repository_and_tag(reference) else {
            return Ok(false);
        };
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.addr);
        let addr = self.addr.clone();
        blocking(move || match agent().head(&url).set("Accept", MANIFEST_TYPES).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(InfraError::RegistryUnreachable { addr, source: Box::new(e) }),
        })
        .await
    }
}

/// What a run pushes, each under a repository prefix of its own followed by the run id
/// (`bkcache-cache/<run id>/...`): gc finds a run's refs by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryKind {
    /// A scenario's declared bases.
    Base,
    /// Registry caches.
    Cache,
    /// Images a build pushed (and the inline caches they carry).
    Out,
}

impl RepositoryKind {
    pub const ALL: [RepositoryKind; 3] = [RepositoryKind::Base, RepositoryKind::Cache, RepositoryKind::Out];

    /// The repository prefix: `bkcache-base`, `bkcache-cache`, `bkcache-out`.
    pub fn prefix(self) -> &'static str {
        match self {
            RepositoryKind::Base => "bkcache-base",
            RepositoryKind::Cache => "bkcache-cache",
            RepositoryKind::Out => "bkcache-out",
        }
    }
}

impl Registry {
    fn unreachable(&self) -> impl Fn(ureq::Error) -> InfraError + use<> {
        let addr = self.addr.clone();
        move |e| InfraError::RegistryUnreachable { addr: addr.clone(), source: Box::new(e) }
    }

    /// Every repository, following the catalog's pages.
    pub async fn repositories(&self) -> Result<Vec<String>, InfraError> {
        let base = format!("http://{}", self.addr);
        let fail = self.unreachable();
        blocking(move || {
            let mut repos = Vec::new();
            let mut next = Some("/v2/_catalog?n=1000".to_owned());
            while let Some(path) = next.take() {
                let response = agent().get(&format!("{base}{path}")).call().map_err(&fail)?;
                // `Link: </v2/_catalog?last=x&n=1000>; rel="next"`
                next = response
                    .header("Link")
                    .and_then(|l| l.split_once('<'))
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(path, _)| path.to_owned());
                let page: serde_json::Value = response.into_json().map_err(|e| fail(e.into()))?;
                repos.extend(
                    page["repositories"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)),
                );
            }
            Ok(repos)
        })
        .await
    }

    /// Deletes every tag's manifest of `repo` (a repository that is already gone is fine).
    pub async fn delete_repository(&self, repo: &str) -> Result<usize, InfraError> {
        let base = format!("http://{}/v2/{repo}", self.addr);
        let fail = self.unreachable();
        blocking(move || {
            let tags = match agent().get(&format!("{base}/tags/list")).call() {
                Ok(r) => r.into_json::<serde_json::Value>().map_err(|e| fail(e.into()))?,
                Err(ureq::Error::Status(404, _)) => return Ok(0),
                Err(e) => return Err(fail(e)),
            };
            let mut deleted = 0;
            for tag in tags["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str()) {
                let digest = match agent().head(&format!("{base}/manifests/{tag}")).set("Accept", MANIFEST_TYPES).call()
                {
                    Ok(r) => r.header("Docker-Content-Digest").map(str::to_owned),
                    Err(ureq::Error::Status(404, _)) => None,
                    Err(e) => return Err(fail(e)),
                };
                let Some(digest) = digest else { continue };
                match agent().delete(&format!("{base}/manifests/{digest}")).call() {
                    Ok(_) | Err(ureq::Error::Status(404, _)) => deleted += 1,
                    Err(e) => return Err(fail(e)),
                }
            }
            Ok(deleted)
        })
        .await
    }

    /// The image manifest of `reference` (`<this registry>/repo:tag`); `None` when the registry has none
    /// under that tag (or only an index).
    pub async fn image_manifest(&self, reference: &str) -> Result<Option<ImageManifest>, InfraError> {
        let image = reference.to_owned();
        let Some((repo, tag)) = self.repository_and_tag(reference) else {
            return Err(InfraError::RegistryImage { image, reason: "not in this registry".into() });
        };
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.addr);
        let fail = self.unreachable();
        blocking(move || {
            let response = match agent().get(&url).set("Accept", IMAGE_MANIFEST_TYPES).call() {
                Ok(response) => response,
                Err(ureq::Error::Status(404, _)) => return Ok(None),
                Err(e) => return Err(fail(e)),
            };
            let body = read_body(response, &url)?;
            serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| InfraError::RegistryImage { image, reason: format!("its manifest: {e}") })
        })
        .await
    }

    /// Deletes the layer blobs of the image `reference` (`<this registry>/repo:tag`, an image manifest,
    /// not an index) from its repository, and says how many. The registry unlinks them from that
    /// repository only: other repositories' images that share a layer keep it, and the manifest and
    /// config stay, so the image still resolves while a pull of its layers answers 404.
    pub async fn delete_layers(&self, reference: &str) -> Result<usize, InfraError> {
        let bad = |reason: &str| InfraError::RegistryImage { image: reference.to_owned(), reason: reason.into() };
        let Some((repo, _)) = self.repository_and_tag(reference) else { return Err(bad("not in this registry")) };
        let Some(manifest) = self.image_manifest(reference).await? else {
            return Err(bad("no image manifest (an index is not deleted from)"));
        };
        let base = format!("http://{}/v2/{repo}", self.addr);
        let fail = self.unreachable();
        blocking(move || {
            for layer in manifest.layers() {
                match agent().delete(&format!("{base}/blobs/{}", layer.digest())).call() {
                    Ok(_) | Err(ureq::Error::Status(404, _)) => {}
                    Err(e) => return Err(fail(e)),
                }
            }
            Ok(manifest.layers().len())
        })
        .await
    }

    /// Removes the blobs no manifest references any more (after [`Registry::delete_repository`]). Only
    /// while no run may push: the caller holds `super::locks::try_own_registry`.
    pub async fn collect_garbage(&self, engine: &super::docker::Engine) -> Result<(), InfraError> {
        let command = ["/usr/bin/docker-registry", "garbage-collect", "/etc/docker/registry/config.yml"];
        match engine.exec_succeeds(&self.container, &command).await? {
            true => Ok(()),
            false => Err(InfraError::RegistryGc {
                container: self.container.clone(),
                detail: format!("`{}` did not succeed", command.join(" ")),
            }),
        }
    }

    /// The repositories runs pushed to (see [`RepositoryKind`]), with the run id each belongs to.
    pub async fn run_repositories(&self) -> Result<Vec<(String, String)>, InfraError> {
        Ok(self
            .repositories()
            .await?
            .into_iter()
            .filter_map(|repo| {
                let (kind, rest) = repo.split_once('/')?;
                let run = rest.split('/').next()?.to_owned();
                RepositoryKind::ALL.iter().any(|k| k.prefix() == kind).then_some((repo, run))
            })
            .collect())
    }
}

impl Registry {
    /// Copies `repo:tag` (a registry cache or a pushed image) into an OCI layout at `dir`: its manifests,
    /// the cache config or image config they name, and an `index.json` pointing at the top one. Layer
    /// blobs are left out: only the documents say what a cache holds. `observe` reads it like a local
    /// cache export. Every digest is parsed before it names a file, and every document verified against it.
    pub async fn fetch_layout(&self, repo: &str, tag: &str, dir: &std::path::Path) -> Result<(), InfraError> {
        let base = format!("http://{}/v2/{repo}", self.addr);
        let (tag, dir, fail) = (tag.to_owned(), dir.to_owned(), self.unreachable());
        blocking(move || {
            let blobs = dir.join("blobs").join("sha256");
            std::fs::create_dir_all(&blobs).map_err(InfraError::io(format!("creating {}", blobs.display())))?;
            let write = |digest: &BlobDigest, body: &[u8]| {
                let path = digest.blob_path(&dir);
                std::fs::write(&path, body).map_err(InfraError::io(format!("writing {}", path.display())))
            };
            let get = |url: String| -> Result<(String, Vec<u8>), InfraError> {
                let response = agent().get(&url).set("Accept", MANIFEST_TYPES).call().map_err(&fail)?;
                let media_type = response.content_type().to_owned();
                Ok((media_type, read_body(response, &url)?))
            };
            let (media_type, top) = get(format!("{base}/manifests/{tag}"))?;
            let (top_digest, top_size) = (BlobDigest::of(&top), top.len());
            write(&top_digest, &top)?;
            copy_documents(
                top,
                |child| {
                    let kind = if child.is_manifest { "manifests" } else { "blobs" };
                    get(format!("{base}/{kind}/{}", child.digest)).map(|(_, body)| body)
                },
                write,
            )
            .map_err(|e| e.into_infra(&base))?;
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{ "mediaType": media_type, "digest": top_digest.as_str(), "size": top_size }],
            });
            let path = dir.join("index.json");
            std::fs::write(&path, index.to_string()).map_err(InfraError::io(format!("writing {}", path.display())))
        })
        .await
    }
}

impl CopyDocumentsError<InfraError> {
    /// The walk's own refusals (a malformed digest, content that is not its digest's) as data from
    /// `source` that bkcache refused; the copying's errors as they were.
    pub(crate) fn into_infra(self, source: &str) -> InfraError {
        match self {
            CopyDocumentsError::Source(e) => e,
            e => InfraError::Untrusted { source_name: source.to_owned(), problem: e.to_string() },
        }
    }
}
