//! Tests of the protobuf encoder: known bytes for small schemas, and the whole document read
//! back with a tiny decoder the way kubectl reads it (PATCH operations' `fieldValidation`
//! parameter and group-version-kind, patch strategies of definitions).

use serde_json::json;

use super::*;
use crate::openapi::custom::tests::crontab;

/// A decoded field value.
#[derive(Debug, Clone)]
enum Wire {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut out = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return out;
        }
        shift += 7;
        assert!(shift < 70, "varint too long");
    }
}

/// Every field of a message, in order; panics on malformed input.
fn decode(buf: &[u8]) -> Vec<(u32, Wire)> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let field = u32::try_from(key >> 3).unwrap();
        let value = match key & 7 {
            0 => Wire::Varint(read_varint(buf, &mut pos)),
            1 => {
                let bytes: [u8; 8] = buf[pos..pos + 8].try_into().unwrap();
                pos += 8;
                Wire::Fixed64(bytes)
            }
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)).unwrap();
                let bytes = buf[pos..pos + len].to_vec();
                pos += len;
                Wire::Bytes(bytes)
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((field, value));
    }
    out
}

fn all(buf: &[u8], field: u32) -> Vec<Vec<u8>> {
    decode(buf)
        .into_iter()
        .filter(|(f, _)| *f == field)
        .map(|(_, v)| match v {
            Wire::Bytes(b) => b,
            other => panic!("field {field} is not length-delimited: {other:?}"),
        })
        .collect()
}

fn one(buf: &[u8], field: u32) -> Vec<u8> {
    let mut found = all(buf, field);
    assert_eq!(found.len(), 1, "field {field}");
    found.remove(0)
}

fn text(buf: &[u8], field: u32) -> String {
    String::from_utf8(one(buf, field)).unwrap()
}

/// The value of the named entry of a repeated `Named*` field.
fn named(buf: &[u8], field: u32, name: &str) -> Option<Vec<u8>> {
    all(buf, field)
        .into_iter()
        .find(|entry| text(entry, 1) == name)
        .map(|entry| one(&entry, 2))
}

/// A vendor extension's value, parsed from its YAML (JSON) text.
fn extension(buf: &[u8], field: u32, name: &str) -> Option<serde_json::Value> {
    let any = named(buf, field, name)?;
    Some(serde_json::from_str(&text(&any, 2)).unwrap())
}

#[test]
fn known_bytes() {
    let mut m = Msg::default();
    m.varint(300);
    assert_eq!(m.0, [0xac, 0x02]);
    let mut m = Msg::default();
    m.int64(1, -1);
    assert_eq!(m.0.len(), 11, "negative int64s take ten bytes");
    assert_eq!(
        schema(&json!({ "type": "string" })).0,
        [0xb2, 0x01, 0x08, 0x0a, 0x06, b's', b't', b'r', b'i', b'n', b'g']
    );
    assert_eq!(
        schema(&json!({ "additionalProperties": false })).0,
        [0xaa, 0x01, 0x02, 0x10, 0x00]
    );
    assert_eq!(
        schema(&json!({ "properties": {} })).0,
        [0xca, 0x01, 0x00],
        "empty properties are still present"
    );
    assert_eq!(
        schema(&json!({ "$ref": "#/x", "x-a": true })).0,
        [
            0x0a, 0x03, b'#', b'/', b'x', // _ref
            0xfa, 0x01, 0x0d, // vendor_extension, 13 bytes
            0x0a, 0x03, b'x', b'-', b'a', // name
            0x12, 0x06, 0x12, 0x04, b't', b'r', b'u', b'e', // value: Any{yaml: "true"}
        ]
    );
    let minimum = schema(&json!({ "minimum": 1.5 }));
    match decode(&minimum.0).as_slice() {
        [(9, Wire::Fixed64(bytes))] => assert_eq!(f64::from_le_bytes(*bytes), 1.5),
        other => panic!("{other:?}"),
    }
    assert!(schema(&json!("not an object")).0.is_empty());
}

#[test]
fn query_and_path_parameters_use_their_own_field_numbers() {
    let query = parameter(object(&json!({
        "name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true
    })));
    let non_body = one(&query.0, 2);
    let sub = one(&non_body, 3);
    assert_eq!(text(&sub, 4), "fieldValidation");
    assert_eq!(text(&sub, 6), "string");
    assert!(decode(&sub)
        .iter()
        .any(|(f, v)| *f == 20 && matches!(v, Wire::Varint(1))));
    let path = parameter(object(&json!({
        "name": "name", "in": "path", "type": "string", "required": true
    })));
    let sub = one(&one(&path.0, 2), 4);
    assert_eq!(text(&sub, 5), "string");
    let body = parameter(object(&json!({
        "name": "body", "in": "body", "schema": { "$ref": "#/definitions/X" }
    })));
    let body = one(&body.0, 1);
    assert_eq!(text(&one(&body, 5), 1), "#/definitions/X");
}

