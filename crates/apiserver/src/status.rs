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
}

impl ApiError {
    /// 401: no or unknown credentials.
    pub fn unauthorized() -> Self {
        ApiError {
            code: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
        }
    }

    /// 404 for a path no resource serves.
    pub fn not_found_path(path: &str) -> Self {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
        }
    }

    /// The `Status` JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.body())).into_response()
    }
}
