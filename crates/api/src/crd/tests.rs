//! Tests of the custom resource side: validation, defaulting, pruning and the apply type of
//! a CronTab-like schema.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{json, Value};

use super::*;
use crate::schema::{builtin, ListType, Node, Ty};
use crate::strategy::{ErrorType, FieldError};

/// The CronTab CRD the tests share.
pub(super) fn crontab_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["cronSpec", "image"],
                            "properties": {
                                "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                                "image": {"type": "string", "minLength": 1, "maxLength": 64},
                                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                                "policy": {"type": "string", "enum": ["Allow", "Forbid", "Replace"], "default": "Allow"},
                                "ports": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["name"],
                                    "items": {"type": "object", "required": ["name"], "properties": {
                                        "name": {"type": "string"},
                                        "port": {"type": "integer", "format": "int32", "default": 80}
                                    }}
                                },
                                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                                "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "startedAt": {"type": "string", "format": "date-time"},
                                "target": {"x-kubernetes-int-or-string": true},
                                "ratio": {"type": "number", "multipleOf": 0.5, "exclusiveMaximum": true, "maximum": 2},
                                "schedule": {"type": "object", "default": {}, "properties": {
                                    "timezone": {"type": "string", "default": "UTC"}
                                }}
                            }
                        },
                        "status": {"type": "object", "properties": {
                            "replicas": {"type": "integer"},
                            "lastRun": {"type": "string", "format": "date-time"},
                            "conditions": {"type": "array", "items": {"type": "object", "properties": {
                                "type": {"type": "string"}, "status": {"type": "string"}
                            }}}
                        }}
                    }
                }},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRun"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "priority": 1}
                ]
            }]
        }
    })
}

pub(super) fn crontab_schema() -> JSONSchemaProps {
    let crd = crontab_crd();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    serde_json::from_value(schema.clone()).expect("schema decodes")
}

fn structural() -> Structural {
    Structural::new(&crontab_schema()).expect("structural")
}

fn valid_object() -> Value {
    json!({
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "my-cron", "namespace": "default"},
        "spec": {
            "cronSpec": "*/5 * * * *",
            "image": "my-cron-image",
            "replicas": 3,
            "policy": "Forbid",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
            "tags": ["a", "b"],
            "config": {"anything": {"goes": [1, 2]}},
            "labels": {"team": "infra"},
            "startedAt": "2024-05-01T10:00:00Z",
            "target": "50%",
            "ratio": 1.5
        }
    })
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::message).collect()
}

/// The messages for the valid object with `spec[field]` replaced by `value`.
fn spec_errors(field: &str, value: Value) -> Vec<String> {
    let mut obj = valid_object();
    obj["spec"][field] = value;
    messages(&structural().validate(&obj))
}

#[test]
fn valid_object_passes() {
    assert_eq!(
        messages(&structural().validate(&valid_object())),
        Vec::<String>::new()
    );
    // An integer where int-or-string is allowed, and an integral float for an integer.
    assert!(spec_errors("target", json!(3)).is_empty());
    assert!(spec_errors("replicas", json!(4.0)).is_empty());
}

