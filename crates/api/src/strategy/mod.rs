//! Per-kind defaulting and validation, as upstream's API server applies them to every write:
//! the `SetDefaults_*` functions of `pkg/apis/*/v1/defaults.go` (plus the few defaults the
//! registry strategies and the wire format add), and the `Validate*` functions of
//! `pkg/apis/*/validation` with their exact field paths and messages.
//!
//! The entry points are [`default_object`] and [`validate`]; errors are [`FieldError`]s, which
//! render exactly as upstream's `field.Error` does. This file also holds the checks every kind
//! shares: `ObjectMeta` (names per kind, labels, annotations, owner references, finalizers).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

mod batch;
mod containers;
mod core;
mod cron;
mod ephemeral;
mod meta;
mod other;
mod pod;
mod podspec;
mod probes;
mod quantity;
mod resources;
mod service;
mod sets;
mod storage;
mod volumes;
mod workloads;

pub use ephemeral::{as_container, validate_ephemeral_containers_update};
pub(crate) use meta::UNQUALIFIED_FINALIZER;
use meta::{child, index};
pub(crate) use meta::{is_valid_label_value, qualified_name_errors};

/// The kind of a field error, as upstream's field.ErrorType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// A value that was looked up does not exist (`Not found`).
    NotFound,
    /// A required value is missing (`Required value`).
    Required,
    /// A value that must be unique is repeated (`Duplicate value`).
    Duplicate,
    /// A value is malformed or out of range (`Invalid value`).
    Invalid,
    /// A value is not one of an enumeration (`Unsupported value`).
    NotSupported,
    /// A well-formed value is not allowed here (`Forbidden`).
    Forbidden,
    /// A value is too long (`Too long`).
    TooLong,
    /// A list has too many items (`Too many`).
    TooMany,
    /// A failure not caused by the input (`Internal error`).
    Internal,
    /// A value has the wrong type for the schema (`Invalid value`).
    TypeInvalid,
}

impl ErrorType {
    /// The cause reason in a Status: "FieldValueRequired", "FieldValueInvalid", "FieldValueDuplicate", "FieldValueNotSupported", "FieldValueForbidden", "FieldValueTooLong", "FieldValueTooMany", "FieldValueNotFound", "InternalError", "FieldValueTypeInvalid".
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// Upstream's `ErrorType.String()`: the words that start the message.
    fn words(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }
}

/// One validation error: upstream's field.Error.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: ErrorType,
    /// Path such as `spec.containers[0].image` or `metadata.labels`.
    pub field: String,
    /// The offending value, if upstream shows one.
    pub bad_value: Option<serde_json::Value>,
    /// Upstream's detail text (may be empty).
    pub detail: String,
}

impl FieldError {
    /// Upstream's field.Error.Error() text, e.g. `spec.containers[0].image: Required value`,
    /// `metadata.name: Invalid value: "Bad": a lowercase RFC 1123 …`,
    /// `spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.cause_message())
    }

    /// The text a Status cause carries (upstream: ErrorBody — the message without the `field: ` prefix).
    pub fn cause_message(&self) -> String {
        let mut out = self.kind.words().to_owned();
        let shows_value = !matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        );
        if let (true, Some(value)) = (shows_value, &self.bad_value) {
            out.push_str(": ");
            out.push_str(&render_value(value));
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// A bad value as upstream prints it: strings quoted as Go's `%q`, numbers and booleans bare,
/// anything else as JSON.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => {
            serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
        }
    }
}

pub(crate) use crate::go::go_quote;

/// A list of errors, in upstream's order.
pub(crate) type Errs = Vec<FieldError>;

fn error(
    kind: ErrorType,
    field: impl Into<String>,
    bad: Option<Value>,
    detail: &str,
) -> FieldError {
    FieldError {
        kind,
        field: field.into(),
        bad_value: bad,
        detail: detail.to_owned(),
    }
}

/// `field.Required`.
pub(crate) fn required(field: impl Into<String>, detail: &str) -> FieldError {
    error(ErrorType::Required, field, None, detail)
}

