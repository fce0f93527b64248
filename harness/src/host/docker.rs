//! The Docker engine, through its API (bollard): reachability, images, builder container logs, and
//! the last-resort clean-up of builder containers and volumes. Builds go through the buildx CLI instead
//! (see `buildx`), which is how BuildKit's users drive it.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, LogsOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::errors::InfraError;

pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// See [`Engine::container_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    pub restarts: i64,
}

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    pub version: String,
    pub api_version: String,
}

fn docker_err(action: &str) -> impl FnOnce(bollard::errors::Error) -> InfraError + '_ {
    move |source| InfraError::Docker { action: action.to_owned(), source }
}

/// A removal that finds nothing to remove (someone else removed it in between) succeeded.
fn gone_is_fine(result: Result<(), bollard::errors::Error>) -> Result<(), bollard::errors::Error> {
    match result {
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        other => other,
    }
}

impl Engine {
    /// Connects and checks the engine answers; a down engine is an infrastructure error with a fix.
    pub async fn connect() -> Result<Self, InfraError> {
        let endpoint = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_ENDPOINT.into());
        let unreachable = |source| InfraError::DockerUnreachable { endpoint: endpoint.clone(), source };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        Ok(Engine {
            docker,
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
        })
    }

    pub async fn has_image(&self, reference: &str) -> Result<bool, InfraError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(docker_err("inspecting an image")(e)),
        }
    }

    /// A container's state: whether it runs, and how often Docker restarted it (builder containers have
    /// restart policy `unless-stopped`, so a buildkitd that died comes back with a count above 0).
    /// `None` when the container is gone.
    pub async fn container_state(&self, container: &str) -> Result<Option<ContainerState>, InfraError> {
        match self.docker.inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>).await
        {
            Ok(c) => Ok(Some(ContainerState {
                running: c.state.and_then(|s| s.running).unwrap_or(false),
                restarts: c.restart_count.unwrap_or(0),
            })),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(docker_err("inspecting a builder container")(e)),
        }
    }

    /// A container's environment (`KEY=value` entries), `None` when the container is gone: where bkcache
    /// reads the mark it gives its builders' containers.
    pub async fn container_env(&self, container: &str) -> Result<Option<Vec<String>>, InfraError> {
        match self.docker.inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>).await
        {
            Ok(c) => Ok(Some(c.config.and_then(|c| c.env).unwrap_or_default())),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(docker_err("inspecting a builder container")(e)),
        }
    }

    /// Removes the container and the volume of these exact names (either may be gone already).
    pub async fn remove_container_and_volume(&self, container: &str, volume: &str) -> Result<(), InfraError> {
        let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        gone_is_fine(self.docker.remove_container(container, Some(options)).await)
            .map_err(docker_err("removing a container"))?;
        gone_is_fine(self.docker.remove_volume(volume, Some(RemoveVolumeOptions { force: true })).await)
            .map_err(docker_err("removing a volume"))
    }

    /// Runs `cmd` in a container and says whether it exited 0; false when the container cannot run it
    /// (stopped, gone, or its process just died).
    pub async fn exec_succeeds(&self, container: &str, cmd: &[&str]) -> Result<bool, InfraError> {
        use bollard::errors::Error::DockerResponseServerError;
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let options = CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = match self.docker.create_exec(container, options).await {
            Ok(exec) => exec,
            Err(DockerResponseServerError { status_code: 404 | 409, .. }) => return Ok(false),
            Err(e) => return Err(docker_err("running a command in a builder container")(e)),
        };
        match self.docker.start_exec(&exec.id, None).await {
            Ok(StartExecResults::Attached { mut output, .. }) => while output.next().await.is_some() {},
            Ok(StartExecResults::Detached) => {}
            Err(DockerResponseServerError { status_code: 404 | 409, .. }) => return Ok(false),
            Err(e) => return Err(docker_err("running a command in a builder container")(e)),
        }
        let inspected = self.docker.inspect_exec(&exec.id).await.map_err(docker_err("inspecting a command's exit"))?;
        Ok(inspected.exit_code == Some(0))
    }

    /// Stops a container (SIGTERM, then SIGKILL after 10 s); a stopped one stays stopped.
    pub async fn stop_container(&self, container: &str) -> Result<(), InfraError> {
        let options = bollard::query_parameters::StopContainerOptions { t: Some(10), ..Default::default() };
        match self.docker.stop_container(container, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(docker_err("stopping a builder container")(e)),
        }
    }

    pub async fn start_container(&self, container: &str) -> Result<(), InfraError> {
        self.docker
            .start_container(container, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(docker_err("starting a builder container"))
    }

    /// Writes one file (mode 0644) into a directory of a container, running or not.
    pub async fn upload_file(&self, container: &str, dir: &str, name: &str, content: &[u8]) -> Result<(), InfraError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        let mut archive = tar::Builder::new(Vec::new());
        archive
            .append_data(&mut header, name, content)
            .and_then(|()| archive.finish())
            .map_err(InfraError::io(format!("packing {name} for {container}")))?;
        let tar = archive.into_inner().map_err(InfraError::io(format!("packing {name} for {container}")))?;
        let options =
            bollard::query_parameters::UploadToContainerOptions { path: dir.to_owned(), ..Default::default() };
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(docker_err("writing a file into a builder container"))
    }

    /// Everything a container wrote to stdout and stderr so far.
    /// What `container` logged since `since` (unix seconds; 0: all of it).
    pub async fn container_logs(&self, container: &str, since: i32) -> Result<String, InfraError> {
        let options = LogsOptions { stdout: true, stderr: true, tail: "all".into(), since, ..Default::default() };
        let mut stream = self.docker.logs(container, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(docker_err("reading container logs"))?;
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(text)
    }

    /// The containers and the volumes whose names start with `prefix`.
    async fn with_prefix(&self, prefix: &str) -> Result<(Vec<String>, Vec<String>), InfraError> {
        let filters = HashMap::from([("name".to_owned(), vec![prefix.to_owned()])]);
        let options = ListContainersOptions { all: true, filters: Some(filters.clone()), ..Default::default() };
        let containers = self.docker.list_containers(Some(options)).await.map_err(docker_err("listing containers"))?;
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions { filters: Some(filters) }))
            .await
            .map_err(docker_err("listing volumes"))?;
        // the name filter matches anywhere in the name: keep real prefixes only
        let containers = containers
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .map(|n| n.trim_start_matches('/').to_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        let volumes =
            volumes.volumes.unwrap_or_default().into_iter().map(|v| v.name).filter(|n| n.starts_with(prefix)).collect();
        Ok((containers, volumes))
    }

    /// Names of the containers and volumes that start with `prefix`.
    pub async fn names_with_prefix(&self, prefix: &str) -> Result<Vec<String>, InfraError> {
        let (containers, volumes) = self.with_prefix(prefix).await?;
        Ok(containers.into_iter().chain(volumes).collect())
    }

    /// Removes containers and volumes whose names start with `prefix` (what `buildx rm` should have
    /// removed already; this catches what an interrupted run left).
    pub async fn remove_by_prefix(&self, prefix: &str) -> Result<(), InfraError> {
        let (containers, volumes) = self.with_prefix(prefix).await?;
        for name in containers {
            let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            gone_is_fine(self.docker.remove_container(&name, Some(options)).await)
                .map_err(docker_err("removing a container"))?;
        }
        for name in volumes {
            gone_is_fine(self.docker.remove_volume(&name, Some(RemoveVolumeOptions { force: true })).await)
                .map_err(docker_err("removing a volume"))?;
        }
        Ok(())
    }
}

impl Engine {
    /// `docker import`: a root filesystem tar becomes image `tag`, with Dockerfile-style `changes`.
    pub async fn import_image(&self, tag: &str, rootfs: bytes::Bytes, changes: Vec<String>) -> Result<(), InfraError> {
        let (repo, tag_part) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = bollard::query_parameters::CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.to_owned()),
            tag: Some(tag_part.to_owned()),
            changes,
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), Some(bollard::body_full(rootfs)), None);
        while let Some(progress) = stream.next().await {
            progress.map_err(docker_err("importing an image"))?;
        }
        Ok(())
    }
}
