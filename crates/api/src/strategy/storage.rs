//! PersistentVolumes and PersistentVolumeClaims: access modes, capacity and requests, the
//! one volume source, classes and data sources (`ValidatePersistentVolume(Claim)(Spec)`), and
//! their update rules (a claim's spec is fixed but for its size and volume name).

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
};
use serde_json::Value;

use super::meta::{child, key, name_is_dns_subdomain, normalized};
use super::{forbidden, immutable, invalid, not_supported, required, too_long, Errs, FieldError};

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn validate_access_modes(modes: &[String], path: &str, errs: &mut Errs) {
    let (mut once_pod, mut other) = (false, false);
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(not_supported(path, m.as_str(), ACCESS_MODES));
        } else if m == "ReadWriteOncePod" {
            once_pod = true;
        } else {
            other = true;
        }
    }
    if once_pod && other {
        errs.push(forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// `ValidatePersistentVolumeClaimSpec`.
pub(crate) fn validate_claim_spec(spec: &PersistentVolumeClaimSpec, path: &str, errs: &mut Errs) {
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes.is_empty() {
        errs.push(required(
            child(path, "accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if let Some(s) = &spec.selector {
        super::meta::validate_label_selector(s, &child(path, "selector"), errs);
    }
    validate_access_modes(&modes, &child(path, "accessModes"), errs);
    let storage_path = key(&child(path, "resources"), "storage");
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => errs.push(required(storage_path, "")),
        Some(q) => match super::meta::parse_quantity(&q.0) {
            Err(msg) => errs.push(invalid(storage_path, q.0.as_str(), msg)),
            Ok(v) if v.nano <= 0 => errs.push(invalid(
                storage_path,
                super::meta::quantity_string(&q.0),
                "must be greater than zero",
            )),
            Ok(_) => {}
        },
    }
    for (field, class) in [
        ("storageClassName", &spec.storage_class_name),
        (
            "volumeAttributesClassName",
            &spec.volume_attributes_class_name,
        ),
    ] {
        if let Some(c) = class.as_deref().filter(|c| !c.is_empty()) {
            for msg in name_is_dns_subdomain(c, false) {
                errs.push(invalid(child(path, field), c, &msg));
            }
        }
    }
    if let Some(mode) = spec
        .volume_mode
        .as_deref()
        .filter(|m| !matches!(*m, "Block" | "Filesystem"))
    {
        errs.push(not_supported(
            child(path, "volumeMode"),
            mode,
            &["Block", "Filesystem"],
        ));
    }
    let refs = [
        (
            "dataSource",
            spec.data_source
                .as_ref()
                .map(|d| (&d.name, &d.kind, &d.api_group)),
        ),
        (
            "dataSourceRef",
            spec.data_source_ref
                .as_ref()
                .map(|d| (&d.name, &d.kind, &d.api_group)),
        ),
    ];
    for (field, r) in refs {
        let Some((name, kind, group)) = r else {
            continue;
        };
        let p = child(path, field);
        if name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        }
        if kind.is_empty() {
            errs.push(required(child(&p, "kind"), ""));
        }
        let group = group.as_deref().unwrap_or("");
        if group.is_empty() && kind != "PersistentVolumeClaim" {
            errs.push(invalid(
                p.as_str(),
                kind.as_str(),
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            ));
        }
    }
}

pub(crate) fn validate_claim(
    pvc: &PersistentVolumeClaim,
    old: Option<&PersistentVolumeClaim>,
) -> Errs {
    let mut errs = Vec::new();
    let spec = pvc.spec.clone().unwrap_or_default();
    validate_claim_spec(&spec, "spec", &mut errs);
    let Some(old) = old else { return errs };
    let old_spec = old.spec.clone().unwrap_or_default();
    let mut new_clone = spec.clone();
    let mut old_clone = old_spec.clone();
    if old_spec.volume_name.as_deref().unwrap_or("").is_empty() {
        old_clone.volume_name.clone_from(&new_clone.volume_name);
    }
    if old_spec.storage_class_name.is_none() && spec.storage_class_name.is_some() {
        old_clone
            .storage_class_name
            .clone_from(&spec.storage_class_name);
    }
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if bound {
        let storage = |s: &PersistentVolumeClaimSpec| {
            s.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .cloned()
        };
        if let (Some(req), Some(old_storage)) = (
            new_clone
                .resources
                .as_mut()
                .and_then(|r| r.requests.as_mut()),
            storage(&old_spec),
        ) {
            req.insert("storage".to_owned(), old_storage);
        }
        new_clone
            .volume_attributes_class_name
            .clone_from(&old_clone.volume_attributes_class_name);
    }
    let a = normalized(serde_json::to_value(&new_clone).unwrap_or(Value::Null));
    let b = normalized(serde_json::to_value(&old_clone).unwrap_or(Value::Null));
    if a != b {
        errs.push(forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
    }
    let nano = |s: &PersistentVolumeClaimSpec| {
        s.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| super::meta::parse_quantity(&q.0).ok())
            .map_or(0, |q| q.nano)
    };
    let capacity = old
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| super::meta::parse_quantity(&q.0).ok())
        .map_or(0, |q| q.nano);
    if nano(&spec) < nano(&old_spec) && nano(&spec) <= capacity {
        errs.push(forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
    errs.extend(immutable(
        &spec.volume_mode,
        &old_spec.volume_mode,
        "volumeMode",
    ));
    errs
}

/// `ValidateCSIDriverName`.
pub(crate) fn validate_csi_driver_name(name: &str, path: &str, errs: &mut Errs) {
    if name.is_empty() {
        errs.push(required(path, ""));
    }
    if name.len() > 63 {
        errs.push(too_long(path, 63));
    }
    for msg in crate::validation::is_dns1123_subdomain(&name.to_lowercase()) {
        errs.push(invalid(path, name, &msg));
    }
}

pub(crate) fn validate_volume(pv: &PersistentVolume, old: Option<&PersistentVolume>) -> Errs {
    let mut errs = Vec::new();
    let spec = pv.spec.clone().unwrap_or_default();
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes.is_empty() {
        errs.push(required("spec.accessModes", ""));
    }
    validate_access_modes(&modes, "spec.accessModes", &mut errs);
    let capacity = spec.capacity.clone().unwrap_or_default();
    if capacity.is_empty() {
        errs.push(required("spec.capacity", ""));
    }
    if !capacity.contains_key("storage") || capacity.len() > 1 {
        errs.push(
            super::invalid_json("spec.capacity", &capacity, "").with_kind(
                super::ErrorType::NotSupported,
                "supported values: \"storage\"",
            ),
        );
    }
    for (k, q) in &capacity {
        match super::meta::parse_quantity(&q.0) {
            Err(msg) => errs.push(invalid(key("spec.capacity", k), q.0.as_str(), msg)),
            Ok(v) if v.nano <= 0 => errs.push(invalid(
                key("spec.capacity", k),
                super::meta::quantity_string(&q.0),
                "must be greater than zero",
            )),
            Ok(_) => {}
        }
    }
    if let Some(p) = spec
        .persistent_volume_reclaim_policy
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if !matches!(p, "Delete" | "Recycle" | "Retain") {
            errs.push(not_supported(
                "spec.persistentVolumeReclaimPolicy",
                p,
                &["Delete", "Recycle", "Retain"],
            ));
        }
    }
    let raw = serde_json::to_value(&spec).unwrap_or(Value::Null);
    let sources = [
        "hostPath",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "glusterfs",
        "flocker",
        "nfs",
        "rbd",
        "quobyte",
        "cephfs",
        "iscsi",
        "cinder",
        "fc",
        "flexVolume",
        "azureFile",
        "vsphereVolume",
        "photonPersistentDisk",
        "portworxVolume",
        "azureDisk",
        "scaleIO",
        "local",
        "storageos",
        "csi",
    ];
    let set: Vec<&str> = sources
        .into_iter()
        .filter(|s| raw.get(s).is_some_and(|v| !v.is_null()))
        .collect();
    for extra in set.iter().skip(1) {
        errs.push(forbidden(
            format!("spec.{extra}"),
            "may not specify more than 1 volume type",
        ));
    }
    if set.is_empty() {
        errs.push(required("spec", "must specify a volume type"));
    }
    if let Some(h) = &spec.host_path {
        if h.path.is_empty() {
            errs.push(required("spec.hostPath.path", ""));
        }
    }
    if let Some(l) = &spec.local {
        if l.path.is_empty() {
            errs.push(required("spec.local.path", ""));
        }
    }
    if let Some(c) = &spec.csi {
        validate_csi_driver_name(&c.driver, "spec.csi.driver", &mut errs);
        if c.volume_handle.is_empty() {
            errs.push(required("spec.csi.volumeHandle", ""));
        }
    }
    if let Some(c) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        for msg in name_is_dns_subdomain(c, false) {
            errs.push(invalid("spec.storageClassName", c, &msg));
        }
    }
    if let Some(mode) = spec
        .volume_mode
        .as_deref()
        .filter(|m| !matches!(*m, "Block" | "Filesystem"))
    {
        errs.push(not_supported(
            "spec.volumeMode",
            mode,
            &["Block", "Filesystem"],
        ));
    }
    if let Some(old) = old {
        let old_spec = old.spec.clone().unwrap_or_default();
        let old_raw = serde_json::to_value(&old_spec).unwrap_or(Value::Null);
        let source = |v: &Value| {
            normalized(Value::Object(
                sources
                    .iter()
                    .filter_map(|s| v.get(s).map(|x| ((*s).to_owned(), x.clone())))
                    .collect(),
            ))
        };
        if source(&raw) != source(&old_raw) {
            errs.push(forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        errs.extend(immutable(
            &spec.volume_mode,
            &old_spec.volume_mode,
            "volumeMode",
        ));
    }
    errs
}

impl FieldError {
    /// The same error as another kind with another detail.
    fn with_kind(mut self, kind: super::ErrorType, detail: &str) -> FieldError {
        self.kind = kind;
        detail.clone_into(&mut self.detail);
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::strategy::{default_object, validate, FieldError};

    #[test]
    fn claims_and_volumes() {
        let mut pvc = json!({"metadata": {"name": "data", "namespace": "d"}, "spec": {"resources": {"requests": {"storage": "1.5Gi"}}}});
        default_object("", "persistentvolumeclaims", &mut pvc);
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1536Mi");
        assert_eq!(pvc["status"]["phase"], "Pending");
        let msgs: Vec<String> = validate("", "persistentvolumeclaims", &pvc, None)
            .iter()
            .map(FieldError::message)
            .collect();
        assert_eq!(
            msgs,
            ["spec.accessModes: Required value: at least 1 access mode is required"]
        );
        let mut pv = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}});
        default_object("", "persistentvolumes", &mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert!(validate("", "persistentvolumes", &pv, None).is_empty());
    }
}
