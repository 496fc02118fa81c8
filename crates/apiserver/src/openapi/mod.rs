//! The OpenAPI endpoints kubectl reads for validation, patch merge keys and `explain`:
//!
//! - `GET /openapi/v2`: upstream's swagger (JSON), or gnostic protobuf (`v2proto`) when
//!   the Accept header asks for it ([`PROTOBUF_V2_REQUESTED`]: kubectl ≤ 1.28 does);
//! - `GET /openapi/v3`: the index, `{"paths": {"api/v1": {"serverRelativeURL":
//!   "/openapi/v3/api/v1?hash=…"}, …}}`, one entry per group-version served;
//! - `GET /openapi/v3/api/v1`, `/openapi/v3/apis/<g>/<v>`: that group-version's OpenAPI 3.0
//!   document (`v3`), which kubectl ≥ 1.29 reads to see that PATCH takes
//!   `fieldValidation` (and then leaves validation to the server) and for `explain`.
//!
//! The source is upstream's swagger embedded in `tug_api::schema` plus the custom kinds the
//! CRD machinery registers with [`OpenApi::set_custom`]. Documents are built on first
//! request, off the async threads, and kept gzipped (served as is to clients that accept
//! gzip, as Go clients do); registering custom kinds drops them. Between builds only the
//! encoded documents stay in memory, never the parsed swagger.

mod custom;
mod source;
mod v2json;
mod v2proto;
mod v3;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use custom::CustomKind;

use crate::status::ApiError;

/// The media type of the protobuf v2 document (gnostic `openapi.v2.Document`), as served.
pub const PROTOBUF_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The spelling of [`PROTOBUF_V2`] kubectl asks for. It is accepted but never sent back:
/// Go's media type parser rejects the `@`, and client-go then fails the response.
pub const PROTOBUF_V2_REQUESTED: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Building or serving a document failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No document for this group-version.
    #[error("no OpenAPI document for {0:?}")]
    NotFound(String),
    /// The embedded swagger does not parse (a build defect).
    #[error("the embedded OpenAPI document does not parse: {0}")]
    Source(#[source] serde_json::Error),
    /// Writing JSON failed.
    #[error("encoding the OpenAPI document: {0}")]
    Encode(#[source] serde_json::Error),
    /// Compressing or decompressing failed.
    #[error("compressing the OpenAPI document: {0}")]
    Compress(#[source] std::io::Error),
    /// The build task did not finish.
    #[error("building the OpenAPI document: {0}")]
    Task(String),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::NotFound(gv) => ApiError::not_found_path(&format!("/openapi/v3/{gv}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// One of the served documents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Document {
    /// `/openapi/v2` as JSON.
    V2Json,
    /// `/openapi/v2` as protobuf.
    V2Protobuf,
    /// `/openapi/v3`.
    V3Index,
    /// `/openapi/v3/<gv>`, by its group-version path (`api/v1`, `apis/apps/v1`).
    V3(String),
}

/// A built document.
#[derive(Clone, Debug)]
pub struct Built {
    /// Its bytes, gzipped.
    pub gzip: Bytes,
    /// Its version (the ETag, and the `hash` of v3 index URLs).
    pub etag: String,
}

impl Built {
    fn new(raw: &[u8], etag: String) -> Result<Built, Error> {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 8),
            flate2::Compression::fast(),
        );
        enc.write_all(raw).map_err(Error::Compress)?;
        let gzip = enc.finish().map_err(Error::Compress)?;
        Ok(Built {
            gzip: Bytes::from(gzip),
            etag,
        })
    }

    /// The document's bytes, uncompressed.
    pub fn bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.gzip.len() * 8);
        flate2::read::GzDecoder::new(&self.gzip[..])
            .read_to_end(&mut out)
            .map_err(Error::Compress)?;
        Ok(out)
    }
}

/// The OpenAPI documents' shared state: the custom kinds and the documents built so far.
#[derive(Debug, Default)]
pub struct OpenApi {
    state: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// Bumped by every [`OpenApi::set_custom`]: a build started before it is not kept.
    generation: u64,
    custom: Arc<Vec<CustomKind>>,
    docs: HashMap<Document, Built>,
}

impl OpenApi {
    /// No custom kinds, nothing built yet.
    pub fn new() -> OpenApi {
        OpenApi::default()
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the custom kinds (every served version of every CRD); the documents are
    /// rebuilt on their next request.
    pub fn set_custom(&self, kinds: Vec<CustomKind>) {
        let mut state = self.lock();
        if *state.custom == kinds {
            // Unchanged: keep the built documents.
            return;
        }
        state.generation += 1;
        state.custom = Arc::new(kinds);
        state.docs.clear();
    }

    /// The custom kinds registered.
    pub fn custom(&self) -> Arc<Vec<CustomKind>> {
        self.lock().custom.clone()
    }

    /// Every group-version the v3 index lists (reads the embedded document once).
    pub fn group_versions(&self) -> BTreeSet<String> {
        let mut out = source::builtin().group_versions.clone();
        out.extend(self.custom().iter().map(CustomKind::group_version_path));
        out
    }

    /// A document, from the cache or built now (blocking: call it off the async threads).
    pub fn document(&self, doc: &Document) -> Result<Built, Error> {
        let (generation, custom) = {
            let state = self.lock();
            if let Some(built) = state.docs.get(doc) {
                return Ok(built.clone());
            }
            (state.generation, state.custom.clone())
        };
        let built = build(doc, &custom)?;
        let mut state = self.lock();
        if state.generation == generation {
            state.docs.insert(doc.clone(), built.clone());
        }
        Ok(built)
    }

    async fn document_async(self: Arc<Self>, doc: Document) -> Result<Built, Error> {
        tokio::task::spawn_blocking(move || self.document(&doc))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }
}

fn kinds_of<'a>(custom: &'a [CustomKind], gv: &str) -> Vec<&'a CustomKind> {
    custom
        .iter()
        .filter(|k| k.group_version_path() == gv)
        .collect()
}

