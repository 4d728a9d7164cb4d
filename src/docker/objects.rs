//! Networks, volumes and images: each ensured (made if missing), attached, removed.

// One type's methods, split by what they work on: the parent module's names are theirs.
use super::*;

impl DockerClient {
    pub async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Ensured, DockerError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        if self.network_exists(name).await? {
            return Ok(Ensured::Existed);
        }
        crate::ui::call(|| format!("docker: create network {name}"));
        match self.docker.create_network(request).await {
            Ok(_) => Ok(Ensured::Created),
            // Another kindling process created it in between: same outcome.
            Err(e) if is_conflict(&e) => Ok(Ensured::Existed),
            Err(e) => Err(api(format!("create network {name}"))(e)),
        }
    }
    pub async fn network_exists(&self, name: &str) -> Result<bool, DockerError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let networks = self.networks_with(&filters).await?;
        // The name filter matches substrings; compare exactly.
        Ok(networks.iter().any(|n| n.name.as_deref() == Some(name)))
    }
    /// The network's first IPv4 subnet (`172.18.0.0/16`), if it exists and has one.
    pub async fn network_ipv4_subnet(&self, name: &str) -> Result<Option<String>, DockerError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let networks = self.networks_with(&filters).await?;
        Ok(networks
            .into_iter()
            .find(|n| n.name.as_deref() == Some(name))
            .and_then(|n| n.ipam?.config)
            .into_iter()
            .flatten()
            .filter_map(|c| c.subnet)
            .find(|s| s.contains('.')))
    }
    pub async fn remove_network(&self, name: &str) -> Result<bool, DockerError> {
        crate::ui::call(|| format!("docker: remove network {}", name));
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("remove network {name}"))(e)),
        }
    }
    /// Attaches a running container to another network (e.g. a shared cache joining an env's
    /// cluster network); already attached is fine.
    pub async fn connect_network(&self, container: &str, network: &str) -> Result<(), DockerError> {
        let request = bollard::models::NetworkConnectRequest {
            container: container.to_string(),
            ..Default::default()
        };
        crate::ui::call(|| format!("docker: connect network {}", network));
        match self.docker.connect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 403,
                message,
            }) if message.contains("already exists") => Ok(()),
            Err(e) => Err(api(format!("connect {container} to network {network}"))(e)),
        }
    }
    /// Detaches a container from a network; not attached (or gone) is fine.
    pub async fn disconnect_network(
        &self,
        container: &str,
        network: &str,
    ) -> Result<(), DockerError> {
        match self.disconnect_once(container, network).await? {
            Detached::Done => Ok(()),
            // A container between two restarts (a cache whose upstream is unreachable) has no
            // live endpoint, so the engine answers "is not connected", yet its config still
            // names the network, and once the network is gone it cannot start again. A stopped
            // container is detached in its config: stop it, detach, start it again.
            Detached::NotLive if self.attached_in_config(container, network).await? => {
                self.stop_container(container, std::time::Duration::from_secs(2))
                    .await?;
                self.disconnect_once(container, network).await?;
                self.docker
                    .start_container(container, None)
                    .await
                    .map_err(api(format!("start container {container}")))?;
                Ok(())
            }
            Detached::NotLive => Ok(()),
        }
    }

    async fn disconnect_once(
        &self,
        container: &str,
        network: &str,
    ) -> Result<Detached, DockerError> {
        let request = bollard::models::NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        crate::ui::call(|| format!("docker: disconnect network {}", network));
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(Detached::Done),
            Err(BollardError::DockerResponseServerError {
                status_code: 403 | 404,
                ..
            }) => Ok(Detached::Done),
            // The engine answers 500 for a container with no live endpoint on the network.
            Err(BollardError::DockerResponseServerError { message, .. })
                if message.contains("is not connected") =>
            {
                Ok(Detached::NotLive)
            }
            // A container being removed (by another data dir's delete, say) takes its
            // endpoints with it; the engine refuses any network change meanwhile.
            // moby daemon/container_operations.go errRemovalContainer: "is marked for removal and cannot be
            // connected or disconnected to the network".
            Err(BollardError::DockerResponseServerError { message, .. })
                if message.contains("marked for removal") =>
            {
                Ok(Detached::Done)
            }
            Err(e) => Err(api(format!(
                "disconnect {container} from network {network}"
            ))(e)),
        }
    }

    /// Whether the container's config still names `network`.
    async fn attached_in_config(
        &self,
        container: &str,
        network: &str,
    ) -> Result<bool, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {}", container));
        match self.docker.inspect_container(container, None).await {
            Ok(c) => Ok(c
                .network_settings
                .and_then(|n| n.networks)
                .is_some_and(|n| n.contains_key(network))),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("inspect container {container}"))(e)),
        }
    }
    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Ensured, DockerError> {
        crate::ui::call(|| format!("docker: inspect volume {}", name));
        if self.docker.inspect_volume(name).await.is_ok() {
            return Ok(Ensured::Existed);
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        crate::ui::call(|| format!("docker: create volume {name}"));
        self.docker
            .create_volume(request)
            .await
            .map_err(api(format!("create volume {name}")))?;
        Ok(Ensured::Created)
    }
    /// The image's ID (the digest of its config), when the engine has it.
    pub async fn image_id(&self, image: &str) -> Option<String> {
        crate::ui::call(|| format!("docker: inspect image {}", image));
        self.docker
            .inspect_image(image)
            .await
            .ok()
            .and_then(|i| i.id)
    }

    pub async fn image_exists(&self, image: &str) -> bool {
        crate::ui::call(|| format!("docker: inspect image {}", image));
        self.docker.inspect_image(image).await.is_ok()
    }
    /// Pulls an image that is not there yet, reporting progress lines through `progress`.
    pub async fn ensure_image(
        &self,
        image: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Ensured, DockerError> {
        if self.image_exists(image).await {
            return Ok(Ensured::Existed);
        }
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        crate::ui::call(|| format!("docker: pull image {image}"));
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(api(format!("pull {image}")))?;
            if let Some(status) = info.status {
                let id = info.id.map(|i| format!("{i}: ")).unwrap_or_default();
                progress(&format!("{image}: {id}{status}"));
            }
        }
        Ok(Ensured::Created)
    }
    /// `docker load` of an archive file (Docker's format: its `manifest.json`), streamed.
    pub async fn load_archive(
        &self,
        file: tokio::fs::File,
        path: &std::path::Path,
    ) -> Result<(), DockerError> {
        use tokio::io::AsyncReadExt;
        let chunks = futures_util::stream::unfold(file, |mut file| async move {
            let mut buffer = vec![0u8; 1 << 20];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    Some((Ok(bytes::Bytes::from(buffer)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        crate::ui::call(|| format!("docker: load {}", path.display()));
        let options = bollard::query_parameters::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        let mut stream = self
            .docker
            .import_image(options, bollard::body_try_stream(chunks), None);
        while let Some(item) = stream.next().await {
            item.map_err(api(format!("load {}", path.display())))?;
        }
        Ok(())
    }

    /// `docker save` of `images` into the file `path` (Docker's archive format), streamed.
    pub async fn save_archive(
        &self,
        images: &[&str],
        path: &std::path::Path,
    ) -> Result<(), DockerError> {
        use tokio::io::AsyncWriteExt;
        crate::ui::call(|| format!("docker: save {} images", images.len()));
        let failed = |source: std::io::Error| DockerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(path).await.map_err(failed)?;
        let mut stream = self.docker.export_images(images);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(api(format!("save {}", images.join(" "))))?;
            file.write_all(&chunk).await.map_err(failed)?;
        }
        file.sync_all().await.map_err(failed)
    }

    /// `docker build` of the context `archive` (a tar, its Dockerfile at `dockerfile`) tagged
    /// `tag`, each line of the builder's output given to `progress`; the new image's ID.
    pub async fn build_image(
        &self,
        archive: Vec<u8>,
        dockerfile: &str,
        tag: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<String, DockerError> {
        crate::ui::call(|| format!("docker: build {tag}"));
        let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(tag)
            .rm(true)
            .build();
        let body = bollard::body_full(bytes::Bytes::from(archive));
        let mut stream = self.docker.build_image(options, None, Some(body));
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                // The builder's own failure (a RUN that failed), as the engine words it.
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(DockerError::Build {
                        tag: tag.to_string(),
                        message: error,
                    });
                }
                Err(e) => return Err(api(format!("build {tag}"))(e)),
            };
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Build {
                    tag: tag.to_string(),
                    message: detail.message.unwrap_or_default(),
                });
            }
            for line in info.stream.iter().flat_map(|s| s.lines()) {
                if !line.trim().is_empty() {
                    progress(line.trim_end());
                }
            }
        }
        self.image_id(tag).await.ok_or_else(|| DockerError::Build {
            tag: tag.to_string(),
            message: "the build ended without an image".to_string(),
        })
    }

    /// `docker push` of `image` (a registry on 127.0.0.0/8 is spoken to over plain HTTP, as
    /// the Docker engine allows for loopback registries); the digest the registry gave it.
    pub async fn push_image(
        &self,
        image: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<String, DockerError> {
        crate::ui::call(|| format!("docker: push {image}"));
        let (name, tag) = match image.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => (image, "latest"),
        };
        let options = bollard::query_parameters::PushImageOptionsBuilder::default()
            .tag(tag)
            .build();
        let mut stream = self.docker.push_image(name, Some(options), None);
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(DockerError::Build {
                        tag: image.to_string(),
                        message: format!("push: {error}"),
                    });
                }
                Err(e) => return Err(api(format!("push {image}"))(e)),
            };
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Build {
                    tag: image.to_string(),
                    message: format!("push: {}", detail.message.unwrap_or_default()),
                });
            }
            if let Some(status) = info.status {
                // The last line: "TAG: digest: sha256:… size: N" (distribution's push).
                if let Some(rest) = status.split("digest: ").nth(1) {
                    digest = rest.split_whitespace().next().map(str::to_string);
                }
                progress(&status);
            }
        }
        digest.ok_or_else(|| DockerError::Build {
            tag: image.to_string(),
            message: "the push ended without a digest".to_string(),
        })
    }

    pub async fn remove_volume(&self, name: &str) -> Result<bool, DockerError> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        crate::ui::call(|| format!("docker: remove volume {}", name));
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("remove volume {name}"))(e)),
        }
    }
}

/// What a disconnect did.
enum Detached {
    Done,
    /// The engine saw no live endpoint of the container on the network.
    NotLive,
}
