//! A container's environment as upstream's kubelet builds it: `envFrom` sources first (with
//! their prefix), then `env` in order, each value able to use `$(VAR)` references to the
//! variables before it; values from the pod's fields, the container's resources, ConfigMaps
//! and Secrets. A missing source that is not optional is a `CreateContainerConfigError`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectFieldSelector, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tug_runtime::Store;

/// Why a container's config cannot be made (the waiting message of
/// `CreateContainerConfigError`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The kind of object a reference names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl Kind {
    /// Upstream's message for a missing object of this kind.
    pub fn not_found(self, name: &str) -> String {
        format!("{} \"{name}\" not found", self.lower())
    }

    /// The kind's name in lower case, as upstream's messages write it.
    pub fn lower(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
}

/// Where ConfigMaps and Secrets are read from.
pub struct Sources<'a> {
    /// ConfigMaps.
    pub config_maps: &'a Store<ConfigMap>,
    /// Secrets.
    pub secrets: &'a Store<Secret>,
}

impl Sources<'_> {
    /// The data of a ConfigMap (binary data as lossy text), None when it does not exist.
    pub fn config_map(&self, ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let cm = self.config_maps.get_in(ns, name)?;
        let mut out: BTreeMap<String, Vec<u8>> = cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        for (k, v) in cm.binary_data.iter().flatten() {
            out.insert(k.clone(), v.0.clone());
        }
        Some(out)
    }

    /// The data of a ConfigMap or Secret, None when it does not exist.
    pub fn data(&self, kind: Kind, ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        match kind {
            Kind::ConfigMap => self.config_map(ns, name),
            Kind::Secret => self.secret(ns, name),
        }
    }

    /// One key's value as text; None when the reference is optional and the object or key
    /// is missing.
    pub fn key(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<String>, ConfigError> {
        let value = match self.data(kind, ns, name) {
            None if optional => return Ok(None),
            None => return Err(ConfigError(kind.not_found(name))),
            Some(d) => d.get(key).map(|v| String::from_utf8_lossy(v).into_owned()),
        };
        match value {
            None if optional => Ok(None),
            None => Err(ConfigError(format!(
                "couldn't find key {key} in {} {ns}/{name}",
                kind.title()
            ))),
            some => Ok(some),
        }
    }

    /// The data of a Secret, None when it does not exist.
    pub fn secret(&self, ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let s = self.secrets.get_in(ns, name)?;
        let mut out: BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in s.string_data.iter().flatten() {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        Some(out)
    }
}

/// Expands `$(NAME)` references to variables in `vars`; `$$` escapes a `$`; unknown
/// references stay as written (upstream's `expansion` package rules).
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a downward-API field of the pod.
pub fn field_value(
    pod: &Pod,
    sel: &ObjectFieldSelector,
    host_ip: &str,
    pod_ips: &[String],
) -> Result<String, ConfigError> {
    let path = sel.field_path.as_str();
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let key_of = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('['))
            .and_then(|r| r.strip_suffix(']'))
            .map(|r| r.trim_matches(|c| c == '\'' || c == '"').to_owned())
    };
    let map_text = |m: &Option<BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => map_text(&meta.labels),
        "metadata.annotations" => map_text(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_owned(),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => {
            if let Some(k) = key_of("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = key_of("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(ConfigError(format!("unsupported fieldPath: {path}")));
            }
        }
    })
}

/// The value of a resourceFieldRef: the container's request or limit (a limit left out is
/// the node's allocatable), in units of `divisor`, rounded up as upstream does.
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, ConfigError> {
    let res = c.resources.clone().unwrap_or_default();
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported container resource: {resource}")))?;
    let value = match kind {
        "limits" => res
            .limits
            .as_ref()
            .and_then(|l| l.get(name))
            .or_else(|| node_allocatable.get(name)),
        "requests" => res.requests.as_ref().and_then(|l| l.get(name)),
        _ => {
            return Err(ConfigError(format!(
                "unsupported container resource: {resource}"
            )))
        }
    };
    let v = value.and_then(tug_hollow::status::quantity).unwrap_or(0.0);
    let d = divisor
        .and_then(tug_hollow::status::quantity)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    Ok(format!("{}", (v / d).ceil() as i64))
}

/// The container's environment, in order.
pub fn container_env(
    pod: &Pod,
    c: &Container,
    sources: &Sources<'_>,
    host_ip: &str,
    pod_ips: &[String],
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = env.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional) = if let Some(r) = &from.config_map_ref {
            (Kind::ConfigMap, &r.name, r.optional)
        } else if let Some(r) = &from.secret_ref {
            (Kind::Secret, &r.name, r.optional)
        } else {
            continue;
        };
        match sources.data(kind, ns, name) {
            Some(d) => {
                for (k, v) in d {
                    set(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if optional.unwrap_or(false) => {}
            None => return Err(ConfigError(kind.not_found(name))),
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            let key_ref = if let Some(r) = &from.config_map_key_ref {
                Some((Kind::ConfigMap, &r.name, &r.key, r.optional))
            } else {
                from.secret_key_ref
                    .as_ref()
                    .map(|r| (Kind::Secret, &r.name, &r.key, r.optional))
            };
            if let Some(f) = &from.field_ref {
                field_value(pod, f, host_ip, pod_ips)?
            } else if let Some(r) = &from.resource_field_ref {
                resource_value(c, &r.resource, r.divisor.as_ref(), node_allocatable)?
            } else if let Some((kind, name, key, optional)) = key_ref {
                match sources.key(kind, ns, name, key, optional.unwrap_or(false))? {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                String::new()
            }
        } else {
            expand(e.value.as_deref().unwrap_or(""), &|n: &str| {
                env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
            })
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: &str) -> Option<String> {
        match n {
            "A" => Some("1".into()),
            "B" => Some("two".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_upstream() {
        assert_eq!(expand("$(A)-$(B)", &vars), "1-two");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(C)", &vars), "$(C)");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("a$b", &vars), "a$b");
        assert_eq!(expand("$", &vars), "$");
        assert_eq!(expand("x$(A)y$$z", &vars), "x1y$z");
    }

    #[test]
    fn env_values_refer_to_earlier_ones() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "env": [
                {"name": "A", "value": "x"},
                {"name": "B", "value": "$(A)-y"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}
            ], "resources": {"limits": {"memory": "64Mi"}}}]}
        }))
        .unwrap_or_default();
        let c = pod
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let (cms, secrets) = (Store::default(), Store::default());
        let src = Sources {
            config_maps: &cms,
            secrets: &secrets,
        };
        let env = container_env(
            &pod,
            &c,
            &src,
            "10.0.0.1",
            &["10.42.0.5".into()],
            &BTreeMap::new(),
        )
        .unwrap_or_default();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("B"), Some("x-y"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.42.0.5"));
        assert_eq!(get("MEM"), Some("64"));
    }

    #[test]
    fn missing_sources_are_config_errors() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}
            ]}]}
        }))
        .unwrap_or_default();
        let c = pod
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let (cms, secrets) = (Store::default(), Store::default());
        let src = Sources {
            config_maps: &cms,
            secrets: &secrets,
        };
        let err = container_env(&pod, &c, &src, "", &[], &BTreeMap::new()).err();
        assert_eq!(err, Some(ConfigError("configmap \"cfg\" not found".into())));
    }
}
