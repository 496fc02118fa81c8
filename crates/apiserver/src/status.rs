//! Kubernetes `Status` error bodies: the one place API errors become HTTP responses, with
//! upstream's codes, reasons and messages.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// A failed request, as the `Status` object upstream returns.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status code.
    pub code: StatusCode,
    /// Machine-readable reason (`NotFound`, `Unauthorized`, …).
    pub reason: &'static str,
    /// Human-readable message, as kubectl prints it.
    pub message: String,
    /// `details`: the object concerned and, for some errors, causes.
    pub details: Option<serde_json::Value>,
}

/// The object a request concerns, for error messages: resource plural, group, and name.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Plural resource name: `pods`.
    pub resource: &'a str,
    /// API group (`""` for core).
    pub group: &'a str,
    /// Object name (`""` for collections).
    pub name: &'a str,
}

impl Target<'_> {
    /// For errors that concern no object (the store as a whole).
    pub const NONE: Target<'static> = Target {
        resource: "",
        group: "",
        name: "",
    };

    /// `pods` or `deployments.apps`, as upstream names a resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> serde_json::Value {
        let mut d = serde_json::json!({ "kind": self.resource });
        if !self.name.is_empty() {
            d["name"] = self.name.into();
        }
        if !self.group.is_empty() {
            d["group"] = self.group.into();
        }
        d
    }
}

impl ApiError {
    /// 401: no or unknown credentials.
    pub fn unauthorized() -> Self {
        ApiError {
            code: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
        }
    }

