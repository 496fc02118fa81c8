//! Validation of CustomResourceDefinition objects, as upstream's
//! `ValidateCustomResourceDefinition` and `ValidateCustomResourceDefinitionUpdate` see a v1
//! CRD. Upstream validates its internal form, in which per-version schemas, subresources and
//! printer columns that are identical in every version move to the top level; errors about
//! them are then reported under `spec.validation`, `spec.subresources` and
//! `spec.additionalPrinterColumns`, and this module reports them the same way.
//!
//! Not done: selectable fields, CEL compilation and cost, the CA bundle of conversion
//! webhooks, and the relaxations upstream grants on update to CRDs whose stored schema
//! already breaks a newer rule.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceSubresources,
};
use serde_json::Value;

use super::crd_parts::{
    api_approval, column, conversion, stored_versions, subresources, update_rules,
};
use super::objectmeta::masked;
use super::schema_rules::validate_validation;
use super::{child, index};
use crate::strategy::{
    invalid, invalid_json, not_supported, required, validate_object_meta,
    validate_object_meta_update, ErrorType, FieldError,
};
use crate::validation::{is_dns1035_label, is_dns1123_subdomain};

fn name_is_subdomain(name: &str, prefix: bool) -> Vec<String> {
    is_dns1123_subdomain(&masked(name, prefix))
}

/// Validates a CRD about to be created (`old` = None) or replacing `old`; returns every
/// error with upstream's path and message, empty when valid. Call [`super::default_crd`]
/// first (upstream defaults before validating): the names' `singular` and `listKind` and
/// `status.storedVersions` are required.
pub fn validate_crd(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let new: CustomResourceDefinition = match serde_json::from_value(crd.clone()) {
        Ok(c) => c,
        Err(e) => return vec![decode_error(&e)],
    };
    let old: Option<CustomResourceDefinition> = match old.map(|o| serde_json::from_value(o.clone()))
    {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => return vec![decode_error(&e)],
    };
    let mut errs = Vec::new();
    match &old {
        None => {
            validate_object_meta(&new.metadata, false, name_is_subdomain, &mut errs);
            required_name_errors(&new, &mut errs);
        }
        Some(o) => validate_object_meta_update(&new.metadata, &o.metadata, &mut errs),
    }
    // apiextensions validates ObjectMeta with apimachinery's generic rules: qualified
    // finalizer names such as its own cleanup finalizer are fine.
    errs.retain(|e| !e.detail.starts_with(crate::strategy::UNQUALIFIED_FINALIZER));
    validate_spec(&new.spec, &mut errs);
    if let Some(o) = &old {
        update_rules(&new, o, &mut errs);
    }
    let status = new.status.clone().unwrap_or_default();
    if let Some(accepted) = &status.accepted_names {
        validate_names(accepted, "status.acceptedNames", &mut errs);
    }
    stored_versions(
        &status.stored_versions.unwrap_or_default(),
        &new.spec,
        &mut errs,
    );
    api_approval(&new, old.as_ref(), &mut errs);
    let old_preserves = old
        .as_ref()
        .is_some_and(|o| o.spec.preserve_unknown_fields == Some(true));
    if !old_preserves && new.spec.preserve_unknown_fields == Some(true) {
        errs.push(invalid("spec.preserveUnknownFields", true, "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"));
    }
    errs
}

fn decode_error(e: &serde_json::Error) -> FieldError {
    FieldError {
        kind: ErrorType::Invalid,
        field: String::new(),
        bad_value: None,
        detail: e.to_string(),
    }
}

/// The name rule of a CRD: `<plural>.<group>`, reported right after the DNS-subdomain
/// errors of the same field (upstream's name function returns both).
fn required_name_errors(crd: &CustomResourceDefinition, errs: &mut Vec<FieldError>) {
    let expected = format!("{}.{}", crd.spec.names.plural, crd.spec.group);
    let msg = r#"must be spec.names.plural+"."+spec.group"#;
    for field in ["metadata.generateName", "metadata.name"] {
        let value = match field {
            "metadata.name" => crd.metadata.name.as_deref(),
            _ => crd.metadata.generate_name.as_deref(),
        }
        .unwrap_or("");
        if value.is_empty() || value == expected {
            continue;
        }
        let at = errs
            .iter()
            .rposition(|e| e.field == field)
            .map(|i| i + 1)
            .or_else(|| {
                errs.iter()
                    .rposition(|e| e.field == "metadata.generateName")
                    .map(|i| i + 1)
            })
            .unwrap_or(0);
        errs.insert(at, invalid(field, value, msg));
    }
}

