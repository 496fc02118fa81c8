//! Custom resources in the OpenAPI documents: the definitions (the kind, from its CRD
//! version's `openAPIV3Schema`, and its list) and the paths (collection, item, `status`,
//! `scale`) of every [`CustomKind`], written in OpenAPI v2 form (`#/definitions/` refs) so
//! that they merge into the built-in swagger and go through the same v2 → v3 conversion.
//!
//! The kind's schema comes in two flavours, as upstream publishes it: for v3 it is the CRD's
//! schema as written (plus `apiVersion`, `kind` and a `metadata` reference to `ObjectMeta`);
//! for v2 the constructs kubectl's v2 reader cannot take are removed (`allOf`/`anyOf`/
//! `oneOf`/`not`, `nullable` — which makes a value untyped —, the contents of objects that
//! preserve unknown fields, arrays without items, unknown type names, `$ref`s).

use serde_json::{json, Map, Value};

/// `ObjectMeta`'s definition name.
pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// `ListMeta`'s definition name.
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
/// The definitions every custom kind's operations refer to.
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// One served version of a custom resource, as the OpenAPI documents need it.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomKind {
    /// API group (`stable.example.com`).
    pub group: String,
    /// Version (`v1`).
    pub version: String,
    /// Kind (`CronTab`).
    pub kind: String,
    /// List kind (`CronTabList`).
    pub list_kind: String,
    /// Plural resource name (`crontabs`).
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The CRD version's `openAPIV3Schema` (`null` when it has none).
    pub schema: Value,
    /// Whether the `status` subresource is enabled.
    pub status: bool,
    /// Whether the `scale` subresource is enabled.
    pub scale: bool,
}

impl CustomKind {
    /// The group-version's key in the v3 index: `apis/<group>/<version>`.
    pub fn group_version_path(&self) -> String {
        group_version_path(&self.group, &self.version)
    }

    /// The definition name of the kind, as upstream names it: the group's labels reversed,
    /// then version and kind (`com.example.stable.v1.CronTab`).
    pub fn definition_name(&self) -> String {
        model_name(&self.group, &self.version, &self.kind)
    }

    fn list_definition_name(&self) -> String {
        model_name(&self.group, &self.version, &self.list_kind)
    }

    fn gvk(&self, kind: &str) -> Value {
        json!({ "group": self.group, "version": self.version, "kind": kind })
    }
}

/// `api/<v>` for the core group, `apis/<g>/<v>` otherwise.
pub(crate) fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn model_name(group: &str, version: &str, kind: &str) -> String {
    let mut labels: Vec<&str> = group.split('.').filter(|l| !l.is_empty()).collect();
    labels.reverse();
    labels.push(version);
    labels.push(kind);
    labels.join(".")
}

fn reference(name: &str) -> String {
    format!("#/definitions/{name}")
}

/// Which document a custom kind's schema is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// OpenAPI v2: simplified for kubectl's v2 reader.
    V2,
    /// OpenAPI v3: the CRD's schema as written.
    V3,
}

/// The definitions a custom kind adds: the kind and its list.
pub(crate) fn definitions(kind: &CustomKind, flavor: Flavor) -> Vec<(String, Value)> {
    vec![
        (kind.definition_name(), kind_schema(kind, flavor)),
        (kind.list_definition_name(), list_schema(kind)),
    ]
}

fn type_meta_property(what: &str) -> Value {
    let description = match what {
        "apiVersion" => "The versioned schema of this representation of an object (group/version).",
        _ => "The REST resource this object represents, in CamelCase.",
    };
    json!({ "type": "string", "description": description })
}

fn metadata_property(list: bool) -> Value {
    if list {
        json!({
            "$ref": reference(LIST_META),
            "description": "Standard list metadata.",
        })
    } else {
        json!({
            "$ref": reference(OBJECT_META),
            "description": "Standard object's metadata.",
        })
    }
}

