//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`) request bodies, read into
//! the JSON the rest of the server takes. Clients built on client-go send it: kubectl ≥ 1.30
//! for everything it writes through typed clients (`kubectl create deployment|secret|token`,
//! `drain`, `auth whoami`…) and operators that opt in.
//!
//! The message layouts come from upstream's `generated.proto` files, kept compactly in
//! `protobuf/schema.txt.gz` (see its `gen.py`). Field names there are the JSON names;
//! embedded Go structs (`json:",inline"`) are marked and merged into their parent; the
//! apimachinery types whose JSON is not an object (Quantity, IntOrString, Time, MicroTime,
//! Duration, FieldsV1, RawExtension, the apiextensions JSON wrappers) are read by hand.
//! A body is `k8s\0` + `runtime.Unknown{typeMeta, raw}`; `raw` is the object. Go writes
//! every non-pointer field to protobuf, zero or not, but leaves zero `omitempty` fields out
//! of JSON; where the schema knows the Go struct (k8s.io/api and meta/v1), zero scalars are
//! left out unless the field is a pointer or has no `omitempty` (so `replicas: 0` and
//! `storageClassName: ""` stay, `hostPort: 0` goes). Elsewhere empty strings are left out
//! and numbers kept.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{Map, Value};

const SCHEMA_GZ: &[u8] = include_bytes!("../protobuf/schema.txt.gz");
const MAGIC: &[u8] = b"k8s\0";
/// Deeper nesting than any Kubernetes type has: a body going deeper is refused, not
/// followed down the stack.
const MAX_DEPTH: usize = 100;

/// A body that is not a Kubernetes protobuf object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not well-formed.
    #[error("protobuf: {0}")]
    Malformed(String),
    /// The envelope names a kind this server has no protobuf layout for.
    #[error("protobuf: no message for {0}")]
    UnknownKind(String),
}

fn malformed(what: impl Into<String>) -> Error {
    Error::Malformed(what.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Optional,
    Repeated,
    Map,
}

#[derive(Debug)]
struct FieldDef {
    name: String,
    label: Label,
    /// A scalar name, a message name, or for maps `key,value`.
    ty: String,
    inline: bool,
    /// Zero is written to JSON (a pointer, or no `omitempty`).
    keep_zero: bool,
}

#[derive(Debug, Default)]
struct MessageDef {
    /// A Go slice type: its JSON is the array of field 1.
    items: bool,
    /// The Go struct is known: zero scalars go unless the field keeps them.
    go: bool,
    fields: HashMap<u64, FieldDef>,
}

type Schema = HashMap<String, MessageDef>;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut text = String::new();
        let mut gz = flate2::read::GzDecoder::new(SCHEMA_GZ);
        if std::io::Read::read_to_string(&mut gz, &mut text).is_err() {
            return Schema::new();
        }
        parse_schema(&text)
    })
}

fn parse_schema(text: &str) -> Schema {
    let mut out = Schema::new();
    let mut current: Option<&mut MessageDef> = None;
    for line in text.lines() {
        if let Some(head) = line.strip_prefix('@') {
            let mut parts = head.split(' ');
            let name = parts.next().unwrap_or_default().to_owned();
            let def = out.entry(name).or_default();
            let flag = parts.next();
            def.items = flag == Some("items");
            def.go = flag == Some("go");
            current = Some(def);
            continue;
        }
        let mut parts = line.split(' ');
        let (Some(n), Some(name), Some(label), Some(ty)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(n), Some(def)) = (n.parse::<u64>(), current.as_deref_mut()) else {
            continue;
        };
        let label = match label {
            "r" => Label::Repeated,
            "m" => Label::Map,
            _ => Label::Optional,
        };
        let flags: Vec<&str> = parts.collect();
        def.fields.insert(
            n,
            FieldDef {
                name: name.to_owned(),
                label,
                ty: ty.to_owned(),
                inline: flags.contains(&"inline"),
                keep_zero: flags.contains(&"keep"),
            },
        );
    }
    out
}

/// The protobuf message of `group/version` `kind` (k8s-pb's package names).
fn message_name(group: &str, version: &str, kind: &str) -> Option<String> {
    let package = match group {
        "" => "api.core".to_owned(),
        "apiextensions.k8s.io" => "apiextensions_apiserver.pkg.apis.apiextensions".to_owned(),
        "apiregistration.k8s.io" => "kube_aggregator.pkg.apis.apiregistration".to_owned(),
        "internal.apiserver.k8s.io" => "api.apiserverinternal".to_owned(),
        g => format!("api.{}", g.split('.').next().unwrap_or(g)),
    };
    let schema = schema();
    [
        format!("{package}.{version}.{kind}"),
        // DeleteOptions and the other meta kinds every group version registers.
        format!("apimachinery.pkg.apis.meta.v1.{kind}"),
    ]
    .into_iter()
    .find(|name| schema.contains_key(name))
}

/// One wire field.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

