//! Tests of the CRD side: defaulting and validation of CRD objects, printer columns and the
//! JSONPath subset.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion;
use serde_json::{json, Value};

use super::tests::crontab_crd;
use super::*;
use crate::strategy::FieldError;

fn defaulted() -> Value {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    crd
}

/// The messages of validating the defaulted CronTab CRD after `change`.
fn crd_errors(change: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut crd = defaulted();
    change(&mut crd);
    validate_crd(&crd, None)
        .iter()
        .map(FieldError::message)
        .collect()
}

fn spec_props(crd: &mut Value) -> &mut Value {
    &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
}

const SCHEMA: &str = "spec.validation.openAPIV3Schema";

#[test]
fn defaults_and_a_valid_crd() {
    let mut crd = crontab_crd();
    crd["spec"]["names"]
        .as_object_mut()
        .map(|n| n.remove("singular"));
    default_crd(&mut crd);
    assert_eq!(crd["spec"]["names"]["singular"], json!("crontab"));
    assert_eq!(crd["spec"]["names"]["listKind"], json!("CronTabList"));
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    assert_eq!(validate_crd(&crd, None), Vec::<FieldError>::new());
    // Existing values stay; non-objects are left alone.
    let mut other = json!({"spec": {"names": {"kind": "A", "listKind": "AList2"}, "conversion": {
        "strategy": "Webhook", "webhook": {"clientConfig": {"service": {"name": "s", "namespace": "n"}}}}}});
    default_crd(&mut other);
    assert_eq!(other["spec"]["names"]["listKind"], json!("AList2"));
    assert_eq!(
        other["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
        json!(443)
    );
    let mut not_object = json!(5);
    default_crd(&mut not_object);
    assert_eq!(not_object, json!(5));
}

#[test]
fn names_group_and_scope() {
    assert_eq!(
        crd_errors(|c| c["metadata"]["name"] = json!("crontab.stable.example.com")),
        [
            r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#
        ]
    );
    assert_eq!(
        crd_errors(|c| {
            c["spec"]["group"] = json!("example");
            c["metadata"]["name"] = json!("crontabs.example");
            c["spec"]["scope"] = json!("Global");
        }),
        [
            r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#,
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
        ]
    );
    let errs = crd_errors(|c| {
        c["spec"]["names"]["plural"] = json!("CronTabs");
        c["metadata"]["name"] = json!("CronTabs.stable.example.com");
        c["spec"]["names"]["listKind"] = json!("CronTab");
    });
    assert!(errs[0].starts_with(r#"metadata.name: Invalid value: "CronTabs.stable.example.com": a lowercase RFC 1123 subdomain"#), "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e
                .starts_with(r#"spec.names.plural: Invalid value: "CronTabs": a DNS-1035 label"#)),
        "{errs:?}"
    );
    assert!(errs.contains(&r#"spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same"#.to_owned()), "{errs:?}");
}

#[test]
fn versions_need_one_storage_version_and_schemas() {
    let errs = crd_errors(|c| {
        let mut v2 = c["spec"]["versions"][0].clone();
        v2["name"] = json!("v2");
        if let Some(vs) = c["spec"]["versions"].as_array_mut() {
            vs.push(v2);
        }
    });
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with(r#"spec.versions: Invalid value: [{"#)
            && errs[0].ends_with("]: must have exactly one version marked as storage version"),
        "{errs:?}"
    );
    assert_eq!(
        errs[1],
        r#"status.storedVersions: Invalid value: ["v1"]: must have the storage version v2"#
    );
    assert_eq!(
        crd_errors(|c| {
            c["spec"]["versions"][0]
                .as_object_mut()
                .map(|v| v.remove("schema"));
        }),
        ["spec.versions[0].schema.openAPIV3Schema: Required value"]
    );
    let errs = crd_errors(|c| c["spec"]["versions"][0]["name"] = json!("V1"));
    assert!(
        errs[0].starts_with(r#"spec.versions[0].name: Invalid value: "V1": a DNS-1035 label"#),
        "{errs:?}"
    );
}

#[test]
fn schemas_must_be_structural() {
    assert_eq!(
        crd_errors(|c| spec_props(c)["foo"] = json!({"description": "no type"})),
        [format!("{SCHEMA}.properties[spec].properties[foo].type: Required value: must not be empty for specified object fields")]
    );
    // Different schemas per version keep per-version paths.
    let errs = crd_errors(|c| {
        let mut v2 = c["spec"]["versions"][0].clone();
        v2["name"] = json!("v2");
        v2["storage"] = json!(false);
        v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["foo"] =
            json!({"items": {"type": "string"}});
        if let Some(vs) = c["spec"]["versions"].as_array_mut() {
            vs.push(v2);
        }
    });
    assert_eq!(errs, ["spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[foo].type: Required value: must not be empty for specified object fields"]);
    assert_eq!(
        crd_errors(|c| spec_props(c)["labels"]["properties"] = json!({"a": {"type": "string"}})),
        [format!("{SCHEMA}.properties[spec].properties[labels].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive")]
    );
    assert_eq!(
        crd_errors(|c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"] =
            json!({"type": "object", "properties": {"name": {"type": "string"}, "labels": {"type": "object"}}})),
        [format!("{SCHEMA}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")]
    );
    assert!(crd_errors(
        |c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"] =
            json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}})
    )
    .is_empty());
    assert_eq!(
        crd_errors(|c| spec_props(c)["when"] = json!({"type": "string", "anyOf": [{"type": "string", "description": "d"}]})),
        [
            format!("{SCHEMA}.properties[spec].properties[when].anyOf[0].description: Forbidden: must be empty to be structural"),
            format!("{SCHEMA}.properties[spec].properties[when].anyOf[0].type: Forbidden: must be empty to be structural"),
        ]
    );
    let errs = crd_errors(|c| spec_props(c)["cronSpec"]["pattern"] = json!("(unclosed"));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(&format!(r#"{SCHEMA}.properties[spec].properties[cronSpec].pattern: Invalid value: "(unclosed": must be a valid regular expression, but isn't: "#)));
    assert_eq!(
        crd_errors(|c| spec_props(c)["tags"]["uniqueItems"] = json!(true)),
        [format!("{SCHEMA}.properties[spec].properties[tags].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic")]
    );
}

#[test]
fn defaults_must_validate_and_be_pruned() {
    assert_eq!(
        crd_errors(|c| spec_props(c)["replicas"]["default"] = json!("three")),
        [format!(
            r#"{SCHEMA}.properties[spec].properties[replicas].default: Invalid value: "string":  in body must be of type integer: "string""#
        )]
    );
    assert_eq!(
        crd_errors(|c| spec_props(c)["schedule"]["default"] = json!({"bogus": 1})),
        [format!(
            r#"{SCHEMA}.properties[spec].properties[schedule].default: Invalid value: {{"bogus":1}}: must not have unknown fields"#
        )]
    );
    assert_eq!(
        crd_errors(|c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"] =
            json!({"type": "object", "default": {"name": "x"}})),
        [format!("{SCHEMA}.properties[metadata].default: Forbidden: must not be set in top-level metadata")]
    );
}

#[test]
fn extensions_and_validation_rules() {
    assert_eq!(
        crd_errors(|c| spec_props(c)["ports"]["x-kubernetes-list-map-keys"] = json!(["id"])),
        [format!(
            r#"{SCHEMA}.properties[spec].properties[ports].x-kubernetes-list-map-keys: Invalid value: ["id"]: entries must all be names of item properties"#
        )]
    );
    assert_eq!(
        crd_errors(|c| spec_props(c)["policy"]["x-kubernetes-list-type"] = json!("set")),
        [format!(
            r#"{SCHEMA}.properties[spec].properties[policy].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified"#
        )]
    );
    assert_eq!(
        crd_errors(|c| spec_props(c)["policy"]["x-kubernetes-validations"] = json!([{"rule": " "}])),
        [format!("{SCHEMA}.properties[spec].properties[policy].x-kubernetes-validations[0].rule: Required value: rule is not specified")]
    );
}

#[test]
fn columns_subresources_and_status_root() {
    assert_eq!(
        crd_errors(|c| c["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "X", "type": "text"}])),
        [
            r#"spec.additionalPrinterColumns[0].type: Invalid value: "text": must be one of boolean,date,integer,number,string"#,
            "spec.additionalPrinterColumns[0].JSONPath: Required value",
        ]
    );
    assert_eq!(
        crd_errors(
            |c| c["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] =
                json!(".status.replicas")
        ),
        [
            r#"spec.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec"#
        ]
    );
    let errs = crd_errors(|c| {
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["minProperties"] = json!(1)
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!("{SCHEMA}: Invalid value: {{")),
        "{errs:?}"
    );
    assert!(errs[0].ends_with(
        "fields are allowed at the root of the schema if the status subresource is enabled"
    ));
}

#[test]
fn conversion_and_api_approval() {
    assert_eq!(
        crd_errors(|c| c["spec"]["conversion"] = json!({"strategy": "Webhook"})),
        [
            "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
            "spec.conversion.conversionReviewVersions: Required value",
        ]
    );
    assert_eq!(
        crd_errors(
            |c| c["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
            "clientConfig": {"url": "http://example.com/convert"}, "conversionReviewVersions": ["v2"]}})
        ),
        [
            r#"spec.conversion.webhookClientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]"#,
            r#"spec.conversion.conversionReviewVersions: Invalid value: ["v2"]: must include at least one of v1, v1beta1"#,
        ]
    );
    let protected = |annotation: Option<&str>| {
        crd_errors(|c| {
            c["spec"]["group"] = json!("widgets.k8s.io");
            c["metadata"]["name"] = json!("crontabs.widgets.k8s.io");
            if let Some(a) = annotation {
                c["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": a});
            }
        })
    };
    assert_eq!(
        protected(None),
        [
            r#"metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111"#
        ]
    );
    assert!(protected(Some("unapproved, experimental")).is_empty());
    assert!(protected(Some("https://github.com/kubernetes/enhancements/pull/1111")).is_empty());
    assert_eq!(protected(Some("yes please")).len(), 1);
}

#[test]
fn updates_keep_identity_fields() {
    let old = {
        let mut o = defaulted();
        o["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
        o
    };
    let mut new = old.clone();
    new["spec"]["group"] = json!("other.example.com");
    new["spec"]["scope"] = json!("Cluster");
    let msgs: Vec<String> = validate_crd(&new, Some(&old))
        .iter()
        .map(FieldError::message)
        .collect();
    assert_eq!(
        msgs,
        [
            r#"spec.scope: Invalid value: "Cluster": field is immutable"#,
            r#"spec.group: Invalid value: "other.example.com": field is immutable"#,
        ]
    );
    let mut new = old.clone();
    new["spec"]["versions"][0]["served"] = json!(false);
    assert!(validate_crd(&new, Some(&old)).is_empty());
}

#[test]
fn undecodable_crds_give_one_error() {
    let errs = validate_crd(&json!({"spec": "nope"}), None);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "");
    let errs = validate_crd(&defaulted(), Some(&json!({"spec": {"versions": 3}})));
    assert_eq!(errs.len(), 1);
}

fn version(crd: &Value) -> CustomResourceDefinitionVersion {
    serde_json::from_value(crd["spec"]["versions"][0].clone()).expect("version decodes")
}

#[test]
fn printer_columns_and_cells() {
    let cols = columns(&version(&crontab_crd()));
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Name", "Spec", "Replicas", "Ready", "Last Run", "Age"]
    );
    assert_eq!(cols[0].format, "name");
    assert_eq!(cols[5].priority, 1);
    assert_eq!(
        cols[1].description,
        "Custom resource definition column (in JSONPath format): .spec.cronSpec"
    );
    let now = 1_714_557_900; // 2024-05-01T10:05:00Z
    let obj = json!({
        "metadata": {"name": "c1", "creationTimestamp": "2024-04-29T10:05:00Z"},
        "spec": {"cronSpec": "* * * * *", "replicas": 2.9},
        "status": {"lastRun": "2024-05-01T10:00:00Z", "conditions": [
            {"type": "Scheduled", "status": "False"}, {"type": "Ready", "status": "True"}]}
    });
    assert_eq!(
        cells(&cols, &obj, now),
        [
            json!("c1"),
            json!("* * * * *"),
            json!(2),
            json!("True"),
            json!("5m"),
            json!("2d")
        ]
    );
    let bare = json!({"spec": {"replicas": "two"}, "status": {"lastRun": "not a time"}});
    assert_eq!(
        cells(&cols, &bare, now),
        [
            json!(""),
            Value::Null,
            Value::Null,
            Value::Null,
            json!("<invalid>"),
            Value::Null
        ]
    );
    // Without printer columns: Name and Age.
    let mut crd = crontab_crd();
    crd["spec"]["versions"][0]
        .as_object_mut()
        .map(|v| v.remove("additionalPrinterColumns"));
    let cols = columns(&version(&crd));
    assert_eq!(
        cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Name", "Age"]
    );
    assert_eq!(cols[1].type_, "date");
    assert_eq!(cells(&cols, &obj, now), [json!("c1"), json!("2d")]);
    // A string column prints numbers, booleans and objects as client-go does.
    let col = |path: &str| ColumnDef {
        name: "X".into(),
        type_: "string".into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        json_path: path.into(),
    };
    let v = json!({"a": 5, "b": true, "c": {"x": [1]}, "d": 1.5});
    assert_eq!(
        cells(
            &[
                col(".a"),
                col(".b"),
                col(".c"),
                col("{.d}"),
                col("bad path")
            ],
            &v,
            0
        ),
        [
            json!("5"),
            json!("true"),
            json!(r#"{"x":[1]}"#),
            json!("1.5"),
            Value::Null
        ]
    );
}

#[test]
fn jsonpath_subset() {
    let doc = json!({"items": [{"name": "a", "n": 1}, {"name": "b", "n": 5}, {"name": "c", "n": 9}],
                     "m": {"x.y": 1, "z": 2}});
    let find = |p: &str| -> Vec<Value> {
        JsonPath::parse(p)
            .expect("parses")
            .find(&doc)
            .into_iter()
            .cloned()
            .collect()
    };
    assert_eq!(find(".items[0].name"), [json!("a")]);
    assert_eq!(find("{.items[-1].name}"), [json!("c")]);
    assert_eq!(
        find("$.items[*].name"),
        [json!("a"), json!("b"), json!("c")]
    );
    assert_eq!(find(".items[0:2].n"), [json!(1), json!(5)]);
    assert_eq!(find(".items[0,2].n"), [json!(1), json!(9)]);
    assert_eq!(find(".m['x.y']"), [json!(1)]);
    assert_eq!(find(".m.*"), [json!(1), json!(2)]);
    assert_eq!(find("..name"), [json!("a"), json!("b"), json!("c")]);
    assert_eq!(find(".items[?(@.n > 2)].name"), [json!("b"), json!("c")]);
    assert_eq!(find(".items[?(@.name == 'b')].n"), [json!(5)]);
    assert_eq!(find(".items[?(@.missing)].n"), Vec::<Value>::new());
    assert_eq!(find(".items[7].name"), Vec::<Value>::new());
    assert_eq!(find(".nope.deeper"), Vec::<Value>::new());
    for bad in [
        "items",
        ".items[",
        ".items[?(@.n > )]",
        "{.a}{.b}",
        "{.a",
        ".items[x]",
        ".a[1:2:0]",
    ] {
        assert!(JsonPath::parse(bad).is_err(), "{bad} should not parse");
    }
}
