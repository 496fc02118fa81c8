//! OpenAPI v3 documents, one per group-version, converted from the v2 source the way
//! upstream's are built: the group-version's paths, their operations with parameters
//! (`schema` instead of `type`), a `requestBody` instead of the body parameter and
//! `content` per media type in responses; `components.schemas` with only the definitions
//! reachable from those paths, refs rewritten to `#/components/schemas/`, and a `$ref` with
//! siblings (`description`, `default`…) wrapped in `allOf` as OpenAPI 3.0 requires.

use serde_json::{json, Map, Value};

use std::collections::{BTreeSet, HashMap};

use super::custom::{self, CustomKind, Flavor};
use super::source::{self, group_version_of, Section, Visit};

const V2_REF: &str = "#/definitions/";
const V3_REF: &str = "#/components/schemas/";
const SHARED_PARAMETER: &str = "#/parameters/";
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// The v3 document of `gv` (`api/v1`, `apis/apps/v1`) from the built-in document `json`
/// and the custom kinds of that group-version, or `None` if neither has paths in it.
///
/// Two passes over `json`: the first keeps the group-version's paths and, of every
/// definition, only the names it refers to; the second converts the definitions reachable
/// from the paths, writing each out as it comes.
pub(crate) fn document(
    json: &[u8],
    gv: &str,
    custom: &[&CustomKind],
) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let mut first = FirstPass {
        gv,
        paths: Vec::new(),
        graph: HashMap::new(),
        others: Map::new(),
    };
    for kind in custom {
        first.paths.extend(custom::paths(kind));
    }
    source::read(json, &mut first)?;
    let mut extra = Map::new();
    for kind in custom {
        for (name, def) in custom::definitions(kind, Flavor::V3) {
            let mut refs = Vec::new();
            source::refs_in(&def, &mut refs);
            first.graph.insert(name.clone(), refs);
            extra.insert(name, def);
        }
    }
    if first.paths.is_empty() {
        return Ok(None);
    }
    let FirstPass {
        paths: raw_paths,
        graph,
        others,
        ..
    } = first;
    let shared = others
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut refs = Vec::new();
    let paths: Map<String, Value> = raw_paths
        .into_iter()
        .map(|(path, item)| {
            let converted = path_item(&item, &shared, &mut refs);
            (path, converted)
        })
        .collect();
    let mut needed = BTreeSet::new();
    while let Some(name) = refs.pop() {
        if let Some(next) = graph.get(&name) {
            if needed.insert(name) {
                refs.extend(next.iter().cloned());
            }
        }
    }
    drop(graph);

    let mut w = Out::default();
    w.raw("{\"openapi\":\"3.0.0\",\"info\":");
    w.json(others.get("info").unwrap_or(&Value::Null));
    w.raw(",\"paths\":");
    w.json(&paths);
    drop(paths);
    w.raw(",\"components\":{\"schemas\":{");
    let mut second = SecondPass {
        needed: &needed,
        extra: &extra,
        out: w,
        first: true,
    };
    source::read(json, &mut second)?;
    for (name, def) in &extra {
        second.schema(name, def);
    }
    let mut w = second.out;
    w.raw("}");
    if let Some(Value::Object(defs)) = others.get("securityDefinitions") {
        let schemes: Map<String, Value> = defs
            .iter()
            .map(|(name, def)| (name.clone(), security_scheme(def)))
            .collect();
        w.raw(",\"securitySchemes\":");
        w.json(&schemes);
    }
    w.raw("}");
    if let Some(security) = others.get("security") {
        w.raw(",\"security\":");
        w.json(security);
    }
    w.raw("}");
    w.finish().map(Some)
}

/// The first pass: the group-version's paths, the refs of every definition.
struct FirstPass<'a> {
    gv: &'a str,
    paths: Vec<(String, Value)>,
    graph: HashMap<String, Vec<String>>,
    others: Map<String, Value>,
}

