//! The ServiceAccount admission plugin, as upstream's: a pod created without
//! `serviceAccountName` runs as `default`; the account must exist (the namespace's `default`
//! is waited for up to 10 s, since the serviceaccount controller makes it just after the
//! namespace); unless `automountServiceAccountToken` says no (pod first, then account),
//! every container and init container mounts a `kube-api-access-<random>` projected volume
//! at `/var/run/secrets/kubernetes.io/serviceaccount` — a bound token the kubelet requests
//! (3607 s, which the API server extends), the `kube-root-ca.crt` ConfigMap's `ca.crt` and
//! the namespace; a pod without image pull secrets gets the account's. Mirror pods are left
//! alone.

use std::time::Duration;

use serde_json::{json, Value};

use super::object;
use super::path::Target;
use super::Registry;
use crate::status::ApiError;

/// The account a pod without one runs as.
const DEFAULT_ACCOUNT: &str = "default";
/// Where containers find the token, CA and namespace.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume name's prefix.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// How long a pod waits for its namespace's default account, as upstream's retries.
const DEFAULT_ACCOUNT_WAIT: Duration = Duration::from_secs(10);
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Runs the plugin on a pod about to be created.
pub async fn admit(reg: &Registry, t: &Target, pod: &mut Value) -> Result<(), ApiError> {
    if pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_string() {
        return Ok(());
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let Some(spec) = pod["spec"].as_object_mut() else {
        return Ok(());
    };
    let name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => DEFAULT_ACCOUNT.to_owned(),
    };
    spec.insert("serviceAccountName".to_owned(), json!(name));
    spec.insert("serviceAccount".to_owned(), json!(name));
    let Some(account) = find(reg, &ns, &name).await? else {
        return Err(ApiError::forbidden(
            t.status_target(),
            format!(
                "pods {:?} is forbidden: error looking up service account {ns}/{name}: serviceaccount {name:?} not found",
                object::name(pod)
            ),
        ));
    };
    let automount = pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or(account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if automount {
        mount_token(pod);
    }
    let pull = &mut pod["spec"]["imagePullSecrets"];
    let none = pull.as_array().is_none_or(Vec::is_empty);
    if let (true, Some(secrets)) = (none, account["imagePullSecrets"].as_array()) {
        if !secrets.is_empty() {
            *pull = Value::Array(secrets.clone());
        }
    }
    Ok(())
}

/// The service account, from the watch cache; the namespace's default one is waited for.
async fn find(reg: &Registry, ns: &str, name: &str) -> Result<Option<Value>, ApiError> {
    let Some(info) = tug_api::find("", "v1", "serviceaccounts") else {
        return Ok(None);
    };
    let key = object::relative_key(Some(ns), name);
    let found = reg.cache.get_current(info, &key, |_| true).await?;
    if found.is_some() || name != DEFAULT_ACCOUNT {
        return Ok(found.map(|sa| sa.value().clone()));
    }
    let cache = reg.cache.resource(info);
    let Ok(mut sub) = cache.subscribe(0, Some(ns), reg.cache.revision()) else {
        return Ok(None);
    };
    let named = |v: &Value| v["metadata"]["name"].as_str() == Some(name);
    if let Some(sa) = sub.initial.iter().find(|c| named(c.value())) {
        return Ok(Some(sa.value().clone()));
    }
    let wait = async {
        loop {
            match sub.live.recv().await {
                Ok(e) if e.kind != super::cache::EventType::Deleted && named(e.object.value()) => {
                    return Some(e.object.value().clone());
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(sa) = cache.get(&key) {
                        return Some(sa.value().clone());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    };
    Ok(tokio::time::timeout(DEFAULT_ACCOUNT_WAIT, wait)
        .await
        .ok()
        .flatten())
}

/// The projected volume upstream's plugin adds.
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ],
            "defaultMode": 420
        }
    })
}

/// Mounts the token volume in every container and init container that has nothing at
/// [`MOUNT_PATH`] yet, adding the volume if one of them needs it.
fn mount_token(pod: &mut Value) {
    let Some(spec) = pod["spec"].as_object_mut() else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v["name"].as_str())
                .find(|n| n.starts_with(VOLUME_PREFIX))
                .map(str::to_owned)
        });
    let volume = existing
        .clone()
        .unwrap_or_else(|| tug_api::meta::generate_name(VOLUME_PREFIX));
    let mount = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let mounts = c
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            let Some(mounts) = mounts.and_then(Value::as_array_mut) else {
                continue;
            };
            if !mounts
                .iter()
                .any(|m| m["mountPath"].as_str() == Some(MOUNT_PATH))
            {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if needed && existing.is_none() {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(vs) = volumes.as_array_mut() {
            vs.push(token_volume(&volume));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_mounts_one_token_volume() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}
            ]
        }});
        mount_token(&mut pod);
        let volumes = pod["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(volumes.len(), 1);
        let name = volumes[0]["name"].as_str().unwrap_or_default().to_owned();
        assert!(name.starts_with(VOLUME_PREFIX) && name.len() == VOLUME_PREFIX.len() + 5);
        assert_eq!(
            volumes[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        for c in ["initContainers", "containers"] {
            assert_eq!(pod["spec"][c][0]["volumeMounts"][0]["name"], name.as_str());
            assert_eq!(pod["spec"][c][0]["volumeMounts"][0]["readOnly"], true);
        }
        // The container with its own mount there keeps it alone.
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        // Again (an update of the pod, say): nothing doubles.
        mount_token(&mut pod);
        assert_eq!(pod["spec"]["volumes"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}
