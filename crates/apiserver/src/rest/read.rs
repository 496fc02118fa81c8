//! GET of one object and LIST of a collection, from the watch cache: consistent reads wait
//! until the cache has every acknowledged write; `resourceVersion=0` takes what it has;
//! `resourceVersionMatch=Exact` and continue tokens whose page has changed since read the
//! store at that revision. Label and field selectors, limit and continue as upstream.

use std::sync::Arc;

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tug_api::selectors::{FieldSelector, LabelSelector};
use tug_store::{ContinueToken, ListOptions};

use super::cache::Cached;
use super::object;
use super::path::Target;
use super::render::{self, Include};
use super::request::{negotiate, Query};
use super::Registry;
use crate::status::ApiError;

/// The selectors of a list or watch.
pub struct Selectors {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` (400 when malformed or unsupported).
    pub fn from_query(t: &Target, q: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        fields
            .check_supported(t.info.group, t.info.plural)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Selectors { labels, fields })
    }

    /// Whether an object matches both.
    pub fn matches(&self, t: &Target, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches_object(obj))
            && (self.fields.is_empty() || self.fields.matches(t.info.group, t.info.plural, obj))
    }

    /// Whether a cached object matches both (decoding it only when a selector is set).
    pub fn matches_cached(&self, t: &Target, obj: &Cached) -> bool {
        (self.labels.is_empty() && self.fields.is_empty()) || self.matches(t, obj.value())
    }
}

/// The cache of `t`'s resource.
pub fn resource(reg: &Registry, t: &Target) -> Arc<super::cache::ResourceCache> {
    reg.cache.resource(t.info)
}

/// Waits as the request's `resourceVersion` asks: "" = consistent, "0" = any, N = not older
/// than N.
async fn wait_for_rv(reg: &Registry, rv: Option<&str>) -> Result<(), ApiError> {
    match rv {
        None | Some("") => reg.cache.wait_fresh().await,
        Some("0") => Ok(()),
        Some(n) => {
            let n = parse_rv(n)?;
            reg.cache.wait_for(n).await
        }
    }
}

/// A resourceVersion from a client: a positive integer, else 400.
pub fn parse_rv(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// GET one object.
pub async fn get(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let form = negotiate(headers)?;
    let include = Include::from_query(q)?;
    wait_for_rv(reg, q.get("resourceVersion")).await?;
    let key = object::relative_key(t.namespace.as_deref(), t.name_str());
    let cached = resource(reg, t)
        .get(&key)
        .ok_or_else(|| ApiError::not_found(t.status_target()))?;
    let body = render::object_body(t.info, t.custom.as_deref(), form, include, &cached);
    Ok(render::json_response(StatusCode::OK, body))
}

/// Reads a page from the store at a past revision (exact reads, stale continue tokens).
async fn from_store(
    reg: &Registry,
    t: &Target,
    prefix: &str,
    options: ListOptions,
) -> Result<(Vec<Arc<Cached>>, i64, Option<String>), ApiError> {
    let page = reg.store.list(prefix, options).await.map_err(|e| match e {
        tug_store::Error::Compacted { .. } => ApiError::expired(
            "The provided continue parameter is too old to display a consistent list \
                 result. You can start a new list without the continue parameter, or use the \
                 continue token in this response to retrieve the remainder of the results. \
                 Continuing with the provided token results in an inconsistent list - objects \
                 that were created, modified, or deleted between the time the first chunk was \
                 returned and now may show up in the list."
                .to_owned(),
        ),
        e => ApiError::from_store(&e, t.status_target()),
    })?;
    let resource_prefix = object::storage_prefix(t.info);
    let mut items = Vec::with_capacity(page.items.len());
    for kv in page.items {
        let key = kv.key.strip_prefix(resource_prefix).unwrap_or(&kv.key);
        let cached = Cached::new(key.to_owned(), kv.mod_revision, &kv.value)
            .map_err(|e| ApiError::internal(format!("undecodable object {}: {e}", kv.key)))?;
        items.push(Arc::new(cached));
    }
    Ok((items, page.revision, page.continue_token))
}

/// LIST a collection.
pub async fn list(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let form = negotiate(headers)?;
    let include = Include::from_query(q)?;
    let sel = Selectors::from_query(t, q)?;
    let limit = usize::try_from(q.int("limit")?.unwrap_or(0).max(0)).unwrap_or(0);
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty());
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let cache = resource(reg, t);
    let resource_prefix = object::storage_prefix(t.info);
    let ns_prefix = t
        .namespace
        .as_ref()
        .map_or(String::new(), |ns| format!("{ns}/"));
    let list_prefix = format!("{resource_prefix}{ns_prefix}");

    let (items, list_rv, store_continue): (Vec<Arc<Cached>>, i64, Option<String>);
    let mut start_after: Option<String> = None;
    if let Some(token) = q.get("continue").filter(|s| !s.is_empty()) {
        if rv.is_some() {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue".to_owned(),
            ));
        }
        let decoded = ContinueToken::decode(token)
            .map_err(|e| ApiError::from_store(&e, t.status_target()))?;
        if cache.last_change() <= decoded.rv {
            let snap = cache.snapshot(t.namespace.as_deref(), reg.cache.revision());
            start_after = Some(format!("{ns_prefix}{}", decoded.start));
            items = snap.items;
            list_rv = decoded.rv;
            store_continue = None;
        } else {
            let options = ListOptions {
                revision: 0,
                limit,
                continue_token: Some(token.to_owned()),
            };
            (items, list_rv, store_continue) = from_store(reg, t, &list_prefix, options).await?;
        }
    } else if let (Some(n), Some("Exact")) = (rv, rv_match) {
        let options = ListOptions {
            revision: parse_rv(n)?,
            limit,
            continue_token: None,
        };
        (items, list_rv, store_continue) = from_store(reg, t, &list_prefix, options).await?;
    } else {
        match rv_match {
            None | Some("NotOlderThan" | "Exact") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \
                     \"Exact\", \"NotOlderThan\""
                )))
            }
        }
        wait_for_rv(reg, rv).await?;
        let snap = cache.snapshot(t.namespace.as_deref(), reg.cache.revision());
        items = snap.items;
        list_rv = snap.rv;
        store_continue = None;
    }

    let from_cache = store_continue.is_none();
    let mut selected: Vec<&Arc<Cached>> = items
        .iter()
        .filter(|c| {
            start_after
                .as_ref()
                .is_none_or(|s| c.key.as_str() >= s.as_str())
        })
        .filter(|c| sel.matches_cached(t, c))
        .collect();
    let mut cont = store_continue;
    if from_cache && limit > 0 && selected.len() > limit {
        selected.truncate(limit);
        if let Some(last) = selected.last() {
            let next = format!("{resource_prefix}{}\0", last.key);
            cont = Some(ContinueToken::new(&list_prefix, list_rv, &next).encode());
        }
    }
    let parts: Vec<&Cached> = selected.iter().map(|c| c.as_ref()).collect();
    let meta = render::list_meta(list_rv, cont.as_deref());
    let body = render::list_body(t.info, t.custom.as_deref(), form, include, &parts, meta);
    Ok(render::json_response(StatusCode::OK, body))
}