impl Visit for FirstPass<'_> {
    fn want(&mut self, section: Section, name: &str) -> bool {
        match section {
            Section::Paths => {
                group_version_of(name).as_deref() == Some(self.gv)
                    && !self.paths.iter().any(|(p, _)| p == name)
            }
            Section::Definitions => true,
        }
    }

    fn entry(&mut self, section: Section, name: String, value: Value) {
        match section {
            Section::Paths => self.paths.push((name, value)),
            Section::Definitions => {
                let mut refs = Vec::new();
                source::refs_in(&value, &mut refs);
                self.graph.insert(name, refs);
            }
        }
    }

    fn other(&mut self, key: String, value: Value) {
        self.others.insert(key, value);
    }
}

/// The second pass: the definitions needed, converted and written as they are read.
struct SecondPass<'a> {
    needed: &'a BTreeSet<String>,
    extra: &'a Map<String, Value>,
    out: Out,
    first: bool,
}

impl SecondPass<'_> {
    fn schema(&mut self, name: &str, def: &Value) {
        if !std::mem::take(&mut self.first) {
            self.out.raw(",");
        }
        self.out.json(&name);
        self.out.raw(":");
        self.out.json(&schema(def, &mut Vec::new()));
    }
}

impl Visit for SecondPass<'_> {
    fn want(&mut self, section: Section, name: &str) -> bool {
        section == Section::Definitions
            && self.needed.contains(name)
            && !self.extra.contains_key(name)
    }

    fn entry(&mut self, _: Section, name: String, value: Value) {
        self.schema(&name, &value);
    }
}

/// JSON written piece by piece.
#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    error: Option<serde_json::Error>,
}

impl Out {
    fn raw(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
    }

    fn json(&mut self, v: &impl serde::Serialize) {
        if let Err(e) = serde_json::to_writer(&mut self.bytes, v) {
            self.error.get_or_insert(e);
        }
    }

    fn finish(self) -> Result<Vec<u8>, serde_json::Error> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.bytes),
        }
    }
}

