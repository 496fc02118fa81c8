//! Pod volumes: their defaults (`SetDefaults_Volume` and the per-source defaulters: file
//! modes, host path type, token expiry, claim templates) and their validation
//! (`ValidateVolumes`: names, exactly one source, the common sources' required fields, paths).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Volume};
use serde_json::Value;

use super::containers::{VolumeFacts, Volumes};
use super::meta::{
    canonicalize_resources, child, each_obj, entry_obj, get_obj_mut, has_backsteps, index,
    is_unset, name_is_dns_subdomain, set_if_empty, set_if_unset, Obj,
};
use super::{forbidden, invalid, not_found, not_supported, required, Errs};
use crate::validation::is_dns1123_label;

/// The default file mode of secret, config map, downward API and projected volumes (0644).
const DEFAULT_MODE: i64 = 0o644;

/// Every volume source field of a `Volume`.
const SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

/// The defaults of one claim spec (a PVC's, a claim template's).
pub(crate) fn default_claim_spec(spec: &mut Obj) {
    set_if_unset(spec, "volumeMode", "Filesystem");
    if let Some(res) = get_obj_mut(spec, "resources") {
        canonicalize_resources(res, "limits");
        canonicalize_resources(res, "requests");
    }
}

fn default_field_ref(item: &mut Obj) {
    if let Some(f) = get_obj_mut(item, "fieldRef") {
        set_if_empty(f, "apiVersion", "v1");
    }
}

/// `SetDefaults_Volume` and the defaulters of each source.
pub(crate) fn default_volume(v: &mut Obj) {
    if !SOURCES.iter().any(|s| !is_unset(v, s)) {
        v.insert("emptyDir".to_owned(), Value::Object(Obj::new()));
    }
    if let Some(image) = get_obj_mut(v, "image") {
        if super::meta::str_of(image, "pullPolicy").is_empty() {
            let policy =
                super::containers::pull_policy_for(super::meta::str_of(image, "reference"));
            image.insert("pullPolicy".to_owned(), Value::from(policy));
        }
    }
    if let Some(h) = get_obj_mut(v, "hostPath") {
        set_if_unset(h, "type", "");
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = get_obj_mut(v, source) {
            set_if_unset(s, "defaultMode", DEFAULT_MODE);
        }
    }
    if let Some(d) = get_obj_mut(v, "downwardAPI") {
        each_obj(d, "items").for_each(default_field_ref);
    }
    if let Some(p) = get_obj_mut(v, "projected") {
        for source in each_obj(p, "sources") {
            if let Some(d) = get_obj_mut(source, "downwardAPI") {
                each_obj(d, "items").for_each(default_field_ref);
            }
            if let Some(t) = get_obj_mut(source, "serviceAccountToken") {
                set_if_unset(t, "expirationSeconds", 3600);
            }
        }
    }
    if let Some(e) = get_obj_mut(v, "emptyDir") {
        if let Some(c) = e
            .get("sizeLimit")
            .and_then(Value::as_str)
            .and_then(super::meta::canonical_quantity)
        {
            e.insert("sizeLimit".to_owned(), Value::String(c));
        }
    }
    if let Some(t) = get_obj_mut(v, "ephemeral").and_then(|e| get_obj_mut(e, "volumeClaimTemplate"))
    {
        if let Some(spec) = entry_obj(t, "spec") {
            default_claim_spec(spec);
        }
    }
    if let Some(i) = get_obj_mut(v, "iscsi") {
        set_if_empty(i, "iscsiInterface", "default");
    }
    if let Some(r) = get_obj_mut(v, "rbd") {
        set_if_empty(r, "pool", "rbd");
        set_if_empty(r, "user", "admin");
        set_if_empty(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = get_obj_mut(v, "azureDisk") {
        set_if_unset(a, "cachingMode", "ReadWrite");
        set_if_unset(a, "kind", "Shared");
        set_if_unset(a, "fsType", "ext4");
        set_if_unset(a, "readOnly", false);
    }
    if let Some(s) = get_obj_mut(v, "scaleIO") {
        set_if_empty(s, "storageMode", "ThinProvisioned");
        set_if_empty(s, "fsType", "xfs");
    }
}

/// `validateLocalDescendingPath`: relative, without `..`.
pub(crate) fn validate_local_descending_path(p: &str, path: &str, errs: &mut Errs) {
    if p.starts_with('/') {
        errs.push(invalid(path, p, "must be a relative path"));
    }
    if has_backsteps(p) {
        errs.push(invalid(path, p, "must not contain '..'"));
    }
}

/// `ValidateLocalNonReservedPath`.
fn validate_local_non_reserved_path(p: &str, path: &str, errs: &mut Errs) {
    validate_local_descending_path(p, path, errs);
    if p.starts_with("..") && !p.starts_with("../") {
        errs.push(invalid(path, p, "must not start with '..'"));
    }
}

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

fn validate_mode(mode: Option<i32>, path: &str, errs: &mut Errs) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errs.push(invalid(path, m, FILE_MODE_MSG));
    }
}