    /// The Status for a store error on `target`, with upstream's code, reason and message.
    pub fn from_store(err: &tug_store::Error, target: Target<'_>) -> Self {
        use tug_store::Error as E;
        let what = format!("{} {:?}", target.qualified(), target.name);
        let (code, reason, message, details) = match err {
            E::NotFound { .. } => return ApiError::not_found(target),
            E::AlreadyExists { .. } => (
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{what} already exists"),
                Some(target.details()),
            ),
            E::Conflict { .. } => {
                return ApiError::conflict(
                    target,
                    "the object has been modified; please apply your changes to the latest \
                     version and try again"
                        .to_owned(),
                )
            }
            E::Compacted { requested, oldest } => (
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {requested} ({oldest})"),
                None,
            ),
            E::FutureRevision { requested, current } => (
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
                Some(serde_json::json!({
                    "causes": [{
                        "reason": "ResourceVersionTooLarge",
                        "message": "Too large resource version",
                    }],
                    "retryAfterSeconds": 1,
                })),
            ),
            E::InvalidContinue(why) => (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("continue key is not valid: {why}"),
                None,
            ),
            E::InvalidKey { .. } | E::InvalidArgument(_) => {
                (StatusCode::BAD_REQUEST, "BadRequest", err.to_string(), None)
            }
            E::ValueTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("Request entity too large: {err}"),
                None,
            ),
            E::Closed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the storage is shutting down".to_owned(),
                None,
            ),
            E::Backend { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("Internal error occurred: {err}"),
                None,
            ),
        };
        ApiError {
            code,
            reason,
            message,
            details,
        }
    }

    /// 400 BadRequest with `message`.
    pub fn bad_request(message: String) -> Self {
        ApiError {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message,
            details: None,
        }
    }

    /// 413: the body is over the limit.
    pub fn too_large() -> Self {
        ApiError {
            code: StatusCode::PAYLOAD_TOO_LARGE,
            reason: "RequestEntityTooLarge",
            message: format!(
                "Request entity too large: limit is {}",
                crate::rest::request::MAX_BODY_BYTES
            ),
            details: None,
        }
    }

    /// 405: the resource does not serve this verb.
    pub fn method_not_allowed() -> Self {
        ApiError {
            code: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: None,
        }
    }

    /// 403 Forbidden with `message`, about `target`.
    pub fn forbidden(target: Target<'_>, message: String) -> Self {
        ApiError {
            code: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message,
            details: Some(target.details()),
        }
    }

    /// 404 NotFound for `target`.
    pub fn not_found(target: Target<'_>) -> Self {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("{} {:?} not found", target.qualified(), target.name),
            details: Some(target.details()),
        }
    }

    /// 409 Conflict with a custom message, about `target`.
    pub fn conflict(target: Target<'_>, message: String) -> Self {
        ApiError {
            code: StatusCode::CONFLICT,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} {:?}: {message}",
                target.qualified(),
                target.name
            ),
            details: Some(target.details()),
        }
    }

    /// 410 Expired with `message` (watch and continue tokens too old).
    pub fn expired(message: String) -> Self {
        ApiError {
            code: StatusCode::GONE,
            reason: "Expired",
            message,
            details: None,
        }
    }

    /// 500 for a failure that is the server's, not the client's.
    pub fn internal(message: String) -> Self {
        ApiError {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "InternalError",
            message: format!("Internal error occurred: {message}"),
            details: None,
        }
    }

    /// 422 Invalid: `<Kind> "<name>" is invalid: <errors>`, with one cause per error, as
    /// upstream's `NewInvalid`.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        errors: &[tug_api::strategy::FieldError],
    ) -> Self {
        let messages: Vec<String> = errors.iter().map(|e| e.message()).collect();
        let joined = match messages.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<serde_json::Value> = errors
            .iter()
            .map(|e| {
                serde_json::json!({
                    "reason": e.kind.cause_reason(),
                    "message": e.cause_message(),
                    "field": e.field,
                })
            })
            .collect();
        let mut details = serde_json::json!({ "name": name, "kind": kind, "causes": causes });
        if !group.is_empty() {
            details["group"] = group.into();
        }
        ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: if group.is_empty() {
                format!("{kind} {name:?} is invalid: {joined}")
            } else {
                format!("{kind}.{group} {name:?} is invalid: {joined}")
            },
            details: Some(details),
        }
    }

    /// 422 for bad request options (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
    pub fn invalid_options(kind: &str, error: tug_api::strategy::FieldError) -> Self {
        ApiError::invalid(kind, "meta.k8s.io", "", &[error])
    }

    /// 404 for a path no resource serves.
    pub fn not_found_path(path: &str) -> Self {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
            // Upstream's NotFound always carries details, empty here; kubectl tells a missing
            // subresource from a missing object by the empty name (and dereferences them).
            details: Some(serde_json::json!({})),
        }
    }

    /// The `Status` JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: Target<'static> = Target {
        resource: "pods",
        group: "",
        name: "web",
    };
    const DEPLOY: Target<'static> = Target {
        resource: "deployments",
        group: "apps",
        name: "api",
    };

    #[test]
    fn store_errors_read_as_upstream_writes_them() {
        let nf = ApiError::from_store(&tug_store::Error::NotFound { key: "k".into() }, POD);
        assert_eq!(nf.code, StatusCode::NOT_FOUND);
        assert_eq!(nf.message, r#"pods "web" not found"#);
        let body = nf.body();
        assert_eq!(body["details"]["name"], "web");
        assert_eq!(body["details"]["kind"], "pods");

        let ae = ApiError::from_store(&tug_store::Error::AlreadyExists { key: "k".into() }, DEPLOY);
        assert_eq!(
            (ae.code, ae.reason),
            (StatusCode::CONFLICT, "AlreadyExists")
        );
        assert_eq!(ae.message, r#"deployments.apps "api" already exists"#);
        assert_eq!(ae.body()["details"]["group"], "apps");

        let conflict = ApiError::from_store(
            &tug_store::Error::Conflict {
                key: "k".into(),
                expected: 1,
                actual: 2,
            },
            DEPLOY,
        );
        assert_eq!(conflict.reason, "Conflict");
        assert!(conflict.message.starts_with(
            r#"Operation cannot be fulfilled on deployments.apps "api": the object has been modified"#
        ));

        let gone = ApiError::from_store(
            &tug_store::Error::Compacted {
                requested: 5,
                oldest: 10,
            },
            POD,
        );
        assert_eq!((gone.code, gone.reason), (StatusCode::GONE, "Expired"));
        assert_eq!(gone.message, "too old resource version: 5 (10)");

        let future = ApiError::from_store(
            &tug_store::Error::FutureRevision {
                requested: 105,
                current: 100,
            },
            POD,
        );
        assert_eq!(future.code, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            future.body()["details"]["causes"][0]["reason"],
            "ResourceVersionTooLarge"
        );

        let bad = ApiError::from_store(&tug_store::Error::InvalidContinue("x".into()), POD);
        assert_eq!(bad.code, StatusCode::BAD_REQUEST);
        let big = ApiError::from_store(
            &tug_store::Error::ValueTooLarge {
                key: "k".into(),
                size: 2,
                limit: 1,
            },
            POD,
        );
        assert_eq!(big.code, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
