//! TokenRequest (`serviceaccounts/<name>/token`, what `kubectl create token` and the
//! kubelet's projected token volumes call), as upstream's `serviceaccount/storage/token.go`.

use std::sync::Arc;

use http::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use tug_api::strategy::{ErrorType, FieldError};

use super::object::relative_key;
use super::path::Target;
use super::{render, Registry};
use crate::status::{self, ApiError};
use crate::tokens::{Claims, KubernetesClaim, Ref, ISSUER};

/// Upstream's default lifetime of a requested token.
const DEFAULT_SECONDS: i64 = 3600;
/// The shortest lifetime a request may ask for.
const MIN_SECONDS: i64 = 600;
/// The longest.
const MAX_SECONDS: i64 = 1 << 32;
/// The lifetime the kubelet asks for in the default token volume: such tokens are issued for
/// a year and carry `warnafter` (upstream's `--service-account-extend-token-expiration`).
const WARN_ONLY_SECONDS: i64 = 3607;
const EXTENDED_SECONDS: i64 = 365 * 24 * 3600;

/// The typed request, or 400 naming what is wrong.
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("decoding the request body: {e}")))
}

fn invalid(name: &str, seconds: i64, detail: &str) -> ApiError {
    ApiError::invalid(
        "TokenRequest",
        "authentication.k8s.io",
        name,
        &[FieldError {
            kind: ErrorType::Invalid,
            field: "spec.expirationSeconds".to_owned(),
            bad_value: Some(seconds.into()),
            detail: detail.to_owned(),
        }],
    )
}

/// A live object from the watch cache, or 404 as upstream's getter answers. The cache is
/// waited on only when it lacks the object or has another incarnation of it (`uid`): a
/// request names objects that exist by then, and a freshness wait per token is a store
/// round trip every pod start would pay.
async fn live(
    reg: &Registry,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    uid: Option<&str>,
) -> Result<Value, ApiError> {
    let missing = || {
        ApiError::not_found(status::Target {
            resource: plural,
            group: "",
            name,
        })
    };
    let info = tug_api::find("", "v1", plural).ok_or_else(missing)?;
    let key = relative_key(namespace, name);
    let obj = reg
        .cache
        .get_current(info, &key, |v| uid.is_none_or(|u| uid_of(v) == u))
        .await?;
    obj.map(|o| o.value().clone()).ok_or_else(missing)
}

fn uid_of(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Finds the objects service account tokens name, in the watch cache (for
/// [`crate::authn::Authenticator::with_service_accounts`]).
pub fn lookup(reg: Arc<Registry>) -> crate::authn::Lookup {
    Arc::new(move |plural, namespace, name| {
        let info = tug_api::find("", "v1", plural)?;
        let obj = reg
            .cache
            .resource(info)
            .get(&relative_key(namespace, name))?;
        let meta = &obj.value()["metadata"];
        Some(crate::authn::Live {
            uid: meta["uid"].as_str().unwrap_or_default().to_owned(),
            deleted_at: meta["deletionTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| t.as_second()),
        })
    })
}

/// POST `serviceaccounts/<name>/token`.
pub async fn request(
    reg: &Arc<Registry>,
    t: &Target,
    body: &[u8],
) -> Result<axum::response::Response, ApiError> {
    let Some(keys) = reg.tokens.clone() else {
        return Err(ApiError::not_found_path("serviceaccounts/token"));
    };
    let (ns, name) = (t.namespace.as_deref().unwrap_or_default(), t.name_str());
    let req: TokenRequest = typed(super::request::parse_json(body)?)?;
    let sa = live(reg, "serviceaccounts", Some(ns), name, None).await?;
    let mut spec = req.spec.unwrap_or_default();
    let seconds = spec.expiration_seconds.unwrap_or(DEFAULT_SECONDS);
    if seconds < MIN_SECONDS {
        return Err(invalid(
            name,
            seconds,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > MAX_SECONDS {
        return Err(invalid(
            name,
            seconds,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences = match spec.audiences.take() {
        Some(a) if !a.is_empty() => a,
        _ => vec![ISSUER.to_owned()],
    };
    spec.audiences = Some(audiences.clone());
    spec.expiration_seconds = Some(seconds);
    let mut bound = KubernetesClaim {
        namespace: ns.to_owned(),
        serviceaccount: Ref {
            name: name.to_owned(),
            uid: uid_of(&sa),
        },
        ..KubernetesClaim::default()
    };
    if let Some(r) = &spec.bound_object_ref {
        let (group, version) = match r.api_version.as_deref().unwrap_or_default().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", r.api_version.as_deref().unwrap_or_default()),
        };
        let kind = r.kind.as_deref().unwrap_or_default();
        let obj_name = r.name.as_deref().unwrap_or_default();
        let plural = match (group, kind) {
            ("", "Pod") => "pods",
            ("", "Secret") => "secrets",
            ("", "Node") => "nodes",
            _ => {
                let gvk = if group.is_empty() {
                    format!("/{version}, Kind={kind}")
                } else {
                    format!("{group}/{version}, Kind={kind}")
                };
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {name:?} to object of kind {gvk:?}"
                )));
            }
        };
        let namespace = (plural != "nodes").then_some(ns);
        let want = r.uid.as_deref().filter(|u| !u.is_empty());
        let obj = live(reg, plural, namespace, obj_name, want).await?;
        let uid = uid_of(&obj);
        if let Some(want) = r.uid.as_deref().filter(|u| !u.is_empty()) {
            if want != uid {
                return Err(ApiError::conflict(
                    status::Target { resource: kind, group: "", name: obj_name },
                    format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"),
                ));
            }
        }
        let this = Some(Ref {
            name: obj_name.to_owned(),
            uid,
        });
        match plural {
            "pods" => {
                let spec = &obj["spec"];
                let sa_name = spec["serviceAccountName"].as_str().unwrap_or("default");
                if sa_name != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                if let Some(node) = spec["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    let uid = live(reg, "nodes", None, node, None)
                        .await
                        .map(|m| uid_of(&m))
                        .unwrap_or_default();
                    bound.node = Some(Ref {
                        name: node.to_owned(),
                        uid,
                    });
                }
                bound.pod = this;
            }
            "secrets" => bound.secret = this,
            _ => bound.node = this,
        }
    }
    let now = render::now_unix();
    let mut exp = now + seconds;
    let api_audience = audiences.iter().all(|a| a == ISSUER);
    if bound.pod.is_some() && seconds == WARN_ONLY_SECONDS && api_audience {
        bound.warnafter = Some(exp);
        exp = now + EXTENDED_SECONDS;
    }
    let claims = Claims {
        aud: audiences,
        exp,
        iat: now,
        iss: ISSUER.to_owned(),
        jti: tug_api::meta::new_uid(),
        nbf: now,
        sub: format!("system:serviceaccount:{ns}:{name}"),
        kubernetes: bound,
    };
    let token = keys
        .sign(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let out = TokenRequest {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            creation_timestamp: Some(tug_api::meta::now()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: Some(TokenRequestStatus {
            token: Some(token),
            expiration_timestamp: Some(Time(
                Timestamp::from_second(now + seconds).unwrap_or(Timestamp::UNIX_EPOCH),
            )),
        }),
    };
    let mut value = serde_json::to_value(&out).map_err(|e| ApiError::internal(e.to_string()))?;
    value["apiVersion"] = "authentication.k8s.io/v1".into();
    value["kind"] = "TokenRequest".into();
    Ok(render::value_response(StatusCode::CREATED, &value))
}
