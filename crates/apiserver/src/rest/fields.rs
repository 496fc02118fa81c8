//! Field management on writes: who the writer is (`fieldManager`, or the User-Agent's
//! product as upstream), the options every write carries ([`WriteOpts`]), and the
//! `metadata.managedFields` bookkeeping of ordinary writes (operation `Update`); server-side
//! apply computes its own in [`super::apply`]. The set logic is `tug_api::apply`'s.

use http::HeaderMap;
use serde_json::Value;
use tug_api::schema::Ty;
use tug_api::strategy::{ErrorType, FieldError};

use super::path::Target;
use super::request::Query;
use crate::status::ApiError;

/// How a write is recorded in managedFields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// An ordinary write: the changed fields become the manager's (operation `Update`).
    Update,
    /// Server-side apply: the apply code has written managedFields already.
    Apply,
}

/// What every write carries besides its body.
#[derive(Clone, Debug)]
pub struct WriteOpts {
    /// `dryRun=All`: do everything but persist.
    pub dry_run: bool,
    /// The field manager.
    pub manager: String,
    /// The subresource written through (`status`, `scale`), or "".
    pub subresource: String,
    /// How managedFields are kept.
    pub operation: Operation,
}

/// Longest field manager name upstream accepts.
const MAX_MANAGER: usize = 128;

impl WriteOpts {
    /// A write the server makes itself (status of CRDs, bootstrap objects).
    pub fn internal() -> WriteOpts {
        WriteOpts {
            dry_run: false,
            manager: "kube-apiserver".to_owned(),
            subresource: String::new(),
            operation: Operation::Update,
        }
    }

    /// The options of a client's write: `dryRun`, `fieldManager` (else the User-Agent's
    /// product, as upstream), the subresource.
    pub fn from_request(
        q: &Query,
        headers: &HeaderMap,
        subresource: &str,
    ) -> Result<WriteOpts, ApiError> {
        let dry_run = q.dry_run()?;
        let manager = match q.get("fieldManager") {
            Some(m) => {
                if m.len() > MAX_MANAGER {
                    return Err(invalid_manager(
                        m,
                        &format!("must be no more than {MAX_MANAGER} characters"),
                    ));
                }
                if m.chars().any(|c| c.is_control()) {
                    return Err(invalid_manager(m, "must only contain printable characters"));
                }
                m.to_owned()
            }
            None => manager_from_user_agent(headers),
        };
        Ok(WriteOpts {
            dry_run,
            manager,
            subresource: subresource.to_owned(),
            operation: Operation::Update,
        })
    }
}

fn invalid_manager(value: &str, detail: &str) -> ApiError {
    ApiError::invalid_options(
        "PatchOptions",
        FieldError {
            kind: ErrorType::Invalid,
            field: "fieldManager".into(),
            bad_value: Some(Value::String(value.to_owned())),
            detail: detail.to_owned(),
        },
    )
}

/// Upstream's default manager: the User-Agent up to its first `/`, at most 128 bytes.
fn manager_from_user_agent(headers: &HeaderMap) -> String {
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let product = ua.split('/').next().unwrap_or("");
    let mut end = product.len().min(MAX_MANAGER);
    while !product.is_char_boundary(end) {
        end -= 1;
    }
    product[..end].to_owned()
}

/// The type of a resource's objects for apply and strategic merge: the built-in kind's
/// schema, the CRD's, or untyped.
pub fn type_of(t: &Target) -> Ty {
    let info = t.info;
    if let Some(custom) = &t.custom {
        return custom.ty.clone();
    }
    tug_api::schema::builtin()
        .kind(info.group, info.version, info.kind)
        .unwrap_or_else(Ty::any)
}

/// What a write through `subresource` may neither set nor own, as upstream's reset fields:
/// the status on main-resource writes of kinds with a status subresource, the spec on
/// status writes.
pub fn reset_fields(t: &Target, subresource: &str) -> &'static [&'static [&'static str]] {
    match subresource {
        "" if super::kinds::status_is_separate(t.info) => tug_api::apply::RESET_STATUS,
        "status" => &[&["spec"]],
        _ => &[],
    }
}

