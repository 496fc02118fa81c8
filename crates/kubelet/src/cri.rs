//! The CRI v1 client: the runtime and image services of a container runtime (containerd)
//! reached over its unix socket. Cheap to clone; clones share one HTTP/2 connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;

/// A CRI call failed, or the runtime cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket cannot be connected.
    #[error("cannot connect to the container runtime at {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A call returned an error.
    #[error("CRI {call} failed: {}", .status.message())]
    Call {
        /// The RPC.
        call: &'static str,
        /// What the runtime answered.
        status: tonic::Status,
    },
}

impl Error {
    /// Whether the runtime answered NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Call { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

/// Maps a failed call into [`Error::Call`] (`.map_err(call("RunPodSandbox"))`).
pub fn call(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Call { call, status }
}

/// The runtime and image services of one runtime.
#[derive(Clone, Debug)]
pub struct Cri {
    /// RuntimeService: sandboxes, containers, exec, status.
    pub runtime: RuntimeServiceClient<Channel>,
    /// ImageService: pull, status, list, remove.
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the runtime listening on the unix socket `path`.
    pub async fn connect(path: &Path) -> Result<Self, Error> {
        let socket = path.to_path_buf();
        // The URI is required by tonic but unused: every connection goes to the socket.
        let channel = Endpoint::from_static("http://[::1]:0")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|source| Error::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// Connects and waits (at most 30 s) until the runtime answers: containerd's socket
    /// opens before its CRI plugin is initialized.
    pub async fn connect_ready(path: &Path) -> Result<Self, Error> {
        let cri = Self::connect(path).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match cri.sandboxes().await {
                Ok(_) => return Ok(cri),
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The runtime's name and version, e.g. ("containerd", "1.6.20~ds1").
    pub async fn version(&self) -> Result<(String, String), Error> {
        let v = self
            .runtime
            .clone()
            .version(api::VersionRequest::default())
            .await
            .map_err(call("Version"))?
            .into_inner();
        Ok((v.runtime_name, v.runtime_version))
    }

    /// The runtime's conditions (RuntimeReady, NetworkReady) as (type, ready, message).
    pub async fn conditions(&self) -> Result<Vec<(String, bool, String)>, Error> {
        let s = self
            .runtime
            .clone()
            .status(api::StatusRequest { verbose: false })
            .await
            .map_err(call("Status"))?
            .into_inner();
        Ok(s.status
            .map(|s| {
                s.conditions
                    .into_iter()
                    .map(|c| (c.r#type, c.status, format!("{}: {}", c.reason, c.message)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every sandbox the runtime knows.
    pub async fn sandboxes(&self) -> Result<Vec<api::PodSandbox>, Error> {
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(api::ListPodSandboxRequest::default())
            .await
            .map_err(call("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    /// Every container the runtime knows.
    pub async fn containers(&self) -> Result<Vec<api::Container>, Error> {
        Ok(self
            .runtime
            .clone()
            .list_containers(api::ListContainersRequest::default())
            .await
            .map_err(call("ListContainers"))?
            .into_inner()
            .containers)
    }

    /// The full status of one container.
    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, Error> {
        self.runtime
            .clone()
            .container_status(api::ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await
            .map_err(call("ContainerStatus"))?
            .into_inner()
            .status
            .ok_or(Error::Call {
                call: "ContainerStatus",
                status: tonic::Status::not_found("no status in the answer"),
            })
    }

    /// The status of one sandbox.
    pub async fn sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus, Error> {
        self.runtime
            .clone()
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_owned(),
                verbose: false,
            })
            .await
            .map_err(call("PodSandboxStatus"))?
            .into_inner()
            .status
            .ok_or(Error::Call {
                call: "PodSandboxStatus",
                status: tonic::Status::not_found("no status in the answer"),
            })
    }

    /// Stops a container, giving it `timeout` seconds after SIGTERM before SIGKILL. A
    /// container already gone is not an error.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Error> {
        let r = self
            .runtime
            .clone()
            .stop_container(api::StopContainerRequest {
                container_id: id.to_owned(),
                timeout,
            })
            .await;
        ignore_not_found(r.map(drop).map_err(call("StopContainer")))
    }

    /// Removes a container (stopping it first if needed). A container already gone is not an
    /// error.
    pub async fn remove_container(&self, id: &str) -> Result<(), Error> {
        let r = self
            .runtime
            .clone()
            .remove_container(api::RemoveContainerRequest {
                container_id: id.to_owned(),
            })
            .await;
        ignore_not_found(r.map(drop).map_err(call("RemoveContainer")))
    }

    /// Has the runtime reopen a container's log file (after the kubelet renamed it).
    pub async fn reopen_log(&self, id: &str) -> Result<(), Error> {
        self.runtime
            .clone()
            .reopen_container_log(api::ReopenContainerLogRequest {
                container_id: id.to_owned(),
            })
            .await
            .map(drop)
            .map_err(call("ReopenContainerLog"))
    }

    /// Stops a sandbox (its containers and network). Already gone is not an error.
    pub async fn stop_sandbox(&self, id: &str) -> Result<(), Error> {
        let r = self
            .runtime
            .clone()
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.to_owned(),
            })
            .await;
        ignore_not_found(r.map(drop).map_err(call("StopPodSandbox")))
    }

    /// Removes a sandbox and whatever is left in it. Already gone is not an error.
    pub async fn remove_sandbox(&self, id: &str) -> Result<(), Error> {
        let r = self
            .runtime
            .clone()
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: id.to_owned(),
            })
            .await;
        ignore_not_found(r.map(drop).map_err(call("RemovePodSandbox")))
    }

    /// The image's id if the runtime has `image` (a reference as written in a pod).
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, Error> {
        let s = self
            .images
            .clone()
            .image_status(api::ImageStatusRequest {
                image: Some(image_spec(image)),
                verbose: false,
            })
            .await
            .map_err(call("ImageStatus"))?
            .into_inner();
        Ok(s.image.map(|i| i.id).filter(|id| !id.is_empty()))
    }

    /// Pulls `image` with optional registry credentials; returns its reference (an id).
    pub async fn pull(&self, image: &str, auth: Option<api::AuthConfig>) -> Result<String, Error> {
        Ok(self
            .images
            .clone()
            .pull_image(api::PullImageRequest {
                image: Some(image_spec(image)),
                auth,
                sandbox_config: None,
            })
            .await
            .map_err(call("PullImage"))?
            .into_inner()
            .image_ref)
    }

    /// Every image: (repo tags and digests, size in bytes).
    pub async fn list_images(&self) -> Result<Vec<api::Image>, Error> {
        Ok(self
            .images
            .clone()
            .list_images(api::ListImagesRequest::default())
            .await
            .map_err(call("ListImages"))?
            .into_inner()
            .images)
    }
}

/// An image spec for a reference.
pub fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_owned(),
        ..api::ImageSpec::default()
    }
}

fn ignore_not_found(r: Result<(), Error>) -> Result<(), Error> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
