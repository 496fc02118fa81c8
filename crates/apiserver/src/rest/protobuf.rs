//! Protobuf request bodies for the few kinds kubectl ≥ 1.30 posts through its typed client
//! (`application/vnd.kubernetes.protobuf`): TokenRequest (`kubectl create token`),
//! SelfSubjectReview (`kubectl auth whoami`) and Eviction (`kubectl drain`). The body is
//! upstream's envelope (`k8s\0` + `runtime.Unknown{typeMeta, raw}`); `raw` is read with the
//! field numbers of upstream's `generated.proto` into the JSON the handlers already take.
//! Other kinds keep answering 415 (clients then send JSON).

use serde_json::{json, Map, Value};

use crate::status::ApiError;

const MAGIC: &[u8] = b"k8s\0";

/// Whether `headers` say the body is protobuf.
pub fn is_protobuf(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/vnd.kubernetes.protobuf")
            })
        })
}

fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the body of the request was in an unknown format: protobuf: {what}"
    ))
}

/// One field of a message: its number and its value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of a message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(&mut buf)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| malformed("length"))?;
                if len > buf.len() {
                    return Err(malformed("truncated"));
                }
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                Field::Bytes(bytes)
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if n > buf.len() {
                    return Err(malformed("truncated"));
                }
                buf = &buf[n..];
                continue;
            }
            _ => return Err(malformed("wire type")),
        };
        out.push((number, field));
    }
    Ok(out)
}

fn varint(buf: &mut &[u8]) -> Result<u64, ApiError> {
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

fn text(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("string is not UTF-8"))
}

/// A message's string, int64, bool and nested fields by number, as JSON under the given
/// names; repeated strings become arrays. Fields not named are skipped, as are empty strings
/// and empty messages (JSON's omitempty).
struct Shape {
    strings: Names,
    repeated: Names,
    ints: Names,
    bools: Names,
    nested: &'static [(u64, &'static str, &'static Shape)],
}

type Names = &'static [(u64, &'static str)];

const EMPTY: Shape = Shape {
    strings: &[],
    repeated: &[],
    ints: &[],
    bools: &[],
    nested: &[],
};

static OBJECT_META: Shape = Shape {
    strings: &[
        (1, "name"),
        (2, "generateName"),
        (3, "namespace"),
        (5, "uid"),
        (6, "resourceVersion"),
    ],
    ..EMPTY
};
static BOUND_OBJECT_REF: Shape = Shape {
    strings: &[(1, "kind"), (2, "apiVersion"), (3, "name"), (4, "uid")],
    ..EMPTY
};
static TOKEN_REQUEST_SPEC: Shape = Shape {
    repeated: &[(1, "audiences")],
    ints: &[(4, "expirationSeconds")],
    nested: &[(3, "boundObjectRef", &BOUND_OBJECT_REF)],
    ..EMPTY
};
static TOKEN_REQUEST: Shape = Shape {
    nested: &[
        (1, "metadata", &OBJECT_META),
        (2, "spec", &TOKEN_REQUEST_SPEC),
    ],
    ..EMPTY
};
static SELF_SUBJECT_REVIEW: Shape = Shape {
    nested: &[(1, "metadata", &OBJECT_META)],
    ..EMPTY
};
static PRECONDITIONS: Shape = Shape {
    strings: &[(1, "uid"), (2, "resourceVersion")],
    ..EMPTY
};
static DELETE_OPTIONS: Shape = Shape {
    strings: &[(4, "propagationPolicy")],
    repeated: &[(5, "dryRun")],
    ints: &[(1, "gracePeriodSeconds")],
    bools: &[(3, "orphanDependents")],
    nested: &[(2, "preconditions", &PRECONDITIONS)],
};
static EVICTION: Shape = Shape {
    nested: &[
        (1, "metadata", &OBJECT_META),
        (2, "deleteOptions", &DELETE_OPTIONS),
    ],
    ..EMPTY
};
static TYPE_META: Shape = Shape {
    strings: &[(1, "apiVersion"), (2, "kind")],
    ..EMPTY
};

fn name_of(list: Names, n: u64) -> Option<&'static str> {
    list.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

