//! What makes a CRD schema structural, as upstream's `NewStructural` (unsupported keywords),
//! `ValidateStructural` (every node typed, no `additionalProperties` at the root or beside
//! `properties`, logical junctors that only restrict values, root `metadata` restricted to
//! `name`/`generateName`...) and `ValidateDefaults` (defaults pruned and valid against
//! their own schema), with upstream's paths (`openAPIV3Schema.properties[spec].type`) and
//! messages. Errors of `ValidateStructural` come sorted by their text, as upstream sorts them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray as OrArray, JSONSchemaPropsOrBool as OrBool,
};
use serde_json::Value;

use super::objectmeta::validate_embedded;
use super::prune::prune_value;
use super::structural::{compile_pattern, unsupported_field, Schema, SchemaError};
use super::validate::validate_value;
use super::{child, index, key};
use crate::strategy::{forbidden, invalid, required, FieldError};

/// Where a node sits, for the "type must not be empty" messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn is_true(b: Option<bool>) -> bool {
    b == Some(true)
}

fn non_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn items_schema(p: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &p.items {
        Some(OrArray::Schema(s)) => Some(s),
        _ => None,
    }
}

fn additional_schema(p: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &p.additional_properties {
        Some(OrBool::Schema(s)) => Some(s),
        _ => None,
    }
}

/// upstream's `NewStructural` failure for a schema, if any.
pub(crate) fn init_error(p: &JSONSchemaProps) -> Option<SchemaError> {
    if let Some(e) = unsupported_field(p) {
        return Some(e);
    }
    let junctors = p.not.iter().map(|b| &**b).chain(p.all_of.iter().flatten());
    for j in junctors
        .chain(p.any_of.iter().flatten())
        .chain(p.one_of.iter().flatten())
    {
        if let Some(e) = init_error(j) {
            return Some(e);
        }
    }
    if p.x_kubernetes_preserve_unknown_fields == Some(false) {
        return Some(SchemaError::PreserveUnknownFalse);
    }
    match &p.items {
        Some(OrArray::Schemas(_)) => return Some(SchemaError::ItemsArray),
        Some(OrArray::Schema(s)) => {
            if let Some(e) = init_error(s) {
                return Some(e);
            }
        }
        None => {}
    }
    for prop in p.properties.iter().flatten().map(|(_, v)| v) {
        if let Some(e) = init_error(prop) {
            return Some(e);
        }
    }
    additional_schema(p).and_then(init_error)
}

/// upstream's `ValidateStructural`: invariants and completeness, sorted by message.
pub(crate) fn validate_structural(p: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    invariants(p, Level::Root, path, &mut errs);
    for (name, nested) in junctors(p) {
        completeness(nested, p, path, &child(path, &name), &mut errs);
    }
    errs.sort_by_key(FieldError::message);
    errs
}

/// The logical junctors of a node with their path segment (`not`, `allOf[0]`...), in
/// upstream's order for completeness checks.
fn junctors(p: &JSONSchemaProps) -> Vec<(String, &JSONSchemaProps)> {
    let mut out: Vec<(String, &JSONSchemaProps)> = Vec::new();
    if let Some(not) = &p.not {
        out.push(("not".into(), not));
    }
    for (name, list) in [
        ("allOf", &p.all_of),
        ("anyOf", &p.any_of),
        ("oneOf", &p.one_of),
    ] {
        for (i, j) in list.iter().flatten().enumerate() {
            out.push((index(name, i), j));
        }
    }
    out
}

fn typed(t: &str) -> JSONSchemaProps {
    JSONSchemaProps {
        type_: Some(t.to_owned()),
        ..Default::default()
    }
}

/// `anyOf: [{type: integer}, {type: string}]`, the int-or-string idiom.
fn int_or_string_any_of(list: &Option<Vec<JSONSchemaProps>>) -> bool {
    list.as_deref() == Some(&[typed("integer"), typed("string")][..])
}

