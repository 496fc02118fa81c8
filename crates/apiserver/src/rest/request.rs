//! What a REST request asks for, read tolerantly as real clients send it: the query string
//! (`?&` prefixes, repeated keys, `1`/`true` booleans), the response form named by `Accept`
//! (JSON, `Table`, `PartialObjectMetadata`; protobuf offers are answered with JSON), and the
//! body (size limit, Content-Type, JSON).

use http::{header, HeaderMap, StatusCode};
use serde_json::Value;

use crate::status::ApiError;

/// The largest request body accepted, as upstream (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Decoded query parameters, in order; the first of repeated keys wins (as Go's `Get`).
#[derive(Clone, Debug, Default)]
pub struct Query(Vec<(String, String)>);

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    /// Parses a raw query string (without the `?`).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(p), String::new()),
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: `true`/`1` (and a bare key) are true.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True" | "TRUE" | ""))
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for query parameter {key}"))
            }),
        }
    }

    /// Whether `dryRun=All` was asked for (any other value is a 400, as upstream).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        for v in &values {
            if *v != "All" {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {v:?}; supported values: \"All\""
                )));
            }
        }
        Ok(!values.is_empty())
    }
}

/// The form a response takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The object or list itself.
    Json,
    /// A `meta.k8s.io` Table (`v1` or `v1beta1`).
    Table(&'static str),
    /// `PartialObjectMetadata` (or its list).
    Metadata,
}

/// Chooses the response form from `Accept`: the first entry this server can produce; offers
/// of protobuf alone are answered with JSON (as clients then accept), anything else not
/// producible is a 406.
pub fn negotiate(headers: &HeaderMap) -> Result<Form, ApiError> {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(Form::Json);
    }
    let mut saw_protobuf = false;
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_, mut g, mut v) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                _ => {}
            }
        }
        match media.as_str() {
            "application/json" | "*/*" | "application/*" => {}
            "application/vnd.kubernetes.protobuf" => {
                saw_protobuf = true;
                continue;
            }
            _ => continue,
        }
        match (as_, g, v) {
            ("", _, _) => return Ok(Form::Json),
            ("Table", "meta.k8s.io", "v1") => return Ok(Form::Table("v1")),
            ("Table", "meta.k8s.io", "v1beta1") => return Ok(Form::Table("v1beta1")),
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io", "v1") => {
                return Ok(Form::Metadata)
            }
            _ => continue,
        }
    }
    if saw_protobuf {
        return Ok(Form::Json);
    }
    Err(ApiError {
        code: StatusCode::NOT_ACCEPTABLE,
        reason: "NotAcceptable",
        message: format!(
            "only the following media types are accepted: application/json, \
             application/json;as=Table;v=v1;g=meta.k8s.io (asked for {accept:?})"
        ),
        details: None,
    })
}

/// How a write body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// A whole object (POST, PUT); also used when no Content-Type is sent.
    Json,
    /// RFC 7386 JSON merge patch.
    MergePatch,
    /// RFC 6902 JSON patch.
    JsonPatch,
    /// Strategic merge patch (built-in kinds).
    StrategicMergePatch,
    /// Server-side apply.
    ApplyPatch,
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// A protobuf body (`application/vnd.kubernetes.protobuf`, what client-go's typed clients
/// send) read into JSON, with the Content-Type changed to match, so every handler sees JSON;
/// other bodies as they came. 400 for a malformed body, 415 for a kind with no protobuf
/// layout.
pub fn protobuf_to_json(
    mut headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<(HeaderMap, bytes::Bytes), ApiError> {
    if media_type(&headers).as_deref() != Some(PROTOBUF) || body.is_empty() {
        return Ok((headers, body));
    }
    let value = tug_api::protobuf::decode(&body).map_err(|e| match e {
        tug_api::protobuf::Error::UnknownKind(_) => unsupported_media(PROTOBUF, "application/json"),
        tug_api::protobuf::Error::Malformed(_) => ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        )),
    })?;
    let json = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok((headers, bytes::Bytes::from(json)))
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The encoding of a POST or PUT body: JSON (also when Content-Type is missing), else 415.
pub fn object_body_type(headers: &HeaderMap) -> Result<BodyType, ApiError> {
    match media_type(headers).as_deref() {
        None | Some("" | "application/json" | "*/*") => Ok(BodyType::Json),
        Some(other) => Err(unsupported_media(
            other,
            "application/json, application/vnd.kubernetes.protobuf",
        )),
    }
}

