//! The smaller parts of CRD validation: printer columns, the scale subresource, conversion
//! webhooks, immutable fields on update, `status.storedVersions` and the API-approval
//! annotation of protected groups, with upstream's paths and messages.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceConversion, CustomResourceDefinition,
    CustomResourceDefinitionSpec, CustomResourceSubresources,
};

use super::{child, index, key};
use crate::strategy::{
    forbidden, immutable, invalid, invalid_json, not_supported, required, FieldError,
};
use crate::validation::is_dns1035_label;

const PRINTER_TYPES: &str = "boolean,date,integer,number,string";
const PRINTER_FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";
const APPROVAL: &str = "api-approved.kubernetes.io";

/// upstream's `validateSimpleJSONPath`.
fn simple_json_path(s: &str, path: &str) -> Option<FieldError> {
    if s.is_empty() {
        Some(invalid(path, s, "must not be empty"))
    } else if !s.starts_with('.') {
        Some(invalid(
            path,
            s,
            "must be a simple json path starting with .",
        ))
    } else {
        None
    }
}

pub(super) fn column(col: &CustomResourceColumnDefinition, path: &str, errs: &mut Vec<FieldError>) {
    if col.name.is_empty() {
        errs.push(required(child(path, "name"), ""));
    }
    let types_msg = format!("must be one of {PRINTER_TYPES}");
    if col.type_.is_empty() {
        errs.push(required(child(path, "type"), &types_msg));
    } else if !PRINTER_TYPES.split(',').any(|t| t == col.type_) {
        errs.push(invalid(child(path, "type"), col.type_.as_str(), &types_msg));
    }
    if let Some(format) = col.format.as_deref().filter(|f| !f.is_empty()) {
        if !PRINTER_FORMATS.split(',').any(|f| f == format) {
            errs.push(invalid(
                child(path, "format"),
                format,
                &format!("must be one of {PRINTER_FORMATS}"),
            ));
        }
    }
    let jpath = child(path, "JSONPath");
    if col.json_path.is_empty() {
        errs.push(required(jpath, ""));
    } else if let Some(e) = simple_json_path(&col.json_path, &jpath) {
        errs.push(e);
    }
}

pub(super) fn subresources(
    s: Option<&CustomResourceSubresources>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(scale) = s.and_then(|s| s.scale.as_ref()) else {
        return;
    };
    for (field, value, prefix, under) in [
        (
            "scale.specReplicasPath",
            scale.spec_replicas_path.as_str(),
            ".spec.",
            "should be a json path under .spec",
        ),
        (
            "scale.statusReplicasPath",
            scale.status_replicas_path.as_str(),
            ".status.",
            "should be a json path under .status",
        ),
    ] {
        let fpath = child(path, field);
        if value.is_empty() {
            errs.push(required(fpath, ""));
        } else if let Some(e) = simple_json_path(value, &fpath) {
            errs.push(e);
        } else if !value.starts_with(prefix) {
            errs.push(invalid(fpath, value, under));
        }
    }
    if let Some(selector) = scale
        .label_selector_path
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        let fpath = child(path, "scale.labelSelectorPath");
        if let Some(e) = simple_json_path(selector, &fpath) {
            errs.push(e);
        } else if !selector.starts_with(".spec.") && !selector.starts_with(".status.") {
            errs.push(invalid(
                fpath,
                selector,
                "should be a json path under either .spec or .status",
            ));
        }
    }
}