/// The per-version fields upstream's internal form moves to the top level.
struct Collapsed<'a> {
    schema: bool,
    subresources: bool,
    columns: bool,
    top_subresources: Option<&'a CustomResourceSubresources>,
    top_columns: &'a [CustomResourceColumnDefinition],
}

fn collapse(spec: &CustomResourceDefinitionSpec) -> Collapsed<'_> {
    let vs = &spec.versions;
    let all = |f: &dyn Fn(usize) -> bool| !vs.is_empty() && (0..vs.len()).all(f);
    let cols = |i: usize| vs[i].additional_printer_columns.as_deref().unwrap_or(&[]);
    let schema = all(&|i| vs[i].schema == vs[0].schema);
    let subresources = all(&|i| vs[i].subresources == vs[0].subresources);
    let columns = all(&|i| cols(i) == cols(0));
    Collapsed {
        schema,
        subresources,
        columns,
        top_subresources: vs
            .first()
            .filter(|_| subresources)
            .and_then(|v| v.subresources.as_ref()),
        top_columns: if columns { cols(0) } else { &[] },
    }
}

fn status_enabled(s: Option<&CustomResourceSubresources>) -> bool {
    s.is_some_and(|s| s.status.is_some())
}

fn schema_has(
    p: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    pred: &dyn Fn(
        &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    ) -> bool,
) -> bool {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray as A, JSONSchemaPropsOrBool as B,
    };
    if pred(p) {
        return true;
    }
    let items = match &p.items {
        Some(A::Schema(s)) => std::slice::from_ref(&**s),
        Some(A::Schemas(l)) => l.as_slice(),
        None => &[],
    };
    let extra = match &p.additional_properties {
        Some(B::Schema(s)) => Some(&**s),
        _ => None,
    };
    items
        .iter()
        .chain(p.all_of.iter().flatten())
        .chain(p.any_of.iter().flatten())
        .chain(p.one_of.iter().flatten())
        .chain(p.not.as_deref())
        .chain(p.properties.iter().flatten().map(|(_, v)| v))
        .chain(extra)
        .any(|s| schema_has(s, pred))
}