/// The patch type of a PATCH body, else 415.
pub fn patch_body_type(headers: &HeaderMap) -> Result<BodyType, ApiError> {
    match media_type(headers).as_deref() {
        Some("application/merge-patch+json") => Ok(BodyType::MergePatch),
        Some("application/json-patch+json") => Ok(BodyType::JsonPatch),
        Some("application/strategic-merge-patch+json") => Ok(BodyType::StrategicMergePatch),
        Some("application/apply-patch+yaml" | "application/apply-patch+cbor") => {
            Ok(BodyType::ApplyPatch)
        }
        other => Err(unsupported_media(
            other.unwrap_or(""),
            "application/json-patch+json, application/merge-patch+json, \
             application/apply-patch+yaml",
        )),
    }
}

/// 415 for a patch type the resource does not take (strategic merge on custom resources).
pub fn unsupported_patch_type(got: &str) -> ApiError {
    unsupported_media(
        got,
        "application/json-patch+json, application/merge-patch+json, \
         application/apply-patch+yaml",
    )
}

fn unsupported_media(got: &str, accepted: &str) -> ApiError {
    ApiError {
        code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        reason: "UnsupportedMediaType",
        message: format!(
            "the body of the request was in an unknown format ({got:?}) - accepted media \
             types include: {accepted}"
        ),
        details: None,
    }
}

/// Parses a JSON body into a value; malformed JSON is a 400 naming the problem.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    check_not_empty(body)?;
    serde_json::from_slice(body).map_err(not_json)
}

/// [`parse_json`], also naming the keys that appear twice in one object
/// ([`super::strict`]), in the same pass.
pub fn parse_json_with_duplicates(body: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    check_not_empty(body)?;
    super::strict::parse_with_duplicates(body).map_err(not_json)
}

fn check_not_empty(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty".to_owned(),
        ));
    }
    Ok(())
}

fn not_json(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!(
        "the request body is not valid JSON: {e}; if it is YAML, send it as JSON"
    ))
}

/// Checks a body against [`MAX_BODY_BYTES`].
pub fn check_size(len: usize) -> Result<(), ApiError> {
    if len > MAX_BODY_BYTES {
        return Err(ApiError::too_large());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn queries_tolerate_what_clients_send() {
        let q = Query::parse(Some(
            "&watch=true&labelSelector=app%3Dweb%2Ctier+in+(a)&command=a&command=b&x",
        ));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert_eq!(q.get("command"), Some("a"));
        assert!(q.flag("x"));
        assert!(!q.flag("missing"));
        assert!(Query::parse(Some("limit=abc")).int("limit").is_err());
        assert_eq!(Query::parse(Some("limit=5")).int("limit").unwrap(), Some(5));
        assert!(Query::parse(Some("dryRun=All")).dry_run().unwrap());
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
        assert_eq!(Query::parse(Some("a=%zz%4")).get("a"), Some("%zz%4"));
    }

    #[test]
    fn negotiation_picks_the_first_producible_form() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Form::Json);
        assert_eq!(
            negotiate(&accept(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ))
            .unwrap(),
            Form::Table("v1")
        );
        assert_eq!(
            negotiate(&accept(
                "application/vnd.kubernetes.protobuf,application/json"
            ))
            .unwrap(),
            Form::Json
        );
        assert_eq!(
            negotiate(&accept("application/vnd.kubernetes.protobuf")).unwrap(),
            Form::Json
        );
        assert_eq!(
            negotiate(&accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .unwrap(),
            Form::Metadata
        );
        let e = negotiate(&accept("text/html")).unwrap_err();
        assert_eq!(e.code, StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn bodies_are_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(object_body_type(&h).unwrap(), BodyType::Json);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            object_body_type(&h).unwrap_err().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            patch_body_type(&h).unwrap_err().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert!(parse_json(b"{not json").is_err());
        assert!(parse_json(b"  ").is_err());
        assert!(check_size(MAX_BODY_BYTES + 1).is_err());
    }
}