pub(super) fn conversion(conv: &CustomResourceConversion, errs: &mut Vec<FieldError>) {
    let path = "spec.conversion";
    match conv.strategy.as_str() {
        "" => errs.push(required(child(path, "strategy"), "")),
        "None" | "Webhook" => {}
        other => errs.push(not_supported(
            child(path, "strategy"),
            other,
            &["None", "Webhook"],
        )),
    }
    let client = conv.webhook.as_ref().and_then(|w| w.client_config.as_ref());
    let review = conv
        .webhook
        .as_ref()
        .map(|w| w.conversion_review_versions.as_slice())
        .unwrap_or(&[]);
    let cc_path = child(path, "webhookClientConfig");
    if conv.strategy != "Webhook" {
        if client.is_some() {
            errs.push(forbidden(
                cc_path,
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if !review.is_empty() {
            errs.push(forbidden(
                child(path, "conversionReviewVersions"),
                "should not be set when strategy is not set to Webhook",
            ));
        }
        return;
    }
    match client {
        None => errs.push(required(
            cc_path,
            "required when strategy is set to Webhook",
        )),
        Some(cc) => match (&cc.url, &cc.service) {
            (Some(_), Some(_)) | (None, None) => errs.push(required(
                cc_path,
                "exactly one of url or service is required",
            )),
            (Some(url), None) => webhook_url(url, &child(&cc_path, "url"), errs),
            (None, Some(svc)) => {
                let spath = child(&cc_path, "service");
                if svc.name.is_empty() {
                    errs.push(required(child(&spath, "name"), "service name is required"));
                }
                if svc.namespace.is_empty() {
                    errs.push(required(
                        child(&spath, "namespace"),
                        "service namespace is required",
                    ));
                }
                let port = svc.port.unwrap_or(443);
                if !(1..=65535).contains(&port) {
                    errs.push(invalid(
                        child(&spath, "port"),
                        port,
                        "port is not valid: must be between 1 and 65535, inclusive",
                    ));
                }
                if let Some(p) = svc
                    .path
                    .as_deref()
                    .filter(|p| !p.is_empty() && *p != "/" && !p.starts_with('/'))
                {
                    errs.push(invalid(child(&spath, "path"), p, "must start with a '/'"));
                }
            }
        },
    }
    let rpath = child(path, "conversionReviewVersions");
    if review.is_empty() {
        errs.push(required(rpath, ""));
        return;
    }
    for (i, v) in review.iter().enumerate() {
        if review[..i].contains(v) {
            errs.push(invalid(index(&rpath, i), v.as_str(), "duplicate version"));
            continue;
        }
        for msg in is_dns1035_label(v) {
            errs.push(invalid(index(&rpath, i), v.as_str(), &msg));
        }
    }
    if !review.iter().any(|v| v == "v1" || v == "v1beta1") {
        errs.push(invalid_json(
            rpath,
            &review,
            "must include at least one of v1, v1beta1",
        ));
    }
}

/// upstream's `ValidateWebhookURL` with https required (simplified URL parsing).
fn webhook_url(url: &str, path: &str, errs: &mut Vec<FieldError>) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if scheme != "https" {
        errs.push(invalid(
            path,
            scheme,
            &format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if scheme.is_empty() || authority.is_empty() {
        errs.push(invalid(path, url, &format!("host must be specified{FORM}")));
    }
    if authority.contains('@') {
        errs.push(invalid(
            path,
            url,
            &format!("user information is not permitted in the URL{FORM}"),
        ));
    }
    if rest.contains('#') {
        errs.push(invalid(
            path,
            url,
            &format!("fragments are not permitted in the URL{FORM}"),
        ));
    }
    if rest.contains('?') {
        errs.push(invalid(
            path,
            url,
            &format!("query parameters are not permitted in the URL{FORM}"),
        ));
    }
}

/// Immutable fields: group and plural always; scope and kind once the CRD is established.
pub(super) fn update_rules(
    new: &CustomResourceDefinition,
    old: &CustomResourceDefinition,
    errs: &mut Vec<FieldError>,
) {
    let established = old
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    if established {
        errs.extend(immutable(&new.spec.scope, &old.spec.scope, "spec.scope"));
        errs.extend(immutable(
            &new.spec.names.kind,
            &old.spec.names.kind,
            "spec.names.kind",
        ));
    }
    errs.extend(immutable(&new.spec.group, &old.spec.group, "spec.group"));
    errs.extend(immutable(
        &new.spec.names.plural,
        &old.spec.names.plural,
        "spec.names.plural",
    ));
}

pub(super) fn stored_versions(
    stored: &[String],
    spec: &CustomResourceDefinitionSpec,
    errs: &mut Vec<FieldError>,
) {
    let path = "status.storedVersions";
    if stored.is_empty() {
        errs.push(invalid_json(
            path,
            &stored,
            "must have at least one stored version",
        ));
        return;
    }
    for v in spec
        .versions
        .iter()
        .filter(|v| v.storage && !stored.contains(&v.name))
    {
        errs.push(invalid_json(
            path,
            &stored,
            &format!("must have the storage version {}", v.name),
        ));
    }
    for (i, v) in stored.iter().enumerate() {
        if !spec.versions.iter().any(|sv| &sv.name == v) && !stored[..i].contains(v) {
            errs.push(invalid(index(path, i), v.as_str(), &format!("missing from spec.versions; {v} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {v} and removes {v} from status.storedVersions")));
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Approval {
    Invalid,
    Approved,
    Bypassed,
    Missing,
}

fn approval_state(crd: &CustomResourceDefinition) -> (Approval, String) {
    let value = crd
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPROVAL))
        .map_or("", String::as_str);
    let looks_like_url = value.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            && !rest.split(['/', '?', '#']).next().unwrap_or("").is_empty()
    });
    if value.is_empty() {
        (Approval::Missing, format!("protected groups must have approval annotation {APPROVAL:?}, see https://github.com/kubernetes/enhancements/pull/1111"))
    } else if value.starts_with("unapproved") {
        (Approval::Bypassed, format!("not approved: {value:?}"))
    } else if looks_like_url {
        (Approval::Approved, format!("approved in {value}"))
    } else {
        (Approval::Invalid, format!("protected groups must have approval annotation {APPROVAL:?} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"))
    }
}

/// Groups under `k8s.io` and `kubernetes.io` need the API-approval annotation.
pub(super) fn api_approval(
    new: &CustomResourceDefinition,
    old: Option<&CustomResourceDefinition>,
    errs: &mut Vec<FieldError>,
) {
    let g = new.spec.group.as_str();
    let protected = g == "k8s.io"
        || g.ends_with(".k8s.io")
        || g == "kubernetes.io"
        || g.ends_with(".kubernetes.io");
    if !protected {
        return;
    }
    let (state, reason) = approval_state(new);
    if old.is_some_and(|o| approval_state(o).0 == state) {
        return;
    }
    let field = key("metadata.annotations", APPROVAL);
    let value = new
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPROVAL))
        .cloned()
        .unwrap_or_default();
    match state {
        Approval::Approved | Approval::Bypassed => {}
        Approval::Missing => errs.push(required(field, &reason)),
        Approval::Invalid => errs.push(invalid(field, value, &reason)),
    }
}