/// `field.Invalid`.
pub(crate) fn invalid(field: impl Into<String>, bad: impl Into<Value>, detail: &str) -> FieldError {
    error(ErrorType::Invalid, field, Some(bad.into()), detail)
}

/// `field.Invalid` with a value rendered as JSON (structs, maps, lists).
pub(crate) fn invalid_json<T: serde::Serialize>(
    field: impl Into<String>,
    bad: &T,
    detail: &str,
) -> FieldError {
    let value = serde_json::to_value(bad).unwrap_or(Value::Null);
    error(ErrorType::Invalid, field, Some(value), detail)
}

/// `field.NotSupported`: the detail lists the supported values, each quoted.
pub(crate) fn not_supported(
    field: impl Into<String>,
    bad: impl Into<Value>,
    valid: &[&str],
) -> FieldError {
    let detail = if valid.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    error(ErrorType::NotSupported, field, Some(bad.into()), &detail)
}

/// `field.NotSupported` with a value rendered as JSON (a whole strategy struct).
pub(crate) fn not_supported_json<T: serde::Serialize>(
    field: impl Into<String>,
    bad: &T,
    valid: &[&str],
) -> FieldError {
    not_supported(
        field,
        serde_json::to_value(bad).unwrap_or(Value::Null),
        valid,
    )
}

/// `field.Forbidden`.
pub(crate) fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
    error(ErrorType::Forbidden, field, None, detail)
}

/// `field.Duplicate`.
pub(crate) fn duplicate(field: impl Into<String>, bad: impl Into<Value>) -> FieldError {
    error(ErrorType::Duplicate, field, Some(bad.into()), "")
}

/// `field.NotFound`.
pub(crate) fn not_found(field: impl Into<String>, bad: impl Into<Value>) -> FieldError {
    error(ErrorType::NotFound, field, Some(bad.into()), "")
}

/// `field.TooLong` (upstream does not show the value).
pub(crate) fn too_long(field: impl Into<String>, max: usize) -> FieldError {
    let unit = if max == 1 { "byte" } else { "bytes" };
    error(
        ErrorType::TooLong,
        field,
        None,
        &format!("may not be more than {max} {unit}"),
    )
}

/// `field.TooMany`.
pub(crate) fn too_many(field: impl Into<String>, actual: usize, max: usize) -> FieldError {
    let unit = if max == 1 { "item" } else { "items" };
    error(
        ErrorType::TooMany,
        field,
        Some(Value::from(actual)),
        &format!("must have at most {max} {unit}"),
    )
}

/// `ValidateNonnegativeField`.
pub(crate) fn nonnegative(value: i64, field: impl Into<String>, errs: &mut Errs) {
    if value < 0 {
        errs.push(invalid(field, value, "must be greater than or equal to 0"));
    }
}

/// `ValidateImmutableField`: compares the two values as JSON (nulls and empty lists count as
/// absent, as upstream's semantic equality treats nil and empty alike).
pub(crate) fn immutable<T: serde::Serialize>(new: &T, old: &T, field: impl Into<String>) -> Errs {
    let new_v = meta::normalized(serde_json::to_value(new).unwrap_or(Value::Null));
    let old_v = meta::normalized(serde_json::to_value(old).unwrap_or(Value::Null));
    if new_v == old_v {
        Vec::new()
    } else {
        vec![error(
            ErrorType::Invalid,
            field,
            Some(new_v),
            "field is immutable",
        )]
    }
}

/// Fills defaults into a new or updated object (JSON as the client sent it, with apiVersion/kind), as upstream's SetDefaults_* for the kind. `group` is "" for core; `plural` as in the URL.
pub fn default_object(group: &str, plural: &str, obj: &mut serde_json::Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match (group, plural) {
        ("", "pods") => pod::default_pod(map),
        ("", "podtemplates") => {
            if let Some(template) = meta::get_obj_mut(map, "template") {
                pod::default_template(template);
            }
        }
        ("", "replicationcontrollers") => workloads::default_replication_controller(map),
        ("apps", "deployments") => workloads::default_deployment(map),
        ("apps", "replicasets") => workloads::default_replica_set(map),
        ("apps", "statefulsets") => workloads::default_stateful_set(map),
        ("apps", "daemonsets") => workloads::default_daemon_set(map),
        ("batch", "jobs") => batch::default_job(map),
        ("batch", "cronjobs") => batch::default_cron_job(map),
        ("", "services") => service::default_service(map),
        ("", "endpoints") => core::default_endpoints(map),
        _ => {
            if !core::default_core(group, plural, map) {
                other::default_other(group, plural, map);
            }
        }
    }
}