fn varint(buf: &mut &[u8]) -> Result<u64, Error> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or_else(|| malformed("truncated"))?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("varint too long"))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
    if n > buf.len() {
        return Err(malformed("truncated"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// The fields of a message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, Error> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let wire = match key & 7 {
            0 => Wire::Varint(varint(&mut buf)?),
            1 => {
                let b = take(&mut buf, 8)?;
                Wire::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| malformed("fixed64"))?,
                ))
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| malformed("length"))?;
                Wire::Bytes(take(&mut buf, len)?)
            }
            5 => {
                let b = take(&mut buf, 4)?;
                Wire::Fixed32(u32::from_le_bytes(
                    b.try_into().map_err(|_| malformed("fixed32"))?,
                ))
            }
            w => return Err(malformed(format!("wire type {w}"))),
        };
        out.push((key >> 3, wire));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, Error> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed("a string is not UTF-8"))
}

/// A scalar of type `ty` from one wire value.
fn scalar(ty: &str, wire: &Wire<'_>) -> Result<Value, Error> {
    let wrong = || malformed(format!("a {ty} field has the wrong wire type"));
    Ok(match (ty, wire) {
        ("string", Wire::Bytes(b)) => Value::String(text(b)?),
        ("bytes", Wire::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // int32 travels sign-extended to 64 bits.
        ("int32", Wire::Varint(v)) => Value::from(*v as i64 as i32),
        ("int64", Wire::Varint(v)) => Value::from(*v as i64),
        ("uint32" | "uint64", Wire::Varint(v)) => Value::from(*v),
        ("sint32" | "sint64", Wire::Varint(v)) => {
            Value::from((*v >> 1) as i64 ^ -((*v & 1) as i64))
        }
        ("bool", Wire::Varint(v)) => Value::Bool(*v != 0),
        ("double", Wire::Fixed64(v)) => {
            serde_json::Number::from_f64(f64::from_bits(*v)).map_or(Value::Null, Value::Number)
        }
        ("fixed64" | "sfixed64", Wire::Fixed64(v)) => Value::from(*v as i64),
        ("float", Wire::Fixed32(v)) => serde_json::Number::from_f64(f64::from(f32::from_bits(*v)))
            .map_or(Value::Null, Value::Number),
        ("fixed32" | "sfixed32", Wire::Fixed32(v)) => Value::from(*v as i32),
        _ => return Err(wrong()),
    })
}

fn is_scalar(ty: &str) -> bool {
    !ty.contains('.')
}

/// The JSON of one value of type `ty` (scalar or message).
fn value(ty: &str, wire: &Wire<'_>, depth: usize) -> Result<Value, Error> {
    if is_scalar(ty) {
        return scalar(ty, wire);
    }
    match wire {
        Wire::Bytes(b) => message(ty, b, depth + 1),
        _ => Err(malformed(format!("{ty} is not length-delimited"))),
    }
}

/// Packed repeated numbers (one length-delimited run of varints or fixed values).
fn packed(ty: &str, mut b: &[u8]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let wire = match ty {
            "double" | "fixed64" | "sfixed64" => {
                let x = take(&mut b, 8)?;
                Wire::Fixed64(u64::from_le_bytes(
                    x.try_into().map_err(|_| malformed("packed"))?,
                ))
            }
            "float" | "fixed32" | "sfixed32" => {
                let x = take(&mut b, 4)?;
                Wire::Fixed32(u32::from_le_bytes(
                    x.try_into().map_err(|_| malformed("packed"))?,
                ))
            }
            _ => Wire::Varint(varint(&mut b)?),
        };
        out.push(scalar(ty, &wire)?);
    }
    Ok(out)
}