fn gv_hash(custom: &[CustomKind], gv: &str) -> String {
    source::version_hash(source::builtin().digest, Some(gv), &kinds_of(custom, gv))
}

fn build(doc: &Document, custom: &[CustomKind]) -> Result<Built, Error> {
    let builtin = source::builtin();
    let all: Vec<&CustomKind> = custom.iter().collect();
    match doc {
        Document::V2Json | Document::V2Protobuf => {
            // The two encodings must not share an ETag.
            let variant = (*doc == Document::V2Protobuf).then_some("protobuf");
            let etag = source::version_hash(builtin.digest, variant, &all);
            let json = tug_api::schema::swagger_json();
            let raw = match doc {
                Document::V2Json if custom.is_empty() => json,
                Document::V2Json => v2json::write(&json, custom).map_err(Error::Source)?,
                _ => v2proto::encode(&json, custom).map_err(Error::Source)?,
            };
            Built::new(&raw, etag)
        }
        Document::V3Index => {
            let mut gvs = builtin.group_versions.clone();
            gvs.extend(custom.iter().map(CustomKind::group_version_path));
            let paths: BTreeMap<String, serde_json::Value> = gvs
                .into_iter()
                .map(|gv| {
                    let url = format!("/openapi/v3/{gv}?hash={}", gv_hash(custom, &gv));
                    (gv, serde_json::json!({ "serverRelativeURL": url }))
                })
                .collect();
            let raw = serde_json::to_vec(&serde_json::json!({ "paths": paths }))
                .map_err(Error::Encode)?;
            let etag = source::version_hash(builtin.digest, Some("index"), &all);
            Built::new(&raw, etag)
        }
        Document::V3(gv) => {
            let kinds = kinds_of(custom, gv);
            if kinds.is_empty() && !builtin.group_versions.contains(gv) {
                return Err(Error::NotFound(gv.clone()));
            }
            let json = tug_api::schema::swagger_json();
            let raw = v3::document(&json, gv, &kinds)
                .map_err(Error::Source)?
                .ok_or_else(|| Error::NotFound(gv.clone()))?;
            drop(json);
            Built::new(&raw, gv_hash(custom, gv))
        }
    }
}

/// The routes: `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<gv>`.
pub fn routes(openapi: Arc<OpenApi>) -> Router {
    Router::new()
        .route("/openapi/v2", get(v2))
        .route("/openapi/v3", get(v3_index))
        .route("/openapi/v3/", get(v3_index))
        .route("/openapi/v3/{*gv}", get(v3_document))
        .with_state(openapi)
}

/// Whether the Accept header asks for protobuf before JSON.
fn wants_protobuf(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    for media in accept.split(',') {
        let base = media.split(';').next().unwrap_or("").trim();
        if base.eq_ignore_ascii_case(PROTOBUF_V2)
            || base.eq_ignore_ascii_case(PROTOBUF_V2_REQUESTED)
        {
            return true;
        }
        if ["application/json", "application/*", "*/*"]
            .iter()
            .any(|j| base.eq_ignore_ascii_case(j))
        {
            return false;
        }
    }
    false
}

/// Whether Accept-Encoding allows gzip.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(accept) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    accept.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn header_value(v: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(v).ok()
}

/// The response for a built document: 304 if the client has it, gzipped if it accepts it.
async fn respond(
    built: Built,
    headers: &HeaderMap,
    content_type: &'static str,
    immutable: bool,
) -> Response {
    let etag = quoted(&built.etag);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers) {
        let mut r = built.gzip.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        let raw = tokio::task::spawn_blocking(move || built.bytes()).await;
        match raw {
            Ok(Ok(raw)) => raw.into_response(),
            Ok(Err(e)) => return ApiError::from(e).into_response(),
            Err(e) => return ApiError::internal(e.to_string()).into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if let Some(v) = header_value(&etag) {
        h.insert(header::ETAG, v);
    }
    if immutable {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
    }
    response
}

async fn v2(State(api): State<Arc<OpenApi>>, headers: HeaderMap) -> Response {
    let (doc, content_type) = if wants_protobuf(&headers) {
        (Document::V2Protobuf, PROTOBUF_V2)
    } else {
        (Document::V2Json, "application/json")
    };
    match api.document_async(doc).await {
        Ok(built) => respond(built, &headers, content_type, false).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn v3_index(State(api): State<Arc<OpenApi>>, headers: HeaderMap) -> Response {
    match api.document_async(Document::V3Index).await {
        Ok(built) => respond(built, &headers, "application/json", false).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn v3_document(
    State(api): State<Arc<OpenApi>>,
    Path(gv): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let gv = gv.trim_matches('/').to_owned();
    let built = match api.document_async(Document::V3(gv.clone())).await {
        Ok(built) => built,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match query.get("hash") {
        Some(hash) if *hash != built.etag => {
            // An old URL: send the client to the current version, as upstream does.
            let url = format!("/openapi/v3/{gv}?hash={}", built.etag);
            let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Some(v) = header_value(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Some(_) => respond(built, &headers, "application/json", true).await,
        None => respond(built, &headers, "application/json", false).await,
    }
}

#[cfg(test)]
mod tests;
