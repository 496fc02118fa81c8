//! The OpenAPI v2 document as protobuf: gnostic's `openapi.v2.Document` (field numbers from
//! `openapiv2/OpenAPIv2.proto` in google/gnostic), which kubectl ≤ 1.28 asks for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and reads for client-side
//! validation, patch merge keys and `explain`.
//!
//! A small hand-written encoder: varints and length-delimited fields, written from the JSON
//! document. Vendor extensions and other free-form values (`default`, `enum`, `example`)
//! are `Any{yaml}`; their YAML text is the value's JSON, which YAML reads as flow style.

use serde_json::{Map, Value};

use super::custom::{self, CustomKind, Flavor};
use super::source::{self, Section, Visit};

/// One protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint((u64::from(field) << 3) | wire);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A singular string: proto3 leaves the empty string out.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// A sub-message, written even when empty (its presence matters).
    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, VARINT);
            // Two's complement, as protobuf writes negative int64s.
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// `obj[key]` as a singular string field.
    fn str_of(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
        if let Some(s) = obj.get(key).and_then(Value::as_str) {
            self.string(field, s);
        }
    }

    fn bool_of(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
        self.boolean(
            field,
            obj.get(key).and_then(Value::as_bool).unwrap_or(false),
        );
    }

    fn int_of(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
        if let Some(v) = obj.get(key).and_then(Value::as_i64) {
            self.int64(field, v);
        }
    }

    fn double_of(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
        if let Some(v) = obj.get(key).and_then(Value::as_f64) {
            self.double(field, v);
        }
    }

    /// `obj[key]`, a list of strings (or one string), as a repeated string field.
    fn strings_of(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
        match obj.get(key) {
            Some(Value::Array(list)) => {
                for s in list.iter().filter_map(Value::as_str) {
                    self.bytes(field, s.as_bytes());
                }
            }
            Some(Value::String(s)) => self.bytes(field, s.as_bytes()),
            _ => {}
        }
    }

    /// `obj[key]` as an `Any` field.
    fn any_of(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
        if let Some(v) = obj.get(key) {
            self.message(field, any(v));
        }
    }

    /// `obj[key]`, a list, as a repeated `Any` field.
    fn anys_of(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
        for v in obj.get(key).and_then(Value::as_array).into_iter().flatten() {
            self.message(field, any(v));
        }
    }

    /// Every `x-` key of `obj` as a repeated `NamedAny` field.
    fn extensions(&mut self, field: u32, obj: &Map<String, Value>) {
        for (name, value) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
            let mut named = Msg::default();
            named.string(1, name);
            named.message(2, any(value));
            self.message(field, named);
        }
    }
}

fn object(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// `Any{yaml}`: the value as YAML (its JSON text).
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &v.to_string());
    m
}

/// The whole `openapi.v2.Document`: the built-in document `json` with `custom` added
/// (their v2 flavour), encoded while it is read.
pub(crate) fn encode(json: &[u8], custom: &[CustomKind]) -> Result<Vec<u8>, serde_json::Error> {
    let mut e = Encoder::default();
    for kind in custom {
        e.custom_paths.extend(custom::paths(kind));
        e.custom_definitions
            .extend(custom::definitions(kind, Flavor::V2));
    }
    source::read(json, &mut e)?;
    for (name, item) in std::mem::take(&mut e.custom_paths) {
        e.entry(Section::Paths, name, item);
    }
    for (name, def) in std::mem::take(&mut e.custom_definitions) {
        e.entry(Section::Definitions, name, def);
    }
    Ok(e.finish())
}

/// The document being encoded: `paths` and `definitions` as they are read, the small
/// top-level parts kept for the end.
#[derive(Default)]
struct Encoder {
    paths: Msg,
    definitions: Msg,
    others: Map<String, Value>,
    custom_paths: Vec<(String, Value)>,
    custom_definitions: Vec<(String, Value)>,
}

impl Visit for Encoder {
    fn want(&mut self, section: Section, name: &str) -> bool {
        // A custom entry of the same name replaces the built-in one.
        let custom = match section {
            Section::Paths => &self.custom_paths,
            Section::Definitions => &self.custom_definitions,
        };
        !custom.iter().any(|(n, _)| n == name)
    }

    fn entry(&mut self, section: Section, name: String, value: Value) {
        let mut named = Msg::default();
        named.string(1, &name);
        match section {
            Section::Paths => {
                named.message(2, path_item(object(&value)));
                self.paths.message(2, named);
            }
            Section::Definitions => {
                named.message(2, schema(&value));
                self.definitions.message(1, named);
            }
        }
    }

    fn other(&mut self, key: String, value: Value) {
        if ["info", "parameters", "security", "securityDefinitions"].contains(&key.as_str()) {
            self.others.insert(key, value);
        }
    }
}

