//! The review kinds: objects a client posts to ask a question, answered in `status` and
//! never stored. SelfSubjectReview (`kubectl auth whoami`), TokenReview (delegated
//! authentication: the user of a bearer token), SelfSubjectAccessReview
//! (`kubectl auth can-i`), SubjectAccessReview, LocalSubjectAccessReview and
//! SelfSubjectRulesReview (`kubectl auth can-i --list`), answered by [`crate::authz`].

use http::StatusCode;
use serde_json::{json, Value};
use tug_api::strategy::{ErrorType, FieldError};

use super::path::Target;
use super::render;
use crate::authn::UserInfo;
use crate::authz;
use crate::status::ApiError;

/// Whether `kind` is a review this module answers.
pub fn answers(kind: &str) -> bool {
    matches!(
        kind,
        "SelfSubjectReview"
            | "TokenReview"
            | "SelfSubjectAccessReview"
            | "SubjectAccessReview"
            | "LocalSubjectAccessReview"
            | "SelfSubjectRulesReview"
    )
}

fn invalid(t: &Target, field: &str, value: Value, detail: &str) -> ApiError {
    ApiError::invalid(
        t.info.kind,
        t.info.group,
        "",
        &[FieldError {
            kind: ErrorType::Invalid,
            field: field.to_owned(),
            bad_value: Some(value),
            detail: detail.to_owned(),
        }],
    )
}

/// POST of a review: the posted object with its answer.
pub fn answer(
    reg: &super::Registry,
    t: &Target,
    user: Option<&UserInfo>,
    body: &[u8],
) -> Result<axum::response::Response, ApiError> {
    let mut review = super::write::object_map(super::request::parse_json(body)?)?;
    review.insert("apiVersion".to_owned(), json!(t.info.group_version()));
    review.insert("kind".to_owned(), json!(t.info.kind));
    let meta = review.entry("metadata").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.insert("creationTimestamp".to_owned(), json!(tug_api::meta::now()));
    }
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match t.info.kind {
        "SelfSubjectReview" => json!({ "userInfo": user.map(user_info) }),
        "TokenReview" => {
            let token = spec["token"].as_str().unwrap_or_default();
            if token.is_empty() {
                return Err(ApiError::bad_request(
                    "token is required for TokenReview in authentication".to_owned(),
                ));
            }
            let audiences: Vec<String> = spec["audiences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let reviewed = reg
                .authenticator
                .get()
                .and_then(|a| a.review(token, &audiences));
            match reviewed {
                Some((who, good)) => json!({
                    "authenticated": true,
                    "user": user_info(&who),
                    "audiences": good,
                }),
                None => json!({ "user": {}, "error": "invalid bearer token" }),
            }
        }
        "SelfSubjectRulesReview" => {
            if spec["namespace"].as_str().is_none_or(str::is_empty) {
                return Err(invalid(t, "spec.namespace", json!(""), "must be specified"));
            }
            let rules = authz::rules_for(user);
            json!({
                "resourceRules": rules.resource_rules,
                "nonResourceRules": rules.non_resource_rules,
                "incomplete": false,
            })
        }
        kind => {
            check_access_spec(t, &spec)?;
            let subject = if kind == "SelfSubjectAccessReview" {
                user.cloned()
            } else {
                Some(UserInfo {
                    name: spec["user"].as_str().unwrap_or_default().to_owned(),
                    uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
                    groups: spec["groups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                })
            };
            let decision = authz::authorize(subject.as_ref(), &spec);
            let mut status = json!({ "allowed": decision.allowed });
            if !decision.reason.is_empty() {
                status["reason"] = json!(decision.reason);
            }
            status
        }
    };
    review.insert("status".to_owned(), status);
    Ok(render::value_response(
        StatusCode::CREATED,
        &Value::Object(review),
    ))
}

fn user_info(u: &UserInfo) -> Value {
    let mut v = json!({ "username": u.name, "groups": u.groups });
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    v
}

/// Upstream's validation of access review specs.
fn check_access_spec(t: &Target, spec: &Value) -> Result<(), ApiError> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    if resource.is_some() == non_resource.is_some() {
        return Err(invalid(
            t,
            "spec.resourceAttributes",
            resource.cloned().unwrap_or(Value::Null),
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    match t.info.kind {
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let no_user = spec["user"].as_str().is_none_or(str::is_empty);
            let no_groups = spec["groups"].as_array().is_none_or(Vec::is_empty);
            if no_user && no_groups {
                return Err(invalid(
                    t,
                    "spec.user",
                    json!(""),
                    "at least one of user or group must be specified",
                ));
            }
        }
        _ => {}
    }
    if t.info.kind == "LocalSubjectAccessReview" {
        let ns = t.namespace.as_deref().unwrap_or_default();
        let asked = resource
            .and_then(|r| r["namespace"].as_str())
            .unwrap_or_default();
        if asked != ns {
            return Err(invalid(
                t,
                "spec.resourceAttributes.namespace",
                json!(asked),
                "must match metadata.namespace",
            ));
        }
    }
    Ok(())
}