/// Validates an object about to be created (old = None) or replacing `old` (an update); returns every error, empty when valid. Includes ObjectMeta checks (name rules per kind, generateName, labels and annotations syntax as upstream ValidateObjectMeta, namespace required for namespaced kinds / forbidden for cluster-scoped) and, for updates, upstream's update rules (immutable fields).
pub fn validate(
    group: &str,
    plural: &str,
    obj: &serde_json::Value,
    old: Option<&serde_json::Value>,
) -> Vec<FieldError> {
    let meta: ObjectMeta = match obj.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(m) => match ObjectMeta::deserialize(m) {
            Ok(m) => m,
            Err(e) => return vec![decode_error(&e)],
        },
    };
    let old_meta: Option<ObjectMeta> = match old.and_then(|o| o.get("metadata")) {
        None | Some(Value::Null) => None,
        Some(m) => ObjectMeta::deserialize(m).ok(),
    };
    let info = find_kind(group, plural);
    let namespaced = info.map_or_else(
        || meta.namespace.as_deref().is_some_and(|n| !n.is_empty()),
        |i| i.namespaced,
    );

    let mut errs = Vec::new();
    // core/v1 Events keep their legacy rules: no ObjectMeta validation at all.
    let legacy_event = group.is_empty() && plural == "events";
    if !legacy_event {
        match &old_meta {
            None => validate_object_meta(&meta, namespaced, name_rule(group, plural), &mut errs),
            Some(old_meta) => validate_object_meta_update(&meta, old_meta, &mut errs),
        }
    }
    if info.is_none() || group == "apiextensions.k8s.io" {
        // Only the built-in kinds' own validation (k8s core's) restricts unqualified
        // finalizer names; CRDs and custom objects get apimachinery's generic rules.
        errs.retain(|e| !e.detail.starts_with(UNQUALIFIED_FINALIZER));
    }
    let kind_errs = match validate_kind(group, plural, obj, old) {
        Ok(e) => e,
        Err(e) => return vec![e],
    };
    errs.extend(kind_errs);
    errs
}

fn decode_error(e: &serde_json::Error) -> FieldError {
    error(ErrorType::Invalid, "", None, &e.to_string())
}

/// Decodes `obj` (and `old`) as `T` and runs `f` on them.
pub(crate) fn run<T: DeserializeOwned>(
    obj: &Value,
    old: Option<&Value>,
    f: impl FnOnce(&T, Option<&T>) -> Errs,
) -> Result<Errs, FieldError> {
    let new = T::deserialize(obj).map_err(|e| decode_error(&e))?;
    let old: Option<T> = match old {
        Some(o) => Some(T::deserialize(o).map_err(|e| decode_error(&e))?),
        None => None,
    };
    Ok(f(&new, old.as_ref()))
}

