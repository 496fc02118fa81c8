//! Strategic merge patch (`application/strategic-merge-patch+json`): applies a patch to a
//! JSON object the way upstream's apiserver does (`StrategicMergeMapPatch`), driven by the
//! patch metadata of [`crate::schema`] (`x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`).
//!
//! Maps merge key by key and `null` deletes a key. Lists replace, except lists whose field
//! has the `merge` strategy: lists of maps merge element by element on the merge key, lists
//! of primitives merge as ordered sets. The patch may carry directives: `$patch`
//! (`replace`/`delete` on a map or a list element), `$retainKeys`, `$setElementOrder/<list>`
//! and `$deleteFromPrimitiveList/<list>`. Directives never reach the result.
//!
//! Errors follow upstream's split (`interpretStrategicMergePatchError`): malformed patches
//! are [`SmpError::BadRequest`] (400), lists of lists are [`SmpError::Invalid`] (422).

mod gofmt;
mod list;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::schema::{Node, PatchMeta, Schemas, Ty};

/// The key of the `$patch` directive.
const DIRECTIVE: &str = "$patch";
/// The key of the `$retainKeys` directive.
const RETAIN_KEYS: &str = "$retainKeys";
/// The prefix of `$setElementOrder/<list>` keys.
const SET_ORDER: &str = "$setElementOrder";
/// The prefix of `$deleteFromPrimitiveList/<list>` keys.
const DELETE_FROM: &str = "$deleteFromPrimitiveList";

/// Upstream's `ErrBadPatchFormatForPrimitiveList`.
const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
/// Upstream's `ErrBadPatchFormatForRetainKeys`.
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
/// Upstream's `ErrBadPatchFormatForSetElementOrderList`.
const BAD_SET_ORDER: &str = "invalid patch format of setElementOrder list";
/// Upstream's `ErrNoListOfLists`.
const NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
/// Upstream's `ErrBadJSONDoc`.
const BAD_JSON_DOC: &str = "invalid JSON document";

/// Why a strategic merge patch could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The patch document is malformed (HTTP 400): not an object, a directive with a wrong
    /// shape or value, a merge list element without its merge key.
    #[error("{0}")]
    BadRequest(String),
    /// The patch cannot be applied to this object (HTTP 422): lists of lists.
    #[error("{0}")]
    Invalid(String),
}

impl SmpError {
    /// A [`SmpError::BadRequest`] with this message.
    fn bad(msg: impl Into<String>) -> SmpError {
        SmpError::BadRequest(msg.into())
    }
}

/// Applies the strategic merge patch `patch` to `original`, an object of type `ty`.
///
/// `patch` must be a JSON object (`null` is an empty patch, as upstream decodes it). Fields
/// the schema does not know, and everything under a [`Node::Any`], merge like a JSON merge
/// patch: maps merge, lists are replaced.
pub fn apply(
    original: &Value,
    patch: &Value,
    ty: &Ty,
    schemas: &Schemas,
) -> Result<Value, SmpError> {
    let patch = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(SmpError::bad(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                gofmt::json_kind(other)
            )))
        }
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(SmpError::bad(BAD_JSON_DOC)),
    };
    let cx = Cx { schemas };
    let merged = cx.merge_map(original, patch, Some(ty))?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// A type while walking: `None` stands for "no schema" (free-form JSON).
type Sch<'a> = Option<&'a Ty>;

/// The patch metadata of one field, as the merge needs it.
#[derive(Clone, Copy, Debug, Default)]
struct Meta<'a> {
    /// Lists merge (by `key`, or as sets of primitives).
    merge: bool,
    /// The value is replaced wholesale.
    replace: bool,
    /// The merge key of list elements.
    key: Option<&'a str>,
}

impl<'a> Meta<'a> {
    fn of(p: &'a PatchMeta) -> Meta<'a> {
        Meta {
            merge: p.merge,
            replace: p.replace && !p.merge,
            key: p.merge_key.as_deref().filter(|k| !k.is_empty()),
        }
    }
}

/// The walk's context: where types resolve.
struct Cx<'a> {
    schemas: &'a Schemas,
}

impl<'a> Cx<'a> {
    /// The type and patch metadata of the value under `name` in an object of type `ty`.
    fn field(&self, ty: Sch<'a>, name: &str) -> (Sch<'a>, Meta<'a>) {
        let Some(ty) = ty else {
            return (None, Meta::default());
        };
        match self.schemas.resolve(ty) {
            Node::Struct(s) => match s.fields.get(name) {
                Some(f) => (Some(&f.ty), Meta::of(&f.patch)),
                None => (s.extra.as_deref(), Meta::default()),
            },
            Node::Map(m) => (Some(&m.values), Meta::default()),
            _ => (None, Meta::default()),
        }
    }