fn validate_items(items: &[KeyToPath], path: &str, errs: &mut Errs) {
    for (i, kp) in items.iter().enumerate() {
        let p = index(path, i);
        if kp.key.is_empty() {
            errs.push(required(child(&p, "key"), ""));
        }
        if kp.path.is_empty() {
            errs.push(required(child(&p, "path"), ""));
        }
        validate_local_non_reserved_path(&kp.path, &child(&p, "path"), errs);
        validate_mode(kp.mode, &child(&p, "mode"), errs);
    }
}

/// `ValidateVolumes`: returns the valid volumes by name, for the containers' mounts.
pub(crate) fn validate_volumes(
    volumes: &[Volume],
    pod_name: Option<&str>,
    path: &str,
    errs: &mut Errs,
) -> Volumes {
    let mut valid = Volumes::new();
    let mut names = BTreeSet::new();
    let created_claims: BTreeSet<String> = match pod_name.filter(|n| !n.is_empty()) {
        Some(pod) => volumes
            .iter()
            .filter(|v| v.ephemeral.is_some())
            .map(|v| format!("{pod}-{}", v.name))
            .collect(),
        None => BTreeSet::new(),
    };
    for (i, vol) in volumes.iter().enumerate() {
        let p = index(path, i);
        let name_path = child(&p, "name");
        let mut el = Vec::new();
        validate_source(vol, pod_name, &p, &mut el);
        if vol.name.is_empty() {
            el.push(required(name_path.as_str(), ""));
        } else {
            for msg in is_dns1123_label(&vol.name) {
                el.push(invalid(name_path.as_str(), vol.name.as_str(), &msg));
            }
        }
        if names.contains(vol.name.as_str()) {
            el.push(super::duplicate(name_path.as_str(), vol.name.as_str()));
        }
        if el.is_empty() {
            names.insert(vol.name.as_str());
            valid.insert(
                vol.name.clone(),
                VolumeFacts {
                    claim: vol.persistent_volume_claim.is_some() || vol.ephemeral.is_some(),
                    image: vol.image.is_some(),
                },
            );
        } else {
            errs.append(&mut el);
        }
        if let Some(claim) = &vol.persistent_volume_claim {
            if created_claims.contains(&claim.claim_name) {
                errs.push(invalid(
                    child(&child(&p, "persistentVolumeClaim"), "claimName"),
                    claim.claim_name.as_str(),
                    "must not reference a PVC that gets created for an ephemeral volume",
                ));
            }
        }
    }
    valid
}