fn validate_kind(
    group: &str,
    plural: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Errs, FieldError> {
    match (group, plural) {
        ("", "pods") => run(obj, old, pod::validate_pod),
        ("", "podtemplates") => run(obj, old, workloads::validate_pod_template),
        ("", "replicationcontrollers") => run(obj, old, workloads::validate_replication_controller),
        ("apps", "deployments") => run(obj, old, workloads::validate_deployment),
        ("apps", "replicasets") => run(obj, old, workloads::validate_replica_set),
        ("apps", "statefulsets") => run(obj, old, sets::validate_stateful_set),
        ("apps", "daemonsets") => run(obj, old, sets::validate_daemon_set),
        ("apps", "controllerrevisions") => run(obj, old, workloads::validate_controller_revision),
        ("batch", "jobs") => run(obj, old, batch::validate_job),
        ("batch", "cronjobs") => run(obj, old, batch::validate_cron_job),
        ("", "services") => run(obj, old, service::validate_service),
        ("", "endpoints") => run(obj, old, core::validate_endpoints),
        _ => match core::validate_core(group, plural, obj, old) {
            Some(result) => result,
            None => other::validate_other(group, plural, obj, old),
        },
    }
}

fn find_kind(group: &str, plural: &str) -> Option<&'static crate::ResourceInfo> {
    crate::catalogue()
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// A kind's name rule: `(name, is_prefix) -> messages`, as upstream's `ValidateNameFunc`.
pub(crate) type NameFn = fn(&str, bool) -> Vec<String>;

/// The name rule of each kind (upstream's `Validate<Kind>Name`).
fn name_rule(group: &str, plural: &str) -> NameFn {
    match (group, plural) {
        ("", "namespaces") | ("apps", "statefulsets") => meta::name_is_dns_label,
        ("", "services") => meta::name_is_dns1035_label,
        (
            "rbac.authorization.k8s.io",
            "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings",
        ) => meta::path_segment_name,
        _ => meta::name_is_dns_subdomain,
    }
}

/// Upstream's `ValidateObjectMeta` for a create (with core's extra finalizer rule).
pub(crate) fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_fn: NameFn,
    errs: &mut Errs,
) {
    let path = "metadata";
    if let Some(generate) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        for msg in name_fn(generate, true) {
            errs.push(invalid(child(path, "generateName"), generate, &msg));
        }
    }
    match meta.name.as_deref().unwrap_or("") {
        "" => errs.push(required(
            child(path, "name"),
            "name or generateName is required",
        )),
        name => {
            for msg in name_fn(name, false) {
                errs.push(invalid(child(path, "name"), name, &msg));
            }
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(required(child(path, "namespace"), ""));
        } else {
            for msg in meta::name_is_dns_label(namespace, false) {
                errs.push(invalid(child(path, "namespace"), namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(forbidden(
            child(path, "namespace"),
            "not allowed on this type",
        ));
    }
    nonnegative(
        meta.generation.unwrap_or(0),
        child(path, "generation"),
        errs,
    );
    validate_meta_common(meta, errs);
}

/// The parts of `ValidateObjectMetaUpdate` the server does not do itself: finalizers may not
/// be added to an object being deleted, and labels, annotations, owner references and
/// finalizers keep their syntax.
pub(crate) fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, errs: &mut Errs) {
    if old.deletion_timestamp.is_some() {
        let old_f = old.finalizers.as_deref().unwrap_or(&[]);
        let mut extra: Vec<&str> = new
            .finalizers
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(String::as_str)
            .filter(|f| !old_f.iter().any(|o| o == f))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| go_quote(f)).collect();
            errs.push(forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    validate_meta_common(new, errs);
}

/// Labels, annotations, owner references and finalizers: checked on create and update alike.
fn validate_meta_common(meta: &ObjectMeta, errs: &mut Errs) {
    let path = "metadata";
    if let Some(labels) = &meta.labels {
        meta::validate_labels(labels, &child(path, "labels"), errs);
    }
    if let Some(annotations) = &meta.annotations {
        meta::validate_annotations(annotations, &child(path, "annotations"), errs);
    }
    if let Some(refs) = &meta.owner_references {
        meta::validate_owner_references(refs, &child(path, "ownerReferences"), errs);
    }
    if let Some(finalizers) = &meta.finalizers {
        let fpath = child(path, "finalizers");
        for f in finalizers {
            for msg in meta::is_qualified_name(f) {
                errs.push(invalid(fpath.as_str(), f.as_str(), &msg));
            }
        }
        let orphan = finalizers.iter().any(|f| f == "orphan");
        let foreground = finalizers.iter().any(|f| f == "foregroundDeletion");
        if orphan && foreground {
            errs.push(invalid_json(
                fpath.as_str(),
                finalizers,
                "finalizer orphan and foregroundDeletion cannot be both set",
            ));
        }
        for (i, f) in finalizers.iter().enumerate() {
            meta::validate_kube_finalizer_name(f, &index(&fpath, i), errs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_formats() {
        assert_eq!(
            required("spec.containers[0].image", "").message(),
            "spec.containers[0].image: Required value"
        );
        assert_eq!(
            invalid("metadata.name", "Bad", "a lowercase RFC 1123 subdomain").message(),
            "metadata.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain"
        );
        assert_eq!(
            not_supported(
                "spec.restartPolicy",
                "Sometimes",
                &["Always", "Never", "OnFailure"]
            )
            .message(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\""
        );
        assert_eq!(
            forbidden("metadata.namespace", "not allowed on this type").message(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        assert_eq!(
            duplicate("spec.containers[1].name", "web").message(),
            "spec.containers[1].name: Duplicate value: \"web\""
        );
        assert_eq!(
            too_long("metadata.annotations", 262144).message(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            too_many("spec.rules", 30, 20).message(),
            "spec.rules: Too many: 30: must have at most 20 items"
        );
        assert_eq!(
            invalid("spec.replicas", -1, "must be greater than or equal to 0").message(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let map = invalid_json(
            "spec.template.metadata.labels",
            &json!({"app": "x"}),
            "`selector` does not match template `labels`",
        );
        assert_eq!(
            map.cause_message(),
            "Invalid value: {\"app\":\"x\"}: `selector` does not match template `labels`"
        );
        assert_eq!(
            ErrorType::NotSupported.cause_reason(),
            "FieldValueNotSupported"
        );
        assert_eq!(ErrorType::Internal.cause_reason(), "InternalError");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }

    #[test]
    fn object_meta_rules() {
        let errs = validate(
            "",
            "configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "Bad_Name", "namespace": "default",
                                 "labels": {"-x": "ok", "k": "bad value"},
                                 "annotations": {"a/b/c": "v"}}}),
            None,
        );
        let msgs: Vec<String> = errs.iter().map(FieldError::message).collect();
        assert!(
            msgs[0].starts_with(
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
            ),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.starts_with("metadata.labels: Invalid value: \"-x\": name part must consist of alphanumeric characters")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string")), "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.starts_with(
                "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of"
            )),
            "{msgs:?}"
        );

        let ns = validate(
            "",
            "namespaces",
            &json!({"metadata": {"name": "a.b", "namespace": "x"}}),
            None,
        );
        assert!(ns[0]
            .message()
            .starts_with("metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label"));
        assert_eq!(
            ns[1].message(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );

        let missing = validate("", "configmaps", &json!({"metadata": {}}), None);
        assert_eq!(
            missing[0].message(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(missing[1].message(), "metadata.namespace: Required value");
    }

    #[test]
    fn names_per_kind() {
        let name_err = |group: &str, plural: &str, name: &str| {
            validate(
                group,
                plural,
                &json!({"metadata": {"name": name, "namespace": "d"}}),
                None,
            )
            .into_iter()
            .filter(|e| e.field == "metadata.name")
            .count()
        };
        // Services are DNS-1035 labels: no leading digit, no dots.
        assert_eq!(name_err("", "services", "1web"), 1);
        assert_eq!(name_err("", "services", "web.x"), 1);
        // Secrets and config maps are subdomains.
        assert_eq!(name_err("", "secrets", "web.x"), 0);
        // Roles only forbid path separators.
        assert_eq!(
            name_err("rbac.authorization.k8s.io", "roles", "system:Admin"),
            0
        );
        assert_eq!(name_err("rbac.authorization.k8s.io", "roles", "a/b"), 1);
        // StatefulSets are DNS labels.
        assert_eq!(name_err("apps", "statefulsets", "web.x"), 1);
    }

    #[test]
    fn undecodable_objects_give_one_error() {
        let errs = validate("", "pods", &json!({"metadata": {"name": 5}}), None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "");
        assert_eq!(errs[0].kind, ErrorType::Invalid);
    }
}