#[test]
fn type_errors_name_the_json_type() {
    assert_eq!(
        spec_errors("replicas", json!("three")),
        [
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    let errs = structural().validate(&{
        let mut o = valid_object();
        o["spec"]["replicas"] = json!("three");
        o
    });
    assert_eq!(errs[0].kind, ErrorType::TypeInvalid);
    assert_eq!(errs[0].kind.cause_reason(), "FieldValueTypeInvalid");
    assert_eq!(
        spec_errors("replicas", Value::Null),
        [
            r#"spec.replicas: Invalid value: "null": spec.replicas in body must be of type integer: "null""#
        ]
    );
    assert_eq!(
        spec_errors("target", json!(true)),
        [
            r#"spec.target: Invalid value: "boolean": spec.target in body must be of type integer,string: "boolean""#
        ]
    );
    assert_eq!(
        spec_errors("labels", json!({"team": 5})),
        [
            r#"spec.labels.team: Invalid value: "integer": spec.labels.team in body must be of type string: "integer""#
        ]
    );
    // A fractional number for an integer: the type error, then kube-openapi's range check,
    // which upstream reports without a field.
    assert_eq!(
        spec_errors("replicas", json!(2.5)),
        [
            r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#,
            r#"<nil>: Invalid value: "": Checked value must be of type integer (default format) in spec.replicas"#,
        ]
    );
    assert_eq!(
        spec_errors(
            "ports",
            json!([{"name": "http", "port": 3_000_000_000_i64}])
        ),
        [
            r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.ports[0].port"#
        ]
    );
}

#[test]
fn value_errors_use_kube_openapi_messages() {
    assert_eq!(
        spec_errors("replicas", json!(11)),
        ["spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"]
    );
    assert_eq!(
        spec_errors("replicas", json!(0)),
        ["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]
    );
    assert_eq!(
        spec_errors("ratio", json!(2.0)),
        ["spec.ratio: Invalid value: 2.0: spec.ratio in body should be less than 2"]
    );
    assert_eq!(
        spec_errors("ratio", json!(0.7)),
        ["spec.ratio: Invalid value: 0.7: spec.ratio in body should be a multiple of 0.5"]
    );
    assert_eq!(
        spec_errors("policy", json!("Sometimes")),
        [
            r#"spec.policy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#
        ]
    );
    assert_eq!(
        spec_errors("cronSpec", json!("every minute")),
        [
            r#"spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#
        ]
    );
    assert_eq!(
        spec_errors("image", json!("x".repeat(65))),
        ["spec.image: Too long: may not be more than 64 bytes"]
    );
    assert_eq!(
        spec_errors("image", json!("")),
        [r#"spec.image: Invalid value: "": spec.image in body should be at least 1 chars long"#]
    );
    assert_eq!(
        spec_errors("startedAt", json!("yesterday")),
        [
            r#"spec.startedAt: Invalid value: "yesterday": spec.startedAt in body must be of type date-time: "yesterday""#
        ]
    );
    // Go's `\d` is ASCII-only: an Arabic-Indic digit does not match.
    assert_eq!(spec_errors("cronSpec", json!("\u{0665} * * * *")).len(), 1);
}

#[test]
fn required_fields_and_lists() {
    let mut obj = valid_object();
    obj["spec"].as_object_mut().map(|s| s.remove("image"));
    obj["spec"]["ports"] = json!([{"port": 1}]);
    assert_eq!(
        messages(&structural().validate(&obj)),
        [
            "spec.ports[0].name: Required value",
            "spec.image: Required value"
        ]
    );
    assert_eq!(
        spec_errors(
            "ports",
            json!([{"name": "http"}, {"name": "web"}, {"name": "http", "port": 8080}])
        ),
        [r#"spec.ports[2]: Duplicate value: {"name":"http"}"#]
    );
    assert_eq!(
        spec_errors("ports", json!([{"name": "a"}, "oops"])),
        [
            r#"spec.ports[1]: Invalid value: "string": spec.ports[1] in body must be of type object: "string""#,
            r#"spec.ports[1]: Invalid value: "oops": must be an object for an array of list-type map"#,
        ]
    );
    assert_eq!(
        spec_errors("tags", json!(["a", "b", "a", "a"])),
        [r#"spec.tags[2]: Duplicate value: "a""#]
    );
}

#[test]
fn root_name_is_checked() {
    let mut obj = valid_object();
    obj["metadata"]["name"] = json!("Bad_Name");
    let errs = messages(&structural().validate(&obj));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(
        r#"metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#
    ));
    obj["metadata"] = json!({"namespace": "default"});
    assert_eq!(
        messages(&structural().validate(&obj)),
        ["metadata.name: Required value: name or generateName is required"]
    );
    obj["metadata"] = json!({"name": "ok", "generateName": "Cron_"});
    let errs = messages(&structural().validate(&obj));
    assert_eq!(errs.len(), 1);
    assert!(errs[0]
        .starts_with(r#"metadata.generateName: Invalid value: "Cron_": a lowercase RFC 1123"#));
    obj["metadata"] = json!({"name": "ok", "generateName": "\u{e9}-"});
    // A multi-byte character before the trailing dash is masked whole (no panic).
    assert!(structural().validate(&obj).is_empty());
    obj["metadata"] = json!("nope");
    assert_eq!(
        messages(&structural().validate(&obj)),
        [r#"metadata: Invalid value: "nope": invalid metadata: expected object, got string"#]
    );
}

#[test]
fn malformed_input_gives_errors_not_panics() {
    let s = structural();
    let errs = messages(&s.validate(&json!("just a string")));
    assert!(
        errs.contains(
            &r#"<nil>: Invalid value: "string":  in body must be of type object: "string""#
                .to_owned()
        ),
        "{errs:?}"
    );
    let mut v = json!([1, 2]);
    s.default(&mut v);
    assert_eq!(v, json!([1, 2]));
    assert!(s.prune(&mut v).is_empty());

    let bad_items: JSONSchemaProps =
        serde_json::from_value(json!({"type": "object", "properties": {
        "x": {"type": "array", "items": [{"type": "string"}]}}}))
        .expect("decodes");
    assert_eq!(
        Structural::new(&bad_items).err(),
        Some(SchemaError::ItemsArray)
    );
    let bad_pattern: JSONSchemaProps =
        serde_json::from_value(json!({"type": "string", "pattern": "("})).expect("decodes");
    assert!(matches!(
        Structural::new(&bad_pattern),
        Err(SchemaError::Pattern { .. })
    ));
    let unsupported: JSONSchemaProps =
        serde_json::from_value(json!({"type": "object", "$ref": "#/x"})).expect("decodes");
    assert_eq!(
        Structural::new(&unsupported).err().map(|e| e.to_string()),
        Some("OpenAPIV3Schema '$ref' is not supported".to_owned())
    );
}

#[test]
fn junctors() {
    let props: JSONSchemaProps = serde_json::from_value(json!({"type": "object", "properties": {
        "v": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}], "not": {"enum": [42]}}
    }}))
    .expect("decodes");
    let s = Structural::new(&props).expect("compiles");
    assert!(s
        .validate(&json!({"metadata": {"name": "a"}, "v": 11}))
        .is_empty());
    assert_eq!(
        messages(&s.validate(&json!({"metadata": {"name": "a"}, "v": 5}))),
        [
            r#"<nil>: Invalid value: "": "v" must validate at least one schema (anyOf)"#,
            "v: Invalid value: 5: v in body should be greater than or equal to 10",
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"metadata": {"name": "a"}, "v": 42}))),
        [r#"<nil>: Invalid value: "": "v" must not validate the schema (not)"#]
    );
}

#[test]
fn defaults_fill_present_parents_only() {
    let s = structural();
    let mut obj = json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "x"},
        "spec": {"cronSpec": "* * * * *", "image": "i", "replicas": null, "ports": [{"name": "http"}]}
    });
    s.default(&mut obj);
    assert_eq!(obj["spec"]["replicas"], json!(1));
    assert_eq!(obj["spec"]["policy"], json!("Allow"));
    assert_eq!(obj["spec"]["ports"][0]["port"], json!(80));
    assert_eq!(obj["spec"]["schedule"], json!({"timezone": "UTC"}));
    assert!(obj.get("status").is_none(), "no parent is created");
    // An explicit value stays.
    let mut obj = json!({"spec": {"policy": "Replace"}});
    s.default(&mut obj);
    assert_eq!(obj["spec"]["policy"], json!("Replace"));
}

