//! Printers for storage: persistent volumes, persistent volume claims and storage classes.

use serde_json::Value;

use super::util::{
    age, at, deleting, list_at, name, non_empty, opt_bool, opt_str, quantity, str_at,
};
use super::{col, wide, Printer, AGE, NAME};

/// Annotation that names a volume's or claim's class before `storageClassName` existed.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Upstream's `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, comma-joined.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The class of a volume or claim: the beta annotation if present, else the spec field.
fn storage_class(obj: &Value) -> &str {
    opt_str(obj, &["metadata", "annotations", BETA_STORAGE_CLASS])
        .unwrap_or_else(|| str_at(obj, &["spec", "storageClassName"]))
}

/// The phase, or "Terminating" once deletion has begun.
fn phase(obj: &Value) -> &str {
    if deleting(obj) {
        "Terminating"
    } else {
        str_at(obj, &["status", "phase"])
    }
}

/// `spec.volumeAttributesClassName`, or "<unset>".
fn attributes_class(obj: &Value) -> Value {
    Value::from(opt_str(obj, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>"))
}

/// `spec.volumeMode`, or "<unset>".
fn volume_mode(obj: &Value) -> Value {
    Value::from(opt_str(obj, &["spec", "volumeMode"]).unwrap_or("<unset>"))
}

/// Persistent volumes: Name, Capacity, Access Modes, Reclaim Policy, Status, Claim,
/// StorageClass, VolumeAttributesClass, Reason, Age; wide VolumeMode.
pub(super) const PERSISTENT_VOLUMES: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
        col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
        col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        col("StorageClass", "string", "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        AGE,
        wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
    ],
    cells: pv_cells,
};

fn pv_cells(pv: &Value, now: i64) -> Vec<Value> {
    let claim = match at(pv, &["spec", "claimRef"]) {
        Some(r) => format!("{}/{}", str_at(r, &["namespace"]), str_at(r, &["name"])),
        None => String::new(),
    };
    vec![
        name(pv),
        Value::from(quantity(at(pv, &["spec", "capacity", "storage"]))),
        Value::from(access_modes(list_at(pv, &["spec", "accessModes"]))),
        Value::from(str_at(pv, &["spec", "persistentVolumeReclaimPolicy"])),
        Value::from(phase(pv)),
        Value::from(claim),
        Value::from(storage_class(pv)),
        attributes_class(pv),
        Value::from(str_at(pv, &["status", "reason"])),
        age(pv, now),
        volume_mode(pv),
    ]
}

/// Persistent volume claims: Name, Status, Volume, Capacity, Access Modes, StorageClass,
/// VolumeAttributesClass, Age; wide VolumeMode.
pub(super) const PERSISTENT_VOLUME_CLAIMS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim.",
        ),
    ],
    cells: pvc_cells,
};

fn pvc_cells(pvc: &Value, now: i64) -> Vec<Value> {
    let volume = str_at(pvc, &["spec", "volumeName"]);
    // Capacity and access modes show only once the claim is bound to a volume.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(pvc, &["status", "capacity", "storage"])),
            access_modes(list_at(pvc, &["status", "accessModes"])),
        )
    };
    vec![
        name(pvc),
        Value::from(phase(pvc)),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(storage_class(pvc)),
        attributes_class(pvc),
        age(pvc, now),
        volume_mode(pvc),
    ]
}

/// Storage classes: Name, Provisioner, ReclaimPolicy, VolumeBindingMode,
/// AllowVolumeExpansion, Age.
pub(super) const STORAGE_CLASSES: Printer = Printer {
    columns: &[
        NAME,
        col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
        col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
        col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
        col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
        AGE,
    ],
    cells: storage_class_cells,
};

/// Annotations that mark the default storage class (GA and beta).
const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

fn storage_class_cells(sc: &Value, now: i64) -> Vec<Value> {
    let mut shown = str_at(sc, &["metadata", "name"]).to_string();
    if DEFAULT_CLASS_ANNOTATIONS
        .iter()
        .any(|a| opt_str(sc, &["metadata", "annotations", a]) == Some("true"))
    {
        shown.push_str(" (default)");
    }
    vec![
        Value::from(shown),
        Value::from(str_at(sc, &["provisioner"])),
        Value::from(non_empty(sc, &["reclaimPolicy"]).unwrap_or("Delete")),
        Value::from(non_empty(sc, &["volumeBindingMode"]).unwrap_or("Immediate")),
        Value::from(opt_bool(sc, &["allowVolumeExpansion"]).unwrap_or(false)),
        age(sc, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volumes_and_claims() {
        let pv = json!({
            "metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                "claimRef": {"namespace": "default", "name": "data"}},
            "status": {"phase": "Bound"}
        });
        let row = (PERSISTENT_VOLUMES.cells)(&pv, 0);
        assert_eq!(
            row[1..9],
            [
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("fast"),
                json!("<unset>"),
                json!("")
            ]
        );
        assert_eq!(row[10], json!("<unset>"));

        let pending = json!({"spec": {"storageClassName": "fast"}, "status": {"phase": "Pending"}});
        let row = (PERSISTENT_VOLUME_CLAIMS.cells)(&pending, 0);
        assert_eq!(
            row[1..6],
            [
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!("fast")
            ]
        );
        let bound = json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"volumeName": "pv1", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
        let row = (PERSISTENT_VOLUME_CLAIMS.cells)(&bound, 0);
        assert_eq!(
            row[1..5],
            [
                json!("Terminating"),
                json!("pv1"),
                json!("10Gi"),
                json!("RWO")
            ]
        );
        assert_eq!(row[8], json!("Filesystem"));
    }

    #[test]
    fn default_storage_class() {
        let sc = json!({"metadata": {"name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path"});
        let row = (STORAGE_CLASSES.cells)(&sc, 0);
        assert_eq!(
            row[..5],
            [
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("Immediate"),
                json!(false)
            ]
        );
    }
}
