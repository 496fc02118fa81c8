//! Tests of the OpenAPI state and endpoints: the index, custom kinds coming and going,
//! caching, content negotiation, ETags and stale hashes.

use axum::body::Body;
use http::Request;
use tower::ServiceExt;

use super::*;
use crate::openapi::custom::tests::crontab;

fn json_of(built: &Built) -> serde_json::Value {
    serde_json::from_slice(&built.bytes().unwrap()).unwrap()
}

fn index(api: &OpenApi) -> serde_json::Value {
    json_of(&api.document(&Document::V3Index).unwrap())
}

fn url_of(index: &serde_json::Value, gv: &str) -> String {
    index["paths"][gv]["serverRelativeURL"]
        .as_str()
        .unwrap_or_else(|| panic!("{gv} missing from the index"))
        .to_owned()
}

#[test]
fn index_lists_builtin_and_custom_group_versions() {
    let api = OpenApi::new();
    let before = index(&api);
    for gv in ["api/v1", "apis/apps/v1", "apis/batch/v1"] {
        assert!(url_of(&before, gv).starts_with(&format!("/openapi/v3/{gv}?hash=")));
    }
    assert!(before["paths"]["apis/stable.example.com/v1"].is_null());
    assert!(api.group_versions().contains("apis/apps/v1"));

    api.set_custom(vec![crontab()]);
    let after = index(&api);
    assert!(url_of(&after, "apis/stable.example.com/v1").contains("?hash="));
    assert_eq!(
        url_of(&before, "apis/apps/v1"),
        url_of(&after, "apis/apps/v1")
    );
    assert!(api.group_versions().contains("apis/stable.example.com/v1"));

    let mut changed = crontab();
    changed.status = false;
    api.set_custom(vec![changed]);
    let again = index(&api);
    assert_ne!(
        url_of(&after, "apis/stable.example.com/v1"),
        url_of(&again, "apis/stable.example.com/v1"),
        "the hash follows the custom kind"
    );
}

#[test]
fn custom_documents_come_and_go_with_set_custom() {
    let api = OpenApi::new();
    let gv = Document::V3("apis/stable.example.com/v1".into());
    assert!(matches!(api.document(&gv), Err(Error::NotFound(_))));
    api.set_custom(vec![crontab()]);
    assert_eq!(api.custom().len(), 1);
    let doc = json_of(&api.document(&gv).unwrap());
    assert!(doc["components"]["schemas"]["com.example.stable.v1.CronTab"].is_object());
    let v2 = json_of(&api.document(&Document::V2Json).unwrap());
    assert!(v2["definitions"]["com.example.stable.v1.CronTab"].is_object());
    assert!(v2["paths"]["/apis/stable.example.com/v1/crontabs"].is_object());
    assert_eq!(v2["swagger"], "2.0");
    api.set_custom(Vec::new());
    assert!(matches!(api.document(&gv), Err(Error::NotFound(_))));
    let json = api.document(&Document::V2Json).unwrap();
    let v2 = json_of(&json);
    assert!(v2["definitions"]["com.example.stable.v1.CronTab"].is_null());
    let protobuf = api.document(&Document::V2Protobuf).unwrap();
    assert_ne!(json.etag, protobuf.etag, "one ETag per encoding");
}

#[test]
fn documents_are_cached_until_custom_kinds_change() {
    let api = OpenApi::new();
    let apps = Document::V3("apis/apps/v1".into());
    let first = api.document(&apps).unwrap();
    let second = api.document(&apps).unwrap();
    assert_eq!(
        first.gzip.as_ptr(),
        second.gzip.as_ptr(),
        "served from the cache"
    );
    assert!(
        first.gzip.len() * 4 < first.bytes().unwrap().len(),
        "kept compressed"
    );
    api.set_custom(vec![crontab()]);
    let third = api.document(&apps).unwrap();
    assert_ne!(first.gzip.as_ptr(), third.gzip.as_ptr(), "rebuilt");
    assert_eq!(first.etag, third.etag, "same content, same version");
}

#[test]
fn negotiation() {
    let mut h = HeaderMap::new();
    assert!(!wants_protobuf(&h));
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static(PROTOBUF_V2_REQUESTED),
    );
    assert!(wants_protobuf(&h));
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static(
            "application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        ),
    );
    assert!(!wants_protobuf(&h), "JSON listed first");
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf;q=0.9, */*",
        ),
    );
    assert!(wants_protobuf(&h));

    assert!(!accepts_gzip(&h));
    for (value, expected) in [
        ("gzip", true),
        ("deflate, gzip;q=0.5", true),
        ("gzip;q=0", false),
        ("identity", false),
        ("*", true),
    ] {
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        assert_eq!(accepts_gzip(&h), expected, "{value}");
    }
}

#[test]
fn errors_become_statuses() {
    let e: ApiError = Error::NotFound("apis/x/v1".into()).into();
    assert_eq!(e.code, StatusCode::NOT_FOUND);
    assert!(e.message.contains("/openapi/v3/apis/x/v1"));
    let bad = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
    let e: ApiError = Error::Source(bad).into();
    assert_eq!(e.code, StatusCode::INTERNAL_SERVER_ERROR);
    let corrupt = Built {
        gzip: Bytes::from_static(b"not gzip"),
        etag: String::new(),
    };
    assert!(matches!(corrupt.bytes(), Err(Error::Compress(_))));
}

async fn get(router: &Router, uri: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body(r: Response) -> Vec<u8> {
    axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn endpoints() {
    let api = Arc::new(OpenApi::new());
    let router = routes(api.clone());

    let r = get(&router, "/openapi/v3/apis/nope.example.com/v1", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let status: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "NotFound");

    let r = get(&router, "/openapi/v3", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let index: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    let url = url_of(&index, "apis/apps/v1");

    let r = get(&router, &url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "public, immutable");
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    let gz = body(r).await;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(doc["openapi"], "3.0.0");

    let r = get(&router, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    let r = get(&router, "/openapi/v3/apis/apps/v1?hash=stale", &[]).await;
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers()[header::LOCATION], url.as_str());

    let r = get(&router, "/openapi/v2", &[("accept", PROTOBUF_V2_REQUESTED)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], PROTOBUF_V2);
    let proto = body(r).await;
    assert_eq!(&proto[..5], [0x0a, 0x03, b'2', b'.', b'0']);

    let r = get(&router, "/openapi/v2", &[]).await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    let v2: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert!(v2["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
}
