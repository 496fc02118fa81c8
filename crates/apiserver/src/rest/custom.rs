//! Defaulting and validation of a write, by what the resource is: a built-in kind goes
//! through `tug_api::strategy`; a custom resource through its CRD's structural schema
//! (defaults, pruning of unknown fields, validation) plus upstream's object-meta checks; a
//! CRD itself through `tug_api::crd`'s definition rules.

use serde_json::Value;
use tug_api::strategy::{ErrorType, FieldError};
use tug_api::ResourceInfo;

use super::resources::CustomVersion;

fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions"
}

/// Fills defaults (and, for custom resources, drops fields their schema does not know).
pub fn default(custom: Option<&CustomVersion>, info: &ResourceInfo, obj: &mut Value) {
    match custom {
        Some(c) => {
            if let Some(s) = &c.structural {
                s.prune(obj);
                s.default(obj);
            }
        }
        None if is_crd(info) => tug_api::crd::default_crd(obj),
        None => tug_api::strategy::default_object(info.group, info.plural, obj),
    }
}

/// Validation errors of a new object (and of its change from `old`).
pub fn validate(
    custom: Option<&CustomVersion>,
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    match custom {
        Some(c) => {
            let mut errors = name_errors(obj);
            if let Some(s) = &c.structural {
                errors.extend(s.validate(obj));
            }
            errors
        }
        None if is_crd(info) => tug_api::crd::validate_crd(obj, old),
        None => tug_api::strategy::validate(info.group, info.plural, obj, old),
    }
}

/// A custom object's name must be a DNS subdomain, as upstream checks for every CR.
fn name_errors(obj: &Value) -> Vec<FieldError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    tug_api::validation::is_dns1123_subdomain(name)
        .into_iter()
        .map(|detail| FieldError {
            kind: ErrorType::Invalid,
            field: "metadata.name".into(),
            bad_value: Some(Value::String(name.to_owned())),
            detail,
        })
        .collect()
}
