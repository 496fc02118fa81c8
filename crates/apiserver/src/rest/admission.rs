//! Admission on create, for the plugins upstream enables by default that change what is
//! stored, in upstream's order: ServiceAccount ([`super::service_account`]), Priority (a pod's `priorityClassName` becomes `spec.priority` and
//! `spec.preemptionPolicy`; the global default class applies when none is named) and
//! DefaultTolerationSeconds (pods tolerate `node.kubernetes.io/not-ready` and `unreachable`
//! NoExecute taints for 300 s unless they say otherwise). Each can be turned off by name
//! (`--disable-admission-plugins`).

use serde_json::{json, Value};

use super::object;
use super::path::Target;
use super::Registry;
use crate::status::ApiError;

/// How long pods tolerate a not-ready or unreachable node by default, as upstream's
/// `--default-not-ready-toleration-seconds` / `--default-unreachable-toleration-seconds`.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The taints DefaultTolerationSeconds covers.
const NODE_TAINTS: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// The plugins, by upstream's names.
pub const PLUGINS: &[&str] = &["ServiceAccount", "Priority", "DefaultTolerationSeconds"];

/// Runs the mutating admission plugins on an object about to be created.
pub async fn admit_create(reg: &Registry, t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    if !(t.info.group.is_empty() && t.info.plural == "pods") {
        return Ok(());
    }
    let on = |name: &str| !reg.disabled_admission_plugins.iter().any(|d| d == name);
    if on("ServiceAccount") {
        super::service_account::admit(reg, t, obj).await?;
    }
    if on("Priority") {
        priority(reg, t, obj).await?;
    }
    if on("DefaultTolerationSeconds") {
        default_tolerations(obj);
    }
    Ok(())
}

/// The Priority plugin for a pod.
async fn priority(reg: &Registry, t: &Target, pod: &mut Value) -> Result<(), ApiError> {
    let named = pod["spec"]["priorityClassName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let class = match &named {
        Some(name) => match named_class(reg, name).await? {
            Some(c) => Some(c),
            None => {
                return Err(ApiError::forbidden(
                    t.status_target(),
                    format!(
                        "pods {:?} is forbidden: no PriorityClass with name {name} was found",
                        object::name(pod)
                    ),
                ))
            }
        },
        None => default_class(reg),
    };
    let value = class
        .as_ref()
        .map_or(0, |c| c["value"].as_i64().unwrap_or(0));
    let policy = class
        .as_ref()
        .and_then(|c| c["preemptionPolicy"].as_str())
        .unwrap_or("PreemptLowerPriority")
        .to_owned();
    if let Some(sent) = pod["spec"]["preemptionPolicy"].as_str() {
        if sent != policy {
            return Err(ApiError::forbidden(
                t.status_target(),
                format!(
                    "pods {:?} is forbidden: the string value of PreemptionPolicy ({sent}) must \
                     not be provided in pod spec; priority admission controller computed \
                     {policy} from the given PriorityClass name",
                    object::name(pod)
                ),
            ));
        }
    }
    if let Some(sent) = pod["spec"]["priority"].as_i64() {
        if sent != value {
            return Err(ApiError::forbidden(
                t.status_target(),
                format!(
                    "pods {:?} is forbidden: the integer value of priority ({sent}) must not be \
                     provided in pod spec; priority admission controller computed {value} from \
                     the given PriorityClass name",
                    object::name(pod)
                ),
            ));
        }
    }
    let Some(spec) = pod["spec"].as_object_mut() else {
        return Ok(());
    };
    spec.insert("priority".into(), json!(value));
    if let (None, Some(c)) = (&named, &class) {
        spec.insert("priorityClassName".into(), json!(object::name(c)));
    }
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

fn class_info() -> Option<&'static tug_api::ResourceInfo> {
    tug_api::find("scheduling.k8s.io", "v1", "priorityclasses")
}

fn classes(reg: &Registry) -> Option<std::sync::Arc<super::cache::ResourceCache>> {
    class_info().map(|info| reg.cache.resource(info))
}

/// A PriorityClass by name from the watch cache (waiting for it to be fresh only on a miss,
/// as the namespace check does).
async fn named_class(reg: &Registry, name: &str) -> Result<Option<Value>, ApiError> {
    let Some(info) = class_info() else {
        return Ok(None);
    };
    let class = reg.cache.get_current(info, name, |_| true).await?;
    Ok(class.map(|c| c.value().clone()))
}

/// The global default PriorityClass (the highest value if several claim it, as upstream),
/// from the cache as it is: upstream reads a lister too.
fn default_class(reg: &Registry) -> Option<Value> {
    let cache = classes(reg)?;
    let snap = cache.snapshot(None, reg.cache.revision());
    snap.items
        .iter()
        .filter(|c| c.value()["globalDefault"].as_bool() == Some(true))
        .max_by_key(|c| c.value()["value"].as_i64().unwrap_or(0))
        .map(|c| c.value().clone())
}

/// The DefaultTolerationSeconds plugin for a pod.
fn default_tolerations(pod: &mut Value) {
    let Some(spec) = pod["spec"].as_object_mut() else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in NODE_TAINTS {
        let covered = list.iter().any(|t| {
            let effect = t["effect"].as_str().unwrap_or("");
            let key_ok = match t["key"].as_str().unwrap_or("") {
                "" => t["operator"].as_str() == Some("Exists"),
                k => k == *key,
            };
            key_ok && (effect.is_empty() || effect == "NoExecute")
        });
        if !covered {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tolerations_are_added_unless_present() {
        let mut pod = json!({"spec": {"containers": []}});
        default_tolerations(&mut pod);
        let t = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(t[1]["tolerationSeconds"], 300);

        let mut own = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        ]}});
        default_tolerations(&mut own);
        let t = own["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");

        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_tolerations(&mut all);
        assert_eq!(all["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
    }
}
