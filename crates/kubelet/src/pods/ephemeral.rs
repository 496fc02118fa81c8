//! Ephemeral containers (`kubectl debug`): each one in the pod's spec is started once, never
//! restarted, with no probes; one with `targetContainerName` joins that container's process
//! namespace (CRI `NamespaceMode::TARGET`), as upstream's kubelet does.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::runtime::Instance;
use crate::cri::api;

/// The ephemeral containers of `pod` as containers, with their targets.
pub fn of(pod: &Pod) -> Vec<(Container, Option<String>)> {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .filter_map(|e| {
            tug_api::strategy::as_container(e)
                .ok()
                .map(|c| (c, e.target_container_name.clone()))
        })
        .collect()
}

/// Those never started in this pod (no instance of the name, whatever its state).
pub fn to_start<'a>(
    all: &'a [(Container, Option<String>)],
    instances: &[Instance],
) -> Vec<&'a (Container, Option<String>)> {
    all.iter()
        .filter(|(c, _)| !instances.iter().any(|i| i.name == c.name))
        .collect()
}

/// The runtime id of the running container `target` of the pod.
pub fn target_id(target: Option<&str>, instances: &[Instance]) -> Option<String> {
    let name = target?;
    instances
        .iter()
        .rev()
        .find(|i| i.name == name && i.running())
        .map(|i| i.id.clone())
}

/// Puts the container of `cfg` in the process namespace of the container `id`.
pub fn join(cfg: &mut api::ContainerConfig, id: &str) {
    let options = cfg
        .linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options
        .get_or_insert_with(Default::default);
    options.pid = api::NamespaceMode::Target as i32;
    options.target_id = id.to_owned();
}
