//! Tests of the custom kinds' definitions and paths, and the `crontab` fixture the other
//! OpenAPI tests share.

use super::*;

pub(crate) fn crontab() -> CustomKind {
    CustomKind {
        group: "stable.example.com".into(),
        version: "v1".into(),
        kind: "CronTab".into(),
        list_kind: "CronTabList".into(),
        plural: "crontabs".into(),
        namespaced: true,
        schema: json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["cronSpec", "note"],
                    "properties": {
                        "cronSpec": { "type": "string", "pattern": "^\\d+$" },
                        "note": { "type": "string", "nullable": true },
                        "replicas": { "type": "integer", "minimum": 1 },
                        "port": { "x-kubernetes-int-or-string": true,
                                  "anyOf": [{ "type": "integer" }, { "type": "string" }] },
                        "extra": { "type": "object",
                                   "x-kubernetes-preserve-unknown-fields": true,
                                   "properties": { "a": { "type": "string" } } },
                        "tags": { "type": "array" },
                        "template": { "type": "object",
                                      "x-kubernetes-embedded-resource": true,
                                      "x-kubernetes-preserve-unknown-fields": true },
                    },
                },
                "status": { "type": "object", "properties": { "ready": { "type": "boolean" } } },
            },
        }),
        status: true,
        scale: true,
    }
}

#[test]
fn names_follow_upstream() {
    let k = crontab();
    assert_eq!(k.definition_name(), "com.example.stable.v1.CronTab");
    assert_eq!(k.group_version_path(), "apis/stable.example.com/v1");
    assert_eq!(group_version_path("", "v1"), "api/v1");
}

#[test]
fn v2_schema_is_simplified_for_kubectl() {
    let defs = definitions(&crontab(), Flavor::V2);
    let (name, kind) = &defs[0];
    assert_eq!(name, "com.example.stable.v1.CronTab");
    let spec = &kind["properties"]["spec"];
    assert_eq!(
        spec["required"],
        json!(["cronSpec"]),
        "nullable note is not required"
    );
    assert!(spec["properties"]["note"].get("type").is_none());
    assert!(spec["properties"]["port"].get("anyOf").is_none());
    assert_eq!(spec["properties"]["cronSpec"]["pattern"], "^\\d+$");
    let extra = &spec["properties"]["extra"];
    assert!(extra.get("properties").is_none() && extra.get("type").is_none());
    assert!(
        spec["properties"]["tags"].get("type").is_none(),
        "array without items"
    );
    assert!(spec["properties"]["template"].get("properties").is_none());
    assert_eq!(
        kind["properties"]["metadata"]["$ref"],
        format!("#/definitions/{OBJECT_META}")
    );
    assert_eq!(
        kind["x-kubernetes-group-version-kind"],
        json!([{ "group": "stable.example.com", "version": "v1", "kind": "CronTab" }])
    );
    let (list_name, list) = &defs[1];
    assert_eq!(list_name, "com.example.stable.v1.CronTabList");
    assert_eq!(
        list["properties"]["items"]["items"]["$ref"],
        "#/definitions/com.example.stable.v1.CronTab"
    );
}

#[test]
fn v3_schema_keeps_validation_and_spells_out_embedded_objects() {
    let defs = definitions(&crontab(), Flavor::V3);
    let spec = &defs[0].1["properties"]["spec"];
    assert_eq!(spec["required"], json!(["cronSpec", "note"]));
    assert_eq!(spec["properties"]["note"]["nullable"], true);
    assert!(spec["properties"]["port"]["anyOf"].is_array());
    let template = &spec["properties"]["template"];
    assert_eq!(
        template["properties"]["metadata"]["$ref"],
        format!("#/definitions/{OBJECT_META}")
    );
    assert_eq!(template["required"], json!(["kind", "apiVersion"]));
}

#[test]
fn odd_schemas_do_not_break_the_document() {
    let mut k = crontab();
    for schema in [
        Value::Null,
        json!("text"),
        json!({ "x-kubernetes-preserve-unknown-fields": true }),
        json!({ "type": ["object", "null"], "properties": 3, "items": [1] }),
    ] {
        k.schema = schema;
        for flavor in [Flavor::V2, Flavor::V3] {
            let kind = &definitions(&k, flavor)[0].1;
            assert!(kind["x-kubernetes-group-version-kind"].is_array());
            assert_eq!(kind["type"], "object");
        }
    }
    k.schema = json!({ "type": "object", "properties": { "a": { "type": "null" } } });
    let kind = &definitions(&k, Flavor::V2)[0].1;
    assert!(kind["properties"]["a"].get("type").is_none());
}

#[test]
fn paths_cover_collection_item_and_subresources() {
    let paths = paths(&crontab());
    let names: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "/apis/stable.example.com/v1/crontabs",
            "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs",
            "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}",
            "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status",
            "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale",
        ]
    );
    let patch = &paths[2].1["patch"];
    assert_eq!(patch["operationId"], "patchNamespacedCronTab");
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "CronTab");
    assert_eq!(
        paths[4].1["get"]["responses"]["200"]["schema"]["$ref"],
        format!("#/definitions/{SCALE}")
    );
    assert_eq!(
        paths[3].1["patch"]["operationId"],
        "patchNamespacedCronTabStatus"
    );

    let mut cluster = crontab();
    cluster.namespaced = false;
    cluster.status = false;
    cluster.scale = false;
    let names: Vec<String> = super::paths(&cluster).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        names,
        [
            "/apis/stable.example.com/v1/crontabs",
            "/apis/stable.example.com/v1/crontabs/{name}"
        ]
    );
}
