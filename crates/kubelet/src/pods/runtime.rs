//! What the runtime holds for one pod: its sandboxes (every incarnation of that namespace and
//! name, whatever the uid) and container instances with their full status, found by the
//! labels the kubelet puts on them.

use std::collections::HashMap;

use super::config::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};
use crate::cri::{self, api, Cri};

/// One container instance.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The runtime's id.
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// The container's name in the pod.
    pub name: String,
    /// Its attempt (the restart count when it was made).
    pub attempt: u32,
    /// The pod uid it belongs to.
    pub uid: String,
    /// Its full status.
    pub status: api::ContainerStatus,
}

impl Instance {
    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.status.state == api::ContainerState::ContainerRunning as i32
    }

    /// Whether it has exited.
    pub fn exited(&self) -> bool {
        self.status.state == api::ContainerState::ContainerExited as i32
    }
}

/// A pod's sandboxes and containers.
#[derive(Clone, Debug, Default)]
pub struct PodRuntime {
    /// Sandboxes, oldest first.
    pub sandboxes: Vec<api::PodSandbox>,
    /// Container instances.
    pub instances: Vec<Instance>,
}

impl PodRuntime {
    /// Lists what belongs to namespace/name.
    pub async fn list(cri: &Cri, namespace: &str, name: &str) -> Result<Self, cri::Error> {
        let labels: HashMap<String, String> = HashMap::from([
            (POD_NAMESPACE.to_owned(), namespace.to_owned()),
            (POD_NAME.to_owned(), name.to_owned()),
        ]);
        let mut sandboxes = cri
            .runtime
            .clone()
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(api::PodSandboxFilter {
                    label_selector: labels.clone(),
                    ..Default::default()
                }),
            })
            .await
            .map_err(cri::call("ListPodSandbox"))?
            .into_inner()
            .items;
        sandboxes.sort_by_key(|s| s.created_at);
        let containers = cri
            .runtime
            .clone()
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    label_selector: labels,
                    ..Default::default()
                }),
            })
            .await
            .map_err(cri::call("ListContainers"))?
            .into_inner()
            .containers;
        let mut instances = Vec::with_capacity(containers.len());
        for c in containers {
            let status = match cri.container_status(&c.id).await {
                Ok(s) => s,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            instances.push(Instance {
                name: c.labels.get(CONTAINER_NAME).cloned().unwrap_or_default(),
                uid: c.labels.get(POD_UID).cloned().unwrap_or_default(),
                attempt: c.metadata.as_ref().map_or(0, |m| m.attempt),
                id: c.id,
                sandbox_id: c.pod_sandbox_id,
                status,
            });
        }
        Ok(Self {
            sandboxes,
            instances,
        })
    }

    /// The uid a sandbox belongs to.
    pub fn uid_of(s: &api::PodSandbox) -> &str {
        s.metadata.as_ref().map_or("", |m| m.uid.as_str())
    }

    /// The newest ready sandbox of `uid`.
    pub fn ready_sandbox(&self, uid: &str) -> Option<&api::PodSandbox> {
        self.sandboxes.iter().rev().find(|s| {
            Self::uid_of(s) == uid && s.state == api::PodSandboxState::SandboxReady as i32
        })
    }

    /// The instances of `uid`.
    pub fn of_uid(&self, uid: &str) -> Vec<Instance> {
        self.instances
            .iter()
            .filter(|i| i.uid == uid)
            .cloned()
            .collect()
    }
}
