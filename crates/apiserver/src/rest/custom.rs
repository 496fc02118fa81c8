//! Defaulting and validation of a write, by what the resource is: a built-in kind goes
//! through `tug_api::strategy`; a custom resource through its CRD's structural schema
//! (defaults, pruning of unknown fields, validation) plus upstream's object-meta checks; a
//! CRD itself through `tug_api::crd`'s definition rules.

use serde_json::Value;
use tug_api::strategy::FieldError;
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
                // Pruned fields were reported when the body was decoded.
                let _ = s.prune(obj);
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
    if custom.is_none() && is_crd(info) {
        // The definition's rules include its ObjectMeta's.
        return tug_api::crd::validate_crd(obj, old);
    }
    // ObjectMeta rules for every kind; then the schema's own rules.
    let mut errors = tug_api::strategy::validate(info.group, info.plural, obj, old);
    let more = match custom {
        Some(c) => c
            .structural
            .as_ref()
            .map(|s| s.validate(obj))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    for e in more {
        if !errors.contains(&e) {
            errors.push(e);
        }
    }
    errors
}