#[test]
fn prune_drops_unknown_fields() {
    let s = structural();
    let mut obj = valid_object();
    obj["junk"] = json!(1);
    obj["spec"]["foo"] = json!("bar");
    obj["spec"]["image"] = Value::Null;
    obj["spec"]["config"]["kept"] = json!({"deep": true});
    obj["spec"]["ports"][0]["extra"] = json!(true);
    obj["metadata"]["bogus"] = json!("x");
    obj["metadata"]["labels"] = json!({"app": "cron"});
    obj["metadata"]["annotations"] = json!(7);
    obj["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "nope": 1}]);
    obj["status"] =
        json!({"replicas": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "x"}]});
    let unknown = s.prune(&mut obj);
    assert_eq!(
        unknown,
        [
            "junk",
            "metadata.bogus",
            "metadata.ownerReferences[0].nope",
            "spec.foo",
            "spec.ports[0].extra",
            "status.conditions[0].reason",
        ]
    );
    assert!(obj.get("junk").is_none());
    assert!(obj["spec"].get("foo").is_none());
    assert!(
        obj["spec"].get("image").is_none(),
        "non-nullable null without default"
    );
    assert_eq!(obj["spec"]["config"]["kept"], json!({"deep": true}));
    assert_eq!(obj["metadata"]["labels"], json!({"app": "cron"}));
    assert!(
        obj["metadata"].get("annotations").is_none(),
        "malformed metadata is dropped"
    );
    assert!(obj["metadata"]["ownerReferences"][0].get("nope").is_none());
    assert_eq!(obj["apiVersion"], json!("stable.example.com/v1"));
    assert_eq!(
        obj["status"]["conditions"][0],
        json!({"type": "Ready", "status": "True"})
    );
}

fn field_ty<'a>(ty: &'a Ty, name: &str) -> &'a Ty {
    &builtin()
        .field(ty, name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .ty
}

#[test]
fn apply_type_follows_the_schema() {
    let s = builtin();
    let root = to_ty(&crontab_schema());
    let meta = field_ty(&root, "metadata");
    assert_eq!(
        Some(meta.clone()),
        s.named("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    );
    assert!(matches!(s.resolve(field_ty(&root, "kind")), Node::Scalar));
    let spec = field_ty(&root, "spec");
    match s.resolve(field_ty(spec, "ports")) {
        Node::List(l) => assert_eq!(l.list_type, ListType::Map(vec!["name".into()])),
        other => panic!("ports: {other:?}"),
    }
    match s.resolve(field_ty(spec, "tags")) {
        Node::List(l) => assert_eq!(l.list_type, ListType::Set),
        other => panic!("tags: {other:?}"),
    }
    assert_eq!(s.resolve(field_ty(spec, "config")), &Node::Any);
    assert!(matches!(s.resolve(field_ty(spec, "labels")), Node::Map(m) if !m.atomic));
    assert_eq!(s.resolve(field_ty(spec, "target")), &Node::Scalar);
    let preserved: JSONSchemaProps = serde_json::from_value(json!({"type": "object",
        "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-map-type": "atomic",
        "properties": {"a": {"type": "string"}}}))
    .expect("decodes");
    match s.resolve(&to_ty(&preserved)) {
        Node::Struct(st) => {
            assert!(st.atomic && st.extra.is_some());
            assert!(st.fields.contains_key("a") && st.fields.contains_key("metadata"));
        }
        other => panic!("{other:?}"),
    }
}