    /// The element type of a list type.
    fn items(&self, ty: Sch<'a>) -> Sch<'a> {
        match ty.map(|t| self.schemas.resolve(t)) {
            Some(Node::List(l)) => Some(&l.items),
            _ => None,
        }
    }

    /// Merges the map `patch` into `original` (upstream's `mergeMap`). `None` means the
    /// patch deleted the map (`$patch: delete`).
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        ty: Sch<'a>,
    ) -> Result<Option<Map<String, Value>>, SmpError> {
        if let Some(d) = patch.get(DIRECTIVE) {
            match d.as_str() {
                Some("replace") => {
                    patch.remove(DIRECTIVE);
                    return Ok(Some(fresh_map(patch)));
                }
                Some("delete") => return Ok(None),
                Some("merge") => {
                    patch.remove(DIRECTIVE);
                }
                _ => return Err(gofmt::bad_patch_type(d, &patch)),
            }
        }
        retain_keys(&mut original, &mut patch)?;
        self.set_element_orders(&mut original, &mut patch, ty)?;

        for (key, pv) in patch {
            let (key, is_delete) = match key.strip_prefix(DELETE_FROM) {
                Some(rest) => match rest.strip_prefix('/') {
                    Some(k) if !k.is_empty() => (k.to_owned(), true),
                    _ => return Err(SmpError::bad(BAD_PRIMITIVE_LIST)),
                },
                None => (key, false),
            };
            if pv.is_null() {
                original.remove(&key);
                continue;
            }
            if is_delete && !pv.is_array() {
                return Err(SmpError::bad(BAD_PRIMITIVE_LIST));
            }
            let Some(slot) = original.get_mut(&key) else {
                if !is_delete {
                    if let Some(v) = fresh(pv) {
                        original.insert(key, v);
                    }
                }
                continue;
            };
            let merged = match (std::mem::take(slot), pv) {
                (Value::Object(o), Value::Object(p)) => {
                    let (sub, meta) = self.field(ty, &key);
                    if meta.replace {
                        Some(Value::Object(fresh_map(p)))
                    } else {
                        self.merge_map(o, p, sub)?.map(Value::Object)
                    }
                }
                (Value::Array(o), Value::Array(p)) => {
                    let (sub, meta) = self.field(ty, &key);
                    let items = self.items(sub);
                    Some(Value::Array(self.merge_list(o, p, items, meta, is_delete)?))
                }
                // A deletion list only applies to a list.
                (ov, _) if is_delete => Some(ov),
                (_, pv) => fresh(pv),
            };
            match merged {
                Some(v) => *slot = v,
                None => {
                    original.remove(&key);
                }
            }
        }
        Ok(Some(original))
    }

    /// Merges the list `patch` into `original` for a field with metadata `meta`
    /// (upstream's `mergeSliceHandler`): merge lists and deletion lists merge, others are
    /// replaced by the patch.
    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        items: Sch<'a>,
        meta: Meta<'a>,
        is_delete: bool,
    ) -> Result<Vec<Value>, SmpError> {
        if meta.merge || is_delete {
            list::merge_slice(self, original, patch, items, meta.key, is_delete)
        } else {
            Ok(patch.into_iter().filter_map(fresh).collect())
        }
    }
}

/// Applies and strips a `$retainKeys` directive: keys of `original` not listed are cleared,
/// and every key the patch sets must be listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), SmpError> {
    let Some(list) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = list else {
        return Err(SmpError::bad(BAD_RETAIN_KEYS));
    };
    let keys = list
        .iter()
        .map(|v| v.as_str().ok_or_else(|| SmpError::bad(BAD_RETAIN_KEYS)))
        .collect::<Result<Vec<&str>, SmpError>>()?;
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM) || k.starts_with(SET_ORDER) {
            continue;
        }
        if !keys.contains(&k.as_str()) {
            return Err(SmpError::bad(BAD_RETAIN_KEYS));
        }
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// Whether a map key is a patch directive.
fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE || k == RETAIN_KEYS || k.starts_with(SET_ORDER) || k.starts_with(DELETE_FROM)
}

/// A patch value taken as it is (nothing in the original to merge with): `null` map values
/// are dropped, maps carrying `$patch` vanish, directive keys are stripped (upstream's
/// `discardNullValuesFromPatch` and `removeDirectives`). `None`: the value itself vanishes.
fn fresh(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(fresh_map(m))),
        Value::Array(a) => Some(Value::Array(a.into_iter().filter_map(fresh).collect())),
        other => Some(other),
    }
}

/// [`fresh`] for the entries of a map.
fn fresh_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| fresh(v).map(|v| (k, v)))
        .collect()
}