fn decode(shape: &Shape, buf: &[u8]) -> Result<Value, ApiError> {
    let mut out = Map::new();
    for (n, field) in fields(buf)? {
        match field {
            Field::Bytes(b) => {
                if let Some(key) = name_of(shape.strings, n) {
                    let s = text(b)?;
                    if !s.is_empty() {
                        out.insert(key.to_owned(), s.into());
                    }
                } else if let Some(key) = name_of(shape.repeated, n) {
                    let list = out.entry(key).or_insert_with(|| json!([]));
                    if let Some(items) = list.as_array_mut() {
                        items.push(text(b)?.into());
                    }
                } else if let Some((_, key, inner)) = shape.nested.iter().find(|(k, _, _)| *k == n)
                {
                    let v = decode(inner, b)?;
                    if v.as_object().is_some_and(|m| !m.is_empty()) {
                        out.insert((*key).to_owned(), v);
                    }
                }
            }
            Field::Varint(v) => {
                if let Some(key) = name_of(shape.ints, n) {
                    // int64 on the wire: two's complement in 64 bits.
                    out.insert(key.to_owned(), json!(v as i64));
                } else if let Some(key) = name_of(shape.bools, n) {
                    out.insert(key.to_owned(), json!(v != 0));
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// The JSON of a request body: decoded from protobuf when `headers` say so (kinds as
/// [`to_json`]), else parsed as JSON.
pub fn body_json(headers: &http::HeaderMap, body: &[u8], kind: &str) -> Result<Value, ApiError> {
    if is_protobuf(headers) {
        to_json(body, kind)
    } else {
        super::request::parse_json(body)
    }
}

/// The JSON of a protobuf body whose kind is `expected` (TokenRequest, SelfSubjectReview or
/// Eviction); 400 for a malformed body or another kind.
pub fn to_json(body: &[u8], expected: &str) -> Result<Value, ApiError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("no k8s envelope"))?;
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    for (n, field) in fields(envelope)? {
        match (n, field) {
            (1, Field::Bytes(b)) => type_meta = decode(&TYPE_META, b)?,
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or_default();
    let shape = match kind {
        "TokenRequest" => &TOKEN_REQUEST,
        "SelfSubjectReview" => &SELF_SUBJECT_REVIEW,
        "Eviction" => &EVICTION,
        _ => return Err(malformed(&format!("cannot decode kind {kind:?}"))),
    };
    if kind != expected {
        return Err(ApiError::bad_request(format!(
            "the body names kind {kind:?}, not {expected:?}"
        )));
    }
    let mut value = decode(shape, raw)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("apiVersion".to_owned(), type_meta["apiVersion"].clone());
        obj.insert("kind".to_owned(), kind.into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes kubectl 1.33 sent for `kubectl create token default --duration=20m --audience a1
    /// --audience a2` (from its `-v=9` dump).
    const TOKEN_REQUEST_BODY: &str = "6b 38 73 00 0a 28 0a 18 61 75 74 68 65 6e 74 69 \
        63 61 74 69 6f 6e 2e 6b 38 73 2e 69 6f 2f 76 31 12 0c 54 6f 6b 65 6e 52 65 71 75 65 73 74 \
        12 25 0a 10 0a 00 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 0b 0a 02 61 31 0a 02 61 32 \
        20 b0 09 1a 04 0a 00 12 00 1a 00 22 00";

    /// `--bound-object-kind Pod --bound-object-name p1 --bound-object-uid u1`.
    const BOUND_BODY: &str = "6b 38 73 00 0a 28 0a 18 61 75 74 68 65 6e 74 69 \
        63 61 74 69 6f 6e 2e 6b 38 73 2e 69 6f 2f 76 31 12 0c 54 6f 6b 65 6e 52 65 71 75 65 73 74 \
        12 2d 0a 10 0a 00 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 13 1a 11 0a 03 50 6f 64 12 \
        02 76 31 1a 02 70 31 22 02 75 31 1a 04 0a 00 12 00 1a 00 22 00";

    fn bytes(hex: &str) -> Vec<u8> {
        hex.split_whitespace()
            .filter(|h| *h != "\\")
            .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{h}: {e}")))
            .collect()
    }

    #[test]
    fn kubectl_token_requests_decode() {
        let v = to_json(&bytes(TOKEN_REQUEST_BODY), "TokenRequest")
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(
            v,
            json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": ["a1", "a2"], "expirationSeconds": 1200}
            })
        );
        let v =
            to_json(&bytes(BOUND_BODY), "TokenRequest").unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(
            v["spec"],
            json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1", "uid": "u1"}})
        );
    }

    #[test]
    fn bad_bodies_are_400_not_panics() {
        let good = bytes(TOKEN_REQUEST_BODY);
        for bad in [
            &b"{}"[..],
            &good[..good.len() - 30],
            &good[..5],
            b"k8s\0\x0a\xff",
        ] {
            let e = to_json(bad, "TokenRequest")
                .err()
                .unwrap_or_else(|| panic!("{bad:?} decoded"));
            assert_eq!(e.code, http::StatusCode::BAD_REQUEST);
        }
        let e = to_json(&good, "Eviction")
            .err()
            .unwrap_or_else(|| panic!("kind"));
        assert_eq!(e.code, http::StatusCode::BAD_REQUEST);
    }
}