fn validate_spec(spec: &CustomResourceDefinitionSpec, errs: &mut Vec<FieldError>) {
    let group = spec.group.as_str();
    if group.is_empty() {
        errs.push(required("spec.group", ""));
    } else {
        let msgs = is_dns1123_subdomain(group);
        if !msgs.is_empty() {
            errs.push(invalid("spec.group", group, &msgs.join(",")));
        } else if group.split('.').count() < 2 {
            errs.push(invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match spec.scope.as_str() {
        "" => errs.push(required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let c = collapse(spec);
    let top_has_schema = c.schema
        && spec.versions[0]
            .schema
            .as_ref()
            .is_some_and(|s| s.open_api_v3_schema.is_some());
    if !top_has_schema {
        for (i, v) in spec.versions.iter().enumerate() {
            if c.schema
                || v.schema
                    .as_ref()
                    .is_none_or(|s| s.open_api_v3_schema.is_none())
            {
                errs.push(required(
                    format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "",
                ));
            }
        }
    }
    let preserve = spec.preserve_unknown_fields == Some(true);
    let has_defaults = spec.versions.iter().any(|v| {
        v.schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .is_some_and(|s| schema_has(s, &|p| p.default.is_some()))
    });
    if has_defaults && preserve {
        errs.push(invalid(
            "spec.preserveUnknownFields",
            true,
            "must be false in order to use defaults in the schema",
        ));
    }
    let mut storage = 0;
    let mut unique = true;
    for (i, v) in spec.versions.iter().enumerate() {
        storage += usize::from(v.storage);
        unique &= !spec.versions[..i].iter().any(|o| o.name == v.name);
        let vpath = format!("spec.versions[{i}]");
        let msgs = is_dns1035_label(&v.name);
        if !msgs.is_empty() {
            errs.push(invalid(
                child(&vpath, "name"),
                v.name.as_str(),
                &msgs.join(","),
            ));
        }
        deprecation_warning(
            v.deprecated == Some(true),
            v.deprecation_warning.as_deref(),
            &vpath,
            errs,
        );
        if !c.schema {
            let sub = if c.subresources {
                c.top_subresources
            } else {
                v.subresources.as_ref()
            };
            errs.extend(validate_validation(
                v.schema.as_ref(),
                status_enabled(sub),
                &child(&vpath, "schema"),
            ));
        }
        if !c.subresources {
            subresources(
                v.subresources.as_ref(),
                &child(&vpath, "subresources"),
                errs,
            );
        }
        if !c.columns {
            for (j, col) in v.additional_printer_columns.iter().flatten().enumerate() {
                column(
                    col,
                    &index(&child(&vpath, "additionalPrinterColumns"), j),
                    errs,
                );
            }
        }
    }
    let versions = serde_json::to_value(&spec.versions).unwrap_or(Value::Null);
    if !unique {
        errs.push(invalid_json(
            "spec.versions",
            &versions,
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(invalid_json(
            "spec.versions",
            &versions,
            "must have exactly one version marked as storage version",
        ));
    }
    if let Some(first) = spec.versions.first().filter(|v| !v.name.is_empty()) {
        let msgs = is_dns1035_label(&first.name);
        if !msgs.is_empty() {
            errs.push(invalid(
                "spec.version",
                first.name.as_str(),
                &msgs.join(","),
            ));
        }
    }
    let names = &spec.names;
    for (field, value) in [
        ("plural", names.plural.as_str()),
        ("singular", names.singular.as_deref().unwrap_or("")),
        ("kind", names.kind.as_str()),
        ("listKind", names.list_kind.as_deref().unwrap_or("")),
    ] {
        if value.is_empty() {
            errs.push(required(format!("spec.names.{field}"), ""));
        }
    }
    validate_names(names, "spec.names", errs);
    if c.schema {
        let any_status = spec
            .versions
            .iter()
            .any(|v| status_enabled(v.subresources.as_ref()));
        errs.extend(validate_validation(
            spec.versions[0].schema.as_ref(),
            any_status,
            "spec.validation",
        ));
    }
    if c.subresources {
        subresources(c.top_subresources, "spec.subresources", errs);
    }
    for (j, col) in c.top_columns.iter().enumerate() {
        column(col, &index("spec.additionalPrinterColumns", j), errs);
    }
    if let Some(conv) = &spec.conversion {
        if conv.strategy != "None" && preserve {
            errs.push(invalid(
                "spec.conversion.strategy",
                conv.strategy.as_str(),
                "must be None if spec.preserveUnknownFields is true",
            ));
        }
        conversion(conv, errs);
    }
}

fn deprecation_warning(
    deprecated: bool,
    warning: Option<&str>,
    vpath: &str,
    errs: &mut Vec<FieldError>,
) {
    let field = child(vpath, "deprecationWarning");
    let bad = || warning.map_or(Value::Null, Value::from);
    if !deprecated && warning.is_some() {
        errs.push(invalid(
            field.as_str(),
            bad(),
            "can only be set for deprecated versions",
        ));
    }
    let Some(w) = warning else {
        return;
    };
    if w.len() > 256 {
        errs.push(invalid(
            field.as_str(),
            bad(),
            "must be <= 256 characters long",
        ));
    }
    if w.is_empty() {
        errs.push(invalid(
            field.as_str(),
            bad(),
            "must not be an empty string",
        ));
    }
    if let Some((i, _)) = w.char_indices().find(|(_, c)| c.is_control()) {
        errs.push(invalid(field.as_str(), bad(), &format!("must only contain printable UTF-8 characters; non-printable character found at index {i}")));
    }
}

/// upstream's `ValidateCustomResourceDefinitionNames` (format rules; presence is checked
/// for the spec only).
fn validate_names(names: &CustomResourceDefinitionNames, path: &str, errs: &mut Vec<FieldError>) {
    let label = |field: &str, value: &str, errs: &mut Vec<FieldError>| {
        let msgs = is_dns1035_label(value);
        if !value.is_empty() && !msgs.is_empty() {
            errs.push(invalid(child(path, field), value, &msgs.join(",")));
        }
    };
    let mixed = |field: &str, value: &str, errs: &mut Vec<FieldError>| {
        let msgs = is_dns1035_label(&value.to_lowercase());
        if !value.is_empty() && !msgs.is_empty() {
            errs.push(invalid(
                child(path, field),
                value,
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                ),
            ));
        }
    };
    label("plural", &names.plural, errs);
    label("singular", names.singular.as_deref().unwrap_or(""), errs);
    mixed("kind", &names.kind, errs);
    let list_kind = names.list_kind.as_deref().unwrap_or("");
    mixed("listKind", list_kind, errs);
    for (i, short) in names.short_names.iter().flatten().enumerate() {
        let msgs = is_dns1035_label(short);
        if !msgs.is_empty() {
            errs.push(invalid(
                index(&child(path, "shortNames"), i),
                short.as_str(),
                &msgs.join(","),
            ));
        }
    }
    if !names.kind.is_empty() && names.kind == list_kind {
        errs.push(invalid(
            child(path, "listKind"),
            list_kind,
            "kind and listKind may not be the same",
        ));
    }
    for (i, category) in names.categories.iter().flatten().enumerate() {
        let msgs = is_dns1035_label(category);
        if !msgs.is_empty() {
            errs.push(invalid(
                index(&child(path, "categories"), i),
                category.as_str(),
                &msgs.join(","),
            ));
        }
    }
}