fn kind_schema(kind: &CustomKind, flavor: Flavor) -> Value {
    let gvk = json!([kind.gvk(&kind.kind)]);
    let plain = || json!({ "type": "object", "x-kubernetes-group-version-kind": gvk.clone() });
    let Some(root) = kind.schema.as_object() else {
        return plain();
    };
    if flavor == Flavor::V2 && preserves_unknown(root) {
        // kubectl's v2 reader rejects any field it is not told about: say nothing.
        return plain();
    }
    let mut out = match flavor {
        Flavor::V2 => to_v2(&kind.schema),
        Flavor::V3 => to_v3(&kind.schema),
    };
    let Some(obj) = out.as_object_mut() else {
        return plain();
    };
    let properties = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if !properties.is_object() {
        *properties = Value::Object(Map::new());
    }
    if let Some(props) = properties.as_object_mut() {
        props.insert("apiVersion".into(), type_meta_property("apiVersion"));
        props.insert("kind".into(), type_meta_property("kind"));
        props.insert("metadata".into(), metadata_property(false));
    }
    obj.insert("type".into(), "object".into());
    obj.insert("x-kubernetes-group-version-kind".into(), gvk);
    out
}

fn list_schema(kind: &CustomKind) -> Value {
    json!({
        "type": "object",
        "description": format!("{} is a list of {}", kind.list_kind, kind.kind),
        "required": ["items"],
        "properties": {
            "apiVersion": type_meta_property("apiVersion"),
            "kind": type_meta_property("kind"),
            "items": {
                "type": "array",
                "description": format!("The {} in the list.", kind.plural),
                "items": { "$ref": reference(&kind.definition_name()) },
            },
            "metadata": metadata_property(true),
        },
        "x-kubernetes-group-version-kind": [kind.gvk(&kind.list_kind)],
    })
}

fn flag(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn preserves_unknown(obj: &Map<String, Value>) -> bool {
    flag(obj, "x-kubernetes-preserve-unknown-fields")
}

/// The types kubectl's v2 reader knows.
const V2_TYPES: &[&str] = &["object", "array", "string", "number", "integer", "boolean"];

/// A CRD schema node as OpenAPI v2 can carry it.
fn to_v2(schema: &Value) -> Value {
    let Some(input) = schema.as_object() else {
        return Value::Object(Map::new());
    };
    let mut obj = input.clone();
    for key in ["allOf", "anyOf", "oneOf", "not", "$ref"] {
        obj.remove(key);
    }
    if !obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| V2_TYPES.contains(&t))
    {
        obj.remove("type");
    }
    if flag(&obj, "nullable") {
        // An untyped value: kubectl accepts anything there, null included.
        for key in ["type", "items", "properties"] {
            obj.remove(key);
        }
    }
    obj.remove("nullable");
    if preserves_unknown(&obj) {
        obj.remove("items");
        obj.remove("properties");
        if obj.get("type").and_then(Value::as_str) == Some("object") {
            obj.remove("type");
        }
    }
    // Required fields that may be null cannot be checked by a v2 client.
    let nullable: Vec<String> = match obj.get("properties").and_then(Value::as_object) {
        Some(props) => props
            .iter()
            .filter(|(_, p)| p.as_object().is_some_and(|p| flag(p, "nullable")))
            .map(|(n, _)| n.clone())
            .collect(),
        None => Vec::new(),
    };
    let nullable_values = obj
        .get("additionalProperties")
        .and_then(Value::as_object)
        .is_some_and(|a| flag(a, "nullable"));
    if nullable_values {
        obj.remove("required");
    } else if let Some(Value::Array(required)) = obj.get_mut("required") {
        required.retain(|r| !r.as_str().is_some_and(|r| nullable.iter().any(|n| n == r)));
    }
    match obj.get_mut("properties") {
        Some(Value::Object(props)) => {
            for p in props.values_mut() {
                *p = to_v2(p);
            }
        }
        Some(_) => {
            obj.remove("properties");
        }
        None => {}
    }
    match obj.get("items") {
        Some(items @ Value::Object(_)) => {
            let converted = to_v2(items);
            obj.insert("items".into(), converted);
        }
        Some(_) => {
            obj.remove("items");
        }
        None => {}
    }
    if let Some(additional @ Value::Object(_)) = obj.get("additionalProperties") {
        let converted = to_v2(additional);
        obj.insert("additionalProperties".into(), converted);
    }
    if obj.get("type").and_then(Value::as_str) == Some("array") && !obj.contains_key("items") {
        obj.remove("type");
    }
    Value::Object(obj)
}