/// A schema with its refs rewritten; the names referred to are pushed on `refs`.
pub(crate) fn schema(v: &Value, refs: &mut Vec<String>) -> Value {
    let Value::Object(obj) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    let mut reference = None;
    for (key, value) in obj {
        let converted = match key.as_str() {
            "$ref" => match value.as_str() {
                Some(r) => {
                    reference = Some(rewrite(r, refs));
                    continue;
                }
                None => value.clone(),
            },
            "properties" | "patternProperties" => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, p)| (name.clone(), schema(p, refs)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "not" | "allOf" | "anyOf" | "oneOf" => match value {
                Value::Array(list) => list.iter().map(|s| schema(s, refs)).collect(),
                other => schema(other, refs),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if let Some(r) = reference {
        let target = json!({ "$ref": r });
        if out.is_empty() {
            return target;
        }
        let mut all_of = vec![target];
        if let Some(Value::Array(more)) = out.remove("allOf") {
            all_of.extend(more);
        }
        out.insert("allOf".into(), Value::Array(all_of));
    }
    Value::Object(out)
}

fn rewrite(r: &str, refs: &mut Vec<String>) -> String {
    match r.strip_prefix(V2_REF) {
        Some(name) => {
            refs.push(name.to_owned());
            format!("{V3_REF}{name}")
        }
        None => r.to_owned(),
    }
}

fn path_item(item: &Value, shared: &Map<String, Value>, refs: &mut Vec<String>) -> Value {
    let Value::Object(obj) = item else {
        return item.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        if key == "parameters" {
            let params: Vec<Value> = value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| match parameter(p, shared, refs) {
                    Param::Other(p) => Some(p),
                    Param::Body { .. } => None,
                })
                .collect();
            if !params.is_empty() {
                out.insert(key.clone(), Value::Array(params));
            }
        } else if METHODS.contains(&key.as_str()) {
            out.insert(key.clone(), operation(value, shared, refs));
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

enum Param {
    Body { schema: Value, required: bool },
    Other(Value),
}

/// The shared parameter a `$ref` names, or the parameter itself.
fn resolve<'a>(p: &'a Value, shared: &'a Map<String, Value>) -> &'a Value {
    p.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(SHARED_PARAMETER))
        .and_then(|name| shared.get(name))
        .unwrap_or(p)
}

/// Keys of a v2 non-body parameter that describe its value: they move under `schema`.
const VALUE_KEYS: &[&str] = &[
    "type",
    "format",
    "items",
    "enum",
    "default",
    "uniqueItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "multipleOf",
];

fn parameter(p: &Value, shared: &Map<String, Value>, refs: &mut Vec<String>) -> Param {
    let p = resolve(p, shared);
    let Value::Object(obj) = p else {
        return Param::Other(p.clone());
    };
    if obj.get("in").and_then(Value::as_str) == Some("body") {
        return Param::Body {
            schema: schema(obj.get("schema").unwrap_or(&Value::Null), refs),
            required: obj.get("required").and_then(Value::as_bool) == Some(true),
        };
    }
    let mut out = Map::new();
    let mut value = Map::new();
    for (key, v) in obj {
        if VALUE_KEYS.contains(&key.as_str()) {
            value.insert(key.clone(), v.clone());
        } else if key != "collectionFormat" {
            out.insert(key.clone(), v.clone());
        }
    }
    if !value.is_empty() {
        out.insert("schema".into(), Value::Object(value));
    }
    Param::Other(Value::Object(out))
}

fn media_types(op: &Map<String, Value>, key: &str) -> Vec<String> {
    let listed: Vec<String> = op
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    if listed.is_empty() {
        vec!["application/json".to_owned()]
    } else {
        listed
    }
}

fn content(types: &[String], schema: &Value) -> Value {
    Value::Object(
        types
            .iter()
            .map(|t| (t.clone(), json!({ "schema": schema })))
            .collect(),
    )
}

fn operation(op: &Value, shared: &Map<String, Value>, refs: &mut Vec<String>) -> Value {
    let Value::Object(obj) = op else {
        return op.clone();
    };
    let consumes = media_types(obj, "consumes");
    let produces = media_types(obj, "produces");
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "consumes" | "produces" | "schemes" => {}
            "parameters" => {
                let mut params = Vec::new();
                for p in value.as_array().into_iter().flatten() {
                    match parameter(p, shared, refs) {
                        Param::Body { schema, required } => {
                            let mut body = Map::new();
                            body.insert("content".into(), content(&consumes, &schema));
                            if required {
                                body.insert("required".into(), true.into());
                            }
                            out.insert("requestBody".into(), Value::Object(body));
                        }
                        Param::Other(p) => params.push(p),
                    }
                }
                if !params.is_empty() {
                    out.insert("parameters".into(), Value::Array(params));
                }
            }
            "responses" => {
                let responses = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, r)| (code.clone(), response(r, &produces, refs)))
                    .collect();
                out.insert("responses".into(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

fn response(r: &Value, produces: &[String], refs: &mut Vec<String>) -> Value {
    let Value::Object(obj) = r else {
        return r.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "schema" => {
                let s = schema(value, refs);
                out.insert("content".into(), content(produces, &s));
            }
            "examples" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

fn security_scheme(def: &Value) -> Value {
    match def.get("type").and_then(Value::as_str) {
        Some("basic") => {
            let mut out = json!({ "type": "http", "scheme": "basic" });
            if let Some(d) = def.get("description") {
                out["description"] = d.clone();
            }
            out
        }
        _ => def.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::custom::tests::crontab;

    fn doc(gv: &str, custom: &[&CustomKind]) -> Option<Value> {
        let json = tug_api::schema::swagger_json();
        document(&json, gv, custom)
            .unwrap()
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
    }

    fn param<'a>(op: &'a Value, name: &str) -> Option<&'a Value> {
        op["parameters"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
    }

    #[test]
    fn apps_v1_keeps_patch_parameters_and_gvk() {
        let doc = doc("apis/apps/v1", &[]).unwrap();
        assert_eq!(doc["openapi"], "3.0.0");
        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        let fv = param(patch, "fieldValidation").expect("fieldValidation");
        assert_eq!(fv["in"], "query");
        assert_eq!(fv["schema"]["type"], "string");
        assert!(fv.get("type").is_none());
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({ "group": "apps", "version": "v1", "kind": "Deployment" })
        );
        assert_eq!(
            patch["requestBody"]["content"]["application/strategic-merge-patch+json"]["schema"]
                ["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
        );
        assert_eq!(patch["requestBody"]["required"], true);
        assert_eq!(
            patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.Deployment"
        );
        assert!(patch.get("consumes").is_none() && patch.get("produces").is_none());
        // Shared parameters are written out where they are used.
        let path_params = item["parameters"].as_array().unwrap();
        assert!(path_params.iter().any(|p| p["name"] == "namespace"));
        assert!(path_params.iter().all(|p| p.get("$ref").is_none()));
        // Only apps/v1 paths.
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.keys().all(|p| p.starts_with("/apis/apps/v1")));
        assert!(paths.contains_key("/apis/apps/v1/"));
    }

    #[test]
    fn components_hold_reachable_schemas_with_rewritten_refs() {
        let doc = doc("apis/apps/v1", &[]).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
        assert!(!schemas.contains_key("io.k8s.api.networking.v1.Ingress"));
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("#/definitions/"));
        assert!(!text.contains("#/parameters/"));
        let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(
            strategy["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
        );
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(strategy["description"].is_string());
        assert_eq!(
            schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        // Every ref resolves within the document.
        for r in text.split("\"$ref\":\"").skip(1) {
            let name = r.split('"').next().unwrap().trim_start_matches(V3_REF);
            assert!(schemas.contains_key(name), "dangling {name}");
        }
    }

    #[test]
    fn core_v1_and_unknown_group_versions() {
        let core = doc("api/v1", &[]).unwrap();
        assert!(core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());
        assert!(doc("apis/apps/v9", &[]).is_none());
        assert!(doc("apis/apps", &[]).is_none());
        let kinds = core["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
            ["x-kubernetes-group-version-kind"]
            .clone();
        assert_eq!(kinds[0]["kind"], "Pod");
        assert!(core["components"]["securitySchemes"]["BearerToken"].is_object());
        assert_eq!(core["security"][0]["BearerToken"], json!([]));
    }

    #[test]
    fn custom_kinds_get_a_document() {
        let kind = crontab();
        let doc = doc("apis/stable.example.com/v1", &[&kind]).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let crontab = &schemas["com.example.stable.v1.CronTab"];
        assert_eq!(
            crontab["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
        assert!(schemas.contains_key("com.example.stable.v1.CronTabList"));
        let patch = &doc["paths"]
            ["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"];
        assert_eq!(param(patch, "fieldValidation").unwrap()["in"], "query");
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "CronTab");
    }

    #[test]
    fn schema_conversion_handles_odd_input() {
        let mut refs = Vec::new();
        assert_eq!(schema(&json!(3), &mut refs), json!(3));
        assert_eq!(
            schema(&json!({ "$ref": "#/definitions/A" }), &mut refs),
            json!({ "$ref": "#/components/schemas/A" })
        );
        let wrapped = schema(
            &json!({ "$ref": "#/definitions/B", "allOf": [{ "$ref": "#/definitions/C" }] }),
            &mut refs,
        );
        assert_eq!(wrapped["allOf"].as_array().unwrap().len(), 2);
        assert_eq!(
            schema(&json!({ "$ref": 5 }), &mut refs),
            json!({ "$ref": 5 })
        );
        assert_eq!(refs, ["A", "B", "C"]);
        let odd = br##"{"paths": {"/apis/x/v1/a": {"get": 1, "parameters": [{"$ref": "#/parameters/none"}, 2]},
                                  "/apis/x/v1/b": {"post": {"parameters": "no", "responses": [1]}}},
                       "definitions": {"Loop": {"$ref": "#/definitions/Loop"}}}"##;
        let out = document(odd, "apis/x/v1", &[]).unwrap().unwrap();
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["paths"]["/apis/x/v1/a"]["get"], 1);
        assert!(document(odd, "apis/y/v1", &[]).unwrap().is_none());
        assert!(document(b"{\"paths\": 7}", "apis/x/v1", &[]).is_err());
    }
}