/// The JSON of message `name`.
fn message(name: &str, buf: &[u8], depth: usize) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(malformed("nested too deeply"));
    }
    if let Some(v) = special(name, buf, depth)? {
        return Ok(v);
    }
    let def = schema()
        .get(name)
        .ok_or_else(|| Error::UnknownKind(name.to_owned()))?;
    let mut out = Map::new();
    for (n, wire) in fields(buf)? {
        let Some(f) = def.fields.get(&n) else {
            continue;
        };
        match f.label {
            Label::Map => {
                let Wire::Bytes(entry) = wire else {
                    return Err(malformed(format!("{} is not a map entry", f.name)));
                };
                let (kty, vty) = f.ty.split_once(',').unwrap_or(("string", "string"));
                let (mut key, mut val) = (String::new(), None);
                for (en, ew) in fields(entry)? {
                    match en {
                        1 => {
                            key = scalar(kty, &ew)?
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_default()
                        }
                        2 => val = Some(value(vty, &ew, depth)?),
                        _ => {}
                    }
                }
                let default = if vty == "string" || vty == "bytes" {
                    Value::String(String::new())
                } else {
                    Value::Object(Map::new())
                };
                let map = out
                    .entry(f.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = map.as_object_mut() {
                    m.insert(key, val.unwrap_or(default));
                }
            }
            Label::Repeated => {
                let items: Vec<Value> = match &wire {
                    Wire::Bytes(b)
                        if is_scalar(&f.ty) && !matches!(f.ty.as_str(), "string" | "bytes") =>
                    {
                        packed(&f.ty, b)?
                    }
                    _ => vec![value(&f.ty, &wire, depth)?],
                };
                let list = out
                    .entry(f.name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(a) = list.as_array_mut() {
                    a.extend(items);
                }
            }
            Label::Optional => {
                let v = value(&f.ty, &wire, depth)?;
                let omitted = !f.keep_zero && is_scalar(&f.ty) && is_zero(&v, def.go);
                match v {
                    Value::Null => {}
                    _ if omitted => {}
                    Value::Object(inner) if f.inline => out.extend(inner),
                    v => {
                        out.insert(f.name.clone(), v);
                    }
                }
            }
        }
    }
    if def.items {
        return Ok(out.remove("items").unwrap_or(Value::Array(Vec::new())));
    }
    Ok(Value::Object(out))
}

/// Whether Go's JSON leaves `v` out as a zero `omitempty` value: empty strings always,
/// zero numbers and `false` only where the Go struct is known.
fn is_zero(v: &Value, go: bool) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => go && !b,
        Value::Number(n) => go && n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Field `n` of a message, if present (the last one wins, as protobuf's rule).
fn field<'a>(all: &'a [(u64, Wire<'a>)], n: u64) -> Option<&'a Wire<'a>> {
    all.iter().rev().find(|(k, _)| *k == n).map(|(_, w)| w)
}

fn int(all: &[(u64, Wire<'_>)], n: u64) -> i64 {
    match field(all, n) {
        Some(Wire::Varint(v)) => *v as i64,
        _ => 0,
    }
}

fn bytes<'a>(all: &'a [(u64, Wire<'a>)], n: u64) -> &'a [u8] {
    match field(all, n) {
        Some(Wire::Bytes(b)) => b,
        _ => &[],
    }
}

/// Raw JSON bytes (FieldsV1, apiextensions JSON, RawExtension) as a value; a RawExtension
/// may hold a protobuf object.
fn raw_json(raw: &[u8], depth: usize) -> Result<Value, Error> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(MAGIC) {
        return envelope(raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|e| malformed(format!("embedded JSON: {e}")))
}

fn timestamp(seconds: i64, nanos: i64, micro: bool) -> Value {
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let Ok(t) = k8s_openapi::jiff::Timestamp::new(seconds, i32::try_from(nanos).unwrap_or(0))
    else {
        return Value::Null;
    };
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Value::String(t.strftime(format).to_string())
}

/// The types whose JSON is not their message's fields.
fn special(name: &str, buf: &[u8], depth: usize) -> Result<Option<Value>, Error> {
    const PROPS: &str = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
    let all = || fields(buf);
    let v = match name {
        "apimachinery.pkg.api.resource.Quantity" => Value::String(text(bytes(&all()?, 1))?),
        "apimachinery.pkg.util.intstr.IntOrString" => {
            let all = all()?;
            if int(&all, 1) == 1 {
                Value::String(text(bytes(&all, 3))?)
            } else {
                Value::from(int(&all, 2) as i32)
            }
        }
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            let all = all()?;
            timestamp(int(&all, 1), int(&all, 2), name.ends_with("MicroTime"))
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            Value::String(crate::go::go_duration(int(&all()?, 1)))
        }
        "apimachinery.pkg.apis.meta.v1.FieldsV1"
        | "apimachinery.pkg.runtime.RawExtension"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON" => {
            raw_json(bytes(&all()?, 1), depth)?
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool" => {
            let all = all()?;
            match field(&all, 2) {
                Some(Wire::Bytes(b)) => message(PROPS, b, depth + 1)?,
                _ => Value::Bool(int(&all, 1) != 0),
            }
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray" => {
            let all = all()?;
            let strings = name.ends_with("StringArray");
            let many: Vec<Value> = all
                .iter()
                .filter(|(n, _)| *n == 2)
                .map(|(_, w)| {
                    if strings {
                        scalar("string", w)
                    } else {
                        value(PROPS, w, depth)
                    }
                })
                .collect::<Result<_, _>>()?;
            match field(&all, 1) {
                Some(Wire::Bytes(b)) if many.is_empty() => message(PROPS, b, depth + 1)?,
                _ => Value::Array(many),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

/// The object in an envelope (`k8s\0` + `runtime.Unknown`), with `apiVersion` and `kind`.
fn envelope(body: &[u8], depth: usize) -> Result<Value, Error> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("the body does not start with the k8s\\0 envelope"))?;
    let all = fields(unknown)?;
    let type_meta = fields(bytes(&all, 1))?;
    let api_version = text(bytes(&type_meta, 1))?;
    let kind = text(bytes(&type_meta, 2))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let name = message_name(group, version, &kind)
        .ok_or_else(|| Error::UnknownKind(format!("{api_version}, Kind={kind}")))?;
    let mut obj = message(&name, bytes(&all, 2), depth)?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".to_owned(), Value::String(api_version));
        m.insert("kind".to_owned(), Value::String(kind));
    }
    Ok(obj)
}

/// The JSON of a Kubernetes protobuf body.
pub fn decode(body: &[u8]) -> Result<Value, Error> {
    envelope(body, 0)
}

#[cfg(test)]
#[path = "protobuf_tests.rs"]
mod tests;