/// One volume's source: exactly one, and the checks of the common ones.
fn validate_source(vol: &Volume, pod_name: Option<&str>, path: &str, errs: &mut Errs) {
    let raw = serde_json::to_value(vol).unwrap_or(Value::Null);
    let mut count = 0;
    for source in SOURCES {
        if raw.get(source).is_none_or(Value::is_null) {
            continue;
        }
        if count > 0 {
            errs.push(forbidden(
                child(path, source),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = child(path, source);
        match *source {
            "hostPath" => {
                if let Some(h) = &vol.host_path {
                    if h.path.is_empty() {
                        errs.push(required(child(&p, "path"), ""));
                    } else {
                        if has_backsteps(&h.path) {
                            errs.push(invalid(
                                child(&p, "path"),
                                h.path.as_str(),
                                "must not contain '..'",
                            ));
                        }
                        let supported = [
                            "",
                            "BlockDevice",
                            "CharDevice",
                            "Directory",
                            "DirectoryOrCreate",
                            "File",
                            "FileOrCreate",
                            "Socket",
                        ];
                        if let Some(t) = h.type_.as_deref().filter(|t| !supported.contains(t)) {
                            errs.push(not_supported(child(&p, "type"), t, &supported));
                        }
                    }
                }
            }
            "secret" => {
                if let Some(s) = &vol.secret {
                    if s.secret_name.as_deref().unwrap_or("").is_empty() {
                        errs.push(required(child(&p, "secretName"), ""));
                    }
                    validate_mode(s.default_mode, &child(&p, "defaultMode"), errs);
                    validate_items(s.items.as_deref().unwrap_or(&[]), &child(&p, "items"), errs);
                }
            }
            "configMap" => {
                if let Some(c) = &vol.config_map {
                    if c.name.is_empty() {
                        errs.push(required(child(&p, "name"), ""));
                    }
                    validate_mode(c.default_mode, &child(&p, "defaultMode"), errs);
                    validate_items(c.items.as_deref().unwrap_or(&[]), &child(&p, "items"), errs);
                }
            }
            "persistentVolumeClaim"
                if vol
                    .persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name.is_empty()) =>
            {
                errs.push(required(child(&p, "claimName"), ""));
            }
            "nfs" => {
                if let Some(n) = &vol.nfs {
                    if n.server.is_empty() {
                        errs.push(required(child(&p, "server"), ""));
                    }
                    if n.path.is_empty() {
                        errs.push(required(child(&p, "path"), ""));
                    }
                    if !n.path.starts_with('/') {
                        errs.push(invalid(
                            child(&p, "path"),
                            n.path.as_str(),
                            "must be an absolute path",
                        ));
                    }
                }
            }
            "downwardAPI" => {
                if let Some(d) = &vol.downward_api {
                    validate_mode(d.default_mode, &child(&p, "defaultMode"), errs);
                    for item in d.items.iter().flatten() {
                        if item.path.is_empty() {
                            errs.push(required(child(&p, "path"), ""));
                        }
                        validate_local_non_reserved_path(&item.path, &child(&p, "path"), errs);
                        if item.field_ref.is_none() && item.resource_field_ref.is_none() {
                            errs.push(required(
                                p.as_str(),
                                "one of fieldRef and resourceFieldRef is required",
                            ));
                        }
                        validate_mode(item.mode, &child(&p, "mode"), errs);
                    }
                }
            }
            "projected" => {
                if let Some(pr) = &vol.projected {
                    validate_mode(pr.default_mode, &child(&p, "defaultMode"), errs);
                    let mut paths = BTreeSet::new();
                    for (i, s) in pr.sources.iter().flatten().enumerate() {
                        let sp = index(&child(&p, "sources"), i);
                        let raw_source = serde_json::to_value(s).unwrap_or(Value::Null);
                        let n = raw_source
                            .as_object()
                            .map_or(0, |o| o.values().filter(|v| !v.is_null()).count());
                        if n > 1 {
                            errs.push(forbidden(
                                sp.as_str(),
                                "may not specify more than 1 volume type per source",
                            ));
                        }
                        let kp_sources = [
                            ("secret", s.secret.as_ref().map(|x| (&x.name, &x.items))),
                            (
                                "configMap",
                                s.config_map.as_ref().map(|x| (&x.name, &x.items)),
                            ),
                        ];
                        for (field, src) in kp_sources {
                            let Some((name, items)) = src else { continue };
                            if name.is_empty() {
                                errs.push(required(child(&child(&sp, field), "name"), ""));
                            }
                            let items = items.as_deref().unwrap_or(&[]);
                            validate_items(items, &child(&child(&sp, field), "items"), errs);
                            for kp in items.iter().filter(|kp| !kp.path.is_empty()) {
                                if !paths.insert(kp.path.clone()) {
                                    errs.push(invalid(
                                        p.as_str(),
                                        name.as_str(),
                                        "conflicting duplicate paths",
                                    ));
                                }
                            }
                        }
                        if let Some(t) = &s.service_account_token {
                            let tp = child(&sp, "serviceAccountToken");
                            let exp = t.expiration_seconds.unwrap_or(0);
                            if exp < 600 {
                                errs.push(invalid(
                                    child(&tp, "expirationSeconds"),
                                    exp,
                                    "may not specify a duration less than 10 minutes",
                                ));
                            }
                            if exp > 1 << 32 {
                                errs.push(invalid(
                                    child(&tp, "expirationSeconds"),
                                    exp,
                                    "may not specify a duration larger than 2^32 seconds",
                                ));
                            }
                            if t.path.is_empty() {
                                errs.push(required(child(&p, "path"), ""));
                            } else {
                                validate_local_non_reserved_path(&t.path, &child(&p, "path"), errs);
                            }
                        }
                    }
                }
            }
            "ephemeral" => {
                if let Some(e) = &vol.ephemeral {
                    match &e.volume_claim_template {
                        None => errs.push(required(child(&p, "volumeClaimTemplate"), "")),
                        Some(t) => super::storage::validate_claim_spec(
                            &t.spec,
                            &child(&child(&p, "volumeClaimTemplate"), "spec"),
                            errs,
                        ),
                    }
                    if let Some(pod) = pod_name.filter(|n| !n.is_empty() && !vol.name.is_empty()) {
                        let pvc = format!("{pod}-{}", vol.name);
                        for msg in name_is_dns_subdomain(&pvc, false) {
                            errs.push(invalid(
                                child(path, "name"),
                                vol.name.as_str(),
                                &format!("PVC name {}: {msg}", super::go_quote(&pvc)),
                            ));
                        }
                    }
                }
            }
            "image" => {
                if let Some(i) = &vol.image {
                    if i.reference.as_deref().unwrap_or("").is_empty() {
                        errs.push(required(child(&p, "reference"), ""));
                    }
                    let policy = i.pull_policy.as_deref().unwrap_or("");
                    if !matches!(policy, "Always" | "IfNotPresent" | "Never") {
                        errs.push(not_supported(
                            child(&p, "pullPolicy"),
                            policy,
                            &["Always", "IfNotPresent", "Never"],
                        ));
                    }
                }
            }
            "csi" => {
                if let Some(c) = &vol.csi {
                    super::storage::validate_csi_driver_name(&c.driver, &child(&p, "driver"), errs);
                }
            }
            "gitRepo" => {
                if let Some(g) = &vol.git_repo {
                    if g.repository.is_empty() {
                        errs.push(required(child(&p, "repository"), ""));
                    }
                    validate_local_descending_path(
                        g.directory.as_deref().unwrap_or(""),
                        &child(&p, "directory"),
                        errs,
                    );
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a volume type"));
    }
}

/// `ValidateVolumeMounts` and `ValidateVolumeDevices`.
pub(crate) fn validate_mounts(c: &Container, vols: &Volumes, path: &str, errs: &mut Errs) {
    let devices: BTreeMap<&str, &str> = c
        .volume_devices
        .iter()
        .flatten()
        .map(|d| (d.name.as_str(), d.device_path.as_str()))
        .collect();
    let mounts: BTreeMap<&str, &str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    let mpath = child(path, "volumeMounts");
    let mut mount_points = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = index(&mpath, i);
        if m.name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        }
        if !vols.contains_key(&m.name) {
            errs.push(not_found(child(&p, "name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(required(child(&p, "mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(invalid(
                child(&p, "mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
        if devices.contains_key(m.name.as_str()) {
            errs.push(invalid(
                child(&p, "name"),
                m.name.as_str(),
                "must not already exist in volumeDevices",
            ));
        }
        if devices.values().any(|d| *d == m.mount_path) {
            errs.push(invalid(
                child(&p, "mountPath"),
                m.mount_path.as_str(),
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub_path = m.sub_path.as_deref().unwrap_or("");
        let sub_expr = m.sub_path_expr.as_deref().unwrap_or("");
        if vols.get(&m.name).is_some_and(|v| v.image) {
            if !sub_path.is_empty() {
                errs.push(invalid(
                    child(&p, "subPath"),
                    sub_path,
                    "not allowed in image volume sources",
                ));
            }
            if !sub_expr.is_empty() {
                errs.push(invalid(
                    child(&p, "subPathExpr"),
                    sub_expr,
                    "not allowed in image volume sources",
                ));
            }
        }
        for (field, value) in [("subPath", sub_path), ("subPathExpr", sub_expr)] {
            if value.is_empty() {
                continue;
            }
            if field == "subPathExpr" && !sub_path.is_empty() {
                errs.push(invalid(
                    child(&p, "subPathExpr"),
                    value,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            super::volumes::validate_local_descending_path(value, &child(&mpath, field), errs);
        }
        if let Some(prop) = &m.mount_propagation {
            let pp = child(&mpath, "mountPropagation");
            let supported = ["Bidirectional", "HostToContainer", "None"];
            if !supported.contains(&prop.as_str()) {
                errs.push(not_supported(pp.as_str(), prop.as_str(), &supported));
            }
            if prop == "Bidirectional" && !privileged {
                errs.push(forbidden(
                    pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = m.recursive_read_only.as_deref() {
            let rp = child(&mpath, "recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if !m.read_only.unwrap_or(false) {
                        errs.push(forbidden(
                            rp.as_str(),
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                        errs.push(forbidden(
                            rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(not_supported(
                    rp,
                    other,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
    let dpath = child(path, "volumeDevices");
    let mut dev_paths = BTreeSet::new();
    let mut dev_names = BTreeSet::new();
    for (i, d) in c.volume_devices.iter().flatten().enumerate() {
        let p = index(&dpath, i);
        if d.name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        }
        if dev_names.contains(d.name.as_str()) {
            errs.push(invalid(
                child(&p, "name"),
                d.name.as_str(),
                "must be unique",
            ));
        }
        match vols.get(&d.name) {
            Some(v) if !v.claim => errs.push(invalid(child(&p, "name"), d.name.as_str(), "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode")),
            Some(_) => {}
            None => errs.push(not_found(child(&p, "name"), d.name.as_str())),
        }
        if d.device_path.is_empty() {
            errs.push(required(child(&p, "devicePath"), ""));
        }
        if dev_paths.contains(d.device_path.as_str()) {
            errs.push(invalid(
                child(&p, "devicePath"),
                d.device_path.as_str(),
                "must be unique",
            ));
        }
        if !d.device_path.is_empty() && super::meta::has_backsteps(&d.device_path) {
            errs.push(invalid(
                child(&p, "devicePath"),
                d.device_path.as_str(),
                "can not contain backsteps ('..')",
            ));
        } else {
            dev_paths.insert(d.device_path.as_str());
        }
        if mounts.contains_key(d.name.as_str()) {
            errs.push(invalid(
                child(&p, "name"),
                d.name.as_str(),
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.values().any(|m| *m == d.device_path) {
            errs.push(invalid(
                child(&p, "devicePath"),
                d.device_path.as_str(),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !d.name.is_empty() {
            dev_names.insert(d.name.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volume_defaults() {
        let mut v = json!({"name": "cfg", "configMap": {"name": "c"}});
        default_volume(v.as_object_mut().unwrap());
        assert_eq!(v["configMap"]["defaultMode"], 420);
        let mut bare = json!({"name": "scratch"});
        default_volume(bare.as_object_mut().unwrap());
        assert_eq!(bare["emptyDir"], json!({}));
        let mut host = json!({"name": "h", "hostPath": {"path": "/x"}});
        default_volume(host.as_object_mut().unwrap());
        assert_eq!(host["hostPath"]["type"], "");
    }

    #[test]
    fn volume_validation() {
        let vols: Vec<Volume> = serde_json::from_value(json!([
            {"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}},
            {"name": "Bad", "secret": {}},
            {"name": "c", "configMap": {"name": "c", "defaultMode": 1000}},
        ]))
        .unwrap();
        let mut errs = Vec::new();
        let valid = validate_volumes(&vols, None, "spec.volumes", &mut errs);
        let msgs: Vec<String> = errs.iter().map(super::super::FieldError::message).collect();
        assert_eq!(
            msgs[0],
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"
        );
        assert_eq!(msgs[1], "spec.volumes[1].secret.secretName: Required value");
        assert!(msgs[2].starts_with("spec.volumes[1].name: Invalid value: \"Bad\""));
        assert_eq!(msgs[3], "spec.volumes[2].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive");
        assert!(valid.is_empty());
    }
}