fn document() -> Vec<u8> {
    encode(&tug_api::schema::swagger_json(), &[crontab()]).unwrap()
}

#[test]
fn patch_operations_carry_field_validation_and_gvk() {
    let doc = document();
    assert_eq!(text(&doc, 1), "2.0");
    assert_eq!(text(&one(&doc, 2), 1), "Kubernetes");
    let paths = one(&doc, 8);
    for (path, kind) in [
        (
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            "Deployment",
        ),
        (
            "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}",
            "CronTab",
        ),
    ] {
        let item = named(&paths, 2, path).expect(path);
        let patch = one(&item, 8);
        assert_eq!(
            extension(&patch, 13, "x-kubernetes-group-version-kind").unwrap()["kind"],
            kind
        );
        // ParametersItem.parameter → Parameter.non_body_parameter → query sub-schema.name
        let names: Vec<String> = all(&patch, 8)
            .iter()
            .flat_map(|item| all(item, 1))
            .flat_map(|p| all(&p, 2))
            .flat_map(|non_body| all(&non_body, 3))
            .map(|q| text(&q, 4))
            .collect();
        assert!(
            names.iter().any(|n| n == "fieldValidation"),
            "{path}: {names:?}"
        );
    }
    // Shared parameters stay references, with their definitions in the document.
    let parameters = one(&doc, 10);
    assert!(named(&parameters, 1, "pretty-tJGM1-ng").is_some());
}

#[test]
fn definitions_carry_patch_metadata_and_kinds() {
    let doc = document();
    let definitions = one(&doc, 9);
    let spec = named(&definitions, 1, "io.k8s.api.apps.v1.DeploymentSpec").unwrap();
    let strategy = named(&one(&spec, 25), 1, "strategy").unwrap();
    assert_eq!(
        extension(&strategy, 31, "x-kubernetes-patch-strategy").unwrap(),
        "retainKeys"
    );
    assert_eq!(
        text(&strategy, 1),
        "#/definitions/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert!(all(&spec, 19).contains(&b"selector".to_vec()), "required");
    let pod = named(&definitions, 1, "io.k8s.api.core.v1.PodSpec").unwrap();
    let containers = named(&one(&pod, 25), 1, "containers").unwrap();
    assert_eq!(
        extension(&containers, 31, "x-kubernetes-patch-merge-key").unwrap(),
        "name"
    );
    assert_eq!(text(&one(&containers, 22), 1), "array");
    let item = one(&one(&containers, 23), 1);
    assert_eq!(text(&item, 1), "#/definitions/io.k8s.api.core.v1.Container");
    let deployment = named(&definitions, 1, "io.k8s.api.apps.v1.Deployment").unwrap();
    assert_eq!(
        extension(&deployment, 31, "x-kubernetes-group-version-kind").unwrap(),
        json!([{ "group": "apps", "kind": "Deployment", "version": "v1" }])
    );
    let labels = named(
        &one(
            &named(
                &definitions,
                1,
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            )
            .unwrap(),
            25,
        ),
        1,
        "labels",
    )
    .unwrap();
    let values = one(&one(&labels, 21), 1);
    assert_eq!(text(&one(&values, 22), 1), "string");
    let crontab = named(&definitions, 1, "com.example.stable.v1.CronTab").unwrap();
    let props = one(&crontab, 25);
    let metadata = named(&props, 1, "metadata").unwrap();
    assert_eq!(
        text(&metadata, 1),
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(named(&props, 1, "spec").is_some());
}

#[test]
fn security_and_empty_sources() {
    let doc = document();
    let requirement = one(&doc, 12);
    assert_eq!(text(&one(&requirement, 1), 1), "BearerToken");
    let defs = one(&doc, 13);
    let api_key = one(&named(&defs, 1, "BearerToken").unwrap(), 2);
    assert_eq!(text(&api_key, 3), "header");
    let empty = encode(b"{}", &[]).unwrap();
    assert_eq!(decode(&empty).len(), 4, "swagger, info, paths, definitions");
    assert!(encode(b"{\"definitions\": []}", &[]).is_err());
}
