//! Images for containers by their pull policy: `Never` needs the image present, `IfNotPresent`
//! pulls when missing, `Always` pulls; pull secrets of the pod give registry credentials.
//! Failures become `ErrImagePull`, then `ImagePullBackOff` while the back-off runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use tug_runtime::events::EventType;

use super::start::{waiting, Failure};
use super::{config, Kubelet, BACKOFF_MAX, BACKOFF_START};
use crate::cri::api;

/// The registry host of an image reference (docker.io when it names none).
pub fn registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => host,
        _ => "docker.io",
    }
}

/// Credentials for `image` from the pod's pull secrets (`kubernetes.io/dockerconfigjson`).
fn auth(k: &Kubelet, pod: &Pod, image: &str) -> Option<api::AuthConfig> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host = registry(image);
    for r in pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
    {
        let data = super::env::Sources {
            config_maps: &k.config_maps,
            secrets: &k.secrets,
        }
        .secret(ns, &r.name)?;
        let json = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))?;
        let v: serde_json::Value = serde_json::from_slice(json).ok()?;
        let auths = v.get("auths").unwrap_or(&v);
        let entry = auths.as_object()?.iter().find(|(k, _)| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            k.split('/').next() == Some(host)
                || (host == "docker.io" && k.starts_with("index.docker.io"))
        });
        if let Some((_, e)) = entry {
            let s = |f: &str| e.get(f).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            return Some(api::AuthConfig {
                username: s("username"),
                password: s("password"),
                auth: s("auth"),
                ..Default::default()
            });
        }
    }
    None
}

/// The image id container `c` runs, pulling it if its policy says so.
pub(crate) async fn ensure_image(
    k: &Arc<Kubelet>,
    pod: &Pod,
    c: &Container,
) -> Result<String, Failure> {
    let image = c.image.clone().unwrap_or_default();
    let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
        if image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':') {
            "Always".into()
        } else {
            "IfNotPresent".into()
        }
    });
    let present = k.cri.image_id(&image).await.ok().flatten();
    if policy == "Never" || (policy == "IfNotPresent" && present.is_some()) {
        return match present {
            Some(id) => {
                k.recorder.event(
                    pod,
                    EventType::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                Ok(id)
            }
            None => {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                k.recorder
                    .event(pod, EventType::Warning, "ErrImageNeverPull", msg.clone());
                Err(waiting("ErrImageNeverPull", msg, Duration::from_secs(10)))
            }
        };
    }
    let (_, _, uid) = config::ids(pod);
    let key = (uid.to_owned(), format!("image:{}", c.name));
    let now = Instant::now();
    if let Some((_, not_before)) = k.state().backoff.get(&key).copied() {
        if now < not_before {
            let msg = format!("Back-off pulling image \"{image}\"");
            return Err(waiting("ImagePullBackOff", msg, not_before - now));
        }
    }
    k.recorder.event(
        pod,
        EventType::Normal,
        "Pulling",
        format!("Pulling image \"{image}\""),
    );
    let started = Instant::now();
    match k.cri.pull(&image, auth(k, pod, &image)).await {
        Ok(id) => {
            k.state().backoff.remove(&key);
            k.recorder.event(
                pod,
                EventType::Normal,
                "Pulled",
                format!(
                    "Successfully pulled image \"{image}\" in {:.3}s",
                    started.elapsed().as_secs_f64()
                ),
            );
            Ok(id)
        }
        Err(e) => {
            let msg = match &e {
                crate::cri::Error::Call { status, .. } => status.message().to_owned(),
                other => other.to_string(),
            };
            k.recorder.event(
                pod,
                EventType::Warning,
                "Failed",
                format!("Failed to pull image \"{image}\": {msg}"),
            );
            let mut state = k.state();
            let delay = state
                .backoff
                .get(&key)
                .map_or(BACKOFF_START, |(d, _)| (*d * 2).min(BACKOFF_MAX));
            state.backoff.insert(key, (delay, Instant::now() + delay));
            Err(waiting("ErrImagePull", msg, delay))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_of_references() {
        assert_eq!(registry("busybox"), "docker.io");
        assert_eq!(registry("library/busybox:1"), "docker.io");
        assert_eq!(registry("ghcr.io/a/b:1"), "ghcr.io");
        assert_eq!(registry("localhost/tugboat/pause:1"), "localhost");
        assert_eq!(registry("reg:5000/x"), "reg:5000");
    }
}