impl Encoder {
    fn finish(self) -> Vec<u8> {
        let others = &self.others;
        let part = |key: &str| object(others.get(key).unwrap_or(&Value::Null));
        let mut doc = Msg::default();
        doc.string(1, "2.0");
        let info_obj = part("info");
        let mut info = Msg::default();
        info.str_of(1, info_obj, "title");
        info.str_of(2, info_obj, "version");
        info.str_of(3, info_obj, "description");
        info.extensions(7, info_obj);
        doc.message(2, info);
        doc.message(8, self.paths);
        doc.message(9, self.definitions);

        let shared = part("parameters");
        if !shared.is_empty() {
            let mut parameters = Msg::default();
            for (name, p) in shared {
                let mut named = Msg::default();
                named.string(1, name);
                named.message(2, parameter(object(p)));
                parameters.message(1, named);
            }
            doc.message(10, parameters);
        }

        let security = others.get("security").and_then(Value::as_array);
        for requirement in security.into_iter().flatten() {
            let mut req = Msg::default();
            for (name, scopes) in object(requirement) {
                let mut list = Msg::default();
                for scope in scopes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    list.bytes(1, scope.as_bytes());
                }
                let mut named = Msg::default();
                named.string(1, name);
                named.message(2, list);
                req.message(1, named);
            }
            doc.message(12, req);
        }

        let security_definitions = part("securityDefinitions");
        if !security_definitions.is_empty() {
            let mut defs = Msg::default();
            for (name, def) in security_definitions {
                if let Some(item) = security_definition(object(def)) {
                    let mut named = Msg::default();
                    named.string(1, name);
                    named.message(2, item);
                    defs.message(1, named);
                }
            }
            doc.message(13, defs);
        }
        doc.0
    }
}

/// A `SecurityDefinitionsItem` for the basic and API-key schemes (the only ones Kubernetes
/// documents).
fn security_definition(def: &Map<String, Value>) -> Option<Msg> {
    let mut inner = Msg::default();
    let mut item = Msg::default();
    match def.get("type").and_then(Value::as_str)? {
        "basic" => {
            inner.str_of(1, def, "type");
            inner.str_of(2, def, "description");
            inner.extensions(3, def);
            item.message(1, inner);
        }
        "apiKey" => {
            inner.str_of(1, def, "type");
            inner.str_of(2, def, "name");
            inner.str_of(3, def, "in");
            inner.str_of(4, def, "description");
            inner.extensions(5, def);
            item.message(2, inner);
        }
        _ => return None,
    }
    Some(item)
}

fn path_item(item: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, item, "$ref");
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(method) {
            m.message(field, operation(object(op)));
        }
    }
    for p in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(9, parameters_item(object(p)));
    }
    m.extensions(10, item);
    m
}

fn operation(op: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.strings_of(1, op, "tags");
    m.str_of(2, op, "summary");
    m.str_of(3, op, "description");
    m.str_of(5, op, "operationId");
    m.strings_of(6, op, "produces");
    m.strings_of(7, op, "consumes");
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(8, parameters_item(object(p)));
    }
    if let Some(responses) = op.get("responses") {
        let mut r = Msg::default();
        for (code, resp) in object(responses) {
            let resp = object(resp);
            let mut value = Msg::default();
            if let Some(reference) = resp.get("$ref").and_then(Value::as_str) {
                value.message(2, json_reference(reference));
            } else {
                let mut response = Msg::default();
                response.str_of(1, resp, "description");
                if let Some(s) = resp.get("schema") {
                    let mut item = Msg::default();
                    item.message(1, schema(s));
                    response.message(2, item);
                }
                response.extensions(5, resp);
                value.message(1, response);
            }
            let mut named = Msg::default();
            named.string(1, code);
            named.message(2, value);
            r.message(1, named);
        }
        m.message(9, r);
    }
    m.strings_of(10, op, "schemes");
    m.bool_of(11, op, "deprecated");
    m.extensions(13, op);
    m
}

fn json_reference(reference: &str) -> Msg {
    let mut m = Msg::default();
    m.string(1, reference);
    m
}

fn parameters_item(p: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    match p.get("$ref").and_then(Value::as_str) {
        Some(reference) => m.message(2, json_reference(reference)),
        None => m.message(1, parameter(p)),
    }
    m
}