/// Records an ordinary write in `new`'s managedFields. A body without managedFields keeps
/// the stored ones; an explicit empty list clears them, as upstream.
pub fn track(t: &Target, opts: &WriteOpts, old: Option<&Value>, new: &mut Value) {
    if opts.operation == Operation::Apply {
        return;
    }
    let sent = new["metadata"].get("managedFields").cloned();
    match (&sent, old) {
        (None | Some(Value::Null), Some(old)) => {
            if let Some(m) = old["metadata"].get("managedFields") {
                super::object::set_meta(new, "managedFields", m.clone());
            }
        }
        (Some(Value::Array(list)), _) if list.is_empty() => {
            super::object::remove_meta(new, "managedFields");
            return;
        }
        _ => {}
    }
    let ty = type_of(t);
    let info = t.info;
    let time = tug_api::meta::timestamp(super::render::now_unix());
    let api_version = info.group_version();
    let mgr = tug_api::apply::Manager {
        name: &opts.manager,
        api_version: &api_version,
        time: &time,
        subresource: &opts.subresource,
        reset_fields: reset_fields(t, &opts.subresource),
    };
    if let Err(e) = tug_api::apply::record_update(old, new, &mgr, &ty, tug_api::schema::builtin()) {
        // Unreadable managedFields are reset, as upstream does, rather than failing a write.
        tracing::warn!(error = %e, "resetting unreadable managedFields");
        super::object::remove_meta(new, "managedFields");
        let _ = tug_api::apply::record_update(None, new, &mgr, &ty, tug_api::schema::builtin());
    }
}

/// Whether a write changes nothing but managedFields timestamps (then it is not stored, as
/// upstream skips no-op updates).
pub fn unchanged(new: &Value, old: &Value) -> bool {
    same_fields(new, old, &|key, a, b| match key {
        "metadata" => same_fields(a, b, &|key, a, b| match key {
            "managedFields" => same_entries_but_time(a, b),
            _ => a == b,
        }),
        _ => a == b,
    })
}

/// Two objects with the same keys whose values `same` accepts (anything else: equality).
fn same_fields(new: &Value, old: &Value, same: &dyn Fn(&str, &Value, &Value) -> bool) -> bool {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            n.len() == o.len()
                && n.iter()
                    .all(|(k, v)| o.get(k).is_some_and(|w| same(k, v, w)))
        }
        _ => new == old,
    }
}

fn same_entries_but_time(new: &Value, old: &Value) -> bool {
    match (new, old) {
        (Value::Array(n), Value::Array(o)) => {
            n.len() == o.len()
                && n.iter()
                    .zip(o)
                    .all(|(a, b)| same_fields(a, b, &|k, x, y| k == "time" || x == y))
        }
        _ => new == old,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manager_defaults_to_the_user_agent_product() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("kubectl/v1.33.0 (linux/amd64) kubernetes/abc"),
        );
        let opts = WriteOpts::from_request(&Query::parse(None), &h, "").unwrap();
        assert_eq!(opts.manager, "kubectl");
        let q = Query::parse(Some("fieldManager=kubectl-edit"));
        assert_eq!(
            WriteOpts::from_request(&q, &h, "").unwrap().manager,
            "kubectl-edit"
        );
        let long = format!("fieldManager={}", "m".repeat(129));
        let err = WriteOpts::from_request(&Query::parse(Some(&long)), &h, "").unwrap_err();
        assert_eq!(err.code, http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn only_managed_field_times_changing_is_no_change() {
        let old = serde_json::json!({"metadata": {"name": "a", "managedFields": [
            {"manager": "m", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"x": 1}});
        let mut new = old.clone();
        new["metadata"]["managedFields"][0]["time"] = "2026-01-02T00:00:00Z".into();
        assert!(unchanged(&new, &old));
        new["metadata"]["managedFields"][0]["manager"] = "other".into();
        assert!(!unchanged(&new, &old));
        let mut new = old.clone();
        new["spec"]["x"] = 2.into();
        assert!(!unchanged(&new, &old));
    }
}