fn invariants(s: &JSONSchemaProps, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    let ty = s.type_.as_deref().unwrap_or("");
    if ty == "array" && s.items.is_none() {
        errs.push(required(child(path, "items"), "must be specified"));
    }
    if let Some(items) = items_schema(s) {
        invariants(items, Level::Item, &child(path, "items"), errs);
    }
    for (k, prop) in s.properties.iter().flatten() {
        invariants(
            prop,
            Level::Field,
            &key(&child(path, "properties"), k),
            errs,
        );
    }
    if s.additional_properties.is_some() {
        if lvl == Level::Root {
            errs.push(forbidden(
                child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(extra) = additional_schema(s) {
            invariants(
                extra,
                Level::Field,
                &child(path, "additionalProperties"),
                errs,
            );
        }
    }
    let int_or_string = is_true(s.x_kubernetes_int_or_string);
    let preserve = is_true(s.x_kubernetes_preserve_unknown_fields);
    let embedded = is_true(s.x_kubernetes_embedded_resource);
    if int_or_string && preserve {
        errs.push(invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(invalid(
            child(path, "x-kubernetes-embedded-resource"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = int_or_string_any_of(&s.any_of);
    let skip_first_all_of = s
        .all_of
        .as_ref()
        .and_then(|a| a.first())
        .is_some_and(|first| int_or_string_any_of(&first.any_of));
    value_validation(s, skip_any_of, skip_first_all_of, path, errs);
    if embedded && ty != "object" {
        let msg = "must be object if x-kubernetes-embedded-resource is true";
        if ty.is_empty() {
            errs.push(required(child(path, "type"), msg));
        } else {
            errs.push(invalid(child(path, "type"), ty, msg));
        }
    } else if ty.is_empty() && !int_or_string && !preserve {
        let msg = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(required(child(path, "type"), msg));
    }
    if embedded && s.additional_properties.is_some() {
        errs.push(forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(invalid(
            child(path, "type"),
            ty,
            "must be object at the root",
        ));
    }
    let check_meta = lvl == Level::Root || embedded;
    let props_path = child(path, "properties");
    for name in ["kind", "apiVersion"] {
        if let Some(prop) = s
            .properties
            .as_ref()
            .and_then(|m| m.get(name))
            .filter(|_| check_meta)
        {
            let t = prop.type_.as_deref().unwrap_or("");
            if t != "string" {
                errs.push(invalid(
                    child(&key(&props_path, name), "type"),
                    t,
                    "must be string",
                ));
            }
        }
    }
    if let Some(meta) = s.properties.as_ref().and_then(|m| m.get("metadata")) {
        metadata_invariants(meta, check_meta, lvl, &key(&props_path, "metadata"), errs);
    }
    if embedded && !preserve && !non_empty_map(&s.properties) {
        errs.push(required(props_path, "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"));
    }
}

fn non_empty_map<V>(m: &Option<std::collections::BTreeMap<String, V>>) -> bool {
    m.as_ref().is_some_and(|m| !m.is_empty())
}

fn metadata_invariants(
    s: &JSONSchemaProps,
    check: bool,
    lvl: Level,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let ty = s.type_.as_deref().unwrap_or("");
    if check && ty != "object" {
        errs.push(invalid(child(path, "type"), ty, "must be object"));
    }
    if lvl != Level::Root {
        return;
    }
    let mut rest = s.clone();
    rest.type_ = None;
    rest.default = None;
    if let Some(props) = &rest.properties {
        let name = props.contains_key("name");
        let generate = props.contains_key("generateName");
        if (name && generate && props.len() == 2) || ((name || generate) && props.len() == 1) {
            rest.properties = None;
        }
    }
    if !is_zero(&rest) {
        errs.push(forbidden(path, "must not specify anything other than name and generateName, but metadata is implicitly specified"));
    }
}

/// Whether a schema sets nothing (Go's zero value: false booleans and empty lists count as
/// unset).
fn is_zero(p: &JSONSchemaProps) -> bool {
    let mut q = p.clone();
    for b in [
        &mut q.nullable,
        &mut q.exclusive_maximum,
        &mut q.exclusive_minimum,
        &mut q.unique_items,
        &mut q.x_kubernetes_embedded_resource,
        &mut q.x_kubernetes_int_or_string,
    ] {
        if *b == Some(false) {
            *b = None;
        }
    }
    for s in [
        &mut q.description,
        &mut q.format,
        &mut q.pattern,
        &mut q.title,
    ] {
        if s.as_deref() == Some("") {
            *s = None;
        }
    }
    if q.required.as_ref().is_some_and(Vec::is_empty) {
        q.required = None;
    }
    if q.enum_.as_ref().is_some_and(Vec::is_empty) {
        q.enum_ = None;
    }
    if q.x_kubernetes_list_map_keys
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        q.x_kubernetes_list_map_keys = None;
    }
    if q.x_kubernetes_validations
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        q.x_kubernetes_validations = None;
    }
    for l in [&mut q.all_of, &mut q.any_of, &mut q.one_of] {
        if l.as_ref().is_some_and(Vec::is_empty) {
            *l = None;
        }
    }
    if q.properties.as_ref().is_some_and(|m| m.is_empty()) {
        q.properties = None;
    }
    q == JSONSchemaProps::default()
}

/// upstream's `validateValueValidation`: the junctors' nested rules and the pattern.
fn value_validation(
    s: &JSONSchemaProps,
    skip_any_of: bool,
    skip_first_all_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, j) in s.any_of.iter().flatten().enumerate() {
            nested(j, false, &index(&child(path, "anyOf"), i), errs);
        }
    }
    for (i, j) in s.all_of.iter().flatten().enumerate() {
        nested(
            j,
            skip_first_all_of && i == 0,
            &index(&child(path, "allOf"), i),
            errs,
        );
    }
    for (i, j) in s.one_of.iter().flatten().enumerate() {
        nested(j, false, &index(&child(path, "oneOf"), i), errs);
    }
    if let Some(not) = &s.not {
        nested(not, false, &child(path, "not"), errs);
    }
    if let Some(pattern) = s.pattern.as_deref().filter(|p| !p.is_empty()) {
        if let Err(e) = compile_pattern(pattern) {
            errs.push(invalid(
                child(path, "pattern"),
                pattern,
                &format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
}

/// upstream's `validateNestedValueValidation`: inside a junctor only value validations are
/// allowed.
fn nested(v: &JSONSchemaProps, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    let skip_all_of_any_of = false;
    value_validation(v, skip_any_of, skip_all_of_any_of, path, errs);
    if let Some(items) = items_schema(v) {
        nested(items, false, &child(path, "items"), errs);
    }
    for (k, prop) in v.properties.iter().flatten() {
        nested(prop, false, &key(&child(path, "properties"), k), errs);
    }
    let f = |name: &str, msg: &str| forbidden(child(path, name), msg);
    if v.type_.as_deref().is_some_and(|t| !t.is_empty()) {
        errs.push(f("type", "must be empty to be structural"));
    }
    if matches!(
        v.additional_properties,
        Some(OrBool::Schema(_)) | Some(OrBool::Bool(true))
    ) {
        errs.push(f(
            "additionalProperties",
            "must be undefined to be structural",
        ));
    }
    if v.default.is_some() {
        errs.push(f("default", "must be undefined to be structural"));
    }
    if v.title.as_deref().is_some_and(|t| !t.is_empty()) {
        errs.push(f("title", "must be empty to be structural"));
    }
    if v.description.as_deref().is_some_and(|t| !t.is_empty()) {
        errs.push(f("description", "must be empty to be structural"));
    }
    if is_true(v.nullable) {
        errs.push(f("nullable", "must be false to be structural"));
    }
    if is_true(v.x_kubernetes_preserve_unknown_fields) {
        errs.push(f(
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ));
    }
    if is_true(v.x_kubernetes_embedded_resource) {
        errs.push(f(
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ));
    }
    if is_true(v.x_kubernetes_int_or_string) {
        errs.push(f(
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ));
    }
    if non_empty(&v.x_kubernetes_list_map_keys) {
        errs.push(f(
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ));
    }
    if v.x_kubernetes_list_type.is_some() {
        errs.push(f(
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ));
    }
    if v.x_kubernetes_map_type.is_some() {
        errs.push(f(
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ));
    }
    if non_empty(&v.x_kubernetes_validations) {
        errs.push(f(
            "x-kubernetes-validations",
            "must be empty to be structural",
        ));
    }
    if v.properties
        .as_ref()
        .is_some_and(|m| m.contains_key("metadata"))
    {
        errs.push(forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// upstream's completeness rule: what a junctor constrains must exist in the structural
/// part of the schema.
fn completeness(
    v: &JSONSchemaProps,
    s: &JSONSchemaProps,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    for (name, j) in junctors(v) {
        completeness(j, s, s_path, &child(v_path, &name), errs);
    }
    if let Some(v_items) = items_schema(v) {
        let (sp, vp) = (child(s_path, "items"), child(v_path, "items"));
        match items_schema(s) {
            Some(s_items) => completeness(v_items, s_items, &sp, &vp, errs),
            None => errs.push(required(sp, &format!("because it is defined in {vp}"))),
        }
    }
    for (k, v_prop) in v.properties.iter().flatten() {
        let sp = key(&child(s_path, "properties"), k);
        let vp = key(&child(v_path, "properties"), k);
        match s.properties.as_ref().and_then(|m| m.get(k)) {
            Some(s_prop) => completeness(v_prop, s_prop, &sp, &vp, errs),
            None => errs.push(required(sp, &format!("because it is defined in {vp}"))),
        }
    }
}

/// upstream's `ValidateDefaults` for a version's schema (the root counts as a resource):
/// every default outside the root's metadata must survive pruning unchanged and validate
/// against its own node (embedded resources' type and object meta included).
pub(crate) fn validate_defaults(p: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    let Ok(root) = Schema::compile(p) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    defaults_below(&root, path, true, false, &mut errs);
    errs
}

fn defaults_below(
    s: &Schema,
    path: &str,
    resource_root: bool,
    inside_meta: bool,
    errs: &mut Vec<FieldError>,
) {
    let embedded = resource_root || s.embedded;
    let inside_meta = inside_meta && !embedded;
    if let (Some(default), false) = (&s.default, inside_meta) {
        let dpath = child(path, "default");
        let mut pruned = default.clone();
        prune_value(s, &mut pruned, s.embedded);
        if pruned != *default {
            errs.push(invalid(
                dpath.as_str(),
                default.clone(),
                "must not have unknown fields",
            ));
        }
        let meta_errs = validate_embedded(s, &dpath, default, s.embedded);
        if meta_errs.is_empty() {
            errs.extend(validate_value(s, &dpath, default));
        } else {
            errs.extend(meta_errs);
        }
    }
    if let Some(items) = &s.items {
        defaults_below(items, &child(path, "items"), false, inside_meta, errs);
    }
    for (k, prop) in &s.properties {
        let meta = embedded && matches!(k.as_str(), "metadata" | "apiVersion" | "kind");
        let ppath = key(&child(path, "properties"), k);
        defaults_below(prop, &ppath, false, inside_meta || meta, errs);
    }
}

/// The bad value upstream shows for a whole schema.
pub(crate) fn schema_json(p: &JSONSchemaProps) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}