/// A CRD schema node for OpenAPI v3: as written, with the type and object metadata of
/// embedded resources (`x-kubernetes-embedded-resource`) spelled out.
fn to_v3(schema: &Value) -> Value {
    let Some(input) = schema.as_object() else {
        return Value::Object(Map::new());
    };
    let mut obj = input.clone();
    obj.remove("$ref");
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for p in props.values_mut() {
            *p = to_v3(p);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub @ Value::Object(_)) = obj.get(key) {
            let converted = to_v3(sub);
            obj.insert(key.into(), converted);
        }
    }
    if flag(&obj, "x-kubernetes-embedded-resource") {
        let props = obj
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(props) = props.as_object_mut() {
            props.insert("apiVersion".into(), type_meta_property("apiVersion"));
            props.insert("kind".into(), type_meta_property("kind"));
            props.insert("metadata".into(), metadata_property(false));
        }
        let required = obj
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(required) = required.as_array_mut() {
            for key in ["kind", "apiVersion"] {
                if !required.iter().any(|r| r == key) {
                    required.push(key.into());
                }
            }
        }
    }
    Value::Object(obj)
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "type": ty,
        "uniqueItems": true,
        "description": description,
    })
}

fn list_parameters() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "Ask for BOOKMARK watch events.",
        ),
        query(
            "continue",
            "string",
            "The continue token of the previous page.",
        ),
        query("fieldSelector", "string", "Select objects by their fields."),
        query("labelSelector", "string", "Select objects by their labels."),
        query(
            "limit",
            "integer",
            "The most objects to return in one page.",
        ),
        query(
            "resourceVersion",
            "string",
            "Serve the list as of this resource version.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "How resourceVersion applies to the list.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "Start a watch with the current objects.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Time limit of the list or watch call.",
        ),
        query("watch", "boolean", "Watch for changes instead of listing."),
    ]
}

fn write_parameters(patch: bool) -> Vec<Value> {
    let mut out =
        vec![
        query("dryRun", "string", "When present (All), nothing is persisted."),
        query("fieldManager", "string", "The name of the actor making the change."),
        query(
            "fieldValidation",
            "string",
            "How to treat unknown or duplicate fields in the object sent: Ignore, Warn or Strict.",
        ),
    ];
    if patch {
        out.push(query(
            "force",
            "boolean",
            "Force an apply request over conflicts.",
        ));
    }
    out
}

fn delete_parameters() -> Vec<Value> {
    vec![
        json!({ "name": "body", "in": "body", "schema": { "$ref": reference(DELETE_OPTIONS) } }),
        query(
            "dryRun",
            "string",
            "When present (All), nothing is persisted.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "Seconds before the object is deleted.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: use propagationPolicy.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Orphan, Background or Foreground.",
        ),
    ]
}

fn body(name: &str) -> Value {
    json!({ "name": "body", "in": "body", "required": true, "schema": { "$ref": reference(name) } })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "type": "string",
        "uniqueItems": true,
        "description": description,
    })
}

/// What one operation of a custom kind does.
struct Op<'a> {
    action: &'a str,
    operation_id: String,
    description: String,
    parameters: Vec<Value>,
    /// Status code, description and the definition returned.
    responses: Vec<(&'a str, &'a str, String)>,
}

impl Op<'_> {
    fn render(self, kind: &CustomKind) -> Value {
        let mut responses = Map::new();
        for (code, description, def) in self.responses {
            responses.insert(
                code.into(),
                json!({ "description": description, "schema": { "$ref": reference(&def) } }),
            );
        }
        responses.insert("401".into(), json!({ "description": "Unauthorized" }));
        let consumes = if self.action == "patch" {
            json!([
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml"
            ])
        } else {
            json!(["application/json", "application/yaml"])
        };
        json!({
            "description": self.description,
            "operationId": self.operation_id,
            "consumes": consumes,
            "produces": ["application/json", "application/yaml"],
            "schemes": ["https"],
            "tags": [format!("{}_{}", kind.group, kind.version)],
            "parameters": self.parameters,
            "responses": responses,
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": kind.gvk(&kind.kind),
        })
    }
}

