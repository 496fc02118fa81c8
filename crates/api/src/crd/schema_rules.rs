//! Validation of one `schema.openAPIV3Schema` of a CRD, as upstream's
//! `validateCustomResourceDefinitionValidation`: the root restrictions when the status
//! subresource is on, the structural rules (see `structural_rules.rs`), and the per-node
//! OpenAPI rules of `ValidateCustomResourceDefinitionOpenAPISchema` (supported keywords,
//! `uniqueItems`, `additionalProperties` beside `properties`, defaults forbidden in the
//! root's metadata, the `x-kubernetes-*` extensions, and the syntax of
//! `x-kubernetes-validations`; the CEL rules themselves are not compiled).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceValidation, JSONSchemaProps, JSONSchemaPropsOrArray as OrArray,
    JSONSchemaPropsOrBool as OrBool, JSONSchemaPropsOrStringArray,
};
use serde_json::Value;

use super::structural_rules::{init_error, schema_json, validate_defaults, validate_structural};
use super::{child, index, key};
use crate::strategy::{forbidden, invalid, invalid_json, not_supported, required, FieldError};

const ROOT_FIELDS_WITH_STATUS: &str = "[Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations]";

/// The errors of a CRD's (or a version's) `validation`/`schema` section found at `path`
/// (`spec.validation` or `spec.versions[i].schema`).
pub(crate) fn validate_validation(
    v: Option<&CustomResourceValidation>,
    status_enabled: bool,
    path: &str,
) -> Vec<FieldError> {
    let Some(schema) = v.and_then(|v| v.open_api_v3_schema.as_ref()) else {
        return Vec::new();
    };
    let root = child(path, "openAPIV3Schema");
    let mut errs = Vec::new();
    if status_enabled {
        root_with_status(schema, &root, &mut errs);
    }
    if schema.nullable == Some(true) {
        errs.push(forbidden(
            child(&root, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut init_errs = Vec::new();
    match init_error(schema) {
        Some(e) => init_errs.push(invalid(root.as_str(), "", &e.to_string())),
        None => {
            let structural = validate_structural(schema, &root);
            if structural.is_empty() {
                errs.extend(validate_defaults(schema, &root));
            } else {
                errs.extend(structural);
            }
        }
    }
    let ssv = Ssv {
        allow_defaults: true,
        reason: String::new(),
        inside_meta: false,
    };
    openapi_rules(schema, &root, &ssv, true, &mut errs);
    if errs.is_empty() {
        errs.extend(init_errs);
    }
    errs
}

/// With the status subresource, the root may only use the keywords that survive extracting
/// `properties.status`; the first offending field is reported.
fn root_with_status(s: &JSONSchemaProps, root: &str, errs: &mut Vec<FieldError>) {
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    let on = |b: Option<bool>| b == Some(true);
    let ty = s.type_.as_deref().unwrap_or("");
    // (field is set, field is allowed) in the order of upstream's struct.
    let fields: [(bool, bool); 45] = [
        (set(&s.id), false),
        (set(&s.schema), false),
        (set(&s.ref_path), false),
        (set(&s.description), true),
        (!ty.is_empty(), true),
        (set(&s.format), true),
        (set(&s.title), true),
        (s.default.is_some(), false),
        (s.maximum.is_some(), true),
        (on(s.exclusive_maximum), true),
        (s.minimum.is_some(), true),
        (on(s.exclusive_minimum), true),
        (s.max_length.is_some(), true),
        (s.min_length.is_some(), true),
        (set(&s.pattern), true),
        (s.max_items.is_some(), true),
        (s.min_items.is_some(), true),
        (on(s.unique_items), true),
        (s.multiple_of.is_some(), true),
        (s.enum_.as_ref().is_some_and(|e| !e.is_empty()), false),
        (s.max_properties.is_some(), false),
        (s.min_properties.is_some(), false),
        (s.required.as_ref().is_some_and(|r| !r.is_empty()), true),
        (s.items.is_some(), true),
        (s.all_of.as_ref().is_some_and(|l| !l.is_empty()), false),
        (s.one_of.as_ref().is_some_and(|l| !l.is_empty()), false),
        (s.any_of.as_ref().is_some_and(|l| !l.is_empty()), false),
        (s.not.is_some(), false),
        (s.properties.as_ref().is_some_and(|p| !p.is_empty()), true),
        (s.additional_properties.is_some(), false),
        (
            s.pattern_properties.as_ref().is_some_and(|p| !p.is_empty()),
            false,
        ),
        (
            s.dependencies.as_ref().is_some_and(|p| !p.is_empty()),
            false,
        ),
        (s.additional_items.is_some(), false),
        (s.definitions.as_ref().is_some_and(|p| !p.is_empty()), false),
        (s.external_docs.is_some(), true),
        (s.example.is_some(), true),
        (on(s.nullable), false),
        (s.x_kubernetes_preserve_unknown_fields.is_some(), true),
        (on(s.x_kubernetes_embedded_resource), false),
        (on(s.x_kubernetes_int_or_string), false),
        (
            s.x_kubernetes_list_map_keys
                .as_ref()
                .is_some_and(|k| !k.is_empty()),
            false,
        ),
        (s.x_kubernetes_list_type.is_some(), false),
        (s.x_kubernetes_map_type.is_some(), false),
        (
            s.x_kubernetes_validations
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
            true,
        ),
        (false, true),
    ];
    for (i, (is_set, allowed)) in fields.into_iter().enumerate() {
        if !is_set {
            continue;
        }
        if i == 4 {
            if ty != "object" {
                errs.push(invalid(child(root, "type"), ty, r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#));
                return;
            }
            continue;
        }
        if !allowed {
            errs.push(invalid_json(root, &schema_json(s), &format!("only {ROOT_FIELDS_WITH_STATUS} fields are allowed at the root of the schema if the status subresource is enabled")));
            return;
        }
    }
}

/// upstream's `specStandardValidatorV3` state while walking the schema.
#[derive(Clone)]
struct Ssv {
    allow_defaults: bool,
    reason: String,
    inside_meta: bool,
}

impl Ssv {
    fn forbid_defaults(&self, reason: String) -> Ssv {
        Ssv {
            allow_defaults: false,
            reason,
            ..self.clone()
        }
    }

    /// The keyword checks of one node.
    fn check(&self, s: &JSONSchemaProps, path: &str, errs: &mut Vec<FieldError>) {
        let f = |name: &str| child(path, name);
        let ty = s.type_.as_deref().unwrap_or("");
        const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
        if !ty.is_empty() && !TYPES.contains(&ty) {
            errs.push(not_supported(f("type"), ty, &TYPES));
        }
        if s.default.is_some() && !self.allow_defaults {
            let mut detail = "must not be set".to_owned();
            if !self.reason.is_empty() {
                detail.push(' ');
                detail.push_str(&self.reason);
            }
            errs.push(forbidden(f("default"), &detail));
        }
        if s.id.as_deref().is_some_and(|i| !i.is_empty()) {
            errs.push(forbidden(f("id"), "id is not supported"));
        }
        if s.additional_items.is_some() {
            errs.push(forbidden(
                f("additionalItems"),
                "additionalItems is not supported",
            ));
        }
        if s.pattern_properties.as_ref().is_some_and(|p| !p.is_empty()) {
            errs.push(forbidden(
                f("patternProperties"),
                "patternProperties is not supported",
            ));
        }
        if s.definitions.as_ref().is_some_and(|p| !p.is_empty()) {
            errs.push(forbidden(f("definitions"), "definitions is not supported"));
        }
        if s.dependencies.is_some() {
            errs.push(forbidden(
                f("dependencies"),
                "dependencies is not supported",
            ));
        }
        if s.ref_path.is_some() {
            errs.push(forbidden(f("$ref"), "$ref is not supported"));
        }
        if ty == "null" {
            errs.push(forbidden(
                f("type"),
                "type cannot be set to null, use nullable as an alternative",
            ));
        }
        if matches!(s.items, Some(OrArray::Schemas(ref l)) if !l.is_empty()) {
            errs.push(forbidden(
                f("items"),
                "items must be a schema object and not an array",
            ));
        }
        if self.inside_meta && s.x_kubernetes_embedded_resource == Some(true) {
            errs.push(forbidden(
                f("x-kubernetes-embedded-resource"),
                "must not be used inside of resource meta",
            ));
        }
    }
}

fn openapi_rules(
    s: &JSONSchemaProps,
    path: &str,
    ssv: &Ssv,
    is_root: bool,
    errs: &mut Vec<FieldError>,
) {
    let f = |name: &str| child(path, name);
    ssv.check(s, path, errs);
    if s.unique_items == Some(true) {
        errs.push(forbidden(
            f("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let has_props = s.properties.as_ref().is_some_and(|p| !p.is_empty());
    if let Some(additional) = &s.additional_properties {
        if has_props && !matches!(additional, OrBool::Bool(true)) {
            errs.push(forbidden(
                f("additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let OrBool::Schema(extra) = additional {
            let sub = if ssv.inside_meta {
                ssv.forbid_defaults(
                    "inside additionalProperties applying to object metadata".into(),
                )
            } else {
                ssv.clone()
            };
            openapi_rules(extra, &f("additionalProperties"), &sub, false, errs);
        }
    }
    let embedded = s.x_kubernetes_embedded_resource == Some(true);
    for (name, prop) in s.properties.iter().flatten() {
        let mut sub = ssv.clone();
        if (is_root || embedded) && matches!(name.as_str(), "metadata" | "kind" | "apiVersion") {
            sub.inside_meta = true;
            if is_root {
                sub = sub.forbid_defaults(format!("in top-level {name}"));
            }
        }
        openapi_rules(prop, &key(&f("properties"), name), &sub, false, errs);
    }
    if let Some(not) = &s.not {
        openapi_rules(not, &f("not"), ssv, false, errs);
    }
    for (name, list) in [
        ("allOf", &s.all_of),
        ("oneOf", &s.one_of),
        ("anyOf", &s.any_of),
    ] {
        for (i, j) in list.iter().flatten().enumerate() {
            openapi_rules(j, &index(&f(name), i), ssv, false, errs);
        }
    }
    for (name, d) in s.definitions.iter().flatten() {
        openapi_rules(d, &key(&f("definitions"), name), ssv, false, errs);
    }
    match &s.items {
        Some(OrArray::Schema(items)) => openapi_rules(items, &f("items"), ssv, false, errs),
        Some(OrArray::Schemas(list)) => {
            for (i, j) in list.iter().enumerate() {
                openapi_rules(j, &index(&f("items"), i), ssv, false, errs);
            }
        }
        None => {}
    }
    for (name, d) in s.dependencies.iter().flatten() {
        if let JSONSchemaPropsOrStringArray::Schema(d) = d {
            openapi_rules(d, &key(&f("dependencies"), name), ssv, false, errs);
        }
    }
    extensions(s, path, errs);
    validations_syntax(s, path, errs);
}

/// The `x-kubernetes-*` extension rules of one node.
fn extensions(s: &JSONSchemaProps, path: &str, errs: &mut Vec<FieldError>) {
    let f = |name: &str| child(path, name);
    let ty = s.type_.as_deref().unwrap_or("");
    if s.x_kubernetes_preserve_unknown_fields == Some(false) {
        errs.push(invalid(
            f("x-kubernetes-preserve-unknown-fields"),
            false,
            "must be true or undefined",
        ));
    }
    if let Some(map_type) = s.x_kubernetes_map_type.as_deref() {
        let msg = "must be object if x-kubernetes-map-type is specified";
        if ty.is_empty() {
            errs.push(required(f("type"), msg));
        } else if ty != "object" {
            errs.push(invalid(f("type"), ty, msg));
        }
        if map_type != "atomic" && map_type != "granular" {
            errs.push(not_supported(
                f("x-kubernetes-map-type"),
                map_type,
                &["atomic", "granular"],
            ));
        }
    }
    let list_type = s.x_kubernetes_list_type.as_deref();
    let items = match &s.items {
        Some(OrArray::Schema(i)) => Some(&**i),
        _ => None,
    };
    if let (Some(_), true) = (list_type, ty != "array") {
        let msg = "must be array if x-kubernetes-list-type is specified";
        if ty.is_empty() {
            errs.push(required(f("type"), msg));
        } else {
            errs.push(invalid(f("type"), ty, msg));
        }
    } else if let (Some("set"), Some(is)) = (list_type, items) {
        let msg = "must be atomic as item of a list with x-kubernetes-list-type=set";
        let item_list = is.x_kubernetes_list_type.as_deref();
        match is.type_.as_deref() {
            Some("array") if item_list.is_some_and(|t| t != "atomic") => {
                errs.push(invalid(
                    child(&f("items"), "x-kubernetes-list-type"),
                    item_list.unwrap_or(""),
                    msg,
                ));
            }
            Some("object") if is.x_kubernetes_map_type.as_deref() != Some("atomic") => {
                let bad = item_list.map_or(Value::Null, Value::from);
                errs.push(invalid(
                    child(&f("items"), "x-kubernetes-map-type"),
                    bad,
                    msg,
                ));
            }
            _ => {}
        }
    }
    if let Some(lt) = list_type.filter(|t| !matches!(*t, "atomic" | "set" | "map")) {
        errs.push(not_supported(
            f("x-kubernetes-list-type"),
            lt,
            &["atomic", "set", "map"],
        ));
    }
    let keys = s.x_kubernetes_list_map_keys.clone().unwrap_or_default();
    if !keys.is_empty() {
        let msg = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type {
            None => errs.push(required(f("x-kubernetes-list-type"), msg)),
            Some("map") => {}
            Some(other) => errs.push(invalid(f("x-kubernetes-list-type"), other, msg)),
        }
    }
    if list_type == Some("map") {
        list_map_rules(s, &keys, items, path, errs);
    }
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, items) {
        if is.nullable == Some(true) {
            errs.push(forbidden(
                child(&f("items"), "nullable"),
                &format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            let required_keys = is.required.clone().unwrap_or_default();
            for k in &keys {
                let Some(prop) = is.properties.as_ref().and_then(|p| p.get(k)) else {
                    continue;
                };
                let kpath = key(&child(&f("items"), "properties"), k);
                if !required_keys.contains(k) && prop.default.is_none() {
                    errs.push(required(child(&kpath, "default"), "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"));
                }
                if prop.nullable == Some(true) {
                    errs.push(forbidden(
                        child(&kpath, "nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

fn list_map_rules(
    s: &JSONSchemaProps,
    keys: &[String],
    items: Option<&JSONSchemaProps>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let f = |name: &str| child(path, name);
    if keys.is_empty() {
        errs.push(required(
            f("x-kubernetes-list-map-keys"),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    match &s.items {
        None => errs.push(required(
            f("items"),
            "must have a schema if x-kubernetes-list-type is map",
        )),
        Some(OrArray::Schemas(list)) => errs.push(invalid_json(
            f("items"),
            list,
            "must only have a single schema if x-kubernetes-list-type is map",
        )),
        Some(OrArray::Schema(_)) => {}
    }
    let Some(is) = items else {
        return;
    };
    let item_type = is.type_.as_deref().unwrap_or("");
    if item_type != "object" {
        errs.push(invalid(
            child(&f("items"), "type"),
            item_type,
            "must be object if parent array's x-kubernetes-list-type is map",
        ));
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for k in keys {
        match is.properties.as_ref().and_then(|p| p.get(k)) {
            Some(prop) => {
                if matches!(prop.type_.as_deref(), Some("array" | "object")) {
                    let p = child(&key(&child(&f("items"), "properties"), k), "type");
                    errs.push(invalid(
                        p,
                        item_type,
                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                    ));
                }
            }
            None => errs.push(invalid_json(
                f("x-kubernetes-list-map-keys"),
                &keys,
                "entries must all be names of item properties",
            )),
        }
        if seen.contains(&k.as_str()) {
            errs.push(invalid_json(
                f("x-kubernetes-list-map-keys"),
                &keys,
                "must not contain duplicate entries",
            ));
        }
        seen.push(k);
    }
}

/// The syntax of `x-kubernetes-validations` (the rules are not compiled).
fn validations_syntax(s: &JSONSchemaProps, path: &str, errs: &mut Vec<FieldError>) {
    const REASONS: [&str; 4] = [
        "FieldValueDuplicate",
        "FieldValueForbidden",
        "FieldValueInvalid",
        "FieldValueRequired",
    ];
    let newline = |t: &str| t.contains(['\n', '\r']);
    for (i, rule) in s.x_kubernetes_validations.iter().flatten().enumerate() {
        let rpath = index(&child(path, "x-kubernetes-validations"), i);
        let f = |name: &str| child(&rpath, name);
        let message = rule.message.as_deref().unwrap_or("");
        let trimmed_rule = rule.rule.trim();
        let trimmed_msg = message.trim();
        if trimmed_rule.is_empty() {
            errs.push(required(f("rule"), "rule is not specified"));
        } else if !message.is_empty() && trimmed_msg.is_empty() {
            errs.push(invalid(
                f("message"),
                message,
                "must be non-empty if specified",
            ));
        } else if newline(trimmed_msg) {
            errs.push(invalid(
                f("message"),
                message,
                "must not contain line breaks",
            ));
        } else if newline(trimmed_rule) && trimmed_msg.is_empty() {
            errs.push(required(
                f("message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        let expr = rule.message_expression.as_deref().unwrap_or("");
        if !expr.is_empty() && expr.trim().is_empty() {
            errs.push(required(
                f("messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = rule.reason.as_deref().filter(|r| !REASONS.contains(r)) {
            errs.push(not_supported(f("reason"), reason, &REASONS));
        }
        let field_path = rule.field_path.as_deref().unwrap_or("");
        if !field_path.is_empty() && field_path.trim().is_empty() {
            errs.push(invalid(
                f("fieldPath"),
                field_path,
                "must be non-empty if specified",
            ));
        }
        if newline(field_path) {
            errs.push(invalid(
                f("fieldPath"),
                field_path,
                "must not contain line breaks",
            ));
        }
    }
}