/// A `Parameter`: body, or one of the four non-body kinds by `in`.
fn parameter(p: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    let location = p.get("in").and_then(Value::as_str).unwrap_or("");
    if location == "body" {
        let mut body = Msg::default();
        body.str_of(1, p, "description");
        body.str_of(2, p, "name");
        body.str_of(3, p, "in");
        body.bool_of(4, p, "required");
        if let Some(s) = p.get("schema") {
            body.message(5, schema(s));
        }
        body.extensions(6, p);
        m.message(1, body);
        return m;
    }
    // QueryParameterSubSchema and FormDataParameterSubSchema have `allow_empty_value` as
    // field 5; header and path ones do not, so their later fields come one earlier.
    let (which, with_allow_empty) = match location {
        "header" => (1, false),
        "formData" => (2, true),
        "path" => (4, false),
        _ => (3, true),
    };
    let mut sub = Msg::default();
    sub.bool_of(1, p, "required");
    sub.str_of(2, p, "in");
    sub.str_of(3, p, "description");
    sub.str_of(4, p, "name");
    let shift = if with_allow_empty {
        sub.bool_of(5, p, "allowEmptyValue");
        1
    } else {
        0
    };
    primitive_fields(&mut sub, p, 5 + shift);
    let mut non_body = Msg::default();
    non_body.message(which, sub);
    m.message(2, non_body);
    m
}

/// The fields shared by parameter sub-schemas and `PrimitivesItems`, from `type` (numbered
/// `first`) to `vendor_extension`.
fn primitive_fields(m: &mut Msg, p: &Map<String, Value>, first: u32) {
    m.str_of(first, p, "type");
    m.str_of(first + 1, p, "format");
    if let Some(items) = p.get("items") {
        let mut sub = Msg::default();
        primitive_fields(&mut sub, object(items), 1);
        m.message(first + 2, sub);
    }
    m.str_of(first + 3, p, "collectionFormat");
    m.any_of(first + 4, p, "default");
    m.double_of(first + 5, p, "maximum");
    m.bool_of(first + 6, p, "exclusiveMaximum");
    m.double_of(first + 7, p, "minimum");
    m.bool_of(first + 8, p, "exclusiveMinimum");
    m.int_of(first + 9, p, "maxLength");
    m.int_of(first + 10, p, "minLength");
    m.str_of(first + 11, p, "pattern");
    m.int_of(first + 12, p, "maxItems");
    m.int_of(first + 13, p, "minItems");
    m.bool_of(first + 14, p, "uniqueItems");
    m.anys_of(first + 15, p, "enum");
    m.double_of(first + 16, p, "multipleOf");
    m.extensions(first + 17, p);
}

/// A `Schema`.
fn schema(v: &Value) -> Msg {
    let s = object(v);
    let mut m = Msg::default();
    m.str_of(1, s, "$ref");
    m.str_of(2, s, "format");
    m.str_of(3, s, "title");
    m.str_of(4, s, "description");
    m.any_of(5, s, "default");
    m.double_of(6, s, "multipleOf");
    m.double_of(7, s, "maximum");
    m.bool_of(8, s, "exclusiveMaximum");
    m.double_of(9, s, "minimum");
    m.bool_of(10, s, "exclusiveMinimum");
    m.int_of(11, s, "maxLength");
    m.int_of(12, s, "minLength");
    m.str_of(13, s, "pattern");
    m.int_of(14, s, "maxItems");
    m.int_of(15, s, "minItems");
    m.bool_of(16, s, "uniqueItems");
    m.int_of(17, s, "maxProperties");
    m.int_of(18, s, "minProperties");
    m.strings_of(19, s, "required");
    m.anys_of(20, s, "enum");
    match s.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            // A oneof member: written even when false.
            let mut item = Msg::default();
            item.key(2, VARINT);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(sub @ Value::Object(_)) => {
            let mut item = Msg::default();
            item.message(1, schema(sub));
            m.message(21, item);
        }
        _ => {}
    }
    if s.contains_key("type") {
        let mut ty = Msg::default();
        ty.strings_of(1, s, "type");
        m.message(22, ty);
    }
    match s.get("items") {
        Some(Value::Array(list)) => {
            let mut items = Msg::default();
            for sub in list {
                items.message(1, schema(sub));
            }
            m.message(23, items);
        }
        Some(sub @ Value::Object(_)) => {
            let mut items = Msg::default();
            items.message(1, schema(sub));
            m.message(23, items);
        }
        _ => {}
    }
    for sub in s
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(sub));
    }
    if let Some(props) = s.get("properties") {
        // Present even when empty: kubectl tells objects with fields from maps by it.
        let mut properties = Msg::default();
        for (name, sub) in object(props) {
            let mut named = Msg::default();
            named.string(1, name);
            named.message(2, schema(sub));
            properties.message(1, named);
        }
        m.message(25, properties);
    }
    m.str_of(26, s, "discriminator");
    m.bool_of(27, s, "readOnly");
    m.any_of(30, s, "example");
    m.extensions(31, s);
    m
}

#[cfg(test)]
#[path = "v2proto_tests.rs"]
mod tests;
