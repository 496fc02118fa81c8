//! Making and starting one container of a pod: its image (pull policy), environment,
//! termination-message file and CRI config (an ephemeral container maybe in a target's
//! process namespace), create, start, and the postStart hook. What keeps it from starting
//! is a [`Failure`]: a waiting reason with a retry delay, or an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use tug_runtime::events::EventType;

use super::config::{self, ContainerInputs};
use super::env::{container_env, Sources};
use super::hooks;
use super::sync::{key_of, Error};
use super::volumes::{self, HostVolume};
use super::Kubelet;
use crate::cri::{self, api};

pub(crate) enum Failure {
    /// The container waits with this reason and message, retried after the delay.
    Waiting(String, String, Option<Duration>),
    /// Something else went wrong.
    Other(Error),
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_container(
    k: &Arc<Kubelet>,
    pod: &Pod,
    c: &Container,
    attempt: u32,
    sandbox_id: &str,
    sandbox_config: &api::PodSandboxConfig,
    vols: &BTreeMap<String, HostVolume>,
    pod_ips: &[String],
    hosts: Option<&std::path::Path>,
    target: Option<&str>,
) -> Result<(), Failure> {
    let (_, _, uid) = config::ids(pod);
    let image = super::pull::ensure_image(k, pod, c).await?;
    let sources = Sources {
        config_maps: &k.config_maps,
        secrets: &k.secrets,
    };
    let env = match container_env(pod, c, &sources, &k.node_ip, pod_ips, &k.allocatable) {
        Ok(e) => e,
        Err(e) => {
            k.recorder
                .event(pod, EventType::Warning, "Failed", format!("Error: {e}"));
            return Err(Failure::Waiting(
                "CreateContainerConfigError".into(),
                e.0,
                Some(Duration::from_secs(2)),
            ));
        }
    };
    let term_dir = volumes::pod_dir(&k.dirs.pods, uid)
        .join("containers")
        .join(&c.name);
    let term_file = term_dir.join(attempt.to_string());
    let made = std::fs::create_dir_all(&term_dir).and_then(|()| std::fs::write(&term_file, b""));
    if let Err(e) = made {
        return Err(Failure::Other(e.into()));
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&term_file, std::fs::Permissions::from_mode(0o666));
    let mut cfg = config::container(
        pod,
        c,
        ContainerInputs {
            image,
            env,
            volumes: vols,
            hosts_file: hosts,
            termination_file: &term_file,
            attempt,
            node_memory: k.node_memory(),
        },
    );
    if let Some(id) = target {
        super::ephemeral::join(&mut cfg, id);
    }
    let t = Instant::now();
    let created = k
        .cri
        .runtime
        .clone()
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_owned(),
            config: Some(cfg),
            sandbox_config: Some(sandbox_config.clone()),
        })
        .await
        .map_err(cri::call("CreateContainer"));
    let id = match created {
        Ok(r) => r.into_inner().container_id,
        Err(e) => {
            k.recorder
                .event(pod, EventType::Warning, "Failed", format!("Error: {e}"));
            return Err(Failure::Waiting(
                "CreateContainerError".into(),
                e.to_string(),
                Some(Duration::from_secs(5)),
            ));
        }
    };
    k.recorder.event(
        pod,
        EventType::Normal,
        "Created",
        format!("Created container: {}", c.name),
    );
    let created_ms = t.elapsed().as_millis();
    let started = k
        .cri
        .runtime
        .clone()
        .start_container(api::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .map_err(cri::call("StartContainer"));
    if let Err(e) = started {
        k.recorder
            .event(pod, EventType::Warning, "Failed", format!("Error: {e}"));
        return Err(Failure::Other(e.into()));
    }
    tracing::debug!(
        pod = %key_of(pod),
        container = %c.name,
        created_ms,
        started_ms = t.elapsed().as_millis() - created_ms,
        "container started"
    );
    k.recorder.event(
        pod,
        EventType::Normal,
        "Started",
        format!("Started container {}", c.name),
    );
    if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
        let ip = pod_ips.first().map_or("", String::as_str);
        if let Err(msg) = hooks::run(k, c, &id, ip, hook, None).await {
            k.recorder
                .event(pod, EventType::Warning, "FailedPostStartHook", msg);
            let _ = k.cri.stop_container(&id, 0).await;
        }
    }
    Ok(())
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

pub(crate) fn waiting(reason: &str, message: String, delay: Duration) -> Failure {
    Failure::Waiting(reason.to_owned(), message, Some(delay))
}