/// The paths a custom kind adds, each with its operations, in v2 form.
pub(crate) fn paths(kind: &CustomKind) -> Vec<(String, Value)> {
    let k = &kind.kind;
    let scope = if kind.namespaced { "Namespaced" } else { "" };
    let object = kind.definition_name();
    let list = kind.list_definition_name();
    let mut common = vec![query(
        "pretty",
        "string",
        "If 'true', the output is pretty printed.",
    )];
    let base = format!("/{}", kind.group_version_path());
    let mut out = Vec::new();
    let root = if kind.namespaced {
        let all = Op {
            action: "list",
            operation_id: format!("list{k}ForAllNamespaces"),
            description: format!("list objects of kind {k} in every namespace"),
            parameters: list_parameters(),
            responses: vec![("200", "OK", list.clone())],
        };
        let item = json!({ "get": all.render(kind), "parameters": common.clone() });
        out.push((format!("{base}/{}", kind.plural), item));
        common.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
        format!("{base}/namespaces/{{namespace}}/{}", kind.plural)
    } else {
        format!("{base}/{}", kind.plural)
    };
    let collection = json!({
        "get": Op {
            action: "list",
            operation_id: format!("list{scope}{k}"),
            description: format!("list objects of kind {k}"),
            parameters: list_parameters(),
            responses: vec![("200", "OK", list.clone())],
        }.render(kind),
        "post": Op {
            action: "post",
            operation_id: format!("create{scope}{k}"),
            description: format!("create a {k}"),
            parameters: [vec![body(&object)], write_parameters(false)].concat(),
            responses: vec![
                ("200", "OK", object.clone()),
                ("201", "Created", object.clone()),
                ("202", "Accepted", object.clone()),
            ],
        }.render(kind),
        "delete": Op {
            action: "deletecollection",
            operation_id: format!("deletecollection{scope}{k}"),
            description: format!("delete collection of {k}"),
            parameters: [delete_parameters(), list_parameters()].concat(),
            responses: vec![("200", "OK", STATUS.to_owned())],
        }.render(kind),
        "parameters": common.clone(),
    });
    out.push((root.clone(), collection));
    common.push(path_param("name", &format!("name of the {k}")));
    let item_ops = |sub: &str, returned: &str| {
        let suffix = if sub.is_empty() {
            String::new()
        } else {
            let mut chars = sub.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        };
        let of = if sub.is_empty() {
            String::new()
        } else {
            format!(" {sub} of")
        };
        let mut ops = Map::new();
        ops.insert(
            "get".into(),
            Op {
                action: "get",
                operation_id: format!("read{scope}{k}{suffix}"),
                description: format!("read{of} the specified {k}"),
                parameters: Vec::new(),
                responses: vec![("200", "OK", returned.to_owned())],
            }
            .render(kind),
        );
        ops.insert(
            "put".into(),
            Op {
                action: "put",
                operation_id: format!("replace{scope}{k}{suffix}"),
                description: format!("replace{of} the specified {k}"),
                parameters: [vec![body(returned)], write_parameters(false)].concat(),
                responses: vec![
                    ("200", "OK", returned.to_owned()),
                    ("201", "Created", returned.to_owned()),
                ],
            }
            .render(kind),
        );
        ops.insert(
            "patch".into(),
            Op {
                action: "patch",
                operation_id: format!("patch{scope}{k}{suffix}"),
                description: format!("partially update{of} the specified {k}"),
                parameters: [vec![body(PATCH)], write_parameters(true)].concat(),
                responses: vec![
                    ("200", "OK", returned.to_owned()),
                    ("201", "Created", returned.to_owned()),
                ],
            }
            .render(kind),
        );
        ops
    };
    let mut item = item_ops("", &object);
    item.insert(
        "delete".into(),
        Op {
            action: "delete",
            operation_id: format!("delete{scope}{k}"),
            description: format!("delete a {k}"),
            parameters: delete_parameters(),
            responses: vec![
                ("200", "OK", STATUS.to_owned()),
                ("202", "Accepted", STATUS.to_owned()),
            ],
        }
        .render(kind),
    );
    item.insert("parameters".into(), Value::Array(common.clone()));
    out.push((format!("{root}/{{name}}"), Value::Object(item)));
    for (enabled, sub, returned) in [
        (kind.status, "status", object.as_str()),
        (kind.scale, "scale", SCALE),
    ] {
        if enabled {
            let mut ops = item_ops(sub, returned);
            ops.insert("parameters".into(), Value::Array(common.clone()));
            out.push((format!("{root}/{{name}}/{sub}"), Value::Object(ops)));
        }
    }
    out
}

#[cfg(test)]
#[path = "custom_tests.rs"]
pub(crate) mod tests;
